//! The element types the crate works in.

use std::fmt::{Debug, Display};

use rayon::prelude::*;

use crate::par::Par;

mod sealed {
    /// Also gives the kernels each type's SIMD vectors.
    pub trait Sealed: crate::simd::vector::SetElem {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point element type: `f32` or `f64`.
///
/// Sealed: the kernels' accuracy arguments assume IEEE binary32/binary64.
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + std::iter::Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// NumPy's name of the type (`"float32"`, `"float64"`).
    const NAME: &'static str;

    /// Converts from `f64` (rounding to nearest in `f32`).
    fn from_f64(x: f64) -> Self;
    /// Widens to `f64` (exact). (Named `as_f64` so it does not clash with
    /// `num_traits::ToPrimitive::to_f64`, which returns an `Option`.)
    fn as_f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "float32";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "float64";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// Returns the index of the first non-finite entry of `data`, if any.
///
/// Scans blocks of 256 without an early exit inside a block, then finds the entry in the first
/// block that has one. A block is finite iff the sum of its `x · 0` is (±0 for finite `x`, NaN
/// for NaN and ±∞), summed into 32 independent partial sums, which the compiler vectorises
/// with no dependency between consecutive vectors; `position` alone does not vectorise. On
/// finite data, the common case (`cargo bench --bench solve -- checks`, 256 × 1000 f64): 1.9×
/// `position` on an AMD EPYC (Zen 4) with 8 flags `|x| < ∞` in place of the sums, which an
/// Intel Xeon then ran at ~40 GB/s from L1 and L2; the sums run at ~75 GB/s there.
pub(crate) fn first_non_finite<T: Real>(data: &[T]) -> Option<usize> {
    const BLOCK: usize = 256;
    data.chunks(BLOCK).enumerate().find_map(|(b, block)| {
        let mut acc = [[T::zero(); 8]; 4];
        let vectors = block.chunks_exact(32);
        let rest = vectors.remainder().iter().fold(T::zero(), |s, &x| s + x * T::zero());
        for c in vectors {
            for (j, acc) in acc.iter_mut().enumerate() {
                for (l, a) in acc.iter_mut().enumerate() {
                    *a = *a + c[8 * j + l] * T::zero();
                }
            }
        }
        let all_finite = rest == T::zero() && acc.iter().flatten().all(|&a| a == T::zero());
        if all_finite { None } else { block.iter().position(|x| !x.is_finite()).map(|k| b * BLOCK + k) }
    })
}

/// [`first_non_finite`] over `par`: for `Par::Rayon` and at least `2·`[`PAR_SCAN_MIN`]
/// elements, chunks of [`PAR_SCAN_MIN`] are scanned in parallel and the first chunk with a
/// non-finite entry wins (`find_map_first`: the same index as the sequential scan, whatever
/// order the chunks finish in). O(len) work, O(len / threads) time.
pub(crate) fn first_non_finite_par<T: Real>(data: &[T], par: Par) -> Option<usize> {
    match par {
        Par::Rayon(_) if data.len() >= 2 * PAR_SCAN_MIN => data
            .par_chunks(PAR_SCAN_MIN)
            .enumerate()
            .find_map_first(|(c, chunk)| first_non_finite(chunk).map(|k| c * PAR_SCAN_MIN + k)),
        _ => first_non_finite(data),
    }
}

/// Elements per task of [`first_non_finite_par`]: about 11 µs of scanning in f64 at the rate
/// measured for [`first_non_finite`] (43 µs per 256 000), large against rayon's per-task cost.
pub(crate) const PAR_SCAN_MIN: usize = 1 << 16;

pub(crate) fn fmt_value<T: Real>(x: T) -> String {
    format!("{x}")
}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone.
#[cfg(test)]
mod tests {
    use super::{PAR_SCAN_MIN, Par, first_non_finite, first_non_finite_par};

    #[test]
    fn first_non_finite_is_position() {
        // Every length around the 8-lane groups, the 32-element sums and the 256-element
        // blocks, each bad value at every boundary position (inside the sums and in a block's
        // remainder), and a second bad value later (the first must win).
        for len in [0, 1, 7, 8, 9, 31, 32, 33, 255, 256, 257, 287, 511, 512, 513, 800] {
            let at: Vec<usize> = [0, 1, 7, 8, 9, 31, 32, 33, 255, 256, 257, 286, 511, 512, 799].into_iter().filter(|&k| k < len).collect();
            assert_eq!(first_non_finite(&vec![1.5f64; len]), None);
            for &k in &at {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                    let mut v = vec![-2.0f64; len];
                    v[k] = bad;
                    if k + 300 < len {
                        v[k + 300] = f64::NAN;
                    }
                    assert_eq!(first_non_finite(&v), Some(k), "len {len} at {k}");
                    let w: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                    assert_eq!(first_non_finite(&w), Some(k), "f32 len {len} at {k}");
                }
            }
        }
        // Largest finite values and subnormals are finite.
        assert_eq!(first_non_finite(&[f64::MAX, -f64::MAX, f64::MIN_POSITIVE / 4.0, 0.0]), None);
    }

    #[test]
    fn first_non_finite_par_is_first_non_finite() {
        // Bad values at chunk boundaries and inside; two bad values in different chunks (the
        // first must win even if a later chunk is scanned first); none at all.
        let len = 5 * PAR_SCAN_MIN + 17;
        let spots = [0, 1, PAR_SCAN_MIN - 1, PAR_SCAN_MIN, 3 * PAR_SCAN_MIN + 5, len - 1];
        let clean = vec![1.0f64; len];
        for par in [Par::Seq, Par::rayon(2), Par::rayon(0)] {
            assert_eq!(first_non_finite_par(&clean, par), None);
            for &a in &spots {
                for &b in &spots {
                    let mut x = clean.clone();
                    x[a] = f64::NAN;
                    x[b] = f64::NEG_INFINITY;
                    assert_eq!(first_non_finite_par(&x, par), Some(a.min(b)), "bad at {a} and {b}, {par:?}");
                }
            }
        }
    }
}
