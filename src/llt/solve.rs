use crate::scalar::Real;
use crate::simd::{Isa, dispatch};

use super::driver::Sweep;

/// Solves `L Lᵀ X = B` for one system in place: `l` is the factor's column-major band
/// (`l[j·(kd+1) + d] = L[j+d, j]`), `b` the row-major `n × nrhs` right-hand side, overwritten
/// by `X` (or, by `sweep`, only `L⁻¹B` or `L⁻ᵀB`). `2·n·(2kd+1)·nrhs` flops for `kd ≪ n`; no
/// allocation.
///
/// Dividing by `L[j,j]` is a multiplication by its reciprocal: the reciprocal does not depend
/// on the right-hand side, so it is computed off the loop-carried dependency chain, which then
/// holds a 3–4-cycle multiplication instead of a 13–20-cycle division. One more rounding per
/// entry.
///
/// It runs under [`Isa::best`], as `factor_system` does (the same bits as the baseline build).
pub(crate) fn solve_system<T: Real>(l: &[T], n: usize, kd: usize, b: &mut [T], nrhs: usize, sweep: Sweep) {
    dispatch(Isa::best(), SolveSystem { l, n, kd, b, nrhs, sweep })
}

/// The arguments of [`solve_system`], as a SIMD operation.
struct SolveSystem<'a, T> {
    l: &'a [T],
    n: usize,
    kd: usize,
    b: &'a mut [T],
    nrhs: usize,
    sweep: Sweep,
}

impl<T: Real> pulp::WithSimd for SolveSystem<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        solve_system_in(self.l, self.n, self.kd, self.b, self.nrhs, self.sweep)
    }
}

/// The body of [`solve_system`], inlined into the instruction set it runs under.
#[inline(always)]
fn solve_system_in<T: Real>(l: &[T], n: usize, kd: usize, b: &mut [T], nrhs: usize, sweep: Sweep) {
    if nrhs == 1 && sweep == Sweep::Both {
        return solve_vector(l, n, kd, b);
    }
    let w = kd + 1;
    // Forward: L Y = B, column by column of L (row j of Y final once the earlier columns are applied).
    for j in (0..n).filter(|_| sweep.forward()) {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let yj = &mut head[j * nrhs..];
        let d = col[0];
        for v in yj.iter_mut() {
            *v = *v * d.recip();
        }
        for (r, &lr) in col[1..=kn].iter().enumerate() {
            for (t, &y) in tail[r * nrhs..(r + 1) * nrhs].iter_mut().zip(yj.iter()) {
                *t = *t - lr * y;
            }
        }
    }
    // Backward: Lᵀ X = Y, from the last row up.
    for j in (0..n).rev().filter(|_| sweep.backward()) {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let xj = &mut head[j * nrhs..];
        // Farthest row first: `x[j+1]`, computed last, enters last (see `solve_vector`).
        for (r, &lr) in col[1..=kn].iter().enumerate().rev() {
            for (v, &x) in xj.iter_mut().zip(&tail[r * nrhs..(r + 1) * nrhs]) {
                *v = *v - lr * x;
            }
        }
        let d = col[0];
        for v in xj.iter_mut() {
            *v = *v * d.recip();
        }
    }
}

/// [`solve_system`] for one right-hand side: the same operations in the same order (so the
/// same bits), without the per-row slicing that costs more than the arithmetic when
/// `nrhs = 1` (the S-MNN case).
#[inline(always)]
fn solve_vector<T: Real>(l: &[T], n: usize, kd: usize, b: &mut [T]) {
    let w = kd + 1;
    for j in 0..n {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        let yj = b[j] * col[0].recip();
        b[j] = yj;
        for (t, &lr) in b[j + 1..=j + kn].iter_mut().zip(&col[1..=kn]) {
            *t = *t - lr * yj;
        }
    }
    for j in (0..n).rev() {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        // Farthest row first, so that `x[j+1]` (the previous iteration's result) enters last:
        // the loop-carried latency is one multiply-subtract and a multiply, not `kn` of them.
        let s = col[1..=kn].iter().zip(&b[j + 1..=j + kn]).rev().fold(b[j], |acc, (&lr, &x)| acc - lr * x);
        b[j] = s * col[0].recip();
    }
}
