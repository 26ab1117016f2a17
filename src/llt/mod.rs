//! Batched banded Cholesky: factor, solve, log-determinant and the backward of a solve.
//!
//! The per-system kernels (`factor.rs`, `solve.rs`, `logdet.rs`, `backward.rs`) work on one
//! system's column-major band (see [`BandBatch`]); [`Cholesky`] runs them over a batch.
//! `factor` and `solve` run on lane-interleaved packs of 8 (f64) / 16 (f32) systems (twice
//! that for kd ≤ 2) with
//! AVX2 when the CPU has it (`pack.rs`, detected at run time; bitwise equal to the per-system
//! kernels, which stay the reference and the portable fallback). The factor stays stored in
//! the documented [`BandBatch`] layout: packs are gathered and scattered per call, streamed
//! through a cache-sized window, so [`Cholesky::l`] costs nothing.

mod backward;
mod factor;
mod logdet;
pub(crate) mod pack;
mod solve;

use rayon::prelude::*;

use crate::band::{BandBatch, BatchMatrix};
use crate::error::{Error, PivotFailure, Result};
use crate::par::{all_threads, min_len, Par};
use crate::scalar::Real;

pub(crate) use backward::band_gradient_system;
pub(crate) use factor::factor_system;
pub(crate) use logdet::logdet_system;
pub(crate) use solve::solve_system;

/// Options shared by the batched operations.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Parallelism over the batch. Default: every thread of the current rayon pool.
    pub par: Par,
    /// Check inputs for NaN and infinity first (as SciPy's `check_finite=True`) and return
    /// [`Error::NonFinite`]. Default `true`. With `false` the O(size) scan is skipped; a
    /// non-finite matrix entry then still surfaces as [`Error::NotPositiveDefinite`] (a NaN
    /// reaches a pivot), but non-finite right-hand sides propagate into the result.
    pub check_finite: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self { par: all_threads(), check_finite: true }
    }
}

impl Params {
    /// Default parameters with the given parallelism.
    pub fn with_par(par: Par) -> Self {
        Self { par, ..Self::default() }
    }
}

/// The Cholesky factors `A_s = L_s L_sᵀ` of a batch of SPD band matrices, every `L_s` lower
/// triangular with the band of `A_s`, stored as a [`BandBatch`] (`L_s[j + d, j]` where the
/// input had `A_s[j + d, j]`).
///
/// Factor once, then [`solve`](Self::solve), [`logdet`](Self::logdet) and
/// [`backward`](Self::backward) as often as needed.
///
/// Costs, per system (`n` order, `kd` bandwidth, `r` right-hand sides): factor
/// O(n·kd²) flops (`n·kd·(kd+3)` for `kd ≪ n`), solve and backward O(n·kd·r), memory
/// O(n·kd); nothing allocates inside a per-column loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Cholesky<T> {
    l: BandBatch<T>,
}

/// The outcome of [`Cholesky::factor_partial`]: the systems that factored, and those that did not.
#[derive(Clone, Debug)]
pub struct PartialCholesky<T> {
    /// Factors of the systems that are positive definite, in batch order; `None` if none is.
    pub factor: Option<Cholesky<T>>,
    /// For each system of `factor`, its index in the input batch.
    pub systems: Vec<usize>,
    /// The systems that are not positive definite, in increasing order.
    pub failures: Vec<PivotFailure>,
}

/// Gradients of a loss ℓ through `X = A⁻¹ B` (see [`Cholesky::backward`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SolveGrad<T> {
    /// ∂ℓ/∂B, shape `(batch, n, nrhs)`.
    pub rhs: BatchMatrix<T>,
    /// ∂ℓ/∂(stored lower band of A), in the layout of the input [`BandBatch`]; an off-diagonal
    /// entry stands for both `A[i, j]` and `A[j, i]`.
    pub ab: BandBatch<T>,
}

impl<T: Real> Cholesky<T> {
    /// Factors every system of `a` (copying it; see [`factor_in_place`](Self::factor_in_place)).
    ///
    /// Errors: [`Error::NonFinite`] (if `params.check_finite`);
    /// [`Error::NotPositiveDefinite`] naming the first failing system and column and listing
    /// every failing system. To keep the factors of the systems that did succeed, use
    /// [`factor_partial`](Self::factor_partial).
    pub fn factor(a: &BandBatch<T>, params: &Params) -> Result<Self> {
        if params.check_finite {
            a.check_finite("ab")?;
        }
        Self::factor_in_place(a.clone(), &Params { check_finite: false, ..*params })
    }

    /// Like [`factor`](Self::factor), overwriting `a`'s storage with the factor (no copy).
    pub fn factor_in_place(a: BandBatch<T>, params: &Params) -> Result<Self> {
        let out = Self::factor_partial(a, params)?;
        if out.failures.is_empty() {
            // `factor` is `Some` when nothing failed: the batch is never empty.
            out.factor.ok_or_else(|| Error::not_positive_definite(out.failures))
        } else {
            Err(Error::not_positive_definite(out.failures))
        }
    }

    /// Factors every system it can: never fails for a non-positive-definite system, but
    /// reports it in [`PartialCholesky::failures`] and keeps the other systems' factors.
    ///
    /// Errors: [`Error::NonFinite`] only (if `params.check_finite`).
    pub fn factor_partial(mut a: BandBatch<T>, params: &Params) -> Result<PartialCholesky<T>> {
        if params.check_finite {
            a.check_finite("ab")?;
        }
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        let status = pack::factor_batch(pack::Kernel::best(), a.as_mut_slice(), batch, n, kd, params.par);
        let failures: Vec<PivotFailure> = status
            .iter()
            .enumerate()
            .filter_map(|(system, st)| st.err().map(|column| PivotFailure { system, column }))
            .collect();
        if failures.is_empty() {
            return Ok(PartialCholesky { factor: Some(Self { l: a }), systems: (0..batch).collect(), failures });
        }
        let systems: Vec<usize> = (0..batch).filter(|&s| status[s].is_ok()).collect();
        let factor = a.select(&systems).map(|l| Self { l });
        Ok(PartialCholesky { factor, systems, failures })
    }

    /// The factor `L` (lower band, same layout as the input).
    pub fn l(&self) -> &BandBatch<T> {
        &self.l
    }
    /// Consumes `self`, returning `L`.
    pub fn into_l(self) -> BandBatch<T> {
        self.l
    }
    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.l.batch()
    }
    /// Order of each system.
    pub fn n(&self) -> usize {
        self.l.n()
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.l.kd()
    }

    /// Solves `A_s X_s = B_s` for every system: `b` is `(batch, n, nrhs)`, the result too.
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`] (`rhs`), [`Error::NonFinite`].
    pub fn solve(&self, b: &BatchMatrix<T>, params: &Params) -> Result<BatchMatrix<T>> {
        let mut x = b.clone();
        self.solve_in_place(&mut x, params)?;
        Ok(x)
    }

    /// [`solve`](Self::solve) overwriting `b` with the solution.
    pub fn solve_in_place(&self, b: &mut BatchMatrix<T>, params: &Params) -> Result<()> {
        b.expect_systems("rhs", self.batch(), self.n())?;
        if params.check_finite {
            b.check_finite("rhs")?;
        }
        let (n, kd, nrhs) = (self.n(), self.kd(), b.cols());
        pack::solve_batch(pack::Kernel::best(), self.l.as_slice(), b.as_mut_slice(), self.batch(), n, kd, nrhs, params.par);
        Ok(())
    }

    /// `log det A_s = 2 Σ_j log L_s[j, j]` for every system (`batch` values). Cost O(n).
    pub fn logdet(&self) -> Vec<T> {
        let len = self.l.system_len();
        self.l.as_slice().chunks_exact(len).map(|l| logdet_system(l, self.n(), self.kd())).collect()
    }

    /// The backward (vector–Jacobian product) of `X = A⁻¹ B`.
    ///
    /// Given the forward solution `x` and `grad_x` = ∂ℓ/∂X (both `(batch, n, nrhs)`), returns
    /// ∂ℓ/∂B = Λ = A⁻¹ ∂ℓ/∂X (one more solve with this factor) and, for the stored lower band,
    /// ∂ℓ/∂a_ij = −Σ_r (Λ[i,r] X[j,r] + Λ[j,r] X[i,r]) for i > j and
    /// ∂ℓ/∂a_jj = −Σ_r Λ[j,r] X[j,r] (the symmetric convention: an off-diagonal stored entry
    /// stands for both `A[i,j]` and `A[j,i]`). Nothing outside the band is formed.
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`] (`x`, `grad_x`),
    /// [`Error::NonFinite`].
    pub fn backward(&self, x: &BatchMatrix<T>, grad_x: &BatchMatrix<T>, params: &Params) -> Result<SolveGrad<T>> {
        x.expect_systems("x", self.batch(), self.n())?;
        grad_x.expect_shape("grad_x", x.shape())?;
        if params.check_finite {
            x.check_finite("x")?;
        }
        let lambda = self.solve(grad_x, params)?;
        let (n, kd, nrhs) = (self.n(), self.kd(), x.cols());
        let mut ab = BandBatch::zeros(self.batch(), n, kd)?;
        let len = ab.system_len();
        ab.as_mut_slice()
            .par_chunks_mut(len)
            .zip(x.as_slice().par_chunks(n * nrhs))
            .zip(lambda.as_slice().par_chunks(n * nrhs))
            .with_min_len(min_len(params.par, self.batch()))
            .for_each(|((g, x), lam)| band_gradient_system(x, lam, n, kd, nrhs, g));
        Ok(SolveGrad { rhs: lambda, ab })
    }
}
