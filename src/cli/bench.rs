//! `banded bench …`: timings on generated problems.

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::time::Instant;

use crate::band::random_spd_problem;
#[cfg(feature = "cuda")]
use crate::cuda::{CudaBackend, DeviceCholesky};
use crate::roofline::{self, BandShape, Cost, Peak};
use crate::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Par, Params, Partitions, Result};

use super::device::{Backend, DeviceArg};
use super::io::{Dtype, Elem};

/// Arguments of `banded bench solve`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Time factor+solve of a batch of random SPD band systems",
    long_about = "Time factor+solve of a batch of random SPD band systems.

The systems are generated from --seed: off-diagonal band entries uniform in [-1, 1], each \
diagonal entry 1 + the sum of the absolute off-diagonal entries of its row (strictly \
diagonally dominant, hence SPD); right-hand sides uniform in [-1, 1]. After one untimed \
warm-up, Cholesky factor + solve of the whole batch runs --reps times (inputs copied before \
the clock starts, finiteness checks off): fused into one pass over the factor \
(Cholesky::factor_solve), or with --separate as factor_in_place then solve_in_place. One line \
is printed:

  bench=solve n=.. kd=.. kd_eff=.. batch=.. nrhs=.. dtype=.. mode=fused|separate kernel=.. threads=.. \
partitions=.. reps=.. seed=.. median_s=.. min_s=.. gflops=.. bytes=.. flops=.. ws_bytes=.. bw_gbs=.. gemm_gflops=.. \
roofline_s=.. roofline_frac=..

gflops = flops / median_s / 1e9, flops = batch * (n*k*(k+3) + 4*n*k*nrhs) with k = kd_eff = \
min(kd, n-1), the effective bandwidth (a band wider than the matrix is stored and counted as \
k = n-1). kd = 0 (diagonal) counts 0 flops.

The roofline (banded::roofline): bytes = what must cross memory, per system n*(kd_eff+1) \
elements of band and n*nrhs of right-hand sides: fused (roofline::factor_solve) the band read, \
the factor written, the right-hand sides read, the solutions written; separate (roofline::factor \
+ roofline::solve) also the factor read again. ws_bytes = the working set (band + right-hand \
sides). After the timed runs, in the same process and rayon pool (--threads): bw_gbs = a \
parallel scaled copy of ws_bytes (read + written) in GB/s, gemm_gflops = a 1024^3 matrix product \
of --dtype in GFLOP/s (about 1 s for both); roofline_s = max(flops / (gemm_gflops*1e9), bytes / \
(bw_gbs*1e9)), roofline_frac = roofline_s / median_s (1 = at the roof). --no-roofline skips the \
measurement: the line then ends at ws_bytes.

With --device cuda[:N] (or emulator) the systems are generated on the host and uploaded once; \
each run factors a copy of the band made on the device before the clock starts \
(DeviceCholesky::factor_in_place, then solve_in_place on a copy of the right-hand sides: two \
launches, so mode=separate), timed with CUDA events (wall clock on the emulator). The line is \
the same but for kernel=.., which becomes device=.. (e.g. device=cuda:0(NVIDIA_H200,sm_90)), \
threads=1 (one host thread drives the device), and no roofline measurement (the line ends at \
ws_bytes)."
)]
pub struct BenchSolveArgs {
    /// Order of each matrix
    #[arg(long)]
    pub n: NonZeroUsize,
    /// Lower bandwidth (values >= n are treated as n-1)
    #[arg(long)]
    pub kd: usize,
    /// Right-hand sides per system
    #[arg(long, default_value = "1")]
    pub nrhs: NonZeroUsize,
    /// Time factor_in_place then solve_in_place (two passes) instead of the fused factor_solve
    /// (a CUDA device always does)
    #[arg(long)]
    pub separate: bool,
    // --batch, --dtype, --reps, --threads, --seed, --kernel, --no-roofline, --device (help text
    // on the fields of `BenchArgs`).
    #[command(flatten)]
    pub common: BenchArgs,
}

/// The flags of every `banded bench …` command.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Number of systems
    #[arg(long)]
    pub batch: NonZeroUsize,
    /// Element type
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// Timed repetitions (the median is reported)
    #[arg(long, default_value = "10")]
    pub reps: NonZeroUsize,
    /// Threads of the rayon pool the batch runs on (CPU only) [default: all cores]
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Seed of the generated inputs
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The kernel (CPU only; `reference` and `portable` give the same bits on every machine, the
    /// others fuse multiply–adds and are deterministic on this one; `auto` picks the fastest for
    /// the shape and CPU; one this CPU lacks runs as `portable`) [default: auto]
    #[arg(long, value_enum)]
    pub kernel: Option<Kernel>,
    /// Split each system's factorization into chunks that run in parallel, one long system on
    /// every core (CPU only): `auto` (banded::band::partitions: long systems in batches below
    /// one pack), `off` (sequential), or a count of chunks [default: auto]. The line reports
    /// the count used as partitions=.. (1: not split)
    #[arg(long, value_parser = parse_partitions)]
    pub partitions: Option<Partitions>,
    /// Skip the roofline measurement (bandwidth and matrix-product rate, about 1 s): the line
    /// then ends with the byte and flop counts (a device always skips it)
    #[arg(long)]
    pub no_roofline: bool,
    // --device (help text on `DeviceArg`).
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `--partitions`: `auto`, `off` or a count ≥ 1.
fn parse_partitions(s: &str) -> std::result::Result<Partitions, String> {
    match s {
        "auto" => Ok(Partitions::Auto),
        "off" => Ok(Partitions::Off),
        _ => match s.parse::<usize>() {
            Ok(p) if p >= 1 => Ok(Partitions::Count(p)),
            _ => Err(format!("expected auto, off or a count >= 1, got {s:?}")),
        },
    }
}

impl BenchArgs {
    /// The chunks each system of `batch` systems of order `n`, bandwidth `kd` and `--dtype` is
    /// factored in under `params` (1: not split), for the result line.
    pub fn parts(&self, params: &Params, n: usize, kd: usize) -> usize {
        let batch = self.batch.get();
        match self.dtype {
            Dtype::F32 => crate::band::partitions::<f32>(batch, n, kd, params),
            Dtype::F64 => crate::band::partitions::<f64>(batch, n, kd, params),
        }
    }

    /// `--kernel` (default `auto`).
    pub fn kernel(&self) -> Kernel {
        self.kernel.unwrap_or(Kernel::Auto)
    }

    /// `--kernel` as spelled on the command line (`auto`, `avx2`, …).
    pub fn kernel_name(&self) -> String {
        use clap::ValueEnum;
        let kernel = self.kernel();
        kernel.to_possible_value().map_or_else(|| format!("{kernel:?}"), |v| v.get_name().to_string())
    }

    /// Opens `--device`: on the CPU, the rayon pool of `--threads` ([`thread_pool`](Self::thread_pool)).
    ///
    /// Errors: those of [`Device::open`](super::device::Device::open) and of
    /// [`thread_pool`](Self::thread_pool); [`Error::InvalidArgument`] for `--threads` or
    /// `--kernel` with a device other than the CPU (they set up the CPU's work only), and for
    /// `--reps` above [`MAX_REPS`].
    pub fn runner(&self) -> Result<Runner> {
        if self.reps.get() > MAX_REPS {
            let reason = format!("at most {MAX_REPS} timed runs, got {}", self.reps);
            return Err(Error::InvalidArgument { arg: "--reps", reason });
        }
        match self.device.open()? {
            Backend::Cpu => {
                let (pool, params, threads) = self.thread_pool()?;
                Ok(Runner::Cpu { pool, params, threads })
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => {
                let device = self.device.device;
                if self.threads.is_some() {
                    let reason = format!("sets the CPU's thread pool; not used with --device {device}");
                    return Err(Error::InvalidArgument { arg: "--threads", reason });
                }
                if self.kernel.is_some() {
                    let reason = format!("chooses the CPU's kernel; not used with --device {device}");
                    return Err(Error::InvalidArgument { arg: "--kernel", reason });
                }
                if self.partitions.is_some() {
                    let reason = format!("splits systems on the CPU; the CUDA backend does not split them yet (--device {device})");
                    return Err(Error::InvalidArgument { arg: "--partitions", reason });
                }
                Ok(Runner::Cuda(gpu))
            }
        }
    }

    /// The rayon pool the benchmark runs in (`--threads`, default all cores), the parameters
    /// that use it (finiteness checks off: the generated inputs are finite), and its thread
    /// count.
    ///
    /// Errors: [`Error::InvalidArgument`] for more than [`MAX_THREADS`] threads (the OS would be
    /// asked for each of them before the first run), or a pool that cannot start.
    pub fn thread_pool(&self) -> Result<(rayon::ThreadPool, Params, usize)> {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let threads = self.threads.map_or(cores, NonZeroUsize::get);
        if threads > MAX_THREADS {
            let reason = format!("at most {MAX_THREADS} threads, got {threads} (this machine has {cores} cores)");
            return Err(Error::InvalidArgument { arg: "--threads", reason });
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| Error::InvalidArgument {
            arg: "--threads",
            reason: format!("cannot start {threads} threads: {e}"),
        })?;
        let params = Params::default()
            .with_par(Par::rayon(threads))
            .with_check_finite(false)
            .with_kernel(self.kernel())
            .with_partitions(self.partitions.unwrap_or_default());
        Ok((pool, params, threads))
    }
}

/// Where a benchmark runs ([`BenchArgs::runner`]), with what it needs there.
pub enum Runner {
    /// The CPU: the rayon pool of `--threads`, the parameters that use it (finiteness checks
    /// off), its thread count.
    Cpu {
        /// The pool.
        pool: rayon::ThreadPool,
        /// Parameters running on `pool`.
        params: Params,
        /// `pool`'s thread count.
        threads: usize,
    },
    /// A CUDA device or the emulator.
    #[cfg(feature = "cuda")]
    Cuda(CudaBackend),
}

impl Runner {
    /// Runs `f` in the CPU's pool (directly on a device, whose work is queued by this thread).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Runner::Cpu { pool, .. } => pool.install(f),
            #[cfg(feature = "cuda")]
            Runner::Cuda(_) => f(),
        }
    }

    /// Whether this is the CPU.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Runner::Cpu { .. })
    }

    /// The result line's roofline fields for `cost`, the work of what ran in `median` seconds
    /// of the median run: `bytes=… flops=… ws_bytes=…` (the counts), then on the CPU, unless
    /// `--no-roofline`, `bw_gbs=… gemm_gflops=… roofline_s=… roofline_frac=…` from a [`Peak`]
    /// measured now, in this runner's pool and on its threads, at the working set of `cost`
    /// and for `--dtype`.
    ///
    /// Errors: [`Error::InvalidArgument`] if the measurement's buffers cannot be allocated.
    pub fn roofline_fields(&self, common: &BenchArgs, cost: &Cost, median: f64) -> Result<String> {
        let counts = format!("bytes={:.0} flops={:.0} ws_bytes={:.0}", cost.bytes, cost.flops, cost.working_set);
        let par = match self {
            Runner::Cpu { params, .. } if !common.no_roofline => params.par(),
            _ => return Ok(counts),
        };
        // Saturating: a working set beyond `usize` is measured at the largest size anyway.
        let working_set = cost.working_set as usize;
        let peak = self.install(|| match common.dtype {
            Dtype::F32 => Peak::measure::<f32>(working_set, par),
            Dtype::F64 => Peak::measure::<f64>(working_set, par),
        })?;
        Ok(format!(
            "{counts} bw_gbs={:.3} gemm_gflops={:.3} roofline_s={:.9} roofline_frac={:.6}",
            peak.bytes_per_s / 1e9,
            peak.flops_per_s / 1e9,
            cost.time_floor(&peak),
            cost.fraction(&peak, median)
        ))
    }

    /// The result line's fields that say where and how it ran: `kernel=… threads=…
    /// partitions=…` on the CPU (the chunks per system of order `n` and bandwidth `kd`),
    /// `device=… threads=1 partitions=1` on a device (its [`CudaBackend::describe`] without
    /// spaces, e.g. `device=cuda:0(NVIDIA_H200,sm_90)`, so that the line still splits on
    /// whitespace).
    pub fn fields(&self, common: &BenchArgs, n: usize, kd: usize) -> String {
        match self {
            Runner::Cpu { threads, params, .. } => format!("kernel={} threads={threads} partitions={}", common.kernel_name(), common.parts(params, n, kd)),
            #[cfg(feature = "cuda")]
            Runner::Cuda(gpu) => {
                let device = gpu.describe().replace(" (", "(").replace(", ", ",");
                format!("device={} threads=1 partitions=1", device.split_whitespace().collect::<Vec<_>>().join("_"))
            }
        }
    }
}

/// The most `--threads` a benchmark starts (oversubscribing a large machine 4×, and no more).
pub const MAX_THREADS: usize = 1024;

/// The most `--reps`: the timings are kept to take their median.
pub const MAX_REPS: usize = 1_000_000;

/// One untimed warm-up run, then `reps` timed ones: `run` returns the seconds of one run.
pub fn warm_then_time(reps: usize, mut run: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    run()?;
    (0..reps).map(|_| run()).collect()
}

/// Median and minimum of a benchmark's timings, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timings {
    /// The median (see [`median`]).
    pub median: f64,
    /// The minimum (+∞ for no timings).
    pub min: f64,
}

impl Timings {
    /// Summarises `times` (seconds per run).
    pub fn of(times: &[f64]) -> Self {
        Self { median: median(times), min: times.iter().copied().fold(f64::INFINITY, f64::min) }
    }
}

/// Prints a benchmark's result line on stdout.
pub fn print_line(line: &str) -> Result<()> {
    writeln!(std::io::stdout(), "{line}").map_err(|e| Error::Io { path: "<stdout>".into(), reason: e.to_string() })
}

/// Runs `banded bench solve`.
pub fn solve(args: &BenchSolveArgs) -> Result<()> {
    let common = &args.common;
    let runner = common.runner()?;
    let times = runner.install(|| match common.dtype {
        Dtype::F32 => time_solve::<f32>(args, &runner),
        Dtype::F64 => time_solve::<f64>(args, &runner),
    })?;
    let (n, batch, nrhs) = (args.n.get(), common.batch.get(), args.nrhs.get());
    let kd_eff = args.kd.min(n - 1);
    let Timings { median, min } = Timings::of(&times);
    let separate = args.separate || !runner.is_cpu();
    let cost = solve_cost(BandShape { batch, n, kd: kd_eff, elem: common.dtype.size() }, nrhs, separate);
    let gflops = if median > 0.0 { cost.flops / median / 1e9 } else { 0.0 };
    let roofline = runner.roofline_fields(common, &cost, median)?;
    print_line(&format!(
        "bench=solve n={n} kd={} kd_eff={kd_eff} batch={batch} nrhs={nrhs} dtype={} mode={} {} reps={} \
         seed={} median_s={median:.9} min_s={min:.9} gflops={gflops:.3} {roofline}",
        args.kd,
        common.dtype.short(),
        if separate { "separate" } else { "fused" },
        runner.fields(common, n, kd_eff),
        common.reps,
        common.seed
    ))
}

/// The work `banded bench solve` times on `shape` (stored bandwidth `kd_eff`): the fused
/// [`roofline::factor_solve`], or with `separate` [`roofline::factor`] then
/// [`roofline::solve`] (the factor written, then read again). Its flops are
/// `batch·(n·k·(k+3) + 4·n·k·nrhs)` either way.
pub fn solve_cost(shape: BandShape, nrhs: usize, separate: bool) -> Cost {
    if separate { roofline::factor(shape) + roofline::solve(shape, nrhs) } else { roofline::factor_solve(shape, nrhs) }
}

/// Median of a non-empty list (mean of the middle two for an even count); 0 if empty.
pub fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    match t.len() {
        0 => 0.0,
        len if len % 2 == 1 => t[len / 2],
        len => 0.5 * (t[len / 2 - 1] + t[len / 2]),
    }
}

/// One warm-up, then `reps` timed factor+solve runs; seconds per run.
fn time_solve<T: Elem>(args: &BenchSolveArgs, runner: &Runner) -> Result<Vec<f64>> {
    let (n, batch, nrhs) = (args.n.get(), args.common.batch.get(), args.nrhs.get());
    let kd = args.kd.min(n - 1);
    let (a, b) = random_spd_problem::<T>(args.common.seed, batch, n, kd, nrhs)?;
    let reps = args.common.reps.get();
    match runner {
        Runner::Cpu { params, .. } => time_solve_cpu(args.separate, &a, &b, params, reps),
        #[cfg(feature = "cuda")]
        Runner::Cuda(gpu) => time_solve_cuda(gpu, &a, &b, reps),
    }
}

/// On the CPU: inputs copied before the clock starts, fused or separate.
fn time_solve_cpu<T: Elem>(separate: bool, a: &BandBatch<T>, b: &BatchMatrix<T>, params: &Params, reps: usize) -> Result<Vec<f64>> {
    warm_then_time(reps, || {
        let (a_run, mut x) = (a.clone(), b.clone());
        let start = Instant::now();
        let chol = if separate {
            let chol = Cholesky::factor_in_place(a_run, params)?;
            chol.solve_in_place(&mut x, params)?;
            chol
        } else {
            Cholesky::factor_solve(a_run, &mut x, params)?
        };
        let elapsed = start.elapsed().as_secs_f64();
        drop((chol, x));
        Ok(elapsed)
    })
}

/// On a device: the inputs uploaded once; each run copies them on the device before the clock
/// starts (the factor and the solve overwrite their inputs), then factors and solves, timed by
/// [`CudaBackend::time_ms`].
#[cfg(feature = "cuda")]
fn time_solve_cuda<T: Elem>(gpu: &CudaBackend, a: &BandBatch<T>, b: &BatchMatrix<T>, reps: usize) -> Result<Vec<f64>> {
    let (a, b) = (gpu.upload_band(a)?, gpu.upload(b.as_slice(), &b.shape())?);
    let params = Params::default().with_check_finite(false);
    warm_then_time(reps, || {
        let (mut a_run, mut x, mut chol) = (Some(a.try_clone()?), b.try_clone()?, None);
        let ms = gpu.time_ms(0, 1, || {
            if let Some(a_run) = a_run.take() {
                let l = DeviceCholesky::factor_in_place(a_run, &params)?;
                l.solve_in_place(&mut x, &params)?;
                chol = Some(l);
            }
            Ok(())
        })?;
        drop((chol, x));
        Ok(ms.iter().sum::<f64>() / 1e3)
    })
}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_flops() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        for separate in [false, true] {
            let cost = solve_cost(BandShape::new::<f64>(3, 10, 2), 1, separate);
            assert_eq!(cost.flops, 3.0 * (10.0 * 2.0 * 5.0 + 80.0));
        }
        let shape = BandShape::new::<f32>(1, 10, 2);
        assert_eq!(solve_cost(shape, 2, true).bytes, 4.0 * (30.0 * 3.0 + 40.0));
        assert_eq!(solve_cost(shape, 2, false).bytes, 4.0 * (30.0 * 2.0 + 40.0));
    }

    #[test]
    fn random_problem_is_spd() {
        for kd in [0, 1, 3, 9] {
            let (a, b) = random_spd_problem::<f64>(7, 3, 10, kd, 2).unwrap();
            let chol = Cholesky::factor(&a, &Params::default()).unwrap();
            let x = chol.solve(&b, &Params::default()).unwrap();
            // Residual A x − b, A expanded from the band.
            for s in 0..3 {
                for i in 0..10 {
                    for r in 0..2 {
                        let ax: f64 = (0..10).map(|j| a.get(s, i, j).unwrap() * x.get(s, j, r).unwrap()).sum();
                        assert!((ax - b.get(s, i, r).unwrap()).abs() < 1e-12);
                    }
                }
            }
        }
    }
}
