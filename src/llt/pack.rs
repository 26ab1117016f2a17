//! Lane-interleaved packs: `L` systems of a batch factored and solved together, one SIMD lane
//! per system.
//!
//! # Layout (an internal storage detail, never exposed)
//!
//! A pack holds systems `s0 .. s0 + L` of a [`BandBatch`](crate::BandBatch) element-interleaved:
//!
//! ```text
//! pack[j·(kd+1) + d][lane] = A_{s0+lane}[j + d, j]          (band, n·(kd+1) rows of L)
//! rhs [i·nrhs + r][lane]   = B_{s0+lane}[i, r]               (right-hand sides, n·nrhs rows)
//! ```
//!
//! so every arithmetic operation of the per-system kernels (`factor.rs`, `solve.rs`) becomes one
//! operation on `L` systems (`[T; L]`, which the compiler turns into `L·size_of::<T>()/32`
//! AVX2 instructions inside the `#[target_feature]` entry points below). The kernels here do
//! **exactly the operations of the scalar kernels in the same order** (no FMA contraction, the
//! same reciprocals), so every lane is bitwise equal to the scalar result; the tests check that.
//!
//! A batch that is not a multiple of `L` pads its last pack with identity systems (diagonal 1,
//! off-diagonal 0), which cannot fail and are never written back; the full packs pay nothing
//! for it. [`Packed`] keeps a factor's full packs in pack layout in place of the input's storage
//! (the last partial pack stays in band layout: no padded copy is stored), so solves read them
//! directly; band-layout factors are streamed through packs by [`solve_batch`] (gathered per
//! call through a cache-sized window of columns).
//!
//! Cost per pack: the scalar flop counts, on `L` systems at once. Scratch, allocated once per
//! rayon task (never per column): a factor of full packs `n·(kd+1)·L` elements (one pack, the
//! same size as the `L` systems it holds), the streamed band-layout paths a window of about
//! 256 KiB, a solve `n·nrhs·L`.

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use crate::alloc::{scratch, with_thread_scratch};
use crate::par::{min_len, Par};
use crate::scalar::Real;

use super::{factor_system, solve_system};

/// Which implementation runs the batched factor and solve.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// One system at a time (`factor_system`, `solve_system`): the reference, and the portable
    /// fallback.
    Scalar,
    /// Lane-interleaved packs compiled for the baseline target (no runtime features).
    Portable,
    /// Lane-interleaved packs compiled with AVX2 (+FMA available, not used for contraction).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Kernel::Avx2;
        }
        Kernel::Scalar
    }

    /// `self` if this CPU runs it, otherwise [`Kernel::Scalar`]: the entry points that take a
    /// kernel from outside the crate (`banded::internal`) pass it through here, so that
    /// `Kernel::Avx2` reaches the `#[target_feature]` code only where AVX2 was detected.
    pub fn checked(self) -> Self {
        if Self::available().contains(&self) { self } else { Kernel::Scalar }
    }

    /// Every kernel this CPU can run (for tests).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Kernel::Scalar, Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            v.push(Kernel::Avx2);
        }
        v
    }
}

/// Lanes per pack: two AVX2 registers (8 f64 / 16 f32), so that two independent dependency
/// chains (sqrt → div → update → next pivot) overlap; four (16 / 32) for `kd ≤ 8`, where that
/// latency chain (and the divisions of the solve) is most of the work (measured: ~15% faster
/// at kd = 1, ~5–10% at kd = 4 and 8, slower at kd = 17), when the batch still makes at least
/// two such packs (otherwise one wide pack leaves a thread idle: measured at kd = 4, 16
/// systems took 350 µs as one 16-lane pack).
const BYTES_PER_PACK: usize = 64;

/// The kernel for a batch of `batch` systems: the per-system kernel when there is not even one
/// full pack (a padded pack costs ~5× one system there, and one pack would leave the other
/// threads idle), otherwise `best`.
pub(crate) fn kernel_for<T>(best: Kernel, batch: usize, kd: usize) -> Kernel {
    if batch < lanes::<T>(kd, batch) { Kernel::Scalar } else { best }
}

/// Whether the last `rem < L` systems (after the full packs) run as a padded pack (`rem ≥ L/2`)
/// or one system at a time with the per-system kernels (fewer: cheaper than a padded pack).
fn tail_as_pack(rem: usize, lanes: usize) -> bool {
    2 * rem >= lanes
}

/// The lanes of the packs a batch of `batch` systems of bandwidth `kd` is factored in by
/// [`Kernel::best`], or `None` when it runs one system at a time: the layout
/// [`Packed::factor_filled`] produces its full packs in.
pub(crate) fn pack_lanes<T>(batch: usize, kd: usize) -> Option<usize> {
    (kernel_for::<T>(Kernel::best(), batch, kd) != Kernel::Scalar).then(|| lanes::<T>(kd, batch))
}

/// The lanes per pack for `batch` systems of bandwidth `kd` (see [`BYTES_PER_PACK`]).
fn lanes<T>(kd: usize, batch: usize) -> usize {
    let base = BYTES_PER_PACK / std::mem::size_of::<T>();
    if kd <= 8 && batch >= 4 * base { 2 * base } else { base }
}

/// Factors every system of `data` (`batch` systems of `n·(kd+1)` elements, the
/// [`BandBatch`](crate::BandBatch) layout) in place with `kernel`; per system `Err(column)` of
/// the first pivot that is not positive and finite (then that system's storage holds garbage,
/// which the caller drops). Other systems of the same pack are not affected.
pub(crate) fn factor_batch<T: Real>(kernel: Kernel, data: &mut [T], batch: usize, n: usize, kd: usize, par: Par) -> Vec<Result<(), usize>> {
    let len = n * (kd + 1);
    if kernel == Kernel::Scalar {
        return data
            .par_chunks_mut(len)
            .with_min_len(min_len(par, batch))
            .map(|sys| factor_system(sys, n, kd))
            .collect();
    }
    match lanes::<T>(kd, batch) {
        8 => factor_packs::<T, 8>(kernel, data, batch, n, kd, par),
        16 => factor_packs::<T, 16>(kernel, data, batch, n, kd, par),
        _ => factor_packs::<T, 32>(kernel, data, batch, n, kd, par),
    }
}

fn factor_packs<T: Real, const L: usize>(
    kernel: Kernel,
    data: &mut [T],
    batch: usize,
    n: usize,
    kd: usize,
    par: Par,
) -> Vec<Result<(), usize>> {
    let len = n * (kd + 1);
    let packs = batch.div_ceil(L);
    let cols = block_cols::<T, L>(n, kd) + kd.min(n);
    let fails: Vec<[usize; L]> = data
        .par_chunks_mut(len * L)
        .with_min_len(min_len(par, packs))
        .map_init(|| scratch(cols * (kd + 1), [T::zero(); L]), |buf, chunk| factor_one_pack(kernel, chunk, buf, n, kd))
        .collect();
    fails.iter().flatten().take(batch).map(|&f| if f == usize::MAX { Ok(()) } else { Err(f) }).collect()
}

/// Columns per block of the streamed factor/solve: the window of `block + kd` columns of a pack
/// (`(block + kd)·(kd+1)·L` elements) stays within about 256 KiB (the L2 cache).
fn block_cols<T, const L: usize>(n: usize, kd: usize) -> usize {
    let col_bytes = (kd + 1) * L * std::mem::size_of::<T>();
    (256 * 1024 / col_bytes).saturating_sub(kd).max(16).min(n.max(1))
}

/// Factors the systems of `chunk` (`chunk.len() / len ≤ L` consecutive band systems) as one
/// pack, streaming: the columns are gathered into `buf` (a window of `block + kd` columns) just
/// before they are needed and scattered back as soon as they are final, so each element moves
/// through the cache once.
fn factor_one_pack<T: Real, const L: usize>(kernel: Kernel, chunk: &mut [T], buf: &mut [[T; L]], n: usize, kd: usize) -> [usize; L] {
    let w = kd + 1;
    let block = buf.len() / w - kd.min(n);
    let mut fail = [usize::MAX; L];
    let mut j0 = 0;
    // Columns [j0, loaded) are in buf[..(loaded − j0)·w].
    let mut loaded = (block + kd).min(n);
    gather_band(kernel, chunk, buf, n, kd, 0, loaded);
    loop {
        let nb = block.min(n - j0);
        let in_buf = loaded - j0;
        run_factor(kernel, &mut buf[..in_buf * w], n - j0, nb, kd, j0, &mut fail);
        scatter_band(kernel, &buf[..nb * w], chunk, n, kd, j0);
        j0 += nb;
        if j0 == n {
            return fail;
        }
        buf.copy_within(nb * w..in_buf * w, 0);
        let next = (j0 + block + kd).min(n);
        gather_band(kernel, chunk, &mut buf[(loaded - j0) * w..], n, kd, loaded, next);
        loaded = next;
    }
}

/// Solves every system of `b` (`batch` row-major `n × nrhs` matrices) in place with the factors
/// in `l` (the [`BandBatch`](crate::BandBatch) layout).
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_batch<T: Real>(kernel: Kernel, l: &[T], b: &mut [T], batch: usize, n: usize, kd: usize, nrhs: usize, par: Par) {
    let len = n * (kd + 1);
    if kernel == Kernel::Scalar {
        b.par_chunks_mut(n * nrhs)
            .zip(l.par_chunks(len))
            .with_min_len(min_len(par, batch))
            .for_each(|(x, l)| solve_system(l, n, kd, x, nrhs));
        return;
    }
    match lanes::<T>(kd, batch) {
        8 => solve_packs::<T, 8>(kernel, l, b, batch, n, kd, nrhs, par),
        16 => solve_packs::<T, 16>(kernel, l, b, batch, n, kd, nrhs, par),
        _ => solve_packs::<T, 32>(kernel, l, b, batch, n, kd, nrhs, par),
    }
}

#[allow(clippy::too_many_arguments)]
fn solve_packs<T: Real, const L: usize>(
    kernel: Kernel,
    l: &[T],
    b: &mut [T],
    batch: usize,
    n: usize,
    kd: usize,
    nrhs: usize,
    par: Par,
) {
    let len = n * (kd + 1);
    let packs = batch.div_ceil(L);
    let block = block_cols::<T, L>(n, kd);
    b.par_chunks_mut(n * nrhs * L)
        .zip(l.par_chunks(len * L))
        .with_min_len(min_len(par, packs))
        .for_each_init(
            || (scratch(block * (kd + 1), [T::zero(); L]), scratch(n * nrhs, [T::zero(); L])),
            |(lbuf, bbuf), (x, lc)| {
                let w = kd + 1;
                gather(kernel, x, bbuf, n * nrhs, 0, n * nrhs, |_| T::zero());
                let mut j0 = 0;
                while j0 < n {
                    let nb = block.min(n - j0);
                    gather_band(kernel, lc, lbuf, n, kd, j0, j0 + nb);
                    run_solve(kernel, &lbuf[..nb * w], bbuf, n, kd, nrhs, j0, true);
                    j0 += nb;
                }
                while j0 > 0 {
                    let nb = if j0 % block == 0 { block } else { j0 % block };
                    j0 -= nb;
                    gather_band(kernel, lc, lbuf, n, kd, j0, j0 + nb);
                    run_solve(kernel, &lbuf[..nb * w], bbuf, n, kd, nrhs, j0, false);
                }
                scatter(kernel, bbuf, x, n * nrhs, 0);
            },
        );
}

/// A factored batch stored as packs **in place of the input's storage**: the first
/// `full = batch / L` packs of `L` systems are rewritten, each in its own `len·L` slice, into the
/// pack layout (`data[(p·len + k)·L + lane]`, `k = j·(kd+1) + d`); the remaining `batch % L`
/// systems stay in the [`BandBatch`](crate::BandBatch) layout at their usual offsets (no
/// padding is stored: a single huge system costs no more memory than its band) and run as one
/// padded pack streamed from that layout, or (fewer than `L/2` of them) one by one. A solve then
/// reads the packs directly (no transposes); converting back to the band layout is one
/// transpose per element ([`Packed::into_band`], in place).
#[derive(Clone, Debug)]
pub(crate) struct Packed<T> {
    data: Vec<T>,
    kernel: Kernel,
    lanes: usize,
    batch: usize,
    n: usize,
    kd: usize,
}

impl<T: Real> Packed<T> {
    /// Factors `data` (`batch` systems in the band layout) with a pack kernel (not
    /// [`Kernel::Scalar`]); per system `Err(column)` of the first failing pivot. With
    /// `nrhs > 0` also solves `b` (`batch` row-major `n × nrhs` matrices) in place, fused: each
    /// window of columns runs its forward substitution right after its factorization and its
    /// backward substitution just before it is stored, while it is in cache (the same
    /// operations in the same order as [`Packed::solve`] afterwards, so bitwise the same `x`).
    /// A failed system's `b` is left holding garbage. `b` is empty when `nrhs == 0`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn factor(kernel: Kernel, mut data: Vec<T>, batch: usize, n: usize, kd: usize, b: &mut [T], nrhs: usize, par: Par) -> (Self, Vec<Result<(), usize>>) {
        let lanes = lanes::<T>(kd, batch);
        let status = match lanes {
            8 => factor_in_packs::<T, 8, NoFill<T, 8>, _>(kernel, &mut data, batch, n, kd, b, nrhs, par, None),
            16 => factor_in_packs::<T, 16, NoFill<T, 16>, _>(kernel, &mut data, batch, n, kd, b, nrhs, par, None),
            _ => factor_in_packs::<T, 32, NoFill<T, 32>, _>(kernel, &mut data, batch, n, kd, b, nrhs, par, None),
        };
        (Self { data, kernel, lanes, batch, n, kd }, status)
    }

    /// [`factor`](Self::factor) of `L`-lane packs (`L` = [`pack_lanes`]) whose columns are
    /// produced during the factorization instead of read from a band: `make_fill(p)` gives, for
    /// full pack `p`, a function `fill(pack, upto)` that must make the pack's first `upto`
    /// columns final (in the pack layout; called with non-decreasing `upto`, ending at `n`)
    /// before the factorization reads them. Each window of columns is thus produced, factored
    /// and forward-substituted while in cache, and the storage is written once. `data`: the
    /// full packs' storage (any contents) followed by the other `batch % L` systems in the
    /// band layout, already filled. The S-MNN assembly writes its normal matrices this way.
    /// `L` must be `pack_lanes(batch, kd)`: [`Packed::solve`] reads the packs with that width.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn factor_filled<const L: usize, G, F>(
        kernel: Kernel,
        mut data: Vec<T>,
        batch: usize,
        n: usize,
        kd: usize,
        b: &mut [T],
        nrhs: usize,
        par: Par,
        make_fill: &G,
    ) -> (Self, Vec<Result<(), usize>>)
    where
        G: Fn(usize) -> F + Sync,
        F: FnMut(&mut [[T; L]], usize),
    {
        let status = factor_in_packs::<T, L, G, F>(kernel, &mut data, batch, n, kd, b, nrhs, par, Some(make_fill));
        (Self { data, kernel, lanes: L, batch, n, kd }, status)
    }

    /// Rewrites band-layout storage (already factored) into packs, in place.
    pub(crate) fn from_band(kernel: Kernel, mut data: Vec<T>, batch: usize, n: usize, kd: usize) -> Self {
        let lanes = lanes::<T>(kd, batch);
        let len = n * (kd + 1);
        match lanes {
            8 => repack::<T, 8>(kernel, &mut data, batch, len, true),
            16 => repack::<T, 16>(kernel, &mut data, batch, len, true),
            _ => repack::<T, 32>(kernel, &mut data, batch, len, true),
        }
        Self { data, kernel, lanes, batch, n, kd }
    }

    /// The storage in the band layout (in place; one transpose per element of the packs).
    pub(crate) fn into_band(mut self) -> Vec<T> {
        let len = self.n * (self.kd + 1);
        match self.lanes {
            8 => repack::<T, 8>(self.kernel, &mut self.data, self.batch, len, false),
            16 => repack::<T, 16>(self.kernel, &mut self.data, self.batch, len, false),
            _ => repack::<T, 32>(self.kernel, &mut self.data, self.batch, len, false),
        }
        self.data
    }

    /// The storage, as it is (for reuse by the next factorization).
    pub(crate) fn into_storage(self) -> Vec<T> {
        self.data
    }

    /// `(batch, n, kd)`.
    pub(crate) fn shape(&self) -> (usize, usize, usize) {
        (self.batch, self.n, self.kd)
    }

    /// The diagonal of `L_s` as `(slice, stride)`: `L_s[j, j] = slice[j·stride]`, and
    /// `slice.iter().step_by(stride)` yields exactly the `n` diagonal entries.
    pub(crate) fn diag_strided(&self, s: usize) -> (&[T], usize) {
        let (len, lanes, w) = (self.n * (self.kd + 1), self.lanes, self.kd + 1);
        if s < self.batch / lanes * lanes {
            let start = s / lanes * len * lanes + s % lanes;
            (&self.data[start..start + (len - w) * lanes + 1], w * lanes)
        } else {
            (&self.data[s * len..s * len + len - w + 1], w)
        }
    }

    /// Solves every system of `b` (`batch` row-major `n × nrhs` matrices) in place.
    pub(crate) fn solve(&self, b: &mut [T], nrhs: usize, par: Par) {
        match self.lanes {
            8 => self.solve_l::<8>(b, nrhs, par),
            16 => self.solve_l::<16>(b, nrhs, par),
            _ => self.solve_l::<32>(b, nrhs, par),
        }
    }

    fn solve_l<const L: usize>(&self, b: &mut [T], nrhs: usize, par: Par) {
        let (kernel, batch, n, kd) = (self.kernel, self.batch, self.n, self.kd);
        let len = n * (kd + 1);
        let full = batch / L;
        let (bf, bt) = b.split_at_mut(full * L * n * nrhs);
        let (lf, lt) = self.data.split_at(full * L * len);
        crate::par::join(
            par,
            || {
                bf.par_chunks_mut(n * nrhs * L)
                    .zip(lf.par_chunks(len * L))
                    .with_min_len(min_len(par, full.max(1)))
                    .for_each(|(x, lc)| {
                        with_thread_scratch::<T, _>(n * nrhs * L, |s| {
                            let (lp, bbuf) = (lc.as_chunks::<L>().0, s.as_chunks_mut::<L>().0);
                            gather(kernel, x, bbuf, n * nrhs, 0, n * nrhs, |_| T::zero());
                            solve_in_blocks(kernel, lp, bbuf, n, kd, nrhs, true);
                            solve_in_blocks(kernel, lp, bbuf, n, kd, nrhs, false);
                            scatter(kernel, bbuf, x, n * nrhs, 0);
                        })
                    })
            },
            || match batch - full * L {
                0 => {}
                rem if tail_as_pack(rem, L) => solve_packs::<T, L>(kernel, lt, bt, rem, n, kd, nrhs, par),
                rem => solve_batch(Kernel::Scalar, lt, bt, rem, n, kd, nrhs, par),
            },
        );
    }
}

/// The type of "no fill": [`factor_in_packs`] gathers its full packs from the band layout.
type NoFill<T, const L: usize> = fn(usize) -> fn(&mut [[T; L]], usize);

/// The factor (and fused solve) of [`Packed::factor`] for `L` lanes, or with `make_fill` that
/// of [`Packed::factor_filled`].
#[allow(clippy::too_many_arguments)]
fn factor_in_packs<T: Real, const L: usize, G, F>(
    kernel: Kernel,
    data: &mut [T],
    batch: usize,
    n: usize,
    kd: usize,
    b: &mut [T],
    nrhs: usize,
    par: Par,
    make_fill: Option<&G>,
) -> Vec<Result<(), usize>>
where
    G: Fn(usize) -> F + Sync,
    F: FnMut(&mut [[T; L]], usize),
{
    let (len, blen) = (n * (kd + 1), n * nrhs);
    let full = batch / L;
    let (df, dt) = data.split_at_mut(full * L * len);
    let (bf, bt) = b.split_at_mut(full * L * blen);
    // One right-hand-side slice per full pack (empty ones when there is nothing to solve).
    let rhs: Vec<&mut [T]> = if nrhs == 0 { (0..full).map(|_| &mut [][..]).collect() } else { bf.chunks_mut(blen * L).collect() };
    let (fails, tail) = crate::par::join(
        par,
        || {
            df.par_chunks_mut(len * L)
                .zip(rhs)
                .enumerate()
                .with_min_len(min_len(par, full.max(1)))
                .map(|(p, (chunk, x))| {
                    // A whole pack (gathered from the band layout) unless filled in place.
                    let buf_len = if make_fill.is_some() { 0 } else { len * L };
                    with_thread_scratch::<T, _>(buf_len + blen * L, |s| {
                        let (buf, bbuf) = s.split_at_mut(buf_len);
                        let (buf, bbuf) = (buf.as_chunks_mut::<L>().0, bbuf.as_chunks_mut::<L>().0);
                        match make_fill {
                            Some(make) => factor_filled_pack(kernel, chunk.as_chunks_mut::<L>().0, x, bbuf, n, kd, nrhs, make(p)),
                            None => factor_full_pack(kernel, chunk, buf, x, bbuf, n, kd, nrhs),
                        }
                    })
                })
                .collect::<Vec<[usize; L]>>()
        },
        || {
            let rem = batch - full * L;
            if rem == 0 {
                return Vec::new();
            }
            let kernel = if tail_as_pack(rem, L) { kernel } else { Kernel::Scalar };
            let status = if kernel == Kernel::Scalar { factor_batch(kernel, dt, rem, n, kd, par) } else { factor_packs::<T, L>(kernel, dt, rem, n, kd, par) };
            if nrhs > 0 {
                solve_batch(kernel, dt, bt, rem, n, kd, nrhs, par);
            }
            status
        },
    );
    fails.iter().flatten().map(|&f| if f == usize::MAX { Ok(()) } else { Err(f) }).chain(tail).collect()
}

/// Factors one full pack in place in the pack layout, window by window, each window's columns
/// (and the `kd` after them, which its updates reach) produced by `fill` just before, with the
/// solve of `x` fused as in [`factor_full_pack`].
#[allow(clippy::too_many_arguments)]
fn factor_filled_pack<T: Real, const L: usize>(
    kernel: Kernel,
    pack: &mut [[T; L]],
    x: &mut [T],
    bbuf: &mut [[T; L]],
    n: usize,
    kd: usize,
    nrhs: usize,
    mut fill: impl FnMut(&mut [[T; L]], usize),
) -> [usize; L] {
    let w = kd + 1;
    let block = block_cols::<T, L>(n, kd);
    let mut fail = [usize::MAX; L];
    if nrhs > 0 {
        gather(kernel, x, bbuf, n * nrhs, 0, n * nrhs, |_| T::zero());
    }
    let mut j0 = 0;
    while j0 < n {
        let nb = block.min(n - j0);
        fill(pack, (j0 + nb + kd).min(n));
        run_factor(kernel, &mut pack[j0 * w..], n - j0, nb, kd, j0, &mut fail);
        if nrhs > 0 {
            run_solve(kernel, &pack[j0 * w..(j0 + nb) * w], bbuf, n, kd, nrhs, j0, true);
        }
        j0 += nb;
    }
    if nrhs > 0 {
        solve_in_blocks(kernel, pack, bbuf, n, kd, nrhs, false);
        scatter(kernel, bbuf, x, n * nrhs, 0);
    }
    fail
}

/// [`run_solve`] over a whole pack `l` (pack layout, in memory), one cache-sized block of
/// columns at a time, each [`touch`]ed first: the substitution's dependent loads then hit the
/// cache (measured on the S-MNN factor, 128 × n = 9000, kd = 11: factoring packs in place
/// from memory took 20 ms without, 10.5 ms with).
#[allow(clippy::too_many_arguments)]
fn solve_in_blocks<T: Real, const L: usize>(kernel: Kernel, l: &[[T; L]], b: &mut [[T; L]], n: usize, kd: usize, nrhs: usize, forward: bool) {
    let w = kd + 1;
    let block = block_cols::<T, L>(n, kd);
    if forward {
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + block).min(n);
            touch(&l[j0 * w..j1 * w]);
            run_solve(kernel, &l[j0 * w..j1 * w], b, n, kd, nrhs, j0, true);
            j0 = j1;
        }
    } else {
        let mut j1 = n;
        while j1 > 0 {
            let j0 = j1 - if j1.is_multiple_of(block) { block } else { j1 % block };
            touch(&l[j0 * w..j1 * w]);
            run_solve(kernel, &l[j0 * w..j1 * w], b, n, kd, nrhs, j0, false);
            j1 = j0;
        }
    }
}

/// Reads one element of every row of `rows` (a streaming pass that the hardware prefetches
/// well), so that the dependent loads of the factorization or substitution that follows hit
/// the cache instead of waiting on memory one column at a time.
#[inline(never)]
fn touch<T: Real, const L: usize>(rows: &[[T; L]]) {
    let mut acc = T::zero();
    for row in rows {
        acc = acc + row[0];
    }
    std::hint::black_box(acc);
}

/// Factors one full pack (`chunk`: `L` band systems) and leaves it in `chunk` in the pack
/// layout. The columns are gathered into `buf` (the whole pack, `len` rows) a window ahead of
/// the factorization, then copied back over `chunk`. With `nrhs > 0`, `x` (the pack's `L`
/// right-hand sides, gathered into `bbuf`) is solved in place, fused: each window's forward
/// substitution follows its factorization, and its backward substitution precedes its copy
/// back (window by window from the end).
#[allow(clippy::too_many_arguments)]
fn factor_full_pack<T: Real, const L: usize>(kernel: Kernel, chunk: &mut [T], buf: &mut [[T; L]], x: &mut [T], bbuf: &mut [[T; L]], n: usize, kd: usize, nrhs: usize) -> [usize; L] {
    let w = kd + 1;
    let block = block_cols::<T, L>(n, kd);
    let mut fail = [usize::MAX; L];
    if nrhs > 0 {
        gather(kernel, x, bbuf, n * nrhs, 0, n * nrhs, |_| T::zero());
    }
    let mut loaded = (block + kd).min(n);
    gather_band(kernel, chunk, buf, n, kd, 0, loaded);
    let mut j0 = 0;
    loop {
        let nb = block.min(n - j0);
        run_factor(kernel, &mut buf[j0 * w..loaded * w], n - j0, nb, kd, j0, &mut fail);
        if nrhs > 0 {
            run_solve(kernel, &buf[j0 * w..(j0 + nb) * w], bbuf, n, kd, nrhs, j0, true);
        }
        j0 += nb;
        if j0 == n {
            break;
        }
        let next = (j0 + block + kd).min(n);
        gather_band(kernel, chunk, &mut buf[loaded * w..], n, kd, loaded, next);
        loaded = next;
    }
    if nrhs == 0 {
        chunk.copy_from_slice(buf.as_flattened());
        return fail;
    }
    // Every column is gathered: `chunk` may now be overwritten in any order.
    let mut j1 = n;
    while j1 > 0 {
        let j0 = j1 - if j1.is_multiple_of(block) { block } else { j1 % block };
        let cols = &buf[j0 * w..j1 * w];
        run_solve(kernel, cols, bbuf, n, kd, nrhs, j0, false);
        chunk[j0 * w * L..j1 * w * L].copy_from_slice(cols.as_flattened());
        j1 = j0;
    }
    scatter(kernel, bbuf, x, n * nrhs, 0);
    fail
}

/// Rewrites the full packs of `data` between the band layout and the pack layout, in place
/// (`to_packs`: band → packs).
fn repack<T: Real, const L: usize>(kernel: Kernel, data: &mut [T], batch: usize, len: usize, to_packs: bool) {
    let full = batch / L;
    data[..full * L * len].par_chunks_mut(len * L).for_each_init(
        || scratch(len, [T::zero(); L]),
        |buf, chunk| {
            if to_packs {
                gather(kernel, chunk, buf, len, 0, len, |_| T::zero());
                chunk.copy_from_slice(buf.as_flattened());
            } else {
                buf.as_flattened_mut().copy_from_slice(chunk);
                scatter(kernel, buf, chunk, len, 0);
            }
        },
    );
}

/// A window of rows of `L` systems' arrays in the interleaved layout (`rows[k − start][lane]`
/// = element `k` of system `lane`), transposed in (by [`gather`]) `span` rows at a time: the
/// per-step rows the S-MNN kernels walk through are short (a few to a few tens of elements),
/// so gathering them one step at a time would spend more in the transposes' setup than in
/// the moves.
pub(crate) struct Window<T, const L: usize> {
    rows: Vec<[T; L]>,
    start: usize,
    end: usize,
}

impl<T: Real, const L: usize> Window<T, L> {
    pub(crate) fn new() -> Self {
        Self { rows: Vec::new(), start: 0, end: 0 }
    }

    /// Rows `k0..k1` of the `L` systems of `src` (`len` elements each, system after system),
    /// gathering rows `k0..min(k0 + span, len)` (at least `k1`) first unless they are in the
    /// window already.
    #[inline]
    pub(crate) fn get(&mut self, kernel: Kernel, src: &[T], len: usize, k0: usize, k1: usize, span: usize) -> &[[T; L]] {
        if k0 < self.start || k1 > self.end {
            let end = (k0 + span).max(k1).min(len);
            self.rows.resize(end - k0, [T::zero(); L]);
            gather(kernel, src, &mut self.rows, len, k0, end, |_| T::zero());
            (self.start, self.end) = (k0, end);
        }
        &self.rows[k0 - self.start..k1 - self.start]
    }
}

/// `buf[k − k0][lane] = chunk[lane·len + k]` for `k0 ≤ k < k1` and the systems present
/// (`chunk.len() / len` of them); missing lanes get `pad(k)`.
#[inline]
pub(crate) fn gather<T: Real, const L: usize>(
    kernel: Kernel,
    chunk: &[T],
    buf: &mut [[T; L]],
    len: usize,
    k0: usize,
    k1: usize,
    pad: impl Fn(usize) -> T,
) {
    let present = chunk.len() / len;
    let buf = &mut buf[..k1 - k0];
    #[cfg(target_arch = "x86_64")]
    if present == L && kernel == Kernel::Avx2 {
        let sys: [*mut T; L] = std::array::from_fn(|lane| chunk[lane * len + k0..lane * len + k1].as_ptr() as *mut T);
        // SAFETY: AVX2 was detected (`Kernel::Avx2`); each `sys[lane]` is the start of a slice of
        // `k1 − k0` elements of `chunk` (only read: `to_rows`), `buf` has `k1 − k0` rows and is a
        // different allocation.
        if unsafe { x86::transpose(sys, buf.as_mut_ptr(), k1 - k0, true) } {
            return;
        }
    }
    let _ = kernel;
    if present == L {
        let sys: [&[T]; L] = std::array::from_fn(|lane| &chunk[lane * len + k0..lane * len + k1]);
        for (i, row) in buf.iter_mut().enumerate() {
            *row = std::array::from_fn(|lane| sys[lane][i]);
        }
        return;
    }
    for (i, row) in buf.iter_mut().enumerate() {
        for (lane, v) in row.iter_mut().enumerate() {
            *v = if lane < present { chunk[lane * len + k0 + i] } else { pad(k0 + i) };
        }
    }
}

/// [`gather`] of the band columns `c0 ≤ j < c1`; padding lanes are the identity (diagonal 1,
/// band 0).
fn gather_band<T: Real, const L: usize>(kernel: Kernel, chunk: &[T], buf: &mut [[T; L]], n: usize, kd: usize, c0: usize, c1: usize) {
    let w = kd + 1;
    gather(kernel, chunk, buf, n * w, c0 * w, c1 * w, |k| if k % w == 0 { T::one() } else { T::zero() });
}

/// `chunk[lane·len + k0 + i] = buf[i][lane]` for every row `i` of `buf` and the systems present.
#[inline]
pub(crate) fn scatter<T: Real, const L: usize>(kernel: Kernel, buf: &[[T; L]], chunk: &mut [T], len: usize, k0: usize) {
    #[cfg(target_arch = "x86_64")]
    if chunk.len() == len * L && kernel == Kernel::Avx2 {
        let rows = buf.len();
        // Disjoint `&mut` sub-slices (one per system), so the `L` write pointers never alias.
        let mut lanes = chunk.chunks_exact_mut(len).map(|sys| sys[k0..k0 + rows].as_mut_ptr());
        let sys: [*mut T; L] = std::array::from_fn(|_| lanes.next().unwrap_or(std::ptr::null_mut()));
        // SAFETY: AVX2 was detected; `chunk` holds exactly `L` systems, so every pointer is
        // non-null (checked) and starts a disjoint `rows`-element range of `chunk` (exclusively
        // borrowed); `buf` has `rows` rows and is only read (`!to_rows`).
        if sys.iter().all(|p| !p.is_null()) && unsafe { x86::transpose(sys, buf.as_ptr() as *mut [T; L], rows, false) } {
            return;
        }
    }
    let _ = kernel;
    for (lane, sys) in chunk.chunks_exact_mut(len).enumerate() {
        for (v, row) in sys[k0..k0 + buf.len()].iter_mut().zip(buf) {
            *v = row[lane];
        }
    }
}

/// [`scatter`] of the band columns starting at `c0` (as many as `buf` holds).
fn scatter_band<T: Real, const L: usize>(kernel: Kernel, buf: &[[T; L]], chunk: &mut [T], n: usize, kd: usize, c0: usize) {
    scatter(kernel, buf, chunk, n * (kd + 1), c0 * (kd + 1));
}

fn run_factor<T: Real, const L: usize>(
    kernel: Kernel,
    a: &mut [[T; L]],
    n: usize,
    nb: usize,
    kd: usize,
    j0: usize,
    fail: &mut [usize; L],
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` reaches here only from `Kernel::best` or through
        // `Kernel::checked`, both after `is_x86_feature_detected!` found AVX2 and FMA.
        Kernel::Avx2 => unsafe { factor_pack_avx2(a, n, nb, kd, j0, fail) },
        _ => factor_pack(a, n, nb, kd, j0, fail),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_solve<T: Real, const L: usize>(
    kernel: Kernel,
    l: &[[T; L]],
    b: &mut [[T; L]],
    n: usize,
    kd: usize,
    nrhs: usize,
    j0: usize,
    forward: bool,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run_factor`: AVX2 and FMA were detected at run time.
        Kernel::Avx2 => unsafe { solve_pack_avx2(l, b, n, kd, nrhs, j0, forward) },
        _ => solve_pack(l, b, n, kd, nrhs, j0, forward),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn factor_pack_avx2<T: Real, const L: usize>(a: &mut [[T; L]], n: usize, nb: usize, kd: usize, j0: usize, fail: &mut [usize; L]) {
    factor_pack(a, n, nb, kd, j0, fail)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn solve_pack_avx2<T: Real, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], n: usize, kd: usize, nrhs: usize, j0: usize, forward: bool) {
    solve_pack(l, b, n, kd, nrhs, j0, forward)
}

/// Columns per register block of [`factor_pack`] (the rank-`K` update of the trailing band).
const K: usize = 4;
/// Narrower bands use rank-1 updates (`K = 1`): their trailing triangle is too small to gain.
const BLOCK_MIN_KD: usize = 32;

/// `factor_system` on `L` interleaved systems, columns `0 ≤ j < nb` of the window `a` (which
/// starts at global column `j0`, holds the columns up to `min(nb + kd, n)` and where `n` counts
/// the columns from the window start to the end of the matrix). Records in `fail`, per lane, the
/// first failing (global) column (`usize::MAX` if none). A failed lane keeps computing (its
/// values are garbage, possibly NaN) without touching the other lanes.
///
/// Register-blocked: the columns are taken `K` at a time; the `K` columns are factored among
/// themselves, then each trailing element `A[r, c]` receives their `K` rank-1 updates in one
/// load/store (`v − l₁·m₁ − l₂·m₂ − …`, left to right). Every element still receives exactly
/// the scalar kernel's updates in the same order, unfused, so each lane is bitwise equal to
/// `factor_system`; only the loads and stores are fewer.
#[inline(always)]
fn factor_pack<T: Real, const L: usize>(a: &mut [[T; L]], n: usize, nb: usize, kd: usize, j0: usize, fail: &mut [usize; L]) {
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
                    for l in 0..L {
                        v[l] = v[l] - lr[l] * lc[l];
                    }
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
fn solve_pack<T: Real, const L: usize>(l: &[[T; L]], b: &mut [[T; L]], n: usize, kd: usize, nrhs: usize, j0: usize, forward: bool) {
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
                for l in 0..L {
                    v[l] = v[l] * d[l].recip();
                }
            }
            for (r, lr) in col[1..=kn].iter().enumerate() {
                for (t, y) in tail[r * nrhs..(r + 1) * nrhs].iter_mut().zip(yj.iter()) {
                    for l in 0..L {
                        t[l] = t[l] - lr[l] * y[l];
                    }
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
                for l in 0..L {
                    v[l] = v[l] - lr[l] * x[l];
                }
            }
        }
        let d = col[0];
        for v in xj.iter_mut() {
            for l in 0..L {
                v[l] = v[l] * d[l].recip();
            }
        }
    }
}

/// AVX2 transposes between `L` system slices and interleaved rows (the gather and scatter of
/// full packs): 4×4 (f64) and 8×8 (f32) register transposes instead of one element at a time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::scalar::Real;

    /// Rows `0 ≤ i < rows` of `dst` become `[sys[0][i], …, sys[L−1][i]]` (`to_rows`), or the
    /// other way round. `false` (nothing done) unless `(T, L)` is `(f64, 8)` or `(f32, 16)`.
    ///
    /// # Safety
    /// AVX2 must be available, every `sys[lane]` must be valid for `rows` reads (and writes
    /// when `!to_rows`) and `dst` for `rows` rows; the `L` slices must not overlap `dst`.
    #[inline]
    pub(super) unsafe fn transpose<T: Real, const L: usize>(sys: [*mut T; L], dst: *mut [T; L], rows: usize, to_rows: bool) -> bool {
        let size = std::mem::size_of::<T>();
        if size == 8 && L.is_multiple_of(4) {
            // SAFETY: `Real` is sealed to f32 and f64, so an 8-byte `T` is f64 and `[T; 8]` is
            // `[f64; 8]`; the caller's guarantees carry over.
            unsafe { transpose_f64(sys.as_ptr() as *const *mut f64, L, dst as *mut f64, rows, to_rows) };
            true
        } else if size == 4 && L.is_multiple_of(8) {
            // SAFETY: as above, a 4-byte `T` is f32.
            unsafe { transpose_f32(sys.as_ptr() as *const *mut f32, L, dst as *mut f32, rows, to_rows) };
            true
        } else {
            false
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose_f64(sys: *const *mut f64, lanes: usize, dst: *mut f64, rows: usize, to_rows: bool) {
        // SAFETY: (whole body) the caller guarantees `sys[0..lanes]` valid for `rows` elements
        // and `dst` for `lanes·rows`; every access below is at index `< rows` (`< lanes·rows`).
        unsafe {
            let full = rows / 4 * 4;
            for g in 0..lanes / 4 {
                let s: [*mut f64; 4] = std::array::from_fn(|l| *sys.add(4 * g + l));
                let mut i = 0;
                while i < full {
                    let d = dst.add(i * lanes + 4 * g);
                    if to_rows {
                        let r = [_mm256_loadu_pd(s[0].add(i)), _mm256_loadu_pd(s[1].add(i)), _mm256_loadu_pd(s[2].add(i)), _mm256_loadu_pd(s[3].add(i))];
                        let o = t4x4(r);
                        for k in 0..4 {
                            _mm256_storeu_pd(d.add(lanes * k), o[k]);
                        }
                    } else {
                        let r: [__m256d; 4] = std::array::from_fn(|k| _mm256_loadu_pd(d.add(lanes * k)));
                        let o = t4x4(r);
                        for (l, p) in s.iter().enumerate() {
                            _mm256_storeu_pd(p.add(i), o[l]);
                        }
                    }
                    i += 4;
                }
                for i in full..rows {
                    for (l, p) in s.iter().enumerate() {
                        let d = dst.add(i * lanes + 4 * g + l);
                        if to_rows { *d = *p.add(i) } else { *p.add(i) = *d }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn t4x4(r: [__m256d; 4]) -> [__m256d; 4] {
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        [
            _mm256_permute2f128_pd::<0x20>(t0, t2),
            _mm256_permute2f128_pd::<0x20>(t1, t3),
            _mm256_permute2f128_pd::<0x31>(t0, t2),
            _mm256_permute2f128_pd::<0x31>(t1, t3),
        ]
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose_f32(sys: *const *mut f32, lanes: usize, dst: *mut f32, rows: usize, to_rows: bool) {
        // SAFETY: (whole body) as in `transpose_f64`, 8 lanes per register.
        unsafe {
            let full = rows / 8 * 8;
            for g in 0..lanes / 8 {
                let s: [*mut f32; 8] = std::array::from_fn(|l| *sys.add(8 * g + l));
                let mut i = 0;
                while i < full {
                    let d = dst.add(i * lanes + 8 * g);
                    if to_rows {
                        let r: [__m256; 8] = std::array::from_fn(|l| _mm256_loadu_ps(s[l].add(i)));
                        let o = t8x8(r);
                        for k in 0..8 {
                            _mm256_storeu_ps(d.add(lanes * k), o[k]);
                        }
                    } else {
                        let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(d.add(lanes * k)));
                        let o = t8x8(r);
                        for (l, p) in s.iter().enumerate() {
                            _mm256_storeu_ps(p.add(i), o[l]);
                        }
                    }
                    i += 8;
                }
                for i in full..rows {
                    for (l, p) in s.iter().enumerate() {
                        let d = dst.add(i * lanes + 8 * g + l);
                        if to_rows { *d = *p.add(i) } else { *p.add(i) = *d }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn t8x8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }
}
