//! The crate's one error type.

use std::fmt;

/// A system whose Cholesky factorization broke down.
///
/// `column` is 0-based: the pivot `A[column, column] − Σ L[column, k]²` was not a positive
/// finite number (LAPACK's `INFO − 1`). The leading `column × column` block is positive definite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PivotFailure {
    /// Index of the system in the batch.
    pub system: usize,
    /// 0-based column at which the pivot failed.
    pub column: usize,
}

/// Everything that can go wrong in `banded`.
///
/// Every variant says what was wrong and where; none is ever replaced by a panic, a NaN result
/// or a silently truncated output.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument has the wrong shape.
    #[error("shape mismatch in `{arg}`: expected {expected}, got {got}")]
    Shape {
        /// Name of the offending argument (as in the function signature or CLI flag).
        arg: &'static str,
        /// The expected shape, e.g. `(4, 100, nrhs ≥ 1)`.
        expected: String,
        /// The shape that was passed.
        got: String,
    },
    /// An argument holds a NaN or an infinity.
    #[error("non-finite value {value} in `{arg}` at index {index:?}")]
    NonFinite {
        /// Name of the offending argument.
        arg: &'static str,
        /// Multi-index of the first offending entry, in the argument's interchange shape.
        index: Vec<usize>,
        /// The value found there, printed (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// A matrix of the batch is not (numerically) positive definite.
    #[error(
        "system {system} is not positive definite: the pivot at column {column} is not positive \
         ({} of the batch's systems failed{})",
        failures.len(),
        if failures.len() > 1 { ", see `failures`" } else { "" }
    )]
    NotPositiveDefinite {
        /// The first failing system.
        system: usize,
        /// Its failing column (0-based).
        column: usize,
        /// Every failing system of the batch, in increasing system order (includes the first).
        failures: Vec<PivotFailure>,
    },
    /// An argument has a value outside its domain (other than shape or finiteness).
    #[error("invalid `{arg}`: {reason}")]
    InvalidArgument {
        /// Name of the offending argument.
        arg: &'static str,
        /// What was expected and what was got.
        reason: String,
    },
    /// The CUDA backend failed: no driver or NVRTC library, no such device, a kernel that did
    /// not compile (with the compiler's log), or a driver call that returned an error.
    #[error("CUDA: {what}: {reason}")]
    Cuda {
        /// What was being done (e.g. `opening device 0`, `NVRTC compiling llt.cu for sm_90`).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A result overflowed (to ±∞ or NaN) although every input was finite and every matrix was
    /// accepted as positive definite: the system is too ill-conditioned, or its values too
    /// large, for the precision (e.g. a solution beyond f32's 3.4e38). Checked when
    /// [`Params::check_finite`](crate::Params::check_finite) is on, as the inputs are.
    #[error(
        "result `{arg}` overflows to {value} at index {index:?} although every input is finite: the \
         system is too ill-conditioned or its values too large for the precision"
    )]
    Overflow {
        /// Name of the result (as in the documentation of the call that computes it).
        arg: &'static str,
        /// Multi-index of the first non-finite entry of the result, in its interchange shape.
        index: Vec<usize>,
        /// The value found there, printed (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// Reading or writing a file failed (CLI and I/O helpers).
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Builds [`Error::NotPositiveDefinite`] from a non-empty, system-sorted list of failures.
    pub(crate) fn not_positive_definite(failures: Vec<PivotFailure>) -> Self {
        let first = failures[0];
        Error::NotPositiveDefinite { system: first.system, column: first.column, failures }
    }

    /// This error with its argument name replaced by `arg` (for a caller that knows the name
    /// under which the offending value was passed, e.g. a CLI flag).
    pub fn for_arg(self, arg: &'static str) -> Self {
        match self {
            Error::Shape { expected, got, .. } => Error::Shape { arg, expected, got },
            Error::NonFinite { index, value, .. } => Error::NonFinite { arg, index, value },
            Error::InvalidArgument { reason, .. } => Error::InvalidArgument { arg, reason },
            Error::Overflow { index, value, .. } => Error::Overflow { arg, index, value },
            other => other,
        }
    }

    /// [`Error::NonFinite`] found in a *result* (by the input checks run on it) as
    /// [`Error::Overflow`]; other errors unchanged.
    pub(crate) fn into_overflow(self) -> Self {
        match self {
            Error::NonFinite { arg, index, value } => Error::Overflow { arg, index, value },
            other => other,
        }
    }

    pub(crate) fn shape(arg: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Shape { arg, expected: expected.into(), got: got.into() }
    }
}

/// Formats a shape as NumPy spells it, for error messages: `(a, b, c)`, `(a,)` in one
/// dimension, `()` for a scalar.
///
/// ```
/// use banded::error::fmt_shape;
/// assert_eq!(fmt_shape(&[2, 3, 4]), "(2, 3, 4)");
/// assert_eq!(fmt_shape(&[5]), "(5,)");
/// assert_eq!(fmt_shape(&[]), "()");
/// ```
pub fn fmt_shape(dims: &[usize]) -> String {
    struct S<'a>(&'a [usize]);
    impl fmt::Display for S<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("(")?;
            for (i, d) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{d}")?;
            }
            if self.0.len() == 1 {
                f.write_str(",")?;
            }
            f.write_str(")")
        }
    }
    S(dims).to_string()
}

/// The multi-index of flat position `k` in a row-major (C order) array of shape `shape`, as
/// [`Error::NonFinite`] reports it (NumPy's `unravel_index`).
///
/// A `k` beyond the array wraps around in the first dimension (`k` is not checked); a zero
/// dimension contributes index 0.
///
/// ```
/// use banded::error::unravel;
/// assert_eq!(unravel(7, &[2, 3, 2]), [1, 0, 1]);
/// assert_eq!(unravel(0, &[]), [0usize; 0]);
/// ```
pub fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        if d > 0 {
            *slot = k % d;
            k /= d;
        }
    }
    index
}

/// Shorthand for `Result<T, banded::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
