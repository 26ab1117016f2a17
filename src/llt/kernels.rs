//! The pack micro-kernels: the per-system reference kernels (`factor.rs`, `solve.rs`) on `L`
//! lane-interleaved systems, one window of columns at a time. Every `[T; L]` operation is
//! written as a `for l in 0..L` loop that the compiler turns into SIMD instructions under the
//! instruction set the caller dispatched (`crate::simd`); the operations per lane are exactly
//! the reference kernels' (same order, no FMA, the same reciprocals), so every lane is bitwise
//! equal to the reference (see `docs/ARCHITECTURE.md`).

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use crate::scalar::Real;
use crate::simd::{Isa, dispatch};

/// [`factor_window`] of the columns `cols` (the window `a` starts at `cols.start`) under `isa`:
/// one dispatch per window.
#[inline]
pub(crate) fn factor_window_in<T: Real, const L: usize>(isa: Isa, a: &mut [[T; L]], dims: Dims, cols: Range<usize>, fail: &mut [usize; L]) {
    dispatch(isa, FactorWindow { a, dims, nb: cols.len(), j0: cols.start, fail });
}

// The direction of a substitution is a const parameter of `SolveWindow` so that the operation
// stays within 8 words, which pulp passes in registers: passed through memory, the compiler
// loses track of which slices may alias and leaves the lane loops scalar (measured: f32,
// kd = 17, 1.4× slower).

/// The forward substitution of [`solve_window`] under `isa`: one dispatch per window.
#[inline]
pub(crate) fn forward_in<T: Real, const L: usize>(isa: Isa, l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize) {
    dispatch(isa, SolveWindow::<T, L, true> { l, b, dims, j0 });
}

/// The backward substitution of [`solve_window`] under `isa`: one dispatch per window.
#[inline]
pub(crate) fn backward_in<T: Real, const L: usize>(isa: Isa, l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize) {
    dispatch(isa, SolveWindow::<T, L, false> { l, b, dims, j0 });
}

/// The arguments of [`factor_window`], as a SIMD operation (8 words: passed in registers).
struct FactorWindow<'a, T, const L: usize> {
    a: &'a mut [[T; L]],
    dims: Dims,
    nb: usize,
    j0: usize,
    fail: &'a mut [usize; L],
}

impl<T: Real, const L: usize> pulp::WithSimd for FactorWindow<'_, T, L> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        factor_window(self.a, self.dims, self.nb, self.j0, self.fail);
    }
}

/// The arguments of [`solve_window`], as a SIMD operation (at most 8 words: see
/// [`forward_in`]).
struct SolveWindow<'a, T, const L: usize, const FORWARD: bool> {
    l: &'a [[T; L]],
    b: &'a mut [[T; L]],
    dims: Dims,
    j0: usize,
}

impl<T: Real, const L: usize, const FORWARD: bool> pulp::WithSimd for SolveWindow<'_, T, L, FORWARD> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        solve_window(self.l, self.b, self.dims, self.j0, FORWARD);
    }
}

/// The shape of one system: order `n`, bandwidth `kd`, right-hand sides `nrhs` (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub n: usize,
    pub kd: usize,
    pub nrhs: usize,
}

/// Columns per register block of [`factor_window`] (the rank-`K` update of the trailing band).
const K: usize = 4;
/// Narrower bands use rank-1 updates (`K = 1`): their trailing triangle is too small to gain.
const BLOCK_MIN_KD: usize = 32;

/// `factor_system` on `L` interleaved systems, columns `0 ≤ j < nb` of the window `a` (which
/// starts at global column `j0` of systems of order `dims.n` and holds the columns up to
/// `min(j0 + nb + kd, dims.n)`). Records in `fail`, per lane, the
/// first failing (global) column (`usize::MAX` if none). A failed lane keeps computing (its
/// values are garbage, possibly NaN) without touching the other lanes.
///
/// Register-blocked: the columns are taken `K` at a time; the `K` columns are factored among
/// themselves, then each trailing element `A[r, c]` receives their `K` rank-1 updates in one
/// load/store (`v − l₁·m₁ − l₂·m₂ − …`, left to right). Every element still receives exactly
/// the scalar kernel's updates in the same order, unfused, so each lane is bitwise equal to
/// `factor_system`; only the loads and stores are fewer.
#[inline(always)]
fn factor_window<T: Real, const L: usize>(a: &mut [[T; L]], dims: Dims, nb: usize, j0: usize, fail: &mut [usize; L]) {
    let (n, kd) = (dims.n - j0, dims.kd);
    let w = kd + 1;
    let (zero, inf) = (T::zero(), T::infinity());
    let kb = if kd >= BLOCK_MIN_KD { K } else { 1 };
    let mut j = 0;
    while j < nb {
        let jend = (j + kb).min(nb);
        // 1. The block's own columns: pivot, scale, update the block's later columns.
        for jj in j..jend {
            let (col, rest) = a[jj * w..].split_at_mut(w);
            let ajj = col[0];
            // `ajj > 0 && ajj < ∞` is false for NaN: the scalar kernel's test, lane by lane.
            let mut bad = false;
            for l in 0..L {
                bad |= !(ajj[l] > zero && ajj[l] < inf);
            }
            if bad {
                for l in 0..L {
                    if !(ajj[l] > zero && ajj[l] < inf) && fail[l] == usize::MAX {
                        fail[l] = j0 + jj;
                    }
                }
            }
            let mut ljj = ajj;
            let mut inv = ajj;
            for l in 0..L {
                ljj[l] = ajj[l].sqrt();
                inv[l] = ljj[l].recip();
            }
            col[0] = ljj;
            let kn = kd.min(n - 1 - jj);
            for v in &mut col[1..=kn] {
                for l in 0..L {
                    v[l] = v[l] * inv[l];
                }
            }
            // Columns jj + c of the block (c ≤ kn), rows jj + c ..= jj + kn.
            // (Unblocked, `kb = 1`: every column up to jj + kn, the scalar kernel's loop.)
            let inner = if kb == 1 { kn } else { kn.min(jend - 1 - jj) };
            for c in 1..=inner {
                let lc = col[c];
                let dst = &mut rest[(c - 1) * w..(c - 1) * w + (kn - c + 1)];
                for (v, lr) in dst.iter_mut().zip(&col[c..=kn]) {
                    sub_mul(v, *lr, lc);
                }
            }
        }
        if kb == 1 {
            j = jend;
            continue;
        }
        // 2. Trailing columns c ≥ jend reached by the block: rows r ≤ rmax, each element
        //    updated by the block's columns jj ≥ r − kd (those whose band reaches row r).
        let rmax = (jend - 1 + kd).min(n - 1);
        let k = jend - j;
        let (head, tail) = a.split_at_mut(jend * w);
        let block = &head[j * w..];
        for c in jend..=rmax {
            // lc[t] = L[c, j + t] where the band of column j + t reaches row c.
            let tc = (c.saturating_sub(kd)).max(j) - j;
            let mut lc = [[T::zero(); L]; K];
            for t in tc..k {
                lc[t] = block[t * w + (c - j - t)];
            }
            let dst = &mut tail[(c - jend) * w..(c - jend) * w + (rmax - c + 1)];
            for (i, v) in dst.iter_mut().enumerate() {
                let r = c + i;
                let t0 = (r.saturating_sub(kd)).max(j) - j;
                let mut acc = *v;
                if t0 == 0 && k == K {
                    for t in 0..K {
                        let lr = block[t * w + (r - j - t)];
                        for l in 0..L {
                            acc[l] = acc[l] - lr[l] * lc[t][l];
                        }
                    }
                } else {
                    for t in t0..k {
                        let lr = block[t * w + (r - j - t)];
                        for l in 0..L {
                            acc[l] = acc[l] - lr[l] * lc[t][l];
                        }
                    }
                }
                *v = acc;
            }
        }
        j = jend;
    }
}

/// `solve_system` on `L` interleaved systems, one block of columns `j0 ≤ j < j0 + l.len()/(kd+1)`
/// of `L` (`l` holds just those columns): the forward substitution (`forward`, blocks in
/// increasing order) or the backward one (blocks in decreasing order). `b` is the whole
/// interleaved right-hand side. The same operations in the same order per lane.
#[inline(always)]
fn solve_window<T: Real, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, forward: bool) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    let nb = l.len() / w;
    if forward {
        for jl in 0..nb {
            let j = j0 + jl;
            let col = &l[jl * w..jl * w + w];
            let kn = kd.min(n - 1 - j);
            let (head, tail) = b.split_at_mut((j + 1) * nrhs);
            let yj = &mut head[j * nrhs..];
            let d = col[0];
            for v in yj.iter_mut() {
                let mut x = *v;
                for l in 0..L {
                    x[l] = x[l] * d[l].recip();
                }
                *v = x;
            }
            for (r, lr) in col[1..=kn].iter().enumerate() {
                for (t, y) in tail[r * nrhs..(r + 1) * nrhs].iter_mut().zip(yj.iter()) {
                    sub_mul(t, *lr, *y);
                }
            }
        }
        return;
    }
    for jl in (0..nb).rev() {
        let j = j0 + jl;
        let col = &l[jl * w..jl * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let xj = &mut head[j * nrhs..];
        // Farthest row first, as `solve_system` (the newest `x` last: a short latency chain).
        for (r, lr) in col[1..=kn].iter().enumerate().rev() {
            for (v, x) in xj.iter_mut().zip(&tail[r * nrhs..(r + 1) * nrhs]) {
                sub_mul(v, *lr, *x);
            }
        }
        let d = col[0];
        for v in xj.iter_mut() {
            let mut x = *v;
            for l in 0..L {
                x[l] = x[l] * d[l].recip();
            }
            *v = x;
        }
    }
}

/// `v ← v − a·b` lane by lane (unfused). The operands are taken by value and `v` is loaded
/// whole before it is stored whole: the kernels run inlined into pulp's dispatch entry, where
/// the compiler no longer knows that the slices they come from do not overlap, and element by
/// element it would have to keep the lanes scalar (measured: the substitutions ran 1.4× slower).
#[inline(always)]
fn sub_mul<T: Real, const L: usize>(v: &mut [T; L], a: [T; L], b: [T; L]) {
    let mut x = *v;
    for l in 0..L {
        x[l] = x[l] - a[l] * b[l];
    }
    *v = x;
}

/// Reads one element of every row of `rows` (a streaming pass that the hardware prefetches
/// well), so that the dependent loads of the factorization or substitution that follows hit
/// the cache instead of waiting on memory one column at a time.
#[inline(never)]
pub(crate) fn touch<T: Real, const L: usize>(rows: &[[T; L]]) {
    let mut acc = T::zero();
    for row in rows {
        acc = acc + row[0];
    }
    std::hint::black_box(acc);
}

