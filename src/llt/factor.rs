use crate::scalar::Real;

/// Factors one system in place: `a` is the column-major lower band (`n·(kd+1)` elements,
/// `a[j·(kd+1) + d] = A[j+d, j]`), overwritten by `L` (`A = L Lᵀ`).
///
/// Right-looking (LAPACK `dpbtf2`): column `j` is scaled by `1/L[j,j]`, then the trailing
/// `kd × kd` triangle takes the rank-1 update. `n·kd·(kd+3)` flops for `kd ≪ n`; no allocation.
///
/// Returns `Err(j)` if the pivot at column `j` is not a positive finite number (`a` then holds
/// the factor of the leading `j × j` block and the partially updated rest).
pub(crate) fn factor_system<T: Real>(a: &mut [T], n: usize, kd: usize) -> Result<(), usize> {
    let w = kd + 1;
    for j in 0..n {
        let (col, rest) = a[j * w..].split_at_mut(w);
        let ajj = col[0];
        if !(ajj > T::zero() && ajj.is_finite()) {
            return Err(j);
        }
        let ljj = ajj.sqrt();
        col[0] = ljj;
        let kn = kd.min(n - 1 - j);
        let inv = ljj.recip();
        for v in &mut col[1..=kn] {
            *v = *v * inv;
        }
        // A[j+r, j+c] -= L[j+r, j]·L[j+c, j] for 1 ≤ c ≤ r ≤ kn; column j+c starts at rest[(c-1)·w].
        for c in 1..=kn {
            let lc = col[c];
            let dst = &mut rest[(c - 1) * w..(c - 1) * w + (kn - c + 1)];
            for (v, &lr) in dst.iter_mut().zip(&col[c..=kn]) {
                *v = *v - lr * lc;
            }
        }
    }
    Ok(())
}
