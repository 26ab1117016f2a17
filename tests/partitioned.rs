//! The partitioned (parallel-in-`n`) factorization: every operation against dense faer, the
//! edge cases of the layout, not-positive-definite systems at their original column,
//! gradients against finite differences, the automatic rule, and determinism.
//!
//! # The error bound
//!
//! The partitioned path is a Cholesky factorization of `PAPᵀ` (separators last) carried out
//! in steps, each backward stable: the chunks' band Cholesky and solves (`γ_{3(kd+1)+1}` per
//! solve, two of them), the Schur complement's sums (`γ_{2kd+3}`: up to `2(kd+1)` products
//! and a subtraction per entry), the separators' factor and solve (bandwidth `2kd − 1`:
//! `γ_{6kd+1}`). Composed, `x̂` solves `(A + ΔA) x̂ = b` with
//! `‖ΔA‖_F ≤ γ_K·‖|L̂_P||L̂_Pᵀ|‖_F`, `K = 14kd + 12`, and for any symmetric ordering of an SPD
//! matrix `‖|L||Lᵀ|‖₂ ≤ ‖L‖_F² ≤ n‖A‖₂` (Higham, *Accuracy and Stability*, §10.1), so
//! `η = γ_K·n·‖A‖_F` (plus `u‖A‖_F` for the rounding of the inputs to f32). The solution, the
//! log-determinant, the gradients and the inverse band then follow from `η` as in
//! `prop_band.rs`, doubled for second-order terms. Selected inversion adds `γ_{4kd+4}` to `K`
//! (the chunks' own selected inversion and the `2kd`-term products `V = XY`, `XYXᵀ`).

mod common;

use banded::band::{AUTO_MAX_KD, MAX_AUTO_PARTS, min_chunk, partitions};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Par, Params, Partitions, Real};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use proptest::prelude::*;

use common::spd::{Case, frob, gamma, gen_case, mat_of};
use common::{assert_same_bits, bit_diff, bits};

/// The most chunks `n` columns at bandwidth `kd` split into (every chunk keeps a column).
fn max_parts(n: usize, kd: usize) -> usize {
    ((n + kd) / (kd + 1)).max(1)
}

fn dense(c: &Case, s: usize) -> Mat<f64> {
    let (n, kd, w) = (c.n, c.kd, c.kd + 1);
    Mat::from_fn(n, n, |i, j| {
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        if i - j <= kd { c.ab[(s * w + i - j) * n + j] } else { 0.0 }
    })
}

/// Factors `c` under its parameters (which force the partitions) and checks solve,
/// log-determinant, backward, inverse band and the log-determinant's gradient of every system
/// against dense faer within the bound of the module docs.
fn check<T: Real>(c: &Case, parts: usize) -> Result<(), TestCaseError> {
    let (n, kd, nrhs, w) = (c.n, c.kd, c.nrhs, c.kd + 1);
    let u = T::epsilon().as_f64() / 2.0;
    let u64_ = f64::EPSILON / 2.0;
    let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let p = c.params;
    let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, n, kd).unwrap();
    let chol = Cholesky::factor(&a, &p).unwrap();
    prop_assert_eq!(chol.partitions(), parts);
    prop_assert_eq!(chol.is_partitioned(), parts > 1);
    let b = BatchMatrix::new(to_t(&c.b), c.batch, n, nrhs).unwrap();
    let x = chol.solve(&b, &p).unwrap();
    let gx = BatchMatrix::new(to_t(&c.g), c.batch, n, nrhs).unwrap();
    let gl: Vec<T> = c.g.iter().take(c.batch).map(|&v| T::from_f64(v)).collect();
    let grad = chol.backward_with_logdet(&x, &gx, &gl, &p).unwrap();
    let logdet = chol.logdet();
    let zb = chol.inverse_band(&p).unwrap();
    // Into storage holding garbage: every element written, the same bits.
    let mut into = BandBatch::new(vec![T::nan(); c.batch * n * w], c.batch, n, kd).unwrap();
    chol.inverse_band_into(&mut into, &p).unwrap();
    prop_assert_eq!(bit_diff(into.as_slice(), zb.as_slice()), None, "inverse_band_into vs inverse_band");
    let z = zb.to_lower_band().unwrap();
    let gz = chol.logdet_backward(&gl, &p).unwrap().to_lower_band().unwrap();
    let gab = grad.ab.to_lower_band().unwrap();
    let k = 14 * kd.min(n - 1) + 12;
    for s in 0..c.batch {
        let a_d = dense(c, s);
        let llt = a_d.llt(Side::Lower).expect("reference is SPD");
        let b_s = mat_of(n, nrhs, &c.b[s * n * nrhs..(s + 1) * n * nrhs]);
        let g_s = mat_of(n, nrhs, &c.g[s * n * nrhs..(s + 1) * n * nrhs]);
        let (x_ref, lam_ref) = (llt.solve(&b_s), llt.solve(&g_s));
        let ainv = llt.solve(Mat::<f64>::identity(n, n));
        let (a_n, ainv_n) = (frob(&a_d), frob(&ainv));
        let eta = gamma(k, u) * n as f64 * a_n + u * a_n + gamma(3 * n + 1, u64_) * n as f64 * a_n;
        let to_mat = |m: &[T]| mat_of(n, nrhs, &m.iter().map(|v| v.as_f64()).collect::<Vec<_>>());
        let (x_hat, lam_hat) = (to_mat(x.matrix(s).unwrap()), to_mat(grad.rhs.matrix(s).unwrap()));
        let what = format!("{} system {s} (n {n} kd {kd} P {parts})", T::NAME);

        let tol_x = 2.0 * ainv_n * (eta * frob(&x_ref) + u * frob(&b_s));
        let err_x = frob(&(&x_hat - &x_ref));
        prop_assert!(err_x <= tol_x, "{what}: ‖x̂ − x‖ = {err_x:e} > {tol_x:e}");
        let tol_lam = 2.0 * ainv_n * (eta * frob(&lam_ref) + u * frob(&g_s));
        let err_lam = frob(&(&lam_hat - &lam_ref));
        prop_assert!(err_lam <= tol_lam, "{what}: ‖Λ̂ − Λ‖ = {err_lam:e} > {tol_lam:e}");

        let l_ref = llt.L();
        let ld_ref: f64 = (0..n).map(|j| 2.0 * l_ref[(j, j)].ln()).sum();
        let ld_abs: f64 = (0..n).map(|j| (2.0 * l_ref[(j, j)].ln()).abs()).sum();
        let tol_ld = 2.0 * (n as f64 * ainv_n * eta + gamma(n + 2, u) * ld_abs) + 1e-300;
        let err_ld = (logdet[s].as_f64() - ld_ref).abs();
        prop_assert!(err_ld <= tol_ld, "{what}: logdet error {err_ld:e} > {tol_ld:e}");

        // The band of A⁻¹, the log-determinant's gradient, and the combined backward.
        let eta_z = eta + gamma(4 * kd.min(n - 1) + 4, u) * n as f64 * a_n;
        let tol_z = 2.0 * ainv_n.powi(2) * eta_z;
        let lxt = &lam_ref * x_ref.transpose();
        let tol_g = 2.0 * (err_lam.max(tol_lam) * frob(&x_ref) + frob(&lam_ref) * err_x.max(tol_x)) + gamma(2 * nrhs + 1, u) * 2.0 * frob(&lam_ref) * frob(&x_ref);
        let mut err_z2 = 0.0;
        for d in 0..w {
            for j in 0..n {
                let at = (s * w + d) * n + j;
                if j + d >= n {
                    prop_assert_eq!(bits(grad.ab.as_slice()[(s * n + j) * w + d]), bits(T::zero()), "{}: ∂ℓ/∂ab below the matrix", what);
                    continue;
                }
                let (i, zij) = (j + d, ainv[(j + d, j)]);
                err_z2 += (z[at].as_f64() - zij).powi(2);
                let c2 = if d == 0 { gl[s].as_f64() } else { 2.0 * gl[s].as_f64() };
                let want_gz = c2 * z[at].as_f64();
                prop_assert!((gz[at].as_f64() - want_gz).abs() <= u * want_gz.abs(), "{what}: ∂logdet/∂a[{i},{j}]");
                let want = c2 * zij + if d == 0 { -lxt[(j, j)] } else { -lxt[(i, j)] - lxt[(j, i)] };
                let err = (gab[at].as_f64() - want).abs();
                let tol = tol_g + c2.abs() * tol_z;
                prop_assert!(err <= tol, "{what}: ∂ℓ/∂a[{i},{j}] error {err:e} > {tol:e}");
            }
        }
        let err_z = err_z2.sqrt();
        prop_assert!(err_z <= tol_z, "{what}: ‖Ẑ − A⁻¹‖_F on the band = {err_z:e} > {tol_z:e}");
    }
    // `l()` is the sequential factor of the same matrices, bit for bit.
    let seq = Cholesky::factor(&a, &p.with_partitions(Partitions::Off)).unwrap();
    prop_assert_eq!(chol.l(), seq.l());
    Ok(())
}

/// Every system order from 1 to several partitions, every bandwidth to 12, any forced count
/// (chunks shorter than `kd`, unequal chunks, `P = 1`, counts past the most `n` allows).
fn case_strategy(max_n: usize, kds: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = (Case, usize)> {
    (1usize..=max_n, kds)
        .prop_flat_map(|(n, kd)| {
            let kd = kd.min(n - 1);
            (Just(n), Just(kd), 1usize..=max_parts(n, kd) + 2, 1usize..=3, 1usize..=3, any::<u64>(), 0u8..2, any::<bool>())
        })
        .prop_map(|(n, kd, parts, batch, nrhs, seed, kind, two)| {
            let par = if two { Par::rayon(2) } else { Par::Seq };
            let params = Params::default().with_par(par).with_partitions(Partitions::Count(parts));
            let eff = if kd == 0 { 1 } else { parts.min(max_parts(n, kd)) };
            (gen_case(batch, n, kd, nrhs, seed, kind, params), eff)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f64_partitioned_matches_dense_faer((c, parts) in case_strategy(120, 0..=12)) {
        check::<f64>(&c, parts)?;
    }

    #[test]
    fn f32_partitioned_matches_dense_faer((c, parts) in case_strategy(120, 0..=12)) {
        check::<f32>(&c, parts)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Wide bands, 13 to 64, in systems up to 400.
    #[test]
    fn f64_wide_partitioned_matches_dense_faer((c, parts) in case_strategy(400, 13..=64)) {
        check::<f64>(&c, parts)?;
    }
}

/// The layout's edge cases, named: one column per chunk, chunks shorter than `kd`, the last
/// chunks one column shorter, two chunks, `P = 1`, and a chunk count past what `n` allows; in
/// f64 and f32, under every kernel (forced counts split under the reference kernel too; a set
/// this CPU lacks runs as portable).
#[test]
fn layout_edge_cases() {
    for (n, kd, parts) in [(9, 4, 2), (13, 4, 3), (14, 4, 3), (50, 10, 4), (31, 3, 8), (7, 1, 4), (64, 64, 3), (40, 2, 1), (12, 5, 99)] {
        let kd = kd.min(n - 1);
        for (kind, kernel) in [(0, Kernel::Auto), (1, Kernel::Auto), (0, Kernel::Reference), (1, Kernel::Portable), (0, Kernel::Avx2), (1, Kernel::Avx512)] {
            let params = Params::default().with_partitions(Partitions::Count(parts)).with_kernel(kernel);
            let c = gen_case(2, n, kd, 2, 7 + n as u64, kind, params);
            let eff = if kd == 0 { 1 } else { parts.min(max_parts(n, kd)) };
            check::<f64>(&c, eff).unwrap();
            check::<f32>(&c, eff).unwrap();
        }
    }
}

/// A diagonally dominant matrix with `A[j, j] = −1`: every leading block before `j` is
/// positive definite (in any order), so both orders fail exactly at `j`. Each case puts `j` in
/// a chunk (first, inner, last column), in a separator, or at the matrix's ends; a batch keeps
/// the other systems, factored as they would be alone.
#[test]
fn not_positive_definite_at_the_original_column() {
    let (n, kd, parts) = (60, 3, 5);
    let params = Params::default().with_partitions(Partitions::Count(parts));
    let good = gen_case(1, n, kd, 1, 1, 0, params).ab;
    for j in [0, 1, 5, 11, 12, 13, 14, 15, 20, 47, 58, 59] {
        let mut ab = good.clone();
        ab[j] = -1.0; // d = 0 row of system 0
        let a = BandBatch::from_lower_band(&ab, 1, n, kd).unwrap();
        for p in [params, params.with_partitions(Partitions::Off)] {
            match Cholesky::factor(&a, &p) {
                Err(Error::NotPositiveDefinite { system: 0, column, .. }) => assert_eq!(column, j, "{:?}", p.partitions()),
                other => panic!("column {j}: expected NotPositiveDefinite, got {other:?}"),
            }
        }
        // In a batch of three, the middle one failing.
        let batch: Vec<f64> = [&good[..], &ab[..], &good[..]].concat();
        let b3 = BandBatch::from_lower_band(&batch, 3, n, kd).unwrap();
        let part = Cholesky::factor_partial(b3, &params).unwrap();
        assert_eq!(part.systems, vec![0, 2]);
        assert_eq!((part.failures.len(), part.failures[0].system, part.failures[0].column), (1, 1, j));
        let f = part.factor.unwrap();
        assert!(f.is_partitioned());
        let alone = Cholesky::factor(&BandBatch::from_lower_band(&good, 1, n, kd).unwrap(), &params).unwrap();
        let b = BatchMatrix::new((0..n).map(|i| i as f64).collect::<Vec<_>>(), 1, n, 1).unwrap();
        let x1 = alone.solve(&b, &params).unwrap();
        let x2 = f.solve(&BatchMatrix::new([b.as_slice(), b.as_slice()].concat(), 2, n, 1).unwrap(), &params).unwrap();
        assert_same_bits(&x2.as_slice()[..n], x1.as_slice(), "system 0 beside a failure");
        assert_same_bits(&x2.as_slice()[n..], x1.as_slice(), "system 2 beside a failure");
    }
    // factor_solve: the system that factored is solved.
    let mut ab = good.clone();
    ab[30] = -1.0;
    let a = BandBatch::from_lower_band(&[&good[..], &ab[..]].concat(), 2, n, kd).unwrap();
    let mut b = BatchMatrix::new(vec![1.0; 2 * n], 2, n, 1).unwrap();
    let e = Cholesky::factor_solve(a, &mut b, &params).unwrap_err();
    assert!(matches!(e, Error::NotPositiveDefinite { system: 1, column: 30, .. }), "{e:?}");
    let alone = Cholesky::factor(&BandBatch::from_lower_band(&good, 1, n, kd).unwrap(), &params).unwrap();
    let x = alone.solve(&BatchMatrix::new(vec![1.0; n], 1, n, 1).unwrap(), &params).unwrap();
    assert_same_bits(&b.as_slice()[..n], x.as_slice(), "factor_solve beside a failure");
}

/// ℓ = Σ G∘X + c·log det A, by central differences along every stored entry of the band,
/// against `backward_with_logdet` of the partitioned factor.
#[test]
fn gradients_match_finite_differences() {
    for (n, kd, parts) in [(23, 2, 4), (30, 3, 3), (17, 5, 2)] {
        let params = Params::default().with_partitions(Partitions::Count(parts));
        let c = gen_case(1, n, kd, 2, 99, 0, params);
        let w = kd + 1;
        let loss = |ab: &[f64]| {
            let chol = Cholesky::factor(&BandBatch::from_lower_band(ab, 1, n, kd).unwrap(), &params).unwrap();
            assert_eq!(chol.partitions(), parts);
            let x = chol.solve(&BatchMatrix::new(c.b.clone(), 1, n, 2).unwrap(), &params).unwrap();
            let sum: f64 = x.as_slice().iter().zip(&c.g).map(|(x, g)| x * g).sum();
            sum + 0.7 * chol.logdet()[0]
        };
        let chol = Cholesky::factor(&BandBatch::from_lower_band(&c.ab, 1, n, kd).unwrap(), &params).unwrap();
        let x = chol.solve(&BatchMatrix::new(c.b.clone(), 1, n, 2).unwrap(), &params).unwrap();
        let g = chol.backward_with_logdet(&x, &BatchMatrix::new(c.g.clone(), 1, n, 2).unwrap(), &[0.7], &params).unwrap();
        let gab = g.ab.to_lower_band().unwrap();
        let h = 1e-6;
        for d in 0..w {
            for j in 0..n - d {
                let k = d * n + j;
                let (mut up, mut down) = (c.ab.clone(), c.ab.clone());
                up[k] += h;
                down[k] -= h;
                let fd = (loss(&up) - loss(&down)) / (2.0 * h);
                assert!((fd - gab[k]).abs() <= 1e-6 * (1.0 + fd.abs()), "n {n} kd {kd} P {parts}: ∂ℓ/∂a[{}, {j}] = {} vs {fd}", j + d, gab[k]);
            }
        }
        // ∂ℓ/∂b = Λ.
        for k in 0..n * 2 {
            let loss_b = |delta: f64| {
                let mut b = c.b.clone();
                b[k] += delta;
                let x = chol.solve(&BatchMatrix::new(b, 1, n, 2).unwrap(), &params).unwrap();
                x.as_slice().iter().zip(&c.g).map(|(x, g)| x * g).sum::<f64>()
            };
            let fd = (loss_b(h) - loss_b(-h)) / (2.0 * h);
            assert!((fd - g.rhs.as_slice()[k]).abs() <= 1e-6 * (1.0 + fd.abs()), "∂ℓ/∂b[{k}]");
        }
    }
}

/// The automatic rule: long systems in batches below one pack are split, full packs, short
/// systems, wide bands, `kd = 0` and the reference kernel are not; the count never depends on
/// threads.
#[test]
fn automatic_rule() {
    let p = Params::default();
    let n = 3 * (min_chunk(4) + 4);
    assert_eq!(partitions::<f64>(1, n, 4, &p), 3);
    assert_eq!(partitions::<f64>(1, 10 * n * MAX_AUTO_PARTS, 4, &p), MAX_AUTO_PARTS);
    let c = gen_case(1, n, 4, 1, 5, 0, p);
    let a = BandBatch::from_lower_band(&c.ab, 1, n, 4).unwrap();
    assert_eq!(Cholesky::factor(&a, &p).unwrap().partitions(), 3);
    assert_eq!(Cholesky::factor(&a, &p.with_par(Par::Seq)).unwrap().partitions(), 3);
    assert!(!Cholesky::factor(&a, &p.with_kernel(Kernel::Reference)).unwrap().is_partitioned());
    assert!(!Cholesky::factor(&a, &p.with_partitions(Partitions::Off)).unwrap().is_partitioned());
    let c8 = gen_case(8, n, 4, 1, 5, 0, p);
    let a8 = BandBatch::from_lower_band(&c8.ab, 8, n, 4).unwrap();
    assert!(!Cholesky::factor(&a8, &p).unwrap().is_partitioned(), "a full pack is not split");
    let wide = gen_case(1, 3 * (min_chunk(AUTO_MAX_KD + 1) + AUTO_MAX_KD + 1), AUTO_MAX_KD + 1, 1, 5, 0, p);
    assert!(!Cholesky::factor(&BandBatch::from_lower_band(&wide.ab, 1, wide.n, wide.kd).unwrap(), &p).unwrap().is_partitioned(), "a wide band is not split");
    let short = gen_case(1, min_chunk(4), 4, 1, 5, 0, p);
    assert!(!Cholesky::factor(&BandBatch::from_lower_band(&short.ab, 1, min_chunk(4), 4).unwrap(), &p).unwrap().is_partitioned());
    // The solve of an automatically split system against dense faer.
    check::<f64>(&c, 3).unwrap();
}

/// The same bits on one thread and two, alone and in a batch, and for `factor_solve`,
/// `solve_lower_band` and `factor` + `solve`.
#[test]
fn deterministic() {
    let (n, kd, nrhs) = (300, 4, 2);
    let params = Params::default().with_partitions(Partitions::Count(7));
    let c = gen_case(3, n, kd, nrhs, 11, 1, params);
    let run = |p: &Params, batch: usize| {
        let a = BandBatch::from_lower_band(&c.ab[..batch * (kd + 1) * n], batch, n, kd).unwrap();
        let chol = Cholesky::factor(&a, p).unwrap();
        let b = BatchMatrix::new(c.b[..batch * n * nrhs].to_vec(), batch, n, nrhs).unwrap();
        let x = chol.solve(&b, p).unwrap();
        let z = chol.inverse_band(p).unwrap();
        (x.into_vec(), z.as_slice().to_vec(), chol.logdet())
    };
    let (x3, z3, l3) = run(&params, 3);
    for p in [params.with_par(Par::Seq), params.with_par(Par::rayon(2))] {
        let (x, z, l) = run(&p, 3);
        assert_same_bits(&x, &x3, "x, threads");
        assert_same_bits(&z, &z3, "inverse band, threads");
        assert_same_bits(&l, &l3, "logdet, threads");
    }
    let (x1, z1, l1) = run(&params, 1);
    assert_same_bits(&x1, &x3[..n * nrhs], "x alone vs in a batch");
    assert_same_bits(&z1, &z3[..n * (kd + 1)], "inverse alone vs in a batch");
    assert_same_bits(&l1, &l3[..1], "logdet alone vs in a batch");
    // The fused paths.
    let a = BandBatch::from_lower_band(&c.ab, 3, n, kd).unwrap();
    let mut b = BatchMatrix::new(c.b.clone(), 3, n, nrhs).unwrap();
    Cholesky::factor_solve(a, &mut b, &params).unwrap();
    assert_same_bits(b.as_slice(), &x3, "factor_solve");
    let mut b = BatchMatrix::new(c.b[..n * nrhs].to_vec(), 1, n, nrhs).unwrap();
    Cholesky::solve_lower_band(&c.ab[..(kd + 1) * n], 1, n, kd, &mut b, &params).unwrap();
    assert_same_bits(b.as_slice(), &x1, "solve_lower_band");
}

/// LAPACK's residual test (`dpot02`: `‖b − A x̂‖₁ / (‖A‖₁ ‖x̂‖₁ ε)`, passing below 30) on
/// ill-conditioned matrices, `κ₂` from 10⁶ to 10¹²: `T² + σI` with `T` the second-difference
/// matrix (eigenvalues of `T²` in `(6·10⁻¹², 16)` at n = 2000), stored with bandwidth 2 and
/// 4; the partitioned path (16 chunks) passes it as the sequential path does, within twice its
/// ratio (measured 0.10–0.14 against 0.10–0.12). With `RESID_PRINT` set, prints both ratios.
#[test]
fn residual_test_on_ill_conditioned_matrices() {
    let n = 2000;
    for kd in [2, 4] {
        for k in [6, 8, 10, 12] {
            let sigma = 16.0 * 10f64.powi(-k);
            let w = kd + 1;
            let mut ab = vec![0.0; w * n];
            for j in 0..n {
                ab[j] = if j == 0 || j == n - 1 { 5.0 } else { 6.0 } + sigma;
                if j + 1 < n {
                    ab[n + j] = -4.0;
                }
                if j + 2 < n {
                    ab[2 * n + j] = 1.0;
                }
            }
            let a = BandBatch::from_lower_band(&ab, 1, n, kd).unwrap();
            let b: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
            let ratio = |p: Partitions| {
                let params = Params::default().with_partitions(p);
                let chol = Cholesky::factor(&a, &params).unwrap();
                assert_eq!(chol.is_partitioned(), p != Partitions::Off);
                let x = chol.solve(&BatchMatrix::new(b.clone(), 1, n, 1).unwrap(), &params).unwrap().into_vec();
                let mut res = 0.0f64;
                let mut norm_a = 0.0f64;
                for (i, &bi) in b.iter().enumerate() {
                    let (mut ax, mut row) = (0.0, 0.0);
                    let lo = i.saturating_sub(kd);
                    for (j, &xj) in x.iter().enumerate().take(i + kd + 1).skip(lo) {
                        let (hi, lo) = (i.max(j), i.min(j));
                        let v = ab[(hi - lo) * n + lo];
                        ax += v * xj;
                        row += v.abs();
                    }
                    res += (bi - ax).abs();
                    norm_a = norm_a.max(row);
                }
                let norm_x: f64 = x.iter().map(|v| v.abs()).sum();
                res / (norm_a * norm_x * f64::EPSILON)
            };
            let (seq, part) = (ratio(Partitions::Off), ratio(Partitions::Count(16)));
            if std::env::var_os("RESID_PRINT").is_some() {
                eprintln!("kd {kd} cond ~1e{k}: residual ratio sequential {seq:.3}, partitioned {part:.3}");
            }
            assert!(seq < 30.0 && part < 30.0, "kd {kd} cond 1e{k}: residual ratios {seq} / {part}");
            assert!(part <= 2.0 * seq, "kd {kd} cond 1e{k}: partitioned residual ratio {part} > 2 × sequential {seq}");
        }
    }
}

/// The band gradient of `backward` runs in blocks of columns (in parallel): on systems longer
/// than a block, sequential and split, every entry is `−Σ_r (Λ[i,r] X[j,r] + Λ[j,r] X[i,r])`
/// (`−Σ_r Λ[j,r] X[j,r]` on the diagonal) of the returned `Λ` and the given `X`, to the rounding
/// of those few products (`γ_{2·nrhs}` of the sum of their magnitudes).
#[test]
fn backward_of_a_long_system_in_column_blocks() {
    let (n, kd, nrhs) = (10_000, 3, 2);
    let c = gen_case(1, n, kd, nrhs, 21, 0, Params::default());
    let a = BandBatch::from_lower_band(&c.ab, 1, n, kd).unwrap();
    for parts in [Partitions::Off, Partitions::Auto] {
        let p = Params::default().with_partitions(parts);
        let chol = Cholesky::factor(&a, &p).unwrap();
        assert_eq!(chol.is_partitioned(), parts == Partitions::Auto);
        let x = BatchMatrix::new(c.b.clone(), 1, n, nrhs).unwrap();
        let g = BatchMatrix::new(c.g.clone(), 1, n, nrhs).unwrap();
        let grad = chol.backward(&x, &g, &p).unwrap();
        let (xs, ls, gab) = (x.as_slice(), grad.rhs.as_slice(), grad.ab.as_slice());
        let w = kd + 1;
        for j in 0..n {
            for d in 0..w {
                let got = gab[j * w + d];
                if j + d >= n {
                    assert_eq!(got.to_bits(), 0f64.to_bits());
                    continue;
                }
                let i = j + d;
                let terms: Vec<f64> = (0..nrhs)
                    .flat_map(|r| if d == 0 { vec![ls[j * nrhs + r] * xs[j * nrhs + r]] } else { vec![ls[i * nrhs + r] * xs[j * nrhs + r], ls[j * nrhs + r] * xs[i * nrhs + r]] })
                    .collect();
                let want = -terms.iter().sum::<f64>();
                let tol = gamma(2 * nrhs, f64::EPSILON / 2.0) * terms.iter().map(|t| t.abs()).sum::<f64>();
                assert!((got - want).abs() <= tol, "{parts:?}: ∂ℓ/∂a[{i},{j}] = {got} vs {want}");
            }
        }
    }
}
