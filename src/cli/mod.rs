//! The `banded` command-line tool: clap definitions and dispatch (`src/main.rs` is its `main`).
//! Public but hidden, and not a stable API: the fuzz targets (`fuzz/`) and the tests call the
//! tool's own `.npy` reader and commands through it.
//!
//! Adding a command takes a few lines: a module with a `clap::Args` struct and a `run`
//! function, a variant in [`Command`] (or in [`BenchCommand`] for `banded bench …`), and an arm
//! in [`run`]. Errors are [`crate::Error`]; `main` prints `error: {e}` on one line and exits 1.
//! A command that can run on a CUDA device flattens [`device::DeviceArg`] (`--device`) into its
//! arguments and dispatches on the [`device::Backend`] it opens.

pub mod bench;
pub mod device;
pub mod io;
pub(crate) mod keep_going;
pub mod npy;
pub mod smnn;
pub mod solve;

use crate::Result;
use clap::{Parser, Subcommand};

/// Batched banded SPD solver: solve from NumPy files, and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "banded", version, about, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    // Help text: the `#[command(about, long_about)]` of `SolveArgs` (a doc comment here would
    // replace it).
    Solve(solve::SolveArgs),
    /// Timings on generated problems
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The S-MNN layer on .npz files: forward, backward
    #[command(subcommand)]
    Smnn(smnn::SmnnCommand),
}

/// The `banded bench …` commands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    // Help text: on `BenchSolveArgs`.
    Solve(bench::BenchSolveArgs),
    // Help text: on `BenchSmnnArgs`.
    Smnn(smnn::BenchSmnnArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Solve(args) => solve::run(&args),
        Command::Bench(BenchCommand::Solve(args)) => bench::solve(&args),
        Command::Smnn(cmd) => smnn::run(&cmd),
        Command::Bench(BenchCommand::Smnn(args)) => smnn::bench(&args),
    }
}
