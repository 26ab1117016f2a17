//! Running the `banded` binary from the CLI tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `banded ARGS` in `dir`.
pub fn banded(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banded")).args(args).current_dir(dir).output().expect("run banded")
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: exit status 1, exactly one line `error: …` on stderr, no panic.
/// Returns that line.
pub fn assert_fails(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("internal error"), "stderr: {err}");
    err
}

/// Asserts success.
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "status {:?}, stderr: {}", o.status, stderr(o));
}
