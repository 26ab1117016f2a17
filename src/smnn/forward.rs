//! The forward: `M = AᵀA` assembled straight into the factor's storage (in packs, window by
//! window inside the factorization, or per system in the band layout), factored with the
//! relative pivot test, and `u = M⁻¹ Aᵀβ` solved in the same pass.

use rayon::prelude::*;

use crate::alloc::{resized_par, zeroed_vec_par};
use crate::band::lanes::with_lanes;
use crate::band::{BandBatch, BatchMatrix};
use crate::error::{Error, PivotFailure, Result};
use crate::llt::{Batch, Cholesky, Dims, PartialCholesky, Plan};
use crate::par::{Par, min_len};
use crate::params::Params;
use crate::scalar::{Real, fmt_value};

use super::assemble::{PackAssembler, Sys};
use super::{Inputs, Lhs, Smnn};

/// Where [`Smnn::assemble_bands`] writes: the band-layout storage of some systems' `M` and their
/// diagonals (`n` per system).
struct Normal<'a, T> {
    band: &'a mut [T],
    diag: &'a mut [T],
}

/// The result of [`Smnn::forward`]: the trajectory `u` and what the backward needs (the
/// factor of `M` and the borrowed inputs).
#[derive(Clone, Debug)]
pub struct Forward<'a, T> {
    pub(super) layer: Smnn,
    pub(super) inputs: Inputs<'a, T>,
    pub(super) factor: Cholesky<T>,
    pub(super) u: Vec<T>,
    /// `batch·n` elements of storage: the diagonal of `M` in this forward, then `λ` in each
    /// [`backward_into`](Self::backward_into), then the next forward's (see [`Workspace`]).
    pub(super) spare: Vec<T>,
}

/// Storage one forward leaves for the next ([`Forward::into_workspace`] →
/// [`Smnn::forward_with`]): the factor's band (`batch·n·(kd+1)` elements) and two `batch·n`
/// vectors. Empty when new; any layer's forward can use any workspace (storage too small for
/// its shape is replaced).
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    band: Vec<T>,
    u: Vec<T>,
    diag: Vec<T>,
}

impl<T> Workspace<T> {
    /// An empty workspace (nothing allocated).
    pub fn new() -> Self {
        Self { band: Vec::new(), u: Vec::new(), diag: Vec::new() }
    }

    /// Elements held (capacity), over all its buffers.
    pub fn capacity(&self) -> usize {
        self.band.capacity() + self.u.capacity() + self.diag.capacity()
    }
}

impl<T: Real> Workspace<T> {
    /// A workspace holding the storage of `factor` (its `batch·n·(kd+1)` elements), for a
    /// framework that keeps the factor of [`Forward::into_parts`] until its backward and then
    /// drops it: the next [`Smnn::forward_with`] assembles and factors in that storage instead
    /// of a fresh allocation (the other two vectors are allocated by that forward). O(1).
    pub fn from_factor(factor: Cholesky<T>) -> Self {
        Self { band: factor.into_storage(), u: Vec::new(), diag: Vec::new() }
    }
}

impl<T> Default for Workspace<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, T: Real> Forward<'a, T> {
    /// `u`, shape `(batch, T, D, O)`, row-major.
    pub fn u(&self) -> &[T] {
        &self.u
    }
    /// The Cholesky factor of the normal matrices `M_s = L_s L_sᵀ` (order [`Smnn::n`], bandwidth
    /// [`Smnn::kd`]; unknown `(t, d, o)` is row `(t·D + d)·O + o`).
    pub fn factor(&self) -> &Cholesky<T> {
        &self.factor
    }
    /// The layer.
    pub fn layer(&self) -> &Smnn {
        &self.layer
    }
    /// The inputs of the forward.
    pub fn inputs(&self) -> Inputs<'a, T> {
        self.inputs
    }
    /// Consumes `self`, returning `u` and the factor (e.g. to keep them in a framework's op and
    /// call [`Smnn::backward`] later).
    pub fn into_parts(self) -> (Vec<T>, Cholesky<T>) {
        (self.u, self.factor)
    }

    /// Consumes `self` (after the [`backward`](Self::backward), typically), keeping its storage
    /// (`u`'s, the factor's and a scratch vector) for the next [`Smnn::forward_with`].
    pub fn into_workspace(self) -> Workspace<T> {
        Workspace { band: self.factor.into_storage(), u: self.u, diag: self.spare }
    }
}

impl Smnn {

    pub(super) fn sys<'a, T>(&self, x: &Inputs<'a, T>, s: usize) -> Sys<'a, T> {
        let [cl, rl, vl, _, _] = self.system_lens();
        Sys { c: &x.coefficients[s * cl..(s + 1) * cl], r: &x.rhs_equation[s * rl..(s + 1) * rl], v: &x.init_vars[s * vl..(s + 1) * vl] }
    }

    /// Assembles and factors `M` for checked `coefficients` and `steps`.
    ///
    /// A system fails ([`Error::NotPositiveDefinite`](crate::Error::NotPositiveDefinite)) when a pivot `d_j = M_jj − Σ_k L_jk²` is
    /// not above `2(kd+1)·ε·M_jj`: the rounding error of that difference is up to
    /// `≈ (kd+1)·ε·M_jj`, so such a pivot is noise, and since `d_j/M_jj ≥ 1/κ₂(M)` it can only
    /// happen for `κ₂(M) ≳ 1/(2(kd+1)ε)`, where `u` would have no correct digit. (Exactly
    /// singular normal matrices otherwise often factor "successfully" with pivots of order ε.)
    ///
    /// With `rhs`, also solves it in place in the same pass ([`Cholesky::factor_solve`]). The
    /// band is built in `ws.band`'s storage (moved into the factor) and the diagonal of `M` in
    /// `ws.diag` (left there).
    pub(super) fn factor_unchecked<T: Real>(&self, lhs: Lhs<'_, T>, rhs: Option<&mut BatchMatrix<T>>, ws: &mut Workspace<T>, params: &Params) -> Result<Cholesky<T>> {
        let (batch, n, kd) = (self.batch, self.n(), self.kd);
        let total = BandBatch::<T>::checked_len(batch, n, kd)?;
        // Any contents: the assembly zeroes each column before it adds to it.
        let mut data = resized_par("ab", std::mem::take(&mut ws.band), total, batch, params.par())?;
        // The diagonal of M, for the relative pivot test, taken while the system is in cache.
        ws.diag = resized_par("u", std::mem::take(&mut ws.diag), batch * n, batch, params.par())?;
        let par = params.par();
        let plan = Plan::new::<T>(batch, kd, params);
        // Packs, unless the systems are split in chunks (long systems in a small batch, or
        // forced: `Params::partitions`), which needs them in the band layout.
        let split = crate::band::partitions::<T>(batch, n, kd, params) > 1;
        let out = if plan.lanes > 1 && !split {
            // M assembled straight into the packed layout and factored there, in place.
            let (rhs, nrhs) = match rhs {
                Some(r) => {
                    let nrhs = r.cols();
                    (r.as_mut_slice(), nrhs)
                }
                None => (&mut [][..], 0),
            };
            let job = Batch { batch, dims: Dims { n, kd, nrhs }, rhs, par };
            with_lanes!(plan.lanes, L => self.factor_packs::<T, L>(plan, lhs, data, &mut ws.diag, job))?
        } else {
            self.assemble_bands(lhs, Normal { band: &mut data, diag: &mut ws.diag }, par);
            Cholesky::factor_partial_solve(BandBatch::from_parts(batch, n, kd, data), rhs.map(|r| r.view_mut()), &params.with_check_finite(false))?
        };
        let diag = &ws.diag;
        let tol = T::from_f64(2.0 * (kd as f64 + 1.0)) * T::epsilon();
        let mut failures = out.failures;
        if let Some(f) = &out.factor {
            failures.extend(f.relative_pivot_failures(&out.systems, diag, tol, params.par()));
        }
        match out.factor {
            Some(f) if failures.is_empty() => Ok(f),
            _ => {
                failures.sort_by_key(|f| f.system);
                if params.check_finite()
                    && let Some(e) = overflowed_pivot(&failures, diag, n)
                {
                    return Err(e);
                }
                let first = failures.first().copied().unwrap_or(PivotFailure { system: 0, column: 0 });
                Err(Error::NotPositiveDefinite { system: first.system, column: first.column, failures })
            }
        }
    }

}

/// [`Error::Overflow`] of `normal_matrix` at the first of the (system-sorted) `failures` whose
/// diagonal entry of `M` (`diag`, `n` per system) is not finite: a pivot failure there is the
/// inputs' size overflowing the precision, not a singular system. `None` if there is none.
pub(crate) fn overflowed_pivot<T: Real>(failures: &[PivotFailure], diag: &[T], n: usize) -> Option<Error> {
    let f = failures.iter().find(|f| !diag[f.system * n + f.column].is_finite())?;
    let value = fmt_value(diag[f.system * n + f.column]);
    Some(Error::Overflow { arg: "normal_matrix", index: vec![f.system, f.column, f.column], value })
}

impl Smnn {
    /// Assembles `M` of the systems of `lhs` (as many as `out.band` holds, band layout) in
    /// parallel, with their diagonals into `out.diag` (`n` per system).
    fn assemble_bands<T: Real>(&self, lhs: Lhs<'_, T>, out: Normal<'_, T>, par: Par) {
        let (n, kd) = (self.n(), self.kd);
        let [cl, _, _, hl, _] = self.system_lens();
        let systems = out.diag.len() / n.max(1);
        let chunks = out.band.par_chunks_mut(n * (kd + 1)).zip(out.diag.par_chunks_mut(n));
        chunks.enumerate().with_min_len(min_len(par, systems)).for_each(|(s, (m, dg))| {
            self.assemble_lhs(&lhs.coefficients[s * cl..(s + 1) * cl], &lhs.steps[s * hl..(s + 1) * hl], m);
            for (d, &x) in dg.iter_mut().zip(m.iter().step_by(kd + 1)) {
                *d = x;
            }
        });
    }

    /// Assembles and factors `M` of every system in packs of `L` systems (the lanes of `plan`):
    /// each pack's window of columns is assembled ([`PackAssembler`]) just before the
    /// factorization takes it, in cache, so the storage `data` (any contents) is written once;
    /// the other `batch % L` systems are assembled in the band layout first. Their diagonals go
    /// to `diag` (`n` per system) for the pivot test; `job.rhs` is solved in the same pass.
    fn factor_packs<'d, T: Real, const L: usize>(&self, plan: Plan, lhs: Lhs<'_, T>, data: Vec<T>, diag: &'d mut [T], job: Batch<'_, T>) -> Result<PartialCholesky<T>> {
        let (n, w) = (self.n(), self.kd + 1);
        let [cl, _, _, hl, _] = self.system_lens();
        let full = self.batch / L;
        let (gf, gt) = diag.split_at_mut(full * L * n);
        let mut data = data;
        let tail = Lhs { coefficients: &lhs.coefficients[full * L * cl..], steps: &lhs.steps[full * L * hl..] };
        self.assemble_bands(tail, Normal { band: &mut data[full * L * n * w..], diag: gt }, job.par);
        // Each full pack gets its own share of the diagonals.
        let sides = crate::llt::pieces(gf, n * L, full);
        let make_fill = |p: usize, dg: &'d mut [T]| {
            let h: [&[T]; L] = std::array::from_fn(|l| &lhs.steps[(p * L + l) * hl..(p * L + l + 1) * hl]);
            let mut asm = PackAssembler::new(self, &lhs.coefficients[p * L * cl..(p + 1) * L * cl], h, plan.isa);
            move |pack: &mut [[T; L]], upto: usize| {
                let from = asm.done();
                asm.fill(pack, upto);
                for j in from..asm.done() {
                    let row = pack[j * w];
                    for (lane, &x) in row.iter().enumerate() {
                        dg[lane * n + j] = x;
                    }
                }
            }
        };
        Cholesky::factor_filled::<L, _, _, _>(plan, data, job, sides, &make_fill)
    }

    /// Solves `M x = b` for one right-hand side per system (`b` is `(batch, T, D, O)`), then
    /// checks that the solution is finite (it can overflow for extreme inputs).
    pub(super) fn solve_vec<T: Real>(&self, factor: &Cholesky<T>, b: Vec<T>, arg: &'static str, params: &Params) -> Result<Vec<T>> {
        let mut x = BatchMatrix::named(arg, b, self.batch, self.n(), 1)?;
        factor.solve_in_place(&mut x, &params.with_check_finite(false))?;
        self.finite(arg, x.into_vec(), params)
    }

    /// The result `x` (shaped like `u`), or an error naming `arg` at its first NaN or ±∞:
    /// [`Error::Overflow`](crate::Error::Overflow) if `params.check_finite()` (the inputs were
    /// checked: the result overflowed), [`Error::NonFinite`](crate::Error::NonFinite) otherwise.
    pub(super) fn finite<T: Real>(&self, arg: &'static str, x: Vec<T>, params: &Params) -> Result<Vec<T>> {
        Self::check_result(arg, &x, &self.u_shape(), params)?;
        Ok(x)
    }

    /// `Aᵀβ` for checked inputs, `(batch, T, D, O)` as one right-hand side per system.
    /// Built in `storage` (reused when large enough).
    pub(super) fn assemble_rhs_batch<T: Real>(&self, x: &Inputs<'_, T>, storage: Vec<T>, params: &Params) -> Result<BatchMatrix<T>> {
        let n = self.n();
        let mut rhs = zeroed_vec_par::<T>("u", storage, self.batch * n, self.batch, params.par())?;
        rhs.par_chunks_mut(n).enumerate().with_min_len(min_len(params.par(), self.batch)).for_each(|(s, b)| {
            let sys = self.sys(x, s);
            self.assemble_rhs(sys.c, sys.r, sys.v, b)
        });
        BatchMatrix::named("u", rhs, self.batch, n, 1)
    }

    /// `u = M⁻¹ Aᵀβ` for checked inputs, with `M` already factored.
    pub(super) fn solve_u<T: Real>(&self, factor: &Cholesky<T>, x: &Inputs<'_, T>, params: &Params) -> Result<Vec<T>> {
        self.solve_vec(factor, self.assemble_rhs_batch(x, Vec::new(), params)?.into_vec(), "u", params)
    }

    /// The forward: checks the inputs, assembles `M = AᵀA` and `Aᵀβ` per system, factors `M`
    /// (banded Cholesky, bandwidth [`kd`](Self::kd)) and solves for `u` `(batch, T, D, O)`.
    ///
    /// Cost per system O(T·(E·b² + D·O²·K) + n·kd²); memory O(n·kd) per system (the factor,
    /// kept in the returned [`Forward`] for the backward).
    ///
    /// Errors: [`Error::Shape`](crate::Error::Shape) (an input's length does not match its shape);
    /// [`Error::NonFinite`](crate::Error::NonFinite) (an input holds NaN or ±∞, if `params.check_finite()`;
    /// or, without that check, `u` is not finite); [`Error::Overflow`](crate::Error::Overflow) (with the check:
    /// `u` overflowed, or `normal_matrix` — a diagonal entry of `M`, index `(system, unknown, unknown)`
    /// — did, from inputs too large for the precision);
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) (`steps`: a step size ≤ 0; a weight whose square
    /// overflows `T`);
    /// [`Error::NotPositiveDefinite`](crate::Error::NotPositiveDefinite) (the normal matrix of a system is numerically singular or
    /// indefinite: a Cholesky pivot is not above `2(kd+1)·ε` times its diagonal entry, which
    /// implies `κ₂(M) ≳ 1/(2(kd+1)ε)`; every failing system is listed, `column` is the unknown
    /// `(t·D + d)·O + o`).
    pub fn forward<'a, T: Real>(&self, inputs: Inputs<'a, T>, params: &Params) -> Result<Forward<'a, T>> {
        self.forward_with(inputs, params, Workspace::new())
    }

    /// [`forward`](Self::forward) in the storage of an earlier forward
    /// ([`Forward::into_workspace`]): the factor's `batch·n·(kd+1)` elements and two `batch·n`
    /// vectors are reused instead of allocated, so a training loop that calls the layer
    /// repeatedly does not page-fault (and have the OS zero) ~`8·batch·n·(kd+3)` fresh bytes
    /// per call (an eighth of a forward+backward of 128 systems of T = 1000, D = O = E = 3).
    /// Storage that is too small (another shape) is replaced; on an error it is
    /// freed. Results are bitwise those of [`forward`](Self::forward).
    ///
    /// Errors: as [`forward`](Self::forward).
    pub fn forward_with<'a, T: Real>(&self, inputs: Inputs<'a, T>, params: &Params, mut workspace: Workspace<T>) -> Result<Forward<'a, T>> {
        self.check_inputs(&inputs, params)?;
        // `Aᵀβ` first, so that the factorization solves it in the same pass.
        let mut rhs = self.assemble_rhs_batch(&inputs, std::mem::take(&mut workspace.u), params)?;
        let lhs = Lhs { coefficients: inputs.coefficients, steps: inputs.steps };
        let factor = self.factor_unchecked(lhs, Some(&mut rhs), &mut workspace, params)?;
        let u = self.finite("u", rhs.into_vec(), params)?;
        Ok(Forward { layer: *self, inputs, factor, u, spare: workspace.diag })
    }
}
