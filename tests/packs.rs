//! Every batched factor/solve kernel (lane-interleaved packs, each dispatched instruction set)
//! against the scalar reference kernel: the packs do the same operations in the same order
//! without FMA contraction, so results must be **bitwise** equal, failures included.

use banded::band::random_spd_problem;
use banded::internal::{factor_solve_with, factor_with, solve_band_with, solve_with, Kernel};
use banded::{BandBatch, BatchMatrix, Par, Real};

/// Batch sizes around the pack widths (8/16 f64 lanes, 16/32 f32 lanes, 4/8 per AVX2 register).
const BATCHES: [usize; 15] = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 19, 31, 32, 33, 35];

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.as_f64().to_bits()).collect()
}

fn check<T: Real>(batch: usize, n: usize, kd: usize, nrhs: usize, seed: u64) {
    let (a, b) = random_spd_problem::<T>(seed, batch, n, kd, nrhs).unwrap();
    let mut l_ref = a.clone();
    let st_ref = factor_with(Kernel::Scalar, &mut l_ref, Par::Seq);
    assert!(st_ref.iter().all(Result::is_ok));
    let mut x_ref = b.clone();
    solve_with(Kernel::Scalar, &l_ref, &mut x_ref, Par::Seq).unwrap();
    for kernel in Kernel::available() {
        for par in [Par::Seq, Par::rayon(2)] {
            let mut l = a.clone();
            let st = factor_with(kernel, &mut l, par);
            assert_eq!(st, st_ref, "{kernel:?} batch={batch} n={n} kd={kd}");
            assert_eq!(bits(l.as_slice()), bits(l_ref.as_slice()), "{kernel:?} {} batch={batch} n={n} kd={kd}", T::NAME);
            let mut x = b.clone();
            solve_with(kernel, &l, &mut x, par).unwrap();
            assert_eq!(
                bits(x.as_slice()),
                bits(x_ref.as_slice()),
                "{kernel:?} {} batch={batch} n={n} kd={kd} nrhs={nrhs}",
                T::NAME
            );
            let mut x = b.clone();
            solve_band_with(kernel, &l, &mut x, par).unwrap();
            assert_eq!(bits(x.as_slice()), bits(x_ref.as_slice()), "band {kernel:?} {} batch={batch} n={n} kd={kd}", T::NAME);
            // Factor and solve fused into one pass: the same factor and the same `x`.
            let (mut l, mut x) = (a.clone(), b.clone());
            let st = factor_solve_with(kernel, &mut l, &mut x, par).unwrap();
            assert_eq!(st, st_ref, "fused {kernel:?} batch={batch} n={n} kd={kd}");
            assert_eq!(bits(l.as_slice()), bits(l_ref.as_slice()), "fused {kernel:?} {} batch={batch} n={n} kd={kd}", T::NAME);
            assert_eq!(bits(x.as_slice()), bits(x_ref.as_slice()), "fused {kernel:?} {} batch={batch} n={n} kd={kd} nrhs={nrhs}", T::NAME);
        }
    }
}

#[test]
fn packs_match_scalar_bitwise() {
    for kd in 0..=20 {
        for (i, &batch) in BATCHES.iter().enumerate() {
            let n = [1, 2, 5, 23, 40][(kd + i) % 5];
            let nrhs = [1, 1, 2, 3][(kd + i) % 4];
            check::<f64>(batch, n, kd, nrhs, (kd * 100 + i) as u64);
            check::<f32>(batch, n, kd, nrhs, (kd * 100 + i) as u64);
        }
    }
}

#[test]
fn packs_match_scalar_large() {
    for kd in [1, 4, 17, 64] {
        check::<f64>(11, 300, kd, 1, kd as u64);
        check::<f32>(21, 300, kd, 2, kd as u64);
    }
}

/// Makes system `s` indefinite at column `col` (and, through it, every later pivot suspect):
/// `A[col, col] = −1`, or NaN when `nan`.
fn poison<T: Real>(a: &BandBatch<T>, s: usize, col: usize, nan: bool) -> BandBatch<T> {
    let (batch, n, kd) = (a.batch(), a.n(), a.kd());
    BandBatch::from_fn(batch, n, kd, |sys, i, j| {
        if sys == s && i == col && j == col {
            if nan { T::nan() } else { -T::one() }
        } else {
            a.get(sys, i, j).unwrap()
        }
    })
    .unwrap()
}

fn check_failures<T: Real>(batch: usize, n: usize, kd: usize, bad: &[(usize, usize, bool)]) {
    let (mut a, b) = random_spd_problem::<T>(batch as u64, batch, n, kd, 1).unwrap();
    for &(s, col, nan) in bad {
        a = poison(&a, s, col, nan);
    }
    let mut l_ref = a.clone();
    let st_ref = factor_with(Kernel::Scalar, &mut l_ref, Par::Seq);
    for &(s, col, _) in bad {
        assert_eq!(st_ref[s], Err(col));
    }
    let good: Vec<usize> = (0..batch).filter(|&s| st_ref[s].is_ok()).collect();
    assert_eq!(good.len(), batch - bad.len());
    let len = n * (kd + 1);
    let mut x_ref = b.clone();
    solve_with(Kernel::Scalar, &l_ref, &mut x_ref, Par::Seq).unwrap();
    for kernel in Kernel::available() {
        let mut l = a.clone();
        let st = factor_with(kernel, &mut l, Par::rayon(2));
        assert_eq!(st, st_ref, "{kernel:?} {} batch={batch} kd={kd}", T::NAME);
        // The fused factor + solve: the same statuses, and the systems that factored solved.
        let (mut lf, mut x) = (a.clone(), b.clone());
        let stf = factor_solve_with(kernel, &mut lf, &mut x, Par::rayon(2)).unwrap();
        assert_eq!(stf, st_ref, "fused {kernel:?} {} batch={batch} kd={kd}", T::NAME);
        // The systems that factored are untouched by their failing neighbours.
        for &s in &good {
            assert_eq!(
                bits(&l.as_slice()[s * len..(s + 1) * len]),
                bits(&l_ref.as_slice()[s * len..(s + 1) * len]),
                "{kernel:?} system {s}"
            );
            assert_eq!(bits(&lf.as_slice()[s * len..(s + 1) * len]), bits(&l_ref.as_slice()[s * len..(s + 1) * len]), "fused {kernel:?} system {s}");
            assert_eq!(bits(x.matrix(s).unwrap()), bits(x_ref.matrix(s).unwrap()), "fused {kernel:?} x of system {s}");
        }
    }
    // The public API reports the same systems and columns.
    let p = banded::Params::default();
    let out = banded::Cholesky::factor_partial(a.clone(), &banded::Params { check_finite: false, ..p }).unwrap();
    let fails: Vec<(usize, usize)> = out.failures.iter().map(|f| (f.system, f.column)).collect();
    let mut want: Vec<(usize, usize)> = bad.iter().map(|&(s, c, _)| (s, c)).collect();
    want.sort();
    assert_eq!(fails, want);
    assert_eq!(out.systems, good);
    if let Some(f) = out.factor {
        let mut x = BatchMatrix::new("b", good.iter().flat_map(|&s| b.matrix(s).unwrap().to_vec()).collect(), good.len(), n, 1).unwrap();
        f.solve_in_place(&mut x, &p).unwrap();
        assert!(x.as_slice().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn failing_lanes_do_not_disturb_the_pack() {
    for kd in [0, 1, 3, 8, 20] {
        for batch in [1, 3, 8, 9, 17, 35] {
            let n = 30;
            check_failures::<f64>(batch, n, kd, &[(batch - 1, 29, false)]);
            check_failures::<f32>(batch, n, kd, &[(0, 0, true)]);
            if batch >= 3 {
                check_failures::<f64>(batch, n, kd, &[(0, 5, true), (2, 17, false)]);
                check_failures::<f32>(batch, n, kd, &[(1, 0, false), (batch - 1, 12, true)]);
            }
        }
    }
}
