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

/// The value of `key=` in a bench line, as a number.
pub fn value(line: &str, key: &str) -> f64 {
    let prefix = format!("{key}=");
    let v = line.split_whitespace().find_map(|t| t.strip_prefix(prefix.as_str()));
    v.unwrap_or_else(|| panic!("no {key}= in {line}")).parse().unwrap_or_else(|e| panic!("{key}: {e} in {line}"))
}

/// Asserts a bench line's roofline fields (its last seven): the counts, then `roofline_s` from the counts and
/// the rates, and `roofline_frac = roofline_s / median_s`, within the printed rounding.
pub fn assert_roofline_consistent(text: &str, bytes: f64, flops: f64, ws: f64) {
    let keys: Vec<&str> = text.split_whitespace().map(|t| t.split_once('=').map_or(t, |(k, _)| k)).collect();
    let tail = ["bytes", "flops", "ws_bytes", "bw_gbs", "gemm_gflops", "roofline_s", "roofline_frac"];
    assert_eq!(&keys[keys.len() - tail.len()..], &tail[..], "{text}");
    assert_eq!((value(text, "bytes"), value(text, "flops"), value(text, "ws_bytes")), (bytes, flops, ws), "{text}");
    let (bw, gemm) = (value(text, "bw_gbs"), value(text, "gemm_gflops"));
    assert!(bw > 0.0 && gemm > 0.0, "{text}");
    let (floor, frac, median) = (value(text, "roofline_s"), value(text, "roofline_frac"), value(text, "median_s"));
    // The rates are printed to 3 decimals, the times to 9, the fraction to 6.
    let want = (flops / (gemm * 1e9)).max(bytes / (bw * 1e9));
    assert!((floor - want).abs() <= 1e-9 + want * 1e-3 / bw.min(gemm), "roofline_s {floor} vs {want}: {text}");
    assert!(median > 0.0 && floor > 0.0, "{text}");
    let rel = 5e-10 / floor + 5e-10 / median;
    assert!((frac - floor / median).abs() <= 1e-6 + 2.0 * rel * frac, "roofline_frac {frac} vs {}: {text}", floor / median);
}
