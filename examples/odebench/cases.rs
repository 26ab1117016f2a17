//! The six closed-form linear ODEs of the odebench example, their S-MNN solves and errors.
#![allow(dead_code, clippy::needless_range_loop)]

use banded::Params;
use banded::smnn::{InputShapes, Inputs, Options, Smnn};

/// Orders per variable: the value and its first two derivatives.
pub const O: usize = 3;
/// The interval is `t ∈ [0, T_END)`.
pub const T_END: f64 = 10.0;

/// A complex number, just enough for closed forms `Re(K λ^o e^{λt})`.
#[derive(Clone, Copy, Debug)]
pub struct Cx {
    pub re: f64,
    pub im: f64,
}

impl Cx {
    pub const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }
    pub const fn real(re: f64) -> Self {
        Self { re, im: 0.0 }
    }
    pub fn mul(self, o: Cx) -> Cx {
        Cx::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    pub fn div(self, o: Cx) -> Cx {
        let d = o.re * o.re + o.im * o.im;
        Cx::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        )
    }
    pub fn exp(self) -> Cx {
        let m = self.re.exp();
        Cx::new(m * self.im.cos(), m * self.im.sin())
    }
}

/// Closed form of one variable: `x(t) = c + Re Σ_j K_j e^{λ_j t}`, so that
/// `x^{(o)}(t) = [o = 0]·c + Re Σ_j K_j λ_j^o e^{λ_j t}`.
#[derive(Clone, Debug)]
pub struct Closed {
    pub constant: f64,
    pub modes: Vec<(Cx, Cx)>,
}

impl Closed {
    /// The `order`-th derivative at `t`.
    pub fn eval(&self, t: f64, order: usize) -> f64 {
        let mut s = if order == 0 { self.constant } else { 0.0 };
        for &(k, lam) in &self.modes {
            let mut z = k.mul(lam.mul(Cx::real(t)).exp());
            for _ in 0..order {
                z = z.mul(lam);
            }
            s += z.re;
        }
        s
    }
}

/// One governing-equation row: `Σ_{d,o} coef[d][o] · x_d^{(o)} = rhs`.
#[derive(Clone, Debug)]
pub struct Row {
    pub coef: Vec<[f64; O]>,
    pub rhs: f64,
}

/// One ODE: its rows (`E` of them, over `D` variables), its initial conditions (values of the
/// `D` variables at `t = 0`), and its closed form for a given initial condition.
pub struct Equation {
    pub name: &'static str,
    /// The ODE as a human writes it.
    pub formula: &'static str,
    pub n_dims: usize,
    pub rows: Vec<Row>,
    pub inits: Vec<Vec<f64>>,
    pub exact: fn(&[f64]) -> Vec<Closed>,
}

fn row(coef: &[[f64; O]], rhs: f64) -> Row {
    Row {
        coef: coef.to_vec(),
        rhs,
    }
}

/// Underdamped oscillator `x'' + a x' + b x = 0` with `x(0) = x0`, `x'(0) = v0`: the closed
/// forms of `x` and of `x'`.
fn oscillator(a: f64, b: f64, x0: f64, v0: f64) -> Vec<Closed> {
    let alpha = -a / 2.0;
    let omega = (b - a * a / 4.0).sqrt();
    let lam = Cx::new(alpha, omega);
    // x = e^{αt}(A cos ωt + B sin ωt) = Re((A − iB) e^{λt}).
    let k = Cx::new(x0, -(v0 - alpha * x0) / omega);
    vec![
        Closed {
            constant: 0.0,
            modes: vec![(k, lam)],
        },
        Closed {
            constant: 0.0,
            modes: vec![(k.mul(lam), lam)],
        },
    ]
}

/// The six equations of the benchmark (S-MNN paper, closed-form validation).
pub fn equations() -> Vec<Equation> {
    vec![
        // x' = (c0 − x/c1)/c2  ⇔  x/(c1 c2) + x' = c0/c2.
        Equation {
            name: "RC circuit",
            formula: "x' = (c0 - x/c1)/c2, c = (0.7, 1.2, 2.31)",
            n_dims: 1,
            rows: {
                let (c0, c1, c2) = (0.7, 1.2, 2.31);
                vec![row(&[[1.0 / (c1 * c2), 1.0, 0.0]], c0 / c2)]
            },
            inits: vec![vec![10.0], vec![3.54]],
            exact: |x0| {
                let (c0, c1, c2) = (0.7, 1.2, 2.31);
                let s = c0 * c1;
                vec![Closed {
                    constant: s,
                    modes: vec![(Cx::real(x0[0] - s), Cx::real(-1.0 / (c1 * c2)))],
                }]
            },
        },
        // x' = c0 x  ⇔  −c0 x + x' = 0.
        Equation {
            name: "Population growth",
            formula: "x' = c0 x, c0 = 0.23",
            n_dims: 1,
            rows: vec![row(&[[-0.23, 1.0, 0.0]], 0.0)],
            inits: vec![vec![4.78], vec![0.87]],
            exact: |x0| {
                vec![Closed {
                    constant: 0.0,
                    modes: vec![(Cx::real(x0[0]), Cx::real(0.23))],
                }]
            },
        },
        // x' = (1 − x) c0 − x c1  ⇔  (c0 + c1) x + x' = c0.
        Equation {
            name: "Language death",
            formula: "x' = (1 - x) c0 - x c1, c = (0.32, 0.28)",
            n_dims: 1,
            rows: vec![row(&[[0.32 + 0.28, 1.0, 0.0]], 0.32)],
            inits: vec![vec![0.14], vec![0.55]],
            exact: |x0| {
                let (c0, c1) = (0.32, 0.28);
                let s = c0 / (c0 + c1);
                vec![Closed {
                    constant: s,
                    modes: vec![(Cx::real(x0[0] - s), Cx::real(-(c0 + c1)))],
                }]
            },
        },
        // x0' = x1, x1' = −c0 x0.
        Equation {
            name: "Harmonic oscillator",
            formula: "x0' = x1, x1' = -c0 x0, c0 = 2.1",
            n_dims: 2,
            rows: vec![
                row(&[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], 0.0), // x0' − x1 = 0
                row(&[[2.1, 0.0, 0.0], [0.0, 1.0, 0.0]], 0.0),  // c0 x0 + x1' = 0
            ],
            inits: vec![vec![0.4, -0.03], vec![0.0, 0.2]],
            exact: |x| oscillator(0.0, 2.1, x[0], x[1]),
        },
        // x0' = x1, x1' = −c0 x0 − c1 x1.
        Equation {
            name: "Damped oscillator",
            formula: "x0' = x1, x1' = -c0 x0 - c1 x1, c = (4.5, 0.43)",
            n_dims: 2,
            rows: vec![
                row(&[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], 0.0), // x0' − x1 = 0
                row(&[[4.5, 0.0, 0.0], [0.43, 1.0, 0.0]], 0.0), // c0 x0 + c1 x1 + x1' = 0
            ],
            inits: vec![vec![0.12, 0.043], vec![0.0, -0.3]],
            exact: |x| oscillator(0.43, 4.5, x[0], x[1]),
        },
        // x0' = x1, x1' = x2, x2' = −x1 − x2.
        Equation {
            name: "Third order",
            formula: "x0' = x1, x1' = x2, x2' = -x1 - x2",
            n_dims: 3,
            rows: vec![
                row(&[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], 0.0), // x0' − x1 = 0
                row(&[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], 0.0), // x1' − x2 = 0
                row(&[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], 0.0), // x1 + x2 + x2' = 0
            ],
            inits: vec![vec![0.0, -1.0, 1.0]],
            exact: |x| {
                // y = x1 solves y'' + y' + y = 0, y(0) = x1(0), y'(0) = x2(0); x0 = x0(0) + ∫y.
                let osc = oscillator(1.0, 1.0, x[1], x[2]);
                let (k, lam) = osc[0].modes[0];
                let k0 = k.div(lam);
                vec![
                    Closed {
                        constant: x[0] - k0.re,
                        modes: vec![(k0, lam)],
                    },
                    osc[0].clone(),
                    osc[1].clone(),
                ]
            },
        },
    ]
}

/// Number of steps for step size `h` on `[0, T_END)`.
pub fn n_steps(h: f64) -> usize {
    (T_END / h).round() as usize
}

/// Solves `eq` for all its initial conditions at once (one system each) with step `h`:
/// `u` of shape `(inits, T, D, O)`.
pub fn solve(eq: &Equation, h: f64, params: &Params) -> banded::Result<Vec<f64>> {
    let (batch, t, d, e) = (eq.inits.len(), n_steps(h), eq.n_dims, eq.rows.len());
    // Coefficients and right-hand sides are the same at every step: broadcast over T.
    let one: Vec<f64> = eq
        .rows
        .iter()
        .flat_map(|r| r.coef.iter().flatten().copied())
        .collect();
    let coefficients = one.repeat(batch); // (batch, 1, E, D, O)
    let rhs_one: Vec<f64> = eq.rows.iter().map(|r| r.rhs).collect();
    let rhs_equation = rhs_one.repeat(batch); // (batch, 1, E)
    let init_vars: Vec<f64> = eq.inits.iter().flatten().copied().collect(); // (batch, 1, D, 1)
    let steps = vec![h; batch]; // (batch, 1)
    let layer = Smnn::new(
        Options {
            n_steps: Some(t),
            ..Options::default()
        },
        InputShapes {
            coefficients: &[batch, 1, e, d, O],
            rhs_equation: &[batch, 1, e],
            init_vars: &[batch, 1, d, 1],
            steps: &[batch, 1],
        },
    )?;
    let fwd = layer.forward(
        Inputs {
            coefficients: &coefficients,
            rhs_equation: &rhs_equation,
            init_vars: &init_vars,
            steps: &steps,
        },
        params,
    )?;
    Ok(fwd.into_parts().0)
}

/// Max |error| of `u`, `u'`, `u''` (over every variable and step) of one initial condition,
/// and of `u''` away from the two ends (the first and last [`EDGE`] steps left out: `u''` is
/// pinned by the equations only through `u'`, and its error at the ends is first order).
#[derive(Clone, Copy, Debug, Default)]
pub struct Errors {
    pub orders: [f64; O],
    pub d2_interior: f64,
}

/// Steps left out at each end for [`Errors::d2_interior`].
pub const EDGE: usize = 5;

/// The errors of `u` (as from [`solve`]) against the closed forms, one per initial condition.
pub fn errors(eq: &Equation, h: f64, u: &[f64]) -> Vec<Errors> {
    let (t_n, d_n) = (n_steps(h), eq.n_dims);
    eq.inits
        .iter()
        .enumerate()
        .map(|(s, x0)| {
            let exact = (eq.exact)(x0);
            let mut err = Errors::default();
            for t in 0..t_n {
                for (d, ex) in exact.iter().enumerate().take(d_n) {
                    for o in 0..O {
                        let got = u[((s * t_n + t) * d_n + d) * O + o];
                        let e = (got - ex.eval(t as f64 * h, o)).abs();
                        err.orders[o] = err.orders[o].max(e);
                        if o == 2 && t >= EDGE && t + EDGE < t_n {
                            err.d2_interior = err.d2_interior.max(e);
                        }
                    }
                }
            }
            err
        })
        .collect()
}

/// Max errors of every equation and initial condition at step `h`, and the solutions.
pub fn run_all(
    eqs: &[Equation],
    h: f64,
    params: &Params,
) -> banded::Result<Vec<(Vec<f64>, Vec<Errors>)>> {
    eqs.iter()
        .map(|eq| {
            let u = solve(eq, h, params)?;
            let e = errors(eq, h, &u);
            Ok((u, e))
        })
        .collect()
}

/// The maximum over all equations and initial conditions of each order's error, and of the
/// interior `u''` error.
pub fn max_errors<'a>(errs: impl IntoIterator<Item = &'a Errors>) -> Errors {
    errs.into_iter().fold(Errors::default(), |mut m, e| {
        for o in 0..O {
            m.orders[o] = m.orders[o].max(e.orders[o]);
        }
        m.d2_interior = m.d2_interior.max(e.d2_interior);
        m
    })
}
