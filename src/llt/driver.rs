//! One windowed driver for the factorization of a pack and one for its substitutions, each
//! generic over where the pack's columns live ([`Columns`], [`Factored`]).
//!
//! A pack is factored a window of `block` columns at a time ([`block_cols`]: the window and the
//! `kd` factored columns before it, whose terms its columns take, stay in cache). Each window is
//! made available by the column source, factored, forward-substituted into the right-hand sides
//! while in cache (LAPACK's `pbsv` fused), and handed back; after the last window the backward
//! substitution walks the windows from the end. The sources:
//!
//! | source | columns come from | the factor ends up | scratch |
//! |---|---|---|---|
//! | [`Gathered`] | `L` band systems, gathered window by window | the same storage, in pack layout | one pack |
//! | [`Streamed`] | `≤ L` band systems (a padded tail pack) | the same storage, band layout | one window and its history |
//! | [`Filled`] | a callback writing the pack layout in place (S-MNN assembly) | in place, pack layout | none |
//!
//! and, for solves with a stored factor, [`InMemory`] (pack layout) and [`BandFactor`] (band
//! layout). Every source gives the kernels the same columns, so the factor and the solution are
//! bitwise the same whichever is used.

use std::ops::Range;

use crate::band::lanes::{block_cols, gather_band, scatter_band};
use crate::scalar::Real;
use crate::simd::Isa;

use super::kernels::{Dims, backward_in, factor_window_in, forward_in, recips_in, touch};

/// Which substitutions a solve with `L Lᵀ` runs: both (`A⁻¹`), or only the forward (`L⁻¹`) or
/// the backward (`L⁻ᵀ`) one, for the partitioned factorization's spikes and solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sweep {
    Both,
    Forward,
    Backward,
}

impl Sweep {
    pub fn forward(self) -> bool {
        self != Sweep::Backward
    }
    pub fn backward(self) -> bool {
        self != Sweep::Forward
    }
}

/// Read access to the factored columns of a pack, for the substitutions.
pub(crate) trait Factored<T, const L: usize> {
    /// The factored columns `j0..j1` (pack layout, `(j1 − j0)·(kd+1)` rows).
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]];
}

/// Where the columns of a pack come from and go to while it is factored.
pub(crate) trait Columns<T, const L: usize>: Factored<T, L> {
    /// Makes the columns up to `upto` available and returns the rows of columns
    /// `j0 − min(kd, j0) .. upto`: the window of the columns `j0..upto` to factor, after the
    /// `kd` factored columns before them (their history, which the new columns' terms read).
    /// Calls come with non-decreasing `j0`, `upto`, each `j0` the previous `upto`.
    fn open(&mut self, j0: usize, upto: usize) -> &mut [[T; L]];
    /// Columns `j0..j1` of the last window are factored (and forward-substituted).
    fn retire(&mut self, j0: usize, j1: usize);
    /// Columns `j0..j1` are final (both substitutions done): store them. After the forward
    /// pass, once per block, from the last block to the first; or once with `0..n`.
    fn store(&mut self, j0: usize, j1: usize);
}

/// The blocks of columns of the windowed passes, first to last: `[j0, j1)`, `block` wide
/// (the last one narrower).
fn blocks(n: usize, block: usize) -> impl DoubleEndedIterator<Item = (usize, usize)> {
    (0..n.div_ceil(block)).map(move |b| (b * block, ((b + 1) * block).min(n)))
}

/// Factors one pack from `cols`, fusing the solve of `rhs` (`n·nrhs` rows, the pack's
/// right-hand sides interleaved; empty when `dims.nrhs == 0`). `inv` (`n` rows of scratch)
/// keeps the reciprocal pivots from the factorization for both substitutions. Returns, per
/// lane, the first failing column (`usize::MAX` if none).
#[inline(always)]
pub(crate) fn factor_pack<T: Real, const L: usize, C: Columns<T, L>>(isa: Isa, cols: &mut C, rhs: &mut [[T; L]], dims: Dims, inv: &mut [[T; L]]) -> [usize; L] {
    let n = dims.n;
    let block = block_cols::<T, L>(n, dims.kd);
    let mut fail = [usize::MAX; L];
    for (j0, j1) in blocks(n, block) {
        let win = cols.open(j0, j1);
        factor_window_in(isa, win, dims, j0..j1, &mut fail, &mut inv[j0..j1], rhs);
        cols.retire(j0, j1);
    }
    if dims.nrhs == 0 {
        cols.store(0, n);
        return fail;
    }
    for (j0, j1) in blocks(n, block).rev() {
        backward_in(isa, cols.factored(j0, j1), rhs, dims, j0, &inv[j0..j1]);
        cols.store(j0, j1);
    }
    fail
}

/// Solves the pack's right-hand sides `rhs` (`n·nrhs` interleaved rows) with the factor in
/// `cols`: forward, then backward substitution (or only the one `sweep` names), one
/// cache-sized block of columns at a time; `inv` (`n` rows of scratch) holds the reciprocal
/// pivots, computed in the first pass.
#[inline(always)]
pub(crate) fn solve_pack<T: Real, const L: usize, C: Factored<T, L>>(isa: Isa, cols: &mut C, rhs: &mut [[T; L]], dims: Dims, inv: &mut [[T; L]], sweep: Sweep) {
    let block = block_cols::<T, L>(dims.n, dims.kd);
    if sweep.forward() {
        for (j0, j1) in blocks(dims.n, block) {
            let l = cols.factored(j0, j1);
            recips_in(isa, l, dims.kd, &mut inv[j0..j1]);
            forward_in(isa, l, rhs, dims, j0, &inv[j0..j1]);
        }
    }
    if sweep.backward() {
        for (j0, j1) in blocks(dims.n, block).rev() {
            let l = cols.factored(j0, j1);
            if !sweep.forward() {
                recips_in(isa, l, dims.kd, &mut inv[j0..j1]);
            }
            backward_in(isa, l, rhs, dims, j0, &inv[j0..j1]);
        }
    }
}

/// A factor stored in pack layout, read in cache-sized blocks, each [`touch`]ed first: the
/// substitution's dependent loads then hit the cache (without, the S-MNN substitutions took
/// twice as long: the loads waited on memory column by column).
pub(crate) struct InMemory<'a, T, const L: usize> {
    pub pack: &'a [[T; L]],
    pub w: usize,
}

impl<T: Real, const L: usize> Factored<T, L> for InMemory<'_, T, L> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        let rows = &self.pack[j0 * self.w..j1 * self.w];
        touch(rows);
        rows
    }
}

/// `L` band systems (`band`, exactly `L·n·(kd+1)` elements) factored into a whole-pack buffer
/// `buf` (aligned scratch), gathered window by window just before the factorization takes them,
/// and copied back over `band` in pack layout at the end (the band layout and the pack layout
/// of the same storage overlap everywhere: a window cannot be written back in place before the
/// whole pack is read).
pub(crate) struct Gathered<'a, T, const L: usize> {
    pub band: &'a mut [T],
    pub buf: &'a mut [[T; L]],
    pub n: usize,
    pub kd: usize,
    /// Columns gathered so far.
    pub loaded: usize,
}

impl<T: Real, const L: usize> Factored<T, L> for Gathered<'_, T, L> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        let w = self.kd + 1;
        &self.buf[j0 * w..j1 * w]
    }
}

impl<T: Real, const L: usize> Columns<T, L> for Gathered<'_, T, L> {
    #[inline(always)]
    fn open(&mut self, j0: usize, upto: usize) -> &mut [[T; L]] {
        let w = self.kd + 1;
        if upto > self.loaded {
            gather_band(self.band, &mut self.buf[self.loaded * w..], self.n, self.kd, self.loaded..upto);
            self.loaded = upto;
        }
        &mut self.buf[(j0 - self.kd.min(j0)) * w..upto * w]
    }
    #[inline(always)]
    fn retire(&mut self, _: usize, _: usize) {}
    #[inline(always)]
    fn store(&mut self, j0: usize, j1: usize) {
        // Every column is gathered by now: `band` may be overwritten in any order.
        let w = self.kd + 1;
        self.band[j0 * w * L..j1 * w * L].copy_from_slice(self.buf[j0 * w..j1 * w].as_flattened());
    }
}

/// Up to `L` band systems (`band`: `present·n·(kd+1)` elements; missing lanes are identity
/// systems) streamed through a window `buf` of `kd + block` columns (the window and its
/// history): gathered just before they are factored, scattered back (band layout) as soon as
/// they are final. Also the source of a band-layout factor's columns for its substitutions.
pub(crate) struct Streamed<'a, T, const L: usize> {
    pub band: &'a mut [T],
    pub buf: &'a mut [[T; L]],
    pub n: usize,
    pub kd: usize,
    /// The window holds columns `start..loaded`.
    pub start: usize,
    pub loaded: usize,
}

impl<T: Real, const L: usize> Factored<T, L> for Streamed<'_, T, L> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        // The window's columns are overwritten: the factorization must be over.
        (self.start, self.loaded) = (0, 0);
        band_columns(self.band, self.buf, self.n, self.kd, j0..j1)
    }
}

/// A factor stored in the band layout (`≤ L` systems; missing lanes are identity systems),
/// gathered a block at a time into `buf` (at least one block of columns) for the substitutions.
pub(crate) struct BandFactor<'a, T, const L: usize> {
    pub band: &'a [T],
    pub buf: &'a mut [[T; L]],
    pub n: usize,
    pub kd: usize,
}

impl<T: Real, const L: usize> Factored<T, L> for BandFactor<'_, T, L> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        band_columns(self.band, self.buf, self.n, self.kd, j0..j1)
    }
}

/// The band-layout columns `cols` of `≤ L` systems, gathered into the front of `buf`.
#[inline(always)]
fn band_columns<'b, T: Real, const L: usize>(band: &[T], buf: &'b mut [[T; L]], n: usize, kd: usize, cols: Range<usize>) -> &'b [[T; L]] {
    let rows = cols.len() * (kd + 1);
    gather_band(band, buf, n, kd, cols);
    &buf[..rows]
}

impl<T: Real, const L: usize> Columns<T, L> for Streamed<'_, T, L> {
    #[inline(always)]
    fn open(&mut self, j0: usize, upto: usize) -> &mut [[T; L]] {
        let w = self.kd + 1;
        // Keep the `kd` columns before `j0` (the history the window's terms read).
        let lo = j0 - self.kd.min(j0);
        if lo > self.start {
            self.buf.copy_within((lo - self.start) * w..(self.loaded - self.start) * w, 0);
            self.start = lo;
        }
        let (start, loaded) = (self.start, self.loaded);
        gather_band(self.band, &mut self.buf[(loaded - start) * w..], self.n, self.kd, loaded..upto);
        self.loaded = upto;
        &mut self.buf[..(upto - start) * w]
    }
    #[inline(always)]
    fn retire(&mut self, j0: usize, j1: usize) {
        let w = self.kd + 1;
        scatter_band(&self.buf[(j0 - self.start) * w..(j1 - self.start) * w], self.band, self.n, self.kd, j0);
    }
    #[inline(always)]
    fn store(&mut self, _: usize, _: usize) {}
}

/// A pack factored in place in pack layout (`pack`, `n·(kd+1)` rows), its columns produced by
/// `fill(pack, upto)` (which must make the first `upto` columns final; called with
/// non-decreasing `upto`) just before the factorization reads them.
pub(crate) struct Filled<'a, T, const L: usize, F> {
    pub pack: &'a mut [[T; L]],
    pub w: usize,
    pub fill: F,
}

impl<T: Real, const L: usize, F> Factored<T, L> for Filled<'_, T, L, F> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        let rows = &self.pack[j0 * self.w..j1 * self.w];
        touch(rows);
        rows
    }
}

impl<T: Real, const L: usize, F: FnMut(&mut [[T; L]], usize)> Columns<T, L> for Filled<'_, T, L, F> {
    #[inline(always)]
    fn open(&mut self, j0: usize, upto: usize) -> &mut [[T; L]] {
        (self.fill)(self.pack, upto);
        let kd = self.w - 1;
        &mut self.pack[(j0 - kd.min(j0)) * self.w..upto * self.w]
    }
    #[inline(always)]
    fn retire(&mut self, _: usize, _: usize) {}
    #[inline(always)]
    fn store(&mut self, _: usize, _: usize) {}
}
