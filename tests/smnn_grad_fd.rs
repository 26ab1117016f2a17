//! Finite-difference checks of all four input gradients of the S-MNN layer (f64, small
//! systems): `ℓ(θ) = Σ grad_u · u(θ)`, central differences in every input entry.
//!
//! Tolerance: with step `η` the central difference errs by `η²·|ℓ'''|/6` (truncation) plus
//! `≈ ε·|ℓ|/η` (rounding). With `η = 1e-5·max(1, |θ|)` and inputs of order 1 both are
//! `≲ 1e-9` relative to the gradient's scale; `1e-6` leaves a wide margin, and a wrong formula
//! (a missing term, a sign) is off by O(1).

#[path = "common/smnn_ref.rs"]
mod smnn_ref;

use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::Params;
use smnn_ref::{draw, Problem};

const TOL: f64 = 1e-6;

fn layer(p: &Problem) -> Smnn {
    let (cs, rs, vs, hs) = p.shapes();
    Smnn::new(
        Options {
            n_steps: Some(p.t),
            weight_equation: p.w_eq,
            weight_init_var: p.w_init,
            weight_smooth: p.w_s,
            central: p.central,
        },
        InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs },
    )
    .unwrap()
}

fn loss(l: &Smnn, p: &Problem) -> f64 {
    let x = Inputs { coefficients: &p.c, rhs_equation: &p.r, init_vars: &p.v, steps: &p.h };
    let f = l.forward(x, &Params::default()).unwrap();
    f.u().iter().zip(&p.grad_u).map(|(a, b)| a * b).sum()
}

fn check(p: &Problem) {
    let l = layer(p);
    let x = Inputs { coefficients: &p.c, rhs_equation: &p.r, init_vars: &p.v, steps: &p.h };
    let params = Params::default();
    let g = l.forward(x, &params).unwrap().backward(&p.grad_u, &params).unwrap();
    type Field = fn(&mut Problem) -> &mut Vec<f64>;
    let fields: [(&str, &Vec<f64>, Field); 4] = [
        ("coefficients", &g.coefficients, |p| &mut p.c),
        ("rhs_equation", &g.rhs_equation, |p| &mut p.r),
        ("init_vars", &g.init_vars, |p| &mut p.v),
        ("steps", &g.steps, |p| &mut p.h),
    ];
    for (name, grad, field) in fields {
        let mut q = p.clone();
        let len = field(&mut q).len();
        assert_eq!(grad.len(), len, "{name}: gradient length");
        let scale = grad.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (k, &gk) in grad.iter().enumerate() {
            let x0 = field(&mut q)[k];
            let eta = 1e-5 * x0.abs().max(1.0);
            field(&mut q)[k] = x0 + eta;
            let lp = loss(&l, &q);
            field(&mut q)[k] = x0 - eta;
            let lm = loss(&l, &q);
            field(&mut q)[k] = x0;
            let fd = (lp - lm) / (2.0 * eta);
            assert!(
                (fd - gk).abs() <= TOL * scale,
                "{name}[{k}]: analytic {gk} vs finite difference {fd} (scale {scale})"
            );
        }
    }
}

#[test]
fn fd_plain() {
    check(&draw(1, 2, 6, 3, 2, 3, 2, 2, [false; 3], [1.0; 3], false, (0.2, 0.8)));
}

#[test]
fn fd_central_weighted() {
    check(&draw(2, 1, 7, 2, 2, 4, 1, 3, [false; 3], [0.7, 1.5, 0.8], true, (0.2, 0.8)));
}

#[test]
fn fd_broadcast() {
    // Coefficients and steps broadcast over T (their gradients are sums over the steps).
    check(&draw(3, 2, 8, 2, 1, 3, 1, 1, [true, false, true], [1.0, 1.2, 0.9], true, (0.2, 0.8)));
    check(&draw(4, 1, 5, 3, 2, 3, 2, 3, [false, true, false], [1.0; 3], false, (0.2, 0.8)));
}

#[test]
fn fd_central_low_orders() {
    // O = 2 (the central row has H^(−1)) and O = 3 (H^0 with a zero derivative).
    check(&draw(5, 1, 9, 1, 1, 2, 1, 1, [false; 3], [1.0; 3], true, (0.2, 0.8)));
    check(&draw(6, 1, 9, 2, 1, 3, 1, 2, [false; 3], [1.0; 3], true, (0.2, 0.8)));
}
