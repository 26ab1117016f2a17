use crate::scalar::Real;

use super::Dims;

/// The band gradient of one system of `X = A⁻¹B`: with `x` = X and `lam` = Λ = A⁻¹ ∂ℓ/∂X (both
/// row-major `n × nrhs`), writes into `g` (column-major band, `g[j·(kd+1) + d]`)
///
/// ```text
/// g[j, 0] = c·Z[j,j]   − Σ_r Λ[j,r] X[j,r]
/// g[j, d] = 2c·Z[j+d,j] − Σ_r (Λ[j+d,r] X[j,r] + Λ[j,r] X[j+d,r])     1 ≤ d ≤ kd, j + d < n
/// ```
///
/// and zero below the matrix, where `logdet = Some(c)` says that `g` holds the band of
/// `Z = A⁻¹` on entry and `c = ∂ℓ/∂ log det A` (the log-determinant's gradient added in the same
/// pass), and `None` that `g` is only written (`c·Z` left out). `2·n·(2kd+1)·nrhs` flops (plus
/// `n·(kd+1)` with `logdet`); no allocation.
pub(crate) fn band_gradient_system<T: Real>(x: &[T], lam: &[T], dims: Dims, g: &mut [T], logdet: Option<T>) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    for j in 0..n {
        let xj = &x[j * nrhs..(j + 1) * nrhs];
        let lj = &lam[j * nrhs..(j + 1) * nrhs];
        let col = &mut g[j * w..(j + 1) * w];
        let diag = -xj.iter().zip(lj).map(|(&a, &b)| a * b).sum::<T>();
        col[0] = match logdet {
            Some(c) => c * col[0] + diag,
            None => diag,
        };
        let kn = kd.min(n - 1 - j);
        for d in 1..=kn {
            let xi = &x[(j + d) * nrhs..(j + d + 1) * nrhs];
            let li = &lam[(j + d) * nrhs..(j + d + 1) * nrhs];
            let mut acc = T::zero();
            for r in 0..nrhs {
                acc = acc + li[r] * xj[r] + lj[r] * xi[r];
            }
            col[d] = match logdet {
                Some(c) => (c + c) * col[d] - acc,
                None => -acc,
            };
        }
        for v in &mut col[kn + 1..] {
            *v = T::zero();
        }
    }
}
