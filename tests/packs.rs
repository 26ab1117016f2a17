//! Every batched kernel ([`Kernel::available`]: the lane-interleaved packs under each
//! instruction set this CPU runs, and the portable packs) against [`Kernel::Reference`] (one
//! system at a time): the packs do the same operations in the same order without FMA
//! contraction, so every result must be **bitwise** equal, failures included.
//!
//! The batch sizes straddle each kernel's pack widths (8/16 f64 and 16/32 f32 lanes with
//! 64-byte pack rows, twice as many with AVX-512's 128-byte rows) so that every width runs
//! with full packs, a padded tail pack (`rem ≥ L/2`) and a tail of single systems
//! (`rem < L/2`); [`pack_lanes`] says which, and each test asserts that every combination was
//! reached.

mod common;

use std::collections::BTreeSet;

use banded::band::{pack_lanes, random_spd_problem};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Par, Params, PivotFailure, Real};

use common::lanes::{base_lanes, tail, Tail};

/// Bandwidths: diagonal, narrow, the widest double-width band (8), just past it (9), and wide
/// bands, some wider than the matrix.
const KDS: [usize; 9] = [0, 1, 2, 8, 9, 17, 31, 32, 33];

/// The packed runs compared with the reference: every available kernel but the reference on
/// one thread, and the default kernel on two (the lane policy depends on the threads: some
/// batches run in other widths there, and the packs are spread over threads).
fn runs() -> Vec<(Kernel, Par)> {
    let mut runs: Vec<(Kernel, Par)> =
        Kernel::available().into_iter().filter(|&k| k != Kernel::Reference).map(|k| (k, Par::Seq)).collect();
    runs.push((Kernel::Auto, Par::rayon(2)));
    runs
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
    // Unchecked: the failing-lane tests put NaN on diagonals.
    Params::default().with_par(par).with_kernel(kernel).with_check_finite(false)
}

fn bits<T: Real>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.as_f64().to_bits()).collect()
}

/// Checks `kernel` under `par` against the reference on one problem; returns the layout it ran in.
fn check<T: Real>(kernel: Kernel, par: Par, batch: usize, n: usize, kd: usize, nrhs: usize, seed: u64) -> (usize, Tail) {
    let (a, b) = random_spd_problem::<T>(seed, batch, n, kd, nrhs).unwrap();
    let (_, g) = random_spd_problem::<T>(seed + 1, batch, n, kd, nrhs).unwrap();
    let r = params(Kernel::Reference, Par::Seq);
    assert_eq!(pack_lanes::<T>(batch, kd, &r), 1, "the reference kernel never packs");
    let chol_ref = Cholesky::factor(&a, &r).unwrap();
    let l_ref = bits(chol_ref.l().as_slice());
    let x_ref = chol_ref.solve(&b, &r).unwrap();
    let ld_ref = bits(&chol_ref.logdet());
    let g_ref = chol_ref.backward(&x_ref, &g, &r).unwrap();
    let x_ref = bits(x_ref.as_slice());
    let p = params(kernel, par);
    let lanes = pack_lanes::<T>(batch, kd, &p);
    let what = format!("{kernel:?} {par:?} {} batch={batch} n={n} kd={kd} nrhs={nrhs} lanes={lanes}", T::NAME);

    let chol = Cholesky::factor(&a, &p).unwrap();
    assert_eq!(bits(chol.l().as_slice()), l_ref, "factor, {what}");
    assert_eq!(bits(&chol.logdet()), ld_ref, "logdet, {what}");
    let x = chol.solve(&b, &p).unwrap();
    assert_eq!(bits(x.as_slice()), x_ref, "solve, {what}");
    // This factor solved by the portable packs (a pack layout written by one
    // instruction set, read by another), and the reference factor (band layout)
    // solved by this kernel (gathered into packs).
    let portable = params(Kernel::Portable, par);
    assert_eq!(bits(chol.solve(&b, &portable).unwrap().as_slice()), x_ref, "portable solve, {what}");
    assert_eq!(bits(chol_ref.solve(&b, &p).unwrap().as_slice()), x_ref, "solve of the band factor, {what}");
    let gr = chol.backward(&x, &g, &p).unwrap();
    assert_eq!(bits(gr.rhs.as_slice()), bits(g_ref.rhs.as_slice()), "backward rhs, {what}");
    assert_eq!(bits(gr.ab.as_slice()), bits(g_ref.ab.as_slice()), "backward ab, {what}");

    // Factor and solve fused into one pass: the same factor and the same `x`.
    let mut xf = b.clone();
    let fused = Cholesky::factor_solve(a.clone(), &mut xf, &p).unwrap();
    assert_eq!(bits(fused.l().as_slice()), l_ref, "fused factor, {what}");
    assert_eq!(bits(xf.as_slice()), x_ref, "fused solve, {what}");
    // In place, converted to the band layout in place.
    let l = Cholesky::factor_in_place(a.clone(), &p).unwrap().into_l();
    assert_eq!(bits(l.as_slice()), l_ref, "factor_in_place + into_l, {what}");
    layout(batch, lanes)
}

#[test]
fn packs_match_reference_bitwise() {
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

/// Long systems: a pack's columns run through several cache-sized windows (a window holds
/// about `256 KiB / ((kd+1)·row bytes)` columns: ~60 at kd = 40, ~200 at kd = 8 double width,
/// ~500 at kd = 1 double width, for 64-byte rows).
#[test]
fn packs_match_reference_large() {
    for (kernel, par) in runs() {
        let mut seen = BTreeSet::new();
        for (kd, n) in [(1, 1100), (8, 500), (40, 150)] {
            // A few single systems after the packs; a double-width pack and a padded tail
            // (f64 with 64-byte rows: 8 + 3, 16 + a padded 14).
            let b64 = base_lanes::<f64>(&params(kernel, par));
            seen.insert(check::<f64>(kernel, par, b64 + 3, n, kd, 1, kd as u64));
            seen.insert(check::<f64>(kernel, par, 4 * b64 - 2, n, kd, 2, kd as u64));
            let b32 = base_lanes::<f32>(&params(kernel, par));
            seen.insert(check::<f32>(kernel, par, b32 + 5, n, kd, 2, kd as u64));
        }
        assert!(seen.iter().filter(|&&(l, _)| l > 1).count() >= 3, "{kernel:?} {par:?}: {seen:?}");
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

/// The systems `systems` of `b`, as a batch of their own.
fn select<T: Real>(b: &BatchMatrix<T>, systems: &[usize]) -> BatchMatrix<T> {
    let data = systems.iter().flat_map(|&s| b.matrix(s).unwrap().to_vec()).collect();
    BatchMatrix::new(data, systems.len(), b.rows(), b.cols()).unwrap()
}

/// Checks `kernel` under `par` against the reference on a batch whose systems `bad` (system,
/// column, NaN or −1) fail; returns the layout it ran in.
fn check_failures<T: Real>(kernel: Kernel, par: Par, batch: usize, n: usize, kd: usize, bad: &[(usize, usize, bool)]) -> (usize, Tail) {
    let (mut a, b) = random_spd_problem::<T>(batch as u64, batch, n, kd, 1).unwrap();
    for &(s, col, nan) in bad {
        a = poison(&a, s, col, nan);
    }
    let mut want: Vec<PivotFailure> = bad.iter().map(|&(system, column, _)| PivotFailure { system, column }).collect();
    want.sort_by_key(|f| f.system);
    let good: Vec<usize> = (0..batch).filter(|s| !want.iter().any(|f| f.system == *s)).collect();

    let r = params(Kernel::Reference, Par::Seq);
    let part_ref = Cholesky::factor_partial(a.clone(), &r).unwrap();
    assert_eq!(part_ref.failures, want, "reference failures");
    assert_eq!(part_ref.systems, good);
    let l_ref = part_ref.factor.as_ref().map(|f| bits(f.l().as_slice()));
    let b_good = (!good.is_empty()).then(|| select(&b, &good));
    let x_ref = part_ref.factor.as_ref().map(|f| bits(f.solve(b_good.as_ref().unwrap(), &r).unwrap().as_slice()));

    let p = params(kernel, par);
    let lanes = pack_lanes::<T>(batch, kd, &p);
    let what = format!("{kernel:?} {par:?} {} batch={batch} n={n} kd={kd} lanes={lanes} bad={bad:?}", T::NAME);

    // The partial factor: the same failures, and the systems that factored are
    // untouched by their failing neighbours in the pack.
    let part = Cholesky::factor_partial(a.clone(), &p).unwrap();
    assert_eq!(part.failures, want, "{what}");
    assert_eq!(part.systems, good, "{what}");
    assert_eq!(part.factor.as_ref().map(|f| bits(f.l().as_slice())), l_ref, "partial factor, {what}");
    if let (Some(f), Some(bg)) = (&part.factor, &b_good) {
        assert_eq!(Some(bits(f.solve(bg, &p).unwrap().as_slice())), x_ref, "solve with the partial factor, {what}");
    }
    // The whole-batch calls report every failure.
    let npd = Error::NotPositiveDefinite { system: want[0].system, column: want[0].column, failures: want.clone() };
    assert_eq!(Cholesky::factor(&a, &p).unwrap_err(), npd, "{what}");
    // Fused factor + solve: the same error, and the systems that factored solved.
    let mut xf = b.clone();
    assert_eq!(Cholesky::factor_solve(a.clone(), &mut xf, &p).unwrap_err(), npd, "fused, {what}");
    if let Some(x_ref) = &x_ref {
        assert_eq!(&bits(select(&xf, &good).as_slice()), x_ref, "fused x of the good systems, {what}");
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
