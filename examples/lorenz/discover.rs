//! Lorenz equation discovery through the S-MNN layer: data from RK4, a quadratic polynomial
//! library, the layer's frozen left-hand side, Adam, and sequential thresholding.
#![allow(dead_code, clippy::needless_range_loop)]

use std::time::Instant;

use banded::Params;
use banded::smnn::{Frozen, InputShapes, Options, Smnn};

/// σ, ρ, β of the Lorenz system.
pub const SIGMA: f64 = 10.0;
pub const RHO: f64 = 28.0;
pub const BETA: f64 = 8.0 / 3.0;
/// Number of library terms.
pub const K: usize = 10;
/// Names of the library terms Θ(x) = (1, x, y, z, x², xy, xz, y², yz, z²).
pub const TERMS: [&str; K] = ["1", "x", "y", "z", "x²", "xy", "xz", "y²", "yz", "z²"];
/// Names of the variables.
pub const VARS: [&str; 3] = ["x", "y", "z"];

/// A coefficient matrix ξ: row d holds the coefficients of dx_d/dt on the library terms.
pub type Xi = [[f64; K]; 3];

/// The library Θ(x).
pub fn theta(p: [f64; 3]) -> [f64; K] {
    let [x, y, z] = p;
    [1.0, x, y, z, x * x, x * y, x * z, y * y, y * z, z * z]
}

/// The true ξ: x' = σ(y − x), y' = x(ρ − z) − y, z' = xy − βz.
pub fn true_xi() -> Xi {
    let mut xi = [[0.0; K]; 3];
    xi[0][1] = -SIGMA;
    xi[0][2] = SIGMA;
    xi[1][1] = RHO;
    xi[1][2] = -1.0;
    xi[1][6] = -1.0;
    xi[2][5] = 1.0;
    xi[2][3] = -BETA;
    xi
}

/// dx/dt = Θ(x) ξ.
pub fn rhs(xi: &Xi, p: [f64; 3]) -> [f64; 3] {
    let th = theta(p);
    let mut out = [0.0; 3];
    for (o, row) in out.iter_mut().zip(xi) {
        *o = row.iter().zip(&th).map(|(a, b)| a * b).sum();
    }
    out
}

/// `n` states of the classical fourth-order Runge–Kutta method with step `h` from `x0`
/// (`x0` included).
pub fn rk4(xi: &Xi, x0: [f64; 3], h: f64, n: usize) -> Vec<[f64; 3]> {
    let mut out = Vec::with_capacity(n);
    let mut x = x0;
    let add =
        |a: [f64; 3], b: [f64; 3], s: f64| [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]];
    for _ in 0..n {
        out.push(x);
        let k1 = rhs(xi, x);
        let k2 = rhs(xi, add(x, k1, h / 2.0));
        let k3 = rhs(xi, add(x, k2, h / 2.0));
        let k4 = rhs(xi, add(x, k3, h));
        for d in 0..3 {
            x[d] += h / 6.0 * (k1[d] + 2.0 * k2[d] + 2.0 * k3[d] + k4[d]);
        }
    }
    out
}

/// The training set-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Step size of the data and of the layer.
    pub h: f64,
    /// Samples in the trajectory (from (1, 1, 1)).
    pub n_samples: usize,
    /// Steps per window (the layer's T).
    pub window: usize,
    /// Adam steps per thresholding round; the learning rate decays geometrically from
    /// `lr` to `lr · lr_decay` within each round.
    pub steps_per_round: usize,
    /// Thresholding rounds (after each, |ξ| < `threshold` is zeroed and frozen).
    pub rounds: usize,
    pub lr: f64,
    pub lr_decay: f64,
    pub threshold: f64,
}

impl Config {
    /// The example's set-up: 10 050 samples (201 windows of 50 steps), 3 rounds of 300 steps.
    pub fn full() -> Self {
        Self {
            h: 0.01,
            n_samples: 10_050,
            window: 50,
            steps_per_round: 300,
            rounds: 3,
            lr: 0.05,
            lr_decay: 1e-3,
            threshold: 0.1,
        }
    }
    /// A reduced set-up for the tests: 2 000 samples (40 windows), 2 rounds of 150 steps.
    pub fn quick() -> Self {
        Self {
            n_samples: 2_000,
            steps_per_round: 150,
            rounds: 2,
            ..Self::full()
        }
    }
    pub fn total_steps(&self) -> usize {
        self.steps_per_round * self.rounds
    }
}

/// The result of a discovery run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub xi: Xi,
    /// Loss (mean squared error of the values) of the discovered ξ.
    pub loss: f64,
    /// Loss of the true ξ (not zero: the layer's discretisation error at this h).
    pub loss_true: f64,
    /// Wall-clock time per optimisation step (forward, backward, ξ gradient, Adam), in ms.
    pub ms_per_step: f64,
    /// Time to factor the frozen left-hand side once, in ms.
    pub factor_ms: f64,
    /// The number of systems in the batch (windows × 3).
    pub batch: usize,
}

/// Max relative error over the nonzero true terms, and the number of nonzero coefficients
/// that should be zero.
pub fn score(xi: &Xi) -> (f64, usize) {
    let truth = true_xi();
    let (mut max_rel, mut spurious) = (0.0f64, 0);
    for d in 0..3 {
        for k in 0..K {
            if truth[d][k] != 0.0 {
                max_rel = max_rel.max(((xi[d][k] - truth[d][k]) / truth[d][k]).abs());
            } else if xi[d][k] != 0.0 {
                spurious += 1;
            }
        }
    }
    (max_rel, spurious)
}

/// `dx/dt = …` as text, terms with nonzero coefficients only.
pub fn equation(xi: &Xi, d: usize) -> String {
    let mut s = String::new();
    for k in 0..K {
        let c = xi[d][k];
        if c == 0.0 {
            continue;
        }
        let sign = if c < 0.0 { "-" } else { "+" };
        let term = if k == 0 {
            String::new()
        } else {
            format!(" {}", TERMS[k])
        };
        if s.is_empty() {
            s = format!("{}{:.4}{term}", if c < 0.0 { "-" } else { "" }, c.abs());
        } else {
            s += &format!(" {sign} {:.4}{term}", c.abs());
        }
    }
    if s.is_empty() {
        s = "0".into();
    }
    format!("{}' = {s}", VARS[d])
}

/// The training problem: the frozen layer over the windows of the data, and the loss and its
/// gradient with respect to ξ.
pub struct Problem<'a> {
    data: &'a [[f64; 3]],
    /// Steps per window, number of windows, systems (3 per window).
    l: usize,
    h: f64,
    batch: usize,
    frozen: Frozen<f64>,
    params: Params,
    init_vars: Vec<f64>,
    /// Θ at every used sample, `(windows · l, K)`.
    th: Vec<[f64; K]>,
    rhs_eq: Vec<f64>,
    grad_u: Vec<f64>,
    /// Time to build the layer and factor its left-hand side, in ms.
    pub factor_ms: f64,
}

impl<'a> Problem<'a> {
    /// Cuts `data` into windows of `cfg.window` steps; system `s = 3·window + d` is variable `d`
    /// of that window: D = 1, O = 3, E = 1, coefficients (0, 1, 0) (u' = rhs) and the step
    /// broadcast over T, one initial step holding the window's first value. The left-hand side
    /// is the same for every ξ: factored once here.
    pub fn new(data: &'a [[f64; 3]], cfg: &Config) -> Result<Self, String> {
        let l = cfg.window;
        let w = data.len() / l;
        if w == 0 || l < 2 {
            return Err(format!(
                "need at least one window of {l} ≥ 2 samples, got {}",
                data.len()
            ));
        }
        let batch = 3 * w;
        let t0 = Instant::now();
        let layer = Smnn::new(
            Options::default(),
            InputShapes {
                coefficients: &[batch, 1, 1, 1, 3],
                rhs_equation: &[batch, l, 1],
                init_vars: &[batch, 1, 1, 1],
                steps: &[batch, 1],
            },
        )
        .map_err(|e| e.to_string())?;
        let params = Params::default();
        let coefficients = [0.0, 1.0, 0.0].repeat(batch);
        let steps = vec![cfg.h; batch];
        let frozen = layer
            .freeze(&coefficients, &steps, &params)
            .map_err(|e| e.to_string())?;
        let factor_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(Self {
            data,
            l,
            h: cfg.h,
            batch,
            frozen,
            params,
            init_vars: (0..batch).map(|s| data[(s / 3) * l][s % 3]).collect(),
            th: data[..w * l].iter().map(|&p| theta(p)).collect(),
            rhs_eq: vec![0.0; batch * l],
            grad_u: vec![0.0; batch * l * 3],
            factor_ms,
        })
    }

    /// Systems in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The loss ℓ(ξ) = mean over windows, steps and variables of (u − x)², u the layer's
    /// values for `rhs = Θ(x)ξ`; with `grad`, also ∂ℓ/∂ξ = Θᵀ ∂ℓ/∂rhs through the frozen
    /// layer's backward.
    pub fn loss(&mut self, xi: &Xi, grad: Option<&mut Xi>) -> Result<f64, String> {
        let (l, batch) = (self.l, self.batch);
        for s in 0..batch {
            let (win, d) = (s / 3, s % 3);
            for t in 0..l {
                self.rhs_eq[s * l + t] = self.th[win * l + t]
                    .iter()
                    .zip(&xi[d])
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        let u = self
            .frozen
            .forward(&self.rhs_eq, &self.init_vars, &self.params)
            .map_err(|e| e.to_string())?;
        let n_vals = (batch * l) as f64;
        let mut sum = 0.0;
        for s in 0..batch {
            let (win, d) = (s / 3, s % 3);
            for t in 0..l {
                let r = u[(s * l + t) * 3] - self.data[win * l + t][d];
                sum += r * r;
                // ∂ℓ/∂u, on the values (order 0) only.
                self.grad_u[(s * l + t) * 3] = 2.0 * r / n_vals;
            }
        }
        let loss = sum / n_vals;
        if !loss.is_finite() {
            return Err("the loss is not finite".into());
        }
        if let Some(gxi) = grad {
            let g = self
                .frozen
                .backward(&self.grad_u, &self.params)
                .map_err(|e| e.to_string())?;
            *gxi = [[0.0; K]; 3];
            for s in 0..batch {
                let (win, d) = (s / 3, s % 3);
                for t in 0..l {
                    let gr = g.rhs_equation[s * l + t];
                    for (gk, tk) in gxi[d].iter_mut().zip(&self.th[win * l + t]) {
                        *gk += gr * tk;
                    }
                }
            }
        }
        Ok(loss)
    }

    /// The Gram matrix `IᵀI / N` of the library integrated along each window,
    /// `I(t) = ∫_{t_0}^{t} Θ(x(τ)) dτ` (trapezoid rule): the values respond to ξ through
    /// about `u(t) − u(t_0) ≈ I(t) ξ`, so this approximates the loss's Hessian in ξ (up to a
    /// factor 2) from the data alone. Also returns, per variable, the RMS of
    /// `x(t) − x(t_0)` over the windows.
    fn integrated_gram(&self) -> ([[f64; K]; K], [f64; 3]) {
        let (l, h) = (self.l, self.h);
        let mut gram = [[0.0; K]; K];
        let mut ms = [0.0; 3];
        let n = self.th.len() as f64;
        for (win, rows) in self.th.chunks(l).enumerate() {
            let mut acc = [0.0; K];
            for t in 0..l {
                if t > 0 {
                    for k in 0..K {
                        acc[k] += 0.5 * h * (rows[t - 1][k] + rows[t][k]);
                    }
                }
                for i in 0..K {
                    for j in 0..K {
                        gram[i][j] += acc[i] * acc[j] / n;
                    }
                }
                for d in 0..3 {
                    ms[d] += (self.data[win * l + t][d] - self.data[win * l][d]).powi(2) / n;
                }
            }
        }
        (gram, ms.map(|v| v.sqrt().max(1e-12)))
    }
}

/// Learns ξ from `data` (`n_samples` states, step `cfg.h`) starting from ξ = 0.
/// `progress(step, loss)` is called after each optimisation step.
pub fn discover(
    data: &[[f64; 3]],
    cfg: &Config,
    mut progress: impl FnMut(usize, f64),
) -> Result<Outcome, String> {
    let mut problem = Problem::new(data, cfg)?;
    // Adam runs on whitened coordinates: per variable d, φ_d = Rξ_d,A / s_d, where ξ_d,A are
    // the active coefficients, RᵀR the Gram matrix of the active library columns integrated
    // along the windows (≈ the Hessian; see `Problem::integrated_gram`) and s_d the RMS of
    // x_d(t) − x_d(t_0) (so that φ is of order 1). The library columns (1, x, …, z²) differ in
    // scale by 10³ and are strongly correlated on the attractor: in ξ, plain Adam needs many
    // thousands of steps; in φ every direction is about equally fast.
    let (gram, scale) = problem.integrated_gram();

    let mut xi: Xi = [[0.0; K]; 3];
    let mut active = [[true; K]; 3];
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut loss = f64::NAN;
    let mut gxi = [[0.0; K]; 3];
    let mut step = 0usize;
    let t0 = Instant::now();
    for round in 0..cfg.rounds {
        if round > 0 {
            threshold(&mut xi, &mut active, cfg.threshold);
        }
        // The whitening of each variable's active set, the current φ, fresh Adam moments.
        let mut white: Vec<Whitening> = Vec::with_capacity(3);
        let mut phi: Vec<Vec<f64>> = Vec::with_capacity(3);
        for d in 0..3 {
            let idx: Vec<usize> = (0..K).filter(|&k| active[d][k]).collect();
            let wh = Whitening::new(&gram, idx, scale[d])?;
            phi.push(wh.to_phi(&xi[d]));
            white.push(wh);
        }
        let mut m: Vec<Vec<f64>> = phi.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut v = m.clone();
        for i in 0..cfg.steps_per_round {
            loss = problem
                .loss(&xi, Some(&mut gxi))
                .map_err(|e| format!("step {step}: {e}"))?;
            // Adam on φ, learning rate decaying geometrically within the round.
            let lr = cfg.lr
                * cfg
                    .lr_decay
                    .powf(i as f64 / cfg.steps_per_round.max(1) as f64);
            let tt = (i + 1) as i32;
            for d in 0..3 {
                let gphi = white[d].grad_phi(&gxi[d]);
                for (j, gj) in gphi.iter().enumerate() {
                    m[d][j] = b1 * m[d][j] + (1.0 - b1) * gj;
                    v[d][j] = b2 * v[d][j] + (1.0 - b2) * gj * gj;
                    let mh = m[d][j] / (1.0 - b1.powi(tt));
                    let vh = v[d][j] / (1.0 - b2.powi(tt));
                    phi[d][j] -= lr * mh / (vh.sqrt() + eps);
                }
                xi[d] = white[d].to_xi(&phi[d]);
            }
            step += 1;
            progress(step, loss);
        }
    }
    let ms_per_step = t0.elapsed().as_secs_f64() * 1e3 / step.max(1) as f64;
    threshold(&mut xi, &mut active, cfg.threshold);
    let loss_true = problem.loss(&true_xi(), None)?;
    let loss_found = problem.loss(&xi, None)?;
    let _ = loss;
    Ok(Outcome {
        xi,
        loss: loss_found,
        loss_true,
        ms_per_step,
        factor_ms: problem.factor_ms,
        batch: problem.batch(),
    })
}

/// Zeroes and deactivates the coefficients below `tol` in magnitude.
fn threshold(xi: &mut Xi, active: &mut [[bool; K]; 3], tol: f64) {
    for d in 0..3 {
        for k in 0..K {
            if xi[d][k].abs() < tol {
                xi[d][k] = 0.0;
                active[d][k] = false;
            }
        }
    }
}

/// Whitened coordinates of the active coefficients of one variable: `φ = Lᵀ ξ_A / s` with
/// `L Lᵀ` the Gram matrix of the active library columns.
struct Whitening {
    idx: Vec<usize>,
    /// Lower Cholesky factor, row-major `idx.len()²`.
    l: Vec<f64>,
    s: f64,
}

impl Whitening {
    fn new(gram: &[[f64; K]; K], idx: Vec<usize>, s: f64) -> Result<Self, String> {
        let n = idx.len();
        let mut l = vec![0.0; n * n];
        for j in 0..n {
            let mut d =
                gram[idx[j]][idx[j]] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
            if d <= 0.0 {
                return Err("the library's Gram matrix is singular on the data".into());
            }
            d = d.sqrt();
            l[j * n + j] = d;
            for i in j + 1..n {
                let v =
                    gram[idx[i]][idx[j]] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
                l[i * n + j] = v / d;
            }
        }
        Ok(Self { idx, l, s })
    }
    /// φ = Lᵀ ξ_A / s.
    fn to_phi(&self, xi: &[f64; K]) -> Vec<f64> {
        let n = self.idx.len();
        (0..n)
            .map(|i| {
                (i..n)
                    .map(|j| self.l[j * n + i] * xi[self.idx[j]])
                    .sum::<f64>()
                    / self.s
            })
            .collect()
    }
    /// ξ from φ: ξ_A = L⁻ᵀ (s φ), inactive entries zero.
    fn to_xi(&self, phi: &[f64]) -> [f64; K] {
        let n = self.idx.len();
        let mut y: Vec<f64> = phi.iter().map(|p| p * self.s).collect();
        for i in (0..n).rev() {
            let acc = (i + 1..n).map(|j| self.l[j * n + i] * y[j]).sum::<f64>();
            y[i] = (y[i] - acc) / self.l[i * n + i];
        }
        let mut xi = [0.0; K];
        for (k, v) in self.idx.iter().zip(y) {
            xi[*k] = v;
        }
        xi
    }
    /// ∂ℓ/∂φ = s L⁻¹ ∂ℓ/∂ξ_A.
    fn grad_phi(&self, g: &[f64; K]) -> Vec<f64> {
        let n = self.idx.len();
        let mut y: Vec<f64> = self.idx.iter().map(|&k| g[k]).collect();
        for i in 0..n {
            let acc = (0..i).map(|j| self.l[i * n + j] * y[j]).sum::<f64>();
            y[i] = (y[i] - acc) / self.l[i * n + i];
        }
        y.iter().map(|v| v * self.s).collect()
    }
}
