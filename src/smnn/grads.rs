//! The backward's row sums (the rows: `docs/ARCHITECTURE.md`, "The S-MNN rows"): the gradients of the four inputs from `u` and
//! `λ = M⁻¹ ∂ℓ/∂u`, for `L` consecutive systems in lockstep.
//!
//! Each row `a` (weight `w`, right-hand side `β`) of a system gives `∂ℓ/∂a_j = −w² (ρ λ_j +
//! q u_j)` with `ρ = a·u − β`, `q = a·λ`, and `∂ℓ/∂β = w² q`; the sums over the rows that hold
//! an input are formed where those rows live (one step, or two or three neighbouring steps).
//! The `L` systems advance step by step, every operation on `[T; L]` (one SIMD operation over
//! the systems); their rows of `u`, `λ` and the coefficients are transposed in, and the
//! coefficient gradients out, with the packs' transposes. One system is `L = 1`: the same
//! operations in the same order, so a system gets the same bits in a pack as alone.

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use super::assemble::{central_row, Taylor};
use super::layer::Smnn;
use crate::band::lanes::{scatter, Window};
use crate::scalar::Real;
use crate::simd::Isa;
use crate::simd::vector::{VecOp, Vector, VectorSet, dispatch, rows};

/// `L` consecutive systems' inputs and outputs, each slice system after system (`L` times the
/// per-system length; the outputs zeroed on entry). `u`, `gc` and `gh` may be empty when only
/// the right-hand-side gradients are wanted.
pub(crate) struct PackGrads<'a, T> {
    pub c: &'a [T],
    pub r: &'a [T],
    pub h: &'a [T],
    pub u: &'a [T],
    pub lam: &'a [T],
    pub gc: &'a mut [T],
    pub gr: &'a mut [T],
    pub gv: &'a mut [T],
    pub gh: &'a mut [T],
}

/// Steps whose rows are transposed in (and coefficient gradients out) at a time.
const CHUNK: usize = 32;

impl Smnn {
    /// The gradients of `L` systems (see [`PackGrads`]): always `∂ℓ/∂rhs_equation` and
    /// `∂ℓ/∂init_vars`; with `coef_steps`, also `∂ℓ/∂coefficients` and `∂ℓ/∂steps`.
    ///
    /// Cost per step and system `2E·b + 2K·D·(2O)·3 + 9D`; scratch `O((E + 3)·b)` rows of `L`.
    pub(crate) fn grads_pack<T: Real, const L: usize>(&self, isa: Isa, x: PackGrads<'_, T>, coef_steps: bool) {
        dispatch(isa, GradsOp::<T, L> { layer: self, x, coef_steps });
    }

    #[inline(always)]
    fn grads_pack_with<T: Real, V: Vector<T>, const L: usize>(&self, x: PackGrads<'_, T>, coef_steps: bool) {
        let PackGrads { c, r, h, u, lam, gc, gr, gv, gh } = x;
        let (t_n, e_n, d_n, o_n, b) = (self.t, self.e, self.d, self.o, self.block());
        let [cl, rl, vl, hl, n] = self.system_lens();
        let weq2 = T::from_f64(self.opts.weight_equation * self.opts.weight_equation);
        let wi2 = T::from_f64(self.opts.weight_init_var * self.opts.weight_init_var);
        let ws2 = T::from_f64(self.opts.weight_smooth * self.opts.weight_smooth);
        let zero = [T::zero(); L];
        let taylor = Taylor::<T>::new(self);
        let k2 = 2 * o_n;
        let dcoef: Vec<T> = (0..o_n).map(|j| T::from_f64(j as f64)).collect();
        // Rows of u, λ (the steps t, t + 1, t + 2) and of the coefficients, `CHUNK` steps at a time.
        let (mut uw, mut lw, mut cw) = (Window::<T, L>::new(), Window::<T, L>::new(), Window::<T, L>::new());
        // ∂ℓ/∂c of the rows of the steps `gc_from ..` (one step when `c` is broadcast), to scatter.
        let eb = e_n * b;
        let mut gcacc = vec![zero; CHUNK * eb];
        let mut gc_from = 0;
        let (mut su, mut sl, mut hp) = (vec![zero; k2], vec![zero; k2], vec![zero; 2 * o_n - 1]);
        for t in 0..t_n {
            // 1. Rows of u, λ of the steps t ..= t + 2.
            let (k0, k1) = (t * b, ((t + 3) * b).min(n));
            let ub = if coef_steps { uw.get(u, n, k0..k1, CHUNK * b) } else { &[] };
            let lb = lw.get(lam, n, k0..k1, CHUNK * b);
            let (ut, lt) = (ub.get(..b).unwrap_or(&[]), &lb[..b]);
            // 2. Equations: ∂ℓ/∂r[t, e] = w_eq² q, ∂ℓ/∂c[t, e, ·] = −w_eq² (ρ λ_t + q u_t).
            let tc = if self.ct == 1 { 0 } else { t };
            let rows = if e_n > 0 { cw.get(c, cl, tc * eb..(tc + 1) * eb, CHUNK * eb) } else { &[] };
            if coef_steps && e_n > 0 && tc >= gc_from + CHUNK {
                scatter(&gcacc, gc, cl, gc_from * eb);
                gcacc.fill(zero);
                gc_from = tc;
            }
            let ge = (tc - gc_from) * eb;
            for e in 0..e_n {
                let row = &rows[e * b..(e + 1) * b];
                let ri = self.r_index(t, e);
                // `Σ_i a[i]·b[i]` per lane, left to right from zero (as per system).
                let q = rows::dot::<T, V, L>(T::zero(), row, lt);
                for l in 0..L {
                    let g = &mut gr[l * rl + ri];
                    *g = *g + weq2 * q[l];
                }
                if coef_steps {
                    let ru = rows::dot::<T, V, L>(T::zero(), row, ut);
                    let mut rho = ru;
                    for l in 0..L {
                        rho[l] = ru[l] - r[l * rl + ri];
                    }
                    // `g − w_eq²·(ρ·λ_j + q·u_j)`, unfused, through `V` (see `rows`).
                    for ((g, lj), uj) in gcacc[ge + e * b..ge + (e + 1) * b].iter_mut().zip(lt).zip(ut) {
                        for m in 0..L / V::W {
                            let i = m * V::W;
                            let t = V::load(&rho[i..]).mul(V::load(&lj[i..])).add(V::load(&q[i..]).mul(V::load(&uj[i..])));
                            V::load(&g[i..]).sub(V::splat(weq2).mul(t)).store(&mut g[i..]);
                        }
                    }
                }
            }
            if coef_steps && e_n > 0 && t + 1 == t_n {
                scatter(&gcacc[..(tc + 1 - gc_from) * eb], gc, cl, gc_from * eb);
            }
            // 3. Initial values: ∂ℓ/∂v[t, d, o] = w_init² λ[t, d, o].
            if t < self.s {
                for d in 0..d_n {
                    for o in 0..self.i {
                        for l in 0..L {
                            gv[l * vl + (t * d_n + d) * self.i + o] = wi2 * lt[d * o_n + o][l];
                        }
                    }
                }
            }
            if !coef_steps {
                continue;
            }
            // 4. Taylor rows: ∂ℓ/∂h_t = −w_s² Σ_rows Σ_j (p λ_j + q u_j) ∂a_j/∂h. With
            //    a_i = a_i(1)·h^{o_i}, ∂a_i/∂h = o_i h^{o_i−1} a_i(1) and G(1) = Σ a(1) a(1)ᵀ:
            //    Σ_rows Σ_i ∂a_i/∂h (p λ_i + q u_i) = Σ_i o_i h^{o_i−1} (λ_i (G(1) ũ)_i + u_i (G(1) λ̃)_i),
            //    ũ_i = h^{o_i} u_i, λ̃_i = h^{o_i} λ_i.
            if t + 1 < t_n {
                let hs: [T; L] = std::array::from_fn(|l| self.h_at(&h[l * hl..(l + 1) * hl], t));
                // The powers as `Taylor::powers` forms them (1, then repeated products).
                let mut p = [T::one(); L];
                for x in hp.iter_mut() {
                    *x = p;
                    for l in 0..L {
                        p[l] = p[l] * hs[l];
                    }
                }
                let mut acc = zero;
                for d in 0..d_n {
                    let (gx, gy) = (d * o_n, b + d * o_n);
                    let (ux, uy) = (&ub[gx..gx + o_n], &ub[gy..gy + o_n]);
                    let (lx, ly) = (&lb[gx..gx + o_n], &lb[gy..gy + o_n]);
                    for j in 0..o_n {
                        for l in 0..L {
                            su[j][l] = hp[j][l] * ux[j][l];
                            su[o_n + j][l] = hp[j][l] * uy[j][l];
                            sl[j][l] = hp[j][l] * lx[j][l];
                            sl[o_n + j][l] = hp[j][l] * ly[j][l];
                        }
                    }
                    for half in 0..2 {
                        let (uh, lh) = if half == 0 { (ux, lx) } else { (uy, ly) };
                        for j in 1..o_n {
                            let g1 = &taylor.gram1_full[(half * o_n + j) * k2..(half * o_n + j + 1) * k2];
                            let (mut gu, mut gl) = (zero, zero);
                            for ((&gk, a), bk) in g1.iter().zip(&su).zip(&sl) {
                                gu = rows::add::<T, V, L>(&gu, &rows::scale::<T, V, L>(gk, a));
                                gl = rows::add::<T, V, L>(&gl, &rows::scale::<T, V, L>(gk, bk));
                            }
                            for l in 0..L {
                                acc[l] = acc[l] + dcoef[j] * hp[j - 1][l] * (lh[j][l] * gu[l] + uh[j][l] * gl[l]);
                            }
                        }
                    }
                }
                let k = self.h_index(t);
                for l in 0..L {
                    let g = &mut gh[l * hl + k];
                    *g = *g - ws2 * acc[l];
                }
            }
            // 5. Central rows: H = h_t + h_{t+1}, ∂H/∂h_t = ∂H/∂h_{t+1} = 1.
            if self.opts.central && t + 2 < t_n {
                let (mut a, mut da) = ([zero; 3], [zero; 3]);
                for l in 0..L {
                    let hl_ = &h[l * hl..(l + 1) * hl];
                    let (al, dal) = central_row(self.h_at(hl_, t) + self.h_at(hl_, t + 1), o_n);
                    for i in 0..3 {
                        a[i][l] = al[i];
                        da[i][l] = dal[i];
                    }
                }
                let mut acc = zero;
                for d in 0..d_n {
                    let idx = [d * o_n + o_n - 2, b + d * o_n + o_n - 1, 2 * b + d * o_n + o_n - 2];
                    for l in 0..L {
                        let p = a[0][l] * ub[idx[0]][l] + a[1][l] * ub[idx[1]][l] + a[2][l] * ub[idx[2]][l];
                        let q = a[0][l] * lb[idx[0]][l] + a[1][l] * lb[idx[1]][l] + a[2][l] * lb[idx[2]][l];
                        for j in 0..3 {
                            acc[l] = acc[l] + da[j][l] * (p * lb[idx[j]][l] + q * ub[idx[j]][l]);
                        }
                    }
                }
                let (k0, k1) = (self.h_index(t), self.h_index(t + 1));
                for l in 0..L {
                    let g = ws2 * acc[l];
                    gh[l * hl + k0] = gh[l * hl + k0] - g;
                    gh[l * hl + k1] = gh[l * hl + k1] - g;
                }
            }
        }
    }
}

/// [`Smnn::grads_pack`] as one SIMD operation: the lane loops compiled for the dispatched
/// instruction set.
struct GradsOp<'l, 'a, T, const L: usize> {
    layer: &'l Smnn,
    x: PackGrads<'a, T>,
    coef_steps: bool,
}

impl<T: Real, const L: usize> VecOp for GradsOp<'_, '_, T, L> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        if L.is_multiple_of(<T::Vec<S> as Vector<T>>::W) {
            self.layer.grads_pack_with::<T, T::Vec<S>, L>(self.x, self.coef_steps);
        } else {
            self.layer.grads_pack_with::<T, T::One<S>, L>(self.x, self.coef_steps);
        }
    }
}
