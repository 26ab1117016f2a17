//! Seeded random SPD band problems, for benchmarks, examples and tests (cargo feature `cli`,
//! on by default: it brings in `rand`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{BandBatch, BatchMatrix};
use crate::error::Result;
use crate::alloc::zeroed_vec;
use crate::scalar::Real;

/// A batch of random, strictly diagonally dominant (hence SPD) band systems and right-hand
/// sides, reproducible from `seed` (rand's `StdRng`).
///
/// Off-diagonal band entries are uniform in `[-1, 1]`; each diagonal entry is 1 plus the sum of
/// the absolute off-diagonal entries of its row, so every eigenvalue is at least 1. Right-hand
/// sides are uniform in `[-1, 1]`, shape `(batch, n, nrhs)`. O(batch·n·(kd + nrhs)) time.
///
/// Errors: [`crate::Error::Shape`] if a dimension is zero; [`crate::Error::InvalidArgument`] if
/// the arrays cannot be allocated.
pub fn random_spd_problem<T: Real>(
    seed: u64,
    batch: usize,
    n: usize,
    kd: usize,
    nrhs: usize,
) -> Result<(BandBatch<T>, BatchMatrix<T>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut a = BandBatch::<T>::zeros(batch, n, kd)?;
    let w = kd + 1;
    let mut rowsum = vec![0.0f64; n];
    for sys in a.as_mut_slice().chunks_exact_mut(n * w) {
        rowsum.iter_mut().for_each(|r| *r = 0.0);
        for d in 1..w.min(n) {
            for j in 0..n - d {
                let v: f64 = rng.random_range(-1.0..=1.0);
                sys[j * w + d] = T::from_f64(v);
                // A[j+d, j] sits in row j+d and, by symmetry, in row j.
                rowsum[j] += v.abs();
                rowsum[j + d] += v.abs();
            }
        }
        for (j, r) in rowsum.iter().enumerate() {
            sys[j * w] = T::from_f64(r + 1.0);
        }
    }
    let len = batch.saturating_mul(n).saturating_mul(nrhs);
    let mut b = zeroed_vec::<T>("rhs", len)?;
    b.iter_mut().for_each(|v| *v = T::from_f64(rng.random_range(-1.0..=1.0)));
    Ok((a, BatchMatrix::named("rhs", b, batch, n, nrhs)?))
}
