//! Selected inversion (`Cholesky::inverse_band`) against the factorization it starts from.
//!
//! `cargo bench --bench inverse`. Groups `inverse_n1000_kd{K}` (batch 256, f64 and f32): the
//! factorization alone (`factor_in_place`), `inverse_band` from that factor (and
//! `inverse_band_into` one reused output, which pays no fresh pages), and
//! `logdet_backward` (the inverse band scaled: the log-determinant's gradient). The goal is
//! `inverse_band` ≤ 2× `factor_in_place` (it does twice the flops: `2·n·kd²` against
//! `n·kd·(kd+3)`). Dense faer's inverse of the first 2 systems (`n³` flops each, after its
//! Cholesky) is the peer a user without selected inversion would call.

use std::hint::black_box;
use std::time::Duration;

use banded::band::random_spd_problem;
use banded::{Cholesky, Params, Real};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

const N: usize = 1000;
const BATCH: usize = 256;
const DENSE_BATCH: usize = 2;

fn group<T: Real>(c: &mut Criterion, kd: usize) {
    let (a, _) = random_spd_problem::<T>(0, BATCH, N, kd, 1).unwrap();
    let p = Params::default().with_check_finite(false);
    let chol = Cholesky::factor(&a, &p).unwrap();
    let mut g = c.benchmark_group(format!("inverse_n{N}_kd{kd}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(BenchmarkId::new(format!("factor_{}", T::NAME), BATCH), |bench| {
        bench.iter_batched(|| a.clone(), |a| black_box(Cholesky::factor_in_place(a, &p).unwrap()), BatchSize::LargeInput)
    });
    g.bench_function(BenchmarkId::new(format!("inverse_band_{}", T::NAME), BATCH), |bench| {
        bench.iter(|| black_box(chol.inverse_band(&p).unwrap()))
    });
    // Into one reused output: no fresh pages (the factorization above also runs in storage
    // allocated outside the timing).
    let mut out = chol.inverse_band(&p).unwrap();
    g.bench_function(BenchmarkId::new(format!("inverse_band_into_{}", T::NAME), BATCH), |bench| {
        bench.iter(|| chol.inverse_band_into(black_box(&mut out), &p).unwrap())
    });
    let ones = vec![T::one(); BATCH];
    g.bench_function(BenchmarkId::new(format!("logdet_backward_{}", T::NAME), BATCH), |bench| {
        bench.iter(|| black_box(chol.logdet_backward(&ones, &p).unwrap()))
    });
    g.finish();
}

fn dense(c: &mut Criterion, kd: usize) {
    let (a, _) = random_spd_problem::<f64>(0, DENSE_BATCH, N, kd, 1).unwrap();
    let mats: Vec<Mat<f64>> = (0..DENSE_BATCH).map(|s| Mat::from_fn(N, N, |i, j| a.get(s, i, j).unwrap())).collect();
    let mut g = c.benchmark_group(format!("inverse_n{N}_kd{kd}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(DENSE_BATCH as u64));
    g.bench_function(BenchmarkId::new("dense_faer_inverse_float64", DENSE_BATCH), |bench| {
        bench.iter(|| black_box(mats.iter().map(|m| m.llt(Side::Lower).unwrap().inverse()).collect::<Vec<_>>()))
    });
    g.finish();
}

fn inverse(c: &mut Criterion) {
    for kd in [1, 4, 17, 64] {
        group::<f64>(c, kd);
        group::<f32>(c, kd);
        dense(c, kd);
    }
}

criterion_group!(benches, inverse);
criterion_main!(benches);
