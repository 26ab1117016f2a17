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
                assert_eq!(gab[(s * (kd + 1) + d) * n + j], 0.0, "ignored entries of grad_ab are zero");
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
