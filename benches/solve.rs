//! Batched factor + solve (one right-hand side) against dense faer on the same systems.
//!
//! `cargo bench --bench solve`. Groups `solve_n1000_kd{K}`: the banded solver on a batch of 256
//! systems of order 1000 (f64 and f32; fused `factor_solve`, and `factor_in_place` +
//! `solve_in_place` as `banded_separate`), and dense faer (Cholesky + solve of the same matrices
//! expanded to dense, one system per rayon task) on the first 8 systems; compare per-system
//! times (the medians over 256 and 8 systems): dense costs n³/3 flops per system, the band
//! n·kd·(kd+3).
//!
//! Roofline (`banded::roofline`): the banded benchmarks' throughput is the bytes that must cross
//! memory (`roofline::factor_solve`, or `factor` + `solve` for `banded_separate`) in decimal
//! GB/s; before the first of them in a group runs, one line `roofline …` gives this machine's
//! copy bandwidth at their working set and its gemm rate for the element type, measured then
//! (same process, all threads), and each one's roofline time: roofline fraction = roofline
//! time / criterion's median. Dense faer's throughput stays in systems per second.
//!
//! Group `checks_n1000`: what `Params::check_finite` (the default) costs: the finiteness scan of
//! a 256 × 1000 f64 right-hand side alone, and `solve_in_place` at kd 1 with the checks (the
//! input scan before, the result scan for `Error::Overflow` after) and without
//! (`cargo bench --bench solve -- checks`).
//!
//! Group `long_n1000000_kd4`: one system of order 10⁶ (f64, `factor_solve`), sequential
//! (`Partitions::Off`) and split in chunks (`Partitions::Auto`: 1024 chunks), on one thread and
//! on all (`cargo bench --bench solve -- long`); see `docs/ARCHITECTURE.md`, "One long system".

use std::hint::black_box;
use std::time::Duration;

use std::cell::Cell;

use banded::band::random_spd_problem;
use banded::roofline::{self, BandShape, Cost, Peak};
use banded::{BandBatch, BatchMatrix, Cholesky, Par, Params, Partitions, Real};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rayon::prelude::*;

const N: usize = 1000;
const BATCH: usize = 256;
const DENSE_BATCH: usize = 8;

fn configure(c: &mut Criterion, kd: usize, systems: usize) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(format!("solve_n{N}_kd{kd}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(systems as u64));
    g
}

/// Whether criterion measures (`cargo bench`), rather than running each benchmark once as a test
/// (`cargo test --benches`, `-- --test`), where no roofline is measured.
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Prints, the first time it is called (`printed`), the roofline of `costs`: this machine's
/// peak for `T` measured now (all threads of the global pool, the bandwidth at the first cost's
/// working set; `banded::roofline::Peak`) and each cost's roofline time.
fn print_roofline<T: Real>(printed: &Cell<bool>, group: &str, costs: &[(&str, Cost)]) {
    if printed.replace(true) || !benchmarking() {
        return;
    }
    let ws = costs.first().map_or(0.0, |(_, c)| c.working_set);
    match Peak::measure::<T>(ws as usize, Par::rayon(0)) {
        Ok(peak) => {
            let each: Vec<String> = costs
                .iter()
                .map(|(name, c)| format!("{name} {:.1} MB {:.1} MFLOP roofline {:.3} ms", c.bytes / 1e6, c.flops / 1e6, c.time_floor(&peak) * 1e3))
                .collect();
            println!(
                "roofline {group} {}: copy {:.1} GB/s at {:.1} MB, gemm {:.1} GFLOP/s, {} threads; {}",
                T::NAME,
                peak.bytes_per_s / 1e9,
                peak.working_set as f64 / 1e6,
                peak.flops_per_s / 1e9,
                peak.threads,
                each.join("; ")
            );
        }
        Err(e) => println!("roofline {group} {}: not measured: {e}", T::NAME),
    }
}

/// Times `Cholesky::factor_solve` of copies of `a` and `b` made outside the timed region.
fn time_factor_solve<T: Real>(bench: &mut criterion::Bencher<'_>, a: &BandBatch<T>, b: &BatchMatrix<T>, p: &Params) {
    bench.iter_batched(
        || (a.clone(), b.clone()),
        |(a, mut x)| {
            let chol = Cholesky::factor_solve(a, &mut x, p).unwrap();
            // Returned, so criterion frees both outside the timed region.
            black_box((chol, x))
        },
        BatchSize::LargeInput,
    )
}

fn banded<T: Real>(c: &mut Criterion, kd: usize) {
    let (a, b) = random_spd_problem::<T>(0, BATCH, N, kd, 1).unwrap();
    let p = Params::default().with_check_finite(false);
    let shape = BandShape::new::<T>(BATCH, N, kd);
    let (fused, separate) = (roofline::factor_solve(shape, 1), roofline::factor(shape) + roofline::solve(shape, 1));
    let (fused_name, separate_name) = (format!("banded_{}", T::NAME), format!("banded_separate_{}", T::NAME));
    let costs = [(fused_name.as_str(), fused), (separate_name.as_str(), separate)];
    let printed = Cell::new(false);
    let group = format!("solve_n{N}_kd{kd}");
    let mut g = configure(c, kd, BATCH);
    // `Cholesky::factor_solve`: the solve fused into the factorization's pass.
    g.throughput(Throughput::BytesDecimal(fused.bytes as u64));
    g.bench_function(BenchmarkId::new(&fused_name, BATCH), |bench| {
        print_roofline::<T>(&printed, &group, &costs);
        time_factor_solve(bench, &a, &b, &p)
    });
    // `factor_in_place`, then `solve_in_place`: the factor read again by both substitutions.
    g.throughput(Throughput::BytesDecimal(separate.bytes as u64));
    g.bench_function(BenchmarkId::new(&separate_name, BATCH), |bench| {
        print_roofline::<T>(&printed, &group, &costs);
        bench.iter_batched(
            || (a.clone(), b.clone()),
            |(a, mut x)| {
                let chol = Cholesky::factor_in_place(a, &p).unwrap();
                chol.solve_in_place(&mut x, &p).unwrap();
                black_box((chol, x))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn dense(c: &mut Criterion, kd: usize) {
    let (a, b) = random_spd_problem::<f64>(0, DENSE_BATCH, N, kd, 1).unwrap();
    let mats: Vec<(Mat<f64>, Mat<f64>)> = (0..DENSE_BATCH)
        .map(|s| (Mat::from_fn(N, N, |i, j| a.get(s, i, j).unwrap()), Mat::from_fn(N, 1, |i, _| b.get(s, i, 0).unwrap())))
        .collect();
    let mut g = configure(c, kd, DENSE_BATCH);
    g.bench_function(BenchmarkId::new("dense_faer_float64", DENSE_BATCH), |bench| {
        bench.iter(|| {
            let xs: Vec<Mat<f64>> = mats.par_iter().map(|(m, r)| m.llt(Side::Lower).unwrap().solve(r)).collect();
            black_box(xs)
        })
    });
    g.finish();
}

fn checks(c: &mut Criterion) {
    let (a, b) = random_spd_problem::<f64>(0, BATCH, N, 1, 1).unwrap();
    let p = Params::default();
    let chol = Cholesky::factor(&a, &p).unwrap();
    let mut g = c.benchmark_group(format!("checks_n{N}"));
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g.bench_function("scan_256x1000_f64", |bench| bench.iter(|| black_box(&b).check_finite("rhs").unwrap()));
    for (name, params) in [("solve_kd1_checked", p), ("solve_kd1_unchecked", p.with_check_finite(false))] {
        g.bench_function(name, |bench| {
            bench.iter_batched_ref(|| b.clone(), |x: &mut BatchMatrix<f64>| chol.solve_in_place(x, &params).unwrap(), BatchSize::LargeInput)
        });
    }
    g.finish();
}

/// One long system, sequential and partitioned, on one thread and on all.
fn long(c: &mut Criterion) {
    let (n, kd) = (1_000_000, 4);
    let (a, b) = random_spd_problem::<f64>(0, 1, n, kd, 1).unwrap();
    let mut g = c.benchmark_group(format!("long_n{n}_kd{kd}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (name, parts) in [("sequential", Partitions::Off), ("partitioned", Partitions::Auto)] {
        for par in [Par::Seq, Par::rayon(0)] {
            let p = Params::default().with_check_finite(false).with_partitions(parts).with_par(par);
            let threads = if par == Par::Seq { "1thread".to_string() } else { "all_threads".to_string() };
            g.bench_function(BenchmarkId::new(name, threads), |bench| time_factor_solve(bench, &a, &b, &p));
        }
    }
    g.finish();
}

fn solve(c: &mut Criterion) {
    // One system per rayon task: each dense factorisation runs sequentially.
    faer::set_global_parallelism(faer::Par::Seq);
    for kd in [1, 4, 17, 64] {
        banded::<f64>(c, kd);
        banded::<f32>(c, kd);
        dense(c, kd);
    }
}

criterion_group!(benches, checks, solve, long);
criterion_main!(benches);
