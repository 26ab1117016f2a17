//! Every batched kernel ([`Kernel::available`]) against the promise it makes
//! (`docs/ARCHITECTURE.md`, "Invariants"):
//!
//! * [`Kernel::Portable`] runs the packs without FMA, in the reference kernels' order: its
//!   results are **bitwise** those of [`Kernel::Reference`] (one system at a time), failures
//!   included.
//! * The FMA kernels ([`Kernel::Avx2`], [`Kernel::Avx512`], [`Kernel::Neon`], and
//!   [`Kernel::Auto`] where one of them is present) are **deterministic**: a system's bits do
//!   not depend on its position in the batch, the batch size, the lane width, the tail, the
//!   thread count — nor, since every one of them performs the same fused operations in the
//!   same order, on which of them runs. Each is compared bitwise with the same system factored
//!   and solved alone by [`Kernel::Auto`]. Against the reference they differ in rounding only:
//!   [`fma_kernels_are_within_their_bound_of_the_reference`] holds both to LAPACK's residual
//!   tests and their difference to a bound derived from their backward errors.
//!
//! The batch sizes straddle each kernel's pack widths so that every width runs with full packs,
//! a padded tail pack (`rem ≥ L/2`) and a tail of single systems (`rem < L/2`); [`pack_lanes`]
//! says which, and each test asserts that every combination was reached.

mod common;

use std::collections::BTreeSet;

use banded::band::{pack_lanes, random_spd_problem};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Par, Params, Partitions, PivotFailure, Real};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use common::lanes::{base_lanes, tail, Tail};

/// Bandwidths: diagonal, narrow, the widest double-width band (8), just past it (9), and wide
/// bands (past the register-blocked panel widths), some wider than the matrix.
const KDS: [usize; 9] = [0, 1, 2, 8, 9, 17, 31, 32, 33];

/// The packed runs: every available kernel but the reference on one thread, and the default
/// kernel on two (the lane policy depends on the threads: some batches run in other widths
/// there, and the packs are spread over threads).
fn runs() -> Vec<(Kernel, Par)> {
    let mut runs: Vec<(Kernel, Par)> =
        Kernel::available().into_iter().filter(|&k| k != Kernel::Reference).map(|k| (k, Par::Seq)).collect();
    runs.push((Kernel::Auto, Par::rayon(2)));
    runs
}

/// Whether `kernel` fuses multiply–adds on this CPU (an FMA instruction set; `Auto` picks one
/// wherever there is one).
fn fused(kernel: Kernel) -> bool {
    let fma = [Kernel::Avx2, Kernel::Avx512, Kernel::Neon];
    match kernel {
        Kernel::Reference | Kernel::Portable => false,
        Kernel::Auto => fma.iter().any(|k| k.is_available()),
        k => k.is_available(),
    }
}

/// Lane-boundary batch sizes: those of 8-lane packs (1, 7, 8, 9, 15, 16, 17, 24, 33, 64, 65),
/// and for single width `b` around one and two packs, three packs, a double-width pack plus a
/// padded tail (`4b − 2`), and many packs with and without a tail (for `b = 8` the same plus 30).
fn batches(b: usize) -> Vec<usize> {
    let mut sizes = vec![1, 7, 8, 9, 15, 16, 17, 24, 33, 64, 65];
    sizes.extend([b - 1, b, b + 1, 2 * b - 1, 2 * b, 2 * b + 1, 3 * b, 4 * b - 2, 4 * b + 1, 8 * b, 8 * b + 1]);
    sizes.sort();
    sizes.dedup();
    sizes
}

/// `(lanes, tail)` of a batch run in packs of `lanes` (`lanes == 1`: no packs).
fn layout(batch: usize, lanes: usize) -> (usize, Tail) {
    (lanes, tail(batch, lanes))
}

/// Every layout a run must reach: one at a time, and single and double width, each with every
/// kind of tail.
fn all_layouts(base: usize) -> BTreeSet<(usize, Tail)> {
    let mut want = BTreeSet::from([(1, Tail::None)]);
    for lanes in [base, 2 * base] {
        for tail in [Tail::None, Tail::Padded, Tail::Single] {
            want.insert((lanes, tail));
        }
    }
    want
}

/// Runs `check(kernel, par, batch, kd, i)` over the bandwidths and the lane-boundary batches of
/// every run, and asserts that each run on one thread reached every layout (on two threads
/// the policy prefers narrower packs and may never pad a double-width tail).
fn for_each_case<T: Real>(mut check: impl FnMut(Kernel, Par, usize, usize, usize) -> (usize, Tail)) {
    for (kernel, par) in runs() {
        let base = base_lanes::<T>(&params(kernel, par));
        let mut seen = BTreeSet::new();
        for &kd in &KDS {
            for (i, batch) in batches(base).into_iter().enumerate() {
                seen.insert(check(kernel, par, batch, kd, i));
            }
        }
        let want = all_layouts(base);
        if par == Par::Seq {
            assert_eq!(seen, want, "{kernel:?} {}: layouts reached", T::NAME);
        } else {
            assert!(seen.is_subset(&want) && seen.len() >= 5, "{kernel:?} {par:?} {}: layouts reached {seen:?}", T::NAME);
        }
    }
}

fn params(kernel: Kernel, par: Par) -> Params {
    // Unchecked: the failing-lane tests put NaN on diagonals. Never split a long system alone
    // into chunks (`Partitions::Auto` would, and change its bits): these tests are about the
    // kernels, which must give a lone system a lane's bits.
    Params::default().with_par(par).with_kernel(kernel).with_check_finite(false).with_partitions(Partitions::Off)
}

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.as_f64().to_bits()).collect()
}

/// The systems `systems` of `b`, as a batch of their own.
fn select<T: Real>(b: &BatchMatrix<T>, systems: &[usize]) -> BatchMatrix<T> {
    let data = systems.iter().flat_map(|&s| b.matrix(s).unwrap().to_vec()).collect();
    BatchMatrix::new(data, systems.len(), b.rows(), b.cols()).unwrap()
}

/// The systems `systems` of `a`, as a batch of their own.
fn select_band<T: Real>(a: &BandBatch<T>, systems: &[usize]) -> BandBatch<T> {
    let len = a.system_len();
    let data = systems.iter().flat_map(|&s| a.as_slice()[s * len..(s + 1) * len].to_vec()).collect();
    BandBatch::new(data, systems.len(), a.n(), a.kd()).unwrap()
}

/// What a kernel's results are compared with, bitwise: every output of the whole batch.
struct Expected {
    l: Vec<u64>,
    x: Vec<u64>,
    logdet: Vec<u64>,
    grad_rhs: Vec<u64>,
    grad_ab: Vec<u64>,
}

/// Factor, solve, log-determinant and backward of `a` under `p`, as bits.
fn outputs<T: Real>(a: &BandBatch<T>, b: &BatchMatrix<T>, g: &BatchMatrix<T>, p: &Params) -> Expected {
    let chol = Cholesky::factor(a, p).unwrap();
    let x = chol.solve(b, p).unwrap();
    let gr = chol.backward(&x, g, p).unwrap();
    Expected {
        l: bits(chol.l().as_slice()),
        x: bits(x.as_slice()),
        logdet: bits(&chol.logdet()),
        grad_rhs: bits(gr.rhs.as_slice()),
        grad_ab: bits(gr.ab.as_slice()),
    }
}

/// [`outputs`] computed one system at a time (a batch of one each) by [`Kernel::Auto`],
/// concatenated: what a deterministic FMA kernel must give for the whole batch.
fn alone<T: Real>(a: &BandBatch<T>, b: &BatchMatrix<T>, g: &BatchMatrix<T>) -> Expected {
    let p = params(Kernel::Auto, Par::Seq);
    let mut e = Expected { l: vec![], x: vec![], logdet: vec![], grad_rhs: vec![], grad_ab: vec![] };
    for s in 0..a.batch() {
        let one = outputs(&select_band(a, &[s]), &select(b, &[s]), &select(g, &[s]), &p);
        e.l.extend(one.l);
        e.x.extend(one.x);
        e.logdet.extend(one.logdet);
        e.grad_rhs.extend(one.grad_rhs);
        e.grad_ab.extend(one.grad_ab);
    }
    e
}

/// What `kernel`'s results must equal bitwise: the reference kernel's (unfused kernels), or
/// each system's alone under [`Kernel::Auto`] (FMA kernels).
fn expected<T: Real>(kernel: Kernel, a: &BandBatch<T>, b: &BatchMatrix<T>, g: &BatchMatrix<T>) -> Expected {
    if fused(kernel) {
        let e = alone(a, b, g);
        // Alone under `Auto` is the one-lane kernel for any batch of one.
        assert_eq!(pack_lanes::<T>(1, a.kd(), &params(Kernel::Auto, Par::Seq)), 1);
        e
    } else {
        let r = params(Kernel::Reference, Par::Seq);
        assert_eq!(pack_lanes::<T>(a.batch(), a.kd(), &r), 1, "the reference kernel never packs");
        outputs(a, b, g, &r)
    }
}

/// Checks `kernel` under `par` on one problem against [`expected`]; returns the layout it ran in.
fn check<T: Real>(kernel: Kernel, par: Par, batch: usize, n: usize, kd: usize, nrhs: usize, seed: u64) -> (usize, Tail) {
    let (a, b) = random_spd_problem::<T>(seed, batch, n, kd, nrhs).unwrap();
    let (_, g) = random_spd_problem::<T>(seed + 1, batch, n, kd, nrhs).unwrap();
    let want = expected(kernel, &a, &b, &g);
    let p = params(kernel, par);
    let lanes = pack_lanes::<T>(batch, kd, &p);
    let what = format!("{kernel:?} {par:?} {} batch={batch} n={n} kd={kd} nrhs={nrhs} lanes={lanes}", T::NAME);

    let chol = Cholesky::factor(&a, &p).unwrap();
    assert_eq!(bits(chol.l().as_slice()), want.l, "factor, {what}");
    assert_eq!(bits(&chol.logdet()), want.logdet, "logdet, {what}");
    let x = chol.solve(&b, &p).unwrap();
    assert_eq!(bits(x.as_slice()), want.x, "solve, {what}");
    // This factor solved under another kernel of its family (a pack layout written by one
    // instruction set, read by another): the factor's family decides.
    let other = if fused(kernel) { Kernel::Auto } else { Kernel::Reference };
    assert_eq!(bits(chol.solve(&b, &params(other, par)).unwrap().as_slice()), want.x, "solve under {other:?}, {what}");
    let gr = chol.backward(&x, &g, &p).unwrap();
    assert_eq!(bits(gr.rhs.as_slice()), want.grad_rhs, "backward rhs, {what}");
    assert_eq!(bits(gr.ab.as_slice()), want.grad_ab, "backward ab, {what}");

    // Factor and solve fused into one pass: the same factor and the same `x`.
    let mut xf = b.clone();
    let fused_chol = Cholesky::factor_solve(a.clone(), &mut xf, &p).unwrap();
    assert_eq!(bits(fused_chol.l().as_slice()), want.l, "fused factor, {what}");
    assert_eq!(bits(xf.as_slice()), want.x, "fused solve, {what}");
    // In place, converted to the band layout in place.
    let l = Cholesky::factor_in_place(a.clone(), &p).unwrap().into_l();
    assert_eq!(bits(l.as_slice()), want.l, "factor_in_place + into_l, {what}");
    layout(batch, lanes)
}

#[test]
fn every_kernel_keeps_its_promise_in_every_layout() {
    fn run<T: Real>() {
        for_each_case::<T>(|kernel, par, batch, kd, i| {
            let n = [1, 2, 5, 13, 24][(kd + i) % 5];
            let nrhs = [1, 1, 2, 3][(kd + i) % 4];
            check::<T>(kernel, par, batch, n, kd, nrhs, (kd * 100 + i) as u64)
        });
    }
    run::<f64>();
    run::<f32>();
}

/// Long systems: a pack's columns run through several cache-sized windows, the wide bands
/// through several register-blocked panels per window, and a lone system's columns at kd 40
/// and 80 in parts of vectors (more rows than the registers hold under AVX2 and AVX-512).
#[test]
fn every_kernel_keeps_its_promise_on_long_systems() {
    for (kernel, par) in runs() {
        let mut seen = BTreeSet::new();
        for (kd, n) in [(1, 1100), (8, 500), (40, 150), (80, 200)] {
            // A few single systems after the packs; a double-width pack and a padded tail.
            let b64 = base_lanes::<f64>(&params(kernel, par));
            seen.insert(check::<f64>(kernel, par, b64 + 3, n, kd, 1, kd as u64));
            seen.insert(check::<f64>(kernel, par, 4 * b64 - 2, n, kd, 2, kd as u64));
            let b32 = base_lanes::<f32>(&params(kernel, par));
            seen.insert(check::<f32>(kernel, par, b32 + 5, n, kd, 2, kd as u64));
        }
        assert!(seen.iter().filter(|&&(l, _)| l > 1).count() >= 3, "{kernel:?} {par:?}: {seen:?}");
    }
}

/// `γ_k = k·u/(1 − k·u)` (Higham's notation), `u` the unit roundoff.
fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 0.5, "bound meaningless");
    ku / (1.0 - ku)
}

/// The FMA kernels and the reference compute the same factorization with different roundings.
/// Both are backward stable with the same bound, so each is held to LAPACK's residual tests
/// (`dpbt01`: `‖L̂L̂ᵀ − A‖₁ / (n·‖A‖₁·ε) < 30`; `dpot02`: `‖b − Ax̂‖₁ / (‖A‖₁·‖x̂‖₁·ε) < 30` per
/// column, normalised by `n` as LAPACK does), and their difference to a bound derived from the
/// backward error (Higham, Thms 10.3–10.4, and Sun's perturbation bound for the factor):
///
/// * each factor is exact for `A + ΔA` with `|ΔA| ≤ γ_{kd+2}|L̂||L̂ᵀ|` (kd + 1 terms per entry,
///   a square root or a multiplication by a rounded reciprocal), so, to first order,
///   `‖L̂_f − L̂_r‖_F ≤ ‖L‖₂‖A⁻¹‖₂(‖ΔA_f‖_F + ‖ΔA_r‖_F)/√2`;
/// * each solution satisfies `(A + ΔA)x̂ = b` with `|ΔA| ≤ γ_{3(kd+1)+1}|L̂||L̂ᵀ|`, so
///   `‖x̂_f − x̂_r‖ ≤ ‖A⁻¹‖₂(η_f + η_r)‖x‖`;
///
/// both doubled for second-order terms, with `‖A⁻¹‖₂ ≤ ‖A⁻¹‖_F` and `‖L‖₂ = ‖A‖₂^½ ≤ ‖A‖_F^½`
/// from dense faer in f64. Nothing is tuned: a term of the kernels computed wrongly fails it
/// (as `tests/prop_band.rs` does against dense faer).
#[test]
fn fma_kernels_are_within_their_bound_of_the_reference() {
    fn run<T: Real>(kernel: Kernel) {
        let u = T::epsilon().as_f64() / 2.0;
        let eps = T::epsilon().as_f64();
        let r = params(Kernel::Reference, Par::Seq);
        let p = params(kernel, Par::rayon(2));
        for (kd, n, batch) in [(1, 200, 19), (4, 120, 40), (8, 90, 33), (17, 80, 20), (40, 100, 17), (64, 130, 9)] {
            let (a, b) = random_spd_problem::<T>(kd as u64, batch, n, kd, 2).unwrap();
            let (cf, cr) = (Cholesky::factor(&a, &p).unwrap(), Cholesky::factor(&a, &r).unwrap());
            let (xf, xr) = (cf.solve(&b, &p).unwrap(), cr.solve(&b, &r).unwrap());
            let what = format!("{kernel:?} {} kd={kd} n={n}", T::NAME);
            let mut differs = false;
            for s in 0..batch {
                let ad = Mat::from_fn(n, n, |i, j| a.get(s, i, j).unwrap().as_f64());
                let llt = ad.llt(Side::Lower).expect("SPD");
                let ainv = llt.solve(Mat::<f64>::identity(n, n));
                let (a_n, ainv_n, a_1) = (ad.norm_l2(), ainv.norm_l2(), (0..n).map(|j| (0..n).map(|i| ad[(i, j)].abs()).sum::<f64>()).fold(0.0, f64::max));
                let l_of = |c: &Cholesky<T>| Mat::from_fn(n, n, |i, j| if i >= j { c.l().get(s, i, j).unwrap().as_f64() } else { 0.0 });
                let x_of = |x: &BatchMatrix<T>| Mat::from_fn(n, 2, |i, k| x.get(s, i, k).unwrap().as_f64());
                let (lf, lr) = (l_of(&cf), l_of(&cr));
                let (xfs, xrs) = (x_of(&xf), x_of(&xr));
                let bs = Mat::from_fn(n, 2, |i, k| b.get(s, i, k).unwrap().as_f64());
                let mut eta = 0.0;
                for (l, x, who) in [(&lf, &xfs, "fma"), (&lr, &xrs, "reference")] {
                    // LAPACK's residual tests (the products in f64: exact enough for f32, and
                    // for f64 within `n·u` of the residual of order `n·u·‖A‖`).
                    let res = l * l.transpose() - &ad;
                    let res_1 = (0..n).map(|j| (0..n).map(|i| res[(i, j)].abs()).sum::<f64>()).fold(0.0, f64::max);
                    let ratio = res_1 / (n as f64 * a_1 * eps);
                    assert!(ratio < 30.0, "{what} system {s}: {who} factor residual ratio {ratio}");
                    let rb = &bs - &ad * x;
                    for k in 0..2 {
                        let (r1, x1) = ((0..n).map(|i| rb[(i, k)].abs()).sum::<f64>(), (0..n).map(|i| x[(i, k)].abs()).sum::<f64>());
                        let ratio = r1 / (a_1 * x1 * eps) / n as f64;
                        assert!(ratio < 30.0, "{what} system {s}: {who} solve residual ratio {ratio}");
                    }
                    let abs_l = Mat::from_fn(n, n, |i, j| l[(i, j)].abs());
                    eta += (&abs_l * abs_l.transpose()).norm_l2();
                }
                let kde = kd.min(n - 1);
                let tol_l = 2.0 * a_n.sqrt() * ainv_n * gamma(kde + 2, u) * eta / 2f64.sqrt();
                let err_l = (&lf - &lr).norm_l2();
                assert!(err_l <= tol_l, "{what} system {s}: ‖L̂_fma − L̂_ref‖_F = {err_l:e} > {tol_l:e}");
                let tol_x = 2.0 * ainv_n * gamma(3 * (kde + 1) + 1, u) * eta * xrs.norm_l2();
                let err_x = (&xfs - &xrs).norm_l2();
                assert!(err_x <= tol_x, "{what} system {s}: ‖x̂_fma − x̂_ref‖ = {err_x:e} > {tol_x:e}");
                differs |= err_l > 0.0;
            }
            // The comparison is not vacuous: fused and unfused round differently somewhere.
            assert!(differs || kd <= 1, "{what}: the FMA kernel gave the reference's bits for every system");
        }
    }
    for kernel in [Kernel::Auto, Kernel::Avx2, Kernel::Avx512, Kernel::Neon] {
        if fused(kernel) {
            run::<f64>(kernel);
            run::<f32>(kernel);
        }
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

/// Checks `kernel` under `par` on a batch whose systems `bad` (system, column, NaN or −1) fail:
/// the failures reported, and the factor and solution of the systems that factored as
/// [`expected`] for them alone (undisturbed by their failing neighbours in the pack); returns
/// the layout it ran in.
fn check_failures<T: Real>(kernel: Kernel, par: Par, batch: usize, n: usize, kd: usize, bad: &[(usize, usize, bool)]) -> (usize, Tail) {
    let (mut a, b) = random_spd_problem::<T>(batch as u64, batch, n, kd, 1).unwrap();
    for &(s, col, nan) in bad {
        a = poison(&a, s, col, nan);
    }
    let mut want: Vec<PivotFailure> = bad.iter().map(|&(system, column, _)| PivotFailure { system, column }).collect();
    want.sort_by_key(|f| f.system);
    let good: Vec<usize> = (0..batch).filter(|s| !want.iter().any(|f| f.system == *s)).collect();
    let b_good = (!good.is_empty()).then(|| select(&b, &good));
    let good_want = b_good.as_ref().map(|bg| expected(kernel, &select_band(&a, &good), bg, bg));

    let p = params(kernel, par);
    let lanes = pack_lanes::<T>(batch, kd, &p);
    let what = format!("{kernel:?} {par:?} {} batch={batch} n={n} kd={kd} lanes={lanes} bad={bad:?}", T::NAME);

    // The partial factor: the same failures, and the systems that factored are untouched by
    // their failing neighbours in the pack.
    let part = Cholesky::factor_partial(a.clone(), &p).unwrap();
    assert_eq!(part.failures, want, "{what}");
    assert_eq!(part.systems, good, "{what}");
    assert_eq!(part.factor.as_ref().map(|f| bits(f.l().as_slice())), good_want.as_ref().map(|e| e.l.clone()), "partial factor, {what}");
    if let (Some(f), Some(bg), Some(e)) = (&part.factor, &b_good, &good_want) {
        assert_eq!(bits(f.solve(bg, &p).unwrap().as_slice()), e.x, "solve with the partial factor, {what}");
    }
    // The whole-batch calls report every failure.
    let npd = Error::NotPositiveDefinite { system: want[0].system, column: want[0].column, failures: want.clone() };
    assert_eq!(Cholesky::factor(&a, &p).unwrap_err(), npd, "{what}");
    // Fused factor + solve: the same error, and the systems that factored solved.
    let mut xf = b.clone();
    assert_eq!(Cholesky::factor_solve(a.clone(), &mut xf, &p).unwrap_err(), npd, "fused, {what}");
    if let Some(e) = &good_want {
        assert_eq!(bits(select(&xf, &good).as_slice()), e.x, "fused x of the good systems, {what}");
    }
    layout(batch, lanes)
}

#[test]
fn failing_lanes_do_not_disturb_the_pack() {
    fn run<T: Real>() {
        let n = 16;
        for_each_case::<T>(|kernel, par, batch, kd, _| {
            let mut patterns: Vec<Vec<(usize, usize, bool)>> = vec![vec![(batch - 1, n - 1, false)], vec![(0, 0, true)]];
            if batch >= 3 {
                patterns.push(vec![(0, 5, true), (2, n - 3, false)]);
                patterns.push(vec![(1, 0, false), (batch - 1, 12, true)]);
            }
            let lanes = pack_lanes::<T>(batch, kd, &params(kernel, par));
            if lanes > 1 && batch > lanes {
                // Every lane of the first pack fails (each at its own column), and the last
                // system.
                let mut all: Vec<_> = (0..lanes).map(|s| (s, (3 * s) % n, s % 2 == 0)).collect();
                all.push((batch - 1, 7, false));
                patterns.push(all);
            }
            let mut lay = None;
            for bad in &patterns {
                lay = Some(check_failures::<T>(kernel, par, batch, n, kd, bad));
            }
            lay.unwrap()
        });
    }
    run::<f64>();
    run::<f32>();
}
