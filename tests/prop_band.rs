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
//!
//! # Pack widths
//!
//! A batch runs one system at a time or in lane-interleaved packs of `L` systems (8/16 f64,
//! 16/32 f32 lanes), its last `batch mod L` systems as one padded pack (`≥ L/2` of them) or one
//! at a time; [`pack_lanes`] says which. The width tests run every layout of each type — one at
//! a time (small batches, or [`Kernel::Reference`]), each width with full packs only, with a
//! padded tail and with single systems after the packs — on random small systems (`n ≤ 16`),
//! drawing the batch among the sizes that give that layout, and assert the layout they ran in.
//! A last test keeps the long, wide-band systems (`n ≤ 200`, `kd ≤ 40`) in small batches.

mod common;

use banded::band::pack_lanes;
use banded::{BandBatch, BatchMatrix, Cholesky, Kernel, PackedBandBatch, PackedBatchMatrix, Par, Params, Real};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;

use common::lanes::{base_lanes, layout_of, sizes_for, Layout, LAYOUTS, WIDE_MAX_KD};
use common::spd::{Case, abs_mat, frob, gamma, gen_case, mat_of};
use common::{bit_diff, bits};

/// Runs the crate in `T` under the case's parameters and checks every output of every system
/// against dense faer (f64).
fn check_case<T: Real>(c: &Case) -> Result<(), TestCaseError> {
    let (n, kd, nrhs, w) = (c.n, c.kd, c.nrhs, c.kd + 1);
    let u = T::epsilon().as_f64() / 2.0;
    let u64_ = f64::EPSILON / 2.0;
    let kde = kd.min(n - 1);
    let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let p = c.params;

    let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, n, kd).unwrap();
    let chol = Cholesky::factor(&a, &p).unwrap();
    let b = BatchMatrix::new(to_t(&c.b), c.batch, n, nrhs).unwrap();
    let x = chol.solve(&b, &p).unwrap();
    let gx = BatchMatrix::new(to_t(&c.g), c.batch, n, nrhs).unwrap();
    let grad = chol.backward(&x, &gx, &p).unwrap();
    let logdet = chol.logdet();
    let l_band = chol.l().to_lower_band().unwrap();
    let gab = grad.ab.to_lower_band().unwrap();

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
                    // In the storage itself: `to_lower_band` writes zeros there of its own.
                    let stored = grad.ab.as_slice()[(s * n + j) * w + d];
                    prop_assert_eq!(bits(stored), bits(T::zero()), "system {}: ∂ℓ/∂ab stores {:?} below the matrix, at (j {}, d {})", s, stored, j, d);
                    continue;
                }
                let i = j + d;
                let want = if d == 0 { -lxt[(j, j)] } else { -lxt[(i, j)] - lxt[(j, i)] };
                let err = (got - want).abs();
                prop_assert!(err <= tol_g, "system {s}: ∂ℓ/∂a[{i},{j}] error {err:e} > {tol_g:e}");
            }
        }
    }
    check_inverse::<T>(c, &chol)?;
    // The combined backward is the solve's backward plus the log-determinant's, entry by entry
    // (one rounding apart: c·z + g is rounded once where the sum of the two results twice).
    let gl: Vec<T> = c.g.iter().take(c.batch).map(|&v| T::from_f64(v)).collect();
    let both = chol.backward_with_logdet(&x, &gx, &gl, &p).unwrap();
    let only = chol.logdet_backward(&gl, &p).unwrap();
    prop_assert_eq!(&both.rhs, &grad.rhs);
    for ((&b, &g), &o) in both.ab.as_slice().iter().zip(grad.ab.as_slice()).zip(only.as_slice()) {
        let (b, g, o) = (b.as_f64(), g.as_f64(), o.as_f64());
        prop_assert!((b - (g + o)).abs() <= 2.0 * u * (g.abs() + o.abs()), "combined backward {b} vs {g} + {o}");
    }
    Ok(())
}

/// The band of `A⁻¹` ([`Cholesky::inverse_band`]) and the log-determinant's gradient
/// ([`Cholesky::logdet_backward`]) of every system of `c` against faer's dense inverse (f64).
///
/// Tolerance: `L̂` is the exact factor of `A + ΔA₁` (the factor's backward error, as in
/// `check_case`), and the recurrence's rounding is taken as a further backward perturbation of
/// the same form with `γ_{2kd+4}` (each entry is one dot product of at most `2kd + 1` terms and a
/// division); to first order `‖Ẑ − Z‖_F ≤ ‖Z‖₂²‖ΔA‖_F ≤ ‖Z‖_F²(η₁ + η₂)`, plus the dense
/// reference's own error, doubled for second-order terms: a bound of the form `κ(A)·‖A⁻¹‖·u`.
fn check_inverse<T: Real>(c: &Case, chol: &Cholesky<T>) -> Result<(), TestCaseError> {
    let (n, kd, w) = (c.n, c.kd, c.kd + 1);
    let kde = kd.min(n - 1);
    let u = T::epsilon().as_f64() / 2.0;
    let u64_ = f64::EPSILON / 2.0;
    let p = c.params;
    let zb = chol.inverse_band(&p).unwrap();
    // Into storage holding garbage: every element written, the same bits.
    let mut into = BandBatch::new(vec![T::infinity(); c.batch * n * w], c.batch, n, kd).unwrap();
    chol.inverse_band_into(&mut into, &p).unwrap();
    prop_assert_eq!(bit_diff(into.as_slice(), zb.as_slice()), None, "inverse_band_into vs inverse_band");
    let z = zb.to_lower_band().unwrap();
    let gl: Vec<T> = c.g.iter().take(c.batch).map(|&v| T::from_f64(v)).collect();
    let gzb = chol.logdet_backward(&gl, &p).unwrap();
    let gz = gzb.to_lower_band().unwrap();
    let l_band = chol.l().to_lower_band().unwrap();
    for s in 0..c.batch {
        let band = |d: usize, j: usize| c.ab[(s * w + d) * n + j];
        let a_d = Mat::from_fn(n, n, |i, j| {
            let (i, j) = if i >= j { (i, j) } else { (j, i) };
            if i - j <= kd { band(i - j, j) } else { 0.0 }
        });
        let llt = a_d.llt(Side::Lower).expect("reference is SPD");
        let ainv = llt.solve(Mat::<f64>::identity(n, n));
        let l_hat = Mat::from_fn(n, n, |i, j| {
            if i >= j && i - j <= kd { l_band[(s * w + (i - j)) * n + j].as_f64() } else { 0.0 }
        });
        let abs_ll = frob(&(abs_mat(&l_hat) * abs_mat(&l_hat).transpose()));
        let l_ref = llt.L().to_owned();
        let abs_lr = frob(&(abs_mat(&l_ref) * abs_mat(&l_ref).transpose()));
        let eta = (gamma(kde + 2, u) + gamma(2 * kde + 4, u)) * abs_ll + u * frob(&a_d) + gamma(3 * n + 1, u64_) * abs_lr;
        let tol_z = 2.0 * frob(&ainv).powi(2) * eta;
        let mut err2 = 0.0;
        for d in 0..w {
            for j in 0..n {
                let (got, grad) = (z[(s * w + d) * n + j].as_f64(), gz[(s * w + d) * n + j].as_f64());
                if j + d >= n {
                    // In the storage itself: `to_lower_band` writes zeros there of its own.
                    let k = (s * n + j) * w + d;
                    let (zs, gs) = (zb.as_slice()[k], gzb.as_slice()[k]);
                    prop_assert_eq!(bits(zs), bits(T::zero()), "system {}: inverse_band stores {:?} below the matrix, at (j {}, d {})", s, zs, j, d);
                    prop_assert_eq!(bits(gs), bits(T::zero()), "system {}: logdet_backward stores {:?} below the matrix, at (j {}, d {})", s, gs, j, d);
                    continue;
                }
                err2 += (got - ainv[(j + d, j)]).powi(2);
                // ∂ log det/∂a: Z[j,j] on the diagonal, 2·Z[i,j] below (the symmetric convention).
                let want = if d == 0 { gl[s].as_f64() * got } else { 2.0 * gl[s].as_f64() * got };
                prop_assert!((grad - want).abs() <= u * want.abs(), "system {s}: ∂logdet/∂a[{},{j}] = {grad} vs {want}", j + d);
            }
        }
        let err = err2.sqrt();
        prop_assert!(err <= tol_z, "system {s}: ‖Ẑ − A⁻¹‖_F on the band = {err:e} > {tol_z:e}");
    }
    Ok(())
}

/// Small random batches in `T` that run in `layout`: `n ≤ 16`, `kd ≤ min(n − 1, 12)` (`≤ 8`
/// for double-width packs), one or two threads (the lane policy depends on them), and a batch
/// drawn among the sizes up to 9 single-width packs for which [`pack_lanes`] gives `layout`.
/// One system at a time is drawn both as a batch smaller than a pack and as any batch with
/// [`Kernel::Reference`].
fn layout_strategy<T: Real>(layout: Layout) -> impl Strategy<Value = Case> {
    let kd_max = if matches!(layout, Some((true, _))) { WIDE_MAX_KD } else { 12 };
    (1usize..=16)
        .prop_flat_map(move |n| (Just(n), 0..=(n - 1).min(kd_max)))
        .prop_flat_map(move |(n, kd)| {
            (Just((n, kd)), 1usize..=3, any::<u64>(), 0u8..2, any::<bool>(), any::<bool>(), any::<Index>())
        })
        .prop_filter_map("no batch size runs in this layout", move |((n, kd), nrhs, seed, kind, two, reference, pick)| {
            let kernel = if layout.is_none() && reference { Kernel::Reference } else { Kernel::Auto };
            let par = if two { Par::rayon(2) } else { Par::Seq };
            let p = Params::default().with_par(par).with_kernel(kernel);
            let sizes = sizes_for::<T>(layout, kd, &p, 9 * base_lanes::<T>(&Params::default().with_par(par)));
            (!sizes.is_empty()).then(|| gen_case(*pick.get(&sizes), n, kd, nrhs, seed, kind, p))
        })
}

/// Runs `test` on `cases` random cases of every layout of `T` (a [`TestRunner`] per layout,
/// so that each is reached whatever the draws), asserting first that the case runs in it.
fn for_each_layout<T: Real>(cases: u32, test: impl Fn(&Case) -> Result<(), TestCaseError>) {
    for layout in LAYOUTS {
        let mut runner = TestRunner::new(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases) });
        let result = runner.run(&layout_strategy::<T>(layout), |c| {
            prop_assert_eq!(layout_of::<T>(c.batch, c.kd, &c.params), layout, "lanes {}", pack_lanes::<T>(c.batch, c.kd, &c.params));
            test(&c)
        });
        if let Err(e) = result {
            panic!("{} {layout:?}: {e}", T::NAME);
        }
    }
}

#[test]
fn f64_every_layout_matches_dense_faer() {
    for_each_layout::<f64>(6, check_case::<f64>);
}

#[test]
fn f32_every_layout_matches_dense_faer() {
    for_each_layout::<f32>(6, check_case::<f32>);
}

/// Sequential and parallel runs give bit-identical results, whatever width each runs in (every
/// kernel computes each system with the same operations in the same order).
#[test]
fn par_is_deterministic() {
    fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, c.n, c.kd).unwrap();
        let par = BandBatch::from_lower_band_par(&to_t(&c.ab), c.batch, c.n, c.kd, Par::rayon(2)).unwrap();
        prop_assert_eq!(bit_diff(par.as_slice(), a.as_slice()), None, "from_lower_band_par");
        // Into storage holding garbage, larger than needed: the same batch, ignored entries zero.
        let garbage = vec![T::infinity(); c.ab.len() + 7];
        let reused = BandBatch::from_lower_band_in(garbage, &to_t(&c.ab), c.batch, c.n, c.kd, Par::rayon(2)).unwrap();
        prop_assert_eq!(bit_diff(reused.as_slice(), a.as_slice()), None, "from_lower_band_in");
        let b = BatchMatrix::new(to_t(&c.b), c.batch, c.n, c.nrhs).unwrap();
        let run = |par| {
            let p = c.params.with_par(par);
            let chol = Cholesky::factor(&a, &p).unwrap();
            (chol.solve(&b, &p).unwrap(), chol)
        };
        let (x1, c1) = run(Par::Seq);
        let (x2, c2) = run(Par::rayon(2));
        prop_assert_eq!(bit_diff(x1.as_slice(), x2.as_slice()), None, "x");
        prop_assert_eq!(bit_diff(c1.l().as_slice(), c2.l().as_slice()), None, "L");
        Ok(())
    }
    for_each_layout::<f64>(3, run::<f64>);
    for_each_layout::<f32>(3, run::<f32>);
}

/// The one-right-hand-side solve (a separate code path) gives the same bits as the general
/// path on each column of a two-column right-hand side.
#[test]
fn single_rhs_path_matches_general_path() {
    fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, c.n, c.kd).unwrap();
        let p = c.params;
        let chol = Cholesky::factor(&a, &p).unwrap();
        let one: Vec<T> = to_t(&c.b).into_iter().step_by(c.nrhs).collect();
        let two: Vec<T> = one.iter().flat_map(|&v| [v, -v]).collect();
        let x1 = chol.solve(&BatchMatrix::new(one, c.batch, c.n, 1).unwrap(), &p).unwrap();
        let x2 = chol.solve(&BatchMatrix::new(two, c.batch, c.n, 2).unwrap(), &p).unwrap();
        let col0: Vec<T> = x2.as_slice().iter().step_by(2).copied().collect();
        let col1: Vec<T> = x2.as_slice().iter().skip(1).step_by(2).map(|&v| -v).collect();
        prop_assert_eq!(bit_diff(x1.as_slice(), &col0), None, "column 0");
        prop_assert_eq!(bit_diff(x1.as_slice(), &col1), None, "column 1 (negated)");
        Ok(())
    }
    for_each_layout::<f64>(3, run::<f64>);
    for_each_layout::<f32>(3, run::<f32>);
}

/// `factor_solve` (factor and solve fused into one pass) gives bitwise the factor and the
/// solution of `factor` followed by `solve`.
#[test]
fn fused_factor_solve_matches_factor_then_solve() {
    fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, c.n, c.kd).unwrap();
        let b = BatchMatrix::new(to_t(&c.b), c.batch, c.n, c.nrhs).unwrap();
        let p = c.params;
        let chol = Cholesky::factor(&a, &p).unwrap();
        let x = chol.solve(&b, &p).unwrap();
        let mut xf = b.clone();
        let fused = Cholesky::factor_solve(a, &mut xf, &p).unwrap();
        prop_assert_eq!(bit_diff(xf.as_slice(), x.as_slice()), None, "x");
        prop_assert_eq!(bit_diff(fused.l().as_slice(), chol.l().as_slice()), None, "L");
        Ok(())
    }
    for_each_layout::<f64>(3, run::<f64>);
    for_each_layout::<f32>(3, run::<f32>);
}

/// `solve_lower_band` (straight from the interchange layout, the factor not kept; the ignored
/// entries of these cases are NaN) gives bitwise the solution of `from_lower_band` +
/// `factor_solve`, in every layout.
#[test]
fn solve_lower_band_matches_factor_solve() {
    fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let ab = to_t(&c.ab);
        let a = BandBatch::from_lower_band(&ab, c.batch, c.n, c.kd).unwrap();
        let b = BatchMatrix::new(to_t(&c.b), c.batch, c.n, c.nrhs).unwrap();
        let p = c.params;
        let mut x = b.clone();
        Cholesky::factor_solve(a, &mut x, &p).unwrap();
        let mut xo = b.clone();
        Cholesky::solve_lower_band(&ab, c.batch, c.n, c.kd, &mut xo, &p).unwrap();
        prop_assert_eq!(bit_diff(xo.as_slice(), x.as_slice()), None, "x");
        Ok(())
    }
    for_each_layout::<f64>(3, run::<f64>);
    for_each_layout::<f32>(3, run::<f32>);
}

/// The packed-input API: a batch given in the lane-interleaved layout factors and solves to the
/// same bits as the band layout, with the lanes the kernels choose and with twice as many; the
/// layout conversions round-trip and `offset` addresses the entries `get` reads.
#[test]
fn packed_input_matches_band_input() {
    fn run<T: Real>(c: &Case) -> Result<(), TestCaseError> {
        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let a = BandBatch::from_lower_band(&to_t(&c.ab), c.batch, c.n, c.kd).unwrap();
        let b = BatchMatrix::new(to_t(&c.b), c.batch, c.n, c.nrhs).unwrap();
        let p = c.params;
        let chol = Cholesky::factor(&a, &p).unwrap();
        let x = chol.solve(&b, &p).unwrap();
        let chosen = PackedBandBatch::<T>::lanes_for(c.batch, c.kd, &p);
        for lanes in [chosen, if chosen == 1 { 8 } else { 2 * chosen }] {
            let ap = PackedBandBatch::from_band(&a, lanes).unwrap();
            for (s, i, j) in [(0, 0, 0), (c.batch - 1, c.n - 1, c.n - 1 - c.kd.min(c.n - 1)), (c.batch / 2, c.n / 2, c.n / 2)] {
                prop_assert_eq!(ap.offset(s, i, j).map(|k| ap.as_slice()[k]), a.get(s, i, j));
            }
            prop_assert_eq!(ap.offset(c.batch, 0, 0), None);
            prop_assert_eq!(bit_diff(ap.clone().into_band().as_slice(), a.as_slice()), None, "{} lanes: round trip", lanes);
            let cp = Cholesky::factor_packed(ap, &p).unwrap();
            prop_assert_eq!(bit_diff(cp.l().as_slice(), chol.l().as_slice()), None, "{} lanes: L", lanes);
            let mut bp = PackedBatchMatrix::from_matrix(&b, cp.lanes()).unwrap();
            cp.solve_packed_in_place(&mut bp, &p).unwrap();
            prop_assert_eq!(bit_diff(bp.into_matrix().as_slice(), x.as_slice()), None, "{} lanes: x", lanes);
        }
        Ok(())
    }
    for_each_layout::<f64>(3, run::<f64>);
    for_each_layout::<f32>(3, run::<f32>);
}

/// Long systems and wide bands (`n ≤ 200`, `kd ≤ 40`: several cache windows per pack) in
/// batches of up to 9 (f64: one 8-lane pack and a single system; f32: one at a time).
fn long_strategy() -> impl Strategy<Value = Case> {
    (1usize..=200)
        .prop_flat_map(|n| (Just(n), 0..=(n - 1).min(40), 1usize..=9, 1usize..=4, any::<u64>(), 0u8..2, any::<bool>()))
        .prop_map(|(n, kd, batch, nrhs, seed, kind, two)| {
            let par = if two { Par::rayon(2) } else { Par::Seq };
            gen_case(batch, n, kd, nrhs, seed, kind, Params::default().with_par(par))
        })
}

/// Selected inversion over every bandwidth 0..=64, `kd ≥ n − 1` included (a full triangle, or
/// a band stored wider than the matrix), in batches of up to 17 (f64: two 8-lane packs and a
/// single system, or one padded pack; f32: one at a time or one padded pack).
fn inverse_strategy() -> impl Strategy<Value = Case> {
    (1usize..=80, 0usize..=64, 1usize..=17, any::<u64>(), 0u8..2, any::<bool>()).prop_map(|(n, kd, batch, seed, kind, two)| {
        let par = if two { Par::rayon(2) } else { Par::Seq };
        gen_case(batch, n, kd, 1, seed, kind, Params::default().with_par(par))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn f64_inverse_band_matches_dense_faer(c in inverse_strategy()) {
        let a = BandBatch::from_lower_band(&c.ab, c.batch, c.n, c.kd).unwrap();
        check_inverse::<f64>(&c, &Cholesky::factor(&a, &c.params).unwrap())?;
    }

    #[test]
    fn f32_inverse_band_matches_dense_faer(c in inverse_strategy()) {
        let ab: Vec<f32> = c.ab.iter().map(|&v| v as f32).collect();
        let a = BandBatch::from_lower_band(&ab, c.batch, c.n, c.kd).unwrap();
        check_inverse::<f32>(&c, &Cholesky::factor(&a, &c.params).unwrap())?;
    }

    #[test]
    fn f64_long_systems_match_dense_faer(c in long_strategy()) {
        check_case::<f64>(&c)?;
    }

    #[test]
    fn f32_long_systems_match_dense_faer(c in long_strategy()) {
        check_case::<f32>(&c)?;
    }
}

/// Selected inversion of factors stored in the widest packs — 32 and 64 lanes, given by the
/// caller ([`Cholesky::factor_packed`]) under the automatic kernel and under
/// [`Kernel::Avx512`], and those [`Cholesky::factor`] picks itself under `Kernel::Avx512` (8 and
/// 16 f64 lanes, 16 and 32 f32) — against faer's dense inverse ([`check_inverse`]: the band of
/// `A⁻¹` within its derived bound, `inverse_band_into` the same bits over garbage,
/// `logdet_backward`). Each case asserts the lanes its factor is stored in. `Kernel::Avx512`
/// runs where the CPU has AVX-512 (elsewhere it would fall back to the portable kernels and
/// other widths, so those cases are left out).
#[test]
fn inverse_band_in_wide_packs_and_under_avx512() {
    fn run<T: Real>() {
        let avx512 = Kernel::Avx512.is_available();
        if !avx512 {
            eprintln!("no AVX-512 on this CPU: the Kernel::Avx512 cases are skipped");
        }
        let kernels: Vec<Kernel> = [Kernel::Auto, Kernel::Avx512].into_iter().filter(|k| *k != Kernel::Avx512 || avx512).collect();
        let mut seed = 0;
        for kernel in kernels {
            for (n, kd) in [(12, 2), (20, 9)] {
                // Given lanes: one full pack and three systems after it (one at a time).
                for lanes in [32, 64] {
                    seed += 1;
                    let c = gen_case(lanes + 3, n, kd, 1, seed, (seed % 2) as u8, Params::default().with_kernel(kernel).with_par(Par::rayon(2)));
                    let ab: Vec<T> = c.ab.iter().map(|&v| T::from_f64(v)).collect();
                    let a = BandBatch::from_lower_band(&ab, c.batch, n, kd).unwrap();
                    let chol = Cholesky::factor_packed(PackedBandBatch::from_band(&a, lanes).unwrap(), &c.params).unwrap();
                    assert_eq!(chol.lanes(), lanes, "{} {kernel:?}: factor_packed's lanes", T::NAME);
                    check_inverse::<T>(&c, &chol).unwrap_or_else(|e| panic!("{} {kernel:?} given {lanes} lanes, n {n} kd {kd}: {e}", T::NAME));
                }
            }
            if kernel == Kernel::Avx512 {
                // The lanes `factor` picks under AVX-512 (a 64-byte row, one register, doubled
                // for kd ≤ 8 when that finishes first): single and double width, a pack and
                // three systems after it, or two double-width packs on one thread.
                let base = 64 / std::mem::size_of::<T>();
                for (batch, n, kd, par, lanes) in [(base + 3, 20, 9, Par::rayon(2), base), (4 * base, 12, 2, Par::Seq, 2 * base)] {
                    seed += 1;
                    let p = Params::default().with_kernel(kernel).with_par(par);
                    assert_eq!(pack_lanes::<T>(batch, kd, &p), lanes, "{} batch {batch} kd {kd} under AVX-512", T::NAME);
                    let c = gen_case(batch, n, kd, 1, seed, (seed % 2) as u8, p);
                    let ab: Vec<T> = c.ab.iter().map(|&v| T::from_f64(v)).collect();
                    let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, batch, n, kd).unwrap(), &p).unwrap();
                    assert_eq!(chol.lanes(), lanes, "{} batch {batch} kd {kd}: factor's lanes under AVX-512", T::NAME);
                    check_inverse::<T>(&c, &chol).unwrap_or_else(|e| panic!("{} AVX-512, {lanes} lanes, n {n} kd {kd}: {e}", T::NAME));
                }
            }
        }
    }
    run::<f64>();
    run::<f32>();
}
