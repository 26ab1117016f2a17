//! Every error path of the solver API: bad shapes, non-finite values, non-positive-definite
//! systems (right system and column, other systems intact), and the edge sizes.

use banded::{BandBatch, BatchMatrix, Cholesky, Error, PackedBandBatch, PackedBatchMatrix, Par, Params, PivotFailure};

/// Tridiagonal `[-1, 2.5, -1]` of order `n` in the interchange layout (SPD).
fn tridiag(n: usize) -> Vec<f64> {
    let mut ab = vec![2.5; n];
    ab.extend(std::iter::repeat_n(-1.0, n));
    ab
}

fn p() -> Params {
    Params::default()
}

#[test]
fn not_positive_definite_names_system_and_column_and_keeps_the_others() {
    // Three tridiagonal systems; system 1 has A[3,3] = 0.3, making the pivot at column 3
    // 0.3 − 1/d₂ < 0 (d₂ ≈ 2.02), so LAPACK's dpbtrf would report INFO = 4.
    let n = 6;
    let mut ab = Vec::new();
    for s in 0..3 {
        let mut sys = tridiag(n);
        if s == 1 {
            sys[3] = 0.3;
        }
        ab.extend(sys);
    }
    let a = BandBatch::from_lower_band(&ab, 3, n, 1).unwrap();
    let err = Cholesky::factor(&a, &p()).unwrap_err();
    assert_eq!(
        err,
        Error::NotPositiveDefinite { system: 1, column: 3, failures: vec![PivotFailure { system: 1, column: 3 }] }
    );
    let msg = err.to_string();
    assert!(msg.contains("system 1") && msg.contains("column 3"), "{msg}");

    let part = Cholesky::factor_partial(a.clone(), &p()).unwrap();
    assert_eq!(part.systems, vec![0, 2]);
    assert_eq!(part.failures, vec![PivotFailure { system: 1, column: 3 }]);
    let good = part.factor.unwrap();
    let alone = Cholesky::factor(&BandBatch::from_lower_band(&tridiag(n), 1, n, 1).unwrap(), &p()).unwrap();
    assert_eq!(good.l().system(0), alone.l().system(0));
    assert_eq!(good.l().system(1), alone.l().system(0));
}

#[test]
fn every_failing_system_is_listed() {
    let n = 4;
    let mut ab = Vec::new();
    for s in 0..4 {
        let mut sys = tridiag(n);
        match s {
            0 => sys[0] = -1.0, // column 0
            2 => sys[2] = 0.0,  // column 2 (pivot 0 − 1/d₁ < 0)
            _ => {}
        }
        ab.extend(sys);
    }
    let a = BandBatch::from_lower_band(&ab, 4, n, 1).unwrap();
    match Cholesky::factor(&a, &p()).unwrap_err() {
        Error::NotPositiveDefinite { system, column, failures } => {
            assert_eq!((system, column), (0, 0));
            assert_eq!(failures, vec![PivotFailure { system: 0, column: 0 }, PivotFailure { system: 2, column: 2 }]);
        }
        e => panic!("wrong error {e:?}"),
    }
    let all_bad = BandBatch::from_lower_band(&[-1.0, 0.0], 1, 1, 1).unwrap();
    let part = Cholesky::factor_partial(all_bad, &p()).unwrap();
    assert!(part.factor.is_none() && part.systems.is_empty());
    assert_eq!(part.failures, vec![PivotFailure { system: 0, column: 0 }]);
}

#[test]
fn non_finite_inputs_are_reported_with_their_index() {
    let n = 5;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut ab = tridiag(n);
        ab[n + 2] = bad; // ab[0, 1, 2] = A[3, 2]
        let a = BandBatch::from_lower_band(&ab, 1, n, 1).unwrap();
        match Cholesky::factor(&a, &p()).unwrap_err() {
            Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("ab", vec![0, 1, 2])),
            e => panic!("wrong error {e:?}"),
        }
        // Unchecked, a non-finite matrix entry still cannot produce a NaN factor.
        let unchecked = p().with_check_finite(false);
        assert!(matches!(Cholesky::factor(&a, &unchecked), Err(Error::NotPositiveDefinite { system: 0, .. })));
    }
    // The ignored corner of the interchange layout may hold anything.
    let mut ab = tridiag(n);
    ab[2 * n - 1] = f64::NAN;
    let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, 1, n, 1).unwrap(), &p()).unwrap();

    let mut rhs = vec![1.0; 2 * n];
    rhs[7] = f64::NAN;
    let b = BatchMatrix::new(rhs, 1, n, 2).unwrap();
    match chol.solve(&b, &p()).unwrap_err() {
        Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("rhs", vec![0, 3, 1])),
        e => panic!("wrong error {e:?}"),
    }
    let ok = BatchMatrix::new(vec![1.0; n], 1, n, 1).unwrap();
    let x = chol.solve(&ok, &p()).unwrap();
    let mut g = vec![0.5; n];
    g[4] = f64::INFINITY;
    let g = BatchMatrix::new(g, 1, n, 1).unwrap();
    match chol.backward(&x, &g, &p()).unwrap_err() {
        Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("grad_x", vec![0, 4, 0])),
        e => panic!("wrong error {e:?}"),
    }
    let mut xb = x.clone();
    xb.as_mut_slice()[0] = f64::NAN;
    assert!(matches!(chol.backward(&xb, &ok, &p()), Err(Error::NonFinite { arg: "x", .. })));
}

#[test]
fn shape_mismatches_name_the_argument() {
    let shape_arg = |r: Result<(), Error>| match r {
        Err(Error::Shape { arg, .. }) => arg,
        Err(e) => panic!("wrong error {e:?}"),
        Ok(_) => panic!("accepted a bad shape"),
    };
    // ab length disagrees with (batch, kd + 1, n).
    assert_eq!(shape_arg(BandBatch::from_lower_band(&[1.0; 9], 1, 5, 1).map(|_| ())), "ab");
    // Empty batch, n = 0.
    assert_eq!(shape_arg(BandBatch::<f64>::from_lower_band(&[], 0, 5, 1).map(|_| ())), "ab");
    assert_eq!(shape_arg(BandBatch::<f64>::from_lower_band(&[], 2, 0, 1).map(|_| ())), "ab");
    assert_eq!(shape_arg(BandBatch::<f64>::zeros(0, 3, 0).map(|_| ())), "ab");
    // Batch matrices: wrong length, zero columns (the constructor's argument is `data`).
    assert_eq!(shape_arg(BatchMatrix::new(vec![1.0; 7], 1, 4, 2).map(|_| ())), "data");
    assert_eq!(shape_arg(BatchMatrix::<f64>::new(vec![], 1, 4, 0).map(|_| ())), "data");

    let n = 4;
    let chol = Cholesky::factor(&BandBatch::from_lower_band(&tridiag(n), 1, n, 1).unwrap(), &p()).unwrap();
    let wrong_n = BatchMatrix::new(vec![1.0; 5], 1, 5, 1).unwrap();
    let wrong_batch = BatchMatrix::new(vec![1.0; 8], 2, 4, 1).unwrap();
    assert_eq!(shape_arg(chol.solve(&wrong_n, &p()).map(|_| ())), "rhs");
    assert_eq!(shape_arg(chol.solve(&wrong_batch, &p()).map(|_| ())), "rhs");
    let e = chol.solve(&wrong_n, &p()).unwrap_err().to_string();
    assert!(e.contains("(1, 4, nrhs)") && e.contains("(1, 5, 1)"), "{e}");

    let b = BatchMatrix::new(vec![1.0; n], 1, n, 1).unwrap();
    let x = chol.solve(&b, &p()).unwrap();
    let g2 = BatchMatrix::new(vec![1.0; 2 * n], 1, n, 2).unwrap();
    assert_eq!(shape_arg(chol.backward(&x, &g2, &p()).map(|_| ())), "grad_x");
    assert_eq!(shape_arg(chol.backward(&wrong_n, &b, &p()).map(|_| ())), "x");
}

#[test]
fn kd_at_least_n_is_a_full_lower_triangle() {
    // n = 3, kd = 5: rows d ≥ 3 of the interchange array are entirely ignored.
    let n = 3;
    let kd = 5;
    let dense = [[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]];
    let mut ab = vec![f64::NAN; (kd + 1) * n];
    for d in 0..n {
        for j in 0..n - d {
            ab[d * n + j] = dense[j + d][j];
        }
    }
    let a = BandBatch::from_lower_band(&ab, 1, n, kd).unwrap();
    let chol = Cholesky::factor(&a, &p()).unwrap();
    let b = BatchMatrix::new(vec![1.0, 2.0, 3.0], 1, n, 1).unwrap();
    let x = chol.solve(&b, &p()).unwrap();
    for (i, row) in dense.iter().enumerate() {
        let r: f64 = row.iter().zip(x.as_slice()).map(|(a, x)| a * x).sum();
        assert!((r - b.as_slice()[i]).abs() < 1e-14, "residual row {i}");
    }
    assert_eq!(chol.l().to_lower_band().unwrap().len(), (kd + 1) * n);
    let det = 4.0 * (3.0 * 2.0 - 0.04) - 1.0 * (2.0 + 0.1) + 0.5 * (-0.2 - 1.5);
    assert!((chol.logdet()[0] - f64::ln(det)).abs() < 1e-14);
}

#[test]
fn n_equals_one_and_diagonal_systems() {
    let a = BandBatch::from_lower_band(&[4.0, 9.0], 2, 1, 0).unwrap();
    let chol = Cholesky::factor(&a, &p()).unwrap();
    assert_eq!(chol.l().to_lower_band().unwrap(), vec![2.0, 3.0]);
    let x = chol.solve(&BatchMatrix::new(vec![8.0, 9.0], 2, 1, 1).unwrap(), &p()).unwrap();
    assert_eq!(x.as_slice(), &[2.0, 1.0]);
    let ld = chol.logdet();
    assert!((ld[0] - 4f64.ln()).abs() < 1e-15 && (ld[1] - 9f64.ln()).abs() < 1e-15);
    // n = 1 with a band wider than the matrix.
    let a = BandBatch::from_lower_band(&[4.0, f64::NAN, f64::NAN], 1, 1, 2).unwrap();
    assert_eq!(Cholesky::factor(&a, &p()).unwrap().l().to_lower_band().unwrap(), vec![2.0, 0.0, 0.0]);
    // A zero diagonal entry is not positive definite.
    let a = BandBatch::from_lower_band(&[1.0, 0.0, 2.0], 1, 3, 0).unwrap();
    assert!(matches!(Cholesky::factor(&a, &p()), Err(Error::NotPositiveDefinite { system: 0, column: 1, .. })));
}

#[test]
fn accessors_never_panic() {
    let a = BandBatch::from_lower_band(&tridiag(3), 1, 3, 1).unwrap();
    assert_eq!(a.get(0, 2, 1), Some(-1.0));
    assert_eq!(a.get(0, 1, 2), Some(-1.0));
    assert_eq!(a.get(0, 2, 0), Some(0.0));
    assert_eq!(a.get(1, 0, 0), None);
    assert_eq!(a.get(0, 3, 0), None);
    assert!(a.system(1).is_none());
    let b = BatchMatrix::new(vec![1.0; 3], 1, 3, 1).unwrap();
    assert!(b.matrix(1).is_none() && b.get(0, 3, 0).is_none());
}

#[test]
fn factor_solve_checks_its_right_hand_side_and_reports_failures() {
    let n = 4;
    let a = BandBatch::from_lower_band(&tridiag(n), 1, n, 1).unwrap();
    let mut wrong_n = BatchMatrix::new(vec![1.0; 5], 1, 5, 1).unwrap();
    assert!(matches!(Cholesky::factor_solve(a.clone(), &mut wrong_n, &p()), Err(Error::Shape { arg: "rhs", .. })));
    let mut nan = BatchMatrix::new(vec![1.0, 2.0, f64::NAN, 4.0], 1, n, 1).unwrap();
    match Cholesky::factor_solve(a.clone(), &mut nan, &p()).unwrap_err() {
        Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("rhs", vec![0, 2, 0])),
        e => panic!("wrong error {e:?}"),
    }
    let mut bad = tridiag(n);
    bad.extend(tridiag(n));
    bad[2 * n + 1] = -3.0; // system 1, A[1, 1]
    let a2 = BandBatch::from_lower_band(&bad, 2, n, 1).unwrap();
    let mut b2 = BatchMatrix::new(vec![1.0; 2 * n], 2, n, 1).unwrap();
    match Cholesky::factor_solve(a2, &mut b2, &p()).unwrap_err() {
        Error::NotPositiveDefinite { system, column, failures } => {
            assert_eq!((system, column), (1, 1));
            assert_eq!(failures, vec![PivotFailure { system: 1, column: 1 }]);
        }
        e => panic!("wrong error {e:?}"),
    }
    // And on success the same x as factor + solve.
    let mut b = BatchMatrix::new(vec![1.0, -2.0, 0.5, 3.0], 1, n, 1).unwrap();
    let want = Cholesky::factor(&a, &p()).unwrap().solve(&b, &p()).unwrap();
    Cholesky::factor_solve(a, &mut b, &p()).unwrap();
    assert_eq!(b.shape(), want.shape());
    let bits = |m: &BatchMatrix<f64>| m.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&b), bits(&want), "factor_solve's x, bitwise factor + solve's");
}

/// Batches large enough for the parallel finiteness scan (several chunks of 2¹⁶ elements)
/// report the first non-finite entry, whatever the order the chunks are scanned in: the band's
/// ignored entries (below the matrix) are skipped, a right-hand side's first NaN is named.
#[test]
fn large_batches_name_the_first_non_finite_entry_in_parallel() {
    let (batch, n, kd) = (64, 4096, 1);
    let mut ab: Vec<f64> = (0..batch).flat_map(|_| tridiag(n)).collect();
    let at = |s: usize, d: usize, j: usize| (s * (kd + 1) + d) * n + j;
    ab[at(3, 1, n - 1)] = f64::NAN; // ignored: below the matrix
    ab[at(40, 0, 7)] = f64::INFINITY;
    ab[at(55, 1, 9)] = f64::NAN;
    let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
    for par in [Par::Seq, Par::rayon(2)] {
        let e = Cholesky::factor(&a, &p().with_par(par)).unwrap_err();
        assert!(matches!(&e, Error::NonFinite { arg: "ab", index, .. } if index == &[40, 0, 7]), "{par:?}: {e}");
    }
    let a = BandBatch::from_lower_band(&(0..batch).flat_map(|_| tridiag(n)).collect::<Vec<_>>(), batch, n, kd).unwrap();
    let chol = Cholesky::factor(&a, &p()).unwrap();
    let mut rhs = vec![1.0; batch * n * 2];
    rhs[(50 * n + 3) * 2 + 1] = f64::NAN;
    rhs[(61 * n) * 2] = f64::NEG_INFINITY;
    let b = BatchMatrix::new(rhs, batch, n, 2).unwrap();
    for par in [Par::Seq, Par::rayon(2)] {
        let e = chol.solve(&b, &p().with_par(par)).unwrap_err();
        assert!(matches!(&e, Error::NonFinite { arg: "rhs", index, .. } if index == &[50, 3, 1]), "{par:?}: {e}");
    }
}

#[test]
fn packed_inputs_are_checked() {
    // 10 tridiagonal systems of order 5 in packs of 8 (one pack, two systems after it).
    let (batch, n) = (10, 5);
    let ab: Vec<f64> = (0..batch).flat_map(|_| tridiag(n)).collect();
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let invalid = |r: Result<PackedBandBatch<f64>, Error>| match r {
        Err(Error::InvalidArgument { arg, reason }) => (arg, reason),
        other => panic!("accepted: {other:?}"),
    };
    let (arg, reason) = invalid(PackedBandBatch::from_band(&a, 3));
    assert!(arg == "lanes" && reason.contains("[1, 8, 16, 32, 64]"), "{reason}");
    assert!(matches!(PackedBandBatch::new(vec![0.0; 99], batch, n, 1, 8), Err(Error::Shape { arg: "ab", .. })));
    assert!(matches!(PackedBandBatch::<f64>::new(vec![], 0, n, 1, 8), Err(Error::Shape { arg: "ab", .. })));
    assert!(matches!(PackedBatchMatrix::new(vec![0.0; 49], batch, n, 1, 8), Err(Error::Shape { arg: "data", .. })));
    assert!(matches!(PackedBatchMatrix::new(vec![0.0; 50], batch, n, 1, 5), Err(Error::InvalidArgument { arg: "lanes", .. })));

    // A NaN in a pack and one after the packs are named by their interchange index; NaN in the
    // ignored entries (below the matrix) is no error.
    for (s, i, j) in [(3, 2, 1), (9, 4, 4)] {
        let mut ap = PackedBandBatch::from_band(&a, 8).unwrap();
        let k = ap.offset(s, i, j).unwrap();
        ap.as_mut_slice()[k] = f64::NAN;
        match Cholesky::factor_packed(ap, &p()).unwrap_err() {
            Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("ab", vec![s, i - j, j])),
            e => panic!("wrong error {e:?}"),
        }
    }
    let mut ap = PackedBandBatch::from_band(&a, 8).unwrap();
    let below = ap.offset(3, n - 1, n - 1).unwrap() + 8; // the next row of the pack: (3, d = 1, j = n − 1), ignored
    ap.as_mut_slice()[below] = f64::NAN;
    let chol = Cholesky::factor_packed(ap, &p()).unwrap();
    assert_eq!(chol.lanes(), 8);

    // Right-hand sides: lanes must be the factor's, shapes its systems'; NaN named (s, i, r).
    let b = BatchMatrix::new(vec![1.0; batch * n * 2], batch, n, 2).unwrap();
    let mut b16 = PackedBatchMatrix::from_matrix(&b, 16).unwrap();
    let e = chol.solve_packed_in_place(&mut b16, &p()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { arg: "rhs", ref reason } if reason.contains("16 lanes") && reason.contains("with 8")), "{e:?}");
    let short = BatchMatrix::new(vec![1.0; 9 * n], 9, n, 1).unwrap();
    assert!(matches!(chol.solve_packed_in_place(&mut PackedBatchMatrix::from_matrix(&short, 8).unwrap(), &p()), Err(Error::Shape { arg: "rhs", .. })));
    let mut bp = PackedBatchMatrix::from_matrix(&b, 8).unwrap();
    let k = bp.offset(9, 2, 1).unwrap();
    bp.as_mut_slice()[k] = f64::INFINITY;
    match chol.solve_packed_in_place(&mut bp, &p()).unwrap_err() {
        Error::NonFinite { arg, index, .. } => assert_eq!((arg, index), ("rhs", vec![9, 2, 1])),
        e => panic!("wrong error {e:?}"),
    }
    // A not positive definite system in a pack is reported as by `factor`.
    let mut bad = ab.clone();
    bad[2 * 2 * n + 3] = -1.0; // system 2, A[3, 3]
    let ap = PackedBandBatch::from_band(&BandBatch::from_lower_band(&bad, batch, n, 1).unwrap(), 8).unwrap();
    assert!(matches!(Cholesky::factor_packed(ap, &p()), Err(Error::NotPositiveDefinite { system: 2, column: 3, .. })));
}

/// `solve_packed_in_place` with right-hand sides of the factor's batch and lanes but another
/// order (rows per matrix, more or fewer than `n`): a shape error naming `rhs` and both shapes,
/// the right-hand sides untouched. (Another batch is `packed_inputs_are_checked`'s case.)
#[test]
fn packed_rhs_of_another_order_is_a_shape_error() {
    let (batch, n) = (10, 5);
    let ab: Vec<f64> = (0..batch).flat_map(|_| tridiag(n)).collect();
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let chol = Cholesky::factor_packed(PackedBandBatch::from_band(&a, 8).unwrap(), &p()).unwrap();
    assert_eq!((chol.batch(), chol.n(), chol.lanes()), (batch, n, 8));
    for rows in [n + 1, 2 * n, n - 1] {
        let data: Vec<f64> = (0..batch * rows * 2).map(|k| k as f64).collect();
        let mut bp = PackedBatchMatrix::from_matrix(&BatchMatrix::new(data, batch, rows, 2).unwrap(), 8).unwrap();
        let before = bp.as_slice().to_vec();
        match chol.solve_packed_in_place(&mut bp, &p()) {
            Err(Error::Shape { arg, expected, got }) => {
                assert_eq!((arg, expected.as_str()), ("rhs", "(10, 5, nrhs)"), "rows {rows}");
                assert_eq!(got, format!("(10, {rows}, 2)"), "rows {rows}");
            }
            other => panic!("rhs of {rows} rows for a factor of order {n}: expected a shape error naming rhs, got {other:?}"),
        }
        assert_eq!(bp.as_slice(), &before[..], "rows {rows}: the right-hand sides were written");
    }
}

/// `inverse_band_into` refuses an `out` that differs from the factor in any one dimension —
/// batch, order `n` or bandwidth `kd`, larger or smaller — naming `out` and the shape it
/// expected, and leaves it as it was; the factor's own shape is accepted (in packs and not).
#[test]
fn inverse_band_into_checks_every_dimension_of_out() {
    let (batch, n, kd) = (10, 6, 2);
    let mut ab = Vec::new();
    for _ in 0..batch {
        ab.extend(vec![5.0; n]);
        ab.extend(vec![-1.0; n]);
        ab.extend(vec![0.5; n]);
    }
    let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
    for params in [p(), p().with_kernel(banded::Kernel::Reference)] {
        let chol = Cholesky::factor(&a, &params).unwrap();
        let want = format!("({batch}, {}, {n})", kd + 1);
        let wrong = [
            ("batch + 1", batch + 1, n, kd),
            ("batch − 1", batch - 1, n, kd),
            ("n + 1", batch, n + 1, kd),
            ("n − 1", batch, n - 1, kd),
            ("kd + 1", batch, n, kd + 1),
            ("kd − 1", batch, n, kd - 1),
        ];
        for (what, b, nn, k) in wrong {
            let mut out = BandBatch::new(vec![7.0; b * nn * (k + 1)], b, nn, k).unwrap();
            match chol.inverse_band_into(&mut out, &params) {
                Err(Error::Shape { arg, expected, got }) => {
                    assert_eq!((arg, expected.as_str()), ("out", want.as_str()), "{what}");
                    assert_eq!(got, format!("({b}, {}, {nn})", k + 1), "{what}");
                }
                other => panic!("out with {what}: expected a shape error naming out, got {other:?}"),
            }
            assert!(out.as_slice().iter().all(|&v| v == 7.0), "{what}: out was written");
        }
        let mut out = BandBatch::new(vec![7.0; batch * n * (kd + 1)], batch, n, kd).unwrap();
        chol.inverse_band_into(&mut out, &params).unwrap();
        assert_eq!(out, chol.inverse_band(&params).unwrap());
    }
}

/// `Cholesky::solve_lower_band` (the interchange layout, the factor not kept): the first NaN of
/// a pack or of the tail named in the band layout's order, NaN in the ignored corner accepted,
/// failures in a pack and after it numbered in the batch, shapes checked; the checks off, a
/// NaN gives no error (and no panic).
#[test]
fn solve_lower_band_reports_what_factor_solve_reports() {
    let (n, kd) = (6, 1);
    // 19 systems: two packs of 8 (f64) and three after them, or one at a time.
    let batch = 19;
    let sys = tridiag(n);
    let ab: Vec<f64> = (0..batch).flat_map(|_| sys.clone()).collect();
    let b = BatchMatrix::new(vec![1.0; batch * n], batch, n, 1).unwrap();
    for par in [Par::Seq, Par::rayon(2)] {
        let p = Params::default().with_par(par);
        // Solved: as factor_solve.
        let mut x = b.clone();
        Cholesky::solve_lower_band(&ab, batch, n, kd, &mut x, &p).unwrap();
        let mut y = b.clone();
        Cholesky::factor_solve(BandBatch::from_lower_band(&ab, batch, n, kd).unwrap(), &mut y, &p).unwrap();
        assert_eq!(x, y);
        // NaN in the ignored corner (d = 1, j = n − 1) of every system: no error.
        let mut corner = ab.clone();
        for s in 0..batch {
            corner[(s * 2 + 1) * n + n - 1] = f64::NAN;
        }
        Cholesky::solve_lower_band(&corner, batch, n, kd, &mut b.clone(), &p).unwrap();
        // Two NaNs in a pack and one in the tail: the first in (system, column, row) order.
        for (hits, want) in [(vec![(3, 1, 2), (3, 0, 4), (12, 0, 0)], [3, 1, 2]), (vec![(17, 1, 0), (18, 0, 3)], [17, 1, 0])] {
            let mut bad = ab.clone();
            for &(s, d, j) in &hits {
                bad[(s * 2 + d) * n + j] = f64::NAN;
            }
            match Cholesky::solve_lower_band(&bad, batch, n, kd, &mut b.clone(), &p) {
                Err(Error::NonFinite { arg: "ab", index, .. }) => assert_eq!(index, want.to_vec(), "{hits:?}"),
                other => panic!("{hits:?}: expected NonFinite, got {other:?}"),
            }
            // With the checks off: an error or garbage, never a panic.
            let _ = Cholesky::solve_lower_band(&bad, batch, n, kd, &mut b.clone(), &p.with_check_finite(false));
        }
        // Right-hand sides (two columns): the first non-finite of a pack or the tail, named as
        // (system, row, column); a matrix's NaN is reported before them, as by factor_solve.
        let b2 = BatchMatrix::new(vec![1.0; batch * n * 2], batch, n, 2).unwrap();
        for (hits, want) in [(vec![(9, 2, 1), (12, 0, 0), (18, 5, 1)], [9, 2, 1]), (vec![(18, 5, 1)], [18, 5, 1]), (vec![(0, 0, 0)], [0, 0, 0])] {
            let mut bad = b2.clone();
            for &(s, i, r) in &hits {
                bad.as_mut_slice()[(s * n + i) * 2 + r] = f64::INFINITY;
            }
            match Cholesky::solve_lower_band(&ab, batch, n, kd, &mut bad.clone(), &p) {
                Err(Error::NonFinite { arg: "rhs", index, .. }) => assert_eq!(index, want.to_vec(), "{hits:?}"),
                other => panic!("{hits:?}: expected NonFinite rhs, got {other:?}"),
            }
            let mut nan_ab = ab.clone();
            nan_ab[(14 * 2) * n + 1] = f64::NAN;
            assert!(matches!(Cholesky::solve_lower_band(&nan_ab, batch, n, kd, &mut bad, &p), Err(Error::NonFinite { arg: "ab", .. })));
        }
        // A solution that overflows from finite inputs, in a pack and in the tail: Overflow
        // naming the first.
        for (systems, first) in [(vec![5, 18], 5), (vec![5], 5), (vec![18], 18)] {
            let mut tiny = ab.clone();
            for &s in &systems {
                for j in 0..n {
                    tiny[s * 2 * n + j] = 1e-300;
                    tiny[(s * 2 + 1) * n + j] = 0.0;
                }
            }
            let mut big = BatchMatrix::new(vec![1e300; batch * n], batch, n, 1).unwrap();
            match Cholesky::solve_lower_band(&tiny, batch, n, kd, &mut big, &p) {
                Err(Error::Overflow { arg: "x", index, .. }) => assert_eq!(index, vec![first, 0, 0], "{systems:?}"),
                other => panic!("{systems:?}: expected Overflow x, got {other:?}"),
            }
        }
        // Indefinite systems in the first pack and in the tail.
        let mut npd = ab.clone();
        for s in [2, 17] {
            npd[s * 2 * n + 3] = 0.3;
        }
        let want = vec![PivotFailure { system: 2, column: 3 }, PivotFailure { system: 17, column: 3 }];
        assert_eq!(Cholesky::solve_lower_band(&npd, batch, n, kd, &mut b.clone(), &p).unwrap_err(), Error::NotPositiveDefinite { system: 2, column: 3, failures: want });
        // Shapes.
        assert!(matches!(Cholesky::solve_lower_band(&ab[1..], batch, n, kd, &mut b.clone(), &p), Err(Error::Shape { arg: "ab", .. })));
        assert!(matches!(Cholesky::solve_lower_band(&ab, batch, n, kd, &mut BatchMatrix::new(vec![1.0; batch * (n + 1)], batch, n + 1, 1).unwrap(), &p), Err(Error::Shape { arg: "rhs", .. })));
        assert!(matches!(Cholesky::solve_lower_band(&ab, 0, n, kd, &mut b.clone(), &p), Err(Error::Shape { arg: "ab", .. })));
    }
}
