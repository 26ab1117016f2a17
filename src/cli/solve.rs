//! `banded solve`: factor and solve a batch of SPD band systems read from `.npy` files.

use std::path::PathBuf;

#[cfg(feature = "cuda")]
use crate::cuda::{CudaBackend, DeviceCholesky};
use crate::error::fmt_shape;
use crate::{BandBatch, BatchMatrix, Cholesky, Error, Params, Result};

use super::device::{Backend, DeviceArg, KernelArg};
use super::io::{self, Dtype, Elem, Tensor};
use super::keep_going;

/// Arguments of `banded solve`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Solve A_s X_s = B_s for a batch of symmetric positive definite band matrices",
    long_about = "Solve A_s X_s = B_s for a batch of symmetric positive definite band matrices \
(banded Cholesky, SciPy's solveh_banded(ab, b, lower=True) for each system).

AB holds the lower band: ab[s, d, j] = A_s[j+d, j] for 0 <= d <= kd, j < n-d (entries with \
j >= n-d are ignored). Shapes:

  AB (batch, kd+1, n):  RHS (batch, n, nrhs) or (batch, n)  [one right-hand side per system]
  AB (kd+1, n):         RHS (n, nrhs) or (n,)               [one system, batch = 1]

The rank of AB decides how RHS is read: with a 3-D AB a 2-D RHS is always (batch, n), even \
when batch == n; to give every system the same n x nrhs right-hand side, repeat it to \
(batch, n, nrhs). X is written with RHS's shape, LD (log det A_s) with shape (batch,), L (the Cholesky \
factor, lower band) and INV (the entries of A_s^-1 inside the band, by selected inversion: \
the marginal covariances of a Gaussian with precision A_s, and d log det A_s / dA_s) with \
AB's shape.

Arrays are float64 or float32 (either byte order; C or Fortran order). Both float32: the \
work and the outputs are float32. Otherwise float64 (NumPy's promotion; a float32 input is \
widened exactly). NaN or infinity in the band of AB or in RHS is an error, as is a matrix \
that is not positive definite (the message names the system and the column).

Without --keep-going, nothing is written when a system fails. With it, every output is written \
for the systems that are positive definite, the failed systems' X, LD, L and INV being NaN; each \
failure is reported on stderr (one `warning:` line) and the command still exits with status 1.

With --device cuda[:N] (or emulator) the factor, the solve and log det run on that device; the \
files read and written, and the errors, are the same as on the CPU."
)]
pub struct SolveArgs {
    /// Lower band of A: (batch, kd+1, n) or (kd+1, n), .npy
    #[arg(long, value_name = "AB.npy")]
    pub ab: PathBuf,
    /// Right-hand sides: (batch, n, nrhs), (batch, n), (n, nrhs) or (n,), .npy
    #[arg(long, value_name = "RHS.npy")]
    pub rhs: PathBuf,
    /// Where to write the solution X (RHS's shape), .npy
    #[arg(long, value_name = "X.npy")]
    pub out: PathBuf,
    /// Also write log det A_s for every system, shape (batch,), .npy
    #[arg(long, value_name = "LD.npy")]
    pub logdet: Option<PathBuf>,
    /// Also write the Cholesky factor L (A_s = L_s L_sᵀ) in AB's shape and band layout, as
    /// SciPy's cholesky_banded(ab, lower=True) (the ignored entries are written as 0), .npy
    #[arg(long, value_name = "L.npy")]
    pub cholesky: Option<PathBuf>,
    /// Also write the entries of A_s⁻¹ inside the band (selected inversion, O(n·kd²)) in AB's
    /// shape and band layout (the ignored entries are written as 0), .npy
    #[arg(long, value_name = "INV.npy")]
    pub inverse_band: Option<PathBuf>,
    /// When some systems are not positive definite, still write the others' results (the
    /// failed systems' are NaN), report each failure, and exit with status 1
    #[arg(long)]
    pub keep_going: bool,
    // --kernel (help text on `KernelArg`).
    #[command(flatten)]
    pub kernel: KernelArg,
    // --device (help text on `DeviceArg`).
    #[command(flatten)]
    pub device: DeviceArg,
}

/// How the files' shapes map onto the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    batch: usize,
    kd: usize,
    n: usize,
    nrhs: usize,
    /// AB was 2-D (one system without a batch axis).
    single: bool,
}

impl Layout {
    /// Reads the sizes off the shapes of AB and RHS (see the command's help for the rules).
    fn of(ab: &[usize], rhs: &[usize]) -> Result<Self> {
        let bad_ab = || Error::Shape {
            arg: "--ab",
            expected: "(batch, kd+1, n) or (kd+1, n) with batch, kd+1, n >= 1".into(),
            got: fmt_shape(ab),
        };
        let (batch, w, n, single) = match *ab {
            [batch, w, n] => (batch, w, n, false),
            [w, n] => (1, w, n, true),
            _ => return Err(bad_ab()),
        };
        if batch == 0 || w == 0 || n == 0 {
            return Err(bad_ab());
        }
        let nrhs = match (single, rhs) {
            (false, &[b, m, r]) if b == batch && m == n && r > 0 => r,
            (false, &[b, m]) if b == batch && m == n => 1,
            (true, &[m, r]) if m == n && r > 0 => r,
            (true, &[m]) if m == n => 1,
            _ => {
                let expected = if single {
                    format!("({n}, nrhs) or ({n},) with nrhs >= 1, to match --ab {}", fmt_shape(ab))
                } else {
                    format!("({batch}, {n}, nrhs) or ({batch}, {n}) with nrhs >= 1, to match --ab {}", fmt_shape(ab))
                };
                return Err(Error::Shape { arg: "--rhs", expected, got: fmt_shape(rhs) });
            }
        };
        Ok(Self { batch, kd: w - 1, n, nrhs, single })
    }
}

/// Runs `banded solve`.
pub fn run(args: &SolveArgs) -> Result<()> {
    let backend = args.device.open()?;
    let params = args.kernel.params(args.device.device)?;
    let ab = io::read_npy(&args.ab)?;
    let rhs = io::read_npy(&args.rhs)?;
    let layout = Layout::of(ab.shape(), rhs.shape())?;
    match Dtype::promote(ab.dtype(), rhs.dtype()) {
        Dtype::F32 => solve_typed::<f32>(args, &backend, layout, ab.into_tensor(), rhs.into_tensor(), &params),
        Dtype::F64 => solve_typed::<f64>(args, &backend, layout, ab.into_tensor(), rhs.into_tensor(), &params),
    }
}

/// What `banded solve` writes: X (row-major `(batch, n, nrhs)`), and log det A_s, the
/// lower band of L and the band of A⁻¹ (AB's layout) when asked for.
struct Solution<T> {
    x: Vec<T>,
    logdet: Option<Vec<T>>,
    l: Option<Vec<T>>,
    inv: Option<Vec<T>>,
}

fn solve_typed<T: Elem>(args: &SolveArgs, backend: &Backend, layout: Layout, ab: Tensor<T>, mut rhs: Tensor<T>, params: &Params) -> Result<()> {
    let Layout { batch, kd, n, nrhs, .. } = layout;
    // Finiteness first, with indices in the files' own shapes; the library then checks again
    // (cheap) and checks the results for overflow.
    check_band_finite(&ab, layout)?;
    io::check_finite("--rhs", &rhs)?;
    // The right-hand sides are solved in place: kept (copied) only for a --keep-going rerun.
    let b = if args.keep_going { rhs.data.clone() } else { std::mem::take(&mut rhs.data) };
    let (solution, failed) = match solve_on(args, backend, layout, &ab.data, b, params) {
        Ok(solution) => (solution, None),
        Err(e) => {
            let Some(failures) = keep_going::failures(&e, args.keep_going) else {
                return Err(e);
            };
            // The others again, alone; the failed systems' outputs NaN.
            let ok = keep_going::survivors(batch, failures);
            let (w, sub_layout) = (kd + 1, Layout { batch: ok.len(), ..layout });
            let sub = if ok.is_empty() {
                Solution { x: Vec::new(), logdet: Some(Vec::new()), l: Some(Vec::new()), inv: Some(Vec::new()) }
            } else {
                let (ab_ok, rhs_ok) = (keep_going::gather(&ab.data, w * n, &ok)?, keep_going::gather(&rhs.data, n * nrhs, &ok)?);
                solve_on(args, backend, sub_layout, &ab_ok, rhs_ok, params)?
            };
            let all = |v: Option<Vec<T>>, per| v.map(|v| keep_going::scatter(&v, per, &ok, batch)).transpose();
            let solution = Solution {
                x: keep_going::scatter(&sub.x, n * nrhs, &ok, batch)?,
                logdet: all(sub.logdet, 1)?,
                l: all(sub.l, w * n)?,
                inv: all(sub.inv, w * n)?,
            };
            (solution, Some(e))
        }
    };
    io::write_npy(&args.out, &rhs.shape, &solution.x)?;
    if let (Some(path), Some(logdet)) = (&args.logdet, &solution.logdet) {
        io::write_npy(path, &[batch], logdet)?;
    }
    if let (Some(path), Some(l)) = (&args.cholesky, &solution.l) {
        io::write_npy(path, &ab.shape, l)?;
    }
    if let (Some(path), Some(inv)) = (&args.inverse_band, &solution.inv) {
        io::write_npy(path, &ab.shape, inv)?;
    }
    match failed {
        None => Ok(()),
        Some(e) => {
            if let Error::NotPositiveDefinite { failures, .. } = &e {
                let asked = [true, args.logdet.is_some(), args.cholesky.is_some(), args.inverse_band.is_some()];
                let outputs = ["X", "LD", "L", "INV"].into_iter().zip(asked);
                keep_going::report(failures, &outputs.filter(|o| o.1).map(|o| o.0).collect::<Vec<_>>().join(", "));
            }
            Err(e)
        }
    }
}

/// Factor and solve the systems of `ab` (interchange layout) and `rhs` (consumed: the CPU
/// solves in its storage) for `layout` on `backend`.
fn solve_on<T: Elem>(args: &SolveArgs, backend: &Backend, layout: Layout, ab: &[T], rhs: Vec<T>, params: &Params) -> Result<Solution<T>> {
    let a = BandBatch::from_lower_band(ab, layout.batch, layout.n, layout.kd)?;
    match backend {
        Backend::Cpu => solve_cpu(args, layout, a, rhs, params),
        #[cfg(feature = "cuda")]
        Backend::Cuda(gpu) => solve_cuda(args, layout, gpu, &a, &rhs, params),
    }
}

/// Factor and solve on the CPU, in place.
fn solve_cpu<T: Elem>(args: &SolveArgs, layout: Layout, a: BandBatch<T>, rhs: Vec<T>, params: &Params) -> Result<Solution<T>> {
    let Layout { batch, n, nrhs, .. } = layout;
    let chol = Cholesky::factor_in_place(a, params)?;
    let mut x = BatchMatrix::new(rhs, batch, n, nrhs).map_err(|e| e.for_arg("rhs"))?;
    chol.solve_in_place(&mut x, params)?;
    Ok(Solution {
        x: x.into_vec(),
        logdet: args.logdet.is_some().then(|| chol.logdet()),
        l: args.cholesky.is_some().then(|| chol.l().to_lower_band()).transpose()?,
        inv: args.inverse_band.is_some().then(|| chol.inverse_band(params)?.to_lower_band()).transpose()?,
    })
}

/// Factor and solve on a CUDA device (or the emulator): one upload of the band and of the
/// right-hand sides, one download of each output.
#[cfg(feature = "cuda")]
fn solve_cuda<T: Elem>(args: &SolveArgs, layout: Layout, gpu: &CudaBackend, a: &BandBatch<T>, rhs: &[T], params: &Params) -> Result<Solution<T>> {
    let Layout { batch, n, nrhs, .. } = layout;
    let chol = DeviceCholesky::factor_in_place(gpu.upload_band(a)?, params)?;
    let mut x = gpu.upload(rhs, &[batch, n, nrhs]).map_err(|e| e.for_arg("rhs"))?;
    chol.solve_in_place(&mut x, params)?;
    Ok(Solution {
        x: x.to_host()?,
        logdet: args.logdet.is_some().then(|| chol.logdet()?.to_host()).transpose()?,
        l: args.cholesky.is_some().then(|| chol.l().to_host()?.to_lower_band()).transpose()?,
        inv: args.inverse_band.is_some().then(|| chol.inverse_band(params)?.to_host()?.to_lower_band()).transpose()?,
    })
}

/// NaN/infinity check of the band entries that are used (`j < n − d`; the others are ignored,
/// as SciPy's solver ignores them), index in AB's own shape.
fn check_band_finite<T: Elem>(ab: &Tensor<T>, layout: Layout) -> Result<()> {
    let Layout { kd, n, single, .. } = layout;
    let w = kd + 1;
    for (s, sys) in ab.data.chunks_exact(w * n).enumerate() {
        for d in 0..w.min(n) {
            let row = &sys[d * n..d * n + (n - d)];
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                let index = if single { vec![d, j] } else { vec![s, d, j] };
                return Err(Error::NonFinite { arg: "--ab", index, value: format!("{}", row[j]) });
            }
        }
    }
    Ok(())
}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rules() {
        let l = Layout::of(&[3, 2, 5], &[3, 5, 4]).unwrap();
        assert_eq!((l.batch, l.kd, l.n, l.nrhs, l.single), (3, 1, 5, 4, false));
        assert_eq!(Layout::of(&[3, 2, 5], &[3, 5]).unwrap().nrhs, 1);
        assert_eq!(Layout::of(&[2, 5], &[5, 4]).unwrap().nrhs, 4);
        assert_eq!(Layout::of(&[2, 5], &[5]).unwrap().nrhs, 1);
        // batch == n: a 2-D RHS under a 3-D AB is (batch, n), one column per system.
        let l = Layout::of(&[4, 2, 4], &[4, 4]).unwrap();
        assert_eq!((l.batch, l.nrhs), (4, 1));
        for (ab, rhs) in [
            (&[3, 2, 5][..], &[5, 4][..]),
            (&[3, 2, 5], &[5]),
            (&[3, 2, 5], &[3, 6, 1]),
            (&[3, 2, 5], &[2, 5, 1]),
            (&[3, 2, 5], &[3, 5, 0]),
            (&[2, 5], &[1, 5]),
            (&[2, 5], &[1, 5, 1]),
            (&[2, 5], &[5, 0]),
            (&[0, 2, 5], &[0, 5]),
            (&[3, 0, 5], &[3, 5]),
            (&[5], &[5]),
            (&[], &[]),
        ] {
            assert!(Layout::of(ab, rhs).is_err(), "{ab:?} {rhs:?}");
        }
    }
}
