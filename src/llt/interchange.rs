//! Factor and solve straight from the interchange layout, the factor not kept
//! ([`Cholesky::solve_lower_band`](super::Cholesky::solve_lower_band)): each pack's columns are
//! gathered from SciPy's `(batch, kd + 1, n)` rows into the lanes the kernels run in and
//! checked for NaN and ±∞ in the same pass, factored and forward-substituted window by window,
//! back-substituted from the pack in scratch, and dropped: the band is read once and nothing is
//! written but the solution (a kept factor costs a conversion into the band layout, a scan, and
//! the factor written out). The pack's right-hand sides and solutions are checked in its
//! scratch too, while in cache.

use rayon::prelude::*;

use crate::alloc::with_thread_scratch;
use crate::band::lanes::{gather_strided, gather_all, scatter};
use crate::par::{Par, min_len};
use crate::scalar::{Real, first_non_finite};
use crate::simd::Isa;

use super::driver::{Columns, Factored, factor_pack};
use super::kernels::Dims;

/// `L` systems of the interchange layout (`ab`: `L·(kd+1)·n` elements, system after system,
/// row `d` of system `s` at `(s·(kd+1) + d)·n`) gathered window by window into a whole-pack
/// buffer `buf` (scratch) for the factorization, checked for NaN and ±∞ (the entries inside the
/// matrix) as they are gathered; the factor stays in `buf` for the backward substitution and is
/// not written back.
pub(crate) struct Interchange<'a, T, const L: usize> {
    pub ab: &'a [T],
    pub buf: &'a mut [[T; L]],
    pub n: usize,
    pub kd: usize,
    /// Columns gathered so far.
    pub loaded: usize,
    /// A NaN or ±∞ inside the matrix was gathered.
    pub bad: bool,
}

impl<T: Real, const L: usize> Factored<T, L> for Interchange<'_, T, L> {
    #[inline(always)]
    fn factored(&mut self, j0: usize, j1: usize) -> &[[T; L]] {
        let w = self.kd + 1;
        &self.buf[j0 * w..j1 * w]
    }
}

impl<T: Real, const L: usize> Columns<T, L> for Interchange<'_, T, L> {
    #[inline(always)]
    fn open(&mut self, j0: usize, upto: usize) -> &mut [[T; L]] {
        let (n, w) = (self.n, self.kd + 1);
        if upto > self.loaded {
            let c0 = self.loaded;
            for d in 0..w {
                // Row `d` of column `j` is `A[j + d, j]`, inside the matrix for `j < n − d`.
                let end = upto.min(n.saturating_sub(d));
                if end <= c0 {
                    continue;
                }
                let (out, bad) = (&mut self.buf[c0 * w + d..], &mut self.bad);
                gather_strided(self.ab, w * n, d * n + c0, end - c0, out, w, |rows| {
                    *bad |= first_non_finite(rows.as_flattened()).is_some();
                });
            }
            self.loaded = upto;
        }
        &mut self.buf[(j0 - self.kd.min(j0)) * w..upto * w]
    }
    #[inline(always)]
    fn retire(&mut self, _: usize, _: usize) {}
    #[inline(always)]
    fn store(&mut self, _: usize, _: usize) {}
}

/// What the checks of one pack found (all clear when the checks are off).
#[derive(Clone, Copy, Default)]
pub(crate) struct PackChecks<T> {
    /// A NaN or ±∞ inside a matrix.
    pub ab: bool,
    /// The first NaN or ±∞ of the pack's right-hand sides: its index in the pack's part of
    /// `rhs` (system by system, `n·nrhs` each), and the value.
    pub rhs: Option<(usize, T)>,
    /// A solution that is not finite.
    pub x: bool,
}

/// Factors and solves the `full` packs of `L` systems at the front of `ab` (interchange
/// layout, `(kd+1)·n` per system) with their right-hand sides `rhs` (row-major `n·nrhs` per
/// system), under `isa`, the packs over `par`. Returns each system's status and, with `check`,
/// what each pack's checks found: the matrices as they are gathered, the right-hand sides
/// before and the solutions after (each while the pack's part is in cache, instead of passes
/// over the whole batch: those cost a fifth of the time at kd = 1). A pack with a NaN or ±∞
/// anywhere gives meaningless results, written all the same.
pub(crate) fn solve_packs_interchange<T: Real, const L: usize>(isa: Isa, ab: &[T], rhs: &mut [T], full: usize, dims: Dims, check: bool, par: Par) -> (Vec<Result<(), usize>>, Vec<PackChecks<T>>) {
    let Dims { n, kd, nrhs } = dims;
    let (len, blen) = (n * (kd + 1), n * nrhs);
    let out: Vec<([usize; L], PackChecks<T>)> = ab[..full * L * len]
        .par_chunks(len * L)
        .zip(rhs[..full * L * blen].par_chunks_mut(blen * L))
        .with_min_len(min_len(par, full.max(1)))
        .map(|(chunk, x)| {
            let mut found = PackChecks::default();
            with_thread_scratch::<T, _>((len + blen + n) * L, |s| {
                let rows = s.as_chunks_mut::<L>().0;
                let (buf, rest) = rows.split_at_mut(len);
                let (rbuf, inv) = rest.split_at_mut(blen);
                gather_all(x, rbuf, blen);
                if check && first_non_finite(rbuf.as_flattened()).is_some() {
                    // Found in the lanes; named in `x`, untouched so far.
                    found.rhs = first_non_finite(x).map(|k| (k, x[k]));
                }
                let mut cols = Interchange { ab: chunk, buf, n, kd, loaded: 0, bad: false };
                let fail = factor_pack(isa, &mut cols, rbuf, dims, inv);
                found.ab = cols.bad;
                found.x = check && first_non_finite(rbuf.as_flattened()).is_some();
                scatter(rbuf, x, blen, 0);
                (fail, found)
            })
        })
        .collect();
    out.into_iter()
        .map(|(fail, found)| (fail.map(|c| if c == usize::MAX { Ok(()) } else { Err(c) }), found))
        .fold((Vec::with_capacity(full * L), Vec::with_capacity(full)), |(mut status, mut checks), (st, found)| {
            status.extend(st);
            checks.push(found);
            (status, checks)
        })
}
