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
use smnn_ref::{draw, Problem, Spec};

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
    check(&draw(&Spec {
        seed: 1, batch: 2, t: 6, e: 3, d: 2, o: 3, s: 2, i: 2,
        bcast: [false; 3], weights: [1.0; 3], central: false, h: (0.2, 0.8),
    }));
}

#[test]
fn fd_central_weighted() {
    check(&draw(&Spec {
        seed: 2, batch: 1, t: 7, e: 2, d: 2, o: 4, s: 1, i: 3,
        bcast: [false; 3], weights: [0.7, 1.5, 0.8], central: true, h: (0.2, 0.8),
    }));
}

#[test]
fn fd_broadcast() {
    // Coefficients and steps broadcast over T (their gradients are sums over the steps).
    check(&draw(&Spec {
        seed: 3, batch: 2, t: 8, e: 2, d: 1, o: 3, s: 1, i: 1,
        bcast: [true, false, true], weights: [1.0, 1.2, 0.9], central: true, h: (0.2, 0.8),
    }));
    check(&draw(&Spec {
        seed: 4, batch: 1, t: 5, e: 3, d: 2, o: 3, s: 2, i: 3,
        bcast: [false, true, false], weights: [1.0; 3], central: false, h: (0.2, 0.8),
    }));
}

#[test]
fn fd_central_low_orders() {
    // O = 2 (the central row has H^(−1)) and O = 3 (H^0 with a zero derivative).
    check(&draw(&Spec {
        seed: 5, batch: 1, t: 9, e: 1, d: 1, o: 2, s: 1, i: 1,
        bcast: [false; 3], weights: [1.0; 3], central: true, h: (0.2, 0.8),
    }));
    check(&draw(&Spec {
        seed: 6, batch: 1, t: 9, e: 2, d: 1, o: 3, s: 1, i: 2,
        bcast: [false; 3], weights: [1.0; 3], central: true, h: (0.2, 0.8),
    }));
}
