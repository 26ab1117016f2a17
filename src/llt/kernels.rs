//! The fast kernels: factor and substitutions of `L` lane-interleaved systems (one pack, or
//! `L = 1`: one system in the band layout), one window of columns at a time, on native
//! vectors ([`crate::simd::vector`]), with fused multiply–adds where the instruction set has
//! them.
//!
//! # What every kernel computes (the operation order that makes results deterministic)
//!
//! Per system, with `A` the band (`A[r, c]`, `c ≤ r ≤ c + kd`) and `L` its factor:
//!
//! ```text
//! s      = A[r, c];  for k = max(0, r − kd), …, c − 1 (increasing):  s = s − L[r, k]·L[c, k]
//! L[c,c] = √s (r = c),  inv_c = 1 / L[c, c];   L[r, c] = s · inv_c (r > c)
//! y[j]   = b[j] · inv_j after  b[j] −= L[j, k]·y[k]  for k increasing   (forward)
//! x[j]   = (y[j] − Σ L[r, j]·x[r], r from j + kd down to j + 1) · inv_j   (backward)
//! ```
//!
//! with every `s − a·b` one fused multiply–add where the instruction set fuses (AVX2,
//! AVX-512, NEON) and a multiply and a subtract where it does not (the portable build). Each
//! element's terms enter in exactly this order whatever the blocking: the right-looking panel
//! update, the register tiles of its trailing update and the staircase rows at the band's edge
//! all apply a column's terms in increasing `k`, and an element never receives a term outside
//! the band (no zero padding: `s − 0·x` can turn `−0` into `+0`). So a system gets the same
//! bits in any lane of any pack width, alone (`L = 1`), on any thread, and — since vectors
//! change only how many lanes one instruction holds — under AVX2 and AVX-512 alike. The
//! reference kernels (`factor.rs`, `solve.rs`: `Kernel::Reference`) keep the unfused order
//! of LAPACK's `dpbtf2`, reproducible on every machine; these are held to them by error
//! bounds (`tests/packs.rs`).
//!
//! # Shape of the factorization
//!
//! Right-looking, `K` columns at a time ([`panel_width`]): the panel's columns are factored
//! (pivot, scale, rank-1 updates of the panel's later columns), then every element of the
//! trailing triangle they reach takes the panel's terms in one pass: `ROWS × COLS` register
//! tiles of accumulators (`Vector::TILE`) where all `K` terms apply, row pieces of up to
//! `COLS` elements on the diagonal blocks and on the last `K − 1` rows (the staircase, where
//! row `r` takes only the terms `k ≥ r − kd`). A tile loads each element once, applies `K`
//! terms from registers and stores it once, instead of a load and a store per term: the
//! rank-1 form is bound by stores (two loads and a store per multiply–add).

// The explicit lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use crate::scalar::Real;
use crate::simd::vector::{VecOp, Vector, VectorSet, dispatch};
use crate::simd::Isa;

/// The shape of one system: order `n`, bandwidth `kd`, right-hand sides `nrhs` (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub n: usize,
    pub kd: usize,
    pub nrhs: usize,
}

/// Columns per panel of the factorization for bandwidth `kd`: the panel's terms are applied
/// to the trailing triangle from registers, `K` at a time. Narrow bands have too small a
/// triangle to gain (and their per-column latency chain dominates).
pub(crate) fn panel_width(kd: usize) -> usize {
    match kd {
        0..=5 => 1,
        6..=15 => 4,
        _ => 8,
    }
}

/// [`factor_window`] of the columns `cols` (the window `a` starts at `cols.start`) under `isa`:
/// one dispatch per window. `inv` receives `1/L[j,j]` of the window's columns (`cols.len()`
/// rows).
#[inline]
pub(crate) fn factor_window_in<T: Real, const L: usize>(
    isa: Isa,
    a: &mut [[T; L]],
    dims: Dims,
    cols: Range<usize>,
    fail: &mut [usize; L],
    inv: &mut [[T; L]],
) {
    dispatch(isa, FactorWindow { a, dims, nb: cols.len(), j0: cols.start, fail, inv });
}

/// The forward substitution of one window of factored columns (`l`, starting at global column
/// `j0`) into the whole interleaved right-hand side `b` (`n·nrhs` rows), with their
/// reciprocal pivots `inv` (one row per column of `l`).
#[inline]
pub(crate) fn forward_in<T: Real, const L: usize>(isa: Isa, l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    dispatch(isa, Substitute::<T, L, true> { l, b, dims, j0, inv });
}

/// The backward substitution of one window (see [`forward_in`]); windows go last to first.
#[inline]
pub(crate) fn backward_in<T: Real, const L: usize>(isa: Isa, l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    dispatch(isa, Substitute::<T, L, false> { l, b, dims, j0, inv });
}

/// `inv[j] = 1/L[j,j]` for the columns of the window `l` of a stored factor (bandwidth `kd`),
/// for the substitutions (computed once per solve, not per right-hand side).
#[inline]
pub(crate) fn recips_in<T: Real, const L: usize>(isa: Isa, l: &[[T; L]], kd: usize, inv: &mut [[T; L]]) {
    dispatch(isa, Recips { l, kd, inv });
}

/// The arguments of [`factor_window`], as a vector operation.
struct FactorWindow<'a, T, const L: usize> {
    a: &'a mut [[T; L]],
    dims: Dims,
    nb: usize,
    j0: usize,
    fail: &'a mut [usize; L],
    inv: &'a mut [[T; L]],
}

impl<T: Real, const L: usize> VecOp for FactorWindow<'_, T, L> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        if L.is_multiple_of(<T::Vec<S> as Vector<T>>::W) {
            factor_window::<T, T::Vec<S>, L>(self.a, self.dims, self.nb, self.j0, self.fail, self.inv);
        } else {
            factor_window::<T, T::One<S>, L>(self.a, self.dims, self.nb, self.j0, self.fail, self.inv);
        }
    }
}

/// The arguments of [`forward_window`] (`FORWARD`) or [`backward_window`].
struct Substitute<'a, T, const L: usize, const FORWARD: bool> {
    l: &'a [[T; L]],
    b: &'a mut [[T; L]],
    dims: Dims,
    j0: usize,
    inv: &'a [[T; L]],
}

impl<T: Real, const L: usize, const FORWARD: bool> VecOp for Substitute<'_, T, L, FORWARD> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        let Self { l, b, dims, j0, inv } = self;
        match (L.is_multiple_of(<T::Vec<S> as Vector<T>>::W), FORWARD) {
            (true, true) => forward_window::<T, T::Vec<S>, L>(l, b, dims, j0, inv),
            (true, false) => backward_window::<T, T::Vec<S>, L>(l, b, dims, j0, inv),
            (false, true) => forward_window::<T, T::One<S>, L>(l, b, dims, j0, inv),
            (false, false) => backward_window::<T, T::One<S>, L>(l, b, dims, j0, inv),
        }
    }
}

/// The arguments of [`recips`].
struct Recips<'a, T, const L: usize> {
    l: &'a [[T; L]],
    kd: usize,
    inv: &'a mut [[T; L]],
}

impl<T: Real, const L: usize> VecOp for Recips<'_, T, L> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        if L.is_multiple_of(<T::Vec<S> as Vector<T>>::W) {
            recips::<T, T::Vec<S>, L>(self.l, self.kd, self.inv);
        } else {
            recips::<T, T::One<S>, L>(self.l, self.kd, self.inv);
        }
    }
}

/// Lanes `m·W .. (m+1)·W` of a pack row.
#[inline(always)]
fn ld<T, V: Vector<T>, const L: usize>(row: &[T; L], m: usize) -> V {
    V::load(&row[m * V::W..])
}

/// Writes lanes `m·W .. (m+1)·W` of a pack row.
#[inline(always)]
fn st<T, V: Vector<T>, const L: usize>(row: &mut [T; L], m: usize, v: V) {
    v.store(&mut row[m * V::W..])
}

/// The row of element `A[r, c]` (`c ≤ r ≤ c + kd`) in a window of columns `w = kd + 1` rows
/// each, the window's first column being column 0.
#[inline(always)]
fn ix(w: usize, r: usize, c: usize) -> usize {
    c * w + (r - c)
}

/// Factors columns `0 ≤ j < nb` of the window `a` (which starts at global column `j0` of
/// systems of order `dims.n` and holds the columns up to `min(j0 + nb + kd, dims.n)`), as the
/// module docs say. Records in `fail`, per lane, the first failing (global) column
/// (`usize::MAX` if none): a pivot that is not positive and finite. A failed lane keeps
/// computing (garbage, possibly NaN) without touching the other lanes. `inv[j] = 1/L[j,j]`.
#[inline(always)]
fn factor_window<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], dims: Dims, nb: usize, j0: usize, fail: &mut [usize; L], inv: &mut [[T; L]]) {
    let (n, kd) = (dims.n - j0, dims.kd);
    let w = kd + 1;
    let kp = panel_width(kd);
    let mut j = 0;
    while j < nb {
        let jend = (j + kp).min(nb);
        for jj in j..jend {
            let kn = (n - 1 - jj).min(kd);
            pivot_column::<T, V, L>(a, w, jj, kn + 1, j0 + jj, fail, &mut inv[jj]);
            panel_update::<T, V, L>(a, w, jj, kn, jend);
        }
        trailing::<T, V, L>(a, kd, n, j, jend);
        j = jend;
    }
}

/// Column `jj` of the window (its `rows = kn + 1` band rows inside the matrix): records a
/// pivot that is not positive and finite in `fail` (as global column `col`; NaN fails too),
/// then `L[jj,jj] = √a`, `inv = 1/L[jj,jj]` and the rows below the diagonal scaled by `inv`.
#[inline(always)]
fn pivot_column<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], w: usize, jj: usize, rows: usize, col: usize, fail: &mut [usize; L], inv: &mut [T; L]) {
    let c = &mut a[jj * w..jj * w + rows];
    let d = c[0];
    let (zero, inf) = (T::zero(), T::infinity());
    let mut bad = false;
    for l in 0..L {
        bad |= !(d[l] > zero && d[l] < inf);
    }
    if bad {
        for l in 0..L {
            if !(d[l] > zero && d[l] < inf) && fail[l] == usize::MAX {
                fail[l] = col;
            }
        }
    }
    for m in 0..L / V::W {
        let p = ld::<T, V, L>(&c[0], m).sqrt();
        let iv = p.recip();
        st(&mut c[0], m, p);
        st(inv, m, iv);
        for v in &mut c[1..] {
            st(v, m, ld::<T, V, L>(v, m).mul(iv));
        }
    }
}

/// Rank-1 updates of the panel's later columns `jj + c < jend` (`1 ≤ c ≤ kn`) by column `jj`:
/// `A[jj+r, jj+c] −= L[jj+r, jj]·L[jj+c, jj]` for `c ≤ r ≤ kn` (`kn` = the column's rows
/// below the diagonal).
#[inline(always)]
fn panel_update<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], w: usize, jj: usize, kn: usize, jend: usize) {
    let inner = kn.min(jend - 1 - jj);
    if inner == 0 {
        return;
    }
    let (col, rest) = a[jj * w..].split_at_mut(w);
    for c in 1..=inner {
        let dst = &mut rest[(c - 1) * w..(c - 1) * w + (kn - c + 1)];
        for m in 0..L / V::W {
            let lc: V = ld(&col[c], m);
            for (v, lr) in dst.iter_mut().zip(&col[c..=kn]) {
                st(v, m, ld::<T, V, L>(v, m).fnma(ld(lr, m), lc));
            }
        }
    }
}

/// The trailing update by the panel `j..jend`: every element `A[r, c]` with `jend ≤ c ≤ r ≤
/// rmax` (`rmax = min(jend − 1 + kd, n − 1)`) takes the terms `k = max(j, r − kd) .. jend` in
/// increasing order; `n` is the window-relative order.
#[inline(always)]
fn trailing<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], kd: usize, n: usize, j: usize, jend: usize) {
    let rmax = (jend - 1 + kd).min(n - 1);
    if rmax < jend {
        return;
    }
    let w = kd + 1;
    // Rows up to `rfull` take every term of the panel; the rows after it (the staircase) only
    // those of its last columns.
    let rfull = (j + kd).min(rmax);
    let [tr, tc] = V::TILE;
    let mut c0 = jend;
    while c0 <= rmax {
        let cb = tc.min(rmax + 1 - c0);
        for m in 0..L / V::W {
            // The diagonal block: row c0 + i has columns c0 ..= c0 + i.
            for i in 0..cb {
                let r = c0 + i;
                row_piece::<T, V, L>(a, w, m, (r, c0, i + 1), if r <= rfull { j } else { r - kd }..jend);
            }
            let mut r = c0 + cb;
            if cb == tc {
                while r + tr <= rfull + 1 {
                    tile::<T, V, L>(a, w, m, r, c0, j, jend);
                    r += tr;
                }
            }
            while r <= rmax {
                row_piece::<T, V, L>(a, w, m, (r, c0, cb), if r <= rfull { j } else { r - kd }..jend);
                r += 1;
            }
        }
        c0 += cb;
    }
}

/// A full register tile (`V::TILE`) at rows `r0..`, columns `c0..`, lanes slot `m`, with the
/// terms `ks..ke` (all of them valid for every element).
#[inline(always)]
fn tile<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], w: usize, m: usize, r0: usize, c0: usize, ks: usize, ke: usize) {
    match V::TILE {
        [4, 4] => block::<T, V, L, 4, 4>(a, w, m, r0, c0, ks, ke),
        [3, 3] => block::<T, V, L, 3, 3>(a, w, m, r0, c0, ks, ke),
        _ => block::<T, V, L, 2, 2>(a, w, m, r0, c0, ks, ke),
    }
}

/// `cnt` elements of row `r` from column `c0` (at most `V::TILE[1]`), terms `terms`.
#[inline(always)]
fn row_piece<T: Real, V: Vector<T>, const L: usize>(a: &mut [[T; L]], w: usize, m: usize, (r, c0, cnt): (usize, usize, usize), terms: Range<usize>) {
    let (ks, ke) = (terms.start, terms.end);
    match cnt {
        1 => block::<T, V, L, 1, 1>(a, w, m, r, c0, ks, ke),
        2 => block::<T, V, L, 1, 2>(a, w, m, r, c0, ks, ke),
        3 => block::<T, V, L, 1, 3>(a, w, m, r, c0, ks, ke),
        _ => block::<T, V, L, 1, 4>(a, w, m, r, c0, ks, ke),
    }
}

/// `A[r0 + i, c0 + jc] −= Σ_{k = ks..ke} L[r0 + i, k]·L[c0 + jc, k]` (`i < R`, `jc < C`, every
/// element below or on the diagonal, every term inside the band), terms in increasing `k`,
/// the `R × C` accumulators in registers.
#[inline(always)]
fn block<T: Real, V: Vector<T>, const L: usize, const R: usize, const C: usize>(a: &mut [[T; L]], w: usize, m: usize, r0: usize, c0: usize, ks: usize, ke: usize) {
    let mut acc: [[V; C]; R] = std::array::from_fn(|i| std::array::from_fn(|jc| ld(&a[ix(w, r0 + i, c0 + jc)], m)));
    for k in ks..ke {
        let lr: [V; R] = std::array::from_fn(|i| ld(&a[ix(w, r0 + i, k)], m));
        let lc: [V; C] = std::array::from_fn(|jc| ld(&a[ix(w, c0 + jc, k)], m));
        for i in 0..R {
            for jc in 0..C {
                acc[i][jc] = acc[i][jc].fnma(lr[i], lc[jc]);
            }
        }
    }
    for i in 0..R {
        for jc in 0..C {
            st(&mut a[ix(w, r0 + i, c0 + jc)], m, acc[i][jc]);
        }
    }
}

/// Forward substitution of the window `l` (columns `j0..`) into `b`: `y[j] = b[j]·inv[j]`, then
/// `b[j + r] −= L[j + r, j]·y[j]`.
#[inline(always)]
fn forward_window<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    for (jl, iv) in inv.iter().enumerate().take(l.len() / w) {
        let j = j0 + jl;
        let col = &l[jl * w..jl * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let yj = &mut head[j * nrhs..];
        for m in 0..L / V::W {
            let iv: V = ld(iv, m);
            for v in yj.iter_mut() {
                st(v, m, ld::<T, V, L>(v, m).mul(iv));
            }
            for (r, lr) in col[1..=kn].iter().enumerate() {
                let lr: V = ld(lr, m);
                for (t, y) in tail[r * nrhs..(r + 1) * nrhs].iter_mut().zip(yj.iter()) {
                    st(t, m, ld::<T, V, L>(t, m).fnma(lr, ld(y, m)));
                }
            }
        }
    }
}

/// Backward substitution of the window `l` (columns `j0..`, last to first): `x[j] = (y[j] −
/// Σ L[j + r, j]·x[j + r], r from kn down to 1)·inv[j]`; the farthest row first, so that the
/// newest `x` (the previous column's) enters last and the loop-carried chain is one
/// multiply–add and a multiply.
#[inline(always)]
fn backward_window<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    for jl in (0..l.len() / w).rev() {
        let j = j0 + jl;
        let col = &l[jl * w..jl * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let xj = &mut head[j * nrhs..];
        for m in 0..L / V::W {
            for (q, v) in xj.iter_mut().enumerate() {
                let mut s: V = ld(v, m);
                for r in (0..kn).rev() {
                    s = s.fnma(ld(&col[1 + r], m), ld(&tail[r * nrhs + q], m));
                }
                st(v, m, s.mul(ld(&inv[jl], m)));
            }
        }
    }
}

/// `inv[j] = 1/L[j,j]` for the window `l`'s columns.
#[inline(always)]
fn recips<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], kd: usize, inv: &mut [[T; L]]) {
    for (col, iv) in l.chunks_exact(kd + 1).zip(inv.iter_mut()) {
        for m in 0..L / V::W {
            st(iv, m, ld::<T, V, L>(&col[0], m).recip());
        }
    }
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
