//! Reduced runs of the examples (`examples/odebench`, `examples/lorenz`; the scaling example
//! has its own test binary, `tests/example_scaling.rs`, because it counts allocations), with
//! asserted error bounds. They call the examples' own code, so the examples cannot rot.

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/odebench/cases.rs"]
mod odebench;

use banded::Params;

/// odebench at the example's h = 0.01 (all six equations, every initial condition) and a
/// two-point step-size study: the errors the README reports, with margin.
#[test]
fn odebench_errors_and_order() {
    let params = Params::default();
    let eqs = odebench::equations();
    let run = odebench::run_all(&eqs, 0.01, &params).expect("solve");
    for (eq, (_, errs)) in eqs.iter().zip(&run) {
        assert_eq!(errs.len(), eq.inits.len());
        for e in errs {
            assert!(
                e.orders[0] < 5e-4 && e.orders[1] < 1e-3 && e.orders[2] < 5e-2,
                "{}: {:?}",
                eq.name,
                e.orders
            );
        }
    }
    let m = odebench::max_errors(run.iter().flat_map(|(_, e)| e));
    assert!(m.orders[0] > 1e-5, "suspiciously exact: {m:?}");
    assert!(m.d2_interior < 1e-3, "u'' away from the ends: {m:?}");
    // Halving h divides the value error by about 4 (second order).
    let coarse = odebench::max_errors(
        odebench::run_all(&eqs, 0.02, &params)
            .expect("solve")
            .iter()
            .flat_map(|(_, e)| e),
    );
    let order = common::loglog_slope(&[0.02, 0.01], &[coarse.orders[0], m.orders[0]]);
    assert!((1.8..2.2).contains(&order), "observed order {order}");
}

/// The closed forms themselves satisfy their ODE rows (checks the reference, not the layer).
#[test]
fn odebench_closed_forms_solve_their_rows() {
    for eq in odebench::equations() {
        for x0 in &eq.inits {
            let ex = (eq.exact)(x0);
            for (d, c) in ex.iter().enumerate() {
                assert!(
                    (c.eval(0.0, 0) - x0[d]).abs() < 1e-12,
                    "{}: x{d}(0)",
                    eq.name
                );
            }
            for &t in &[0.0, 0.7, 3.3, 9.9] {
                for row in &eq.rows {
                    let lhs: f64 = (0..eq.n_dims)
                        .flat_map(|d| (0..odebench::O).map(move |o| (d, o)))
                        .map(|(d, o)| row.coef[d][o] * ex[d].eval(t, o))
                        .sum();
                    assert!(
                        (lhs - row.rhs).abs() < 1e-10,
                        "{} at t = {t}: {lhs} vs {}",
                        eq.name,
                        row.rhs
                    );
                }
            }
        }
    }
}

#[path = "../examples/lorenz/discover.rs"]
mod lorenz;

/// The Lorenz ξ-gradient through the frozen layer's backward equals central differences of
/// the loss (exact up to rounding: the loss is quadratic in ξ).
#[test]
fn lorenz_gradient_matches_finite_differences() {
    let cfg = lorenz::Config {
        n_samples: 300,
        ..lorenz::Config::quick()
    };
    let data = lorenz::rk4(&lorenz::true_xi(), [1.0, 1.0, 1.0], cfg.h, cfg.n_samples);
    let mut p = lorenz::Problem::new(&data, &cfg).expect("problem");
    let mut xi = lorenz::true_xi();
    xi[0][0] = 0.3;
    xi[2][9] = -0.01;
    let mut g = [[0.0; lorenz::K]; 3];
    p.loss(&xi, Some(&mut g)).expect("loss");
    for (d, k, eps) in [
        (0, 0, 1e-3),
        (0, 2, 1e-4),
        (1, 6, 1e-5),
        (2, 9, 1e-6),
        (2, 5, 1e-5),
    ] {
        let (mut a, mut b) = (xi, xi);
        a[d][k] += eps;
        b[d][k] -= eps;
        let fd = (p.loss(&a, None).expect("loss") - p.loss(&b, None).expect("loss")) / (2.0 * eps);
        assert!(
            (fd - g[d][k]).abs() <= 1e-6 * g[d][k].abs().max(1.0),
            "ξ[{d}][{k}]: backward {} vs FD {fd}",
            g[d][k]
        );
    }
}

/// A reduced discovery (2 000 samples, 300 Adam steps): the seven terms within 3 %, nothing
/// spurious.
#[test]
fn lorenz_quick_discovery() {
    let cfg = lorenz::Config::quick();
    let data = lorenz::rk4(&lorenz::true_xi(), [1.0, 1.0, 1.0], cfg.h, cfg.n_samples);
    let mut steps = 0;
    let out = lorenz::discover(&data, &cfg, |s, _| steps = s).expect("discover");
    assert_eq!(steps, cfg.total_steps());
    let (max_rel, spurious) = lorenz::score(&out.xi);
    assert!(
        max_rel < 0.03 && spurious == 0,
        "max rel err {max_rel}, spurious {spurious}, ξ = {:?}",
        out.xi
    );
    assert!(
        out.loss < out.loss_true,
        "loss {} vs true {}",
        out.loss,
        out.loss_true
    );
}
