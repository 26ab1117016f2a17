//! The rows (`docs/ARCHITECTURE.md`, "The S-MNN rows") and the per-system kernels that assemble `M = AᵀA` (into the
//! column-major band of [`crate::BandBatch`]) and `Aᵀβ`, and the backward's row-local sums.
//!
//! Nothing here forms `A`: each row family is handled where it lives (the equation rows inside
//! one step block, the Taylor rows between the blocks `t` and `t + 1` of one variable, the central
//! rows across three blocks of one variable).

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use super::layer::Smnn;
use crate::band::lanes::Window;
use crate::scalar::Real;
use crate::simd::Isa;
use crate::simd::vector::{VecOp, Vector, VectorSet, dispatch, rows};

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

/// The Taylor rows of one variable between the steps `t` and `t + 1` for one step size `h`, as
/// dense rows over the `2O` local unknowns `[u[t, d, 0..O], u[t+1, d, 0..O]]`, with their
/// derivatives with respect to `h`, and the weighted Gram matrix `w_s² Σ a aᵀ` of the rows.
///
/// They do not depend on `d`: computed once per step (once per system when `steps` is broadcast).
///
/// Every entry of column `i` (local order `o_i = i mod O`) is `a_i(h) = a_i(1)·h^{o_i}`, so the
/// rows, their derivatives `o_i·a_i(1)·h^{o_i−1}` and the Gram entries
/// `G_ij(h) = G_ij(1)·h^{o_i+o_j}` are the `h = 1` tables (built once) scaled by powers of `h`.
pub(crate) struct Taylor<T> {
    /// The unweighted Gram matrix `G(1) = Σ a(1) a(1)ᵀ`, `2O × 2O` row-major, full.
    pub(crate) gram1_full: Vec<T>,
    /// The unweighted Gram matrix at `h = 1`, lower triangle packed row by row.
    pub(crate) gram1: Vec<T>,
    /// `o_i + o_j` for each packed Gram entry.
    pub(crate) gram_pow: Vec<usize>,
    /// For each packed Gram entry, its position in the band relative to `(t·b + d·O)·(kd + 1)`.
    pub(crate) gram_off: Vec<usize>,
}

impl<T: Real> Taylor<T> {
    pub(crate) fn new(layer: &Smnn) -> Self {
        let (o, k) = (layer.o, layer.k_taylor());
        let k2 = 2 * o;
        let mut inv_fact = Vec::with_capacity(o);
        let mut f = T::one();
        for j in 0..o {
            if j > 0 {
                f = f / T::from_f64(j as f64);
            }
            inv_fact.push(f);
        }
        // The rows at h = 1: forward Σ_{o≥k} x_o/(o−k)! − y_k, backward Σ_{o≥k} (−1)^o y_o/(o−k)! − (−1)^k x_k.
        let sign = |j: usize| if j.is_multiple_of(2) { T::one() } else { -T::one() };
        let mut rows1 = vec![T::zero(); 2 * k * k2];
        for kk in 0..k {
            let f = kk * k2;
            rows1[f + kk..f + o].copy_from_slice(&inv_fact[..o - kk]);
            rows1[f + o + kk] = -T::one();
            let bk = (k + kk) * k2;
            for j in kk..o {
                rows1[bk + o + j] = sign(j) * inv_fact[j - kk];
            }
            rows1[bk + kk] = -sign(kk);
        }
        let mut gram1_full = vec![T::zero(); k2 * k2];
        for i in 0..k2 {
            for j in 0..k2 {
                let mut g = T::zero();
                for r in rows1.chunks_exact(k2) {
                    g = g + r[i] * r[j];
                }
                gram1_full[i * k2 + j] = g;
            }
        }
        let mut gram1 = Vec::with_capacity(k2 * (k2 + 1) / 2);
        let mut gram_pow = Vec::with_capacity(k2 * (k2 + 1) / 2);
        let mut gram_off = Vec::with_capacity(k2 * (k2 + 1) / 2);
        let (b, w) = (layer.block(), layer.kd + 1);
        let local = |i: usize| if i < o { i } else { b + i - o };
        for i in 0..k2 {
            for j in 0..=i {
                gram_off.push(local(j) * w + (local(i) - local(j)));
                let mut g = T::zero();
                for r in rows1.chunks_exact(k2) {
                    g = g + r[i] * r[j];
                }
                gram1.push(g);
                gram_pow.push(i % o + j % o);
            }
        }
        Self { gram1_full, gram1, gram_pow, gram_off }
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

/// Per-system input slices of the right-hand side `Aᵀβ`.
#[derive(Clone, Copy)]
pub(crate) struct Sys<'a, T> {
    pub c: &'a [T],
    pub r: &'a [T],
    pub v: &'a [T],
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

    /// Assembles one system's `M = AᵀA` into `band` (`n·(kd+1)` elements, any contents: each
    /// column is zeroed just before the first step that reaches it, while it is in cache): a
    /// [`PackAssembler`] with one lane.
    ///
    /// Cost per step: `E·b²/2` (equations) + `2K·(2O)²/2` (Taylor Gram, once per distinct `h`)
    /// + `D·(2O)²/2` (scatter) + `6D` (central).
    pub(crate) fn assemble_lhs<T: Real>(&self, c: &[T], h: &[T], band: &mut [T]) {
        // Compiled for the best instruction set: the assembly's operations are unfused under
        // every set (the same bits as the portable build).
        PackAssembler::<T, 1>::new(self, c, [h], Isa::best()).fill(band.as_chunks_mut::<1>().0, self.n());
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
}

/// Steps whose coefficient rows are transposed in at a time.
const CHUNK: usize = 32;

/// Assembles `M = AᵀA` of `L` consecutive systems (coefficients `c`: their `L·len` elements,
/// system after system; step sizes `h[lane]`) into one pack, step by step and on demand:
/// `pack[k][lane]` is band element `k = j·(kd+1) + (i − j)` (`M[i, j]`) of system `lane`, the
/// layout the packed Cholesky factors in place, so the factorization can take each window of
/// columns as soon as it is assembled (in cache). Any contents on entry: each pack row is
/// zeroed just before the first step that reaches it. The systems advance in lockstep, each
/// operation on `[T; L]` (one SIMD operation over the systems; the coefficient rows of a step
/// are transposed in with the packs' AVX2 transposes) and the same operations per system as
/// one at a time, so every lane gets the same bits.
///
/// After steps `0..=t`, the columns of the blocks `0..=t` are final: no later step reaches them
/// (step `t` writes into the blocks `t`, `t + 1` (Taylor) and `t + 2` (central)).
pub(crate) struct PackAssembler<'a, T, const L: usize> {
    layer: &'a Smnn,
    c: &'a [T],
    h: [&'a [T]; L],
    isa: Isa,
    /// The `h = 1` tables of the Taylor rows.
    taylor: Taylor<T>,
    /// The equation rows of every lane (`E·b` per step), `CHUNK` steps at a time.
    rows: Window<T, L>,
    /// `h^0 .. h^{2O−2}` and `w_s²·G(h)` (packed lower triangle) of every lane, for `gram_h`.
    hp: Vec<[T; L]>,
    gram: Vec<[T; L]>,
    gram_h: Option<[T; L]>,
    /// Columns zeroed so far.
    zeroed: usize,
    /// The next step to assemble.
    step: usize,
}

impl<'a, T: Real, const L: usize> PackAssembler<'a, T, L> {
    /// The assembler of the `L` systems with coefficients `c` and step sizes `h`, running its
    /// `[T; L]` operations under `isa`.
    pub(crate) fn new(layer: &'a Smnn, c: &'a [T], h: [&'a [T]; L], isa: Isa) -> Self {
        let zero = [T::zero(); L];
        let taylor = Taylor::new(layer);
        let (n_gram, n_hp) = (taylor.gram1.len(), 2 * layer.o - 1);
        Self {
            layer,
            c,
            h,
            isa,
            taylor,
            rows: Window::new(),
            hp: vec![zero; n_hp],
            gram: vec![zero; n_gram],
            gram_h: None,
            zeroed: 0,
            step: 0,
        }
    }

    /// Columns final so far.
    pub(crate) fn done(&self) -> usize {
        let l = self.layer;
        if self.step >= l.t { l.n() } else { self.step * l.block() }
    }

    /// Assembles steps until at least the first `upto` columns are final (see [`done`]),
    /// dispatched once per call under the assembler's instruction set (`FillOp`).
    pub(crate) fn fill(&mut self, pack: &mut [[T; L]], upto: usize) {
        let isa = self.isa;
        dispatch(isa, FillOp { asm: self, pack, upto });
    }

    #[inline(always)]
    fn fill_with<V: Vector<T>>(&mut self, pack: &mut [[T; L]], upto: usize) {
        while self.done() < upto.min(self.layer.n()) {
            self.assemble_step::<V>(pack);
        }
    }

    /// Adds the rows of step `t = self.step` (equations and initial values at `t`, Taylor rows
    /// between `t` and `t + 1`, central rows over `t .. t + 2`).
    ///
    /// Cost per system: `E·b²/2` (equations) + `(2O)²/2` (Taylor Gram, once per distinct `h`)
    /// + `D·(2O)²/2` (scatter) + `6D` (central).
    #[inline(always)]
    fn assemble_step<V: Vector<T>>(&mut self, pack: &mut [[T; L]]) {
        let ly = self.layer;
        let t = self.step;
        self.step += 1;
        let (t_n, e_n, d_n, o_n, b, w) = (ly.t, ly.e, ly.d, ly.o, ly.block(), ly.kd + 1);
        let weq2 = T::from_f64(ly.opts.weight_equation * ly.opts.weight_equation);
        let wi2 = T::from_f64(ly.opts.weight_init_var * ly.opts.weight_init_var);
        let ws2 = T::from_f64(ly.opts.weight_smooth * ly.opts.weight_smooth);
        let zero = [T::zero(); L];
        let h = self.h;
        let upto = ((t + 3) * b).min(ly.n());
        if upto > self.zeroed {
            pack[self.zeroed * w..upto * w].fill(zero);
            self.zeroed = upto;
        }
        let base = t * b;
        // 1. Equations: block (t, t) += w_eq² Σ_e c cᵀ (lower triangle).
        let tc = if ly.ct == 1 { 0 } else { t };
        let eb = e_n * b;
        let rows = if eb > 0 { self.rows.get(self.c, self.c.len() / L, tc * eb..(tc + 1) * eb, CHUNK * eb) } else { &[] };
        for row in rows.chunks_exact(b) {
            for q in 0..b {
                let cq = rows::scale::<T, V, L>(weq2, &row[q]);
                if cq.iter().all(|&x| x == T::zero()) {
                    continue;
                }
                let k0 = (base + q) * w;
                for (m, x) in pack[k0..k0 + (b - q)].iter_mut().zip(&row[q..]) {
                    *m = rows::add_mul::<T, V, L>(m, &cq, x);
                }
            }
        }
        // 2. Initial values: diagonal.
        if t < ly.s {
            for d in 0..d_n {
                for o in 0..ly.i {
                    let m = &mut pack[(base + d * o_n + o) * w];
                    *m = rows::add_splat::<T, V, L>(m, wi2);
                }
            }
        }
        // 3. Taylor rows between t and t + 1: w_s² G(h) with G_ij(h) = G_ij(1)·h^{o_i+o_j}.
        if t + 1 < t_n {
            let hs: [T; L] = std::array::from_fn(|l| ly.h_at(h[l], t));
            if self.gram_h != Some(hs) {
                // The powers as `Taylor::powers` forms them (1, then repeated products).
                let mut p = [T::one(); L];
                for x in self.hp.iter_mut() {
                    *x = p;
                    for l in 0..L {
                        p[l] = p[l] * hs[l];
                    }
                }
                for (g, (&g1, &pw)) in self.gram.iter_mut().zip(self.taylor.gram1.iter().zip(&self.taylor.gram_pow)) {
                    *g = rows::scale::<T, V, L>(ws2 * g1, &self.hp[pw]);
                }
                self.gram_h = Some(hs);
            }
            for d in 0..d_n {
                let blk = &mut pack[(base + d * o_n) * w..];
                for (&off, g) in self.taylor.gram_off.iter().zip(&self.gram) {
                    blk[off] = rows::add::<T, V, L>(&blk[off], g);
                }
            }
        }
        // 4. Central rows over t, t + 1, t + 2.
        if ly.opts.central && t + 2 < t_n {
            let mut g = [zero; 6];
            for (lane, &hl) in h.iter().enumerate() {
                let (a, _) = central_row(ly.h_at(hl, t) + ly.h_at(hl, t + 1), o_n);
                let mut k = 0;
                for i in 0..3 {
                    for j in 0..=i {
                        g[k][lane] = ws2 * a[i] * a[j];
                        k += 1;
                    }
                }
            }
            for d in 0..d_n {
                let idx = [base + d * o_n + o_n - 2, base + b + d * o_n + o_n - 1, base + 2 * b + d * o_n + o_n - 2];
                let mut k = 0;
                for i in 0..3 {
                    for j in 0..=i {
                        // M[idx_i, idx_j], idx_i ≥ idx_j.
                        let m = &mut pack[idx[j] * w + (idx[i] - idx[j])];
                        for l in 0..L {
                            m[l] = m[l] + g[k][l];
                        }
                        k += 1;
                    }
                }
            }
        }

    }
}

/// [`PackAssembler::fill`] as one SIMD operation: the lane loops of `assemble_step` compiled for
/// the dispatched instruction set.
struct FillOp<'p, 'a, T, const L: usize> {
    asm: &'p mut PackAssembler<'a, T, L>,
    pack: &'p mut [[T; L]],
    upto: usize,
}

impl<T: Real, const L: usize> VecOp for FillOp<'_, '_, T, L> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        if L.is_multiple_of(<T::Vec<S> as Vector<T>>::W) {
            self.asm.fill_with::<T::Vec<S>>(self.pack, self.upto);
        } else {
            self.asm.fill_with::<T::One<S>>(self.pack, self.upto);
        }
    }
}
