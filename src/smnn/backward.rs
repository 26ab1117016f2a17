//! The backward: `λ = M⁻¹ ∂ℓ/∂u` with the forward's factor, then the row sums of `grads.rs`
//! over the batch's packs (the same lanes as the forward's factor) and the rest one at a time.

use rayon::prelude::*;

use crate::alloc::{resized_par, reuse, zeroed_vec_par};
use crate::band::lanes::with_lanes;
use crate::error::Result;
use crate::llt::{Cholesky, Plan};
use crate::par::{Par, min_len};
use crate::params::Params;
use crate::scalar::Real;

use super::grads::PackGrads;
use super::{Forward, GradInputs, Grads, Inputs, Outputs, Smnn};

/// What one backward reads: the forward's `inputs`, its output `u` and `factor`, and the
/// cotangent `grad_u`.
pub(super) struct BackwardJob<'a, T> {
    pub inputs: Inputs<'a, T>,
    pub u: &'a [T],
    pub factor: &'a Cholesky<T>,
    pub grad_u: &'a [T],
}

impl<'a, T: Real> Forward<'a, T> {
    /// The backward for the cotangent `grad_u` = ∂ℓ/∂u (`(batch, T, D, O)`): one more solve
    /// with the forward's factor and O(T) row sums. See [`Smnn::backward`].
    ///
    /// Errors: [`Error::Shape`](crate::Error::Shape) (`grad_u`),
    /// [`Error::NonFinite`](crate::Error::NonFinite) (`grad_u`, if `params.check_finite()`);
    /// [`Error::Overflow`](crate::Error::Overflow) as [`Smnn::backward`].
    pub fn backward(&self, grad_u: &[T], params: &Params) -> Result<Grads<T>> {
        let mut grads = Grads::default();
        let job = BackwardJob { inputs: self.inputs, u: &self.u, factor: &self.factor, grad_u };
        self.layer.backward_checked(job, params, Vec::new(), &mut grads)?;
        Ok(grads)
    }

    /// [`backward`](Self::backward) into `grads`, reusing its vectors (resized to this layer's
    /// shapes; any contents on entry) and this forward's spare storage for `λ` (hence
    /// `&mut self`): a training loop that keeps one [`Grads`] and uses [`Smnn::forward_with`]
    /// allocates nothing per step (the time is in the solve and the row sums; the point is a
    /// flat memory profile). On an error `grads` holds unspecified values.
    ///
    /// Errors: as [`backward`](Self::backward).
    pub fn backward_into(&mut self, grad_u: &[T], params: &Params, grads: &mut Grads<T>) -> Result<()> {
        let lam = std::mem::take(&mut self.spare);
        let job = BackwardJob { inputs: self.inputs, u: &self.u, factor: &self.factor, grad_u };
        self.spare = self.layer.backward_checked(job, params, lam, grads)?;
        Ok(())
    }
}

impl Smnn {
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
    /// Errors: [`Error::Shape`](crate::Error::Shape) (an input, `u`, `grad_u`, or a `factor` of another shape);
    /// [`Error::NonFinite`](crate::Error::NonFinite) (an input, `u` or `grad_u`, if `params.check_finite()`);
    /// [`Error::Overflow`](crate::Error::Overflow) (with that check: `lambda` = `M⁻¹ grad_u` or a gradient
    /// `grad_coefficients`, `grad_rhs_equation`, `grad_init_vars`, `grad_steps` overflowed);
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) (`steps` ≤ 0; a weight whose square overflows `T`).
    pub fn backward<T: Real>(
        &self,
        inputs: Inputs<'_, T>,
        u: &[T],
        factor: &Cholesky<T>,
        grad_u: &[T],
        params: &Params,
    ) -> Result<Grads<T>> {
        self.check_inputs(&inputs, params)?;
        Self::check_array("u", u, &self.u_shape(), params)?;
        let mut grads = Grads::default();
        self.backward_checked(BackwardJob { inputs, u, factor, grad_u }, params, Vec::new(), &mut grads)?;
        Ok(grads)
    }

    /// [`backward`](Self::backward) for inputs and `u` already checked, into `g` (its vectors
    /// reused, any contents), with `λ` solved in `lam` (storage reused; returned for the next
    /// call).
    pub(super) fn backward_checked<T: Real>(&self, job: BackwardJob<'_, T>, params: &Params, lam: Vec<T>, g: &mut Grads<T>) -> Result<Vec<T>> {
        let BackwardJob { inputs, u, factor, grad_u } = job;
        self.check_factor(factor)?;
        Self::check_array("grad_u", grad_u, &self.u_shape(), params)?;
        let mut lam = reuse("grad_u", lam, grad_u.len())?;
        lam.extend_from_slice(grad_u);
        let lam = self.solve_vec(factor, lam, "lambda", params)?;
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
        if params.check_finite() {
            Self::check_result("grad_coefficients", &g.coefficients, &self.coefficients_shape(), params)?;
            Self::check_result("grad_rhs_equation", &g.rhs_equation, &self.rhs_equation_shape(), params)?;
            Self::check_result("grad_init_vars", &g.init_vars, &self.init_vars_shape(), params)?;
            Self::check_result("grad_steps", &g.steps, &self.steps_shape(), params)?;
        }
        Ok(lam)
    }

    /// The backward's row sums of every system ([`Smnn::grads_pack`]): `L` systems at a time
    /// over the batch's packs (the lanes of [`crate::band::pack_lanes`]), one at a time for the rest.
    /// Outputs zeroed on entry; without `coef_steps` only `gr` and `gv` are formed (`r`, `h`,
    /// `u`, `gc` and `gh` may be empty).
    pub(super) fn grads_batch<T: Real>(&self, x: GradInputs<'_, T>, out: Outputs<'_, T>, coef_steps: bool, params: &Params) {
        let plan = Plan::new::<T>(self.batch, self.kd, params);
        with_lanes!(plan.lanes, L => self.grads_lanes::<T, L>(plan, x, out, coef_steps, params.par()))
    }

    /// [`grads_batch`](Self::grads_batch) with `L` lanes for the full packs.
    fn grads_lanes<T: Real, const L: usize>(&self, plan: Plan, x: GradInputs<'_, T>, out: Outputs<'_, T>, coef_steps: bool, par: Par) {
        // One system at a time is scalar code, compiled for the best instruction set (its
        // operations are unfused under every set: the same bits as the portable build, which is
        // what the reference kernels run as).
        let (isa, single) = (plan.isa, plan.isa);
        let [cl, rl, vl, hl, n] = self.system_lens();
        // Without `coef_steps`, `r`, `h`, `u`, `gc` and `gh` are not used (and may be empty).
        let (rin, hin, ul, gcl, ghl) = if coef_steps { (rl, hl, n, cl, hl) } else { (0, 0, 0, 0, 0) };
        let full = self.batch / L;
        let GradInputs { c, r, h, u, lam } = x;
        let (packs, tail) = self.groups::<T, L>(full, [c, r, h, u, lam], out, [cl, rin, hin, ul, n, gcl, rl, vl, ghl]);
        crate::par::join(
            par,
            || packs.into_par_iter().with_min_len(min_len(par, full.max(1))).for_each(|x| self.grads_pack::<T, L>(isa, x, coef_steps)),
            || tail.into_par_iter().with_min_len(min_len(par, self.batch - full * L)).for_each(|x| self.grads_pack::<T, 1>(single, x, coef_steps)),
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
            let mut p = crate::llt::pieces(a, len, k);
            p.extend(crate::llt::pieces(b, len1, m));
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
}
