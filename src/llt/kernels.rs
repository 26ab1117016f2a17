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
//! element's terms enter in exactly this order whatever the blocking — the register tiles of
//! rows, the pairs of columns, the staircase rows at the band's edge, the rows of one system in
//! vectors — and an element never receives a term outside the band (no zero padding: `s − 0·x`
//! can turn `−0` into `+0`). So a system gets the same bits in any lane of any pack width,
//! alone (`L = 1`), on any thread, and — since vectors change only how many lanes one
//! instruction holds — under AVX2 and AVX-512 alike. The reference kernels (`factor.rs`,
//! `solve.rs`: `Kernel::Reference`) keep the unfused order of LAPACK's `dpbtf2`, reproducible on
//! every machine; these are held to them by error bounds (`tests/packs.rs`).
//!
//! # Shape of the factorization
//!
//! Left-looking, column by column or two columns at a time ([`factor_window`]): a column's
//! elements are loaded once, take every term from the `kd` factored columns before it (in
//! cache: the window carries them as its history) in register accumulators, 8 rows at a time
//! (each row loaded once for both columns of a pair), then the pivot, the scaling and the
//! forward substitution of the column follow while it is in registers or L1. Each element is
//! stored once, scaled. The right-looking alternative (a rank-1 or rank-`K` update of the
//! trailing triangle after each column or panel) loads and stores every element once per term
//! or per panel: bound by stores and, for wide bands, by the L2 cache (measured on an Intel
//! Xeon: right-looking panels of 4–8 columns with 4×4 register tiles ran at 20–30 GFLOP/s per
//! core on packs in cache, this at 35–47).
//!
//! One system (`L = 1`, from `kd = 8`) runs [`factor_window_vertical`]: the rows of a column in
//! vectors, the same operations per element.

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

/// [`factor_window`] of the columns `cols` under `isa`: one dispatch per window. The window
/// `a` starts `min(kd, cols.start)` columns before `cols.start` (the factored history the new
/// columns' terms come from). `inv` receives `1/L[j,j]` of the window's columns
/// (`cols.len()` rows). With `dims.nrhs > 0`, `b` (the whole interleaved right-hand side,
/// `n·nrhs` rows) is forward-substituted through the window's columns in the same pass.
#[inline]
pub(crate) fn factor_window_in<T: Real, const L: usize>(
    isa: Isa,
    a: &mut [[T; L]],
    dims: Dims,
    cols: Range<usize>,
    fail: &mut [usize; L],
    inv: &mut [[T; L]],
    b: &mut [[T; L]],
) {
    let off = dims.kd.min(cols.start);
    dispatch(isa, FactorWindow { a, dims, off, nb: cols.len(), j0: cols.start, fail, inv, b });
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
    off: usize,
    nb: usize,
    j0: usize,
    fail: &'a mut [usize; L],
    inv: &'a mut [[T; L]],
    b: &'a mut [[T; L]],
}

impl<T: Real, const L: usize> VecOp for FactorWindow<'_, T, L> {
    type Output = ();
    #[inline(always)]
    fn run<S: VectorSet>(self) {
        let Self { a, dims, off, nb, j0, fail, inv, b } = self;
        if L == 1 && dims.kd >= VERTICAL_MIN_KD {
            // One system: its columns' rows in vectors (the same operations per element).
            let (a, inv, b) = (a.as_flattened_mut(), inv.as_flattened_mut(), b.as_flattened_mut());
            factor_window_vertical::<T, T::Vec<S>>(a, dims, off, nb, j0, &mut fail[0], inv, b);
        } else if L.is_multiple_of(<T::Vec<S> as Vector<T>>::W) {
            factor_window::<T, T::Vec<S>, L>(a, dims, off, nb, j0, fail, inv, b);
        } else {
            factor_window::<T, T::One<S>, L>(a, dims, off, nb, j0, fail, inv, b);
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

/// Raw addressing of a window of pack rows (`L` lanes each) holding a band (`w = kd + 1` rows
/// per column, the window's first column being column 0): the kernels below index elements
/// with plain arithmetic instead of a bounds check per load and store (measured: the checks,
/// slicing and iterator bookkeeping were most of the instructions of the narrow-band kernels).
/// Every function that builds one checks once, on entry, that the rows it will touch are inside
/// its slice.
#[derive(Clone, Copy)]
struct Win<T, const L: usize> {
    p: *mut T,
    w: usize,
}

impl<T, const L: usize> Win<T, L> {
    /// The window over `rows` (read and written through it while the borrow lasts).
    #[inline(always)]
    fn new(rows: &mut [[T; L]], w: usize) -> Self {
        Self { p: rows.as_mut_ptr().cast(), w }
    }
    /// The lanes `m·W ..` of element `A[r, c]` (`c ≤ r ≤ c + kd`), i.e. of row `c·w + r − c`.
    #[inline(always)]
    fn at(self, r: usize, c: usize, m: usize, vw: usize) -> *mut T {
        self.p.wrapping_add((c * self.w + r - c) * L + m * vw)
    }
    /// The lanes `m·W ..` of row `k` of a plain array of rows (right-hand sides, reciprocals).
    #[inline(always)]
    fn row(self, k: usize, m: usize, vw: usize) -> *mut T {
        self.p.wrapping_add(k * L + m * vw)
    }
}

/// Factors columns `off ≤ c < off + nb` of the window `a` (column `c` of the window is global
/// column `j0 − off + c`; its first `off ≤ kd` columns are the factored history the new columns'
/// terms come from) of systems of order `dims.n`, as the module docs say, and with
/// `dims.nrhs > 0` forward-substitutes `b` through them. Records in `fail`, per lane, the first
/// failing (global) column (`usize::MAX` if none): a pivot that is not positive and finite. A
/// failed lane keeps computing (garbage, possibly NaN) without touching the other lanes.
/// `inv[c − off] = 1/L[c,c]`.
///
/// Left-looking: each column's elements start from `A`, take all their terms from the (cached)
/// previous `kd` columns in registers ([`column_terms`]), and are written once, scaled: no
/// element is loaded and stored once per term, which is what bounds a right-looking rank-1
/// update (two loads and a store per multiply–add).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn factor_window<T: Real, V: Vector<T>, const L: usize>(
    a: &mut [[T; L]],
    dims: Dims,
    off: usize,
    nb: usize,
    j0: usize,
    fail: &mut [usize; L],
    inv: &mut [[T; L]],
    b: &mut [[T; L]],
) {
    let (kd, nrhs) = (dims.kd, dims.nrhs);
    let w = kd + 1;
    let base = j0 - off;
    // Window-relative order: rows beyond it do not exist.
    let n = dims.n - base;
    // Every element touched below lies in a column `c < off + nb` at a band row `≤ kd` below
    // the diagonal and above row `n`, every reciprocal in `inv[..nb]`, every right-hand side
    // row below `dims.n·nrhs`: checked once here, so that the loops address with plain
    // arithmetic. The window must start at a column ≥ `j0 − kd` (or at column 0).
    assert!(
        off <= kd && (off == j0 || off == kd) && off + nb <= n && a.len() >= (off + nb) * w && inv.len() >= nb && b.len() >= dims.n * nrhs,
        "factor_window: a window of {} rows, {} reciprocals and {} right-hand side rows for columns {j0}..{} after {off} (n {}, kd {kd}, nrhs {nrhs})",
        a.len(),
        inv.len(),
        b.len(),
        j0 + nb,
        dims.n
    );
    let (aw, iw, bw) = (Win::<T, L>::new(a, w), Win::<T, L>::new(inv, 1), Win::<T, L>::new(b, 1));
    let mut c = off;
    while c < off + nb {
        // Two columns at a time where both have their whole band inside the matrix: each row of
        // the history is then loaded once for two multiply–adds.
        let pair = kd > 0 && c + 1 < off + nb && c + 1 + kd < n;
        // SAFETY (the calls below): the columns `c` (and `c + 1` for a pair) `< off + nb` and
        // their `kn + 1` band rows (`c + kn < n`), the columns `max(0, c − kd) .. c` of the
        // window that their terms read (each at a band row `r − k ≤ kd`), `inv[c − off]` (and
        // the next), and `b`'s rows of the global columns `base + c ..= base + c + 1 + kn <
        // dims.n`: all checked on entry.
        unsafe {
            if pair {
                pair_terms::<T, V, L>(aw, c, kd);
            } else {
                column_terms::<T, V, L>(aw, c, (n - 1 - c).min(kd), kd);
            }
            let kn = (n - 1 - c).min(kd);
            pivot_column::<T, V, L>(aw, iw, c, c - off, kn, base + c, fail);
            if nrhs > 0 {
                forward_column::<T, V, L>(aw, iw, bw, (c, c - off), kn, nrhs, base + c);
            }
            if pair {
                // Column `c + 1`'s last term, from the column just finished.
                next_term::<T, V, L>(aw, c, kd);
                pivot_column::<T, V, L>(aw, iw, c + 1, c + 1 - off, kd, base + c + 1, fail);
                if nrhs > 0 {
                    forward_column::<T, V, L>(aw, iw, bw, (c + 1, c + 1 - off), kd, nrhs, base + c + 1);
                }
            }
        }
        c += if pair { 2 } else { 1 };
    }
}

/// Bandwidths from which one system (`L = 1`) runs [`factor_window_vertical`]. Below, a column
/// fills at most one vector and the per-column chain (the masked store of a column, then the
/// loads of its shifted rows by the next: a store the loads cannot forward from) costs more
/// than the scalar kernel's row by row (measured, Intel Xeon, n = 1000, one system, factor and
/// solve: kd 4 / 5 / 6 / 8 / 12: vertical 32 / 34 / 36 / 28 / 41 µs, scalar 17 / 20 / 23 / 31 /
/// 45 µs).
const VERTICAL_MIN_KD: usize = 8;

/// [`factor_window`] for one system in the band layout (`a`: its window, `inv`, `b`), with the
/// rows of each column in the vectors `V` instead of the lanes of a pack: the same operations
/// on every element, in the same order (the terms of element `(r, c)` are `k = max(0, r − kd) ..
/// c` in increasing order, each one fused multiply–add; a row joins its vector's updates at its
/// first term through a lane mask, never through a zero term), so one system computes the bits
/// it would in a pack, several times faster than one lane at a time. Per column: the rows' terms
/// in vectors of `W` rows (a vector's elements taking the same term `k` from contiguous rows of
/// column `k`), the pivot, the scaling, and the forward substitution of one right-hand side.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn factor_window_vertical<T: Real, V: Vector<T>>(
    a: &mut [T],
    dims: Dims,
    off: usize,
    nb: usize,
    j0: usize,
    fail: &mut usize,
    inv: &mut [T],
    b: &mut [T],
) {
    let (kd, nrhs) = (dims.kd, dims.nrhs);
    let w = kd + 1;
    let base = j0 - off;
    let n = dims.n - base;
    assert!(
        off <= kd && (off == j0 || off == kd) && off + nb <= n && a.len() >= (off + nb) * w && inv.len() >= nb && b.len() >= dims.n * nrhs,
        "factor_window_vertical: a window of {} elements, {} reciprocals and {} right-hand side elements for columns {j0}..{} after {off} (n {}, kd {kd}, nrhs {nrhs})",
        a.len(),
        inv.len(),
        b.len(),
        j0 + nb,
        dims.n
    );
    let vw = V::W;
    let p = a.as_mut_ptr();
    // Element `(r, c)` of the window (`c ≤ r ≤ c + kd`).
    let at = |r: usize, c: usize| p.wrapping_add(c * w + r - c);
    for c in off..off + nb {
        let kn = (n - 1 - c).min(kd);
        let rows = kn + 1;
        // SAFETY (the whole block): every address is `(r, c)` with `c < off + nb` and `c ≤ r ≤
        // c + kn < n`, or `(r, k)` with `max(0, r − kd) ≤ k < c` (inside column `k`'s band);
        // the masked loads and stores touch only the `cnt` or `act` elements of those; `inv[c −
        // off]`, `b`'s elements `(base + c ..= base + c + kn)·nrhs + q` below `dims.n·nrhs`: all
        // checked on entry.
        unsafe {
            // The column's rows in `nv` vectors, all in registers while the terms stream in (one
            // accumulator per vector: independent multiply–add chains).
            // Wider columns (more vectors than the registers hold) in parts of 8 vectors, each
            // taking its terms in the same order.
            let mut r0 = 0;
            while rows - r0 > 9 * vw {
                column_vertical::<T, V, 8>(p, w, c, r0, 8 * vw, kd);
                r0 += 8 * vw;
            }
            let part = rows - r0;
            match part.div_ceil(vw) {
                1 => column_vertical::<T, V, 1>(p, w, c, r0, part, kd),
                2 => column_vertical::<T, V, 2>(p, w, c, r0, part, kd),
                3 => column_vertical::<T, V, 3>(p, w, c, r0, part, kd),
                4 => column_vertical::<T, V, 4>(p, w, c, r0, part, kd),
                5 => column_vertical::<T, V, 5>(p, w, c, r0, part, kd),
                6 => column_vertical::<T, V, 6>(p, w, c, r0, part, kd),
                7 => column_vertical::<T, V, 7>(p, w, c, r0, part, kd),
                8 => column_vertical::<T, V, 8>(p, w, c, r0, part, kd),
                _ => column_vertical::<T, V, 9>(p, w, c, r0, part, kd),
            }
            let d = at(c, c).read();
            if !(d > T::zero() && d < T::infinity()) && *fail == usize::MAX {
                *fail = base + c;
            }
            let pv = d.sqrt();
            let iv = T::one() / pv;
            at(c, c).write(pv);
            inv[c - off] = iv;
            let ivv = V::splat(iv);
            let mut v0 = 1;
            while v0 < rows {
                let cnt = vw.min(rows - v0);
                V::load_first(at(c + v0, c), cnt).mul(ivv).store_first(at(c + v0, c), cnt);
                v0 += vw;
            }
            let g = base + c;
            for q in 0..nrhs {
                let y = b[g * nrhs + q] * iv;
                b[g * nrhs + q] = y;
                if nrhs == 1 {
                    let (yv, bp) = (V::splat(y), b.as_mut_ptr());
                    let mut v0 = 1;
                    while v0 < rows {
                        let cnt = vw.min(rows - v0);
                        let t = bp.add(g + v0);
                        V::load_first(t, cnt).fnma(V::load_first(at(c + v0, c), cnt), yv).store_first(t, cnt);
                        v0 += vw;
                    }
                } else {
                    // One lane at a time, fused as `V` fuses.
                    let (yv, bp) = (V::splat(y), b.as_mut_ptr());
                    for r in 1..rows {
                        let t = bp.add((g + r) * nrhs + q);
                        V::load_first(t, 1).fnma_first(V::load_first(at(c + r, c), 1), yv, 1).store_first(t, 1);
                    }
                }
            }
        }
    }
}

/// The terms of the rows `c + r0 .. c + r0 + rows` of column `c` of one system (window base
/// pointer `p`, `w = kd + 1` elements per column; `rows ≤ NV·W`) in `NV` vectors of rows held in
/// registers: for each `k` in increasing order, the rows `c + i ≤ k + kd` take
/// `−L[c+i, k]·L[c, k]` (contiguous in column `k`), a vector joining through a lane mask at its
/// first term.
///
/// # Safety
/// As in [`factor_window_vertical`]: those rows of column `c` and the band elements of the
/// columns `max(0, c + r0 − kd) .. c` that the terms read.
#[inline(always)]
unsafe fn column_vertical<T: Real, V: Vector<T>, const NV: usize>(p: *mut T, w: usize, c: usize, r0: usize, rows: usize, kd: usize) {
    let vw = V::W;
    let at = |r: usize, c: usize| p.wrapping_add(c * w + r - c);
    // SAFETY (the whole body): the addresses described above, with every masked load and store
    // limited to the elements inside the part's `rows` or the band of column `k`.
    unsafe {
        let mut acc = [V::splat(T::zero()); NV];
        for v in 0..NV {
            acc[v] = V::load_first(at(c + r0 + v * vw, c), vw.min(rows - v * vw));
        }
        for k in (c + r0).saturating_sub(kd)..c {
            // Rows `c + r0 + i` with `i < top` take the term `k` (`k + kd + 1 − c > r0`).
            let top = rows.min(k + kd + 1 - c - r0);
            let lc = V::splat(at(c, k).read());
            for v in 0..NV {
                if v * vw < top {
                    let act = vw.min(top - v * vw);
                    acc[v] = acc[v].fnma_first(V::load_first(at(c + r0 + v * vw, k), act), lc, act);
                }
            }
        }
        for v in 0..NV {
            acc[v].store_first(at(c + r0 + v * vw, c), vw.min(rows - v * vw));
        }
    }
}

/// The history terms of columns `c` and `c + 1` (both with `kd` band rows inside the matrix):
/// `A[r, c'] −= Σ_{k = max(0, r − kd)}^{c − 1} L[r, k]·L[c', k]`, for row `c` of column `c` and
/// the rows `c + 1 ..= c + kd` of both (row `c + 1 + kd` of column `c + 1` has no term before
/// column `c + 1`); the term `k = c` of column `c + 1` is [`next_term`]'s.
///
/// # Safety
/// The columns `c`, `c + 1` and their band rows, and the columns `max(0, c − kd) .. c` at the
/// band rows the terms read, must be valid.
#[inline(always)]
unsafe fn pair_terms<T: Real, V: Vector<T>, const L: usize>(a: Win<T, L>, c: usize, kd: usize) {
    if c == 0 {
        return;
    }
    // SAFETY (the calls): rows of columns `c`, `c + 1` inside their bands, as the caller
    // guarantees.
    unsafe {
        for m in 0..L / V::W {
            rows_terms::<T, V, L, 1>(a, m, c, c, kd);
            let (mut r0, end) = (c + 1, c + 1 + kd);
            // 8 rows of a pair: 16 accumulators, which only AVX-512's 32 registers hold.
            if V::REGS >= 32 {
                while r0 + 8 <= end {
                    pair_rows::<T, V, L, 8>(a, m, r0, c, kd);
                    r0 += 8;
                }
            }
            while r0 + 4 <= end {
                pair_rows::<T, V, L, 4>(a, m, r0, c, kd);
                r0 += 4;
            }
            match end - r0 {
                3 => pair_rows::<T, V, L, 3>(a, m, r0, c, kd),
                2 => pair_rows::<T, V, L, 2>(a, m, r0, c, kd),
                1 => pair_rows::<T, V, L, 1>(a, m, r0, c, kd),
                _ => {}
            }
        }
    }
}

/// [`rows_terms`] for the `R` rows `r0 ..` of the two columns `c` and `c + 1` at once (all
/// rows inside both bands): each history element is loaded once for both.
///
/// # Safety
/// As [`pair_terms`], for the rows `r0 .. r0 + R ≤ c + 1 + kd`, `r0 > c`.
#[inline(always)]
unsafe fn pair_rows<T: Real, V: Vector<T>, const L: usize, const R: usize>(a: Win<T, L>, m: usize, r0: usize, c: usize, kd: usize) {
    let vw = V::W;
    let first = r0.saturating_sub(kd);
    let full = (r0 + R - 1).saturating_sub(kd).min(c);
    // SAFETY (the whole body): element `(r, k)` is read only for `max(0, r − kd) ≤ k < c`, and
    // `(r, c)`, `(r, c + 1)` for the tile's rows, as the caller guarantees.
    unsafe {
        let mut a0 = [V::load_ptr(a.at(r0, c, m, vw)); R];
        let mut a1 = [V::load_ptr(a.at(r0, c + 1, m, vw)); R];
        for i in 1..R {
            a0[i] = V::load_ptr(a.at(r0 + i, c, m, vw));
            a1[i] = V::load_ptr(a.at(r0 + i, c + 1, m, vw));
        }
        if r0 >= kd {
            let k0 = r0 - kd;
            for t in 0..R - 1 {
                let k = k0 + t;
                if k >= c {
                    break;
                }
                let (l0, l1) = (V::load_ptr(a.at(c, k, m, vw)), V::load_ptr(a.at(c + 1, k, m, vw)));
                for i in 0..=t {
                    let x = V::load_ptr(a.at(r0 + i, k, m, vw));
                    a0[i] = a0[i].fnma(x, l0);
                    a1[i] = a1[i].fnma(x, l1);
                }
            }
        } else {
            for k in first..full {
                let (l0, l1) = (V::load_ptr(a.at(c, k, m, vw)), V::load_ptr(a.at(c + 1, k, m, vw)));
                for i in 0..R {
                    if r0 + i <= k + kd {
                        let x = V::load_ptr(a.at(r0 + i, k, m, vw));
                        a0[i] = a0[i].fnma(x, l0);
                        a1[i] = a1[i].fnma(x, l1);
                    }
                }
            }
        }
        for k in full..c {
            let (l0, l1) = (V::load_ptr(a.at(c, k, m, vw)), V::load_ptr(a.at(c + 1, k, m, vw)));
            for i in 0..R {
                let x = V::load_ptr(a.at(r0 + i, k, m, vw));
                a0[i] = a0[i].fnma(x, l0);
                a1[i] = a1[i].fnma(x, l1);
            }
        }
        for i in 0..R {
            a0[i].store_ptr(a.at(r0 + i, c, m, vw));
            a1[i].store_ptr(a.at(r0 + i, c + 1, m, vw));
        }
    }
}

/// Column `c + 1`'s term from column `c` (factored): `A[r, c + 1] −= L[r, c]·L[c + 1, c]` for
/// `c + 1 ≤ r ≤ c + kd`, the last of its terms.
///
/// # Safety
/// The columns `c`, `c + 1` and their `kd` band rows must be valid.
#[inline(always)]
unsafe fn next_term<T: Real, V: Vector<T>, const L: usize>(a: Win<T, L>, c: usize, kd: usize) {
    let vw = V::W;
    for m in 0..L / vw {
        // SAFETY (the body): rows `c + 1 ..= c + kd` of columns `c` and `c + 1`, inside both
        // bands, as the caller guarantees.
        unsafe {
            let lc = V::load_ptr(a.at(c + 1, c, m, vw));
            for r in c + 1..=c + kd {
                let q = a.at(r, c + 1, m, vw);
                V::load_ptr(q).fnma(V::load_ptr(a.at(r, c, m, vw)), lc).store_ptr(q);
            }
        }
    }
}

/// The terms of column `c`: `A[r, c] −= Σ_{k = max(0, r − kd)}^{c − 1} L[r, k]·L[c, k]` for the
/// rows `c ..= c + kn`, in increasing `k`, in register tiles of up to 8 rows.
///
/// # Safety
/// Column `c` and its `kn + 1` band rows, and the columns `max(0, c − kd) .. c` at the band rows
/// the terms read, must be valid.
#[inline(always)]
unsafe fn column_terms<T: Real, V: Vector<T>, const L: usize>(a: Win<T, L>, c: usize, kn: usize, kd: usize) {
    if c == 0 {
        return;
    }
    for m in 0..L / V::W {
        let mut r0 = c;
        let end = c + kn + 1;
        // SAFETY (the calls): rows `r0 .. r0 + R ≤ end` of column `c`, as the caller guarantees.
        unsafe {
            while r0 + 8 <= end {
                rows_terms::<T, V, L, 8>(a, m, r0, c, kd);
                r0 += 8;
            }
            match end - r0 {
                7 => rows_terms::<T, V, L, 7>(a, m, r0, c, kd),
                6 => rows_terms::<T, V, L, 6>(a, m, r0, c, kd),
                5 => rows_terms::<T, V, L, 5>(a, m, r0, c, kd),
                4 => rows_terms::<T, V, L, 4>(a, m, r0, c, kd),
                3 => rows_terms::<T, V, L, 3>(a, m, r0, c, kd),
                2 => rows_terms::<T, V, L, 2>(a, m, r0, c, kd),
                1 => rows_terms::<T, V, L, 1>(a, m, r0, c, kd),
                _ => {}
            }
        }
    }
}

/// `R` rows `r0 ..` of column `c` (lanes slot `m`) take their terms `k = max(0, r − kd) .. c`
/// in increasing order, in `R` accumulators: row `r0 + i` joins at `k = r0 + i − kd` (the
/// staircase at the band's edge, at most `R − 1` terms), then every row takes every term.
/// Plain loops, no closures (`std::array::from_fn`): a closure is a function of its own,
/// compiled without the instruction set's target features, which then cannot inline the
/// vector intrinsics (measured: every load became a call).
///
/// # Safety
/// As [`column_terms`], for the rows `r0 .. r0 + R`.
#[inline(always)]
unsafe fn rows_terms<T: Real, V: Vector<T>, const L: usize, const R: usize>(a: Win<T, L>, m: usize, r0: usize, c: usize, kd: usize) {
    let vw = V::W;
    let first = r0.saturating_sub(kd);
    // From `full` on every row of the tile is inside the band of column `k`.
    let full = (r0 + R - 1).saturating_sub(kd).min(c);
    // SAFETY (the whole body): element `(r, k)` is read only for `max(0, r − kd) ≤ k < c`, and
    // `(r, c)` for the tile's rows, as the caller guarantees.
    unsafe {
        let mut acc = [V::load_ptr(a.at(r0, c, m, vw)); R];
        for i in 1..R {
            acc[i] = V::load_ptr(a.at(r0 + i, c, m, vw));
        }
        if r0 >= kd {
            // Row `i` joins at `k = r0 − kd + i`: at step `t` of the staircase rows `0..=t` take
            // a term (unrolled: no branch per row).
            let k0 = r0 - kd;
            for t in 0..R - 1 {
                let k = k0 + t;
                if k >= c {
                    break;
                }
                let lc = V::load_ptr(a.at(c, k, m, vw));
                for i in 0..=t {
                    acc[i] = acc[i].fnma(V::load_ptr(a.at(r0 + i, k, m, vw)), lc);
                }
            }
        } else {
            // The first columns of the matrix: rows near the top have terms from column 0.
            for k in first..full {
                let lc = V::load_ptr(a.at(c, k, m, vw));
                for i in 0..R {
                    if r0 + i <= k + kd {
                        acc[i] = acc[i].fnma(V::load_ptr(a.at(r0 + i, k, m, vw)), lc);
                    }
                }
            }
        }
        for k in full..c {
            let lc = V::load_ptr(a.at(c, k, m, vw));
            for i in 0..R {
                acc[i] = acc[i].fnma(V::load_ptr(a.at(r0 + i, k, m, vw)), lc);
            }
        }
        for i in 0..R {
            acc[i].store_ptr(a.at(r0 + i, c, m, vw));
        }
    }
}

/// Column `c` of the window (its `kn` band rows below the diagonal inside the matrix), its
/// terms applied: records a pivot that is not positive and finite in `fail` (as global column
/// `col`; NaN fails too), then `L[c,c] = √a`, `inv[ic] = 1/L[c,c]` and the rows below the
/// diagonal scaled by it.
///
/// # Safety
/// Column `c`'s `kn + 1` band rows and row `ic` of `inv` must be valid.
#[inline(always)]
unsafe fn pivot_column<T: Real, V: Vector<T>, const L: usize>(a: Win<T, L>, inv: Win<T, L>, c: usize, ic: usize, kn: usize, col: usize, fail: &mut [usize; L]) {
    let vw = V::W;
    for m in 0..L / vw {
        // SAFETY (the whole body): column `c`'s rows up to `kn` and `inv[ic]`, as the caller
        // guarantees.
        unsafe {
            let d = V::load_ptr(a.at(c, c, m, vw));
            if !d.pivots_ok() {
                record_failures(a.at(c, c, m, vw), m * vw, vw, col, fail);
            }
            let p = d.sqrt();
            let iv = p.recip();
            p.store_ptr(a.at(c, c, m, vw));
            iv.store_ptr(inv.row(ic, m, vw));
            for r in 1..=kn {
                let q = a.at(c + r, c, m, vw);
                V::load_ptr(q).mul(iv).store_ptr(q);
            }
        }
    }
}

/// The lanes `first .. first + count` of a failed pivot vector at `d`: each lane whose pivot is
/// not positive and finite, and that had not failed before, fails at column `col`. Off the hot
/// path (once per failed lane per column at most).
///
/// # Safety
/// `d` must be valid for `count` reads.
#[cold]
#[inline(never)]
unsafe fn record_failures<T: Real, const L: usize>(d: *const T, first: usize, count: usize, col: usize, fail: &mut [usize; L]) {
    for i in 0..count {
        // SAFETY: `i < count`, as the caller guarantees.
        let x = unsafe { d.add(i).read_unaligned() };
        if !(x > T::zero() && x < T::infinity()) && fail[first + i] == usize::MAX {
            fail[first + i] = col;
        }
    }
}

/// The forward substitution through column `c` of the window (`ic`: its row of `inv`; global
/// column `g`): `y[g] = b[g]·inv`, then `b[g + r] −= L[c + r, c]·y[g]` (`1 ≤ r ≤ kn`), for each
/// of the `nrhs` right-hand sides.
///
/// # Safety
/// Column `c`'s `kn + 1` band rows, `inv[ic]` and the rows of `b` up to `(g + kn + 1)·nrhs` must
/// be valid.
#[inline(always)]
unsafe fn forward_column<T: Real, V: Vector<T>, const L: usize>(a: Win<T, L>, inv: Win<T, L>, b: Win<T, L>, (c, ic): (usize, usize), kn: usize, nrhs: usize, g: usize) {
    let vw = V::W;
    for m in 0..L / vw {
        // SAFETY (the body): as the caller guarantees.
        unsafe {
            let iv = V::load_ptr(inv.row(ic, m, vw));
            for q in 0..nrhs {
                let y = V::load_ptr(b.row(g * nrhs + q, m, vw)).mul(iv);
                y.store_ptr(b.row(g * nrhs + q, m, vw));
                for r in 1..=kn {
                    let t = b.row((g + r) * nrhs + q, m, vw);
                    V::load_ptr(t).fnma(V::load_ptr(a.at(c + r, c, m, vw)), y).store_ptr(t);
                }
            }
        }
    }
}

/// Checks that a window `l` of whole columns (`w` rows each) of a stored factor, its `inv` (one
/// row per column) and the right-hand side `b` cover what a substitution through it touches:
/// `b`'s rows up to the window's last column plus `kd`, clipped to the matrix.
fn substitution_fits<T, const L: usize>(l: &[[T; L]], b: &[[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) -> usize {
    let nb = l.len() / (dims.kd + 1);
    assert!(
        l.len() == nb * (dims.kd + 1) && inv.len() >= nb && j0 + nb <= dims.n && b.len() >= dims.n * dims.nrhs,
        "substitution: a window of {} rows, {} reciprocals and {} right-hand side rows at column {j0} (n {}, kd {}, nrhs {})",
        l.len(),
        inv.len(),
        b.len(),
        dims.n,
        dims.kd,
        dims.nrhs
    );
    nb
}

/// Forward substitution of the window `l` (columns `j0..`) into `b`: `y[j] = b[j]·inv[j]`, then
/// `b[j + r] −= L[j + r, j]·y[j]`.
#[inline(always)]
fn forward_window<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    let nb = substitution_fits(l, b, dims, j0, inv);
    // The window is only read: `Win` is built from a shared borrow cast to `*mut` for the
    // shared addressing, and nothing is written through it.
    let (lw, iw, bw) = (Win::<T, L> { p: l.as_ptr().cast_mut().cast(), w: dims.kd + 1 }, Win::<T, L> { p: inv.as_ptr().cast_mut().cast(), w: 1 }, Win::<T, L>::new(b, 1));
    for c in 0..nb {
        let kn = dims.kd.min(dims.n - 1 - (j0 + c));
        // SAFETY: the window's column `c`, its reciprocal and `b`'s rows up to `(j0 + c + kn +
        // 1)·nrhs ≤ n·nrhs`, checked by `substitution_fits`; `l` and `inv` are only read.
        unsafe { forward_column::<T, V, L>(lw, iw, bw, (c, c), kn, dims.nrhs, j0 + c) };
    }
}

/// Backward substitution of the window `l` (columns `j0..`, last to first): `x[j] = (y[j] −
/// Σ L[j + r, j]·x[j + r], r from kn down to 1)·inv[j]`; the farthest row first, so that the
/// newest `x` (the previous column's) enters last and the loop-carried chain is one
/// multiply–add and a multiply.
#[inline(always)]
fn backward_window<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], dims: Dims, j0: usize, inv: &[[T; L]]) {
    let nb = substitution_fits(l, b, dims, j0, inv);
    let Dims { n, kd, nrhs } = dims;
    let vw = V::W;
    let (lw, iw, bw) = (Win::<T, L> { p: l.as_ptr().cast_mut().cast(), w: kd + 1 }, Win::<T, L> { p: inv.as_ptr().cast_mut().cast(), w: 1 }, Win::<T, L>::new(b, 1));
    for jl in (0..nb).rev() {
        let j = j0 + jl;
        let kn = kd.min(n - 1 - j);
        for m in 0..L / vw {
            for q in 0..nrhs {
                // SAFETY: column `jl` of the window and its reciprocal, `b`'s rows `(j + r)·nrhs
                // + q` for `r ≤ kn` (`j + kn < n`), checked by `substitution_fits`; `l` and
                // `inv` are only read.
                unsafe {
                    let t = bw.row(j * nrhs + q, m, vw);
                    let mut s = V::load_ptr(t);
                    for r in (1..=kn).rev() {
                        s = s.fnma(V::load_ptr(lw.at(jl + r, jl, m, vw)), V::load_ptr(bw.row((j + r) * nrhs + q, m, vw)));
                    }
                    s.mul(V::load_ptr(iw.row(jl, m, vw))).store_ptr(t);
                }
            }
        }
    }
}

/// `inv[j] = 1/L[j,j]` for the window `l`'s columns.
#[inline(always)]
fn recips<T: Real, V: Vector<T>, const L: usize>(l: &[[T; L]], kd: usize, inv: &mut [[T; L]]) {
    for (col, iv) in l.chunks_exact(kd + 1).zip(inv.iter_mut()) {
        for m in 0..L / V::W {
            V::load(&col[0][m * V::W..]).recip().store(&mut iv[m * V::W..]);
        }
    }
}

/// Asks for every cache line of `rows` to be brought into the cache (a prefetch per line, with
/// no dependency between them: the loads stream at full memory parallelism), so that the
/// dependent loads of the factorization or substitution that follows hit the cache instead of
/// waiting on memory one column at a time (without it, the S-MNN substitutions took twice as
/// long; an earlier version that summed one element per row was itself bound by its chain of
/// additions: a quarter of a kd = 17 packed factorization).
#[inline(never)]
pub(crate) fn touch<T: Real, const L: usize>(rows: &[[T; L]]) {
    let bytes = std::mem::size_of_val(rows);
    let base = rows.as_ptr().cast::<u8>();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for off in (0..bytes).step_by(64) {
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch is a hint that reads
            // nothing and never faults (the address is inside `rows` anyway: `off < bytes`).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // Independent loads, one per line, folded without a long dependency chain.
        let mut acc = [0u8; 8];
        for (i, off) in (0..bytes).step_by(64).enumerate() {
            // SAFETY: `off < bytes`, the size of `rows`: the byte is inside the slice.
            acc[i % 8] ^= unsafe { *base.add(off) };
        }
        std::hint::black_box(acc);
    }
}
