//! `banded smnn forward|backward` (the S-MNN layer on `.npz` files) and `banded bench smnn`.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

#[cfg(feature = "cuda")]
use crate::cuda::{CudaBackend, DeviceArray, DeviceInputs};
use crate::smnn::{Grads, InputShapes, Inputs, Options, Smnn, Workspace};
use crate::error::{PivotFailure, fmt_shape};
use crate::{Error, Params, Result, roofline};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::bench::{BenchArgs, Runner, Timings, print_line, warm_then_time};
use super::device::{Backend, DeviceArg, KernelArg};
use super::io::{self, Array, Dtype, Elem, Npz, Tensor};
use super::keep_going;

const LONG_ABOUT: &str = "The S-MNN layer (Scalable Mechanistic Neural Networks, Chen et al., ICLR 2025): the \
least-squares solution u of the ODE rows given per-step coefficients, in O(T).

IN.npz must hold (other keys are ignored):

  coefficients  (batch, T or 1, E, D, O)   governing equations per step
  rhs_equation  (batch, T or 1, E)         their right-hand sides
  init_vars     (batch, S, D, I)           initial values, S <= T, I <= O
  steps         (batch, T-1 or 1)          step sizes, > 0

and, for `backward`, grad_u (batch, T, D, O), the cotangent dl/du. An axis of size 1 marked \
'or 1' is broadcast over the steps; when all of them are, give --n-steps. OUT.npz gets u \
(batch, T, D, O) and, for `backward`, grad_coefficients, grad_rhs_equation, grad_init_vars, \
grad_steps (each with its input's shape). Arrays are float64 or float32; all float32 means \
float32 work and outputs, otherwise float64.

When the normal matrix of some systems is not positive definite nothing is written, unless \
--keep-going: then OUT.npz holds every output in full for the other systems, the failed \
systems' entries being NaN; each failure is reported on stderr (one `warning:` line) and the \
command still exits with status 1.

With --device cuda[:N] (or emulator) the layer runs on that device (Smnn::forward_cuda, \
DeviceForward::backward); the files read and written, and the errors, are the same as on the \
CPU.";

/// The `banded smnn …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum SmnnCommand {
    /// Forward: u from coefficients, rhs_equation, init_vars, steps
    #[command(long_about = LONG_ABOUT)]
    Forward(SmnnArgs),
    /// Forward and backward: u and the gradients of all four inputs for the cotangent grad_u
    #[command(long_about = LONG_ABOUT)]
    Backward(SmnnArgs),
}

/// Arguments of `banded smnn forward|backward`.
#[derive(Debug, clap::Args)]
pub struct SmnnArgs {
    /// Input arrays (.npz): coefficients, rhs_equation, init_vars, steps [, grad_u]
    #[arg(long, value_name = "IN.npz")]
    pub inputs: PathBuf,
    /// Where to write the outputs (.npz)
    #[arg(long, value_name = "OUT.npz")]
    pub out: PathBuf,
    /// Number of steps T (needed when every step axis has size 1)
    #[arg(long, value_name = "T")]
    pub n_steps: Option<usize>,
    /// Add the central-difference smoothness rows (needs O >= 2)
    #[arg(long)]
    pub central: bool,
    /// Weight of the governing-equation rows
    #[arg(long, value_name = "W", default_value_t = 1.0, allow_negative_numbers = true)]
    pub weight_equation: f64,
    /// Weight of the initial-value rows
    #[arg(long = "weight-init", value_name = "W", default_value_t = 1.0, allow_negative_numbers = true)]
    pub weight_init: f64,
    /// Weight of the smoothness rows
    #[arg(long, value_name = "W", default_value_t = 1.0, allow_negative_numbers = true)]
    pub weight_smooth: f64,
    /// When some systems fail, still write the others' outputs (the failed systems' are NaN),
    /// report each failure, and exit with status 1
    #[arg(long)]
    pub keep_going: bool,
    // --kernel (help text on `KernelArg`).
    #[command(flatten)]
    pub kernel: KernelArg,
    // --device (help text on `DeviceArg`).
    #[command(flatten)]
    pub device: DeviceArg,
}

impl SmnnArgs {
    fn options(&self) -> Options {
        Options {
            n_steps: self.n_steps,
            weight_equation: self.weight_equation,
            weight_init_var: self.weight_init,
            weight_smooth: self.weight_smooth,
            central: self.central,
        }
    }
}

/// Runs `banded smnn forward` (`backward = false`) or `banded smnn backward`.
pub fn run(cmd: &SmnnCommand) -> Result<()> {
    let (args, backward) = match cmd {
        SmnnCommand::Forward(a) => (a, false),
        SmnnCommand::Backward(a) => (a, true),
    };
    let backend = args.device.open()?;
    let params = args.kernel.params(args.device.device)?;
    let mut npz = Npz::open(&args.inputs)?;
    let mut arrays = Vec::with_capacity(5);
    for name in ["coefficients", "rhs_equation", "init_vars", "steps"] {
        arrays.push(npz.require(name)?);
    }
    if backward {
        arrays.push(npz.require("grad_u")?);
    }
    drop(npz);
    let dtype = arrays.iter().fold(Dtype::F32, |d, a| Dtype::promote(d, a.dtype()));
    match dtype {
        Dtype::F32 => run_typed::<f32>(args, &backend, arrays, &params),
        Dtype::F64 => run_typed::<f64>(args, &backend, arrays, &params),
    }
}

fn run_typed<T: Elem>(args: &SmnnArgs, backend: &Backend, arrays: Vec<Array>, params: &Params) -> Result<()> {
    let t: Vec<Tensor<T>> = arrays.into_iter().map(Array::into_tensor).collect();
    let layer = Smnn::new(
        args.options(),
        InputShapes { coefficients: &t[0].shape, rhs_equation: &t[1].shape, init_vars: &t[2].shape, steps: &t[3].shape },
    )?;
    if let Some(gu) = t.get(4)
        && gu.shape != layer.u_shape()
    {
        return Err(Error::Shape { arg: "grad_u", expected: fmt_shape(&layer.u_shape()), got: fmt_shape(&gu.shape) });
    }
    let data: Vec<&[T]> = t.iter().map(|t| &t.data[..]).collect();
    let ((u, grads), failed) = match layer_on(&layer, backend, &data, params) {
        Ok(out) => (out, None),
        Err(e) => {
            let Some(failures) = keep_going::failures(&e, args.keep_going) else {
                return Err(e);
            };
            (keep_going_layer(&layer, backend, &data, failures, params)?, Some(e))
        }
    };
    let u = Tensor::new("u", layer.u_shape().to_vec(), u)?.into_array();
    let written = match grads {
        None => io::write_npz(&args.out, &[("u", &u)]),
        Some(g) => {
            let gc = Tensor::new("grad_coefficients", layer.coefficients_shape().to_vec(), g.coefficients)?.into_array();
            let gr = Tensor::new("grad_rhs_equation", layer.rhs_equation_shape().to_vec(), g.rhs_equation)?.into_array();
            let gv = Tensor::new("grad_init_vars", layer.init_vars_shape().to_vec(), g.init_vars)?.into_array();
            let gh = Tensor::new("grad_steps", layer.steps_shape().to_vec(), g.steps)?.into_array();
            io::write_npz(
                &args.out,
                &[("u", &u), ("grad_coefficients", &gc), ("grad_rhs_equation", &gr), ("grad_init_vars", &gv), ("grad_steps", &gh)],
            )
        }
    };
    written?;
    match failed {
        None => Ok(()),
        Some(e) => {
            if let Error::NotPositiveDefinite { failures, .. } = &e {
                keep_going::report(failures, if data.len() > 4 { "u and gradients" } else { "u" });
            }
            Err(e)
        }
    }
}

/// `u` and, given `grad_u` (`data[4]`), the gradients, for the inputs `data` (coefficients,
/// rhs_equation, init_vars, steps in the layer's shapes) on `backend`.
fn layer_on<T: Elem>(layer: &Smnn, backend: &Backend, data: &[&[T]], params: &Params) -> Result<(Vec<T>, Option<Grads<T>>)> {
    let inputs = Inputs { coefficients: data[0], rhs_equation: data[1], init_vars: data[2], steps: data[3] };
    let grad_u = data.get(4).copied();
    match backend {
        Backend::Cpu => layer_cpu(layer, inputs, grad_u, params),
        #[cfg(feature = "cuda")]
        Backend::Cuda(gpu) => layer_cuda(layer, gpu, inputs, grad_u, params),
    }
}

/// `--keep-going`: [`layer_on`] for the systems that did not fail, the failed systems' outputs
/// NaN.
fn keep_going_layer<T: Elem>(layer: &Smnn, backend: &Backend, data: &[&[T]], failures: &[PivotFailure], params: &Params) -> Result<(Vec<T>, Option<Grads<T>>)> {
    let batch = layer.batch();
    let ok = keep_going::survivors(batch, failures);
    // Per-system lengths of coefficients, rhs_equation, init_vars, steps, u (= grad_u).
    let per = layer.system_lens();
    let (u, grads) = if ok.is_empty() {
        (Vec::new(), (data.len() > 4).then(Grads::default))
    } else {
        let sub: Vec<Vec<T>> = data.iter().zip(per).map(|(d, per)| keep_going::gather(d, per, &ok)).collect::<Result<_>>()?;
        let shape = |s: &[usize]| [&[ok.len()], &s[1..]].concat();
        let (c, r, v, h) = (shape(&layer.coefficients_shape()), shape(&layer.rhs_equation_shape()), shape(&layer.init_vars_shape()), shape(&layer.steps_shape()));
        let options = Options { n_steps: Some(layer.n_steps()), ..*layer.options() };
        let sub_layer = Smnn::new(options, InputShapes { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h })?;
        layer_on(&sub_layer, backend, &sub.iter().map(|v| &v[..]).collect::<Vec<_>>(), params)?
    };
    let all = |v: &[T], per: usize| keep_going::scatter(v, per, &ok, batch);
    let grads = match grads {
        None => None,
        Some(g) => Some(Grads {
            coefficients: all(&g.coefficients, per[0])?,
            rhs_equation: all(&g.rhs_equation, per[1])?,
            init_vars: all(&g.init_vars, per[2])?,
            steps: all(&g.steps, per[3])?,
        }),
    };
    Ok((all(&u, per[4])?, grads))
}

/// `u` and, given `grad_u`, the gradients: the layer on the CPU.
fn layer_cpu<T: Elem>(layer: &Smnn, inputs: Inputs<'_, T>, grad_u: Option<&[T]>, params: &Params) -> Result<(Vec<T>, Option<Grads<T>>)> {
    let fwd = layer.forward(inputs, params)?;
    let grads = grad_u.map(|gu| fwd.backward(gu, params)).transpose()?;
    Ok((fwd.u().to_vec(), grads))
}

/// [`layer_cpu`] on a CUDA device (or the emulator): one upload of each input, one download
/// of each output.
#[cfg(feature = "cuda")]
fn layer_cuda<T: Elem>(
    layer: &Smnn,
    gpu: &CudaBackend,
    inputs: Inputs<'_, T>,
    grad_u: Option<&[T]>,
    params: &Params,
) -> Result<(Vec<T>, Option<Grads<T>>)> {
    let on_device = upload_inputs(layer, gpu, inputs)?;
    let fwd = layer.forward_cuda(on_device.inputs(), params)?;
    let grads = match grad_u {
        None => None,
        Some(gu) => {
            let g = fwd.backward(&gpu.upload(gu, &layer.u_shape())?, params)?;
            Some(Grads {
                coefficients: g.coefficients.to_host()?,
                rhs_equation: g.rhs_equation.to_host()?,
                init_vars: g.init_vars.to_host()?,
                steps: g.steps.to_host()?,
            })
        }
    };
    Ok((fwd.u().to_host()?, grads))
}

/// The four inputs of the layer on a device.
#[cfg(feature = "cuda")]
struct UploadedInputs<T: Elem> {
    coefficients: DeviceArray<T>,
    rhs_equation: DeviceArray<T>,
    init_vars: DeviceArray<T>,
    steps: DeviceArray<T>,
}

#[cfg(feature = "cuda")]
impl<T: Elem> UploadedInputs<T> {
    fn inputs(&self) -> DeviceInputs<'_, T> {
        DeviceInputs { coefficients: &self.coefficients, rhs_equation: &self.rhs_equation, init_vars: &self.init_vars, steps: &self.steps }
    }
}

/// Uploads `inputs`, each in the layer's shape for it.
#[cfg(feature = "cuda")]
fn upload_inputs<T: Elem>(layer: &Smnn, gpu: &CudaBackend, inputs: Inputs<'_, T>) -> Result<UploadedInputs<T>> {
    Ok(UploadedInputs {
        coefficients: gpu.upload(inputs.coefficients, &layer.coefficients_shape()).map_err(|e| e.for_arg("coefficients"))?,
        rhs_equation: gpu.upload(inputs.rhs_equation, &layer.rhs_equation_shape()).map_err(|e| e.for_arg("rhs_equation"))?,
        init_vars: gpu.upload(inputs.init_vars, &layer.init_vars_shape()).map_err(|e| e.for_arg("init_vars"))?,
        steps: gpu.upload(inputs.steps, &layer.steps_shape()).map_err(|e| e.for_arg("steps"))?,
    })
}

/// Arguments of `banded bench smnn`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Time the S-MNN layer forward (and backward) on random well-posed inputs",
    long_about = "Time the S-MNN layer forward (and backward) on random well-posed inputs.

Inputs generated from --seed: coefficients uniform in [-1, 1] plus 1.5 on (e, d=e, o=0), \
right-hand sides and initial values (S = 1, I = O) uniform in [-1, 1], steps uniform in \
[0.05, 0.15]; no axis broadcast. After one untimed warm-up, forward (assemble, factor, solve; \
with --backward also the backward: one more solve and the gradient sums) runs --reps times \
with finiteness checks off, each run in the storage the previous one left (Smnn::forward_with, \
Forward::backward_into, as a training loop would; --fresh allocates it anew every run), and one \
line is printed:

  bench=smnn batch=.. steps=.. dims=.. orders=.. equations=.. central=.. backward=.. dtype=.. \
storage=reused|fresh kernel=.. threads=.. partitions=.. reps=.. seed=.. n=.. kd=.. median_s=.. min_s=.. \
bytes=.. flops=.. ws_bytes=.. bw_gbs=.. gemm_gflops=.. roofline_s=.. roofline_frac=..

The roofline (banded::roofline::smnn_forward, or smnn_forward_backward with --backward): bytes \
= what must cross memory (the inputs read, u written, the factor of the normal matrix written; \
the backward reads the inputs, u, grad_u and the factor again and writes the four gradients), \
flops = the assembly, factor, solves and gradient sums (see banded::roofline), ws_bytes = the \
working set. bw_gbs, gemm_gflops, roofline_s and roofline_frac are measured and computed as for \
`banded bench solve` (after the timed runs, same process and pool; --no-roofline skips them).

With --device cuda[:N] (or emulator) the inputs are generated on the host and uploaded once; \
each run is Smnn::forward_cuda (and DeviceForward::backward), timed with CUDA events (wall \
clock on the emulator). The device path allocates its storage in every run, so storage=fresh; \
kernel=.. becomes device=.. (e.g. device=cuda:0(NVIDIA_H200,sm_90)) and threads=1 (one host \
thread drives the device), and the line ends at ws_bytes (no roofline measurement); the other \
fields are the same."
)]
pub struct BenchSmnnArgs {
    /// Number of steps T (>= 2)
    #[arg(long)]
    pub steps: usize,
    /// Number of variables D
    #[arg(long)]
    pub dims: NonZeroUsize,
    /// Number of orders O
    #[arg(long)]
    pub orders: NonZeroUsize,
    /// Number of equations per step E [default: D]
    #[arg(long)]
    pub equations: Option<usize>,
    /// Add the central smoothness rows
    #[arg(long)]
    pub central: bool,
    /// Time forward + backward
    #[arg(long)]
    pub backward: bool,
    /// Allocate the layer's storage anew in every run instead of reusing the previous run's
    /// (a CUDA device always does)
    #[arg(long)]
    pub fresh: bool,
    // --batch, --dtype, --reps, --threads, --seed, --kernel, --no-roofline, --device (help text
    // on the fields of `BenchArgs`).
    #[command(flatten)]
    pub common: BenchArgs,
}

/// Runs `banded bench smnn`.
pub fn bench(args: &BenchSmnnArgs) -> Result<()> {
    let common = &args.common;
    let runner = common.runner()?;
    let (b, t, d, o) = (common.batch.get(), args.steps, args.dims.get(), args.orders.get());
    let e = args.equations.unwrap_or(d);
    let options = Options { central: args.central, ..Options::default() };
    let layer = Smnn::new(
        options,
        InputShapes {
            coefficients: &[b, t, e, d, o],
            rhs_equation: &[b, t, e],
            init_vars: &[b, 1.min(t), d, o],
            steps: &[b, t.saturating_sub(1)],
        },
    )?;
    let times = runner.install(|| match common.dtype {
        Dtype::F32 => time_smnn::<f32>(args, &layer, &runner),
        Dtype::F64 => time_smnn::<f64>(args, &layer, &runner),
    })?;
    let Timings { median, min } = Timings::of(&times);
    let elem = common.dtype.size();
    let cost = if args.backward { roofline::smnn_forward_backward(&layer, elem) } else { roofline::smnn_forward(&layer, elem) };
    let roofline = runner.roofline_fields(common, &cost, median)?;
    print_line(&format!(
        "bench=smnn batch={b} steps={t} dims={d} orders={o} equations={e} central={} backward={} dtype={} \
         storage={} {} reps={} seed={} n={} kd={} median_s={median:.9} min_s={min:.9} {roofline}",
        args.central,
        args.backward,
        common.dtype.short(),
        if args.fresh || !runner.is_cpu() { "fresh" } else { "reused" },
        runner.fields(common, layer.n(), layer.kd()),
        common.reps,
        common.seed,
        layer.n(),
        layer.kd()
    ))
}

/// `len` values from `f`, or an error instead of an allocation abort.
fn filled<T: Elem>(len: usize, mut f: impl FnMut() -> f64) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::InvalidArgument {
        arg: "--batch",
        reason: format!("cannot allocate {len} elements for the generated inputs"),
    })?;
    v.extend((0..len).map(|_| T::from_f64(f())));
    Ok(v)
}

/// The generated inputs of `banded bench smnn` and the cotangent `grad_u`, each in the
/// layer's shape for it.
struct Generated<T> {
    coefficients: Vec<T>,
    rhs_equation: Vec<T>,
    init_vars: Vec<T>,
    steps: Vec<T>,
    grad_u: Vec<T>,
}

impl<T: Elem> Generated<T> {
    /// Draws the inputs from `seed` (see the command's help).
    fn new(seed: u64, layer: &Smnn) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let len = |s: &[usize]| s.iter().product::<usize>();
        let (e, d, o) = (layer.n_equations(), layer.n_dims(), layer.n_orders());
        let mut c: Vec<T> = filled(len(&layer.coefficients_shape()), || rng.random_range(-1.0..=1.0))?;
        let b = d * o;
        for row in 0..layer.batch() * layer.n_steps() {
            for ee in 0..e.min(d) {
                let k = (row * e + ee) * b + ee * o;
                c[k] = c[k] + T::from_f64(1.5);
            }
        }
        let r: Vec<T> = filled(len(&layer.rhs_equation_shape()), || rng.random_range(-1.0..=1.0))?;
        let v: Vec<T> = filled(len(&layer.init_vars_shape()), || rng.random_range(-1.0..=1.0))?;
        let h: Vec<T> = filled(len(&layer.steps_shape()), || rng.random_range(0.05..=0.15))?;
        let gu: Vec<T> = filled(len(&layer.u_shape()), || rng.random_range(-1.0..=1.0))?;
        Ok(Self { coefficients: c, rhs_equation: r, init_vars: v, steps: h, grad_u: gu })
    }

    fn inputs(&self) -> Inputs<'_, T> {
        Inputs { coefficients: &self.coefficients, rhs_equation: &self.rhs_equation, init_vars: &self.init_vars, steps: &self.steps }
    }
}

/// One warm-up, then `reps` timed runs of the forward (and backward); seconds per run.
fn time_smnn<T: Elem>(args: &BenchSmnnArgs, layer: &Smnn, runner: &Runner) -> Result<Vec<f64>> {
    let data = Generated::<T>::new(args.common.seed, layer)?;
    match runner {
        Runner::Cpu { params, .. } => time_smnn_cpu(args, layer, &data, params),
        #[cfg(feature = "cuda")]
        Runner::Cuda(gpu) => time_smnn_cuda(args, layer, gpu, &data),
    }
}

/// On the CPU: each run in the storage the previous one left (unless `--fresh`).
fn time_smnn_cpu<T: Elem>(args: &BenchSmnnArgs, layer: &Smnn, data: &Generated<T>, params: &Params) -> Result<Vec<f64>> {
    let mut storage = Some((Workspace::new(), Grads::default()));
    warm_then_time(args.common.reps.get(), || {
        let (workspace, mut grads) = storage.take().unwrap_or_default();
        let start = Instant::now();
        let mut fwd = layer.forward_with(data.inputs(), params, workspace)?;
        if args.backward {
            fwd.backward_into(&data.grad_u, params, &mut grads)?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        if !args.fresh {
            storage = Some((fwd.into_workspace(), grads));
        }
        Ok(elapsed)
    })
}

/// On a device: the inputs uploaded once, each run timed by [`CudaBackend::time_ms`].
#[cfg(feature = "cuda")]
fn time_smnn_cuda<T: Elem>(args: &BenchSmnnArgs, layer: &Smnn, gpu: &CudaBackend, data: &Generated<T>) -> Result<Vec<f64>> {
    let on_device = upload_inputs(layer, gpu, data.inputs())?;
    let grad_u = gpu.upload(&data.grad_u, &layer.u_shape())?;
    let params = Params::default().with_check_finite(false);
    let ms = gpu.time_ms(1, args.common.reps.get(), || {
        let fwd = layer.forward_cuda(on_device.inputs(), &params)?;
        if args.backward {
            fwd.backward(&grad_u, &params)?;
        }
        Ok(())
    })?;
    Ok(ms.iter().map(|t| t / 1e3).collect())
}
