//! Reduced run of `examples/scaling` (T = 10 … 1000, the dense solve only for the smallest):
//! memory exponents from the counting allocator, and agreement of the banded layer with the
//! dense normal-equations solve. Its own test binary (one test) because the allocator's
//! counters are global. Times are not asserted (shared CI machines), only that they are
//! measured.

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/scaling/alloc.rs"]
mod alloc;
#[path = "../examples/scaling/measure.rs"]
mod measure;

use banded::Params;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[test]
fn scaling_memory_exponents_and_dense_agreement() {
    let ts = measure::log_space(10, 1000, 9);
    assert_eq!(ts, [10, 18, 32, 56, 100, 178, 316, 562, 1000]);
    // faer's dense Cholesky is generic code, compiled here without optimisation in debug
    // builds: the dense runs stop after a few small T.
    let limits = measure::DenseLimits { max_seconds: 0.3, max_bytes: 1 << 28 };
    let points = measure::sweep(&ts, limits, 0.0, &Params::default(), |_| {}).expect("sweep");
    assert_eq!(points.len(), ts.len());

    let x: Vec<f64> = points.iter().map(|p| p.t as f64).collect();
    let mem: Vec<f64> = points.iter().map(|p| p.banded_bytes as f64).collect();
    let e = common::loglog_slope(&x[4..], &mem[4..]);
    assert!((0.9..1.1).contains(&e), "banded memory exponent {e} ({mem:?})");
    assert!(points.iter().all(|p| p.banded_s > 0.0 && p.banded_s.is_finite()));

    let dense: Vec<(f64, f64, f64)> = points
        .iter()
        .filter_map(|p| p.dense.map(|(_, b)| (p.t as f64, b as f64, p.agreement.unwrap_or(f64::NAN))))
        .collect();
    assert!(dense.len() >= 3, "dense ran for {} lengths", dense.len());
    for &(t, _, agree) in &dense {
        assert!(agree < 1e-9, "T = {t}: banded and dense u differ by {agree}");
    }
    let tail = &dense[dense.len() - 2..];
    let e = common::loglog_slope(&[tail[0].0, tail[1].0], &[tail[0].1, tail[1].1]);
    assert!((1.8..2.2).contains(&e), "dense memory exponent {e}");
}
