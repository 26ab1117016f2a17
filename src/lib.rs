#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod alloc;
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


    /// Factors `a` in place with `kernel` (a pack kernel factors into packs, then converts
    /// back); per system `Err(column)` of the first failing pivot.
    pub fn factor_with<T: Real>(kernel: Kernel, a: &mut BandBatch<T>, par: Par) -> Vec<Result<(), usize>> {
        let kernel = kernel.checked();
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        if kernel == Kernel::Scalar {
            return crate::llt::pack::factor_batch(kernel, a.as_mut_slice(), batch, n, kd, par);
        }
        let data = std::mem::take(a.data_vec_mut());
        let (packed, status) = crate::llt::pack::Packed::factor(kernel, data, batch, n, kd, &mut [], 0, par);
        *a.data_vec_mut() = packed.into_band();
        status
    }

    /// [`factor_with`] and a solve of `b` fused into the same pass (a pack kernel solves each
    /// window of columns while it is in cache; `Kernel::Scalar` factors, then solves).
    /// Errors: [`crate::Error::Shape`].
    pub fn factor_solve_with<T: Real>(kernel: Kernel, a: &mut BandBatch<T>, b: &mut BatchMatrix<T>, par: Par) -> crate::Result<Vec<Result<(), usize>>> {
        let kernel = kernel.checked();
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        b.expect_systems("rhs", batch, n)?;
        let nrhs = b.cols();
        if kernel == Kernel::Scalar {
            let status = crate::llt::pack::factor_batch(kernel, a.as_mut_slice(), batch, n, kd, par);
            crate::llt::pack::solve_batch(kernel, a.as_slice(), b.as_mut_slice(), batch, n, kd, nrhs, par);
            return Ok(status);
        }
        let data = std::mem::take(a.data_vec_mut());
        let (packed, status) = crate::llt::pack::Packed::factor(kernel, data, batch, n, kd, b.as_mut_slice(), nrhs, par);
        *a.data_vec_mut() = packed.into_band();
        Ok(status)
    }

    /// Solves with the factors `l` (band layout) in place with `kernel`, streaming packs from
    /// the band layout (the path of a factor stored as a band). Errors: [`crate::Error::Shape`].
    pub fn solve_band_with<T: Real>(kernel: Kernel, l: &BandBatch<T>, b: &mut BatchMatrix<T>, par: Par) -> crate::Result<()> {
        let kernel = kernel.checked();
        b.expect_systems("rhs", l.batch(), l.n())?;
        let nrhs = b.cols();
        crate::llt::pack::solve_batch(kernel, l.as_slice(), b.as_mut_slice(), l.batch(), l.n(), l.kd(), nrhs, par);
        Ok(())
    }

    /// Solves with the factors `l` in place with `kernel` (a pack kernel converts `l` to packs
    /// first, as a factor stores them). Errors: [`crate::Error::Shape`].
    pub fn solve_with<T: Real>(kernel: Kernel, l: &BandBatch<T>, b: &mut BatchMatrix<T>, par: Par) -> crate::Result<()> {
        let kernel = kernel.checked();
        if kernel == Kernel::Scalar {
            return solve_band_with(kernel, l, b, par);
        }
        b.expect_systems("rhs", l.batch(), l.n())?;
        let (batch, n, kd) = (l.batch(), l.n(), l.kd());
        let packed = crate::llt::pack::Packed::from_band(kernel, l.as_slice().to_vec(), batch, n, kd);
        let nrhs = b.cols();
        packed.solve(b.as_mut_slice(), nrhs, par);
        Ok(())
    }
}
