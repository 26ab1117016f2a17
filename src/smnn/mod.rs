//! The S-MNN layer (DESIGN §3): a least-squares ODE solve that turns per-step ODE coefficients
//! into a trajectory, and its gradients, in O(T) time and memory.
//!
//! # The problem
//!
//! Per system `s` of the batch, the unknowns `u[t, d, o]` are the `o`-th derivative of variable
//! `d` at step `t` (`t < T`, `d < D`, `o < O`). Weighted least-squares rows `A u ≈ β`:
//!
//! 1. equations (`w_eq`): `Σ_{d,o} C[t,e,d,o] u[t,d,o] = r[t,e]` for every `t`, `e < E`;
//! 2. initial values (`w_init`): `u[t,d,o] = v[t,d,o]` for `t < S`, `o < I`;
//! 3. Taylor smoothness (`w_s`), for `t < T−1`, `k < K` (`K = O − 1` with `central`, else `O`):
//!    `Σ_{o≥k} h_t^o/(o−k)! u[t,d,o] − h_t^k u[t+1,d,k] = 0` and
//!    `Σ_{o≥k} (−h_t)^o/(o−k)! u[t+1,d,o] − (−h_t)^k u[t,d,k] = 0`;
//! 4. central smoothness (`w_s`, only with `central`), for `t < T−2`, `H = h_t + h_{t+1}`:
//!    `H^{O−3} u[t,d,O−2] + H^{O−2} u[t+1,d,O−1] − H^{O−3} u[t+2,d,O−2] = 0`.
//!
//! The output is `u = M⁻¹ Aᵀβ` with `M = AᵀA`, shape `(batch, T, D, O)`. `M` (lower bandwidth
//! [`Smnn::kd`]) is assembled straight into the storage the batched Cholesky factors it in:
//! for batches of at least one pack, `L` systems at a time in the lane-interleaved layout, a
//! window of columns just before the factorization takes it (so each window is assembled,
//! factored and forward-substituted while in cache, and the storage written once); otherwise
//! the band layout of [`BandBatch`]. `A` is never formed. Repeated calls can reuse the
//! storage of the previous one ([`Smnn::forward_with`], [`Workspace`]).
//!
//! # Use
//!
//! ```
//! use banded::smnn::{InputShapes, Inputs, Options, Smnn};
//! use banded::Params;
//!
//! // One system, T = 5 steps, one equation u' = −u (E = D = 1, O = 2), u(0) = 1.
//! let (t, o) = (5, 2);
//! let coefficients: Vec<f64> = [1.0, 1.0].repeat(t); // (1, T, 1, 1, 2): u + u' = 0
//! let rhs_equation = vec![0.0; t];                  // (1, T, 1)
//! let init_vars = vec![1.0];                        // (1, 1, 1, 1)
//! let steps = vec![0.1];                            // (1, 1): broadcast over the T − 1 steps
//! let layer = Smnn::new(
//!     Options::default(),
//!     InputShapes { coefficients: &[1, t, 1, 1, o], rhs_equation: &[1, t, 1], init_vars: &[1, 1, 1, 1], steps: &[1, 1] },
//! )?;
//! let inputs = Inputs { coefficients: &coefficients, rhs_equation: &rhs_equation, init_vars: &init_vars, steps: &steps };
//! let params = Params::default();
//! let fwd = layer.forward(inputs, &params)?;
//! assert_eq!(fwd.u().len(), t * o); // (1, T, 1, 2)
//! let grads = fwd.backward(&vec![1.0; t * o], &params)?; // ℓ = Σ u
//! assert_eq!(grads.steps.len(), 1); // summed over the broadcast axis
//! # Ok::<(), banded::Error>(())
//! ```
//!
//! Costs per system (`n = T·D·O`, `kd` = [`Smnn::kd`] ≤ `2b` with `b = D·O`): assembly
//! O(T·(E·b² + D·O²·K)), factor O(n·kd²), each solve O(n·kd), backward row sums O(T·(E·b + D·O·K));
//! memory O(n·kd). Systems run in parallel under [`Params::par`](crate::Params).

mod assemble;
mod frozen;
mod grads;
mod shapes;

use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::alloc::{copy_vec, resized_par, reuse, zeroed_vec_par};
use crate::band::{BandBatch, BatchMatrix};
use crate::error::{fmt_shape, Error, PivotFailure, Result};
use crate::llt::{Batch, Cholesky, Dims, PartialCholesky, Plan};
use crate::params::Params;
use crate::band::lanes::with_lanes;
use crate::simd::Isa;
use crate::par::{min_len, Par};
use crate::scalar::{first_non_finite, fmt_value, Real};

use assemble::{PackAssembler, Sys};
use grads::PackGrads;
pub use frozen::{Frozen, FrozenGrads};
pub use shapes::{InputShapes, Options, Smnn};

/// The four input arrays of one call, row-major (C order), batch first, borrowed.
///
/// Shapes as described by the layer ([`Smnn::coefficients_shape`] etc.):
/// `coefficients` `(batch, T or 1, E, D, O)`, `rhs_equation` `(batch, T or 1, E)`,
/// `init_vars` `(batch, S, D, I)`, `steps` `(batch, T − 1 or 1)`. The layer checks the lengths,
/// finiteness (unless [`Params::check_finite`] is off) and that every step is positive.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a, T> {
    /// `C`, `(batch, T or 1, E, D, O)`.
    pub coefficients: &'a [T],
    /// `r`, `(batch, T or 1, E)`.
    pub rhs_equation: &'a [T],
    /// `v`, `(batch, S, D, I)`.
    pub init_vars: &'a [T],
    /// `h`, `(batch, T − 1 or 1)`, every entry positive.
    pub steps: &'a [T],
}

/// Gradients of a loss ℓ with respect to the four inputs, each with its input's shape and
/// layout (a broadcast step axis of size 1 receives the sum over the steps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grads<T> {
    /// ∂ℓ/∂coefficients, `(batch, T or 1, E, D, O)`.
    pub coefficients: Vec<T>,
    /// ∂ℓ/∂rhs_equation, `(batch, T or 1, E)`.
    pub rhs_equation: Vec<T>,
    /// ∂ℓ/∂init_vars, `(batch, S, D, I)`.
    pub init_vars: Vec<T>,
    /// ∂ℓ/∂steps, `(batch, T − 1 or 1)`.
    pub steps: Vec<T>,
}

/// The result of [`Smnn::forward`]: the trajectory `u` and what the backward needs (the
/// factor of `M` and the borrowed inputs).
#[derive(Debug)]
pub struct Forward<'a, T> {
    layer: Smnn,
    inputs: Inputs<'a, T>,
    factor: Cholesky<T>,
    u: Vec<T>,
    /// `batch·n` elements of storage: the diagonal of `M` in this forward, then `λ` in each
    /// backward, then the next forward's (see [`Workspace`]). Behind a lock because the
    /// backward takes `&self`; a backward that finds it taken allocates its own.
    spare: Mutex<Vec<T>>,
}

impl<T: Real> Clone for Forward<'_, T> {
    fn clone(&self) -> Self {
        let spare = self.spare.lock().map(|v| v.clone()).unwrap_or_default();
        Self { layer: self.layer, inputs: self.inputs, factor: self.factor.clone(), u: self.u.clone(), spare: Mutex::new(spare) }
    }
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
        let diag = self.spare.into_inner().unwrap_or_else(PoisonError::into_inner);
        Workspace { band: self.factor.into_storage(), u: self.u, diag }
    }

    /// The backward for the cotangent `grad_u` = ∂ℓ/∂u (`(batch, T, D, O)`): one more solve
    /// with the forward's factor and O(T) row sums. See [`Smnn::backward`].
    ///
    /// Errors: [`Error::Shape`] (`grad_u`), [`Error::NonFinite`] (`grad_u`, if
    /// `params.check_finite()`).
    pub fn backward(&self, grad_u: &[T], params: &Params) -> Result<Grads<T>> {
        let mut grads = Grads::default();
        self.backward_into(grad_u, params, &mut grads)?;
        Ok(grads)
    }

    /// [`backward`](Self::backward) into `grads`, reusing its vectors (resized to this layer's
    /// shapes; any contents on entry) and this forward's scratch for `λ`: a training loop that
    /// keeps one [`Grads`] and uses [`Smnn::forward_with`] allocates nothing per step (measured:
    /// batch 128, T = 1000, D = O = E = 3, f64 forward+backward 34.5 → 34.3 ms; the time is in
    /// the solve and the row sums, the point is a flat memory profile). On an error `grads`
    /// holds unspecified values.
    ///
    /// Errors: as [`backward`](Self::backward).
    pub fn backward_into(&self, grad_u: &[T], params: &Params, grads: &mut Grads<T>) -> Result<()> {
        let lam = self.spare.try_lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        let lam = self.layer.backward_checked(self.inputs, &self.u, &self.factor, grad_u, params, lam, grads)?;
        if let Ok(mut v) = self.spare.try_lock() {
            *v = lam;
        }
        Ok(())
    }
}

/// Multi-index of flat position `k` in a row-major array of shape `shape`.
fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = k % d;
            k /= d;
        }
    }
    idx
}

/// The left-hand-side inputs of a batch: `coefficients` and `steps`.
#[derive(Clone, Copy)]
struct Lhs<'a, T> {
    coefficients: &'a [T],
    steps: &'a [T],
}

/// What the backward's row sums read: the inputs `c`, `r`, `h`, the forward's `u` and
/// `λ = M⁻¹ ∂ℓ/∂u`, each for the whole batch.
struct GradInputs<'a, T> {
    c: &'a [T],
    r: &'a [T],
    h: &'a [T],
    u: &'a [T],
    lam: &'a [T],
}

/// The four gradient arrays of a batch (see [`Grads`]), zeroed.
struct Outputs<'a, T> {
    gc: &'a mut [T],
    gr: &'a mut [T],
    gv: &'a mut [T],
    gh: &'a mut [T],
}

/// Splits `v` into `batch` consecutive parts of `len` (works for `len == 0`).
fn split_mut<T>(v: &mut [T], len: usize, batch: usize) -> Vec<&mut [T]> {
    if len == 0 {
        (0..batch).map(|_| &mut [][..]).collect()
    } else {
        v.chunks_mut(len).collect()
    }
}

impl Smnn {
    /// Errors with [`Error::Shape`] unless `data` has the length of `shape`, then (if `finite`)
    /// with [`Error::NonFinite`] at its first NaN or infinity.
    fn check_array<T: Real>(arg: &'static str, data: &[T], shape: &[usize], finite: bool) -> Result<()> {
        let len: usize = shape.iter().product();
        if data.len() != len {
            return Err(Error::shape(arg, format!("{} = {len} elements", fmt_shape(shape)), format!("{} elements", data.len())));
        }
        if finite && let Some(k) = first_non_finite(data) {
            return Err(Error::NonFinite { arg, index: unravel(k, shape), value: fmt_value(data[k]) });
        }
        Ok(())
    }

    /// Checks `coefficients` and `steps` (lengths, finiteness, positive steps).
    fn check_lhs<T: Real>(&self, coefficients: &[T], steps: &[T], params: &Params) -> Result<()> {
        Self::check_array("coefficients", coefficients, &self.coefficients_shape(), params.check_finite())?;
        Self::check_array("steps", steps, &self.steps_shape(), params.check_finite())?;
        if let Some(k) = steps.iter().position(|&h| h.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater)) {
            let shape = self.steps_shape();
            return Err(Error::InvalidArgument {
                arg: "steps",
                reason: format!(
                    "step sizes must be positive, got {} at index {}",
                    fmt_value(steps[k]),
                    fmt_shape(&unravel(k, &shape))
                ),
            });
        }
        Ok(())
    }

    /// Checks `rhs_equation` and `init_vars`.
    fn check_rhs<T: Real>(&self, rhs_equation: &[T], init_vars: &[T], params: &Params) -> Result<()> {
        Self::check_array("rhs_equation", rhs_equation, &self.rhs_equation_shape(), params.check_finite())?;
        Self::check_array("init_vars", init_vars, &self.init_vars_shape(), params.check_finite())
    }

    fn check_inputs<T: Real>(&self, x: &Inputs<'_, T>, params: &Params) -> Result<()> {
        self.check_lhs(x.coefficients, x.steps, params)?;
        self.check_rhs(x.rhs_equation, x.init_vars, params)
    }

    fn sys<'a, T>(&self, x: &Inputs<'a, T>, s: usize) -> Sys<'a, T> {
        let [cl, rl, vl, _, _] = self.system_lens();
        Sys { c: &x.coefficients[s * cl..(s + 1) * cl], r: &x.rhs_equation[s * rl..(s + 1) * rl], v: &x.init_vars[s * vl..(s + 1) * vl] }
    }

    /// Assembles and factors `M` for checked `coefficients` and `steps`.
    ///
    /// A system fails ([`Error::NotPositiveDefinite`]) when a pivot `d_j = M_jj − Σ_k L_jk²` is
    /// not above `2(kd+1)·ε·M_jj`: the rounding error of that difference is up to
    /// `≈ (kd+1)·ε·M_jj`, so such a pivot is noise, and since `d_j/M_jj ≥ 1/κ₂(M)` it can only
    /// happen for `κ₂(M) ≳ 1/(2(kd+1)ε)`, where `u` would have no correct digit. (Exactly
    /// singular normal matrices otherwise often factor "successfully" with pivots of order ε.)
    ///
    /// With `rhs`, also solves it in place in the same pass ([`Cholesky::factor_solve`]). The
    /// band is built in `ws.band`'s storage (moved into the factor) and the diagonal of `M` in
    /// `ws.diag` (left there).
    fn factor_unchecked<T: Real>(
        &self,
        coefficients: &[T],
        steps: &[T],
        rhs: Option<&mut BatchMatrix<T>>,
        ws: &mut Workspace<T>,
        params: &Params,
    ) -> Result<Cholesky<T>> {
        let (batch, n, kd) = (self.batch, self.n(), self.kd);
        let total = BandBatch::<T>::checked_len(batch, n, kd)?;
        // Any contents: the assembly zeroes each column before it adds to it.
        let mut data = resized_par("ab", std::mem::take(&mut ws.band), total, batch, params.par())?;
        // The diagonal of M, for the relative pivot test, taken while the system is in cache.
        ws.diag = resized_par("u", std::mem::take(&mut ws.diag), batch * n, batch, params.par())?;
        let par = params.par();
        let plan = Plan::new::<T>(batch, kd, params);
        let out = if plan.lanes > 1 {
            // M assembled straight into the packed layout and factored there, in place.
            let (rhs, nrhs) = match rhs {
                Some(r) => {
                    let nrhs = r.cols();
                    (r.as_mut_slice(), nrhs)
                }
                None => (&mut [][..], 0),
            };
            let job = Batch { batch, dims: Dims { n, kd, nrhs }, rhs, par };
            let lhs = Lhs { coefficients, steps };
            with_lanes!(plan.lanes, L => self.factor_packs::<T, L>(plan, lhs, data, &mut ws.diag, job))
        } else {
            self.assemble_bands(Lhs { coefficients, steps }, 0, &mut data, &mut ws.diag, par);
            Cholesky::factor_partial_solve(BandBatch::from_parts(batch, n, kd, data), rhs, &params.with_check_finite(false))?
        };
        let diag = &ws.diag;
        let tol = T::from_f64(2.0 * (kd as f64 + 1.0)) * T::epsilon();
        let mut failures = out.failures;
        if let Some(f) = &out.factor {
            let relative: Vec<PivotFailure> = out
                .systems
                .par_iter()
                .enumerate()
                .with_min_len(min_len(params.par(), out.systems.len()))
                .filter_map(|(k, &s)| {
                    let dk = &diag[s * n..(s + 1) * n];
                    let (l0, stride) = f.diag_strided(k);
                    let bad = l0.iter().step_by(stride).zip(dk).position(|(&p, &d)| {
                        // Not `<=`: a NaN pivot fails too.
                        (p * p).partial_cmp(&(tol * d)) != Some(std::cmp::Ordering::Greater)
                    });
                    bad.map(|column| PivotFailure { system: s, column })
                })
                .collect();
            failures.extend(relative);
        }
        match out.factor {
            Some(f) if failures.is_empty() => Ok(f),
            _ => {
                failures.sort_by_key(|f| f.system);
                let first = failures.first().copied().unwrap_or(PivotFailure { system: 0, column: 0 });
                Err(Error::NotPositiveDefinite { system: first.system, column: first.column, failures })
            }
        }
    }

    /// Assembles `M` of systems `s0..` (as many as `data` holds, band layout) in parallel, with
    /// their diagonals into `diag` (`n` per system).
    fn assemble_bands<T: Real>(&self, lhs: Lhs<'_, T>, s0: usize, data: &mut [T], diag: &mut [T], par: Par) {
        let (n, kd) = (self.n(), self.kd);
        let [cl, _, _, hl, _] = self.system_lens();
        let systems = diag.len() / n.max(1);
        data.par_chunks_mut(n * (kd + 1)).zip(diag.par_chunks_mut(n)).enumerate().with_min_len(min_len(par, systems)).for_each(|(i, (m, dg))| {
            let s = s0 + i;
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
    fn factor_packs<'d, T: Real, const L: usize>(&self, plan: Plan, lhs: Lhs<'_, T>, mut data: Vec<T>, diag: &'d mut [T], job: Batch<'_, T>) -> PartialCholesky<T> {
        let (n, w) = (self.n(), self.kd + 1);
        let [cl, _, _, hl, _] = self.system_lens();
        let full = self.batch / L;
        let (gf, gt) = diag.split_at_mut(full * L * n);
        self.assemble_bands(lhs, full * L, &mut data[full * L * n * w..], gt, job.par);
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

    /// The backward's row sums of every system ([`Smnn::grads_pack`]): `L` systems at a time
    /// over the batch's packs (the lanes of [`pack_lanes`]), one at a time for the rest.
    /// Outputs zeroed on entry; without `coef_steps` only `gr` and `gv` are formed (`r`, `h`,
    /// `u`, `gc` and `gh` may be empty).
    #[allow(clippy::too_many_arguments)]
    fn grads_batch<T: Real>(&self, x: GradInputs<'_, T>, out: Outputs<'_, T>, coef_steps: bool, params: &Params) {
        let plan = Plan::new::<T>(self.batch, self.kd, params);
        with_lanes!(plan.lanes, L => self.grads_lanes::<T, L>(plan.isa, x, out, coef_steps, params.par()))
    }

    /// [`grads_batch`](Self::grads_batch) with `L` lanes for the full packs.
    fn grads_lanes<T: Real, const L: usize>(&self, isa: Isa, x: GradInputs<'_, T>, out: Outputs<'_, T>, coef_steps: bool, par: Par) {
        let [cl, rl, vl, hl, n] = self.system_lens();
        // Without `coef_steps`, `r`, `h`, `u`, `gc` and `gh` are not used (and may be empty).
        let (rin, hin, ul, gcl, ghl) = if coef_steps { (rl, hl, n, cl, hl) } else { (0, 0, 0, 0, 0) };
        let full = self.batch / L;
        let GradInputs { c, r, h, u, lam } = x;
        let (packs, tail) = self.groups::<T, L>(full, [c, r, h, u, lam], out, [cl, rin, hin, ul, n, gcl, rl, vl, ghl]);
        crate::par::join(
            par,
            || packs.into_par_iter().with_min_len(min_len(par, full.max(1))).for_each(|x| self.grads_pack::<T, L>(isa, x, coef_steps)),
            || tail.into_par_iter().with_min_len(min_len(par, self.batch - full * L)).for_each(|x| self.grads_pack::<T, 1>(isa, x, coef_steps)),
        );
    }

    /// Splits inputs and outputs (per-system lengths `lens`: `c, r, h, u, λ`, then `gc, gr, gv,
    /// gh`) into `packs` groups of `L` systems, then one group per remaining system.
    fn groups<'a, T: Real, const L: usize>(
        &self,
        packs: usize,
        x: [&'a [T]; 5],
        out: Outputs<'a, T>,
        lens: [usize; 9],
    ) -> (Vec<PackGrads<'a, T>>, Vec<PackGrads<'a, T>>) {
        let rest = self.batch - packs * L;
        // `k` pieces of `len` then `m` of `len1` (empty pieces when a length is 0).
        fn cut<X>(v: &[X], k: usize, len: usize, m: usize, len1: usize) -> Vec<&[X]> {
            let (a, b) = v.split_at(k * len);
            let mut p: Vec<&[X]> = if len == 0 { vec![&[]; k] } else { a.chunks(len).collect() };
            p.extend(if len1 == 0 { vec![&[][..]; m] } else { b.chunks(len1).collect() });
            p
        }
        fn cut_mut<X>(v: &mut [X], k: usize, len: usize, m: usize, len1: usize) -> Vec<&mut [X]> {
            let (a, b) = v.split_at_mut(k * len);
            let mut p = split_mut(a, len, k);
            p.extend(split_mut(b, len1, m));
            p
        }
        let [c, r, h, u, lam] = x;
        let [cl, rl, hl, ul, n, gcl, grl, gvl, ghl] = lens;
        let mut all: Vec<PackGrads<'a, T>> = cut(c, packs, L * cl, rest, cl)
            .into_iter()
            .zip(cut(r, packs, L * rl, rest, rl))
            .zip(cut(h, packs, L * hl, rest, hl))
            .zip(cut(u, packs, L * ul, rest, ul))
            .zip(cut(lam, packs, L * n, rest, n))
            .zip(cut_mut(out.gc, packs, L * gcl, rest, gcl))
            .zip(cut_mut(out.gr, packs, L * grl, rest, grl))
            .zip(cut_mut(out.gv, packs, L * gvl, rest, gvl))
            .zip(cut_mut(out.gh, packs, L * ghl, rest, ghl))
            .map(|((((((((c, r), h), u), lam), gc), gr), gv), gh)| PackGrads { c, r, h, u, lam, gc, gr, gv, gh })
            .collect();
        let tail = all.split_off(packs);
        (all, tail)
    }

    /// Errors with [`Error::Shape`] unless `factor` fits this layer.
    fn check_factor<T: Real>(&self, factor: &Cholesky<T>) -> Result<()> {
        if factor.batch() != self.batch || factor.n() != self.n() || factor.kd() != self.kd {
            return Err(Error::shape(
                "factor",
                format!("batch {}, n {}, kd {}", self.batch, self.n(), self.kd),
                format!("batch {}, n {}, kd {}", factor.batch(), factor.n(), factor.kd()),
            ));
        }
        Ok(())
    }

    /// Solves `M x = b` for one right-hand side per system (`b` is `(batch, T, D, O)`), then
    /// checks that the solution is finite (it can overflow for extreme inputs).
    fn solve_vec<T: Real>(&self, factor: &Cholesky<T>, b: Vec<T>, arg: &'static str, params: &Params) -> Result<Vec<T>> {
        let mut x = BatchMatrix::new(arg, b, self.batch, self.n(), 1)?;
        factor.solve_in_place(&mut x, &params.with_check_finite(false))?;
        self.finite(arg, x.into_vec())
    }

    /// `x` (shaped like `u`), or [`Error::NonFinite`] naming `arg` at its first NaN or ±∞.
    fn finite<T: Real>(&self, arg: &'static str, x: Vec<T>) -> Result<Vec<T>> {
        if let Some(k) = first_non_finite(&x) {
            return Err(Error::NonFinite { arg, index: unravel(k, &self.u_shape()), value: fmt_value(x[k]) });
        }
        Ok(x)
    }

    /// `Aᵀβ` for checked inputs, `(batch, T, D, O)` as one right-hand side per system.
    /// Built in `storage` (reused when large enough).
    fn assemble_rhs_batch<T: Real>(&self, x: &Inputs<'_, T>, storage: Vec<T>, params: &Params) -> Result<BatchMatrix<T>> {
        let n = self.n();
        let mut rhs = zeroed_vec_par::<T>("u", storage, self.batch * n, self.batch, params.par())?;
        rhs.par_chunks_mut(n).enumerate().with_min_len(min_len(params.par(), self.batch)).for_each(|(s, b)| {
            let sys = self.sys(x, s);
            self.assemble_rhs(sys.c, sys.r, sys.v, b)
        });
        BatchMatrix::new("u", rhs, self.batch, n, 1)
    }

    /// `u = M⁻¹ Aᵀβ` for checked inputs, with `M` already factored.
    fn solve_u<T: Real>(&self, factor: &Cholesky<T>, x: &Inputs<'_, T>, params: &Params) -> Result<Vec<T>> {
        self.solve_vec(factor, self.assemble_rhs_batch(x, Vec::new(), params)?.into_vec(), "u", params)
    }

    /// The forward: checks the inputs, assembles `M = AᵀA` and `Aᵀβ` per system, factors `M`
    /// (banded Cholesky, bandwidth [`kd`](Self::kd)) and solves for `u` `(batch, T, D, O)`.
    ///
    /// Cost per system O(T·(E·b² + D·O²·K) + n·kd²); memory O(n·kd) per system (the factor,
    /// kept in the returned [`Forward`] for the backward).
    ///
    /// Errors: [`Error::Shape`] (an input's length does not match its shape);
    /// [`Error::NonFinite`] (an input holds NaN or ±∞, if `params.check_finite()`; or `u`
    /// overflowed); [`Error::InvalidArgument`] (`steps`: a step size ≤ 0);
    /// [`Error::NotPositiveDefinite`] (the normal matrix of a system is numerically singular or
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
    /// per call (measured: batch 128, T = 1000, D = O = E = 3, f64: forward+backward
    /// 40 → 35 ms). Storage that is too small (another shape) is replaced; on an error it is
    /// freed. Results are bitwise those of [`forward`](Self::forward).
    ///
    /// Errors: as [`forward`](Self::forward).
    pub fn forward_with<'a, T: Real>(&self, inputs: Inputs<'a, T>, params: &Params, mut workspace: Workspace<T>) -> Result<Forward<'a, T>> {
        self.check_inputs(&inputs, params)?;
        // `Aᵀβ` first, so that the factorization solves it in the same pass.
        let mut rhs = self.assemble_rhs_batch(&inputs, std::mem::take(&mut workspace.u), params)?;
        let factor = self.factor_unchecked(inputs.coefficients, inputs.steps, Some(&mut rhs), &mut workspace, params)?;
        let u = self.finite("u", rhs.into_vec())?;
        Ok(Forward { layer: *self, inputs, factor, u, spare: Mutex::new(workspace.diag) })
    }

    /// The backward from its pieces, shaped like a framework's custom-op `bwd(inputs, output,
    /// grad_output)`: the forward's `inputs`, its output `u` and factor (from
    /// [`Forward::into_parts`], or recomputed by [`freeze`](Self::freeze)), and
    /// `grad_u` = ∂ℓ/∂u, both `(batch, T, D, O)`.
    ///
    /// Computes `λ = M⁻¹ ∂ℓ/∂u` (one solve) and, row by row, with `ρ = A u − β`:
    /// `∂ℓ/∂β = A λ` and `∂ℓ/∂A = −ρ λᵀ − (A λ) uᵀ`, summed into each input through the rows
    /// that contain it (`C`, `r` through the equation rows, `v` through the initial-value rows,
    /// `h` through the derivatives of the smoothness rows). Cost per system O(n·kd) for the
    /// solve plus O(T·(E·b + D·O·K)); no O(T²) anything.
    ///
    /// Errors: [`Error::Shape`] (an input, `u`, `grad_u`, or a `factor` of another shape);
    /// [`Error::NonFinite`] (an input, `u` or `grad_u`, if `params.check_finite()`);
    /// [`Error::InvalidArgument`] (`steps` ≤ 0).
    pub fn backward<T: Real>(
        &self,
        inputs: Inputs<'_, T>,
        u: &[T],
        factor: &Cholesky<T>,
        grad_u: &[T],
        params: &Params,
    ) -> Result<Grads<T>> {
        self.check_inputs(&inputs, params)?;
        Self::check_array("u", u, &self.u_shape(), params.check_finite())?;
        let mut grads = Grads::default();
        self.backward_checked(inputs, u, factor, grad_u, params, Vec::new(), &mut grads)?;
        Ok(grads)
    }

    /// [`backward`](Self::backward) for inputs and `u` already checked, into `g` (its vectors
    /// reused, any contents), with `λ` solved in `lam` (storage reused; returned for the next
    /// call).
    #[allow(clippy::too_many_arguments)]
    fn backward_checked<T: Real>(
        &self,
        inputs: Inputs<'_, T>,
        u: &[T],
        factor: &Cholesky<T>,
        grad_u: &[T],
        params: &Params,
        lam: Vec<T>,
        g: &mut Grads<T>,
    ) -> Result<Vec<T>> {
        self.check_factor(factor)?;
        Self::check_array("grad_u", grad_u, &self.u_shape(), params.check_finite())?;
        let mut lam = reuse("grad_u", lam, grad_u.len())?;
        lam.extend_from_slice(grad_u);
        let lam = self.solve_vec(factor, lam, "grad_u", params)?;
        let [cl, rl, vl, hl, _] = self.system_lens();
        let (b, par) = (self.batch, params.par());
        // Every coefficient gradient is written (not accumulated) by the row sums, so that
        // storage needs no zeroing; the others accumulate from zero.
        g.coefficients = resized_par("grad_coefficients", std::mem::take(&mut g.coefficients), b * cl, b, par)?;
        g.rhs_equation = zeroed_vec_par("grad_rhs_equation", std::mem::take(&mut g.rhs_equation), b * rl, b, par)?;
        g.init_vars = zeroed_vec_par("grad_init_vars", std::mem::take(&mut g.init_vars), b * vl, b, par)?;
        g.steps = zeroed_vec_par("grad_steps", std::mem::take(&mut g.steps), b * hl, b, par)?;
        let x = GradInputs { c: inputs.coefficients, r: inputs.rhs_equation, h: inputs.steps, u, lam: &lam };
        let out = Outputs { gc: &mut g.coefficients, gr: &mut g.rhs_equation, gv: &mut g.init_vars, gh: &mut g.steps };
        self.grads_batch(x, out, true, params);
        Ok(lam)
    }

    /// Freezes the left-hand side: checks `coefficients` and `steps`, keeps a copy, and factors
    /// `M` once. The returned [`Frozen`] then runs the forward and the backward for new
    /// `rhs_equation` and `init_vars` at the cost of one solve each.
    ///
    /// Also the way to recompute the factor for [`backward`](Self::backward) when only the
    /// inputs and `u` were kept ([`Frozen::factor`]).
    ///
    /// Errors: as [`forward`](Self::forward) for `coefficients` and `steps`.
    pub fn freeze<T: Real>(&self, coefficients: &[T], steps: &[T], params: &Params) -> Result<Frozen<T>> {
        self.check_lhs(coefficients, steps, params)?;
        let factor = self.factor_unchecked(coefficients, steps, None, &mut Workspace::new(), params)?;
        Ok(Frozen::new(*self, copy_vec("coefficients", coefficients)?, copy_vec("steps", steps)?, factor))
    }
}
