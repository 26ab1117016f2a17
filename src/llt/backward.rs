use crate::scalar::Real;

use super::Dims;

/// The band gradient of one system of `X = A⁻¹B`, columns `j0..j0 + g.len()/(kd+1)`: with `x` =
/// X and `lam` = Λ = A⁻¹ ∂ℓ/∂X (both row-major `n × nrhs`), writes into `g` (those columns of
/// the column-major band, `g[(j − j0)·(kd+1) + d]`)
///
/// ```text
/// g[j, 0] = c·Z[j,j]   − Σ_r Λ[j,r] X[j,r]
/// g[j, d] = 2c·Z[j+d,j] − Σ_r (Λ[j+d,r] X[j,r] + Λ[j,r] X[j+d,r])     1 ≤ d ≤ kd, j + d < n
/// ```
///
/// and zero below the matrix, where `logdet = Some(c)` says that `g` holds the band of
/// `Z = A⁻¹` on entry and `c = ∂ℓ/∂ log det A` (the log-determinant's gradient added in the same
/// pass), and `None` that `g` is only written (`c·Z` left out). `2·n·(2kd+1)·nrhs` flops (plus
/// `n·(kd+1)` with `logdet`); no allocation. A system's columns can run in blocks, in
/// parallel: each element gets the same operations, hence the same bits.
pub(crate) fn band_gradient_columns<T: Real>(x: &[T], lam: &[T], dims: Dims, g: &mut [T], j0: usize, logdet: Option<T>) {
    let Dims { n, kd, nrhs } = dims;
    let w = kd + 1;
    for (col, j) in g.chunks_exact_mut(w).zip(j0..) {
        let xj = &x[j * nrhs..(j + 1) * nrhs];
        let lj = &lam[j * nrhs..(j + 1) * nrhs];
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

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone.
#[cfg(test)]
mod tests {
    use super::{Dims, Real, band_gradient_columns};

    /// Storage that already holds garbage (NaN everywhere, as a reused buffer may): every
    /// element is written, the band with the documented formula, `+0` below the matrix. The
    /// data are small integers, so every product and sum is exact and the formula can be
    /// evaluated here in any order (in f64) and compared exactly (as values: the sign of a zero
    /// sum depends on the order).
    fn writes_every_element<T: Real>() {
        for (n, kd, nrhs) in [(1, 0, 1), (5, 0, 2), (6, 2, 1), (7, 3, 3), (4, 3, 2), (3, 5, 2), (9, 4, 1)] {
            let w = kd + 1;
            let int = |k: usize, m: usize| ((k * 7 + m * 3) % 11) as f64 - 5.0;
            let x: Vec<T> = (0..n * nrhs).map(|k| T::from_f64(int(k, 1))).collect();
            let lam: Vec<T> = (0..n * nrhs).map(|k| T::from_f64(int(k, 2))).collect();
            let z = |j: usize, d: usize| int(j * w + d, 3);
            for logdet in [None, Some(3.0)] {
                let mut g = vec![T::nan(); n * w];
                if logdet.is_some() {
                    // Z on the band (entering the gradient), garbage below the matrix.
                    for j in 0..n {
                        for d in 0..w.min(n - j) {
                            g[j * w + d] = T::from_f64(z(j, d));
                        }
                    }
                }
                band_gradient_columns(&x, &lam, Dims { n, kd, nrhs }, &mut g, 0, logdet.map(T::from_f64));
                let (xf, lf) = (|i: usize, r: usize| x[i * nrhs + r].as_f64(), |i: usize, r: usize| lam[i * nrhs + r].as_f64());
                for j in 0..n {
                    for d in 0..w {
                        let got = g[j * w + d];
                        let what = format!("{} n {n} kd {kd} nrhs {nrhs} logdet {logdet:?}: g[{j}, {d}] = {got:?}", T::NAME);
                        if j + d >= n {
                            assert_eq!(got.as_f64().to_bits(), 0f64.to_bits(), "{what}: below the matrix, expected +0");
                            continue;
                        }
                        let i = j + d;
                        let sum: f64 = (0..nrhs).map(|r| if d == 0 { lf(j, r) * xf(j, r) } else { lf(i, r) * xf(j, r) + lf(j, r) * xf(i, r) }).sum();
                        let c = logdet.map_or(0.0, |c| if d == 0 { c } else { 2.0 * c });
                        let want = c * z(j, d) - sum;
                        assert!(got.as_f64() == want, "{what}, expected {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn band_gradient_writes_every_element_of_garbage_storage() {
        writes_every_element::<f64>();
        writes_every_element::<f32>();
    }
}
