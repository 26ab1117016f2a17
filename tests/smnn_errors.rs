//! Every error of the S-MNN layer through the public API: shapes (which input, which axis,
//! expected vs got), I > O, S > T, T < 2, central with O < 2, weights, non-finite values,
//! non-positive steps, singular normal matrices (with the system index), and no panic on
//! arbitrary shapes and lengths.

use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::{Error, Params};
use proptest::prelude::*;

/// batch 2, T 5, E 2, D 2, O 3, S 1, I 2; every step axis full.
const CS: [usize; 5] = [2, 5, 2, 2, 3];
const RS: [usize; 3] = [2, 5, 2];
const VS: [usize; 4] = [2, 1, 2, 2];
const HS: [usize; 2] = [2, 4];

fn shapes<'a>(c: &'a [usize], r: &'a [usize], v: &'a [usize], h: &'a [usize]) -> InputShapes<'a> {
    InputShapes { coefficients: c, rhs_equation: r, init_vars: v, steps: h }
}

fn new(o: Options, c: &[usize], r: &[usize], v: &[usize], h: &[usize]) -> Result<Smnn, Error> {
    Smnn::new(o, shapes(c, r, v, h))
}

fn good() -> Smnn {
    new(Options::default(), &CS, &RS, &VS, &HS).unwrap()
}

/// Well-posed data for `good()`.
struct Data {
    c: Vec<f64>,
    r: Vec<f64>,
    v: Vec<f64>,
    h: Vec<f64>,
}

fn data() -> Data {
    let c = (0..CS.iter().product::<usize>()).map(|k| ((k * 37 % 11) as f64 - 5.0) / 5.0 + 0.1).collect();
    let r = (0..RS.iter().product::<usize>()).map(|k| (k as f64).sin()).collect();
    let v = vec![0.5; VS.iter().product()];
    let h = vec![0.3; HS.iter().product()];
    Data { c, r, v, h }
}

impl Data {
    fn inputs(&self) -> Inputs<'_, f64> {
        Inputs { coefficients: &self.c, rhs_equation: &self.r, init_vars: &self.v, steps: &self.h }
    }
}

fn shape_err(e: Error, want_arg: &str) -> (String, String) {
    match e {
        Error::Shape { arg, expected, got } => {
            assert_eq!(arg, want_arg, "expected={expected} got={got}");
            (expected, got)
        }
        e => panic!("expected a shape error for {want_arg}, got {e:?}"),
    }
}

fn invalid(e: Error, want_arg: &str) -> String {
    match e {
        Error::InvalidArgument { arg, reason } => {
            assert_eq!(arg, want_arg, "{reason}");
            reason
        }
        e => panic!("expected InvalidArgument for {want_arg}, got {e:?}"),
    }
}

#[test]
fn good_inputs_work() {
    let d = data();
    let l = good();
    assert_eq!((l.n_steps(), l.block(), l.n(), l.kd()), (5, 6, 30, 8));
    let f = l.forward(d.inputs(), &Params::default()).unwrap();
    assert!(f.u().iter().all(|x| x.is_finite()));
}

#[test]
fn wrong_rank() {
    shape_err(new(Options::default(), &CS[..4], &RS, &VS, &HS).unwrap_err(), "coefficients");
    shape_err(new(Options::default(), &CS, &[2, 5], &VS, &HS).unwrap_err(), "rhs_equation");
    shape_err(new(Options::default(), &CS, &RS, &[2, 1, 2, 2, 1], &HS).unwrap_err(), "init_vars");
    shape_err(new(Options::default(), &CS, &RS, &VS, &[2]).unwrap_err(), "steps");
}

#[test]
fn mismatched_axes() {
    // batch
    let (exp, got) = shape_err(new(Options::default(), &CS, &[3, 5, 2], &VS, &HS).unwrap_err(), "rhs_equation");
    assert!(exp.contains("batch=2") && got == "(3, 5, 2)", "{exp} / {got}");
    shape_err(new(Options::default(), &CS, &RS, &[1, 1, 2, 2], &HS).unwrap_err(), "init_vars");
    shape_err(new(Options::default(), &CS, &RS, &VS, &[1, 4]).unwrap_err(), "steps");
    // E, D
    shape_err(new(Options::default(), &CS, &[2, 5, 3], &VS, &HS).unwrap_err(), "rhs_equation");
    shape_err(new(Options::default(), &CS, &RS, &[2, 1, 3, 2], &HS).unwrap_err(), "init_vars");
    // step axes: T inferred from coefficients (5)
    let (exp, _) = shape_err(new(Options::default(), &CS, &[2, 6, 2], &VS, &HS).unwrap_err(), "rhs_equation");
    assert!(exp.contains("T=5 or 1"), "{exp}");
    let (exp, _) = shape_err(new(Options::default(), &CS, &RS, &VS, &[2, 5]).unwrap_err(), "steps");
    assert!(exp.contains("T−1=4 or 1"), "{exp}");
    // n_steps disagreeing with the arrays
    let o = Options { n_steps: Some(6), ..Options::default() };
    shape_err(new(o, &CS, &RS, &VS, &HS).unwrap_err(), "coefficients");
    // zero batch, D, O
    shape_err(new(Options::default(), &[0, 5, 2, 2, 3], &RS, &VS, &HS).unwrap_err(), "coefficients");
    shape_err(new(Options::default(), &[2, 5, 2, 0, 3], &RS, &[2, 1, 0, 2], &HS).unwrap_err(), "coefficients");
}

#[test]
fn init_bounds() {
    // I > O
    let (exp, _) = shape_err(new(Options::default(), &CS, &RS, &[2, 1, 2, 4], &HS).unwrap_err(), "init_vars");
    assert!(exp.contains("I ≤ O=3"), "{exp}");
    // S > T
    let (exp, _) = shape_err(new(Options::default(), &CS, &RS, &[2, 6, 2, 2], &HS).unwrap_err(), "init_vars");
    assert!(exp.contains("S ≤ T=5"), "{exp}");
    // S = T and I = O are fine.
    new(Options::default(), &CS, &RS, &[2, 5, 2, 3], &HS).unwrap();
}

#[test]
fn too_few_steps() {
    let r = invalid(new(Options::default(), &[2, 1, 2, 2, 3], &[2, 1, 2], &[2, 1, 2, 2], &[2, 0]).unwrap_err(), "n_steps");
    assert!(r.contains("T = 1"), "{r}");
    let o = Options { n_steps: Some(1), ..Options::default() };
    invalid(new(o, &[2, 1, 2, 2, 3], &[2, 1, 2], &[2, 1, 2, 2], &[2, 1]).unwrap_err(), "n_steps");
    // Every step axis broadcast: T must be given.
    invalid(new(Options::default(), &[2, 1, 2, 2, 3], &[2, 1, 2], &[2, 1, 2, 2], &[2, 1]).unwrap_err(), "n_steps");
    let o = Options { n_steps: Some(9), ..Options::default() };
    assert_eq!(new(o, &[2, 1, 2, 2, 3], &[2, 1, 2], &[2, 1, 2, 2], &[2, 1]).unwrap().n_steps(), 9);
}

#[test]
fn central_needs_two_orders() {
    let o = Options { central: true, ..Options::default() };
    let r = invalid(new(o, &[2, 5, 2, 2, 1], &RS, &[2, 1, 2, 1], &HS).unwrap_err(), "central");
    assert!(r.contains("O = 1"), "{r}");
    assert_eq!(new(o, &CS, &RS, &VS, &HS).unwrap().kd(), 12);
}

#[test]
fn bad_weights() {
    for (o, arg) in [
        (Options { weight_equation: -1.0, ..Options::default() }, "weight_equation"),
        (Options { weight_init_var: f64::NAN, ..Options::default() }, "weight_init_var"),
        (Options { weight_smooth: f64::INFINITY, ..Options::default() }, "weight_smooth"),
    ] {
        invalid(new(o, &CS, &RS, &VS, &HS).unwrap_err(), arg);
    }
}

#[test]
fn wrong_lengths() {
    let d = data();
    let l = good();
    let p = Params::default();
    let short = vec![0.0; 3];
    for (x, arg) in [
        (Inputs { coefficients: &short, ..d.inputs() }, "coefficients"),
        (Inputs { rhs_equation: &short, ..d.inputs() }, "rhs_equation"),
        (Inputs { init_vars: &short, ..d.inputs() }, "init_vars"),
        (Inputs { steps: &short, ..d.inputs() }, "steps"),
    ] {
        let (exp, got) = shape_err(l.forward(x, &p).unwrap_err(), arg);
        assert_eq!(got, "3 elements", "{exp}");
    }
    let f = l.forward(d.inputs(), &p).unwrap();
    shape_err(f.backward(&short, &p).unwrap_err(), "grad_u");
    shape_err(l.freeze(&short, &d.h, &p).unwrap_err(), "coefficients");
    let fr = l.freeze(&d.c, &d.h, &p).unwrap();
    shape_err(fr.forward(&d.r, &short, &p).unwrap_err(), "init_vars");
    shape_err(fr.backward(&short, &p).unwrap_err(), "grad_u");
    shape_err(l.backward(d.inputs(), &short, f.factor(), f.u(), &p).unwrap_err(), "u");
    // A factor of another layer.
    let other = new(Options { central: true, ..Options::default() }, &CS, &RS, &VS, &HS).unwrap();
    let of = other.freeze(&d.c, &d.h, &p).unwrap();
    shape_err(l.backward(d.inputs(), f.u(), of.factor(), f.u(), &p).unwrap_err(), "factor");
}

#[test]
fn non_finite_values() {
    let d = data();
    let l = good();
    let p = Params::default();
    let mut c = d.c.clone();
    c[2 * 2 * 3 * 5 + 7] = f64::NAN; // system 1, t 0, e 1, d 0, o 1
    match l.forward(Inputs { coefficients: &c, ..d.inputs() }, &p).unwrap_err() {
        Error::NonFinite { arg, index, value } => {
            assert_eq!((arg, index, value.as_str()), ("coefficients", vec![1, 0, 1, 0, 1], "NaN"))
        }
        e => panic!("{e:?}"),
    }
    let mut r = d.r.clone();
    r[3] = f64::INFINITY;
    assert!(matches!(l.forward(Inputs { rhs_equation: &r, ..d.inputs() }, &p),
        Err(Error::NonFinite { arg: "rhs_equation", ref index, .. }) if index == &vec![0, 1, 1]));
    let mut v = d.v.clone();
    v[0] = f64::NEG_INFINITY;
    assert!(matches!(l.forward(Inputs { init_vars: &v, ..d.inputs() }, &p), Err(Error::NonFinite { arg: "init_vars", .. })));
    let mut h = d.h.clone();
    h[5] = f64::NAN;
    assert!(matches!(l.forward(Inputs { steps: &h, ..d.inputs() }, &p),
        Err(Error::NonFinite { arg: "steps", ref index, .. }) if index == &vec![1, 1]));
    // A NaN step is still rejected without the finiteness scan (it is not > 0).
    let unchecked = p.with_check_finite(false);
    invalid(l.forward(Inputs { steps: &h, ..d.inputs() }, &unchecked).unwrap_err(), "steps");
    let f = l.forward(d.inputs(), &p).unwrap();
    let mut gu = vec![1.0; f.u().len()];
    gu[4] = f64::NAN;
    assert!(matches!(f.backward(&gu, &p), Err(Error::NonFinite { arg: "grad_u", .. })));
    // An overflowing solution is reported, not returned (here M, with w_eq² = 1e20 against
    // smoothness rows of weight 1, is also numerically singular; tests/robustness.rs has exact
    // overflow cases).
    let huge = vec![1e300; d.r.len()];
    let l2 = new(Options { weight_equation: 1e10, ..Options::default() }, &CS, &RS, &VS, &HS).unwrap();
    match l2.forward(Inputs { rhs_equation: &huge, ..d.inputs() }, &p) {
        Err(Error::Overflow { arg: "u", .. }) | Err(Error::NotPositiveDefinite { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_positive_steps() {
    let d = data();
    let l = good();
    for bad in [0.0, -0.1, -0.0] {
        let mut h = d.h.clone();
        h[6] = bad;
        let r = invalid(l.forward(Inputs { steps: &h, ..d.inputs() }, &Params::default()).unwrap_err(), "steps");
        assert!(r.contains("(1, 2)"), "{r}");
        invalid(l.freeze(&d.c, &h, &Params::default()).unwrap_err(), "steps");
    }
}

#[test]
fn singular_normal_matrix_names_the_system() {
    // batch 3; system 1 has no equations (zero coefficients) and no initial values can pin it:
    // with weight_init_var = 0 only the Taylor rows remain, which leave constants free.
    let (cs, rs, vs, hs) = ([3, 5, 2, 2, 3], [3, 5, 2], [3, 1, 2, 2], [3, 4]);
    let l = new(Options { weight_init_var: 0.0, ..Options::default() }, &cs, &rs, &vs, &hs).unwrap();
    let per = 5 * 2 * 2 * 3;
    let mut c: Vec<f64> = (0..3 * per).map(|k| ((k * 37 % 11) as f64 - 5.0) / 5.0 + 0.1).collect();
    c[per..2 * per].fill(0.0);
    let r = vec![1.0; 3 * 5 * 2];
    let v = vec![0.0; 3 * 2 * 2];
    let h = vec![0.3; 3 * 4];
    let x = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    match l.forward(x, &Params::default()).unwrap_err() {
        Error::NotPositiveDefinite { system, column, failures } => {
            assert_eq!(system, 1);
            assert!(column < l.n());
            assert_eq!(failures.len(), 1, "{failures:?}");
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(l.freeze(&c, &h, &Params::default()), Err(Error::NotPositiveDefinite { system: 1, .. })));
    // All-zero everything: every system fails.
    let z = vec![0.0; c.len()];
    match l.forward(Inputs { coefficients: &z, ..x }, &Params::default()).unwrap_err() {
        Error::NotPositiveDefinite { failures, .. } => assert_eq!(failures.len(), 3),
        e => panic!("{e:?}"),
    }
}

#[test]
fn f32_errors_too() {
    let l = good();
    let d = data();
    let c: Vec<f32> = d.c.iter().map(|&x| x as f32).collect();
    let mut h: Vec<f32> = d.h.iter().map(|&x| x as f32).collect();
    h[0] = -1.0;
    invalid(l.freeze(&c, &h, &Params::default()).unwrap_err(), "steps");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary ranks, sizes (zeros included), options and data lengths: an error or a
    /// result, never a panic.
    #[test]
    fn never_panics(
        cs in prop::collection::vec(0usize..4, 3..7),
        rs in prop::collection::vec(0usize..6, 2..4),
        vs in prop::collection::vec(0usize..4, 3..5),
        hs in prop::collection::vec(0usize..6, 1..3),
        n_steps in prop::option::of(0usize..6),
        central in any::<bool>(),
        lens in prop::array::uniform4(0usize..400),
        fill in prop_oneof![Just(0.0), Just(0.5), Just(-1.0), Just(f64::NAN)],
    ) {
        let o = Options { n_steps, central, ..Options::default() };
        if let Ok(l) = Smnn::new(o, shapes(&cs, &rs, &vs, &hs)) {
            let [a, b, c, d] = lens.map(|n| vec![fill; n]);
            let x = Inputs { coefficients: &a, rhs_equation: &b, init_vars: &c, steps: &d };
            let _ = l.forward(x, &Params::default());
            // With exactly the right lengths too.
            let right = |s: &[usize]| vec![fill.abs() + 0.25; s.iter().product()];
            let (a, b, c, d) = (right(&l.coefficients_shape()), right(&l.rhs_equation_shape()),
                right(&l.init_vars_shape()), right(&l.steps_shape()));
            let x = Inputs { coefficients: &a, rhs_equation: &b, init_vars: &c, steps: &d };
            if let Ok(f) = l.forward(x, &Params::default()) {
                let gu = vec![1.0; f.u().len()];
                let _ = f.backward(&gu, &Params::default()).map(|g| assert_eq!(g.steps.len(), d.len()));
            }
        }
    }
}
