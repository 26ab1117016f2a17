//! Hardening (issue 12): the safe API never panics and never answers wrongly at the edges of
//! arithmetic — indices and sizes that overflow `usize`, thread counts at `usize::MAX`, absurd
//! allocations, weights and inputs whose squares or solutions overflow the precision. Each case
//! gets the error that names what was wrong (see README, "Errors and robustness").

mod common;

use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, PackedBandBatch, PackedBatchMatrix, Par, Params};
use common::assert_same_bits;

fn p() -> Params {
    Params::default()
}

/// Tridiagonal `[-1, 4, -1]` systems of order `n` (well conditioned), interchange layout.
fn tridiag<T: banded::Real>(batch: usize, n: usize) -> BandBatch<T> {
    let mut ab = Vec::new();
    for _ in 0..batch {
        ab.extend(std::iter::repeat_n(T::from_f64(4.0), n));
        ab.extend(std::iter::repeat_n(T::from_f64(-1.0), n));
    }
    BandBatch::from_lower_band(&ab, batch, n, 1).unwrap()
}

fn rhs<T: banded::Real>(batch: usize, n: usize, nrhs: usize) -> BatchMatrix<T> {
    let data = (0..batch * n * nrhs).map(|k| T::from_f64(((k * 7 % 13) as f64 - 6.0) / 3.0)).collect();
    BatchMatrix::new(data, batch, n, nrhs).unwrap()
}

#[test]
fn huge_indices_are_out_of_range_not_wrapped() {
    let a = tridiag::<f64>(3, 5);
    let b = rhs::<f64>(3, 5, 2);
    for s in [3, 1 << 62, usize::MAX / 2 + 1, usize::MAX] {
        assert!(a.system(s).is_none(), "system({s})");
        assert!(b.matrix(s).is_none(), "matrix({s})");
        assert!(a.get(s, 0, 0).is_none() && b.get(s, 0, 0).is_none());
    }
    assert!(a.get(0, usize::MAX, 0).is_none() && a.get(0, 0, usize::MAX).is_none());
    assert!(b.get(0, usize::MAX, 0).is_none() && b.get(0, 0, usize::MAX).is_none());
    assert_eq!(a.system(2).unwrap().len(), 5 * 2);
    assert_eq!(b.matrix(2).unwrap(), &b.as_slice()[20..30]);
}

#[test]
fn rayon_usize_max_is_the_same_as_seq() {
    // `Par::rayon(usize::MAX)` overflowed in the task-size computation (4·k).
    for batch in [1, 9, 33] {
        let a = tridiag::<f64>(batch, 12);
        let b = rhs::<f64>(batch, 12, 2);
        let seq = Params::default().with_par(Par::Seq);
        let max = Params::default().with_par(Par::rayon(usize::MAX));
        let (fs, fm) = (Cholesky::factor(&a, &seq).unwrap(), Cholesky::factor(&a, &max).unwrap());
        assert_same_bits(fs.l().as_slice(), fm.l().as_slice(), format!("batch {batch}: L"));
        assert_same_bits(fs.solve(&b, &seq).unwrap().as_slice(), fm.solve(&b, &max).unwrap().as_slice(), format!("batch {batch}: x"));
        let x = fs.solve(&b, &seq).unwrap();
        let (gs, gm) = (fs.backward(&x, &b, &seq).unwrap(), fm.backward(&x, &b, &max).unwrap());
        assert_same_bits(gs.rhs.as_slice(), gm.rhs.as_slice(), format!("batch {batch}: grad_rhs"));
        assert_same_bits(gs.ab.as_slice(), gm.ab.as_slice(), format!("batch {batch}: grad_ab"));
    }
    let (l, d) = smnn_problem::<f64>(Options::default());
    let seq = l.forward(d.inputs(), &Params::default().with_par(Par::Seq)).unwrap();
    let max = l.forward(d.inputs(), &Params::default().with_par(Par::rayon(usize::MAX))).unwrap();
    assert_same_bits(seq.u(), max.u(), "S-MNN u");
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    // Overflowing usize.
    let e = BatchMatrix::<f64>::zeros(usize::MAX, 2, 1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { arg: "shape", ref reason } if reason.contains("overflows")), "{e}");
    let e = BandBatch::<f64>::zeros(usize::MAX / 2, 2, 1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("overflow"), "{e}");
    // Representable, but far beyond any memory (2⁶⁰ elements, 8 EiB): an error, not an abort.
    let e = BatchMatrix::<f64>::zeros(1 << 30, 1 << 30, 1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { ref reason, .. } if reason.contains("cannot allocate")), "{e}");
    let e = BandBatch::<f64>::zeros(1 << 40, 1 << 20, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { ref reason, .. } if reason.contains("cannot allocate")), "{e}");
    // A layer whose band would not fit in usize.
    let big = usize::MAX / 4;
    let shapes = InputShapes { coefficients: &[2, big, 1, 2, 2], rhs_equation: &[2, 1, 1], init_vars: &[2, 1, 2, 1], steps: &[2, 1] };
    let e = Smnn::new(Options::default(), shapes).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { arg: "shape", .. }), "{e}");
}

#[test]
fn a_solution_beyond_the_precision_is_an_overflow_error() {
    // A = 1e-30·I in f32 (L = 1e-15), b = 1e30: x = 1e60 overflows f32.
    let (batch, n) = (2, 4);
    let ab: Vec<f32> = (0..batch).flat_map(|_| [vec![1e-30f32; n], vec![0.0; n]].concat()).collect();
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let chol = Cholesky::factor(&a, &p()).unwrap();
    let b = BatchMatrix::new(vec![1e30f32; batch * n], batch, n, 1).unwrap();
    let e = chol.solve(&b, &p()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "x", ref index, .. } if index == &vec![0, 0, 0]), "{e:?}");
    let msg = e.to_string();
    // (∞ in the substitution, then 0·∞ = NaN with the zero off-diagonal.)
    assert!(msg.contains("`x`") && msg.contains("overflows") && msg.contains("every input is finite"), "{msg}");
    // The same through the fused factor + solve.
    let mut b2 = b.clone();
    assert!(matches!(Cholesky::factor_solve(a.clone(), &mut b2, &p()), Err(Error::Overflow { arg: "x", .. })));
    // Unchecked, the caller asked for the raw result.
    let x = chol.solve(&b, &p().with_check_finite(false)).unwrap();
    assert!(x.as_slice().iter().all(|v| !v.is_finite()));
    // A finite solution from the same factor is fine.
    let small = BatchMatrix::new(vec![1e-20f32; batch * n], batch, n, 1).unwrap();
    assert!(chol.solve(&small, &p()).is_ok());
}

#[test]
fn a_gradient_beyond_the_precision_is_an_overflow_error() {
    // A = I, x = grad_x = 1e20: λ = 1e20 is finite, ∂ℓ/∂a_jj = −λ_j x_j = −1e40 is not (f32).
    let (batch, n) = (1, 3);
    let mut ab = vec![1.0f32; n];
    ab.extend(vec![0.0f32; n]);
    let a = BandBatch::from_lower_band(&ab, batch, n, 1).unwrap();
    let chol = Cholesky::factor(&a, &p()).unwrap();
    let x = BatchMatrix::new(vec![1e20f32; n], batch, n, 1).unwrap();
    let e = chol.backward(&x, &x, &p()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "grad_ab", ref index, .. } if index == &vec![0, 0, 0]), "{e:?}");
}

#[test]
fn an_inverse_beyond_the_precision_is_an_overflow_error() {
    // A = 1e-30·I in f32: A⁻¹ = 1e30·I is finite, 1e-40 (a subnormal pivot) gives 1e40, which is not.
    let (batch, n) = (2, 3);
    let ab: Vec<f32> = (0..batch).flat_map(|s| [vec![if s == 0 { 1e-30f32 } else { 1e-40 }; n], vec![0.0; n]].concat()).collect();
    let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, batch, n, 1).unwrap(), &p()).unwrap();
    let e = chol.inverse_band(&p()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "inverse_band", ref index, .. } if index == &vec![1, 0, 0]), "{e:?}");
    assert!(matches!(chol.logdet_backward(&[1.0, 1.0], &p()), Err(Error::Overflow { arg: "grad_ab", .. })));
    let mut wrong = BandBatch::zeros(batch, n, 2).unwrap();
    assert!(matches!(chol.inverse_band_into(&mut wrong, &p()), Err(Error::Shape { arg: "out", .. })));
    // Unchecked, the raw result; system 0 alone is fine.
    let z = chol.inverse_band(&p().with_check_finite(false)).unwrap();
    assert!(z.get(0, 1, 1).is_some_and(|v| (v / 1e30 - 1.0).abs() < 1e-6));
    assert!(z.get(1, 0, 0).is_some_and(|v| !v.is_finite()));
}

#[test]
fn grad_logdet_is_checked() {
    let (batch, n) = (3, 4);
    let ab: Vec<f64> = (0..batch).flat_map(|_| [vec![2.0; n], vec![-1.0; n]].concat()).collect();
    let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, batch, n, 1).unwrap(), &p()).unwrap();
    let e = chol.logdet_backward(&[1.0; 2], &p()).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "grad_logdet", .. }), "{e:?}");
    assert!(e.to_string().contains("(3,)") && e.to_string().contains("(2,)"), "{e}");
    let e = chol.logdet_backward(&[1.0, f64::NAN, 1.0], &p()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { arg: "grad_logdet", ref index, .. } if index == &vec![1]), "{e:?}");
    let x = BatchMatrix::new(vec![1.0; batch * n], batch, n, 1).unwrap();
    let e = chol.backward_with_logdet(&x, &x, &[1.0; 4], &p()).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "grad_logdet", .. }), "{e:?}");
    let e = chol.backward_with_logdet(&x, &x, &[0.0, 0.0, f64::INFINITY], &p()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { arg: "grad_logdet", .. }), "{e:?}");
    // A zero grad_logdet adds nothing: the combined backward is the solve's.
    assert_eq!(chol.backward_with_logdet(&x, &x, &[0.0; 3], &p()).unwrap(), chol.backward(&x, &x, &p()).unwrap());
}

/// An S-MNN layer (batch 2, T 6, E 1, D 1, O 2, S 1, I 1) and inputs of `T`, well posed.
fn smnn_problem<T: banded::Real>(opts: Options) -> (Smnn, Data<T>) {
    let shapes = InputShapes { coefficients: &[2, 6, 1, 1, 2], rhs_equation: &[2, 6, 1], init_vars: &[2, 1, 1, 1], steps: &[2, 5] };
    let layer = Smnn::new(opts, shapes).unwrap();
    let f = |k: usize, len: usize, g: &dyn Fn(usize) -> f64| (0..len).map(|i| T::from_f64(g(i + k))).collect::<Vec<T>>();
    let d = Data {
        c: f(0, 24, &|i| if i % 2 == 0 { 0.5 } else { 1.0 + 0.1 * (i % 5) as f64 }),
        r: f(0, 12, &|i| (i as f64 * 0.7).sin()),
        v: f(0, 2, &|_| 0.25),
        h: f(0, 10, &|_| 0.1),
    };
    (layer, d)
}

struct Data<T> {
    c: Vec<T>,
    r: Vec<T>,
    v: Vec<T>,
    h: Vec<T>,
}

impl<T: banded::Real> Data<T> {
    fn inputs(&self) -> Inputs<'_, T> {
        Inputs { coefficients: &self.c, rhs_equation: &self.r, init_vars: &self.v, steps: &self.h }
    }
}

#[test]
fn a_weight_whose_square_overflows_is_named() {
    // 1e20 is a finite f32, but it enters M squared: 1e40 overflows f32 (and was reported as
    // "system 0 is not positive definite at column 0").
    for (arg, opts) in [
        ("weight_equation", Options { weight_equation: 1e20, ..Options::default() }),
        ("weight_init_var", Options { weight_init_var: 1e20, ..Options::default() }),
        ("weight_smooth", Options { weight_smooth: 1e20, ..Options::default() }),
    ] {
        let (l, d) = smnn_problem::<f32>(opts);
        let e = l.forward(d.inputs(), &p()).map(|_| ()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: a, ref reason } if a == arg && reason.contains("float32")), "{e:?}");
        let e = l.freeze(&d.c, &d.h, &p()).map(|_| ()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: a, .. } if a == arg), "{e:?}");
        // The same weight is representable squared in f64 (the system may still be singular).
        let (l, d) = smnn_problem::<f64>(opts);
        if let Err(e) = l.forward(d.inputs(), &p()) {
            assert!(matches!(e, Error::NotPositiveDefinite { .. }), "{e:?}");
        }
    }
    // And 1e200 overflows f64 when squared.
    let (l, d) = smnn_problem::<f64>(Options { weight_smooth: 1e200, ..Options::default() });
    let e = l.forward(d.inputs(), &p()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { arg: "weight_smooth", ref reason } if reason.contains("float64")), "{e:?}");
}

#[test]
fn an_overflowing_normal_matrix_is_named() {
    // Coefficients of 1e20 in f32: M = AᵀA holds 1e40.
    let (l, mut d) = smnn_problem::<f32>(Options::default());
    d.c.iter_mut().for_each(|c| *c *= 1e20);
    let e = l.forward(d.inputs(), &p()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "normal_matrix", ref index, .. } if index.len() == 3 && index[0] == 0), "{e:?}");
    assert!(matches!(l.freeze(&d.c, &d.h, &p()).map(|_| ()), Err(Error::Overflow { arg: "normal_matrix", .. })));
}

#[test]
fn an_overflowing_trajectory_is_an_overflow_error() {
    // Right-hand sides at f32's largest value: Aᵀβ sums several of them.
    let (l, mut d) = smnn_problem::<f32>(Options::default());
    d.r.iter_mut().for_each(|r| *r = f32::MAX);
    let e = l.forward(d.inputs(), &p()).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "u", .. }), "{e:?}");
    let frozen = l.freeze(&d.c, &d.h, &p()).unwrap();
    assert!(matches!(frozen.forward(&d.r, &d.v, &p()), Err(Error::Overflow { arg: "u", .. })));
    // Without the checks the result is reported as non-finite (the inputs were not checked).
    let e = l.forward(d.inputs(), &p().with_check_finite(false)).map(|_| ()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { arg: "u", .. }), "{e:?}");
    // The backward's gradients: a cotangent at f32's largest value overflows λ or a gradient.
    let (l, d) = smnn_problem::<f32>(Options::default());
    let f = l.forward(d.inputs(), &p()).unwrap();
    let gu = vec![f32::MAX; f.u().len()];
    let e = f.backward(&gu, &p()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "lambda" | "grad_coefficients" | "grad_rhs_equation" | "grad_init_vars" | "grad_steps", .. }), "{e:?}");
    let frozen = l.freeze(&d.c, &d.h, &p()).unwrap();
    assert!(matches!(frozen.backward(&gu, &p()), Err(Error::Overflow { .. })));
}

#[test]
fn an_overflowing_gradient_of_a_finite_lambda_is_named() {
    // u ≈ 1e30 (right-hand sides of 1e30) and grad_u = 1e10: λ ≈ 1e10 and ∂ℓ/∂β are finite,
    // ∂ℓ/∂C = −ρλᵀ − (Aλ)uᵀ ≈ 1e40 is not (f32).
    let (l, mut d) = smnn_problem::<f32>(Options::default());
    d.r.iter_mut().for_each(|r| *r *= 1e30);
    let f = l.forward(d.inputs(), &p()).unwrap();
    let gu = vec![1e10f32; f.u().len()];
    let e = f.backward(&gu, &p()).unwrap_err();
    assert!(matches!(e, Error::Overflow { arg: "grad_coefficients", .. }), "{e:?}");
    // Unchecked, the gradients come back as computed.
    let g = f.backward(&gu, &p().with_check_finite(false)).unwrap();
    assert!(g.coefficients.iter().any(|v| !v.is_finite()) && g.rhs_equation.iter().all(|v| v.is_finite()));
}

/// `solve_packed_in_place` of finite right-hand sides whose solution overflows: `Error::Overflow`
/// naming `x` at the first non-finite entry (interchange index `(s, i, r)`), as `solve` reports
/// it for the same factor; the raw solution is left in place (unchecked: returned as it is).
#[test]
fn a_packed_solution_beyond_the_precision_is_an_overflow_error() {
    // 17 f32 systems, a 16-lane pack and one after it. System `bad` is 1e-30·I (L = 1e-15), the
    // others I: with b = 1e30 everywhere, x = 1e60 overflows in system `bad` alone.
    let (batch, n, kd) = (17, 4, 1);
    for bad in [5, 16] {
        let ab: Vec<f32> = (0..batch).flat_map(|s| [vec![if s == bad { 1e-30f32 } else { 1.0 }; n], vec![0.0; n]].concat()).collect();
        let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
        let chol = Cholesky::factor_packed(PackedBandBatch::from_band(&a, 16).unwrap(), &p()).unwrap();
        assert_eq!(chol.lanes(), 16);
        let b = BatchMatrix::new(vec![1e30f32; batch * n * 2], batch, n, 2).unwrap();
        let mut bp = PackedBatchMatrix::from_matrix(&b, 16).unwrap();
        let e = chol.solve_packed_in_place(&mut bp, &p()).unwrap_err();
        assert!(matches!(e, Error::Overflow { arg: "x", ref index, .. } if index == &vec![bad, 0, 0]), "system {bad}: {e:?}");
        assert_eq!(chol.solve(&b, &p()).unwrap_err(), e, "system {bad}: solve reports the same overflow");
        // The raw solution is left in place, as the unchecked solve gives it.
        let raw = chol.solve(&b, &p().with_check_finite(false)).unwrap();
        assert_same_bits(bp.into_matrix().as_slice(), raw.as_slice(), format!("system {bad}: the raw solution"));
        // A solution within the precision from the same factor is fine.
        let small = BatchMatrix::new(vec![1e-20f32; batch * n * 2], batch, n, 2).unwrap();
        assert!(chol.solve_packed_in_place(&mut PackedBatchMatrix::from_matrix(&small, 16).unwrap(), &p()).is_ok());
    }
}

/// `inverse_band_into` for a nearly singular but finite f32 system (its inverse beyond the
/// largest finite f32): `Error::Overflow` naming `inverse_band` at the first non-finite entry,
/// as `inverse_band` reports it, with `out` holding the raw result (the unchecked inverse).
#[test]
fn inverse_band_into_of_a_nearly_singular_system_is_an_overflow_error() {
    // System `bad` is c·[[1, a], [a, 1]] with c = 1e-36, a = 1 − 2⁻¹⁰ (all normal f32): its
    // inverse is [[1, −a], [−a, 1]]/(c(1 − a²)) ≈ 5e38, beyond f32::MAX ≈ 3.4e38. The others
    // are [[2, −1], [−1, 2]]. Batch 17: a 16-lane pack and a system after it.
    let (batch, n, kd) = (17, 2, 1);
    let (c, a) = (1e-36f32, 1.0 - 1.0 / 1024.0f32);
    for bad in [3, 16] {
        let ab: Vec<f32> = (0..batch).flat_map(|s| if s == bad { [c, c, a * c, 0.0] } else { [2.0, 2.0, -1.0, 0.0] }).collect();
        let chol = Cholesky::factor(&BandBatch::from_lower_band(&ab, batch, n, kd).unwrap(), &p()).unwrap();
        assert!(chol.lanes() > 1, "the batch runs in packs");
        let e = chol.inverse_band(&p()).unwrap_err();
        assert!(matches!(e, Error::Overflow { arg: "inverse_band", ref index, .. } if index == &vec![bad, 0, 0]), "system {bad}: {e:?}");
        let mut out = BandBatch::new(vec![f32::NAN; batch * n * (kd + 1)], batch, n, kd).unwrap();
        assert_eq!(chol.inverse_band_into(&mut out, &p()).unwrap_err(), e, "system {bad}: inverse_band_into");
        let raw = chol.inverse_band(&p().with_check_finite(false)).unwrap();
        assert_same_bits(out.as_slice(), raw.as_slice(), format!("system {bad}: out holds the raw result"));
        assert!(raw.get(bad, 1, 1).is_some_and(|v| v == f32::INFINITY), "system {bad}: Z[1, 1] = {:?}", raw.get(bad, 1, 1));
        // Unchecked into `out`: the same raw result, and no error.
        let mut out2 = BandBatch::new(vec![f32::NAN; batch * n * (kd + 1)], batch, n, kd).unwrap();
        chol.inverse_band_into(&mut out2, &p().with_check_finite(false)).unwrap();
        assert_same_bits(out2.as_slice(), raw.as_slice(), format!("system {bad}: unchecked inverse_band_into"));
    }
}
