//! The solver against the reference vectors made with SciPy/LAPACK (`tests/data/band_*.npz`).

mod common;
use banded::{BandBatch, BatchMatrix, Cholesky, Params};
use common::{npz_array, rel_err};

const FILES: [&str; 4] = ["band_tridiag.npz", "band_kd4.npz", "band_kd17.npz", "band_dense_edge.npz"];

/// The vectors are well conditioned (κ ≲ 1e3) and were computed in f64 by LAPACK: the two
/// computations differ by O(κ·kd·ε) ≈ 1e-12 relative; 1e-10 leaves room for neither.
const TOL: f64 = 1e-10;

fn check(file: &str) {
    let (abs, ab) = npz_array(file, "ab");
    let (batch, kd, n) = (abs[0], abs[1] - 1, abs[2]);
    let (rs, rhs) = npz_array(file, "rhs");
    let nrhs = rs[2];
    let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
    assert_eq!(a.to_lower_band().unwrap().len(), ab.len());
    let p = Params::default();
    let chol = Cholesky::factor(&a, &p).unwrap();

    let (_, l_ref) = npz_array(file, "cholesky");
    let mut l = chol.l().to_lower_band().unwrap();
    let mut l_ref = l_ref;
    // SciPy leaves the ignored corner entries as they were in `ab`; compare the band only.
    for s in 0..batch {
        for d in 0..=kd {
            for j in n.saturating_sub(d)..n {
                l[(s * (kd + 1) + d) * n + j] = 0.0;
                l_ref[(s * (kd + 1) + d) * n + j] = 0.0;
            }
        }
    }
    assert!(rel_err(&l, &l_ref) < TOL, "{file}: cholesky {}", rel_err(&l, &l_ref));

    let b = BatchMatrix::new(rhs, batch, n, nrhs).unwrap();
    let x = chol.solve(&b, &p).unwrap();
    let (_, x_ref) = npz_array(file, "x");
    assert!(rel_err(x.as_slice(), &x_ref) < TOL, "{file}: x {}", rel_err(x.as_slice(), &x_ref));

    let (_, ld_ref) = npz_array(file, "logdet");
    assert!(rel_err(&chol.logdet(), &ld_ref) < TOL, "{file}: logdet");

    let (_, gx) = npz_array(file, "grad_x");
    let gx = BatchMatrix::new(gx, batch, n, nrhs).unwrap();
    let g = chol.backward(&x, &gx, &p).unwrap();
    let (_, grhs_ref) = npz_array(file, "grad_rhs");
    assert!(rel_err(g.rhs.as_slice(), &grhs_ref) < TOL, "{file}: grad_rhs");
    let (_, gab_ref) = npz_array(file, "grad_ab");
    let gab = g.ab.to_lower_band().unwrap();
    let mut gab_ref = gab_ref;
    for s in 0..batch {
        for d in 0..=kd {
            for j in n.saturating_sub(d)..n {
                // In the storage itself: `to_lower_band` writes zeros there of its own.
                let stored = g.ab.as_slice()[(s * n + j) * (kd + 1) + d];
                assert_eq!(stored.to_bits(), 0f64.to_bits(), "{file}: grad_ab stores {stored} below the matrix (system {s}, j {j}, d {d})");
                gab_ref[(s * (kd + 1) + d) * n + j] = 0.0;
            }
        }
    }
    assert!(rel_err(&gab, &gab_ref) < TOL, "{file}: grad_ab {}", rel_err(&gab, &gab_ref));
}

#[test]
fn band_vectors() {
    for f in FILES {
        check(f);
    }
}

/// `inverse_band` and `logdet_backward` against LAPACK's dense inverse (`dpotri`) of the same
/// matrices (`tests/data/inverse_band.npz`, made by `scripts/make_inverse_vectors.py`), in f64
/// and (to the f32 rounding of the inputs, κ ≲ 1e3) in f32.
#[test]
fn inverse_band_vectors() {
    for f in FILES {
        let (abs, ab) = npz_array(f, "ab");
        let (batch, kd, n) = (abs[0], abs[1] - 1, abs[2]);
        let key = f.trim_start_matches("band_").trim_end_matches(".npz");
        let (zs, z_ref) = npz_array("inverse_band.npz", key);
        assert_eq!(zs, abs);
        let p = Params::default();
        let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, batch, n, kd).unwrap(), &p).unwrap();
        let z = chol.inverse_band(&p).unwrap().to_lower_band().unwrap();
        assert!(rel_err(&z, &z_ref) < TOL, "{f}: inverse_band {}", rel_err(&z, &z_ref));
        // ∂ log det/∂ab with weight 1: Z on the diagonal, 2Z below it.
        let ones = vec![1.0; batch];
        let g = chol.logdet_backward(&ones, &p).unwrap().to_lower_band().unwrap();
        let g_ref: Vec<f64> = z_ref.iter().enumerate().map(|(k, v)| if (k / n) % (kd + 1) == 0 { *v } else { 2.0 * v }).collect();
        assert!(rel_err(&g, &g_ref) < TOL, "{f}: logdet_backward {}", rel_err(&g, &g_ref));

        let ab32: Vec<f32> = ab.iter().map(|&v| v as f32).collect();
        let chol32 = Cholesky::factor(&BandBatch::from_lower_band(&ab32, batch, n, kd).unwrap(), &p).unwrap();
        let z32: Vec<f64> = chol32.inverse_band(&p).unwrap().to_lower_band().unwrap().iter().map(|&v| v as f64).collect();
        assert!(rel_err(&z32, &z_ref) < 1e3 * f32::EPSILON as f64, "{f}: f32 inverse_band {}", rel_err(&z32, &z_ref));
    }
}
