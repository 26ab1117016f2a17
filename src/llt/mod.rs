//! Batched banded Cholesky: factor, solve, log-determinant and the backward of a solve.
//!
//! The layers (see `docs/ARCHITECTURE.md`):
//! - per-system reference kernels on one system's column-major band (see [`BandBatch`]):
//!   `factor.rs`, `solve.rs`, `logdet.rs`, `backward.rs`;
//! - selected inversion (the band of `A⁻¹`, for the log-determinant's gradient): `inverse.rs`,
//!   one kernel for packs and single systems;
//! - the fast kernels on `L` lane-interleaved systems (or one, `L = 1`), one window of columns
//!   at a time (`kernels.rs`): fused multiply–adds, left-looking, each element's terms in one
//!   fixed order, so a system gets the same bits in any lane, pack width or alone;
//! - one windowed driver per operation, generic over where a pack's columns live (`driver.rs`);
//! - the batched drivers: packs over rayon under the dispatched instruction set, or the
//!   reference kernels one system at a time for batches too small for a pack (`batched.rs`);
//! - [`Cholesky`], whose factor stays in pack layout in the input's storage (`packed.rs`) and
//!   is converted to the documented [`BandBatch`] layout on demand ([`Cholesky::l`]).

mod backward;
mod batched;
mod driver;
mod factor;
mod interchange;
mod inverse;
mod kernels;
mod logdet;
mod packed;
mod partitioned;
mod solve;

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::band::{BandBatch, BatchMatrix, BatchMut, PackedBandBatch, PackedBatchMatrix};
use crate::band::lanes::with_lanes;
use crate::band::pack_lanes;
use crate::error::{Error, PivotFailure, Result, fmt_shape};
use crate::par::min_len;
use crate::params::Params;
use crate::scalar::{Real, first_non_finite, fmt_value};
use crate::simd::Isa;

use backward::band_gradient_columns;
pub(crate) use batched::{Batch, Plan, Status, pieces};
pub(crate) use factor::factor_system;
pub(crate) use kernels::Dims;
use kernels::touch;
pub(crate) use logdet::logdet_system;
pub(crate) use solve::solve_system;

use batched::{factor_packs, factor_reference, factor_singles, solve_band};
use driver::Sweep;
use packed::Packed;
use partitioned::Partitioned;

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
///
/// Storage: for a batch of at least one pack (see [`pack_lanes`](crate::band::pack_lanes)) the
/// factor is kept, in the input's own storage, as lane-interleaved packs, which the solves
/// read directly. [`l`](Self::l) then builds the documented [`BandBatch`] layout once, on the
/// first call (one copy and one transpose of the factor, O(batch·n·kd), kept for later
/// calls), and [`into_l`](Self::into_l) converts in place. Smaller batches are factored one
/// system at a time and stored in the [`BandBatch`] layout directly, unless their systems are
/// long: then each is split into chunks that factor in parallel and a small separator system
/// ([`Partitions`](crate::Partitions), [`is_partitioned`](Self::is_partitioned); the input is
/// kept beside the chunks' factors, and [`l`](Self::l) factors it sequentially on request).
/// Every method works on every storage. A split factor holds the input (`n·(kd+1)` per
/// system), the chunks' factor (about as much) and one spike (`≈ n·kd`); its solves cost about
/// twice the sequential ones, and a failing system's [`Error::NotPositiveDefinite`] column is
/// the original column of the first failing pivot in the split order (chunks first, then
/// separators), which for a leading minor failing in order is the sequential order's column.
#[derive(Clone, Debug)]
pub struct Cholesky<T> {
    store: Store<T>,
    /// `L` in the [`BandBatch`] layout, built by the first [`l`](Self::l) if `store` is packed.
    band: OnceLock<BandBatch<T>>,
    /// The instruction set of the fast kernels that made it, or `None` for the reference
    /// kernels ([`Kernel::Reference`](crate::Kernel::Reference)). A factor is solved by the
    /// kernels that made it unless the solve's parameters name another fast kernel, so that a
    /// reproducible factorization gives reproducible solutions (and the portable, unfused
    /// kernels' factor, the reference's bits, is solved unfused).
    made: Option<Isa>,
}

#[derive(Clone, Debug)]
enum Store<T> {
    Band(BandBatch<T>),
    Packed(Packed<T>),
    /// Split in chunks ([`Partitions`](crate::Partitions)): the input kept, the chunks' and
    /// separators' factors.
    Partitioned(Box<Partitioned<T>>),
}

impl<T: Real> PartialEq for Cholesky<T> {
    /// Equal factors (whatever the internal storage).
    fn eq(&self, other: &Self) -> bool {
        self.l() == other.l()
    }
}

/// Columns per parallel task of [`Cholesky::backward`]'s band gradient.
const GRADIENT_COLUMNS: usize = 4096;

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

impl<T> PartialCholesky<T> {
    /// The factor of every system, or [`Error::NotPositiveDefinite`] listing the failures.
    fn complete(self) -> Result<Cholesky<T>> {
        match self.factor {
            // `factor` is `Some` when nothing failed: the batch is never empty.
            Some(f) if self.failures.is_empty() => Ok(f),
            _ => Err(Error::not_positive_definite(self.failures)),
        }
    }
}

/// [`Error::NonFinite`] of `ab` (interchange layout `(batch, kd + 1, n)`) at its first NaN or ±∞
/// inside a matrix, in the band layout's order (system, column, row of the band), as
/// [`BandBatch::check_finite_par`] names it (index `[s, d, j]`). The slow path of a batch known
/// to hold one.
fn first_non_finite_interchange<T: Real>(ab: &[T], batch: usize, n: usize, kd: usize) -> Error {
    let w = kd + 1;
    for s in 0..batch {
        for j in 0..n {
            for d in 0..w.min(n - j) {
                let x = ab[(s * w + d) * n + j];
                if !x.is_finite() {
                    return Error::NonFinite { arg: "ab", index: vec![s, d, j], value: fmt_value(x) };
                }
            }
        }
    }
    Error::InvalidArgument { arg: "ab", reason: "a NaN or ±∞ was seen but not found again (the array changed?)".into() }
}

/// Gradients of a loss ℓ through `X = A⁻¹ B` (see [`Cholesky::backward`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SolveGrads<T> {
    /// ∂ℓ/∂B, shape `(batch, n, nrhs)`.
    pub rhs: BatchMatrix<T>,
    /// ∂ℓ/∂(stored lower band of A), in the layout of the input [`BandBatch`]; an off-diagonal
    /// entry stands for both `A[i, j]` and `A[j, i]`.
    pub ab: BandBatch<T>,
}

impl<T: Real> Cholesky<T> {
    /// Factors every system of `a` (owned or borrowed storage, copied once into the factor's; see
    /// [`factor_in_place`](Self::factor_in_place) to factor in an owned batch's storage).
    ///
    /// Errors: [`Error::NonFinite`] (if `params.check_finite()`);
    /// [`Error::NotPositiveDefinite`] naming the first failing system and column and listing
    /// every failing system; [`Error::InvalidArgument`] if the copy cannot be allocated. To keep
    /// the factors of the systems that did succeed, use [`factor_partial`](Self::factor_partial).
    pub fn factor<S: AsRef<[T]>>(a: &BandBatch<T, S>, params: &Params) -> Result<Self> {
        if params.check_finite() {
            a.check_finite_par("ab", params.par())?;
        }
        Self::factor_in_place(a.to_owned()?, &params.with_check_finite(false))
    }

    /// Like [`factor`](Self::factor), overwriting `a`'s storage with the factor (no copy).
    pub fn factor_in_place(a: BandBatch<T>, params: &Params) -> Result<Self> {
        Self::factor_partial(a, params)?.complete()
    }

    /// Factors every system of `a` (in its storage, as [`factor_in_place`](Self::factor_in_place))
    /// and solves `A_s X_s = B_s` in place in `b` (`(batch, n, nrhs)`) in the same pass, like
    /// LAPACK's `pbsv`: each window of columns is substituted into `b` while it is in cache, so
    /// the factor is read from memory once instead of three times (factor, then the two
    /// triangular solves of [`solve_in_place`](Self::solve_in_place)). `x` is bitwise the one
    /// `factor_in_place` + `solve_in_place` give.
    ///
    /// Cost: that of `factor` + `solve`; scratch one pack of systems (as `factor`) plus
    /// `n·nrhs` per pack.
    ///
    /// Errors: [`Error::Shape`] (`b` is not `(batch, n, ·)`); [`Error::NonFinite`] (`ab` or
    /// `rhs`, if `params.check_finite()`); [`Error::NotPositiveDefinite`] as
    /// [`factor`](Self::factor), and then `b` holds unspecified values (the systems that factored
    /// are solved, the others are not); [`Error::Overflow`] (`x`, if `params.check_finite()`) as
    /// [`solve`](Self::solve).
    pub fn factor_solve<S: AsRef<[T]> + AsMut<[T]>>(a: BandBatch<T>, b: &mut BatchMatrix<T, S>, params: &Params) -> Result<Self> {
        let factor = Self::factor_partial_solve(a, Some(b.view_mut()), params)?.complete()?;
        if params.check_finite() {
            b.check_finite_par("x", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(factor)
    }

    /// Solves `A_s X_s = B_s` in place in `b` (`(batch, n, nrhs)`) for a batch given in the
    /// interchange layout (`ab`: `(batch, kd + 1, n)`, SciPy's lower band, as
    /// [`BandBatch::from_lower_band`] takes it; entries with `j ≥ n − d` are ignored), **without
    /// keeping the factor** — what SciPy's `solveh_banded` does, for a batch.
    ///
    /// Each pack of systems is gathered from `ab` straight into the lanes the kernels run in,
    /// checked for NaN and ±∞ in the same pass (`params.check_finite()`), factored and solved
    /// with its factor in scratch, which is then dropped: `ab` is read once and only `b` is
    /// written (against [`from_lower_band`](BandBatch::from_lower_band) +
    /// [`factor_solve`](Self::factor_solve): a conversion pass, a scan, and the factor written
    /// out). The same bits as `factor_solve` of the converted batch. Cost O(n·kd²) per system;
    /// scratch one pack. Under [`Kernel::Reference`](crate::Kernel::Reference) it converts and
    /// runs the reference kernels.
    ///
    /// Errors: [`Error::Shape`] (`ab` not `batch·(kd+1)·n` elements, a zero dimension, `b` not
    /// `(batch, n, ·)`) and [`Error::InvalidArgument`] (sizes that overflow), `b` untouched;
    /// [`Error::NonFinite`] (`ab`, index `[s, d, j]`, the first in the band layout's order;
    /// then `rhs`, `[s, i, k]`), [`Error::NotPositiveDefinite`] and [`Error::Overflow`] (`x`),
    /// in [`factor_solve`](Self::factor_solve)'s order. After those three `b` holds unspecified
    /// values, the `NonFinite` ones included: unlike `factor_solve`, which scans its inputs
    /// before the work, the checks run on each pack while it is in cache, so the packs are
    /// solved by the time a bad value is reported. Keep a copy of `b` if it must survive.
    pub fn solve_lower_band<S: AsRef<[T]> + AsMut<[T]>>(ab: &[T], batch: usize, n: usize, kd: usize, b: &mut BatchMatrix<T, S>, params: &Params) -> Result<()> {
        let len = BandBatch::<T>::checked_len(batch, n, kd)?;
        if ab.len() != len {
            return Err(Error::shape("ab", format!("{len} elements = {}", fmt_shape(&[batch, kd + 1, n])), format!("{} elements", ab.len())));
        }
        b.expect_systems("rhs", batch, n)?;
        let plan = Plan::new::<T>(batch, kd, params);
        if plan.lanes == 1 || crate::band::partitions::<T>(batch, n, kd, params) > 1 {
            let a = BandBatch::from_lower_band_par(ab, batch, n, kd, params.par())?;
            return Self::factor_solve(a, b, params).map(drop);
        }
        let (nrhs, check) = (b.cols(), params.check_finite());
        let dims = Dims { n, kd, nrhs };
        let full = batch / plan.lanes;
        let split = full * plan.lanes;
        let (bf, bt) = b.as_mut_slice().split_at_mut(split * n * nrhs);
        let (status, checks) = with_lanes!(plan.lanes, L => interchange::solve_packs_interchange::<T, L>(plan.isa, ab, bf, full, dims, check, params.par()));
        // The systems after the packs (fewer than a pack): converted and solved as a batch.
        let tail = if split < batch { Some(BandBatch::from_lower_band(&ab[split * n * (kd + 1)..], batch - split, n, kd)?) } else { None };
        // The errors in factor_solve's order: the matrices, the right-hand sides, the pivots, the
        // solutions.
        if check {
            if checks.iter().any(|c| c.ab) || tail.as_ref().is_some_and(|a| a.check_finite_par("ab", params.par()).is_err()) {
                return Err(first_non_finite_interchange(ab, batch, n, kd));
            }
            let per_pack = plan.lanes * n * nrhs;
            let rhs = checks.iter().enumerate().find_map(|(p, c)| c.rhs.map(|(k, v)| (p * per_pack + k, v)));
            if let Some((k, v)) = rhs.or_else(|| first_non_finite(bt).map(|k| (split * n * nrhs + k, bt[k]))) {
                let (s, i, r) = (k / (n * nrhs), (k / nrhs) % n, k % nrhs);
                return Err(Error::NonFinite { arg: "rhs", index: vec![s, i, r], value: fmt_value(v) });
            }
        }
        let mut failures: Vec<PivotFailure> = status.iter().enumerate().filter_map(|(system, st)| st.err().map(|column| PivotFailure { system, column })).collect();
        if let Some(a) = tail {
            let part = Self::factor_partial_solve(a, Some(BatchMut::new(bt, batch - split, n, nrhs)?), &params.with_check_finite(false))?;
            failures.extend(part.failures.iter().map(|f| PivotFailure { system: split + f.system, column: f.column }));
        }
        if !failures.is_empty() {
            return Err(Error::not_positive_definite(failures));
        }
        if check && (checks.iter().any(|c| c.x) || first_non_finite(&b.as_slice()[split * n * nrhs..]).is_some()) {
            // Known to fail: the slow path names the first.
            b.check_finite_par("x", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(())
    }

    /// Factors every system it can: never fails for a non-positive-definite system, but
    /// reports it in [`PartialCholesky::failures`] and keeps the other systems' factors.
    ///
    /// Errors: [`Error::NonFinite`] only (if `params.check_finite()`).
    pub fn factor_partial(a: BandBatch<T>, params: &Params) -> Result<PartialCholesky<T>> {
        Self::factor_partial_solve(a, None, params)
    }

    /// [`factor_partial`](Self::factor_partial), with `b` also solved in the same pass (see
    /// [`factor_solve`](Self::factor_solve); a failed system's `b` holds garbage).
    pub(crate) fn factor_partial_solve(mut a: BandBatch<T>, b: Option<BatchMut<'_, T>>, params: &Params) -> Result<PartialCholesky<T>> {
        if params.check_finite() {
            a.check_finite_par("ab", params.par())?;
        }
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        let (b, nrhs) = match b {
            Some(b) => {
                b.expect_systems("rhs", batch, n)?;
                if params.check_finite() {
                    b.check_finite_par("rhs", params.par())?;
                }
                let nrhs = b.cols();
                (b.into_mut_slice(), nrhs)
            }
            None => (&mut [][..], 0),
        };
        let parts = crate::band::partitions::<T>(batch, n, kd, params);
        if parts > 1 {
            return Self::factor_partitioned(a, b, nrhs, parts, params);
        }
        let plan = Plan::new::<T>(batch, kd, params);
        let job = Batch { batch, dims: Dims { n, kd, nrhs }, rhs: b, par: params.par() };
        let (store, status) = if plan.reference {
            let status = factor_reference(a.as_mut_slice(), job);
            (Store::Band(a), status)
        } else if plan.lanes == 1 {
            let status = factor_singles(plan.isa, a.as_mut_slice(), job);
            (Store::Band(a), status)
        } else {
            let (_, _, _, mut data) = a.into_parts();
            let status = with_lanes!(plan.lanes, L => factor_packs::<T, L>(plan.isa, &mut data, job));
            (Store::Packed(Packed { data, isa: plan.isa, lanes: plan.lanes, batch, n, kd }), status)
        };
        Self::partial(store, status, batch, (!plan.reference).then_some(plan.isa))
    }

    /// [`factor_partial_solve`](Self::factor_partial_solve) split in `parts ≥ 2` chunks per
    /// system (`rhs`: `batch` systems of `n × nrhs`, or empty with `nrhs = 0`), inputs checked.
    fn factor_partitioned(a: BandBatch<T>, rhs: &mut [T], nrhs: usize, parts: usize, params: &Params) -> Result<PartialCholesky<T>> {
        let n = a.n();
        let (factor, systems, failures) = partitioned::factor(a, parts, params)?;
        let Some(f) = factor else {
            return Ok(PartialCholesky { factor: None, systems, failures });
        };
        if nrhs > 0 {
            let len = n * nrhs;
            if failures.is_empty() {
                f.solve(rhs, nrhs, params)?;
            } else {
                // Only the systems that factored, gathered and put back.
                let mut sub = crate::alloc::with_capacity("rhs", systems.len() * len)?;
                for &s in &systems {
                    sub.extend_from_slice(&rhs[s * len..(s + 1) * len]);
                }
                f.solve(&mut sub, nrhs, params)?;
                for (k, &s) in systems.iter().enumerate() {
                    rhs[s * len..(s + 1) * len].copy_from_slice(&sub[k * len..(k + 1) * len]);
                }
            }
        }
        let made = f.chunks.made;
        let factor = Some(Self { store: Store::Partitioned(Box::new(f)), band: OnceLock::new(), made });
        Ok(PartialCholesky { factor, systems, failures })
    }

    /// [`factor_partial_solve`](Self::factor_partial_solve) of the `job.batch` systems of
    /// `data` (`job.dims`), whose full packs of `L` systems (`L` = [`Plan::lanes`] of `plan`,
    /// which must be > 1) are produced window by window during the factorization: `data` holds
    /// their storage (any contents), then the other systems in the band layout, already filled.
    /// See `batched::factor_filled` for `sides` and `make_fill`. Unchecked: the caller
    /// guarantees lengths and finiteness.
    pub(crate) fn factor_filled<const L: usize, S, G, F>(plan: Plan, mut data: Vec<T>, job: Batch<'_, T>, sides: Vec<S>, make_fill: &G) -> Result<PartialCholesky<T>>
    where
        S: Send,
        G: Fn(usize, S) -> F + Sync,
        F: FnMut(&mut [[T; L]], usize),
    {
        debug_assert_eq!(plan.lanes, L);
        let (batch, Dims { n, kd, .. }) = (job.batch, job.dims);
        let status = batched::factor_filled::<T, L, S, G, F>(plan.isa, &mut data, job, sides, make_fill);
        Self::partial(Store::Packed(Packed { data, isa: plan.isa, lanes: L, batch, n, kd }), status, batch, Some(plan.isa))
    }

    /// Factors a batch given in the lane-interleaved layout ([`PackedBandBatch`]) in its own
    /// storage: the packs are factored where they are, with no transpose into or out of the
    /// layout the kernels run in (which [`factor`](Self::factor) does for every element: with the
    /// solve, a sixth to a third of the time at kd 1–4, `benches/packed.rs`). The factor stays in that layout; solve with
    /// [`solve_packed_in_place`](Self::solve_packed_in_place) (or any other method: every one
    /// accepts a factor in either layout). The same bits as [`factor`](Self::factor) of the same
    /// matrices when `a.lanes()` is what [`factor`](Self::factor) would choose.
    ///
    /// Cost: as `factor`, less the transposes. Errors: as
    /// [`factor_in_place`](Self::factor_in_place) ([`Error::NonFinite`] indices in the
    /// interchange layout `(s, d, j)`).
    pub fn factor_packed(a: PackedBandBatch<T>, params: &Params) -> Result<Self> {
        if params.check_finite() {
            a.check_finite_par("ab", params.par())?;
        }
        let (batch, n, kd, lanes, data) = a.into_parts();
        let params = params.with_check_finite(false);
        if lanes == 1 {
            return Self::factor_in_place(BandBatch::from_parts(batch, n, kd, data), &params);
        }
        // Under `Kernel::Reference` the packs run unfused (`Isa::Portable`): the reference kernels' operations
        // in their order, hence their bits.
        let plan = Plan { isa: Isa::of(params.kernel()).unwrap_or(Isa::Portable), lanes, reference: false };
        let job = Batch { batch, dims: Dims { n, kd, nrhs: 0 }, rhs: &mut [], par: params.par() };
        let w = kd + 1;
        with_lanes!(lanes, L => {
            // The packs are already in place: each window is only read once ahead of the
            // factorization (a streaming pass the hardware prefetches), so that its dependent
            // loads hit the cache (without, kd 17 ran 1.3x slower than `factor` in one run).
            let sides = vec![(); batch / L];
            let make_fill = |_, ()| {
                let mut done = 0;
                move |pack: &mut [[T; L]], upto: usize| {
                    touch(&pack[done * w..upto * w]);
                    done = upto;
                }
            };
            Self::factor_filled::<L, (), _, _>(plan, data, job, sides, &make_fill)
        })?
        .complete()
    }

    /// Systems per pack of the factor's storage: the `lanes` a [`PackedBatchMatrix`] needs for
    /// [`solve_packed_in_place`](Self::solve_packed_in_place) (1: the factor is stored one
    /// system at a time, and a packed right-hand side with 1 lane is a row-major one).
    pub fn lanes(&self) -> usize {
        match &self.store {
            Store::Band(_) | Store::Partitioned(_) => 1,
            Store::Packed(p) => p.lanes,
        }
    }

    /// Solves `A_s X_s = B_s` in place for right-hand sides given in the lane-interleaved
    /// layout ([`PackedBatchMatrix`], `(batch, n, nrhs)`) with this factor's
    /// [`lanes`](Self::lanes): each pack is substituted where it is, with no transpose (which
    /// [`solve_in_place`](Self::solve_in_place) does for every element). The same bits as
    /// `solve_in_place` on the same systems.
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`] (`rhs` not `(batch, n, ·)`),
    /// [`Error::InvalidArgument`] (`rhs` packed with other lanes than the factor's),
    /// [`Error::NonFinite`] (`rhs`) and [`Error::Overflow`] (`x`), if `params.check_finite()`.
    pub fn solve_packed_in_place(&self, b: &mut PackedBatchMatrix<T>, params: &Params) -> Result<()> {
        if b.batch() != self.batch() || b.rows() != self.n() {
            let expected = format!("({}, {}, nrhs)", self.batch(), self.n());
            return Err(Error::shape("rhs", expected, format!("({}, {}, {})", b.batch(), b.rows(), b.cols())));
        }
        if b.lanes() != self.lanes() {
            let reason = format!("packed with {} lanes, the factor with {} (Cholesky::lanes)", b.lanes(), self.lanes());
            return Err(Error::InvalidArgument { arg: "rhs", reason });
        }
        if params.check_finite() {
            b.check_finite_par("rhs", params.par())?;
        }
        let nrhs = b.cols();
        self.solve_storage(b.as_mut_slice(), nrhs, true, params, Sweep::Both)?;
        if params.check_finite() {
            b.check_finite_par("x", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(())
    }

    /// The [`PartialCholesky`] of a factored `store` with per-system `status`. Errors only if
    /// the copy of the systems that factored cannot be allocated (when some failed).
    fn partial(store: Store<T>, status: Status, batch: usize, made: Option<Isa>) -> Result<PartialCholesky<T>> {
        let failures: Vec<PivotFailure> = status
            .iter()
            .enumerate()
            .filter_map(|(system, st)| st.err().map(|column| PivotFailure { system, column }))
            .collect();
        if failures.is_empty() {
            let factor = Some(Self { store, band: OnceLock::new(), made });
            return Ok(PartialCholesky { factor, systems: (0..batch).collect(), failures });
        }
        let systems: Vec<usize> = (0..batch).filter(|&s| status[s].is_ok()).collect();
        let all = Self { store, band: OnceLock::new(), made }.into_l();
        let factor = all.select(&systems)?.map(|l| Self { store: Store::Band(l), band: OnceLock::new(), made });
        Ok(PartialCholesky { factor, systems, failures })
    }

    /// The factor `L` (lower band, same layout as the input). When the factor is stored as
    /// packs, the first call builds this layout (O(batch·n·kd), once; see the type's docs).
    ///
    /// A partitioned factor ([`is_partitioned`](Self::is_partitioned)) is not a band `L` of
    /// `A` (its columns are in another order); the first call factors the kept `A`
    /// sequentially (O(n·kd²) per system, once), with the kernel that made the chunks. A matrix
    /// so ill-conditioned that the sequential order meets a pivot ≤ 0 where the partitioned did
    /// not gets NaN from that column on.
    pub fn l(&self) -> &BandBatch<T> {
        match &self.store {
            Store::Band(l) => l,
            Store::Packed(p) => self.band.get_or_init(|| {
                let (batch, n, kd) = p.shape();
                BandBatch::from_parts(batch, n, kd, p.clone().into_band())
            }),
            Store::Partitioned(p) => self.band.get_or_init(|| Self::sequential(p.a.clone(), self.made)),
        }
    }
    /// Consumes `self`, returning `L` (converted in place when stored as packs).
    pub fn into_l(self) -> BandBatch<T> {
        let made = self.made;
        match self.store {
            Store::Band(l) => l,
            Store::Packed(p) => self.band.into_inner().unwrap_or_else(|| {
                let (batch, n, kd) = p.shape();
                BandBatch::from_parts(batch, n, kd, p.into_band())
            }),
            Store::Partitioned(p) => self.band.into_inner().unwrap_or_else(|| Self::sequential(p.a, made)),
        }
    }
    /// `a` factored in place column after column (the fast kernels of `made`, else the
    /// reference), whatever the pivots: a failed system's columns from its failing pivot on hold NaN.
    fn sequential(mut a: BandBatch<T>, made: Option<Isa>) -> BandBatch<T> {
        let (batch, n, kd) = (a.batch(), a.n(), a.kd());
        let job = Batch { batch, dims: Dims { n, kd, nrhs: 0 }, rhs: &mut [], par: crate::par::all_threads() };
        let status = match made {
            Some(isa) => factor_singles(isa, a.as_mut_slice(), job),
            None => factor_reference(a.as_mut_slice(), job),
        };
        let w = kd + 1;
        for (s, st) in status.iter().enumerate() {
            if let Err(j) = *st {
                a.as_mut_slice()[(s * n + j) * w..(s + 1) * n * w].fill(T::nan());
            }
        }
        a
    }
    /// Whether each system was factored in chunks ([`Partitions`](crate::Partitions), chosen
    /// by [`partitions`](crate::band::partitions)): solves, log-determinants, gradients and
    /// inverses then run chunk by chunk in parallel.
    pub fn is_partitioned(&self) -> bool {
        matches!(self.store, Store::Partitioned(_))
    }
    /// The number of chunks each system was factored in (1: not partitioned).
    pub fn partitions(&self) -> usize {
        match &self.store {
            Store::Partitioned(p) => p.layout.parts,
            _ => 1,
        }
    }
    /// The factor's storage, whatever its layout (`batch·n·(kd+1)` elements of unspecified
    /// contents), for reuse by the next factorization: e.g.
    /// [`BandBatch::from_lower_band_in`] or [`Workspace::from_factor`](crate::smnn::Workspace::from_factor). O(1).
    pub fn into_storage(self) -> Vec<T> {
        match self.store {
            Store::Band(l) => l.into_parts().3,
            Store::Packed(p) => p.into_storage(),
            Store::Partitioned(p) => p.a.into_parts().3,
        }
    }
    /// The diagonal of `L_s` (`s < batch`) as `(slice, stride)`: `L_s[j, j] = slice[j·stride]`
    /// for `j < n` (iterate `slice.iter().step_by(stride)`: exactly `n` items). A partitioned
    /// factor has no such diagonal: its chunks' and separators' factors do (see
    /// [`relative_pivot_failures`](Self::relative_pivot_failures)); it gives its inputs'.
    pub(crate) fn diag_strided(&self, s: usize) -> (&[T], usize) {
        match &self.store {
            Store::Band(l) => {
                let len = l.system_len();
                (&l.as_slice()[s * len..(s + 1) * len], self.kd() + 1)
            }
            Store::Packed(p) => p.diag_strided(s),
            Store::Partitioned(p) => {
                let len = p.a.system_len();
                (&p.a.as_slice()[s * len..(s + 1) * len], self.kd() + 1)
            }
        }
    }
    /// The systems whose factor has a pivot `p = L[j,j]` with `p² ≤ tol·diag[j]` (or NaN), each
    /// with its first such column: the S-MNN layer's relative pivot test. `systems[k]` is the
    /// batch index of this factor's system `k` (its row of `diag`, `n` entries per batch system).
    /// A factor kept in packs is read pack row by pack row (one cache line holds a column's
    /// pivot for every lane: walking each system's pivots alone fetched every line once per
    /// lane, a twelfth of an S-MNN forward). Cost O(batch·n).
    pub(crate) fn relative_pivot_failures(&self, systems: &[usize], diag: &[T], tol: T, par: crate::par::Par) -> Vec<PivotFailure> {
        let n = self.n();
        // Not `<=`: a NaN pivot fails too.
        let fails = |p: T, d: T| (p * p).partial_cmp(&(tol * d)) != Some(std::cmp::Ordering::Greater);
        if let Store::Partitioned(p) = &self.store {
            return p.pivot_failures(systems, diag, fails, par);
        }
        let one = |k: usize| {
            let s = systems[k];
            let (l0, stride) = self.diag_strided(k);
            let bad = l0.iter().step_by(stride).zip(&diag[s * n..(s + 1) * n]).position(|(&p, &d)| fails(p, d));
            bad.map(|column| PivotFailure { system: s, column })
        };
        let Store::Packed(p) = &self.store else {
            return (0..systems.len()).into_par_iter().with_min_len(min_len(par, systems.len())).filter_map(one).collect();
        };
        let (lanes, w) = (p.lanes, self.kd() + 1);
        let full = self.batch() / lanes;
        let len = n * w * lanes;
        // A packed factor holds every system of the batch (`systems[k] == k`).
        debug_assert!(systems.iter().enumerate().all(|(k, &s)| k == s));
        let mut out: Vec<PivotFailure> = p.data[..full * len]
            .par_chunks(len)
            .enumerate()
            .with_min_len(min_len(par, full.max(1)))
            .flat_map_iter(|(q, pack)| {
                let mut first = vec![None; lanes];
                for j in 0..n {
                    let row = &pack[j * w * lanes..j * w * lanes + lanes];
                    for (l, (&p, f)) in row.iter().zip(first.iter_mut()).enumerate() {
                        if f.is_none() && fails(p, diag[(q * lanes + l) * n + j]) {
                            *f = Some(j);
                        }
                    }
                }
                first.into_iter().enumerate().filter_map(move |(l, f)| f.map(|column| PivotFailure { system: q * lanes + l, column }))
            })
            .collect();
        out.extend((full * lanes..self.batch()).filter_map(one));
        out
    }
    fn shape(&self) -> (usize, usize, usize) {
        match &self.store {
            Store::Band(l) => (l.batch(), l.n(), l.kd()),
            Store::Packed(p) => p.shape(),
            Store::Partitioned(p) => (p.a.batch(), p.a.n(), p.a.kd()),
        }
    }
    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.shape().0
    }
    /// Order of each system.
    pub fn n(&self) -> usize {
        self.shape().1
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.shape().2
    }

    /// Solves `A_s X_s = B_s` for every system: `b` is `(batch, n, nrhs)` (owned or borrowed),
    /// the result too, in new storage ([`solve_in_place`](Self::solve_in_place) writes into
    /// `b` instead).
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`] (`rhs`), [`Error::NonFinite`]
    /// (`rhs`), [`Error::Overflow`] (`x`: a solution beyond the largest finite value; both checks
    /// only if `params.check_finite()`, then `x` is scanned once more, O(n·nrhs) per system),
    /// [`Error::InvalidArgument`] (the result cannot be allocated).
    pub fn solve<S: AsRef<[T]>>(&self, b: &BatchMatrix<T, S>, params: &Params) -> Result<BatchMatrix<T>> {
        let mut x = b.to_owned()?;
        self.solve_in_place(&mut x, params)?;
        Ok(x)
    }

    /// [`solve`](Self::solve) overwriting `b` with the solution (also on [`Error::Overflow`]:
    /// `b` then holds it, overflowed entries included).
    pub fn solve_in_place<S: AsRef<[T]> + AsMut<[T]>>(&self, b: &mut BatchMatrix<T, S>, params: &Params) -> Result<()> {
        b.expect_systems("rhs", self.batch(), self.n())?;
        if params.check_finite() {
            b.check_finite_par("rhs", params.par())?;
        }
        let nrhs = b.cols();
        self.solve_storage(b.as_mut_slice(), nrhs, false, params, Sweep::Both)?;
        if params.check_finite() {
            b.check_finite_par("x", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(())
    }

    /// Solves the `batch` right-hand sides in `rhs` (`n × nrhs` each: row-major, or with
    /// `rhs_packed` the full packs interleaved with this factor's lanes) in place. Unchecked;
    /// errors only if a partitioned factor's scratch cannot be allocated. Only the
    /// substitutions of `sweep` (a partitioned factor runs them all: its callers never ask it
    /// for one).
    fn solve_storage(&self, rhs: &mut [T], nrhs: usize, rhs_packed: bool, params: &Params, sweep: Sweep) -> Result<()> {
        let (n, kd) = (self.n(), self.kd());
        let job = Batch { batch: self.batch(), dims: Dims { n, kd, nrhs }, rhs, par: params.par() };
        // The kernels that made the factor, unless `params` names another fast kernel.
        let isa = self.made.map(|made| Isa::of(params.kernel()).unwrap_or(made));
        match (&self.store, isa) {
            (Store::Band(l), None) => solve_band(Plan { isa: Isa::Portable, lanes: 1, reference: true }, l.as_slice(), job, sweep),
            (Store::Band(l), Some(isa)) => {
                let lanes = pack_lanes::<T>(self.batch(), kd, &params.with_kernel(isa.kernel()));
                solve_band(Plan { isa, lanes, reference: false }, l.as_slice(), job, sweep)
            }
            (Store::Packed(p), isa) => p.solve(isa.unwrap_or(p.isa), job, rhs_packed, sweep),
            (Store::Partitioned(p), _) => {
                debug_assert_eq!(sweep, Sweep::Both);
                return p.solve(job.rhs, nrhs, params);
            }
        }
        Ok(())
    }

    /// The substitutions of `sweep` for the `batch` right-hand sides in `rhs` (row-major
    /// `n × nrhs` each), in place, unchecked: `L⁻¹B`, `L⁻ᵀB` or `A⁻¹B`. Not for a partitioned
    /// factor (whose `L` is not one band).
    pub(crate) fn solve_sweep(&self, rhs: &mut [T], nrhs: usize, params: &Params, sweep: Sweep) -> Result<()> {
        self.solve_storage(rhs, nrhs, false, params, sweep)
    }

    /// `L_s[j + d, j]` (`s < batch`, `j + d < n`), from either storage. Not for a partitioned
    /// factor (it gives the matrix's own entry there).
    pub(crate) fn entry(&self, s: usize, j: usize, d: usize) -> T {
        let (l0, stride) = self.diag_strided(s);
        l0[j * stride + d * (stride / (self.kd() + 1))]
    }

    /// `log det A_s = 2 Σ_j log L_s[j, j]` for every system (`batch` values). Cost O(n).
    pub fn logdet(&self) -> Vec<T> {
        match &self.store {
            Store::Band(l) => l.as_slice().chunks_exact(l.system_len()).map(|l| logdet_system(l, self.n(), self.kd())).collect(),
            Store::Packed(p) => {
                // `logdet_system`'s sum, in the same order.
                let two = T::one() + T::one();
                (0..self.batch())
                    .map(|s| {
                        let (l0, stride) = p.diag_strided(s);
                        two * l0.iter().step_by(stride).map(|x| x.ln()).sum::<T>()
                    })
                    .collect()
            }
            Store::Partitioned(p) => p.logdet(),
        }
    }

    /// The backward (vector–Jacobian product) of `X = A⁻¹ B`.
    ///
    /// Given the forward solution `x` and `grad_x` = ∂ℓ/∂X (both `(batch, n, nrhs)`), returns
    /// ∂ℓ/∂B = Λ = A⁻¹ ∂ℓ/∂X (one more solve with this factor) and, for the stored lower band,
    /// `∂ℓ/∂a_ij = −Σ_r (Λ[i,r] X[j,r] + Λ[j,r] X[i,r])` for `i > j` and
    /// `∂ℓ/∂a_jj = −Σ_r Λ[j,r] X[j,r]` (the symmetric convention: an off-diagonal stored entry
    /// stands for both `A[i,j]` and `A[j,i]`). Nothing outside the band is formed. When the loss
    /// also depends on [`logdet`](Self::logdet), see
    /// [`backward_with_logdet`](Self::backward_with_logdet).
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`] (`x`, `grad_x`),
    /// [`Error::NonFinite`] (`x`, `grad_x`), [`Error::Overflow`] (`grad_rhs`, `grad_ab`: a
    /// gradient beyond the largest finite value); the finiteness checks only if
    /// `params.check_finite()`.
    pub fn backward<S1: AsRef<[T]>, S2: AsRef<[T]>>(&self, x: &BatchMatrix<T, S1>, grad_x: &BatchMatrix<T, S2>, params: &Params) -> Result<SolveGrads<T>> {
        self.backward_impl(x, grad_x, None, params)
    }

    /// The backward of a loss that depends on both the solution `X = A⁻¹B` and
    /// `log det A` (e.g. a Gaussian log-likelihood `−½ bᵀA⁻¹b − ½ log det A`), in one pass:
    /// [`backward`](Self::backward)'s gradients plus `grad_logdet[s]`·∂ log det A_s/∂(band), that
    /// is `grad_ab` gains `grad_logdet[s]·(A⁻¹)[j,j]` on the diagonal and
    /// `2·grad_logdet[s]·(A⁻¹)[i,j]` below it (the symmetric convention of `backward`), from
    /// [`inverse_band`](Self::inverse_band) written straight into `grad_ab`.
    ///
    /// `grad_logdet`: ∂ℓ/∂ log det A_s, one per system. Cost: `backward` + `inverse_band`.
    /// Errors: those of `backward`; [`Error::Shape`] (`grad_logdet` not of length `batch`),
    /// [`Error::NonFinite`] (`grad_logdet`, if `params.check_finite()`).
    pub fn backward_with_logdet<S1: AsRef<[T]>, S2: AsRef<[T]>>(
        &self,
        x: &BatchMatrix<T, S1>,
        grad_x: &BatchMatrix<T, S2>,
        grad_logdet: &[T],
        params: &Params,
    ) -> Result<SolveGrads<T>> {
        self.check_grad_logdet(grad_logdet, params)?;
        self.backward_impl(x, grad_x, Some(grad_logdet), params)
    }

    /// The entries of `A_s⁻¹` inside the band, for every system, in the layout of the input
    /// [`BandBatch`] (`(A_s⁻¹)[j+d, j]` where the input had `A_s[j+d, j]`; convert with
    /// [`BandBatch::to_lower_band`]). Selected inversion (the Takahashi recurrence) from the
    /// factor, last column first; the packs of a factor kept as packs are inverted as packs.
    ///
    /// This is the marginal variance/covariance band of a Gaussian with precision `A`, and the
    /// gradient of `log det A` (see [`logdet_backward`](Self::logdet_backward)).
    ///
    /// Cost per system: `2·n·kd²` flops for `kd ≪ n` (about twice the factorization), O(n·kd)
    /// memory; nothing outside the band is formed. Errors: [`Error::InvalidArgument`] (the
    /// result cannot be allocated); [`Error::Overflow`] (`inverse_band`: an entry beyond the
    /// largest finite value, a nearly singular matrix; checked if `params.check_finite()`).
    pub fn inverse_band(&self, params: &Params) -> Result<BandBatch<T>> {
        let z = self.inverse_band_unchecked(params)?;
        if params.check_finite() {
            z.check_finite_par("inverse_band", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(z)
    }

    /// [`inverse_band`](Self::inverse_band) into `out`, a batch of this factor's shape (any
    /// contents: every element is written, zeros below the matrix), so that a caller inverting
    /// repeatedly reuses one output and pays no fresh pages (at kd 4, a third of
    /// `inverse_band`'s time).
    ///
    /// Errors: [`Error::Shape`] (`out` not `(batch, kd + 1, n)` of this factor);
    /// [`Error::Overflow`] as `inverse_band` (then `out` holds the raw result).
    pub fn inverse_band_into(&self, out: &mut BandBatch<T>, params: &Params) -> Result<()> {
        let (batch, n, kd) = self.shape();
        if (out.batch(), out.n(), out.kd()) != (batch, n, kd) {
            return Err(Error::shape("out", fmt_shape(&[batch, kd + 1, n]), fmt_shape(&[out.batch(), out.kd() + 1, out.n()])));
        }
        self.inverse_band_write(out, params)?;
        if params.check_finite() {
            out.check_finite_par("inverse_band", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(())
    }

    /// [`inverse_band`](Self::inverse_band) without the finiteness check of the result.
    fn inverse_band_unchecked(&self, params: &Params) -> Result<BandBatch<T>> {
        let (batch, n, kd) = self.shape();
        let mut z = BandBatch::zeros(batch, n, kd)?;
        self.inverse_band_write(&mut z, params)?;
        Ok(z)
    }

    /// Writes the band of every `A_s⁻¹` into `z` (this factor's shape), unchecked; errors only
    /// if a partitioned factor's scratch cannot be allocated.
    fn inverse_band_write(&self, z: &mut BandBatch<T>, params: &Params) -> Result<()> {
        let (batch, n, kd) = self.shape();
        let isa = Isa::of(params.kernel());
        match &self.store {
            Store::Band(l) => inverse::inverse_band_systems(isa.unwrap_or(Isa::Portable), l.as_slice(), z.as_mut_slice(), batch, Dims { n, kd, nrhs: 0 }, params.par()),
            Store::Packed(p) => p.inverse_band(isa.unwrap_or(p.isa), z.as_mut_slice(), params.par()),
            Store::Partitioned(p) => return p.inverse_band(z.as_mut_slice(), params),
        }
        Ok(())
    }

    /// The gradient of `Σ_s grad_logdet[s]·log det A_s` with respect to the stored lower band of
    /// each `A_s`: `grad_logdet[s]·(A_s⁻¹)[j,j]` on the diagonal and `2·grad_logdet[s]·(A_s⁻¹)[i,j]`
    /// for `i > j` (an off-diagonal stored entry stands for both `A[i,j]` and `A[j,i]`, as in
    /// [`backward`](Self::backward)), in the input's [`BandBatch`] layout.
    ///
    /// Cost: that of [`inverse_band`](Self::inverse_band). Errors: [`Error::Shape`]
    /// (`grad_logdet` not of length `batch`); [`Error::NonFinite`] (`grad_logdet`) and
    /// [`Error::Overflow`] (`grad_ab`), if `params.check_finite()`; [`Error::InvalidArgument`]
    /// (the result cannot be allocated).
    pub fn logdet_backward(&self, grad_logdet: &[T], params: &Params) -> Result<BandBatch<T>> {
        self.check_grad_logdet(grad_logdet, params)?;
        let mut g = self.inverse_band_unchecked(params)?;
        let (len, w) = (g.system_len(), self.kd() + 1);
        if len > 0 {
            let n = self.n();
            g.as_mut_slice().par_chunks_mut(len).zip(grad_logdet).with_min_len(min_len(params.par(), self.batch())).for_each(|(z, &c)| {
                for (j, col) in z.chunks_exact_mut(w).enumerate() {
                    col[0] = c * col[0];
                    // Only the entries inside the matrix: those below it stay +0 (scaling them
                    // would store −0 for c < 0, and NaN where 2c overflows).
                    for v in &mut col[1..w.min(n - j)] {
                        *v = (c + c) * *v;
                    }
                }
            });
        }
        if params.check_finite() {
            g.check_finite_par("grad_ab", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(g)
    }

    /// Errors unless `grad_logdet` has one finite value per system (finiteness only if
    /// `params.check_finite()`).
    fn check_grad_logdet(&self, grad_logdet: &[T], params: &Params) -> Result<()> {
        if grad_logdet.len() != self.batch() {
            return Err(Error::shape("grad_logdet", format!("({},)", self.batch()), format!("({},)", grad_logdet.len())));
        }
        if params.check_finite()
            && let Some(s) = first_non_finite(grad_logdet)
        {
            return Err(Error::NonFinite { arg: "grad_logdet", index: vec![s], value: fmt_value(grad_logdet[s]) });
        }
        Ok(())
    }

    /// [`backward`](Self::backward), with `logdet`'s gradient added when given (checked).
    fn backward_impl<S1: AsRef<[T]>, S2: AsRef<[T]>>(
        &self,
        x: &BatchMatrix<T, S1>,
        grad_x: &BatchMatrix<T, S2>,
        logdet: Option<&[T]>,
        params: &Params,
    ) -> Result<SolveGrads<T>> {
        x.expect_systems("x", self.batch(), self.n())?;
        grad_x.expect_shape("grad_x", x.shape())?;
        if params.check_finite() {
            x.check_finite_par("x", params.par())?;
            grad_x.check_finite_par("grad_x", params.par())?;
        }
        let lambda = self.solve(grad_x, &params.with_check_finite(false))?;
        let (n, kd, nrhs) = (self.n(), self.kd(), x.cols());
        let mut ab = match logdet {
            Some(_) => self.inverse_band_unchecked(params)?,
            None => BandBatch::zeros(self.batch(), n, kd)?,
        };
        let len = ab.system_len();
        let dims = Dims { n, kd, nrhs };
        if len > 0 {
            // Blocks of columns (of one system each), so that one long system runs in parallel.
            let cols = GRADIENT_COLUMNS.min(n);
            let blocks: Vec<(usize, usize, &mut [T])> = ab
                .as_mut_slice()
                .chunks_mut(len)
                .enumerate()
                .flat_map(|(s, g)| g.chunks_mut(cols * (kd + 1)).enumerate().map(move |(b, g)| (s, b * cols, g)))
                .collect();
            let (xs, ls) = (x.as_slice(), lambda.as_slice());
            let count = blocks.len();
            blocks.into_par_iter().with_min_len(min_len(params.par(), count)).for_each(|(s, j0, g)| {
                let sys = s * n * nrhs..(s + 1) * n * nrhs;
                band_gradient_columns(&xs[sys.clone()], &ls[sys], dims, g, j0, logdet.map(|c| c[s]));
            });
        }
        if params.check_finite() {
            lambda.check_finite_par("grad_rhs", params.par()).map_err(Error::into_overflow)?;
            ab.check_finite_par("grad_ab", params.par()).map_err(Error::into_overflow)?;
        }
        Ok(SolveGrads { rhs: lambda, ab })
    }
}
