//! The CUDA backend (`banded::cuda`) against the CPU backend.
//!
//! - With the `cuda-emulator` feature, every kernel of `gpu/` runs on the CPU through the host
//!   emulator (the same `.cu` sources compiled as C++) behind the same API: band factor,
//!   solve, log-determinant, the solve's backward, selected inversion and the log-determinant's
//!   gradient (property tests over shapes, kd ≥ n − 1
//!   included), the S-MNN forward, backward and frozen path (broadcast axes, weights, central
//!   smoothness), and the error paths, all compared with the CPU backend under
//!   [`Kernel::Reference`]: bitwise (the kernels do the CPU reference kernels' operations in the
//!   same order; the CPU's fast kernels fuse multiply–adds and are held to the reference in
//!   `tests/packs.rs`).
//! - The reference vectors of `tests/data/` through the device path, against the files.
//! - The same checks on a real device when one is present (`CudaBackend::new(0)` succeeds);
//!   otherwise they say they were skipped. There NVRTC contracts into FMA, so results are
//!   compared to a derived forward-error bound (see [`close`]) instead of bitwise.
//! - Every `gpu/*.cu` compiles with NVRTC for sm_80 and sm_90 without an error or a warning:
//!   skipped with a message where libnvrtc is absent, except under `CI`, where it must run.

mod common;
#[path = "common/smnn_ref.rs"]
mod smnn_ref;

use banded::cuda::{CudaBackend, CudaReal, DeviceCholesky, DeviceInputs, nvrtc};
use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, Params};
use common::rel_err;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smnn_ref::{Spec, draw};

/// The parameters of every call: the CPU side runs the reference kernels, whose operations
/// (unfused, in LAPACK's order) the device kernels perform too (the CUDA backend itself reads no
/// kernel choice).
fn reference() -> Params {
    Params::default().with_kernel(Kernel::Reference)
}

fn f64s<T: CudaReal>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.as_f64()).collect()
}

/// `ε` of `T`.
fn eps<T: CudaReal>() -> f64 {
    T::epsilon().as_f64()
}

/// Device results against the CPU's. On the emulator, **bitwise**: the kernels perform the CPU
/// reference kernels' operations in the same order, and g++ neither contracts nor reorders
/// them. On a device NVRTC contracts `a·b + c` into FMA (one rounding instead of two per
/// operation), so the two results are two roundings of the same algorithm and differ by at most
/// twice its forward-error bound, which the caller passes as `bound` (relative to the result's
/// scale).
fn close<T: CudaReal>(gpu: &CudaBackend, what: &str, got: &[T], want: &[T], bound: f64) {
    if gpu.describe() == "emulator" {
        let same = got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits());
        assert!(same, "{what}: not bitwise equal to the CPU ({}, relative error {:.3e})", T::NAME, rel_err(&f64s(got), &f64s(want)));
    } else {
        let e = rel_err(&f64s(got), &f64s(want));
        assert!(e <= bound, "{what}: relative error {e:.3e} > {bound:.1e} ({})", T::NAME);
    }
}

/// A random SPD band batch (diagonally dominant) and right-hand sides / cotangents.
fn band_problem<T: CudaReal>(seed: u64, batch: usize, n: usize, kd: usize, nrhs: usize) -> (BandBatch<T>, BatchMatrix<T>, BatchMatrix<T>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ab = BandBatch::from_fn(batch, n, kd, |_, i, j| T::from_f64(if i == j { 2.0 * kd as f64 + 1.0 + rng.random::<f64>() } else { rng.random_range(-1.0..1.0) })).unwrap();
    let mut m = || BatchMatrix::new((0..batch * n * nrhs).map(|_| T::from_f64(rng.random_range(-1.0..1.0))).collect::<Vec<T>>(), batch, n, nrhs).unwrap();
    (ab, m(), m())
}

/// Factor, solve, log-determinant and backward on `gpu` against the CPU.
fn band_case<T: CudaReal>(gpu: &CudaBackend, seed: u64, batch: usize, n: usize, kd: usize, nrhs: usize) {
    let p = reference();
    let (ab, b, gx) = band_problem::<T>(seed, batch, n, kd, nrhs);
    let cpu = Cholesky::factor(&ab, &p).unwrap();
    let x = cpu.solve(&b, &p).unwrap();
    let grads = cpu.backward(&x, &gx, &p).unwrap();

    let dev = DeviceCholesky::factor(&gpu.upload_band(&ab).unwrap(), &p).unwrap();
    let case = format!("batch {batch}, n {n}, kd {kd}, nrhs {nrhs}");
    // Forward error of band Cholesky and its solves: c·(kd+1)·ε·κ(A), with κ(A) ≤ 4kd + 2 for
    // these matrices (Gershgorin: diagonal in [2kd+1, 2kd+2], off-diagonal row sums ≤ 2kd);
    // c = 16 covers the two computations and the backward's second solve.
    let k = kd.min(n - 1) as f64;
    let bound = 16.0 * (k + 1.0) * (4.0 * k + 2.0) * eps::<T>();
    close(gpu, &format!("L ({case})"), dev.l().to_host().unwrap().as_slice(), cpu.l().as_slice(), bound);
    let db = gpu.upload(b.as_slice(), &b.shape()).unwrap();
    let dx = dev.solve(&db, &p).unwrap();
    close(gpu, &format!("x ({case})"), &dx.to_host().unwrap(), x.as_slice(), bound);
    close(gpu, &format!("logdet ({case})"), &dev.logdet().unwrap().to_host().unwrap(), &cpu.logdet(), bound);
    let dg = dev.backward(&dx, &gpu.upload(gx.as_slice(), &gx.shape()).unwrap(), &p).unwrap();
    close(gpu, &format!("grad_rhs ({case})"), &dg.rhs.to_host().unwrap(), grads.rhs.as_slice(), bound);
    close(gpu, &format!("grad_ab ({case})"), dg.ab.to_host().unwrap().as_slice(), grads.ab.as_slice(), bound);
    // Selected inversion (κ(A)·‖A⁻¹‖ enters once more: the same bound, times 4kd + 2) and the
    // log-determinant's gradient.
    let zb = bound * (4.0 * k + 2.0);
    close(gpu, &format!("inverse_band ({case})"), dev.inverse_band(&p).unwrap().to_host().unwrap().as_slice(), cpu.inverse_band(&p).unwrap().as_slice(), zb);
    let c: Vec<T> = (0..batch).map(|s| T::from_f64(0.5 - s as f64 / batch as f64)).collect();
    let dgl = dev.logdet_backward(&gpu.upload(&c, &[batch]).unwrap(), &p).unwrap();
    close(gpu, &format!("logdet_backward ({case})"), dgl.to_host().unwrap().as_slice(), cpu.logdet_backward(&c, &p).unwrap().as_slice(), zb);
    // In place: the same factor, the same solution.
    let l2 = DeviceCholesky::factor_in_place(gpu.upload_band(&ab).unwrap(), &p).unwrap();
    let mut dx2 = gpu.upload(b.as_slice(), &b.shape()).unwrap();
    l2.solve_in_place(&mut dx2, &p).unwrap();
    assert_eq!(dx2.to_host().unwrap(), dx.to_host().unwrap(), "solve_in_place ({case})");
}

/// The error paths: not positive definite (every failing system), non-finite input (index as
/// on the CPU), bad shapes, arrays of another backend.
fn band_errors(gpu: &CudaBackend) {
    let p = reference();
    let (mut ab, b, _) = band_problem::<f64>(7, 5, 12, 2, 1);
    let len = ab.system_len();
    // Systems 1 and 3 indefinite at columns 4 and 0.
    let mut data = ab.as_slice().to_vec();
    data[len + 4 * 3] = -50.0;
    data[3 * len] = 0.0;
    ab = BandBatch::new(data, 5, 12, 2).unwrap();
    let want = Cholesky::factor(&ab, &p).unwrap_err();
    let got = DeviceCholesky::factor(&gpu.upload_band(&ab).unwrap(), &p).unwrap_err();
    assert_eq!(got, want);
    assert!(matches!(&got, Error::NotPositiveDefinite { system: 1, column: 4, failures } if failures.len() == 2), "{got}");

    let mut data = ab.as_slice().to_vec();
    data[2 * len + 5 * 3 + 1] = f64::NAN;
    let ab = BandBatch::new(data, 5, 12, 2).unwrap();
    let want = Cholesky::factor(&ab, &p).unwrap_err();
    let got = DeviceCholesky::factor(&gpu.upload_band(&ab).unwrap(), &p).unwrap_err();
    assert_eq!(got, want, "non-finite ab");

    // NaN below the matrix (column n − 1, d = 1: never read) is not an input error.
    let (ab, _, _) = band_problem::<f64>(9, 5, 12, 2, 1);
    let mut data = ab.as_slice().to_vec();
    data[3 * len + 11 * 3 + 1] = f64::NAN;
    let ab = BandBatch::new(data, 5, 12, 2).unwrap();
    let want = Cholesky::factor(&ab, &p).unwrap();
    let got = DeviceCholesky::factor(&gpu.upload_band(&ab).unwrap(), &p).unwrap();
    assert_eq!(got.logdet().unwrap().to_host().unwrap().len(), 5);
    let bound = 16.0 * 3.0 * 10.0 * f64::EPSILON; // band_case's bound at kd = 2
    close(gpu, "NaN below the matrix", &got.l().to_host().unwrap().to_lower_band().unwrap(), &want.l().to_lower_band().unwrap(), bound);

    let (ab, _, _) = band_problem::<f64>(8, 5, 12, 2, 1);
    let l = DeviceCholesky::factor(&gpu.upload_band(&ab).unwrap(), &p).unwrap();
    let wrong = gpu.upload(&vec![0.0; 5 * 11], &[5, 11, 1]).unwrap();
    assert!(matches!(l.solve(&wrong, &p), Err(Error::Shape { arg: "rhs", .. })));
    let mut bad = b.as_slice().to_vec();
    bad[13] = f64::INFINITY;
    let want = Cholesky::factor(&ab, &p).unwrap().solve(&BatchMatrix::new(bad.clone(), 5, 12, 1).unwrap(), &p).unwrap_err();
    let got = l.solve(&gpu.upload(&bad, &[5, 12, 1]).unwrap(), &p).unwrap_err();
    assert_eq!(got, want, "non-finite rhs");
    // grad_logdet: the CPU's shape and non-finite errors.
    let cpu = Cholesky::factor(&ab, &p).unwrap();
    assert!(matches!(l.logdet_backward(&gpu.upload(&[1.0; 4], &[4]).unwrap(), &p), Err(Error::Shape { arg: "grad_logdet", .. })));
    let g = [1.0, 1.0, f64::NAN, 1.0, 1.0];
    assert_eq!(l.logdet_backward(&gpu.upload(&g, &[5]).unwrap(), &p).unwrap_err(), cpu.logdet_backward(&g, &p).unwrap_err(), "non-finite grad_logdet");
    assert!(matches!(gpu.upload(&[1.0f64; 3], &[2, 2]), Err(Error::Shape { arg: "data", .. })));
    assert!(matches!(gpu.upload::<f64>(&[], &[0, 2]), Err(Error::Shape { .. })));
}

fn layer_of(p: &smnn_ref::Problem) -> Smnn {
    let (cs, rs, vs, hs) = p.shapes();
    let opts = Options { n_steps: Some(p.t), weight_equation: p.w_eq, weight_init_var: p.w_init, weight_smooth: p.w_s, central: p.central };
    Smnn::new(opts, InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs }).unwrap()
}

/// The S-MNN forward, backward and frozen path on `gpu` against the CPU layer.
fn smnn_case<T: CudaReal>(gpu: &CudaBackend, spec: &Spec) {
    let pr = draw(spec);
    let layer = layer_of(&pr);
    let cv = |x: &[f64]| x.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
    let (c, r, v, h, gu) = (cv(&pr.c), cv(&pr.r), cv(&pr.v), cv(&pr.h), cv(&pr.grad_u));
    let p = reference();
    let fwd = layer.forward(Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h }, &p).unwrap();
    let g = fwd.backward(&gu, &p).unwrap();

    let up = |x: &[T], shape: &[usize]| gpu.upload(x, shape).unwrap();
    let (dc, dr, dv, dh) = (up(&c, &layer.coefficients_shape()), up(&r, &layer.rhs_equation_shape()), up(&v, &layer.init_vars_shape()), up(&h, &layer.steps_shape()));
    let dgu = up(&gu, &layer.u_shape());
    let dfwd = layer.forward_cuda(DeviceInputs { coefficients: &dc, rhs_equation: &dr, init_vars: &dv, steps: &dh }, &p).unwrap();
    let what = format!("{spec:?}");
    // Forward error of the normal-equations solve: c·(kd+1)·ε·κ₂(M), κ₂(M) from the dense
    // reference (faer) of this very problem; c = 16 as for the band.
    let kappa = smnn_ref::reference(&pr).kappa.iter().fold(1.0f64, |m, &k| m.max(k));
    let bound = 16.0 * (layer.kd() as f64 + 1.0) * kappa * eps::<T>();
    close(gpu, &format!("u {what}"), &dfwd.u().to_host().unwrap(), fwd.u(), bound);
    close(gpu, &format!("L {what}"), dfwd.factor().l().to_host().unwrap().as_slice(), fwd.factor().l().as_slice(), bound);
    let dg = dfwd.backward(&dgu, &p).unwrap();
    close(gpu, &format!("grad_coefficients {what}"), &dg.coefficients.to_host().unwrap(), &g.coefficients, bound);
    close(gpu, &format!("grad_rhs_equation {what}"), &dg.rhs_equation.to_host().unwrap(), &g.rhs_equation, bound);
    close(gpu, &format!("grad_init_vars {what}"), &dg.init_vars.to_host().unwrap(), &g.init_vars, bound);
    close(gpu, &format!("grad_steps {what}"), &dg.steps.to_host().unwrap(), &g.steps, bound);

    let frozen = layer.freeze_cuda(&dc, &dh, &p).unwrap();
    assert_eq!(frozen.forward(&dr, &dv, &p).unwrap().to_host().unwrap(), dfwd.u().to_host().unwrap(), "frozen forward {what}");
    let fg = frozen.backward(&dgu, &p).unwrap();
    assert_eq!(fg.rhs_equation.to_host().unwrap(), dg.rhs_equation.to_host().unwrap(), "frozen grad_rhs_equation {what}");
    assert_eq!(fg.init_vars.to_host().unwrap(), dg.init_vars.to_host().unwrap(), "frozen grad_init_vars {what}");
}

fn smnn_specs() -> Vec<Spec> {
    let base = Spec { seed: 1, batch: 3, t: 9, e: 2, d: 2, o: 3, s: 1, i: 2, bcast: [false; 3], weights: [1.0, 1.0, 1.0], central: false, h: (0.5, 1.0) };
    vec![
        base,
        Spec { seed: 2, central: true, ..base },
        Spec { seed: 3, bcast: [true, true, true], weights: [0.7, 2.0, 1.3], ..base },
        Spec { seed: 4, bcast: [true, false, true], central: true, o: 4, i: 3, s: 2, ..base },
        Spec { seed: 5, batch: 1, t: 2, e: 1, d: 1, o: 2, s: 1, i: 1, ..base },
        Spec { seed: 6, batch: 9, t: 17, e: 3, d: 3, o: 3, s: 1, i: 2, central: true, ..base },
        Spec { seed: 7, o: 5, central: true, h: (0.8, 1.0), ..base },
    ]
}

/// The S-MNN error paths on the device: non-positive steps, shapes, a singular normal matrix.
fn smnn_errors(gpu: &CudaBackend) {
    let pr = draw(&smnn_specs()[0]);
    let layer = layer_of(&pr);
    let p = reference();
    let up = |x: &[f64], shape: &[usize]| gpu.upload(x, shape).unwrap();
    let (c, r, v) = (up(&pr.c, &layer.coefficients_shape()), up(&pr.r, &layer.rhs_equation_shape()), up(&pr.v, &layer.init_vars_shape()));
    let mut h = pr.h.clone();
    h[5] = -0.1;
    let cpu = layer.forward(Inputs { coefficients: &pr.c, rhs_equation: &pr.r, init_vars: &pr.v, steps: &h }, &p).unwrap_err();
    let dh = up(&h, &layer.steps_shape());
    let got = layer.forward_cuda(DeviceInputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &dh }, &p).unwrap_err();
    assert_eq!(got, cpu, "negative step");
    let dh = up(&pr.h, &layer.steps_shape());
    let got = layer.forward_cuda(DeviceInputs { coefficients: &c, rhs_equation: &r, init_vars: &c, steps: &dh }, &p).unwrap_err();
    assert!(matches!(got, Error::Shape { arg: "init_vars", .. }), "{got}");
    // All-zero coefficients and no initial values: the equations fix nothing, M is singular.
    let zero = vec![0.0; pr.c.len()];
    let cpu = layer.forward(Inputs { coefficients: &zero, rhs_equation: &pr.r, init_vars: &pr.v, steps: &pr.h }, &reference());
    let dzero = up(&zero, &layer.coefficients_shape());
    let got = layer.forward_cuda(DeviceInputs { coefficients: &dzero, rhs_equation: &r, init_vars: &v, steps: &dh }, &p).map(|f| f.u().len());
    match (cpu, got) {
        // On a device, FMA rounding may tip the relative pivot test of another system too.
        (Err(a), Err(b)) if gpu.describe() != "emulator" => assert_eq!(kind(&a), kind(&b), "singular M: {a} vs {b}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "singular M"),
        (Ok(_), Ok(_)) => panic!("expected a singular M"),
        (a, b) => panic!("CPU {:?} vs device {:?}", a.err(), b.err()),
    }
}

/// The variant and argument of an error (indices and values may differ on a device, whose
/// arithmetic contracts into FMA).
fn kind(e: &Error) -> String {
    let s = format!("{e:?}");
    let variant = s.split([' ', '{', '(']).next().unwrap_or_default().to_string();
    match e {
        Error::Overflow { arg, .. } | Error::NonFinite { arg, .. } | Error::InvalidArgument { arg, .. } | Error::Shape { arg, .. } => format!("{variant} {arg}"),
        _ => variant,
    }
}

/// Results that overflow f32 from finite inputs: the CPU's error on the device (variant and
/// argument; bitwise on the emulator): a solution, a backward gradient, the S-MNN normal
/// matrix, `u`, and a weight whose square overflows.
fn overflow_errors(gpu: &CudaBackend, exact: bool) {
    let p = reference();
    let same = |cpu: Error, dev: Error, what: &str| {
        assert!(matches!(cpu, Error::Overflow { .. } | Error::InvalidArgument { .. }), "{what}: {cpu:?}");
        assert_eq!(kind(&dev), kind(&cpu), "{what}: CPU {cpu:?}, device {dev:?}");
        if exact {
            assert_eq!(dev, cpu, "{what}");
        }
    };
    // A = 1e-30·I, b = 1e30: x = 1e60.
    let (batch, n) = (3, 5);
    let ab: Vec<f32> = (0..batch).flat_map(|_| [vec![1e-30f32; n], vec![0.0; n]].concat()).collect();
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let b = vec![1e30f32; batch * n];
    let cpu = Cholesky::factor(&a, &p).unwrap().solve(&BatchMatrix::new(b.clone(), batch, n, 1).unwrap(), &p).unwrap_err();
    let dl = DeviceCholesky::factor(&gpu.upload_band(&a).unwrap(), &p).unwrap();
    same(cpu, dl.solve(&gpu.upload(&b, &[batch, n, 1]).unwrap(), &p).unwrap_err(), "solve");
    // A = I, x = grad_x = 1e20: ∂ℓ/∂a = −1e40.
    let ab: Vec<f32> = (0..batch).flat_map(|_| [vec![1.0f32; n], vec![0.0; n]].concat()).collect();
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let x = vec![1e20f32; batch * n];
    let xm = BatchMatrix::new(x.clone(), batch, n, 1).unwrap();
    let cpu = Cholesky::factor(&a, &p).unwrap().backward(&xm, &xm, &p).unwrap_err();
    let dl = DeviceCholesky::factor(&gpu.upload_band(&a).unwrap(), &p).unwrap();
    let dx = gpu.upload(&x, &[batch, n, 1]).unwrap();
    same(cpu, dl.backward(&dx, &dx, &p).map(|_| ()).unwrap_err(), "backward");
    // S-MNN in f32.
    let pr = draw(&smnn_specs()[0]);
    let f32s = |x: &[f64], scale: f64| x.iter().map(|&v| (v * scale) as f32).collect::<Vec<f32>>();
    let (c, r, v, h) = (f32s(&pr.c, 1.0), f32s(&pr.r, 1.0), f32s(&pr.v, 1.0), f32s(&pr.h, 1.0));
    let run = |layer: &Smnn, c: &[f32], r: &[f32]| {
        let cpu = layer.forward(Inputs { coefficients: c, rhs_equation: r, init_vars: &v, steps: &h }, &p).map(|_| ()).unwrap_err();
        let up = |x: &[f32], shape: &[usize]| gpu.upload(x, shape).unwrap();
        let (dc, dr) = (up(c, &layer.coefficients_shape()), up(r, &layer.rhs_equation_shape()));
        let (dv, dh) = (up(&v, &layer.init_vars_shape()), up(&h, &layer.steps_shape()));
        let dev = layer.forward_cuda(DeviceInputs { coefficients: &dc, rhs_equation: &dr, init_vars: &dv, steps: &dh }, &p).map(|_| ()).unwrap_err();
        (cpu, dev)
    };
    let layer = layer_of(&pr);
    let (cpu, dev) = run(&layer, &f32s(&pr.c, 1e20), &r);
    assert!(matches!(cpu, Error::Overflow { arg: "normal_matrix", .. }), "{cpu:?}");
    same(cpu, dev, "normal matrix");
    let (cpu, dev) = run(&layer, &c, &vec![f32::MAX; r.len()]);
    same(cpu, dev, "u");
    // u ≈ 1e30, grad_u = 1e10: λ finite, ∂ℓ/∂C ≈ 1e40 overflows.
    let big_r = f32s(&pr.r, 1e30);
    let cpu_f = layer.forward(Inputs { coefficients: &c, rhs_equation: &big_r, init_vars: &v, steps: &h }, &p).unwrap();
    let gu = vec![1e10f32; cpu_f.u().len()];
    let cpu = cpu_f.backward(&gu, &p).map(|_| ()).unwrap_err();
    let up = |x: &[f32], shape: &[usize]| gpu.upload(x, shape).unwrap();
    let (dc, dr, dv, dh) = (up(&c, &layer.coefficients_shape()), up(&big_r, &layer.rhs_equation_shape()), up(&v, &layer.init_vars_shape()), up(&h, &layer.steps_shape()));
    let dev_f = layer.forward_cuda(DeviceInputs { coefficients: &dc, rhs_equation: &dr, init_vars: &dv, steps: &dh }, &p).unwrap();
    let dev = dev_f.backward(&up(&gu, &layer.u_shape()), &p).map(|_| ()).unwrap_err();
    assert!(matches!(cpu, Error::Overflow { arg: "grad_coefficients", .. }), "{cpu:?}");
    same(cpu, dev, "S-MNN gradient");
    let heavy = Smnn::new(Options { weight_equation: 1e20, ..*layer.options() }, InputShapes {
        coefficients: &layer.coefficients_shape(),
        rhs_equation: &layer.rhs_equation_shape(),
        init_vars: &layer.init_vars_shape(),
        steps: &layer.steps_shape(),
    })
    .unwrap();
    let (cpu, dev) = run(&heavy, &c, &r);
    assert!(matches!(cpu, Error::InvalidArgument { arg: "weight_equation", .. }), "{cpu:?}");
    same(cpu, dev, "weight");
}

/// The reference vectors (`tests/data/`: SciPy/LAPACK for the band solver, the paper's dense
/// formulation for S-MNN) through the device path, against the files' values with the CPU
/// vector tests' tolerances (1e-10 band, 1e-9 S-MNN).
fn reference_vectors(gpu: &CudaBackend) {
    let p = reference();
    for file in ["band_tridiag.npz", "band_kd4.npz", "band_kd17.npz", "band_dense_edge.npz"] {
        let (abs, ab) = common::npz_array(file, "ab");
        let (batch, kd, n) = (abs[0], abs[1] - 1, abs[2]);
        let (rs, rhs) = common::npz_array(file, "rhs");
        let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
        let l = DeviceCholesky::factor(&gpu.upload_band(&a).unwrap(), &p).unwrap();
        let x = l.solve(&gpu.upload(&rhs, &rs).unwrap(), &p).unwrap();
        let check = |what: &str, got: &[f64], key: &str| {
            let e = rel_err(got, &common::npz_array(file, key).1);
            assert!(e < 1e-10, "{file}: {what} {e:.2e}");
        };
        check("x", &x.to_host().unwrap(), "x");
        check("logdet", &l.logdet().unwrap().to_host().unwrap(), "logdet");
        let (_, gx) = common::npz_array(file, "grad_x");
        let g = l.backward(&x, &gpu.upload(&gx, &rs).unwrap(), &p).unwrap();
        check("grad_rhs", &g.rhs.to_host().unwrap(), "grad_rhs");
        let mut gab = g.ab.to_host().unwrap().to_lower_band().unwrap();
        let mut want = common::npz_array(file, "grad_ab").1;
        // SciPy's ignored corner entries (below the matrix) are not part of the gradient.
        for s in 0..batch {
            for d in 0..=kd {
                for j in n.saturating_sub(d)..n {
                    gab[(s * (kd + 1) + d) * n + j] = 0.0;
                    want[(s * (kd + 1) + d) * n + j] = 0.0;
                }
            }
        }
        let e = rel_err(&gab, &want);
        assert!(e < 1e-10, "{file}: grad_ab {e:.2e}");
        let key = file.trim_start_matches("band_").trim_end_matches(".npz");
        let z = l.inverse_band(&p).unwrap().to_host().unwrap().to_lower_band().unwrap();
        let e = rel_err(&z, &common::npz_array("inverse_band.npz", key).1);
        assert!(e < 1e-10, "{file}: inverse_band {e:.2e}");
    }
    for file in ["smnn_tiny.npz", "smnn_tiny_central.npz", "smnn_broadcast.npz", "smnn_scalar_ode.npz", "smnn_weighted.npz"] {
        let arr = |key: &str| common::npz_array(file, key);
        let ((cs, c), (rs, r), (vs, v), (hs, h)) = (arr("coefficients"), arr("rhs_equation"), arr("init_vars"), arr("steps"));
        let options = common::smnn_npz_options(file);
        let layer = Smnn::new(options, InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs }).unwrap();
        let up = |x: &[f64], shape: &[usize]| gpu.upload(x, shape).unwrap();
        let (dc, dr, dv, dh) = (up(&c, &cs), up(&r, &rs), up(&v, &vs), up(&h, &hs));
        let fwd = layer.forward_cuda(DeviceInputs { coefficients: &dc, rhs_equation: &dr, init_vars: &dv, steps: &dh }, &p).unwrap();
        let g = fwd.backward(&up(&arr("grad_u").1, &layer.u_shape()), &p).unwrap();
        for (key, got) in [("u", fwd.u()), ("grad_coefficients", &g.coefficients), ("grad_rhs_equation", &g.rhs_equation), ("grad_init_vars", &g.init_vars), ("grad_steps", &g.steps)] {
            let e = rel_err(&got.to_host().unwrap(), &arr(key).1);
            assert!(e < 1e-9, "{file}: {key} {e:.2e}");
        }
    }
}

#[test]
fn no_cuda_is_an_error_not_a_panic() {
    // A device that no machine has: always an error (no CUDA, or too few devices).
    let e = CudaBackend::new(1 << 20).unwrap_err();
    assert!(matches!(e, Error::Cuda { .. }), "{e}");
    match CudaBackend::new(0) {
        Ok(gpu) => eprintln!("device present: {}", gpu.describe()),
        Err(e) => {
            assert!(matches!(e, Error::Cuda { .. }), "{e}");
            eprintln!("no CUDA device here: {e}");
        }
    }
}

#[test]
fn nvrtc_compiles_every_kernel_without_warnings() {
    if !nvrtc::nvrtc_present() {
        assert!(std::env::var_os("CI").is_none(), "CI must run the NVRTC compile test: libnvrtc is not on LD_LIBRARY_PATH");
        eprintln!("skipped: libnvrtc not found (pip install nvidia-cuda-nvrtc and put its lib folder on LD_LIBRARY_PATH)");
        return;
    }
    for (name, src) in nvrtc::KERNEL_SOURCES {
        for arch in ["sm_80", "sm_90"] {
            let out = nvrtc::compile(name, src, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(out.log.is_empty(), "{name} for {arch}: NVRTC said:\n{}", out.log);
            for kernel in kernel_names(src) {
                for suffix in ["f32", "f64"] {
                    assert!(out.ptx.contains(&format!(".entry {kernel}_{suffix}(")), "{name} for {arch}: no entry {kernel}_{suffix}");
                }
            }
        }
    }
    // A broken source reports NVRTC's log.
    let e = nvrtc::compile("broken.cu", "__global__ void k() { undefined_thing(); }", "sm_90").unwrap_err();
    assert!(e.to_string().contains("undefined_thing"), "{e}");
}

/// The kernels a source declares with `BANDED_KERNEL(name, …)`.
fn kernel_names(src: &str) -> Vec<&str> {
    src.match_indices("BANDED_KERNEL(").map(|(i, m)| src[i + m.len()..].split(',').next().unwrap().trim()).collect()
}

/// A real device if this machine has one.
fn device() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            None
        }
    }
}

#[test]
fn device_band_ops_match_cpu() {
    let Some(gpu) = device() else { return };
    for (batch, n, kd, nrhs) in [(1, 1, 0, 1), (7, 40, 3, 2), (33, 100, 17, 1), (16, 20, 30, 3), (4096, 64, 4, 1)] {
        band_case::<f64>(&gpu, 1, batch, n, kd, nrhs);
        band_case::<f32>(&gpu, 2, batch, n, kd, nrhs);
    }
    band_errors(&gpu);
    reference_vectors(&gpu);
}

#[test]
fn device_smnn_matches_cpu() {
    let Some(gpu) = device() else { return };
    for spec in smnn_specs() {
        smnn_case::<f64>(&gpu, &spec);
        smnn_case::<f32>(&gpu, &Spec { h: (0.8, 1.0), ..spec });
    }
    smnn_errors(&gpu);
    overflow_errors(&gpu, false);
}

#[cfg(feature = "cuda-emulator")]
mod emulator {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn band_ops_match_cpu(seed in 0u64..1000, batch in 1usize..10, n in 1usize..40, kd in 0usize..12, nrhs in 1usize..4) {
            let gpu = CudaBackend::emulator();
            band_case::<f64>(&gpu, seed, batch, n, kd, nrhs);
            band_case::<f32>(&gpu, seed, batch, n, kd, nrhs);
        }
    }

    #[test]
    fn band_edges_match_cpu() {
        let gpu = CudaBackend::emulator();
        // kd ≥ n − 1 (the whole lower triangle), kd = 0, one system, more than one block of threads.
        for (batch, n, kd, nrhs) in [(1, 1, 0, 1), (2, 5, 4, 2), (3, 5, 9, 1), (4, 30, 0, 2), (300, 6, 2, 1)] {
            band_case::<f64>(&gpu, 3, batch, n, kd, nrhs);
            band_case::<f32>(&gpu, 4, batch, n, kd, nrhs);
        }
    }

    #[test]
    fn band_errors_match_cpu() {
        band_errors(&CudaBackend::emulator());
    }

    #[test]
    fn smnn_matches_cpu() {
        let gpu = CudaBackend::emulator();
        for spec in smnn_specs() {
            smnn_case::<f64>(&gpu, &spec);
            smnn_case::<f32>(&gpu, &Spec { h: (0.8, 1.0), ..spec });
        }
    }

    #[test]
    fn reference_vectors_match() {
        reference_vectors(&CudaBackend::emulator());
    }

    #[test]
    fn smnn_errors_match_cpu() {
        smnn_errors(&CudaBackend::emulator());
    }

    #[test]
    fn overflow_errors_match_cpu() {
        overflow_errors(&CudaBackend::emulator(), true);
    }

    #[test]
    fn arrays_round_trip_and_stay_on_their_backend() {
        let gpu = CudaBackend::emulator();
        let data: Vec<f64> = (0..24).map(|x| x as f64).collect();
        let a = gpu.upload(&data, &[2, 3, 4]).unwrap();
        assert_eq!(a.to_host().unwrap(), data);
        assert_eq!((a.batch(), a.system_len(), a.len()), (2, 12, 24));
        // An array of another handle is refused, not misread.
        let other = CudaBackend::emulator();
        let (ab, _, _) = band_problem::<f64>(1, 2, 4, 1, 1);
        let l = DeviceCholesky::factor(&other.upload_band(&ab).unwrap(), &reference()).unwrap();
        let b = gpu.upload(&[1.0; 8], &[2, 4, 1]).unwrap();
        assert!(matches!(l.solve(&b, &reference()), Err(Error::InvalidArgument { arg: "rhs", .. })));
    }
}
