#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod band;
pub mod error;
pub mod llt;
pub mod par;
pub mod scalar;
pub mod smnn;

pub use band::{BandBatch, BatchMatrix};
pub use error::{Error, PivotFailure, Result};
pub use llt::{Cholesky, Params, PartialCholesky, SolveGrad};
pub use par::Par;
pub use scalar::Real;

/// Internal entry points for the tests and benchmarks: choose the kernel that runs a batched
/// factor or solve. Not part of the API; may change at any time.
#[doc(hidden)]
pub mod internal {
    pub use crate::llt::pack::Kernel;
    use crate::{BandBatch, BatchMatrix, Par, Real};

    /// Factors `a` in place with `kernel`; per system `Err(column)` of the first failing pivot.
    pub fn factor_with<T: Real>(kernel: Kernel, a: &mut BandBatch<T>, par: Par) -> Vec<Result<(), usize>> {
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        crate::llt::pack::factor_batch(kernel, a.as_mut_slice(), batch, n, kd, par)
    }

    /// Solves with the factors `l` in place with `kernel`. Errors: [`crate::Error::Shape`].
    pub fn solve_with<T: Real>(kernel: Kernel, l: &BandBatch<T>, b: &mut BatchMatrix<T>, par: Par) -> crate::Result<()> {
        b.expect_systems("rhs", l.batch(), l.n())?;
        let nrhs = b.cols();
        crate::llt::pack::solve_batch(kernel, l.as_slice(), b.as_mut_slice(), l.batch(), l.n(), l.kd(), nrhs, par);
        Ok(())
    }
}
