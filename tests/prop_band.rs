//! Property tests: the batched band solver against dense faer on random SPD band matrices.
//!
//! The reference is faer's dense Cholesky in f64 on the same matrices expanded to dense. Every
//! tolerance is a first-order error bound computed from the case's own data (Higham, *Accuracy
//! and Stability of Numerical Algorithms*, 2nd ed., Thms 10.3–10.4, and Sun's perturbation
//! bound for the Cholesky factor), doubled for second-order terms; nothing is tuned:
//!
//! * backward error of a band Cholesky with bandwidth `kd`: `L̂L̂ᵀ = A + ΔA`,
//!   `|ΔA| ≤ γ_{kd+2}|L̂||L̂ᵀ|` entrywise, and a solve with it satisfies `(A + ΔA)x̂ = b` with
//!   `|ΔA| ≤ γ_{3(kd+1)+1}|L̂||L̂ᵀ|`, where `γ_k = k·u/(1 − k·u)`;
//! * the f32 runs also see the rounding of the inputs to f32 (`u·|A|`, `u·|b|`);
//! * `‖A⁻¹‖₂ ≤ ‖A⁻¹‖_F`, with `A⁻¹` from the dense reference.

use banded::{BandBatch, BatchMatrix, Cholesky, Params, Par, Real};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One random batch: interchange-layout band `ab`, right-hand sides `b`, cotangents `g`.
#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    n: usize,
    kd: usize,
    nrhs: usize,
    ab: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
}

/// Random SPD band matrices. `kind` 0: diagonally dominant with a random margin;
/// `kind` 1: `L₀L₀ᵀ` for a random lower band `L₀` (bandwidth `kd`, so the product has it too),
/// row diagonally dominant (`Σ|off-diagonal| ≤ 0.9·diagonal`) so that `κ(L₀) ≤ 19·max|L₀ᵢᵢ|/min|L₀ᵢᵢ|`:
/// a random triangular matrix is otherwise exponentially ill-conditioned in `n`.
fn gen_case(batch: usize, n: usize, kd: usize, nrhs: usize, seed: u64, kind: u8) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = kd + 1;
    let mut ab = vec![0.0; batch * w * n];
    for s in 0..batch {
        let mut dense = vec![0.0; n * n];
        if kind == 0 {
            for j in 0..n {
                for i in j + 1..n.min(j + kd + 1) {
                    let v: f64 = rng.random_range(-1.0..1.0);
                    dense[i * n + j] = v;
                    dense[j * n + i] = v;
                }
            }
            for i in 0..n {
                let off: f64 = (0..n).filter(|&j| j != i).map(|j| dense[i * n + j].abs()).sum();
                dense[i * n + i] = off + rng.random_range(0.05..1.0);
            }
        } else {
            let mut l0 = vec![0.0; n * n];
            for i in 0..n {
                for j in i.saturating_sub(kd)..i {
                    l0[i * n + j] = rng.random_range(-0.9..0.9) / kd.max(1) as f64;
                }
                l0[i * n + i] = rng.random_range(1.0..2.0);
            }
            for i in 0..n {
                for j in 0..=i {
                    let v: f64 = (0..=j).map(|k| l0[i * n + k] * l0[j * n + k]).sum();
                    dense[i * n + j] = v;
                    dense[j * n + i] = v;
                }
            }
        }
        for d in 0..w {
            for j in 0..n.saturating_sub(d) {
                ab[(s * w + d) * n + j] = dense[(j + d) * n + j];
            }
            // Ignored corner entries: fill with junk to prove they are never read.
            for j in n.saturating_sub(d)..n {
                ab[(s * w + d) * n + j] = f64::NAN;
            }
        }
    }
    let b = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();
    let g = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();
    Case { batch, n, kd, nrhs, ab, b, g }
}

fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 0.5, "bound meaningless");
    ku / (1.0 - ku)
}

fn frob(m: &Mat<f64>) -> f64 {
    m.norm_l2()
}

fn abs_mat(m: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)].abs())
}

fn mat_of(rows: usize, cols: usize, data: &[f64]) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// Runs the crate in `T` and checks every output of every system against dense faer (f64).
fn check_case<T: Real>(c: &Case, par: Par) -> Result<(), TestCaseError> {
    let (n, kd, nrhs, w) = (c.n, c.kd, c.nrhs, c.kd + 1);
    let u = T::epsilon().as_f64() / 2.0;
    let u64_ = f64::EPSILON / 2.0;
    let kde = kd.min(n - 1);
    let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let p = Params { par, check_finite: true };

    let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, kd, n).unwrap();
    let chol = Cholesky::factor(&a, &p).unwrap();
    let b = BatchMatrix::new("rhs", to_t(&c.b), c.batch, n, nrhs).unwrap();
    let x = chol.solve(&b, &p).unwrap();
    let gx = BatchMatrix::new("grad_x", to_t(&c.g), c.batch, n, nrhs).unwrap();
    let grad = chol.backward(&x, &gx, &p).unwrap();
    let logdet = chol.logdet();
    let l_band = chol.l().to_lower_band();
    let gab = grad.ab.to_lower_band();

    for s in 0..c.batch {
        // The dense reference.
        let band = |d: usize, j: usize| c.ab[(s * w + d) * n + j];
        let a_d = Mat::from_fn(n, n, |i, j| {
            let (i, j) = if i >= j { (i, j) } else { (j, i) };
            if i - j <= kd { band(i - j, j) } else { 0.0 }
        });
        let llt = a_d.llt(Side::Lower).expect("reference is SPD");
        let l_ref = llt.L().to_owned();
        let b_s = mat_of(n, nrhs, &c.b[s * n * nrhs..(s + 1) * n * nrhs]);
        let g_s = mat_of(n, nrhs, &c.g[s * n * nrhs..(s + 1) * n * nrhs]);
        let x_ref = llt.solve(&b_s);
        let lam_ref = llt.solve(&g_s);
        let ainv = llt.solve(Mat::<f64>::identity(n, n));
        let ainv_n = frob(&ainv);
        let a_n = frob(&a_d);

        // Ours, widened to f64 (exact).
        let l_hat = Mat::from_fn(n, n, |i, j| {
            if i >= j && i - j <= kd { l_band[(s * w + (i - j)) * n + j].as_f64() } else { 0.0 }
        });
        let x_hat = mat_of(n, nrhs, &x.matrix(s).unwrap().iter().map(|v| v.as_f64()).collect::<Vec<_>>());
        let lam_hat = mat_of(n, nrhs, &grad.rhs.matrix(s).unwrap().iter().map(|v| v.as_f64()).collect::<Vec<_>>());

        // 1. Backward error of the factor, entrywise (Higham Thm 10.3) plus input rounding
        //    and the f64 evaluation of L̂L̂ᵀ.
        let llt_hat = &l_hat * l_hat.transpose();
        let abs_ll = abs_mat(&l_hat) * abs_mat(&l_hat).transpose();
        for j in 0..n {
            for i in 0..n {
                let err = (llt_hat[(i, j)] - a_d[(i, j)]).abs();
                let tol = (gamma(kde + 2, u) + gamma(n, u64_)) * abs_ll[(i, j)] + u * a_d[(i, j)].abs();
                prop_assert!(err <= tol, "system {s}: |L̂L̂ᵀ − A|[{i},{j}] = {err:e} > {tol:e}");
            }
        }

        // Normwise backward errors of ours (solve, 3(kd+1)+1) and of the dense reference.
        let eta = gamma(3 * (kde + 1) + 1, u) * frob(&abs_ll) + u * a_n;
        let abs_lr = abs_mat(&l_ref) * abs_mat(&l_ref).transpose();
        let eta_ref = gamma(3 * n + 1, u64_) * frob(&abs_lr);
        let eta_all = eta + eta_ref;

        // 2. The factor itself (Sun's bound ‖ΔL‖_F ≤ ‖L‖₂‖A⁻¹‖₂‖ΔA‖_F/√2).
        let tol_l = 2.0 * a_n.sqrt() * ainv_n * eta_all / 2f64.sqrt();
        let err_l = frob(&(&l_hat - &l_ref));
        prop_assert!(err_l <= tol_l, "system {s}: ‖L̂ − L‖_F = {err_l:e} > {tol_l:e}");

        // 3. Solution and 5. ∂ℓ/∂B = A⁻¹G: ‖x̂ − x‖ ≤ ‖A⁻¹‖(η‖x‖ + ‖δb‖).
        let tol_x = 2.0 * ainv_n * (eta_all * frob(&x_ref) + u * frob(&b_s));
        let err_x = frob(&(&x_hat - &x_ref));
        prop_assert!(err_x <= tol_x, "system {s}: ‖x̂ − x‖ = {err_x:e} > {tol_x:e}");
        let tol_lam = 2.0 * ainv_n * (eta_all * frob(&lam_ref) + u * frob(&g_s));
        let err_lam = frob(&(&lam_hat - &lam_ref));
        prop_assert!(err_lam <= tol_lam, "system {s}: ‖Λ̂ − Λ‖ = {err_lam:e} > {tol_lam:e}");

        // 4. log-determinant: |Δ| ≤ n‖A⁻¹‖‖ΔA‖ plus the rounding of n logarithms and their sum.
        let ld_ref: f64 = (0..n).map(|j| 2.0 * l_ref[(j, j)].ln()).sum();
        let ld_abs: f64 = (0..n).map(|j| (2.0 * l_ref[(j, j)].ln()).abs()).sum();
        let tol_ld = 2.0 * (n as f64 * ainv_n * eta_all + gamma(n + 2, u) * ld_abs) + 1e-300;
        let err_ld = (logdet[s].as_f64() - ld_ref).abs();
        prop_assert!(err_ld <= tol_ld, "system {s}: logdet error {err_ld:e} > {tol_ld:e}");

        // 6. ∂ℓ/∂(band of A), symmetric convention, from a dense product ΛXᵀ.
        let lxt = &lam_ref * x_ref.transpose();
        let tol_g = 2.0 * (err_lam.max(tol_lam) * frob(&x_ref) + frob(&lam_ref) * err_x.max(tol_x))
            + gamma(2 * nrhs + 1, u) * 2.0 * frob(&lam_ref) * frob(&x_ref);
        for d in 0..w {
            for j in 0..n {
                let got = gab[(s * w + d) * n + j].as_f64();
                if j + d >= n {
                    prop_assert_eq!(got, 0.0, "ignored entries of ∂ℓ/∂ab are zero");
                    continue;
                }
                let i = j + d;
                let want = if d == 0 { -lxt[(j, j)] } else { -lxt[(i, j)] - lxt[(j, i)] };
                let err = (got - want).abs();
                prop_assert!(err <= tol_g, "system {s}: ∂ℓ/∂a[{i},{j}] error {err:e} > {tol_g:e}");
            }
        }
    }
    Ok(())
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..=200)
        .prop_flat_map(|n| (Just(n), 0..=(n - 1).min(40), 1usize..=9, 1usize..=4, any::<u64>(), 0u8..2))
        .prop_map(|(n, kd, batch, nrhs, seed, kind)| gen_case(batch, n, kd, nrhs, seed, kind))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn f64_matches_dense_faer(c in case_strategy()) {
        check_case::<f64>(&c, Par::rayon(0))?;
    }

    #[test]
    fn f32_matches_dense_faer(c in case_strategy()) {
        check_case::<f32>(&c, Par::Seq)?;
    }

    /// Sequential and parallel runs give bit-identical results (each system is computed
    /// by the same code on one thread either way).
    #[test]
    fn par_is_deterministic(c in case_strategy()) {
        let a = BandBatch::from_lower_band(&c.ab, c.batch, c.kd, c.n).unwrap();
        let b = BatchMatrix::new("rhs", c.b.clone(), c.batch, c.n, c.nrhs).unwrap();
        let run = |par| {
            let p = Params::with_par(par);
            let chol = Cholesky::factor(&a, &p).unwrap();
            (chol.solve(&b, &p).unwrap(), chol)
        };
        let (x1, c1) = run(Par::Seq);
        let (x2, c2) = run(Par::rayon(2));
        prop_assert_eq!(x1, x2);
        prop_assert_eq!(c1, c2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The one-right-hand-side solve (a separate code path) gives the same bits as the
    /// general path on each column of a two-column right-hand side.
    #[test]
    fn single_rhs_path_matches_general_path(c in case_strategy()) {
        let a = BandBatch::from_lower_band(&c.ab, c.batch, c.kd, c.n).unwrap();
        let p = Params::default();
        let chol = Cholesky::factor(&a, &p).unwrap();
        let one: Vec<f64> = c.b.iter().step_by(c.nrhs).copied().collect();
        let two: Vec<f64> = one.iter().flat_map(|&v| [v, -v]).collect();
        let x1 = chol.solve(&BatchMatrix::new("rhs", one, c.batch, c.n, 1).unwrap(), &p).unwrap();
        let x2 = chol.solve(&BatchMatrix::new("rhs", two, c.batch, c.n, 2).unwrap(), &p).unwrap();
        let col0: Vec<f64> = x2.as_slice().iter().step_by(2).copied().collect();
        let col1: Vec<f64> = x2.as_slice().iter().skip(1).step_by(2).map(|v| -v).collect();
        prop_assert_eq!(x1.as_slice(), &col0[..]);
        prop_assert_eq!(x1.as_slice(), &col1[..]);
    }

    /// `factor_solve` (factor and solve fused into one pass) gives bitwise the factor and the
    /// solution of `factor` followed by `solve`, in f64 and f32.
    #[test]
    fn fused_factor_solve_matches_factor_then_solve(c in case_strategy()) {
        fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
            let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
            let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, c.kd, c.n).unwrap();
            let b = BatchMatrix::new("rhs", to_t(&c.b), c.batch, c.n, c.nrhs).unwrap();
            let p = Params::default();
            let chol = Cholesky::factor(&a, &p).unwrap();
            let x = chol.solve(&b, &p).unwrap();
            let mut xf = b.clone();
            let fused = Cholesky::factor_solve(a, &mut xf, &p).unwrap();
            prop_assert_eq!(&xf, &x);
            prop_assert_eq!(&fused, &chol);
            Ok(())
        }
        run::<f64>(&c)?;
        run::<f32>(&c)?;
    }
}
