//! Selected inversion: the entries of `A⁻¹` inside the band of `A`, from its Cholesky factor.
//!
//! With `A = L Lᵀ` and `Z = A⁻¹`, `Z L = L⁻ᵀ` is upper triangular with diagonal `1/L[j,j]`.
//! Its entries on and below the diagonal give, column by column from the last (Takahashi,
//! Fagan and Chen, 1973; the band form as in Rue and Held, *Gaussian Markov Random Fields*, §2.3):
//!
//! ```text
//! Z[j+i, j] = −(1/L[j,j]) · Σ_{k=1..kn} Z[j+i, j+k] · L[j+k, j]        1 ≤ i ≤ kn
//! Z[j, j]   =  (1/L[j,j]) · (1/L[j,j] − Σ_{i=1..kn} Z[j+i, j] · L[j+i, j])
//! ```
//!
//! with `kn = min(kd, n − 1 − j)`. Both sums read only entries of `Z` with `|row − col| < kd`
//! among the columns already computed, so the band of `Z` is closed under the recurrence:
//! O(n·kd²) flops (`2·kd²` per column, twice the factorization's `kd²`), O(n·kd) memory,
//! nothing outside the band formed.
//!
//! One kernel, [`inverse_system`], written on `L` lane-interleaved systems (`[T; L]` rows, the
//! pack layout of `band/lanes.rs`); the band layout of one system is the case `L = 1`. Every
//! system therefore gets the same bits whether it ran in a pack or alone.

// The explicit `for l in 0..L` lane loops are the point: each is one SIMD operation.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use crate::alloc::with_thread_scratch;
use crate::band::lanes::scatter;
use crate::par::{Par, join, min_len};
use crate::scalar::Real;
use crate::simd::{Isa, dispatch};

use super::Dims;

/// The band of `Z = A⁻¹` of `L` interleaved systems from their factor: `l` and `z` are both
/// `n·(kd+1)` rows in the band's column-major order (`row j·(kd+1) + d` holds entry
/// `[j+d, j]`); `z` is overwritten entirely (zeros below the matrix, `j + d ≥ n`).
///
/// Every read of `Z` is down a column (contiguous rows): reading along a row of the band
/// instead strides `kd` rows, which for `kd` = 32 or 64 maps every load of a pack to the same
/// few L1 sets (measured: 4× slower at kd = 64).
#[inline(always)]
fn inverse_system<T: Real, const L: usize>(l: &[[T; L]], z: &mut [[T; L]], n: usize, kd: usize) {
    let w = kd + 1;
    let zero = [T::zero(); L];
    for j in (0..n).rev() {
        let kn = kd.min(n - 1 - j);
        let col = &l[j * w..j * w + w];
        let (zj, rest) = z[j * w..].split_at_mut(w);
        let mut inv = zero;
        for t in 0..L {
            inv[t] = col[0][t].recip();
        }
        // s_i = Σ_k Z[j+i, j+k]·L[j+k, j] (i, k = 1..=kn), a symmetric product with the band
        // read column by column (contiguous): column j+k gives s_k its dot product with the
        // factor's column and every later s_i its term. The sums build up in `zj[1..=kn]`.
        for v in &mut zj[1..=kn] {
            *v = zero;
        }
        for k in 1..=kn {
            let zc = &rest[(k - 1) * w..(k - 1) * w + (kn - k + 1)];
            let vk = col[k];
            let mut acc = zero;
            for t in 0..L {
                acc[t] = zc[0][t] * vk[t];
            }
            for ((z, v), si) in zc[1..].iter().zip(&col[k + 1..=kn]).zip(&mut zj[k + 1..=kn]) {
                let (z, v) = (*z, *v);
                let mut x = *si;
                for t in 0..L {
                    acc[t] = acc[t] + z[t] * v[t];
                    x[t] = x[t] + z[t] * vk[t];
                }
                *si = x;
            }
            let mut x = zj[k];
            for t in 0..L {
                x[t] = -((x[t] + acc[t]) * inv[t]);
            }
            zj[k] = x;
        }
        let mut s = zero;
        for i in 1..=kn {
            let (zi, v) = (zj[i], col[i]);
            for t in 0..L {
                s[t] = s[t] + zi[t] * v[t];
            }
        }
        let mut d = zero;
        for t in 0..L {
            d[t] = (inv[t] - s[t]) * inv[t];
        }
        zj[0] = d;
        for v in &mut zj[kn + 1..] {
            *v = zero;
        }
    }
}

/// [`inverse_system`] as a SIMD operation (6 words: passed in registers).
struct Inverse<'a, T, const L: usize> {
    l: &'a [[T; L]],
    z: &'a mut [[T; L]],
    n: usize,
    kd: usize,
}

impl<T: Real, const L: usize> pulp::WithSimd for Inverse<'_, T, L> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        inverse_system(self.l, self.z, self.n, self.kd);
    }
}

/// The band of `A_s⁻¹` for `batch` systems whose factors are in the band layout (`l`,
/// `n·(kd+1)` per system; `dims.nrhs` unused), written into `out` in the same layout, one system at a time under
/// `isa`, the systems spread over `par`.
pub(crate) fn inverse_band_systems<T: Real>(isa: Isa, l: &[T], out: &mut [T], batch: usize, dims: Dims, par: Par) {
    let Dims { n, kd, .. } = dims;
    let len = n * (kd + 1);
    if len == 0 {
        return;
    }
    out.par_chunks_mut(len).zip(l.par_chunks(len)).with_min_len(min_len(par, batch)).for_each(|(z, l)| {
        let (l, z) = (l.as_chunks::<1>().0, z.as_chunks_mut::<1>().0);
        dispatch(isa, Inverse { l, z, n, kd });
    });
}

/// [`inverse_band_systems`] for a factor stored as [`Packed`](super::packed::Packed) leaves it:
/// `lf` holds `batch / L` packs of `L` systems in pack layout, `lt` the other systems in the
/// band layout. Each pack is inverted into one pack of thread scratch and scattered into `out`
/// (band layout, `batch·n·(kd+1)` elements).
pub(crate) fn inverse_packs<T: Real, const L: usize>(isa: Isa, lf: &[T], lt: &[T], out: &mut [T], batch: usize, dims: Dims, par: Par) {
    let Dims { n, kd, .. } = dims;
    let len = n * (kd + 1);
    let full = batch / L;
    if len == 0 {
        return;
    }
    let (of, ot) = out.split_at_mut(full * L * len);
    join(
        par,
        || {
            of.par_chunks_mut(len * L).zip(lf.par_chunks(len * L)).with_min_len(min_len(par, full.max(1))).for_each(|(o, lc)| {
                with_thread_scratch::<T, _>(len * L, |buf| {
                    let buf = buf.as_chunks_mut::<L>().0;
                    dispatch(isa, Inverse { l: lc.as_chunks::<L>().0, z: &mut *buf, n, kd });
                    scatter(buf, o, len, 0);
                })
            })
        },
        || inverse_band_systems(isa, lt, ot, batch - full * L, dims, par),
    );
}
