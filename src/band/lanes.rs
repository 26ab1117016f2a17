//! The batch-interleaved ("lane") layout: `L` systems of a batch stored element by element
//! side by side, so that one SIMD operation on `[T; L]` works on `L` systems at once.
//!
//! ```text
//!  L band systems (column-major band, len = n·(kd+1) each)      one pack: rows of [T; L]
//!  sys 0: a0[0] a0[1] a0[2] …                                   row 0: [a0[0] a1[0] … aL-1[0]]
//!  sys 1: a1[0] a1[1] a1[2] …            ── gather ──▶          row 1: [a0[1] a1[1] … aL-1[1]]
//!  …                                     ◀── scatter ──         row 2: [a0[2] a1[2] … aL-1[2]]
//!  sys L−1: …                                                   …
//! ```
//!
//! Here live the rules every pack kernel (CPU now, GPU next) shares: how many lanes a batch is
//! packed in ([`pack_lanes`]), how its last, partial pack runs ([`tail_as_pack`]), how many
//! columns a cache-sized window holds ([`block_cols`]), and the moves between the layouts
//! ([`gather`], [`scatter`], the band-column versions, and [`Window`], a sliding window of
//! gathered rows). See `docs/ARCHITECTURE.md` for the whole picture.

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use rayon::prelude::*;

use crate::alloc::with_thread_scratch;
use crate::params::Params;
use crate::scalar::Real;
use crate::simd::Isa;

/// Runs `$body` with the const `$L` bound to the lane count `$lanes` (one of the widths
/// [`pack_lanes`] returns: 1, 8, 16, 32 or 64): the one place where a run-time lane count
/// becomes a const generic.
macro_rules! with_lanes {
    ($lanes:expr, $L:ident => $body:expr) => {
        match $lanes {
            8 => {
                const $L: usize = 8;
                $body
            }
            16 => {
                const $L: usize = 16;
                $body
            }
            32 => {
                const $L: usize = 32;
                $body
            }
            64 => {
                const $L: usize = 64;
                $body
            }
            _ => {
                const $L: usize = 1;
                $body
            }
        }
    };
}
pub(crate) use with_lanes;

/// Bytes of one pack row: a cache line, 8 f64 / 16 f32 lanes (one AVX-512 register, two AVX2
/// ones). Wider rows give the narrow bands more independent dependency chains (sqrt → div →
/// update → next pivot), which [`pack_lanes`] takes up to `kd = 8`; for wider bands they only
/// grow a pack's working set past the caches (measured on an Intel Xeon, AVX-512, n = 1000,
/// batch 256, kd 17 / 33 / 64: 16-lane packs 5.2 / 12.9 / 36.9 ms against 4.2 / 11.0 / 30.8 ms).
const ROW_BYTES: usize = 64;

/// Bandwidths up to this run in double-width packs when the batch makes enough of them: their
/// per-column latency chain (and the divisions of the solve) is most of the work (measured:
/// ~15% faster at kd = 1, 5–10% at kd = 4 and 8, slower at kd = 17).
const WIDE_MAX_KD: usize = 8;

/// The lanes per pack the batched kernels run a batch of `batch` systems of bandwidth `kd` in,
/// under `params` (its parallelism and kernel), or 1 when they run one system at a time.
///
/// The rule (one function, so tests can drive every width): no packs with
/// [`Kernel::Reference`](crate::Kernel::Reference) or when the batch does not fill one pack of
/// two vector registers per row (8 f64 / 16 f32 with AVX2 and the other instruction sets, twice
/// that with [`Kernel::Avx512`](crate::Kernel::Avx512); a padded pack costs ~5× one system and
/// would leave other threads idle). Otherwise, for `kd ≤ 8`, one or two such widths, whichever
/// finishes the batch first on `params`' threads (rounds of packs times the time of one; a
/// double-width pack takes ~1.8× a single one there, a padded tail pack ~1.3× a full one), so
/// that e.g. 256 f64 systems at kd = 4 run as 16 packs of 16 on two threads, but 40 or 48 run as
/// 8-lane packs (3 rounds of 1 rather than 2 rounds of 1.8).
pub fn pack_lanes<T: Real>(batch: usize, kd: usize, params: &Params) -> usize {
    if Isa::of(params.kernel()).is_none() {
        return 1;
    }
    let base = ROW_BYTES / std::mem::size_of::<T>();
    if batch < base {
        return 1;
    }
    if kd > WIDE_MAX_KD {
        return base;
    }
    let threads = params.threads().max(1);
    // The time to finish the batch in packs of `lanes`, one of which takes `pack`: rounds of
    // packs over the threads, no less than the longest pack (a padded tail pack streams its
    // columns from the band layout and takes ~1.3× a full one) or the work spread evenly.
    let time = |lanes: usize, pack: f64| {
        let (full, rem) = (batch / lanes, batch % lanes);
        let (tail_pack, singles) = if tail_as_pack(rem, lanes) { (1, 0) } else { (0, rem) };
        let tail = if tail_pack == 1 { TAIL_PACK_COST * pack } else { 0.0 };
        let work = full as f64 * pack + tail + singles as f64 * SYSTEM_COST;
        let rounds = (full + tail_pack).div_ceil(threads) as f64 * pack;
        rounds.max(tail).max(work / threads as f64)
    };
    if time(2 * base, WIDE_PACK_COST) < time(base, 1.0) { 2 * base } else { base }
}

/// The time of a double-width pack, in single-width packs (measured: 1.7–2.1 at kd ≤ 8).
const WIDE_PACK_COST: f64 = 1.8;
/// The time of a padded tail pack, in full packs of the same width.
const TAIL_PACK_COST: f64 = 1.3;
/// The time of one system alone with the reference kernels, in single-width packs.
const SYSTEM_COST: f64 = 0.2;

/// Whether the last `rem < L` systems of a batch (after its full packs) run as one padded pack
/// (`rem ≥ L/2`; the padding lanes hold identity systems, which cannot fail and are never
/// written back) or one at a time with the reference kernels (fewer: cheaper than a pack).
pub(crate) fn tail_as_pack(rem: usize, lanes: usize) -> bool {
    rem > 0 && 2 * rem >= lanes
}

/// Columns per window of the windowed kernels: `block + kd` columns of a pack
/// (`(block + kd)·(kd+1)·L` elements) stay within about 256 KiB (the L2 cache).
pub(crate) fn block_cols<T, const L: usize>(n: usize, kd: usize) -> usize {
    let col_bytes = (kd + 1) * L * std::mem::size_of::<T>();
    (256 * 1024 / col_bytes).saturating_sub(kd).max(16).min(n.max(1))
}

/// `buf[k − k0][lane] = chunk[lane·len + k]` for `k` in `rows = k0..k1` and the systems present
/// (`chunk.len() / len` of them); missing lanes get `pad(k)`.
#[inline(always)]
pub(crate) fn gather<T: Real, const L: usize>(chunk: &[T], buf: &mut [[T; L]], len: usize, rows: Range<usize>, pad: impl Fn(usize) -> T) {
    let (k0, k1) = (rows.start, rows.end);
    let buf = &mut buf[..k1 - k0];
    let present = chunk.len() / len;
    if present == L {
        let sys: [&[T]; L] = std::array::from_fn(|lane| &chunk[lane * len + k0..lane * len + k1]);
        transpose_in(sys, buf);
        return;
    }
    for (i, row) in buf.iter_mut().enumerate() {
        for (lane, v) in row.iter_mut().enumerate() {
            *v = if lane < present { chunk[lane * len + k0 + i] } else { pad(k0 + i) };
        }
    }
}

/// [`gather`] of whole arrays (`rows = 0..len`), missing lanes zero.
#[inline(always)]
pub(crate) fn gather_all<T: Real, const L: usize>(chunk: &[T], buf: &mut [[T; L]], len: usize) {
    gather(chunk, buf, len, 0..len, |_| T::zero());
}

/// `chunk[lane·len + k0 + i] = buf[i][lane]` for every row `i` of `buf` and the systems present.
#[inline(always)]
pub(crate) fn scatter<T: Real, const L: usize>(buf: &[[T; L]], chunk: &mut [T], len: usize, k0: usize) {
    let rows = buf.len();
    if chunk.len() == len * L {
        let mut it = chunk.chunks_exact_mut(len).map(|sys| &mut sys[k0..k0 + rows]);
        let sys: [&mut [T]; L] = std::array::from_fn(|_| it.next().unwrap_or_default());
        transpose_out(buf, sys);
        return;
    }
    for (lane, sys) in chunk.chunks_exact_mut(len).enumerate() {
        for (v, row) in sys[k0..k0 + rows].iter_mut().zip(buf) {
            *v = row[lane];
        }
    }
}

/// [`gather`] of the band columns `cols` (band layout, `n·(kd+1)` per system); padding lanes
/// are the identity (diagonal 1, band 0).
#[inline(always)]
pub(crate) fn gather_band<T: Real, const L: usize>(chunk: &[T], buf: &mut [[T; L]], n: usize, kd: usize, cols: Range<usize>) {
    let w = kd + 1;
    gather(chunk, buf, n * w, cols.start * w..cols.end * w, |k| if k % w == 0 { T::one() } else { T::zero() });
}

/// [`scatter`] of the band columns starting at `c0` (as many as `buf` holds).
#[inline(always)]
pub(crate) fn scatter_band<T: Real, const L: usize>(buf: &[[T; L]], chunk: &mut [T], n: usize, kd: usize, c0: usize) {
    scatter(buf, chunk, n * (kd + 1), c0 * (kd + 1));
}

/// `out[i·step][lane] = src[lane·sys_len + first + i]` for `i < count`: the `L` systems'
/// contiguous runs, transposed (through the register transposes, a block of rows at a time)
/// into rows `step` apart; `check` sees each transposed block (e.g. to scan it for NaN while it
/// is in registers' reach).
#[inline(always)]
pub(crate) fn gather_strided<T: Real, const L: usize>(
    src: &[T],
    sys_len: usize,
    first: usize,
    count: usize,
    out: &mut [[T; L]],
    step: usize,
    mut check: impl FnMut(&[[T; L]]),
) {
    const BLOCK: usize = 32;
    let mut tmp = [[T::zero(); L]; BLOCK];
    let mut i0 = 0;
    while i0 < count {
        let m = BLOCK.min(count - i0);
        let sys: [&[T]; L] = std::array::from_fn(|l| &src[l * sys_len + first + i0..l * sys_len + first + i0 + m]);
        transpose_in(sys, &mut tmp[..m]);
        check(&tmp[..m]);
        for (i, row) in tmp[..m].iter().enumerate() {
            out[(i0 + i) * step] = *row;
        }
        i0 += m;
    }
}

/// `rows[i][lane] = sys[lane][i]`: `L` equal-length slices into rows.
///
/// On x86-64 with AVX2, full 4-lane (f64) / 8-lane (f32) groups move through register
/// transposes (`x86` below); measured, the compiler's own vectorisation of the plain loops
/// matches them for f64 but is 2–4× slower for f32, and these moves are a quarter of the time of
/// a narrow-band factor. Elsewhere (and for the rest) the plain loops.
#[inline(always)]
fn transpose_in<T: Real, const L: usize>(sys: [&[T]; L], rows: &mut [[T; L]]) {
    #[cfg(target_arch = "x86_64")]
    if x86::transpose_in(&sys, rows) {
        return;
    }
    for (i, row) in rows.iter_mut().enumerate() {
        *row = std::array::from_fn(|lane| sys[lane][i]);
    }
}

/// `sys[lane][i] = rows[i][lane]`: [`transpose_in`] the other way.
#[inline(always)]
fn transpose_out<T: Real, const L: usize>(rows: &[[T; L]], mut sys: [&mut [T]; L]) {
    #[cfg(target_arch = "x86_64")]
    if x86::transpose_out(rows, &mut sys) {
        return;
    }
    for (lane, s) in sys.iter_mut().enumerate() {
        for (v, row) in s.iter_mut().zip(rows) {
            *v = row[lane];
        }
    }
}

/// A window of rows of `L` systems' arrays in the interleaved layout (`rows[k − start][lane]`
/// = element `k` of system `lane`), gathered `span` rows at a time: the per-step rows the S-MNN
/// kernels walk through are short (a few to a few tens of elements), so gathering them one step
/// at a time would spend more in the transposes' setup than in the moves.
pub(crate) struct Window<T, const L: usize> {
    rows: Vec<[T; L]>,
    start: usize,
    end: usize,
}

impl<T: Real, const L: usize> Window<T, L> {
    pub(crate) fn new() -> Self {
        Self { rows: Vec::new(), start: 0, end: 0 }
    }

    /// Rows `k0..k1` (`rows`) of the `L` systems of `src` (`len` elements each, system after
    /// system), gathering rows `k0..min(k0 + span, len)` (at least `k1`) first unless they are
    /// in the window already.
    #[inline]
    pub(crate) fn get(&mut self, src: &[T], len: usize, rows: Range<usize>, span: usize) -> &[[T; L]] {
        let (k0, k1) = (rows.start, rows.end);
        if k0 < self.start || k1 > self.end {
            let end = (k0 + span).max(k1).min(len);
            self.rows.resize(end - k0, [T::zero(); L]);
            gather(src, &mut self.rows, len, k0..end, |_| T::zero());
            (self.start, self.end) = (k0, end);
        }
        &self.rows[k0 - self.start..k1 - self.start]
    }
}

/// AVX2 register transposes between `L` system slices and interleaved rows: 4×4 (f64) and 8×8
/// (f32) tiles, one loop for both (generated by `tiles!`).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::scalar::Real;

    /// [`super::transpose_in`] through register tiles; `false` (nothing done) without AVX2 or
    /// when `L` is not a multiple of the tile width.
    #[inline(always)]
    pub(super) fn transpose_in<T: Real, const L: usize>(sys: &[&[T]; L], rows: &mut [[T; L]]) -> bool {
        if sys.iter().any(|s| s.len() != rows.len()) {
            return false;
        }
        let ptrs: [*mut T; L] = std::array::from_fn(|l| sys[l].as_ptr() as *mut T);
        // SAFETY: each `sys[lane]` holds `rows.len()` elements (checked just above) and is only
        // read (`to_rows`); `rows` is a distinct `&mut` borrow.
        unsafe { transpose(ptrs, rows.as_mut_ptr(), rows.len(), true) }
    }

    /// [`super::transpose_out`] through register tiles (see [`transpose_in`]).
    #[inline(always)]
    pub(super) fn transpose_out<T: Real, const L: usize>(rows: &[[T; L]], sys: &mut [&mut [T]; L]) -> bool {
        if sys.iter().any(|s| s.len() != rows.len()) {
            return false;
        }
        let ptrs: [*mut T; L] = std::array::from_fn(|l| sys[l].as_mut_ptr());
        // SAFETY: the `L` slices are distinct `&mut` borrows (so the pointers never alias) of
        // `rows.len()` elements each (checked just above); `rows` is only read (`!to_rows`).
        unsafe { transpose(ptrs, rows.as_ptr() as *mut [T; L], rows.len(), false) }
    }

    /// Rows `0 ≤ i < rows` of `dst` become `[sys[0][i], …, sys[L−1][i]]` (`to_rows`), or the
    /// other way round. `false` (nothing done) unless AVX2 is present and `L` is a multiple of
    /// the tile width.
    ///
    /// # Safety
    /// Every `sys[lane]` must be valid for `rows` reads (and writes when `!to_rows`) and `dst`
    /// for `rows` rows; the `L` slices must not overlap `dst` or (when written) each other.
    #[inline(always)]
    unsafe fn transpose<T: Real, const L: usize>(sys: [*mut T; L], dst: *mut [T; L], rows: usize, to_rows: bool) -> bool {
        if pulp::x86::V3::try_new().is_none() {
            return false;
        }
        let size = std::mem::size_of::<T>();
        debug_assert!(size == 4 || size == 8, "Real is sealed to f32 and f64");
        if size == 8 && L.is_multiple_of(4) {
            // SAFETY: AVX2 was detected just above; `Real` is sealed to f32 and f64, so an
            // 8-byte `T` is f64; the caller's guarantees carry over.
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

    /// One loop over register tiles for both element types: `$w` lanes × `$w` rows per tile.
    macro_rules! tiles {
        ($name:ident, $t:ty, $w:literal, $load:ident, $store:ident, $tile:ident) => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $name(sys: *const *mut $t, lanes: usize, dst: *mut $t, rows: usize, to_rows: bool) {
                // Whole tiles of lanes only: a remainder would be skipped (not read out of
                // bounds), so this guards the callers' arithmetic, not the memory.
                debug_assert!(lanes > 0 && lanes % $w == 0, "{lanes} lanes in tiles of {}", $w);
                // SAFETY: (whole body) the caller guarantees `sys[0..lanes]` valid for `rows`
                // elements and `dst` for `lanes·rows`; every access is at index `< rows`
                // (`< lanes·rows`).
                unsafe {
                    let full = rows / $w * $w;
                    for g in 0..lanes / $w {
                        let s: [*mut $t; $w] = std::array::from_fn(|l| *sys.add($w * g + l));
                        let mut i = 0;
                        while i < full {
                            let d = dst.add(i * lanes + $w * g);
                            if to_rows {
                                let o = $tile(std::array::from_fn(|l| $load(s[l].add(i))));
                                for (k, v) in o.into_iter().enumerate() {
                                    $store(d.add(lanes * k), v);
                                }
                            } else {
                                let o = $tile(std::array::from_fn(|k| $load(d.add(lanes * k))));
                                for (p, v) in s.iter().zip(o) {
                                    $store(p.add(i), v);
                                }
                            }
                            i += $w;
                        }
                        for i in full..rows {
                            for (l, p) in s.iter().enumerate() {
                                let d = dst.add(i * lanes + $w * g + l);
                                if to_rows { *d = *p.add(i) } else { *p.add(i) = *d }
                            }
                        }
                    }
                }
            }
        };
    }
    tiles!(transpose_f64, f64, 4, _mm256_loadu_pd, _mm256_storeu_pd, t4x4);
    tiles!(transpose_f32, f32, 8, _mm256_loadu_ps, _mm256_storeu_ps, t8x8);

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

/// Rewrites the full packs of `data` (`L` systems of `len` elements each) between the band
/// layout and the pack layout, in place (`to_packs`: band → packs), through one pack of scratch.
pub(crate) fn repack<T: Real, const L: usize>(data: &mut [T], batch: usize, len: usize, to_packs: bool) {
    let full = batch / L;
    data[..full * L * len].par_chunks_mut(len * L).for_each(|chunk| {
        with_thread_scratch::<T, _>(len * L, |buf| {
            let buf = buf.as_chunks_mut::<L>().0;
            if to_packs {
                gather_all(chunk, buf, len);
                chunk.copy_from_slice(buf.as_flattened());
            } else {
                buf.as_flattened_mut().copy_from_slice(chunk);
                scatter(buf, chunk, len, 0);
            }
        })
    });
}
