//! Batched factor + solve (one right-hand side) against OpenBLAS's LAPACK `?pbtrf` + `?pbtrs`.
//!
//! Needs the cargo feature `lapack` and the system OpenBLAS (see README, "Benchmarks"):
//! `cargo bench --features lapack --bench lapack`. Groups `lapack_n1000_kd{K}_{dtype}`: the
//! banded solver and LAPACK on the same batch of 256 systems of order 1000. LAPACK runs one
//! system per call (OpenBLAS told to use one thread), the systems spread over the rayon pool
//! (all cores) exactly as the banded solver spreads its work; the ratio of the two times is the
//! speed-up. Both routines return their storage, so freeing it happens outside the timing on
//! both sides. LAPACK's lower band storage `AB(1 + i − j, j)` with `LDAB = kd + 1` is exactly one
//! system of a [`banded::BandBatch`], so no conversion is timed on either side.
//!
//! Throughput is counted in flops, `banded bench solve`'s count (`batch·(n·k·(k+3) + 4·n·k)`
//! with one right-hand side), so criterion's `elem/s` is FLOP/s. Two more kinds of group:
//!
//! - `dgemm_1024_float64`: this machine's peak, measured in the same run: a 1024 × 1024 × 1024 f64
//!   product (`2·1024³` flops) on all cores, with faer (`Par::rayon(0)`) and OpenBLAS's `dgemm`
//!   (told to use as many threads as the rayon pool, then set back to one). The banded groups'
//!   GFLOP/s over this one's is the fraction of dgemm's rate the band solver reaches.
//! - `batch1_n1000_kd{K}_float64`: one system alone (`Cholesky::factor_solve` on a batch of one,
//!   which runs the per-system kernels) against one `dpbtrf` + `dpbtrs` call.

use std::hint::black_box;
use std::os::raw::{c_char, c_int};
use std::time::Duration;

use banded::band::random_spd_problem;
use banded::{BandBatch, BatchMatrix, Cholesky, Params, Real};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

const N: usize = 1000;
const BATCH: usize = 256;

// The Fortran symbols of the reference LAPACK interface as OpenBLAS exports them. Declared here
// (rather than through `lapack-sys` + `openblas-src`) so that the only requirement is the system
// library itself: no build script, no extra crates in the default build. The trailing `usize`
// is gfortran's hidden length of the `uplo` string argument.
#[link(name = "openblas")]
unsafe extern "C" {
    fn dpbtrf_(uplo: *const c_char, n: *const c_int, kd: *const c_int, ab: *mut f64, ldab: *const c_int, info: *mut c_int, uplo_len: usize);
    fn dpbtrs_(
        uplo: *const c_char,
        n: *const c_int,
        kd: *const c_int,
        nrhs: *const c_int,
        ab: *const f64,
        ldab: *const c_int,
        b: *mut f64,
        ldb: *const c_int,
        info: *mut c_int,
        uplo_len: usize,
    );
    fn spbtrf_(uplo: *const c_char, n: *const c_int, kd: *const c_int, ab: *mut f32, ldab: *const c_int, info: *mut c_int, uplo_len: usize);
    fn spbtrs_(
        uplo: *const c_char,
        n: *const c_int,
        kd: *const c_int,
        nrhs: *const c_int,
        ab: *const f32,
        ldab: *const c_int,
        b: *mut f32,
        ldb: *const c_int,
        info: *mut c_int,
        uplo_len: usize,
    );
    fn dgemm_(
        transa: *const c_char,
        transb: *const c_char,
        m: *const c_int,
        n: *const c_int,
        k: *const c_int,
        alpha: *const f64,
        a: *const f64,
        lda: *const c_int,
        b: *const f64,
        ldb: *const c_int,
        beta: *const f64,
        c: *mut f64,
        ldc: *const c_int,
        transa_len: usize,
        transb_len: usize,
    );
    fn openblas_set_num_threads(num_threads: c_int);
}

/// `c ← a·b` for column-major `m × m` matrices with OpenBLAS's `dgemm`.
fn dgemm(m: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    assert!(a.len() == m * m && b.len() == m * m && c.len() == m * m);
    let (mi, no, one, zero) = (m as c_int, b'N' as c_char, 1.0f64, 0.0f64);
    // SAFETY: `a`, `b` and `c` hold `m·m` elements each (asserted) with leading dimension `m`;
    // every scalar argument points at a live local; BLAS keeps no pointer after returning.
    unsafe { dgemm_(&no, &no, &mi, &mi, &mi, &one, a.as_ptr(), &mi, b.as_ptr(), &mi, &zero, c.as_mut_ptr(), &mi, 1, 1) };
}

/// Flops of factor + solve (one right-hand side) of `batch` systems: `bench solve`'s count.
fn flops(batch: usize, n: usize, kd: usize) -> u64 {
    let k = kd.min(n - 1) as u64;
    batch as u64 * (n as u64 * k * (k + 3) + 4 * n as u64 * k)
}

/// `?pbtrf` + `?pbtrs` (lower, one right-hand side) on one system; returns LAPACK's `INFO`s.
trait Lapack: Real {
    fn pbtrf_pbtrs(ab: &mut [Self], n: usize, kd: usize, b: &mut [Self]) -> (c_int, c_int);
}

macro_rules! impl_lapack {
    ($t:ty, $trf:ident, $trs:ident) => {
        impl Lapack for $t {
            fn pbtrf_pbtrs(ab: &mut [$t], n: usize, kd: usize, b: &mut [$t]) -> (c_int, c_int) {
                assert!(ab.len() == n * (kd + 1) && b.len() == n);
                let (n, kd, ldab, one) = (n as c_int, kd as c_int, (kd + 1) as c_int, 1 as c_int);
                let uplo = b'L' as c_char;
                let (mut info_f, mut info_s) = (0, 0);
                // SAFETY: `ab` holds `ldab·n` elements and `b` holds `n` (asserted above); every
                // scalar argument points at a live local; LAPACK keeps no pointer after returning.
                unsafe {
                    $trf(&uplo, &n, &kd, ab.as_mut_ptr(), &ldab, &mut info_f, 1);
                    if info_f == 0 {
                        $trs(&uplo, &n, &kd, &one, ab.as_ptr(), &ldab, b.as_mut_ptr(), &n, &mut info_s, 1);
                    }
                }
                (info_f, info_s)
            }
        }
    };
}
impl_lapack!(f64, dpbtrf_, dpbtrs_);
impl_lapack!(f32, spbtrf_, spbtrs_);

/// `ab`: the batch's band storage ([`BandBatch::as_slice`], copied), `n`, `kd`.
fn lapack_batch<T: Lapack>(ab: &mut [T], n: usize, kd: usize, b: &mut BatchMatrix<T>) {
    let len = n * (kd + 1);
    ab.par_chunks_mut(len).zip(b.as_mut_slice().par_chunks_mut(n)).for_each(|(ab, x)| {
        let info = T::pbtrf_pbtrs(ab, n, kd, x);
        assert_eq!(info, (0, 0));
    });
}

/// Returns the factor so that the caller decides when its storage is freed (criterion drops
/// a routine's output outside the timed region; freeing 10–130 MB is not part of a solve).
/// `Cholesky::factor_solve`: factor and solve in one pass (LAPACK's `pbsv` is `pbtrf` + `pbtrs`).
fn banded_batch<T: Real>(a: BandBatch<T>, b: &mut BatchMatrix<T>, p: &Params) -> Cholesky<T> {
    Cholesky::factor_solve(a, b, p).unwrap()
}

fn group<T: Lapack>(c: &mut Criterion, kd: usize) {
    let (a, b) = random_spd_problem::<T>(0, BATCH, N, kd, 1).unwrap();
    let p = Params::default().with_check_finite(false);
    // Sanity: both sides solve the same systems to rounding.
    let (mut al, mut xl, mut xb) = (a.as_slice().to_vec(), b.clone(), b.clone());
    lapack_batch(&mut al, N, kd, &mut xl);
    drop(banded_batch(a.clone(), &mut xb, &p));
    let tol = T::from_f64(1e3) * T::epsilon();
    for (u, v) in xl.as_slice().iter().zip(xb.as_slice()) {
        assert!((*u - *v).abs() <= tol * (T::one() + u.abs()), "LAPACK and banded disagree: {u} vs {v}");
    }

    let mut g = c.benchmark_group(format!("lapack_n{N}_kd{kd}_{}", T::NAME));
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(flops(BATCH, N, kd)));
    g.bench_function(BenchmarkId::new("banded", BATCH), |bench| {
        bench.iter_batched(
            || (a.clone(), b.clone()),
            |(a, mut x)| {
                let chol = banded_batch(a, &mut x, &p);
                black_box((chol, x))
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function(BenchmarkId::new("lapack_pbtrf_pbtrs", BATCH), |bench| {
        bench.iter_batched(
            || (a.as_slice().to_vec(), b.clone()),
            |(mut ab, mut x)| {
                lapack_batch(&mut ab, N, kd, &mut x);
                black_box((ab, x))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `dgemm_1024_float64`: the machine's peak in the same run (see the module docs).
fn gemm_group(c: &mut Criterion) {
    const M: usize = 1024;
    let a = faer::Mat::<f64>::from_fn(M, M, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let b = faer::Mat::<f64>::from_fn(M, M, |i, j| ((i * 5 + j) % 13) as f64 - 6.0);
    let mut out = faer::Mat::<f64>::zeros(M, M);
    // The same matrices column-major for BLAS.
    let col_major = |m: &faer::Mat<f64>| (0..M * M).map(|k| m[(k % M, k / M)]).collect::<Vec<_>>();
    let (av, bv, mut cv) = (col_major(&a), col_major(&b), vec![0.0; M * M]);
    let mut g = c.benchmark_group(format!("dgemm_{M}_{}", f64::NAME));
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(2 * (M * M * M) as u64));
    let threads = rayon::current_num_threads();
    g.bench_function(BenchmarkId::new("faer", threads), |bench| {
        bench.iter(|| faer::linalg::matmul::matmul(out.as_mut(), faer::Accum::Replace, a.as_ref(), b.as_ref(), 1.0, faer::Par::rayon(0)))
    });
    // SAFETY: a plain setter of OpenBLAS's global thread count; set back to one below.
    unsafe { openblas_set_num_threads(threads as c_int) };
    g.bench_function(BenchmarkId::new("openblas", threads), |bench| bench.iter(|| dgemm(M, &av, &bv, &mut cv)));
    // SAFETY: as above.
    unsafe { openblas_set_num_threads(1) };
    g.finish();
    // Sanity: both products agree.
    let d = cv.iter().zip(col_major(&out)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(d <= 1e-9, "faer and OpenBLAS dgemm disagree by {d}");
}

/// `batch1_n1000_kd{kd}_float64`: one system alone, banded against one `dpbtrf` + `dpbtrs` call.
fn batch1_group(c: &mut Criterion, kd: usize) {
    let (a, b) = random_spd_problem::<f64>(0, 1, N, kd, 1).unwrap();
    let p = Params::default().with_check_finite(false);
    let mut g = c.benchmark_group(format!("batch1_n{N}_kd{kd}_{}", f64::NAME));
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(flops(1, N, kd)));
    g.bench_function("banded", |bench| {
        bench.iter_batched(
            || (a.clone(), b.clone()),
            |(a, mut x)| {
                let chol = banded_batch(a, &mut x, &p);
                black_box((chol, x))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("lapack_pbtrf_pbtrs", |bench| {
        bench.iter_batched(
            || (a.as_slice().to_vec(), b.as_slice().to_vec()),
            |(mut ab, mut x)| {
                assert_eq!(f64::pbtrf_pbtrs(&mut ab, N, kd, &mut x), (0, 0));
                black_box((ab, x))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn lapack(c: &mut Criterion) {
    // One thread per LAPACK call: the parallelism is over systems, on both sides.
    // SAFETY: a plain setter of OpenBLAS's global thread count, called before any LAPACK call.
    unsafe { openblas_set_num_threads(1) };
    gemm_group(c);
    for kd in [1, 4, 17, 64] {
        group::<f64>(c, kd);
        group::<f32>(c, kd);
    }
    for kd in [8, 17, 64] {
        batch1_group(c, kd);
    }
}

criterion_group!(benches, lapack);
criterion_main!(benches);
