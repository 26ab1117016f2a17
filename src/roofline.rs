//! Rooflines: what each operation must move and compute, and this machine's rates for it.
//!
//! An operation's **roofline time** is the least time the machine could take for it:
//!
//! ```text
//! roofline_s = max(flops / peak flop rate, bytes / memory bandwidth)
//! ```
//!
//! and its **roofline fraction** `roofline_s / measured_s` (at most 1; the closer to 1, the less
//! is left to gain). [`Cost`] holds the counts (one function per public operation below, e.g.
//! [`factor_solve`], [`smnn_forward`]); [`Peak`] holds the rates, measured **in the same run as
//! the operation, on the same threads** ([`Peak::measure`]):
//!
//! - the flop rate is a matrix product of the operation's element type (f64 `dgemm` for `f64`,
//!   `sgemm` for `f32`; faer's, 1024 × 1024 × 1024, on all threads of `par`:
//!   [`measure_gemm`]);
//! - the bandwidth is a parallel scaled copy `dst[i] = a·src[i]` whose two buffers together are
//!   the operation's working set ([`Cost::working_set`], [`measure_bandwidth`]): a shared L3
//!   makes the bandwidth depend strongly on size (on the 2-core VMs this crate is measured on:
//!   an AMD EPYC, ≈ 55 GB/s at 8–40 MB and 25–40 GB/s above 100 MB; an Intel Xeon, ≈ 60 GB/s
//!   at 8 MB and 31 GB/s at 266 MB), so a bandwidth measured at another size would misplace
//!   the roof.
//!
//! # What is counted
//!
//! **Bytes** are the compulsory traffic: every input read once, every output written once, and
//! what one operation stores for a later one and reads back (the factor between
//! [`factor`] and [`solve`], the S-MNN factor between forward and backward), each counted
//! once per operation. Traffic an implementation adds on top is not counted: the second read
//! of the factor by the backward substitution (the forward substitution runs first, over all
//! columns), scratch, the transposes into and out of the lane-interleaved packs, the
//! write-allocate reads of stored lines, and the input and result scans of
//! [`Params::check_finite`](crate::Params::check_finite). A band is counted as stored,
//! `n·(kd+1)` elements per system (padding below the matrix included).
//!
//! **Flops** follow the crate's convention of `banded bench solve`'s `gflops=`: with
//! `k = min(kd, n − 1)`, a factorization `n·k·(k+3)` and the two substitutions
//! `4·n·k·nrhs` per system (edge columns counted as interior ones; the `2·n·nrhs` divisions by
//! the diagonal of the substitutions are not counted). Each function says what else it counts.
//! A square root, a division or a logarithm counts as one flop.
//!
//! **Working set**: the bytes of distinct memory the operation's data occupy, in its in-place
//! form where it has one (`factor_in_place`, `solve_in_place`), which is where its data come
//! from when it runs from a cache level.

use std::any::TypeId;
use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use crate::alloc::{resized_par, with_capacity};
use crate::error::Result;
use crate::par::Par;
use crate::scalar::Real;
use crate::smnn::Smnn;

/// The work of one operation on a whole batch: flops, the bytes that must cross memory, and its
/// working set (see the [module docs](self) for what is counted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes that must be read from or written to memory.
    pub bytes: f64,
    /// Bytes of distinct memory the operation's data occupy: the size at which the bandwidth
    /// of its roofline is measured ([`Peak::measure`]).
    pub working_set: f64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    /// Two operations one after the other (e.g. [`factor`] then [`solve`]): flops and bytes add
    /// (what the first writes and the second reads is counted in both); the working set is the
    /// larger of the two (they share their largest buffer, e.g. the factor).
    fn add(self, other: Cost) -> Cost {
        Cost { flops: self.flops + other.flops, bytes: self.bytes + other.bytes, working_set: self.working_set.max(other.working_set) }
    }
}

impl Cost {
    /// The roofline time in seconds: `max(flops / peak.flops_per_s, bytes / peak.bytes_per_s)`.
    /// A term with no work is 0; work at a rate that is not positive takes +∞.
    pub fn time_floor(&self, peak: &Peak) -> f64 {
        let term = |work: f64, rate: f64| if work <= 0.0 { 0.0 } else if rate > 0.0 { work / rate } else { f64::INFINITY };
        term(self.flops, peak.flops_per_s).max(term(self.bytes, peak.bytes_per_s))
    }

    /// The roofline fraction of a run that took `seconds`: [`time_floor`](Self::time_floor)` /
    /// seconds` (0 if `seconds` is not positive).
    pub fn fraction(&self, peak: &Peak, seconds: f64) -> f64 {
        if seconds > 0.0 { self.time_floor(peak) / seconds } else { 0.0 }
    }
}

/// The shape of a batch of band systems, for the costs of the [`Cholesky`](crate::Cholesky)
/// operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandShape {
    /// Number of systems.
    pub batch: usize,
    /// Order of each matrix.
    pub n: usize,
    /// Lower bandwidth as stored (`n·(kd+1)` elements per system, as [`BandBatch`](crate::BandBatch));
    /// the flops use `k = min(kd, n − 1)`.
    pub kd: usize,
    /// Bytes per element (4 for `f32`, 8 for `f64`).
    pub elem: usize,
}

impl BandShape {
    /// The shape of `batch` systems of order `n`, bandwidth `kd`, elements of type `T`.
    pub fn new<T: Real>(batch: usize, n: usize, kd: usize) -> Self {
        Self { batch, n, kd, elem: std::mem::size_of::<T>() }
    }

    /// `k = min(kd, n − 1)`, the bandwidth that carries work.
    fn k(&self) -> f64 {
        self.kd.min(self.n.saturating_sub(1)) as f64
    }
    fn n(&self) -> f64 {
        self.n as f64
    }
    /// Elements of one system's band: `n·(kd+1)`.
    fn band(&self) -> f64 {
        self.n() * (self.kd as f64 + 1.0)
    }
    /// Elements of one system's right-hand sides: `n·nrhs`.
    fn rhs(&self, nrhs: usize) -> f64 {
        self.n() * nrhs as f64
    }
    /// A cost from per-system flops and per-system element counts of traffic and working set.
    fn cost(&self, flops: f64, elems: f64, working_set: f64) -> Cost {
        let (b, e) = (self.batch as f64, self.elem as f64);
        Cost { flops: b * flops, bytes: b * e * elems, working_set: b * e * working_set }
    }
    /// Flops of one factorization: `n·k·(k+3)`.
    fn factor_flops(&self) -> f64 {
        let k = self.k();
        self.n() * k * (k + 3.0)
    }
    /// Flops of the two substitutions: `4·n·k·nrhs`.
    fn solve_flops(&self, nrhs: usize) -> f64 {
        4.0 * self.n() * self.k() * nrhs as f64
    }
    /// Flops of the selected inversion: `2·n·k²`.
    fn inverse_flops(&self) -> f64 {
        2.0 * self.n() * self.k() * self.k()
    }
}

/// [`Cholesky::factor_in_place`](crate::Cholesky::factor_in_place) (and `factor`, less its
/// copy): the band read, the factor written. Per system: flops `n·k·(k+3)`; bytes
/// `2·n·(kd+1)` elements; working set `n·(kd+1)` elements.
pub fn factor(s: BandShape) -> Cost {
    s.cost(s.factor_flops(), 2.0 * s.band(), s.band())
}

/// [`Cholesky::solve_in_place`](crate::Cholesky::solve_in_place) (and `solve`) with a stored
/// factor: the factor read once, the right-hand sides read, the solutions written. Per system:
/// flops `4·n·k·nrhs`; bytes `n·(kd+1) + 2·n·nrhs` elements; working set `n·(kd+1) + n·nrhs`.
pub fn solve(s: BandShape, nrhs: usize) -> Cost {
    s.cost(s.solve_flops(nrhs), s.band() + 2.0 * s.rhs(nrhs), s.band() + s.rhs(nrhs))
}

/// [`Cholesky::factor_solve`](crate::Cholesky::factor_solve), the fused pass that keeps the
/// factor: the band read, the factor written, the right-hand sides read, the solutions written.
/// Per system: flops `n·k·(k+3) + 4·n·k·nrhs` (`bench solve`'s count); bytes
/// `2·n·(kd+1) + 2·n·nrhs` elements; working set `n·(kd+1) + n·nrhs`.
pub fn factor_solve(s: BandShape, nrhs: usize) -> Cost {
    s.cost(s.factor_flops() + s.solve_flops(nrhs), 2.0 * (s.band() + s.rhs(nrhs)), s.band() + s.rhs(nrhs))
}

/// Factor and solve when the factor is **not** kept (SciPy's `solveh_banded`, or
/// [`factor_solve`] whose factor is dropped): the band read, the right-hand sides read, the
/// solutions written; nothing else must reach memory. Per system: flops as [`factor_solve`];
/// bytes `n·(kd+1) + 2·n·nrhs` elements; working set `n·(kd+1) + n·nrhs`.
pub fn solve_once(s: BandShape, nrhs: usize) -> Cost {
    s.cost(s.factor_flops() + s.solve_flops(nrhs), s.band() + 2.0 * s.rhs(nrhs), s.band() + s.rhs(nrhs))
}

/// [`Cholesky::logdet`](crate::Cholesky::logdet) of a stored factor: the diagonal read (`n`
/// elements; they are strided in the band, so at `kd + 1` of a cache line or more each costs a
/// line, which is not counted), one value written. Per system: flops `2·n` (`n` logarithms and
/// `n` additions); bytes `n + 1` elements; working set the same.
pub fn logdet(s: BandShape) -> Cost {
    s.cost(2.0 * s.n(), s.n() + 1.0, s.n() + 1.0)
}

/// [`Cholesky::backward`](crate::Cholesky::backward): `x` and `grad_x` read, `λ = A⁻¹ grad_x`
/// (one more solve, the factor read), `grad_rhs` (= `λ`) and `grad_ab` written (`λ` read back by
/// the gradient pass is not counted: the two can share a pass). Per system: flops
/// `4·n·k·nrhs + 2·n·(2k+1)·nrhs` (the solve, then per band entry and right-hand side one
/// product pair); bytes `2·n·(kd+1) + 3·n·nrhs` elements; working set the same.
pub fn backward(s: BandShape, nrhs: usize) -> Cost {
    let flops = s.solve_flops(nrhs) + 2.0 * s.n() * (2.0 * s.k() + 1.0) * nrhs as f64;
    let elems = 2.0 * s.band() + 3.0 * s.rhs(nrhs);
    s.cost(flops, elems, elems)
}

/// [`Cholesky::inverse_band`](crate::Cholesky::inverse_band) (and `inverse_band_into`): the
/// factor read, the band of `A⁻¹` written. Per system: flops `2·n·k²` (the Takahashi
/// recurrence's `2·k²` per column; its O(n·k) terms are not counted); bytes `2·n·(kd+1)`
/// elements; working set the same.
pub fn inverse_band(s: BandShape) -> Cost {
    s.cost(s.inverse_flops(), 2.0 * s.band(), 2.0 * s.band())
}

/// [`Cholesky::logdet_backward`](crate::Cholesky::logdet_backward): [`inverse_band`] plus the
/// scaling by `grad_logdet` (one value per system read). Per system: flops
/// `2·n·k² + n·(k+1)`; bytes `2·n·(kd+1) + 1` elements; working set the same.
pub fn logdet_backward(s: BandShape) -> Cost {
    let elems = 2.0 * s.band() + 1.0;
    s.cost(s.inverse_flops() + s.n() * (s.k() + 1.0), elems, elems)
}

/// [`Cholesky::backward_with_logdet`](crate::Cholesky::backward_with_logdet): [`backward`]'s
/// traffic plus `grad_logdet` read (the factor is read once for both the solve and the
/// inversion, whose band goes straight into `grad_ab`). Per system: flops those of
/// [`backward`] + `2·n·k² + n·(k+1)`; bytes `2·n·(kd+1) + 3·n·nrhs + 1` elements; working set
/// the same.
pub fn backward_with_logdet(s: BandShape, nrhs: usize) -> Cost {
    let b = backward(s, nrhs);
    let extra = s.cost(s.inverse_flops() + s.n() * (s.k() + 1.0), 1.0, 1.0);
    Cost { flops: b.flops + extra.flops, bytes: b.bytes + extra.bytes, working_set: b.working_set + extra.working_set }
}

/// Per-system sizes of the S-MNN layer, as `f64`.
struct SmnnSizes {
    t: f64,
    e: f64,
    d: f64,
    o: f64,
    b: f64,
    /// `S·D·I`: initial values (and their gradient).
    v: f64,
    /// Elements of `coefficients`, `rhs_equation`, `steps` (their step axes as given).
    c: f64,
    r: f64,
    h: f64,
    /// `n = T·D·O`, the band `n·(kd+1)`, `k = min(kd, n − 1)`.
    n: f64,
    band: f64,
    k: f64,
    /// Steps with a distinct step size (`T − 1`, or 1 when `steps` is broadcast).
    h_distinct: f64,
    central: bool,
}

impl SmnnSizes {
    fn of(layer: &Smnn) -> Self {
        let f = |x: usize| x as f64;
        let [cl, rl, vl, hl, n] = layer.system_lens();
        let t = f(layer.n_steps());
        Self {
            t,
            e: f(layer.n_equations()),
            d: f(layer.n_dims()),
            o: f(layer.n_orders()),
            b: f(layer.block()),
            v: f(vl),
            c: f(cl),
            r: f(rl),
            h: f(hl),
            n: f(n),
            band: f(n) * (f(layer.kd()) + 1.0),
            k: f(layer.kd().min(n.saturating_sub(1))),
            h_distinct: if hl == 1 { 1.0 } else { t - 1.0 },
            central: layer.options().central,
        }
    }

    /// Flops of the forward per system (see [`smnn_forward`]).
    fn forward_flops(&self) -> f64 {
        let Self { t, e, d, o, b, v, n, k, h_distinct, central, .. } = *self;
        let rhs = t * e * (2.0 * b + 1.0) + 2.0 * v;
        let gram = o * (2.0 * o + 1.0);
        let mut assembly = t * e * (b * b + 2.0 * b) + v + h_distinct * (2.0 * o - 1.0 + 2.0 * gram) + (t - 1.0) * d * gram;
        if central {
            assembly += (t - 2.0) * (18.0 + 6.0 * d);
        }
        rhs + assembly + n * k * (k + 3.0) + 4.0 * n * k
    }

    /// Flops of the backward per system (see [`smnn_backward`]).
    fn backward_flops(&self) -> f64 {
        let Self { t, e, d, o, b, v, n, k, central, .. } = *self;
        let mut sums = t * e * (9.0 * b + 3.0) + v + (t - 1.0) * (2.0 * o + 1.0 + d * (4.0 * o + 2.0 * (o - 1.0) * (8.0 * o + 6.0)));
        if central {
            sums += (t - 2.0) * (10.0 + 25.0 * d);
        }
        4.0 * n * k + sums
    }
}

/// The batch's [`Cost`] from per-system flops and element counts.
fn smnn_cost(layer: &Smnn, elem: usize, flops: f64, elems: f64) -> Cost {
    let (b, e) = (layer.batch() as f64, elem as f64);
    Cost { flops: b * flops, bytes: b * e * elems, working_set: b * e * elems }
}

/// [`Smnn::forward`](crate::smnn::Smnn::forward) (and `forward_with`) of `layer`, elements of
/// `elem` bytes.
///
/// Bytes: the four inputs read (`coefficients`, `rhs_equation`, `init_vars`, `steps`, their step
/// axes as given), `u` written (`n = T·D·O` per system), and the factor of `M` written
/// (`n·(kd+1)`, kept for the backward). Not counted: the right-hand side `Aᵀβ` (built in `u`'s
/// storage, then solved in place) and the diagonal of `M` kept for the pivot test. Working set:
/// the same bytes.
///
/// Flops per system, with `b = D·O`, `V = S·D·I`, `G = O·(2O+1)` (the packed Gram matrix of
/// the `2O` unknowns of one variable's Taylor rows), `k = min(kd, n − 1)`:
/// - `Aᵀβ`: `T·E·(2b + 1) + 2V`;
/// - `M`: equations `T·E·(b² + 2b)` (the lower triangle of each step's block), initial values
///   `V`, Taylor Gram `(2O − 1 + 2G)` per distinct step size (`T − 1`, or 1 when `steps` is
///   broadcast) and `(T − 1)·D·G` to add it, central rows `(T − 2)·(18 + 6D)` (with
///   `central`); coefficients that are zero are counted although their updates are skipped;
/// - factor `n·k·(k+3)` and solve `4·n·k` (the convention of [`factor_solve`]); the relative
///   pivot test (`n` products) is not counted.
pub fn smnn_forward(layer: &Smnn, elem: usize) -> Cost {
    let s = SmnnSizes::of(layer);
    smnn_cost(layer, elem, s.forward_flops(), s.c + s.r + s.v + s.h + s.n + s.band)
}

/// [`Forward::backward`](crate::smnn::Forward::backward) (and `backward_into`,
/// [`Smnn::backward`](crate::smnn::Smnn::backward)) of `layer`, elements of `elem` bytes.
///
/// Bytes: `coefficients`, `rhs_equation`, `steps` (`init_vars` is not needed), `u`, `grad_u` and
/// the factor of `M` read; the four gradients written (each its input's size). Not counted:
/// `λ = M⁻¹ grad_u`, written by the solve and read back by the row sums. Working set: the same
/// bytes.
///
/// Flops per system (sizes as in [`smnn_forward`]): the solve `4·n·k`, then the row sums:
/// equations `T·E·(9b + 3)`, initial values `V`, Taylor rows
/// `(T − 1)·(2O + 1 + D·(4O + 2·(O − 1)·(8O + 6)))`, central rows `(T − 2)·(10 + 25D)` (with
/// `central`).
pub fn smnn_backward(layer: &Smnn, elem: usize) -> Cost {
    let s = SmnnSizes::of(layer);
    smnn_cost(layer, elem, s.backward_flops(), 2.0 * (s.c + s.r + s.h) + s.v + 2.0 * s.n + s.band)
}

/// [`smnn_forward`] then [`smnn_backward`]: the inputs, `u` and the factor stored by the forward
/// are read again by the backward and counted in both.
pub fn smnn_forward_backward(layer: &Smnn, elem: usize) -> Cost {
    smnn_forward(layer, elem) + smnn_backward(layer, elem)
}

/// This machine's rates for one roofline, measured in the same run as the operation it bounds,
/// on the same threads ([`Peak::measure`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Matrix-product rate of the element type, flop/s ([`measure_gemm`]).
    pub flops_per_s: f64,
    /// Bytes read + written per second by a parallel copy ([`measure_bandwidth`]).
    pub bytes_per_s: f64,
    /// The copy's working set in bytes (the requested one, clamped to
    /// [`MIN_WORKING_SET`]`..=`[`MAX_WORKING_SET`]).
    pub working_set: usize,
    /// Threads both ran on (`par`'s degree).
    pub threads: usize,
}

impl Peak {
    /// Measures both rates on `par` (run inside the rayon pool of the operation, e.g. in
    /// `ThreadPool::install`): the `T` matrix product ([`measure_gemm`]) and the bandwidth at
    /// `working_set` bytes ([`measure_bandwidth`]; pass the operation's
    /// [`Cost::working_set`]). About 0.5–1 s in all.
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) if a buffer cannot be allocated.
    pub fn measure<T: Real>(working_set: usize, par: Par) -> Result<Peak> {
        let flops_per_s = measure_gemm::<T>(par)?;
        let bytes_per_s = measure_bandwidth(working_set, par)?;
        Ok(Peak { flops_per_s, bytes_per_s, working_set: clamp_working_set(working_set), threads: par.degree() })
    }
}

/// The smallest working set [`measure_bandwidth`] measures (16 KiB).
pub const MIN_WORKING_SET: usize = 16 << 10;

/// The largest working set [`measure_bandwidth`] measures (1 GiB): far beyond any last-level
/// cache, where the bandwidth is the memory's and no longer depends on the size.
pub const MAX_WORKING_SET: usize = 1 << 30;

fn clamp_working_set(bytes: usize) -> usize {
    bytes.clamp(MIN_WORKING_SET, MAX_WORKING_SET)
}

/// Median of `v` (mean of the middle two for an even count; 0 if empty).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        len if len % 2 == 1 => v[len / 2],
        len => 0.5 * (v[len / 2 - 1] + v[len / 2]),
    }
}

/// Runs `run` (which returns the seconds of its timed part) once untimed, then up to `reps`
/// times while the timed runs took less than `budget_s` in all (at least once): the median.
fn median_time(reps: usize, budget_s: f64, mut run: impl FnMut() -> f64) -> f64 {
    run();
    let mut times = Vec::with_capacity(reps);
    let mut total = 0.0;
    while times.len() < reps.max(1) && (times.is_empty() || total < budget_s) {
        let t = run();
        total += t;
        times.push(t);
    }
    median(&mut times)
}

/// The memory bandwidth at a working set of `working_set_bytes` on the threads of `par`, in
/// bytes (read + written) per second, measured now (call it in the run and the rayon pool of
/// the operation it is compared with).
///
/// A scaled copy `dst[i] = a·src[i]` of `f64`s (STREAM's "scale": not a `memcpy`, which may take
/// shortcuts such as non-temporal stores), `src` and `dst` each half the working set (clamped to
/// [`MIN_WORKING_SET`]`..=`[`MAX_WORKING_SET`]), each thread copying its own contiguous
/// `1/threads` of them, which it also wrote first (its pages and cache lines, as an operation
/// on a batch split over the threads). A working set that fits a cache level is copied
/// several times per timed run (at least ≈ 1 ms each, to be above the pool's dispatch). One
/// untimed run, then the median of up to 9 timed runs within ≈ 0.3 s; counts `2·8` bytes per
/// element and copy, as STREAM (the write-allocate read of `dst` is not counted, as in
/// [`Cost`]).
///
/// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) if the two buffers cannot be allocated.
pub fn measure_bandwidth(working_set_bytes: usize, par: Par) -> Result<f64> {
    let ws = clamp_working_set(working_set_bytes);
    let len = ws / 2 / std::mem::size_of::<f64>();
    let threads = par.degree().max(1);
    let piece = len.div_ceil(threads).max(1);
    let mut src = resized_par::<f64>("working_set", Vec::new(), len, threads, par)?;
    let mut dst = resized_par::<f64>("working_set", Vec::new(), len, threads, par)?;
    let fill = |(i, s): (usize, &mut [f64])| {
        for (j, x) in s.iter_mut().enumerate() {
            *x = ((i * piece + j) % 7) as f64;
        }
    };
    match par {
        Par::Seq => src.chunks_mut(piece).enumerate().for_each(fill),
        Par::Rayon(_) => src.par_chunks_mut(piece).enumerate().for_each(fill),
    }
    let scale = black_box(0.5);
    let copy = |(d, s): (&mut [f64], &[f64]), times: usize| {
        for _ in 0..times {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = scale * s;
            }
            black_box(&mut *d);
        }
    };
    let mut run = |times: usize| {
        let start = Instant::now();
        match par {
            Par::Seq => copy((&mut dst[..], &src[..]), times),
            Par::Rayon(_) => dst.par_chunks_mut(piece).zip(src.par_chunks(piece)).with_max_len(1).for_each(|x| copy(x, times)),
        }
        start.elapsed().as_secs_f64()
    };
    // Copies per timed run: enough for ≈ 1 ms (a cached working set takes microseconds).
    let once = run(1).max(1e-9);
    let times = ((1e-3 / once).ceil() as usize).clamp(1, 10_000);
    let t = median_time(9, 0.3, || run(times));
    let bytes = 2.0 * (len * std::mem::size_of::<f64>()) as f64 * times as f64;
    Ok(if t > 0.0 { bytes / t } else { 0.0 })
}

/// The matrix-product rate of `T` on the threads of `par`, in flop/s, measured now (call it in
/// the run and the rayon pool of the operation it is compared with): faer's `matmul` of two
/// 1024 × 1024 matrices of `T` (`2·1024³` flops; `dgemm` for `f64`, `sgemm` for `f32`) with
/// `par`. One untimed run, then the median of up to 5 timed runs within ≈ 0.6 s (a 2-core
/// machine does one f64 product in ≈ 20–50 ms).
///
/// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) if the three matrices cannot be allocated.
pub fn measure_gemm<T: Real>(par: Par) -> Result<f64> {
    if TypeId::of::<T>() == TypeId::of::<f32>() { gemm_rate::<f32>(par) } else { gemm_rate::<f64>(par) }
}

/// [`measure_gemm`] for a concrete element type.
fn gemm_rate<T: Real + faer::traits::ComplexField>(par: Par) -> Result<f64> {
    const M: usize = 1024;
    let matrix = |f: &dyn Fn(usize) -> f64| -> Result<Vec<T>> {
        let mut v = with_capacity::<T>("gemm", M * M)?;
        v.extend((0..M * M).map(|i| T::from_f64(f(i))));
        Ok(v)
    };
    let a = matrix(&|i| ((i * 7 + i / M * 3) % 11) as f64 - 5.0)?;
    let b = matrix(&|i| ((i * 5 + i / M) % 13) as f64 - 6.0)?;
    let mut c = matrix(&|_| 0.0)?;
    let (a, b) = (faer::MatRef::from_column_major_slice(&a, M, M), faer::MatRef::from_column_major_slice(&b, M, M));
    let t = median_time(5, 0.6, || {
        let c = faer::MatMut::from_column_major_slice_mut(&mut c, M, M);
        let start = Instant::now();
        faer::linalg::matmul::matmul(c, faer::Accum::Replace, a, b, T::one(), par);
        start.elapsed().as_secs_f64()
    });
    let flops = 2.0 * (M * M * M) as f64;
    Ok(if t > 0.0 { flops / t } else { 0.0 })
}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::smnn::{InputShapes, Options};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn band_counts_by_hand() {
        // 2 systems, n = 10, kd = 2 (k = 2), f64: band 30 and rhs 10 elements per system.
        let s = BandShape::new::<f64>(2, 10, 2);
        assert_eq!(factor(s), Cost { flops: 2.0 * 10.0 * 2.0 * 5.0, bytes: 2.0 * 8.0 * 60.0, working_set: 2.0 * 8.0 * 30.0 });
        assert_eq!(solve(s, 1), Cost { flops: 2.0 * 80.0, bytes: 2.0 * 8.0 * 50.0, working_set: 2.0 * 8.0 * 40.0 });
        let fs = factor_solve(s, 1);
        assert_eq!(fs, Cost { flops: 2.0 * 180.0, bytes: 2.0 * 8.0 * 80.0, working_set: 2.0 * 8.0 * 40.0 });
        // bench solve's count.
        assert_eq!(fs.flops, 2.0 * (10.0 * 2.0 * 5.0 + 4.0 * 10.0 * 2.0));
        // Separate: the factor written, then read again; the working set is the solve's.
        let sep = factor(s) + solve(s, 1);
        assert_eq!(sep, Cost { flops: fs.flops, bytes: 2.0 * 8.0 * 110.0, working_set: 2.0 * 8.0 * 40.0 });
        assert_eq!(solve_once(s, 1), Cost { flops: fs.flops, bytes: 2.0 * 8.0 * 50.0, working_set: 2.0 * 8.0 * 40.0 });
        assert_eq!(logdet(s), Cost { flops: 2.0 * 20.0, bytes: 2.0 * 8.0 * 11.0, working_set: 2.0 * 8.0 * 11.0 });
        // Backward, 3 right-hand sides: 4·10·2·3 + 2·10·5·3 flops; 2·30 + 3·30 elements.
        assert_eq!(backward(s, 3), Cost { flops: 2.0 * (240.0 + 300.0), bytes: 2.0 * 8.0 * 150.0, working_set: 2.0 * 8.0 * 150.0 });
        assert_eq!(inverse_band(s), Cost { flops: 2.0 * 80.0, bytes: 2.0 * 8.0 * 60.0, working_set: 2.0 * 8.0 * 60.0 });
        assert_eq!(logdet_backward(s), Cost { flops: 2.0 * (80.0 + 30.0), bytes: 2.0 * 8.0 * 61.0, working_set: 2.0 * 8.0 * 61.0 });
        assert_eq!(
            backward_with_logdet(s, 3),
            Cost { flops: 2.0 * (540.0 + 110.0), bytes: 2.0 * 8.0 * 151.0, working_set: 2.0 * 8.0 * 151.0 }
        );
    }

    #[test]
    fn band_wider_than_the_matrix_and_diagonal() {
        // n = 3, kd = 5: k = 2 for the flops, the stored band 3·6 = 18 elements; f32.
        let s = BandShape::new::<f32>(1, 3, 5);
        assert_eq!(factor_solve(s, 2), Cost { flops: 3.0 * 2.0 * 5.0 + 4.0 * 3.0 * 2.0 * 2.0, bytes: 4.0 * 2.0 * 24.0, working_set: 4.0 * 24.0 });
        // kd = 0: no flops, the diagonal still moves.
        let d = BandShape::new::<f64>(4, 7, 0);
        assert_eq!(factor_solve(d, 1), Cost { flops: 0.0, bytes: 4.0 * 8.0 * 28.0, working_set: 4.0 * 8.0 * 14.0 });
        assert_eq!(factor(BandShape::new::<f64>(1, 1, 0)).flops, 0.0);
    }

    #[test]
    fn smnn_counts_by_hand() {
        // One system, T = 3, D = 1, O = 2, E = 1, S = 1, I = 2, steps per step: b = 2, n = 6,
        // kd = b + O − 1 = 3 (k = 3), G = O·(2O+1) = 10, V = 2.
        let layer = Smnn::new(
            Options::default(),
            InputShapes { coefficients: &[1, 3, 1, 1, 2], rhs_equation: &[1, 3, 1], init_vars: &[1, 1, 1, 2], steps: &[1, 2] },
        )
        .unwrap();
        let (c, r, v, h, n, band) = (6.0, 3.0, 2.0, 2.0, 6.0, 24.0);
        let fwd = smnn_forward(&layer, 8);
        assert_eq!(fwd.bytes, 8.0 * (c + r + v + h + n + band));
        assert_eq!(fwd.working_set, fwd.bytes);
        // Aᵀβ 3·1·5 + 4 = 19; M 3·(4 + 4) + 2 + 2·(3 + 20) + 2·1·10 = 24 + 2 + 46 + 20 = 92;
        // factor 6·3·6 = 108; solve 4·6·3 = 72.
        assert_eq!(fwd.flops, 19.0 + 92.0 + 108.0 + 72.0);
        let bwd = smnn_backward(&layer, 8);
        assert_eq!(bwd.bytes, 8.0 * (2.0 * (c + r + h) + v + 2.0 * n + band));
        // Solve 72; equations 3·(18 + 3) = 63; initial values 2; Taylor 2·(5 + (8 + 2·22)) = 114.
        assert_eq!(bwd.flops, 72.0 + 63.0 + 2.0 + 114.0);
        let both = smnn_forward_backward(&layer, 8);
        assert_eq!(both, Cost { flops: fwd.flops + bwd.flops, bytes: fwd.bytes + bwd.bytes, working_set: bwd.working_set });
        // Broadcast steps: the Gram matrix once; central rows (kd = 2b = 4, k = 4).
        let layer = Smnn::new(
            Options { central: true, ..Options::default() },
            InputShapes { coefficients: &[2, 3, 1, 1, 2], rhs_equation: &[2, 3, 1], init_vars: &[2, 1, 1, 2], steps: &[2, 1] },
        )
        .unwrap();
        let fwd = smnn_forward(&layer, 4);
        assert_eq!(fwd.bytes, 2.0 * 4.0 * (c + r + v + 1.0 + n + 30.0));
        let m = 24.0 + 2.0 + 23.0 + 20.0 + 24.0;
        assert_eq!(fwd.flops, 2.0 * (19.0 + m + 6.0 * 4.0 * 7.0 + 4.0 * 6.0 * 4.0));
        let bwd = smnn_backward(&layer, 4);
        assert_eq!(bwd.flops, 2.0 * (4.0 * 6.0 * 4.0 + 63.0 + 2.0 + 114.0 + 35.0));
    }

    #[test]
    fn time_floor_is_the_larger_term() {
        let peak = Peak { flops_per_s: 1e9, bytes_per_s: 4e9, working_set: 0, threads: 1 };
        let c = Cost { flops: 2e9, bytes: 4e9, working_set: 0.0 };
        assert_eq!(c.time_floor(&peak), 2.0);
        assert_eq!(Cost { flops: 1e9, bytes: 1.2e10, working_set: 0.0 }.time_floor(&peak), 3.0);
        assert!(close(c.fraction(&peak, 4.0), 0.5));
        assert_eq!(c.fraction(&peak, 0.0), 0.0);
        assert_eq!(Cost::default().time_floor(&Peak { flops_per_s: 0.0, bytes_per_s: 0.0, working_set: 0, threads: 1 }), 0.0);
        assert_eq!(c.time_floor(&Peak { flops_per_s: 0.0, ..peak }), f64::INFINITY);
    }

    #[test]
    fn measurements_are_positive() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let bw = pool.install(|| measure_bandwidth(1 << 20, Par::rayon(0))).unwrap();
        assert!(bw.is_finite() && bw > 0.0, "{bw}");
        assert!(measure_bandwidth(0, Par::Seq).unwrap() > 0.0);
        let peak = pool.install(|| Peak::measure::<f32>(100, Par::rayon(0))).unwrap();
        assert!(peak.flops_per_s > 0.0 && peak.bytes_per_s > 0.0, "{peak:?}");
        assert_eq!((peak.working_set, peak.threads), (MIN_WORKING_SET, 2));
    }
}
