//! The rows of DESIGN §3 and the per-system kernels that assemble `M = AᵀA` (into the
//! column-major band of [`crate::BandBatch`]) and `Aᵀβ`, and the backward's row-local sums.
//!
//! Nothing here forms `A`: each row family is handled where it lives (the equation rows inside
//! one step block, the Taylor rows between the blocks `t` and `t + 1` of one variable, the central
//! rows across three blocks of one variable).

use super::shapes::Smnn;
use crate::scalar::Real;

/// `x^k` by repeated squaring (`k` may exceed `i32::MAX`, where `powi` would not do).
#[inline]
pub(crate) fn powu<T: Real>(mut x: T, mut k: usize) -> T {
    let mut acc = T::one();
    while k > 0 {
        if k & 1 == 1 {
            acc = acc * x;
        }
        x = x * x;
        k >>= 1;
    }
    acc
}

/// Adds `v` to `M[i, j]` (`i ≥ j`, `i − j ≤ kd`) of one system's band (`w = kd + 1`).
#[inline(always)]
fn add<T: Real>(band: &mut [T], w: usize, i: usize, j: usize, v: T) {
    let k = j * w + (i - j);
    band[k] = band[k] + v;
}

/// The Taylor rows of one variable between the steps `t` and `t + 1` for one step size `h`, as
/// dense rows over the `2O` local unknowns `[u[t, d, 0..O], u[t+1, d, 0..O]]`, with their
/// derivatives with respect to `h`, and the weighted Gram matrix `w_s² Σ a aᵀ` of the rows.
///
/// They do not depend on `d`: computed once per step (once per system when `steps` is broadcast).
pub(crate) struct Taylor<T> {
    o: usize,
    k: usize,
    inv_fact: Vec<T>,
    /// `2K` rows of `2O`: forward rows `0..K`, backward rows `K..2K`.
    pub(crate) rows: Vec<T>,
    /// d(rows)/dh.
    pub(crate) drows: Vec<T>,
    /// `2O × 2O` row-major, lower triangle filled.
    pub(crate) gram: Vec<T>,
    hp: Vec<T>,
    mp: Vec<T>,
    /// The last step size seen, and whether the Gram matrix was computed for it.
    last: Option<(T, bool)>,
}

impl<T: Real> Taylor<T> {
    pub(crate) fn new(layer: &Smnn) -> Self {
        let (o, k) = (layer.o, layer.k_taylor());
        let mut inv_fact = Vec::with_capacity(o);
        let mut f = T::one();
        for j in 0..o {
            if j > 0 {
                f = f / T::from_f64(j as f64);
            }
            inv_fact.push(f);
        }
        Self {
            o,
            k,
            inv_fact,
            rows: vec![T::zero(); 2 * k * 2 * o],
            drows: vec![T::zero(); 2 * k * 2 * o],
            gram: vec![T::zero(); 4 * o * o],
            hp: vec![T::zero(); o],
            mp: vec![T::zero(); o],
            last: None,
        }
    }

    /// Number of rows (`2K`) and their length (`2O`).
    pub(crate) fn dims(&self) -> (usize, usize) {
        (2 * self.k, 2 * self.o)
    }

    /// Fills `rows` and `drows` for step size `h` (no-op if `h` is the last one seen);
    /// with `w2 = Some(w_s²)` also the Gram matrix.
    pub(crate) fn set(&mut self, h: T, w2: Option<T>) {
        if let Some((lh, has_gram)) = self.last
            && lh == h
            && (has_gram || w2.is_none())
        {
            return;
        }
        self.last = Some((h, w2.is_some()));
        let (o, k2) = (self.o, 2 * self.o);
        let mut p = T::one();
        let mut m = T::one();
        for j in 0..o {
            self.hp[j] = p;
            self.mp[j] = m;
            p = p * h;
            m = -(m * h);
        }
        self.rows.fill(T::zero());
        self.drows.fill(T::zero());
        for k in 0..self.k {
            let kt = T::from_f64(k as f64);
            // Forward: Σ_{o≥k} h^o/(o−k)! x_o − h^k y_k.
            let (f, df) = (k * k2, k * k2);
            for j in k..o {
                self.rows[f + j] = self.hp[j] * self.inv_fact[j - k];
                if j > 0 {
                    self.drows[df + j] = T::from_f64(j as f64) * self.hp[j - 1] * self.inv_fact[j - k];
                }
            }
            self.rows[f + o + k] = -self.hp[k];
            if k > 0 {
                self.drows[df + o + k] = -(kt * self.hp[k - 1]);
            }
            // Backward: Σ_{o≥k} (−h)^o/(o−k)! y_o − (−h)^k x_k.
            let bk = (self.k + k) * k2;
            for j in k..o {
                self.rows[bk + o + j] = self.mp[j] * self.inv_fact[j - k];
                if j > 0 {
                    self.drows[bk + o + j] = -(T::from_f64(j as f64) * self.mp[j - 1] * self.inv_fact[j - k]);
                }
            }
            self.rows[bk + k] = -self.mp[k];
            if k > 0 {
                self.drows[bk + k] = kt * self.mp[k - 1];
            }
        }
        if let Some(w2) = w2 {
            self.gram.fill(T::zero());
            for r in self.rows.chunks_exact(k2) {
                for i in 0..k2 {
                    let ai = w2 * r[i];
                    if ai == T::zero() {
                        continue;
                    }
                    let g = &mut self.gram[i * k2..i * k2 + i + 1];
                    for (gv, &aj) in g.iter_mut().zip(&r[..=i]) {
                        *gv = *gv + ai * aj;
                    }
                }
            }
        }
    }
}

/// The central row of one variable over steps `t, t+1, t+2` with `H = h_t + h_{t+1}`: values
/// and `d/dH` at the local unknowns `(t, O−2)`, `(t+1, O−1)`, `(t+2, O−2)`.
pub(crate) fn central_row<T: Real>(hh: T, o: usize) -> ([T; 3], [T; 3]) {
    // H^(O−3), H^(O−2), and their derivatives; O ≥ 2 is validated.
    let (a, da) = if o >= 3 {
        let p3 = powu(hh, o - 3);
        let p4 = if o >= 4 { powu(hh, o - 4) } else { hh.recip() };
        (p3, T::from_f64((o - 3) as f64) * p4)
    } else {
        // O = 2: H^(−1), derivative −H^(−2).
        let r = hh.recip();
        (r, -(r * r))
    };
    let b = powu(hh, o - 2);
    let db = if o >= 3 { T::from_f64((o - 2) as f64) * powu(hh, o - 3) } else { T::zero() };
    ([a, b, -a], [da, db, -da])
}

/// Per-system input slices.
#[derive(Clone, Copy)]
pub(crate) struct Sys<'a, T> {
    pub c: &'a [T],
    pub r: &'a [T],
    pub v: &'a [T],
    pub h: &'a [T],
}

impl Smnn {
    #[inline]
    pub(crate) fn h_at<T: Real>(&self, h: &[T], t: usize) -> T {
        h[if self.ht == 1 { 0 } else { t }]
    }
    #[inline]
    pub(crate) fn h_index(&self, t: usize) -> usize {
        if self.ht == 1 { 0 } else { t }
    }
    #[inline]
    pub(crate) fn c_row<'a, T>(&self, c: &'a [T], t: usize, e: usize) -> &'a [T] {
        let b = self.block();
        let tc = if self.ct == 1 { 0 } else { t };
        &c[(tc * self.e + e) * b..(tc * self.e + e + 1) * b]
    }
    #[inline]
    pub(crate) fn r_index(&self, t: usize, e: usize) -> usize {
        (if self.rt == 1 { 0 } else { t }) * self.e + e
    }

    /// Assembles one system's `M = AᵀA` into `band` (zeroed, `n·(kd+1)` elements).
    ///
    /// Cost per step: `E·b²/2` (equations) + `2K·(2O)²/2` (Taylor Gram, once per distinct `h`)
    /// + `D·(2O)²/2` (scatter) + `6D` (central).
    pub(crate) fn assemble_lhs<T: Real>(&self, c: &[T], h: &[T], band: &mut [T], taylor: &mut Taylor<T>) {
        let (t_n, e_n, d_n, o_n, b, w) = (self.t, self.e, self.d, self.o, self.block(), self.kd + 1);
        let weq2 = T::from_f64(self.opts.weight_equation * self.opts.weight_equation);
        let wi2 = T::from_f64(self.opts.weight_init_var * self.opts.weight_init_var);
        let ws2 = T::from_f64(self.opts.weight_smooth * self.opts.weight_smooth);
        for t in 0..t_n {
            let base = t * b;
            // 1. Equations: block (t, t) += w_eq² Σ_e c cᵀ (lower triangle).
            for e in 0..e_n {
                let row = self.c_row(c, t, e);
                for q in 0..b {
                    let cq = weq2 * row[q];
                    if cq == T::zero() {
                        continue;
                    }
                    let col = &mut band[(base + q) * w..(base + q) * w + (b - q)];
                    for (m, &cp) in col.iter_mut().zip(&row[q..]) {
                        *m = *m + cq * cp;
                    }
                }
            }
            // 2. Initial values: diagonal.
            if t < self.s {
                for d in 0..d_n {
                    for o in 0..self.i {
                        let j = base + d * o_n + o;
                        band[j * w] = band[j * w] + wi2;
                    }
                }
            }
            // 3. Taylor rows between t and t + 1.
            if t + 1 < t_n {
                taylor.set(self.h_at(h, t), Some(ws2));
                let k2 = 2 * o_n;
                for d in 0..d_n {
                    let gx = base + d * o_n;
                    let gy = base + b + d * o_n;
                    for i in 0..k2 {
                        let gi = if i < o_n { gx + i } else { gy + i - o_n };
                        for j in 0..=i {
                            let gj = if j < o_n { gx + j } else { gy + j - o_n };
                            add(band, w, gi, gj, taylor.gram[i * k2 + j]);
                        }
                    }
                }
            }
            // 4. Central rows over t, t + 1, t + 2.
            if self.opts.central && t + 2 < t_n {
                let hh = self.h_at(h, t) + self.h_at(h, t + 1);
                let (a, _) = central_row(hh, o_n);
                for d in 0..d_n {
                    let idx = [base + d * o_n + o_n - 2, base + b + d * o_n + o_n - 1, base + 2 * b + d * o_n + o_n - 2];
                    for i in 0..3 {
                        for j in 0..=i {
                            add(band, w, idx[i], idx[j], ws2 * a[i] * a[j]);
                        }
                    }
                }
            }
        }
    }

    /// Assembles one system's `Aᵀβ` into `rhs` (zeroed, `n` elements): only the equation and
    /// initial-value rows have a right-hand side. Cost `T·E·b + S·D·I`.
    pub(crate) fn assemble_rhs<T: Real>(&self, c: &[T], r: &[T], v: &[T], rhs: &mut [T]) {
        let (b, o_n) = (self.block(), self.o);
        let weq2 = T::from_f64(self.opts.weight_equation * self.opts.weight_equation);
        let wi2 = T::from_f64(self.opts.weight_init_var * self.opts.weight_init_var);
        for t in 0..self.t {
            let ut = &mut rhs[t * b..(t + 1) * b];
            for e in 0..self.e {
                let re = weq2 * r[self.r_index(t, e)];
                for (x, &cp) in ut.iter_mut().zip(self.c_row(c, t, e)) {
                    *x = *x + re * cp;
                }
            }
        }
        for t in 0..self.s {
            for d in 0..self.d {
                for o in 0..self.i {
                    let j = t * b + d * o_n + o;
                    rhs[j] = rhs[j] + wi2 * v[(t * self.d + d) * self.i + o];
                }
            }
        }
    }

    /// The gradients of ℓ with respect to `rhs_equation` and `init_vars` of one system, given
    /// `λ = M⁻¹ ∂ℓ/∂u`: `∂ℓ/∂r[t, e] = w_eq² c_{t,e}·λ_t` (summed over broadcast steps) and
    /// `∂ℓ/∂v[t, d, o] = w_init² λ[t, d, o]`. Outputs zeroed on entry.
    pub(crate) fn grad_rhs_init<T: Real>(&self, c: &[T], lam: &[T], gr: &mut [T], gv: &mut [T]) {
        let (b, o_n) = (self.block(), self.o);
        let weq2 = T::from_f64(self.opts.weight_equation * self.opts.weight_equation);
        let wi2 = T::from_f64(self.opts.weight_init_var * self.opts.weight_init_var);
        for t in 0..self.t {
            let lt = &lam[t * b..(t + 1) * b];
            for e in 0..self.e {
                let q = dot(self.c_row(c, t, e), lt);
                let k = self.r_index(t, e);
                gr[k] = gr[k] + weq2 * q;
            }
        }
        for t in 0..self.s {
            for d in 0..self.d {
                for o in 0..self.i {
                    gv[(t * self.d + d) * self.i + o] = wi2 * lam[t * b + d * o_n + o];
                }
            }
        }
    }

    /// The gradients with respect to `coefficients` and `steps` of one system (outputs zeroed on
    /// entry), from `u`, `λ = M⁻¹ ∂ℓ/∂u` and the inputs. Each row `a` (weight `w`, right-hand
    /// side `β`) gives `∂ℓ/∂a_j = −w² (ρ λ_j + q u_j)` with `ρ = a·u − β`, `q = a·λ`.
    /// Cost per step `2E·b + 2K·D·(2O)·3 + 9D`.
    pub(crate) fn grad_coef_steps<T: Real>(
        &self,
        x: Sys<'_, T>,
        u: &[T],
        lam: &[T],
        gc: &mut [T],
        gh: &mut [T],
        taylor: &mut Taylor<T>,
    ) {
        let (t_n, b, o_n) = (self.t, self.block(), self.o);
        let weq2 = T::from_f64(self.opts.weight_equation * self.opts.weight_equation);
        let ws2 = T::from_f64(self.opts.weight_smooth * self.opts.weight_smooth);
        for t in 0..t_n {
            let (ut, lt) = (&u[t * b..(t + 1) * b], &lam[t * b..(t + 1) * b]);
            // Equations.
            let tc = if self.ct == 1 { 0 } else { t };
            for e in 0..self.e {
                let row = self.c_row(x.c, t, e);
                let rho = dot(row, ut) - x.r[self.r_index(t, e)];
                let q = dot(row, lt);
                let g = &mut gc[(tc * self.e + e) * b..(tc * self.e + e + 1) * b];
                for ((gv, &l), &uu) in g.iter_mut().zip(lt).zip(ut) {
                    *gv = *gv - weq2 * (rho * l + q * uu);
                }
            }
            // Taylor rows: ∂ℓ/∂h_t = −w_s² Σ_rows Σ_j (p λ_j + q u_j) ∂a_j/∂h.
            if t + 1 < t_n {
                taylor.set(self.h_at(x.h, t), None);
                let (nr, k2) = taylor.dims();
                let mut acc = T::zero();
                for d in 0..self.d {
                    let (gx, gy) = (t * b + d * o_n, (t + 1) * b + d * o_n);
                    let (ux, uy) = (&u[gx..gx + o_n], &u[gy..gy + o_n]);
                    let (lx, ly) = (&lam[gx..gx + o_n], &lam[gy..gy + o_n]);
                    for rr in 0..nr {
                        let a = &taylor.rows[rr * k2..(rr + 1) * k2];
                        let da = &taylor.drows[rr * k2..(rr + 1) * k2];
                        let p = dot(&a[..o_n], ux) + dot(&a[o_n..], uy);
                        let q = dot(&a[..o_n], lx) + dot(&a[o_n..], ly);
                        let mut s = T::zero();
                        for j in 0..o_n {
                            s = s + da[j] * (p * lx[j] + q * ux[j]) + da[o_n + j] * (p * ly[j] + q * uy[j]);
                        }
                        acc = acc + s;
                    }
                }
                let k = self.h_index(t);
                gh[k] = gh[k] - ws2 * acc;
            }
            // Central rows: H = h_t + h_{t+1}, ∂H/∂h_t = ∂H/∂h_{t+1} = 1.
            if self.opts.central && t + 2 < t_n {
                let hh = self.h_at(x.h, t) + self.h_at(x.h, t + 1);
                let (a, da) = central_row(hh, o_n);
                let mut acc = T::zero();
                for d in 0..self.d {
                    let idx = [t * b + d * o_n + o_n - 2, (t + 1) * b + d * o_n + o_n - 1, (t + 2) * b + d * o_n + o_n - 2];
                    let p = a[0] * u[idx[0]] + a[1] * u[idx[1]] + a[2] * u[idx[2]];
                    let q = a[0] * lam[idx[0]] + a[1] * lam[idx[1]] + a[2] * lam[idx[2]];
                    for j in 0..3 {
                        acc = acc + da[j] * (p * lam[idx[j]] + q * u[idx[j]]);
                    }
                }
                let g = ws2 * acc;
                let (k0, k1) = (self.h_index(t), self.h_index(t + 1));
                gh[k0] = gh[k0] - g;
                gh[k1] = gh[k1] - g;
            }
        }
    }
}

#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * y)
}
