//! Large buffers: fallible allocation with a precise error, zero fill (optionally in
//! parallel), and, on Linux, transparent huge pages.
//!
//! A batch's band storage, right-hand sides and pack scratch run to tens or hundreds of MB.
//! Allocated fresh per call, every 4 KiB page of such a buffer costs a page fault on its first
//! touch and a TLB entry afterwards; measured on the S-MNN forward (batch 128, `n` = 9000,
//! `kd` = 11, 110 MB band, Linux with THP in `madvise` mode) zeroing the band took 19.7 ms with
//! 4 KiB pages and 3.9 ms with huge pages. So buffers of at least [`HUGE_MIN_BYTES`] ask the
//! kernel for huge pages (`madvise(MADV_HUGEPAGE)`, advisory: a kernel without THP, or with THP
//! `never`, ignores it and nothing changes but the speed).

use crate::error::{Error, Result};
use crate::par::{Par, min_len};
use crate::scalar::Real;

/// Buffers of at least this many bytes are advised to use transparent huge pages (two huge
/// pages: smaller buffers would gain at most the one aligned huge page inside them).
pub(crate) const HUGE_MIN_BYTES: usize = 4 << 20;

/// An empty vector with capacity for exactly `len` elements, or [`Error::InvalidArgument`]
/// (naming `arg`) if the allocation fails; a large one is advised to use huge pages.
pub(crate) fn with_capacity<X>(arg: &'static str, len: usize) -> Result<Vec<X>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::InvalidArgument {
            arg,
            reason: format!(
                "cannot allocate {len} elements ({} bytes each)",
                std::mem::size_of::<X>()
            ),
        })?;
    advise_huge(&mut v);
    Ok(v)
}

/// `len` zeros, or [`Error::InvalidArgument`] (naming `arg`) if the allocation fails.
pub(crate) fn zeroed_vec<T: Real>(arg: &'static str, len: usize) -> Result<Vec<T>> {
    let mut v = with_capacity(arg, len)?;
    v.resize(len, T::zero());
    Ok(v)
}

/// A copy of `x`, or [`Error::InvalidArgument`] (naming `arg`) if the allocation fails.
pub(crate) fn copy_vec<T: Real>(arg: &'static str, x: &[T]) -> Result<Vec<T>> {
    let mut v = with_capacity(arg, x.len())?;
    v.extend_from_slice(x);
    Ok(v)
}

/// `storage` emptied, or a new vector if its capacity is below `len` (then with capacity for
/// exactly `len`, as [`with_capacity`]). Reused storage has its pages mapped already: no page
/// faults, no kernel zeroing of fresh pages.
pub(crate) fn reuse<X>(arg: &'static str, mut storage: Vec<X>, len: usize) -> Result<Vec<X>> {
    storage.clear();
    if storage.capacity() >= len { Ok(storage) } else { with_capacity(arg, len) }
}

/// [`zeroed_vec`] in `storage` (see [`reuse`]), the zeros written (and fresh pages faulted in)
/// in parallel under `par` in `pieces` pieces of `len / pieces` elements (e.g. one per
/// system); the caller's later parallel pass over the same pieces then finds its pages mapped.
pub(crate) fn zeroed_vec_par<T: Real>(arg: &'static str, storage: Vec<T>, len: usize, pieces: usize, par: Par) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let mut v = reuse(arg, storage, len)?;
    let piece = (len / pieces.max(1)).max(1) * min_len(par, pieces.max(1));
    v.par_extend(rayon::iter::repeat_n(T::zero(), len).with_min_len(piece));
    Ok(v)
}

/// `len` elements in `storage` (see [`reuse`]) in `pieces` equal pieces of `len / pieces`
/// elements (the last takes the remainder), each zeroed and then passed to
/// `fill(state, i, piece, side_i)` in parallel under `par`, where `side_i` is the matching
/// `side.len() / pieces` piece of `side` (empty past its end) and `state` comes from `init`
/// once per rayon task. The zeros are written by the task that fills the piece, just before,
/// while it is in cache: one pass over the buffer instead of a zeroing pass and a filling pass
/// (measured on the S-MNN band, batch 128, 110 MB, zeroing + assembly: 10.4 ms → 9.6 ms).
///
/// Errors: [`Error::InvalidArgument`] (naming `arg`) if the allocation fails.
#[allow(clippy::too_many_arguments)]
pub(crate) fn zeroed_par_with<T: Real, U: Send, S>(
    arg: &'static str,
    storage: Vec<T>,
    len: usize,
    pieces: usize,
    par: Par,
    side: &mut [U],
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [T], &mut [U]) + Sync + Send,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;
    let mut v = reuse(arg, storage, len)?;
    if len == 0 {
        return Ok(v);
    }
    let pieces = pieces.max(1);
    let piece = len.div_ceil(pieces);
    let chunks = len.div_ceil(piece);
    // Exactly one side piece per chunk, so that the zip below covers every chunk.
    let mut sides: Vec<&mut [U]> = side.chunks_mut(side.len().div_ceil(pieces).max(1)).take(chunks).collect();
    sides.resize_with(chunks, || &mut []);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(piece)
        .zip(sides)
        .enumerate()
        .with_min_len(min_len(par, pieces))
        .for_each_init(init, |state, (i, (chunk, side))| {
            for x in chunk.iter_mut() {
                x.write(T::zero());
            }
            // SAFETY: every element of `chunk` was initialized just above, and `MaybeUninit<T>`
            // has the size, alignment and layout of `T`.
            let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<T>] as *mut [T]) };
            fill(state, i, chunk, side);
        });
    // SAFETY: the `chunks` chunks cover `0..len` of the capacity exactly, the zip pairs each
    // with one of the `chunks` side pieces (so none is skipped), and each chunk was initialized
    // in full above (`for_each_init` has run every chunk when it returns).
    unsafe { v.set_len(len) };
    Ok(v)
}

/// `len` copies of `value` (scratch of the pack kernels: infallible like `vec!`, which it
/// replaces), advised to use huge pages when large.
pub(crate) fn scratch<X: Clone>(len: usize, value: X) -> Vec<X> {
    let mut v = Vec::with_capacity(len);
    advise_huge(&mut v);
    v.resize(len, value);
    v
}

/// Advises the kernel to back the pages of `v`'s allocation with transparent huge pages, when it
/// holds at least [`HUGE_MIN_BYTES`]. Call it before the first write: pages already touched stay
/// small until the kernel's background collapse.
fn advise_huge<X>(v: &mut Vec<X>) {
    #[cfg(target_os = "linux")]
    {
        let bytes = v.capacity().saturating_mul(std::mem::size_of::<X>());
        if bytes < HUGE_MIN_BYTES {
            return;
        }
        // SAFETY: `sysconf` only reads a system constant.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => return,
        };
        let start = v.as_mut_ptr() as usize;
        let (lo, hi) = (start.next_multiple_of(page), (start + bytes) / page * page);
        if hi > lo {
            // SAFETY: `[lo, hi)` lies inside `v`'s allocation (rounded inwards to whole pages),
            // which this function owns exclusively. `MADV_HUGEPAGE` is advice about the backing
            // of those pages only: it neither changes their contents nor unmaps them. Its result
            // is ignored on purpose: where THP is unavailable nothing changes but the speed.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_buffers_hold_what_was_asked() {
        for len in [0, 1, 1000, HUGE_MIN_BYTES / 8 + 3] {
            let v = zeroed_vec::<f64>("x", len).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            let v = zeroed_vec_par::<f32>("x", Vec::new(), len, 7, Par::rayon(2)).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            // Reused storage, larger and smaller than asked, comes back zeroed and of length `len`.
            let v = zeroed_vec_par::<f32>("x", vec![3.0; len + 5], len, 7, Par::rayon(2)).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            let v = zeroed_vec_par::<f32>("x", vec![3.0; len / 2], len, 7, Par::rayon(2)).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            let v = scratch(len, [1.5f64; 4]);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|x| *x == [1.5; 4]));
        }
    }

    #[test]
    fn zeroed_par_with_zeroes_then_fills_every_piece() {
        for (len, pieces, storage) in [(12, 4, vec![]), (12, 4, vec![7.0; 30]), (10, 3, vec![7.0; 4]), (5, 8, vec![])] {
            let mut side = vec![0usize; 2 * pieces];
            let v = zeroed_par_with("x", storage, len, pieces, Par::rayon(2), &mut side, || (), |_, i, piece: &mut [f64], side| {
                assert!(piece.iter().all(|&x| x == 0.0), "piece {i} not zeroed");
                piece[0] = i as f64 + 1.0;
                side.iter_mut().for_each(|x| *x = i + 1);
            })
            .unwrap();
            assert_eq!(v.len(), len);
            let piece = len.div_ceil(pieces);
            for (i, chunk) in v.chunks(piece).enumerate() {
                assert_eq!(chunk[0], i as f64 + 1.0);
                assert!(chunk[1..].iter().all(|&x| x == 0.0));
                assert_eq!(&side[2 * i..2 * i + 2], &[i + 1, i + 1]);
            }
        }
        // An empty side: every piece is still filled (with an empty side piece).
        let v = zeroed_par_with("x", vec![], 9, 3, Par::Seq, &mut [] as &mut [u8], || (), |_, _, p: &mut [f32], s| {
            assert!(s.is_empty());
            p.fill(2.0);
        })
        .unwrap();
        assert_eq!(v, vec![2.0; 9]);
    }

    #[test]
    fn an_impossible_size_is_an_error_naming_the_argument() {
        match zeroed_vec::<f64>("ab", usize::MAX / 4) {
            Err(Error::InvalidArgument { arg, reason }) => {
                assert_eq!(arg, "ab");
                assert!(reason.contains("cannot allocate"), "{reason}");
            }
            other => panic!("expected an error, got {:?}", other.map(|v| v.len())),
        }
    }
}
