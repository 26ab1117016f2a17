//! The packed-input API against the band layout: what the transposes into and out of the
//! kernels' lane-interleaved layout cost.
//!
//! `cargo bench --bench packed`. Groups `packed_n1000_kd{K}` (batch 256, f64, one right-hand
//! side): `band` = `factor_in_place` + `solve_in_place` of a `BandBatch` and a `BatchMatrix`;
//! `packed` = `factor_packed` + `solve_packed_in_place` of the same batch already in the packed
//! layout (`PackedBandBatch`, `PackedBatchMatrix`). Same bits; the difference is the transposes.

use std::hint::black_box;
use std::time::Duration;

use banded::band::random_spd_problem;
use banded::{Cholesky, PackedBandBatch, PackedBatchMatrix, Params};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const N: usize = 1000;
const BATCH: usize = 256;

fn packed(c: &mut Criterion) {
    for kd in [1, 4, 17] {
        let (a, b) = random_spd_problem::<f64>(0, BATCH, N, kd, 1).unwrap();
        let p = Params::default().with_check_finite(false);
        let lanes = PackedBandBatch::<f64>::lanes_for(BATCH, kd, &p);
        let (ap, bp) = (PackedBandBatch::from_band(&a, lanes).unwrap(), PackedBatchMatrix::from_matrix(&b, lanes).unwrap());
        let mut g = c.benchmark_group(format!("packed_n{N}_kd{kd}"));
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("band", BATCH), |bench| {
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
        g.bench_function(BenchmarkId::new("packed", BATCH), |bench| {
            bench.iter_batched(
                || (ap.clone(), bp.clone()),
                |(a, mut x)| {
                    let chol = Cholesky::factor_packed(a, &p).unwrap();
                    chol.solve_packed_in_place(&mut x, &p).unwrap();
                    black_box((chol, x))
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, packed);
criterion_main!(benches);
