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

/// One column `col` of the factorization (global column `global`, `kn` rows below the
/// diagonal): its pivot tested (the first failing column recorded per lane in `fail`), its
/// square root taken and the rows below scaled by its reciprocal, as `factor_system` does.
#[inline(always)]
fn pivot<T: Real, const L: usize>(col: &mut [[T; L]], kn: usize, global: usize, fail: &mut [usize; L]) {
    let (zero, inf) = (T::zero(), T::infinity());
    let ajj = col[0];
    // `ajj > 0 && ajj < ∞` is false for NaN: the scalar kernel's test, lane by lane.
    let mut bad = false;
    for l in 0..L {
        bad |= !(ajj[l] > zero && ajj[l] < inf);
    }
    if bad {
        for l in 0..L {
            if !(ajj[l] > zero && ajj[l] < inf) && fail[l] == usize::MAX {
                fail[l] = global;
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
    for v in &mut col[1..=kn] {
        for l in 0..L {
            v[l] = v[l] * inv[l];
        }
    }
}

/// `factor_system` on `L` interleaved systems, columns `0 ≤ j < nb` of the window `a` (which
/// starts at global column `j0` of systems of order `dims.n` and holds the columns up to
/// `min(j0 + nb + kd, dims.n)`). Records in `fail`, per lane, the first failing (global) column
/// (`usize::MAX` if none). A failed lane keeps computing (its values are garbage, possibly NaN)
/// without touching the other lanes.
///
/// Right-looking with rank-1 updates, as `factor_system`, the trailing columns of each update
/// taken 2 at a time: rows `r ≥ c + 1` load `L[r, j]` once for the columns `c` and
/// `c + 1` (2.5 memory operations per element update instead of 3). Every element still
/// receives exactly the scalar kernel's updates in the same order, unfused (one per column
/// `j`, which is all the grouping reorders: updates of different elements), so each lane is
/// bitwise equal to `factor_system`.
///
/// Measured (AMD EPYC Zen 4, AVX2, 8-lane f64 packs, `examples/gemm_ratio.rs` with one thread,
/// n = 1000, batch 256, best of rounds, GFLOP/s, interleaved runs of the two builds): before
/// (the scalar kernel's loop below kd 32, the register-blocked update from 32) → this: kd 4
/// 4.2 → 4.4, 8 6.9 → 7.1, 17 10.1 → 10.4, 33 10.8 → 13.4, 64 14.2 → 15.9; on a loaded machine
/// kd 64 has also measured slower (12.6 → 10.3), so take these as ±20%. Groups of 3 and 4
/// columns were slower than 1 (4: register spills). The former register-blocked update (`K = 4`
/// columns factored, then each trailing element loaded once for their 4 updates) was slower
/// than the plain rank-1 update at every kd measured (GFLOP/s, 33: 10.7 / 12.8, 48: 11.9 / 14.8,
/// 64: 13.8 / 16.4, 96: 15.2 / 17.1, 128: 15.6 / 17.9) and is gone.
#[inline(always)]
fn factor_window<T: Real, const L: usize>(a: &mut [[T; L]], dims: Dims, nb: usize, j0: usize, fail: &mut [usize; L]) {
    let (n, kd) = (dims.n - j0, dims.kd);
    let w = kd + 1;
    for jj in 0..nb {
        let (col, rest) = a[jj * w..].split_at_mut(w);
        let kn = kd.min(n - 1 - jj);
        pivot(col, kn, j0 + jj, fail);
        let mut c = 1;
        while c < kn {
            let (lc0, lc1) = (col[c], col[c + 1]);
            let (d0, d1) = rest[(c - 1) * w..].split_at_mut(w);
            let (d0, d1) = (&mut d0[..kn - c + 1], &mut d1[..kn - c]);
            sub_mul(&mut d0[0], col[c], lc0);
            for ((v0, v1), lr) in d0[1..].iter_mut().zip(d1.iter_mut()).zip(&col[c + 1..=kn]) {
                sub_mul(v0, *lr, lc0);
                sub_mul(v1, *lr, lc1);
            }
            c += 2;
        }
        for c in c..=kn {
            let lc = col[c];
            let dst = &mut rest[(c - 1) * w..(c - 1) * w + (kn - c + 1)];
            for (v, lr) in dst.iter_mut().zip(&col[c..=kn]) {
                sub_mul(v, *lr, lc);
            }
        }
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

