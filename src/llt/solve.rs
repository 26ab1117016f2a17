use crate::scalar::Real;

/// Solves `L Lᵀ X = B` for one system in place: `l` is the factor's column-major band
/// (`l[j·(kd+1) + d] = L[j+d, j]`), `b` the row-major `n × nrhs` right-hand side, overwritten
/// by `X`. `2·n·(2kd+1)·nrhs` flops for `kd ≪ n`; no allocation.
pub(crate) fn solve_system<T: Real>(l: &[T], n: usize, kd: usize, b: &mut [T], nrhs: usize) {
    let w = kd + 1;
    // Forward: L Y = B, column by column of L (row j of Y final once the earlier columns are applied).
    for j in 0..n {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let yj = &mut head[j * nrhs..];
        let d = col[0];
        for v in yj.iter_mut() {
            *v = *v / d;
        }
        for (r, &lr) in col[1..=kn].iter().enumerate() {
            for (t, &y) in tail[r * nrhs..(r + 1) * nrhs].iter_mut().zip(yj.iter()) {
                *t = *t - lr * y;
            }
        }
    }
    // Backward: Lᵀ X = Y, from the last row up.
    for j in (0..n).rev() {
        let col = &l[j * w..j * w + w];
        let kn = kd.min(n - 1 - j);
        let (head, tail) = b.split_at_mut((j + 1) * nrhs);
        let xj = &mut head[j * nrhs..];
        for (r, &lr) in col[1..=kn].iter().enumerate() {
            for (v, &x) in xj.iter_mut().zip(&tail[r * nrhs..(r + 1) * nrhs]) {
                *v = *v - lr * x;
            }
        }
        let d = col[0];
        for v in xj.iter_mut() {
            *v = *v / d;
        }
    }
}
