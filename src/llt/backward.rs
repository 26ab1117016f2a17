use crate::scalar::Real;

use super::Dims;

/// The band gradient of one system of `X = A⁻¹B`: with `x` = X and `lam` = Λ = A⁻¹ ∂ℓ/∂X (both
/// row-major `n × nrhs`), writes into `g` (column-major band, `g[j·(kd+1) + d]`)
///
/// ```text
/// g[j, 0] = −Σ_r Λ[j,r] X[j,r]
/// g[j, d] = −Σ_r (Λ[j+d,r] X[j,r] + Λ[j,r] X[j+d,r])     1 ≤ d ≤ kd, j + d < n
/// ```
///
/// and zero below the matrix. `2·n·(2kd+1)·nrhs` flops; no allocation.
pub(crate) fn band_gradient_system<T: Real>(x: &[T], lam: &[T], dims: Dims, g: &mut [T]) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    for j in 0..n {
        let xj = &x[j * nrhs..(j + 1) * nrhs];
        let lj = &lam[j * nrhs..(j + 1) * nrhs];
        let col = &mut g[j * w..(j + 1) * w];
        col[0] = -xj.iter().zip(lj).map(|(&a, &b)| a * b).sum::<T>();
        let kn = kd.min(n - 1 - j);
        for d in 1..=kn {
            let xi = &x[(j + d) * nrhs..(j + d + 1) * nrhs];
            let li = &lam[(j + d) * nrhs..(j + d + 1) * nrhs];
            let mut acc = T::zero();
            for r in 0..nrhs {
                acc = acc + li[r] * xj[r] + lj[r] * xi[r];
            }
            col[d] = -acc;
        }
        for v in &mut col[kn + 1..] {
            *v = T::zero();
        }
    }
}
