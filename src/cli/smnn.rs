//! `banded smnn forward|backward` (the S-MNN layer on `.npz` files) and `banded bench smnn`.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use banded::smnn::{Grads, InputShapes, Inputs, Options, Smnn, Workspace};
use banded::error::fmt_shape;
use banded::{Error, Params, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::bench::{BenchArgs, Timings, print_line};
use super::io::{self, Array, Dtype, Elem, Npz, Tensor};

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
float32 work and outputs, otherwise float64.";

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
        Dtype::F32 => run_typed::<f32>(args, arrays),
        Dtype::F64 => run_typed::<f64>(args, arrays),
    }
}

fn run_typed<T: Elem>(args: &SmnnArgs, arrays: Vec<Array>) -> Result<()> {
    let t: Vec<Tensor<T>> = arrays.into_iter().map(Array::into_tensor).collect();
    let layer = Smnn::new(
        args.options(),
        InputShapes { coefficients: &t[0].shape, rhs_equation: &t[1].shape, init_vars: &t[2].shape, steps: &t[3].shape },
    )?;
    let inputs = Inputs { coefficients: &t[0].data, rhs_equation: &t[1].data, init_vars: &t[2].data, steps: &t[3].data };
    let params = Params::default();
    let fwd = layer.forward(inputs, &params)?;
    let u = Tensor::new("u", layer.u_shape().to_vec(), fwd.u().to_vec())?.into_array();
    if t.len() < 5 {
        return io::write_npz(&args.out, &[("u", &u)]);
    }
    let gu = &t[4];
    if gu.shape != layer.u_shape() {
        return Err(Error::Shape {
            arg: "grad_u",
            expected: fmt_shape(&layer.u_shape()),
            got: fmt_shape(&gu.shape),
        });
    }
    let g = fwd.backward(&gu.data, &params)?;
    let gc = Tensor::new("grad_coefficients", layer.coefficients_shape().to_vec(), g.coefficients)?.into_array();
    let gr = Tensor::new("grad_rhs_equation", layer.rhs_equation_shape().to_vec(), g.rhs_equation)?.into_array();
    let gv = Tensor::new("grad_init_vars", layer.init_vars_shape().to_vec(), g.init_vars)?.into_array();
    let gh = Tensor::new("grad_steps", layer.steps_shape().to_vec(), g.steps)?.into_array();
    io::write_npz(
        &args.out,
        &[("u", &u), ("grad_coefficients", &gc), ("grad_rhs_equation", &gr), ("grad_init_vars", &gv), ("grad_steps", &gh)],
    )
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
storage=reused|fresh kernel=.. threads=.. reps=.. seed=.. n=.. kd=.. median_s=.. min_s=.."
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
    #[arg(long)]
    pub fresh: bool,
    // --batch, --dtype, --reps, --threads, --seed (help text on the fields of `BenchArgs`).
    #[command(flatten)]
    pub common: BenchArgs,
}

/// Runs `banded bench smnn`.
pub fn bench(args: &BenchSmnnArgs) -> Result<()> {
    let common = &args.common;
    let (pool, params, threads) = common.thread_pool()?;
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
    let times = pool.install(|| match common.dtype {
        Dtype::F32 => time_smnn::<f32>(args, &layer, &params),
        Dtype::F64 => time_smnn::<f64>(args, &layer, &params),
    })?;
    let Timings { median, min } = Timings::of(&times);
    print_line(&format!(
        "bench=smnn batch={b} steps={t} dims={d} orders={o} equations={e} central={} backward={} dtype={} \
         storage={} kernel={} threads={threads} reps={} seed={} n={} kd={} median_s={median:.9} min_s={min:.9}",
        args.central,
        args.backward,
        common.dtype.short(),
        if args.fresh { "fresh" } else { "reused" },
        common.kernel_name(),
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

fn time_smnn<T: Elem>(args: &BenchSmnnArgs, layer: &Smnn, params: &Params) -> Result<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(args.common.seed);
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
    let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    let reps = args.common.reps.get();
    let mut times = Vec::with_capacity(reps);
    let (mut workspace, mut grads) = (Workspace::new(), Grads::default());
    for rep in 0..=reps {
        let start = Instant::now();
        let mut fwd = layer.forward_with(inputs, params, workspace)?;
        if args.backward {
            fwd.backward_into(&gu, params, &mut grads)?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        (workspace, grads) = if args.fresh { (Workspace::new(), Grads::default()) } else { (fwd.into_workspace(), grads) };
        if rep > 0 {
            times.push(elapsed);
        }
    }
    Ok(times)
}
