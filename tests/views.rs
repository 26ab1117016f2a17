//! Borrowed storage (`BandBatch::new`, `BatchRef`, `BatchMut`): the same bits as owned
//! storage, solves in the caller's memory, and precise errors.

mod common;

use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Params};
use common::assert_same_bits;

/// A batch of `batch` SPD systems (diagonally dominant), as the interchange `ab`.
fn interchange(batch: usize, n: usize, kd: usize) -> Vec<f64> {
    let a = BandBatch::<f64>::from_fn(batch, n, kd, |s, i, j| {
        if i == j { 2.0 * kd as f64 + 1.5 + s as f64 } else { ((s * 7 + i * 3 + j) % 5) as f64 * 0.2 - 0.4 }
    })
    .unwrap();
    a.to_lower_band().unwrap()
}

/// The rhs `(batch, n, nrhs)`.
fn rhs(batch: usize, n: usize, nrhs: usize) -> Vec<f64> {
    (0..batch * n * nrhs).map(|k| ((k * 13) % 11) as f64 - 5.0).collect()
}

#[test]
fn wrapped_band_factors_to_the_same_bits_and_ignores_what_lies_below_the_matrix() {
    let (n, kd) = (9, 3);
    for batch in [1, 5, 8, 19] {
        let owned = BandBatch::from_lower_band(&interchange(batch, n, kd), batch, n, kd).unwrap();
        // The same systems in the column band layout, with garbage (NaN) below the matrix.
        let mut mine = owned.as_slice().to_vec();
        for s in 0..batch {
            for j in 0..n {
                for d in 0..=kd {
                    if j + d >= n {
                        mine[(s * n + j) * (kd + 1) + d] = f64::NAN;
                    }
                }
            }
        }
        let wrapped = BandBatch::new(&mine[..], batch, n, kd).unwrap();
        wrapped.check_finite("ab").unwrap();
        assert_same_bits(&wrapped.to_lower_band().unwrap(), &owned.to_lower_band().unwrap(), "interchange layout");
        for kernel in Kernel::available() {
            let p = Params::default().with_kernel(kernel);
            let a = Cholesky::factor(&wrapped, &p).unwrap();
            let b = Cholesky::factor(&owned, &p).unwrap();
            assert_same_bits(&a.l().to_lower_band().unwrap(), &b.l().to_lower_band().unwrap(), format!("L, batch {batch} {kernel:?}"));
            let x = BatchMatrix::new(rhs(batch, n, 2), batch, n, 2).unwrap();
            assert_same_bits(a.solve(&x, &p).unwrap().as_slice(), b.solve(&x, &p).unwrap().as_slice(), format!("x, batch {batch} {kernel:?}"));
        }
        // A NaN inside the band is reported, at its interchange index (s, d, j).
        mine[(((batch - 1) * n + 2) * (kd + 1)) + 1] = f64::INFINITY;
        match BandBatch::new(&mine[..], batch, n, kd).unwrap().check_finite("ab") {
            Err(Error::NonFinite { arg, index, value }) => {
                assert_eq!((arg, index, value.as_str()), ("ab", vec![batch - 1, 1, 2], "inf"));
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
}

#[test]
fn solve_in_the_callers_memory_equals_the_owned_solve() {
    let (batch, n, kd, nrhs) = (17, 12, 2, 3);
    let a = BandBatch::from_lower_band(&interchange(batch, n, kd), batch, n, kd).unwrap();
    let p = Params::default();
    let chol = Cholesky::factor(&a, &p).unwrap();
    let owned = chol.solve(&BatchMatrix::new(rhs(batch, n, nrhs), batch, n, nrhs).unwrap(), &p).unwrap();

    let mut mine = rhs(batch, n, nrhs);
    chol.solve_in_place(&mut BatchMatrix::new(&mut mine[..], batch, n, nrhs).unwrap(), &p).unwrap();
    assert_same_bits(&mine, owned.as_slice(), "solve_in_place in the caller's memory");

    // Read-only view in, owned result out; views of owned storage.
    let theirs = rhs(batch, n, nrhs);
    let view = BatchMatrix::new(&theirs[..], batch, n, nrhs).unwrap();
    assert_same_bits(chol.solve(&view, &p).unwrap().as_slice(), owned.as_slice(), "solve of a view");
    assert_eq!(view.to_owned().unwrap().view(), view);
    let mut again = view.to_owned().unwrap();
    chol.solve_in_place(&mut again.view_mut(), &p).unwrap();
    assert_same_bits(again.as_slice(), owned.as_slice(), "solve_in_place through view_mut");

    // Fused factor + solve into borrowed storage.
    let mut fused = rhs(batch, n, nrhs);
    Cholesky::factor_solve(a.clone(), &mut BatchMatrix::new(&mut fused[..], batch, n, nrhs).unwrap(), &p).unwrap();
    assert_same_bits(&fused, owned.as_slice(), "factor_solve into borrowed storage");

    // The backward takes views too.
    let g = chol.backward(&owned.view(), &view, &p).unwrap();
    let g_owned = chol.backward(&owned, &view.to_owned().unwrap(), &p).unwrap();
    assert_same_bits(g.rhs.as_slice(), g_owned.rhs.as_slice(), "backward of views: grad_rhs");
    assert_same_bits(g.ab.as_slice(), g_owned.ab.as_slice(), "backward of views: grad_ab");
}

#[test]
fn wrong_shapes_and_huge_indices_are_errors_or_none() {
    match BandBatch::new(vec![1.0f64; 11], 1, 3, 3) {
        Err(Error::Shape { arg, .. }) => assert_eq!(arg, "ab"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(BandBatch::new(Vec::<f64>::new(), 0, 3, 1), Err(Error::Shape { .. })));
    assert!(matches!(BandBatch::new(Vec::<f64>::new(), usize::MAX, usize::MAX, 1), Err(Error::InvalidArgument { .. })));
    match BatchMatrix::new(&[1.0f32; 5][..], 1, 2, 3) {
        Err(e @ Error::Shape { .. }) => {
            assert!(matches!(&e, Error::Shape { arg: "data", .. }));
            assert!(matches!(e.for_arg("rhs"), Error::Shape { arg: "rhs", .. }));
        }
        other => panic!("{other:?}"),
    }
    let a = BandBatch::from_lower_band(&interchange(2, 4, 1), 2, 4, 1).unwrap();
    assert!(a.system(1).is_some());
    assert!(a.system(2).is_none());
    assert!(a.system(usize::MAX).is_none());
    assert!(a.system(1 << 62).is_none());
    let b = BatchMatrix::new(vec![0.0f64; 8], 2, 4, 1).unwrap();
    assert!(b.matrix(1).is_some());
    assert!(b.matrix(usize::MAX).is_none());
    assert!(b.matrix(1 << 62).is_none());
}
