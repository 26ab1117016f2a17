//! The batched factor + solve against this machine's dgemm, measured interleaved in one run
//! (the machine's load changes from second to second: a ratio is only meaningful within a
//! round). Each round times one 1024×1024 f64 product (faer, `Par::rayon(0)`: all cores) and
//! then `Cholesky::factor_solve` of 256 systems of order 1000 at each `kd` given (default
//! 1 4 8 12 17 24 33 64; the whole rayon pool); prints per `kd` the median, min and max GFLOP/s
//! over the rounds (`bench solve`'s count, `batch·(n·k·(k+3) + 4·n·k)`), and the median of the
//! per-round ratios to dgemm.
//!
//! `cargo run --release --example gemm_ratio -- [--rounds R] [--batch B] [--kernel avx2|avx512|reference] [kd …]`
//!
//! With `--batch 1` it times one system (the reference kernels), reported in µs as well.

use std::hint::black_box;
use std::time::Instant;

use banded::band::random_spd_problem;
use banded::{Cholesky, Kernel, Params};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds of the fastest of `reps` runs of `f` (after one warm-up).
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut batch, mut kernel, mut kds) = (7, 256, Kernel::Auto, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--batch" => batch = args.next().unwrap().parse().unwrap(),
            "--kernel" => {
                kernel = match args.next().unwrap().as_str() {
                    "avx2" => Kernel::Avx2,
                    "avx512" => Kernel::Avx512,
                    "reference" => Kernel::Reference,
                    "portable" => Kernel::Portable,
                    _ => Kernel::Auto,
                }
            }
            kd => kds.push(kd.parse::<usize>().unwrap()),
        }
    }
    if kds.is_empty() {
        kds = vec![1, 4, 8, 12, 17, 24, 33, 64];
    }
    let n = 1000;
    let p = Params::default()
        .with_check_finite(false)
        .with_kernel(kernel);
    let problems: Vec<_> = kds
        .iter()
        .map(|&kd| random_spd_problem::<f64>(0, batch, n, kd, 1).unwrap())
        .collect();

    let m = 1024;
    let a = Mat::<f64>::from_fn(m, m, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let b = Mat::<f64>::from_fn(m, m, |i, j| ((i * 5 + j) % 13) as f64 - 6.0);
    let mut c = Mat::<f64>::zeros(m, m);
    let gemm_flops = 2.0 * (m * m * m) as f64;

    let mut gemm = Vec::new();
    let mut res: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        vec![(Vec::new(), Vec::new(), Vec::new()); kds.len()];
    for _ in 0..rounds {
        let tg = best_of(5, || {
            matmul(
                c.as_mut(),
                Accum::Replace,
                a.as_ref(),
                b.as_ref(),
                1.0,
                Par::rayon(0),
            )
        });
        let g = gemm_flops / tg / 1e9;
        gemm.push(g);
        for (i, (&kd, (ab, bb))) in kds.iter().zip(&problems).enumerate() {
            let reps = if batch == 1 { 200 } else { 5 };
            let mut inputs: Vec<_> = (0..=reps).map(|_| (ab.clone(), bb.clone())).collect();
            let mut best = f64::INFINITY;
            for (ai, mut xi) in inputs.drain(..) {
                let t = Instant::now();
                let chol = Cholesky::factor_solve(ai, &mut xi, &p).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
                black_box((chol, xi));
            }
            let k = kd.min(n - 1) as f64;
            let flops = batch as f64 * (n as f64 * k * (k + 3.0) + 4.0 * n as f64 * k);
            let gf = flops / best / 1e9;
            res[i].0.push(gf);
            res[i].1.push(gf / g);
            res[i].2.push(best);
        }
    }
    let (gmin, gmax) = (
        gemm.iter().cloned().fold(f64::INFINITY, f64::min),
        gemm.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "cpu={} threads={} rounds={rounds} batch={batch} n={n} kernel={kernel:?}",
        cpu(),
        rayon::current_num_threads()
    );
    println!(
        "dgemm{m} gflops median={:.1} min={gmin:.1} max={gmax:.1}",
        median(&mut gemm.clone())
    );
    for (kd, (gf, ratio, t)) in kds.iter().zip(res.iter_mut()) {
        let (lo, hi) = (
            gf.iter().cloned().fold(f64::INFINITY, f64::min),
            gf.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "kd={kd:3} gflops median={:6.2} min={lo:6.2} max={hi:6.2}  ratio_to_dgemm median={:.3}  time median={:.1}us",
            median(gf),
            median(ratio),
            median(t) * 1e6
        );
    }
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().replace(' ', "_"))
        })
        .unwrap_or_default()
}
