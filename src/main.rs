//! The `banded` binary: see `banded --help` and `banded::cli`.

use std::process::ExitCode;

use banded::cli;
use clap::Parser;

fn main() -> ExitCode {
    cli::io::install_panic_hook();
    // Usage errors, --help and --version: clap prints them and exits (2 for usage errors).
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
