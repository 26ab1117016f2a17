//! `--keep-going`: when some systems of a batch are not positive definite, the command runs
//! again on the others alone and writes every output in full, the failed systems' entries set
//! to NaN; each failure is reported on stderr and the command still exits with status 1.
//!
//! Running the others again (instead of keeping a partial factor) works the same on every
//! device and for both commands; the systems of a batch are independent and every kernel gives
//! a system the same bits whatever the batch around it (the fast kernels are deterministic,
//! the reference ones are per system), so their results are exactly those of a run without the
//! failed systems. It costs a second run, only when something failed.

use crate::alloc::with_capacity;
use crate::error::PivotFailure;
use crate::{Error, Real, Result};

/// The systems of a batch of `batch` that did not fail, in order.
pub fn survivors(batch: usize, failures: &[PivotFailure]) -> Vec<usize> {
    let mut failed = vec![false; batch];
    for f in failures {
        failed[f.system] = true;
    }
    (0..batch).filter(|&s| !failed[s]).collect()
}

/// The blocks `s` of `per` elements of `data` (batch-major), for each `s` of `systems` (each
/// `< data.len() / per`, as [`survivors`] gives). Errors: [`Error::InvalidArgument`] if the copy
/// cannot be allocated.
pub fn gather<T: Copy>(data: &[T], per: usize, systems: &[usize]) -> Result<Vec<T>> {
    // At most `data.len()` elements: `systems` are distinct systems of the batch.
    let mut out = with_capacity("--keep-going", systems.len() * per)?;
    for &s in systems {
        out.extend_from_slice(&data[s * per..(s + 1) * per]);
    }
    Ok(out)
}

/// The inverse of [`gather`] into a batch of `batch` blocks of `per` elements: block `s` of
/// `systems[k]` is block `k` of `sub` (`systems.len()·per` elements), every other block is NaN.
/// Errors: [`Error::InvalidArgument`] if the output cannot be allocated.
pub fn scatter<T: Real>(sub: &[T], per: usize, systems: &[usize], batch: usize) -> Result<Vec<T>> {
    let mut out = with_capacity("--keep-going", batch * per)?;
    out.resize(batch * per, T::nan());
    for (k, &s) in systems.iter().enumerate() {
        out[s * per..(s + 1) * per].copy_from_slice(&sub[k * per..(k + 1) * per]);
    }
    Ok(out)
}

/// One `warning:` line on stderr per failed system, naming the outputs that are NaN there.
pub fn report(failures: &[PivotFailure], outputs: &str) {
    for PivotFailure { system, column } in failures {
        eprintln!("warning: system {system} is not positive definite (pivot at column {column}): its {outputs} are NaN");
    }
}

/// The failures of `e` if it is [`Error::NotPositiveDefinite`] and `keep_going` is set.
pub fn failures(e: &Error, keep_going: bool) -> Option<&[PivotFailure]> {
    match e {
        Error::NotPositiveDefinite { failures, .. } if keep_going => Some(failures),
        _ => None,
    }
}
