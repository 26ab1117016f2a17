//! Large buffers: fallible allocation with a precise error, zero fill (optionally in
//! parallel), and, on Linux, transparent huge pages.
//!
//! A batch's band storage, right-hand sides and pack scratch run to tens or hundreds of MB.
//! Allocated fresh per call, every 4 KiB page of such a buffer costs a page fault on its first
//! touch and a TLB entry afterwards (on the S-MNN forward's 110 MB band, zeroing with 4 KiB
//! pages took five times as long as with huge pages). So buffers of at least [`HUGE_MIN_BYTES`] ask the
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
pub(crate) fn zeroed_vec_par<T: Real>(arg: &'static str, mut storage: Vec<T>, len: usize, pieces: usize, par: Par) -> Result<Vec<T>> {
    storage.clear();
    resized_par(arg, storage, len, pieces, par)
}

/// `storage` with length `len` and **arbitrary contents** (what it held, zeros where it grows):
/// for buffers the caller overwrites in full. Storage too small is replaced (see [`reuse`]);
/// growth is zero-filled in parallel as in [`zeroed_vec_par`] (faulting fresh pages in on the
/// threads that will use them).
pub(crate) fn resized_par<T: Real>(arg: &'static str, mut storage: Vec<T>, len: usize, pieces: usize, par: Par) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let mut v = if storage.capacity() >= len {
        storage.truncate(len);
        storage
    } else {
        with_capacity(arg, len)?
    };
    let piece = (len / pieces.max(1)).max(1) * min_len(par, pieces.max(1));
    let grow = len - v.len();
    v.par_extend(rayon::iter::repeat_n(T::zero(), grow).with_min_len(piece));
    Ok(v)
}

/// The largest scratch [`with_thread_scratch`] keeps per thread.
const THREAD_SCRATCH_MAX_BYTES: usize = 16 << 20;

/// The alignment of [`with_thread_scratch`]'s slices: a cache line, so that a pack row of 64
/// bytes (8 f64 / 16 f32 lanes, one AVX-512 register) never straddles two lines (a split
/// load or store costs about two; measured on an Intel Xeon: a kd = 17 pack factored 10–20%
/// faster from aligned rows).
pub(crate) const SCRATCH_ALIGN: usize = 64;

thread_local! {
    /// This thread's kept scratch, in 8-byte words (aligned for `f32` and `f64`).
    static THREAD_SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of `len` elements starting on a [`SCRATCH_ALIGN`] boundary
/// (contents unspecified: whatever the last user left, or zeros) that this thread keeps
/// between calls, grown as needed up to [`THREAD_SCRATCH_MAX_BYTES`] (larger requests get a
/// fresh vector, freed after `f`), so that a call on a small batch does not pay for mapping
/// and zeroing fresh scratch pages (for one pack of 8 systems of n = 1000 that was two thirds
/// of the time). A nested call on the same thread gets a fresh vector instead. How much a
/// kernel needs is its own sizing function's answer (e.g. `llt::batched::scratch_len`).
pub(crate) fn with_thread_scratch<T: Real, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    // Only small scratch is kept: a whole pack of a huge problem would otherwise stay
    // allocated on every rayon thread after the call (and it pays its page faults back anyway).
    if bytes > THREAD_SCRATCH_MAX_BYTES {
        return with_aligned(&mut scratch(bytes.div_ceil(8) + SCRATCH_ALIGN / 8, 0u64), len, f);
    }
    let words = bytes.div_ceil(8) + SCRATCH_ALIGN / 8;
    THREAD_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < words {
                *v = scratch(words, 0);
            }
            with_aligned(&mut v, len, f)
        }
        Err(_) => with_aligned(&mut scratch(words, 0u64), len, f),
    })
}

/// `f` on `len` elements of `T` inside `words`, starting at its first [`SCRATCH_ALIGN`]
/// boundary (`words` must hold `len` elements plus `SCRATCH_ALIGN` bytes).
fn with_aligned<T: Real, R>(words: &mut [u64], len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let bytes = len * std::mem::size_of::<T>();
    let skip = words.as_ptr().align_offset(SCRATCH_ALIGN).min(SCRATCH_ALIGN / 8);
    let words = &mut words[skip..];
    debug_assert!(std::mem::align_of::<T>() <= 8 && words.len() * 8 >= bytes);
    // SAFETY: `T` is `f32` or `f64` (`Real` is sealed): every bit pattern is a valid value and
    // its alignment (4 or 8) divides that of `u64`; the `len` elements span `bytes` bytes, at
    // most `8·words.len()` (the caller sized `words` for `len` elements past the alignment
    // skip), of `words`, which stays exclusively borrowed for as long as the slice lives.
    let s = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<T>(), len) };
    f(s)
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

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
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
    fn resized_par_keeps_length_and_reuses_capacity() {
        let v = resized_par::<f64>("x", Vec::new(), 10, 3, Par::rayon(2)).unwrap();
        assert_eq!(v, vec![0.0; 10]);
        let big = vec![5.0f64; 20];
        let ptr = big.as_ptr();
        let v = resized_par("x", big, 12, 3, Par::Seq).unwrap();
        assert_eq!((v.len(), v.as_ptr()), (12, ptr), "shrinks in place");
        let mut part = Vec::with_capacity(30);
        part.extend([7.0f32; 5]);
        let ptr = part.as_ptr();
        let v = resized_par("x", part, 25, 5, Par::rayon(2)).unwrap();
        assert_eq!((v.len(), v.as_ptr()), (25, ptr), "grows within its capacity");
        assert_eq!(&v[..5], &[7.0; 5]);
        assert!(v[5..].iter().all(|&x| x == 0.0));
        let v = resized_par("x", vec![1.0f64; 3], 8, 2, Par::Seq).unwrap();
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn thread_scratch_has_the_length_asked_and_nests() {
        with_thread_scratch::<f64, _>(10, |a| {
            assert_eq!(a.len(), 10);
            a.fill(1.0);
            // A nested call gets its own slice, not an alias of `a`.
            with_thread_scratch::<f64, _>(4, |b| {
                assert_eq!(b.len(), 4);
                b.fill(2.0);
            });
            assert!(a.iter().all(|&x| x == 1.0));
        });
        // Reused (and grown) on the next call.
        with_thread_scratch::<f64, _>(3, |a| assert_eq!(a, &[1.0; 3]));
        with_thread_scratch::<f64, _>(20, |a| assert_eq!(a.len(), 20));
        with_thread_scratch::<f32, _>(0, |a| assert!(a.is_empty()));
        // Beyond the cap: a fresh slice, and the kept one is not replaced by it.
        let big = THREAD_SCRATCH_MAX_BYTES / 8 + 1;
        with_thread_scratch::<f64, _>(big, |a| {
            assert_eq!(a.len(), big);
            assert_eq!(a.as_ptr() as usize % SCRATCH_ALIGN, 0);
        });
        THREAD_SCRATCH.with(|v| assert!(v.borrow().len() * 8 < big * 8));
        // Every slice starts on a cache line, whatever its type and length.
        for len in [1, 7, 64, 1000] {
            with_thread_scratch::<f32, _>(len, |a| assert_eq!((a.len(), a.as_ptr() as usize % SCRATCH_ALIGN), (len, 0)));
            with_thread_scratch::<f64, _>(len, |a| assert_eq!((a.len(), a.as_ptr() as usize % SCRATCH_ALIGN), (len, 0)));
        }
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
