//! A dense, test-only reference for the S-MNN layer: builds the rows of `A` of docs/ARCHITECTURE.md ("The S-MNN rows")
//! explicitly (one system at a time), solves the least-squares problem with faer's dense QR, and
//! takes the backward from the dense `∂ℓ/∂A = −ρλᵀ − (Aλ)uᵀ`, `∂ℓ/∂β = Aλ` by the chain rule
//! through each row entry. Everything in f64. It shares no code with `banded::smnn`.
#![allow(dead_code)]

use faer::prelude::*;
use faer::Side;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One S-MNN problem in f64, row-major arrays as the layer takes them.
#[derive(Clone, Debug)]
pub struct Problem {
    pub batch: usize,
    pub t: usize,
    pub e: usize,
    pub d: usize,
    pub o: usize,
    pub s: usize,
    pub i: usize,
    /// Step-axis lengths of coefficients, rhs_equation, steps (full or 1).
    pub ct: usize,
    pub rt: usize,
    pub ht: usize,
    pub w_eq: f64,
    pub w_init: f64,
    pub w_s: f64,
    pub central: bool,
    pub c: Vec<f64>,
    pub r: Vec<f64>,
    pub v: Vec<f64>,
    pub h: Vec<f64>,
    /// A cotangent ∂ℓ/∂u, `(batch, T, D, O)`.
    pub grad_u: Vec<f64>,
}

/// What a row's entries depend on, for the chain rule.
#[derive(Clone, Copy, Debug)]
pub enum Dep {
    /// Equation row `(t, e)`: entry `j` is `C[tc, e, j mod b]`, rhs is `r[tr, e]`.
    Eq { t: usize, e: usize },
    /// Initial-value row: rhs is `v[t, d, o]`.
    Init { t: usize, d: usize, o: usize },
    /// Taylor row: entries depend on `h_t`.
    Taylor { t: usize },
    /// Central row: entries depend on `H = h_t + h_{t+1}`.
    Central { t: usize },
}

/// One row: `(column, value, d value / d (h or H))`, right-hand side, weight, dependence.
pub struct RowSpec {
    pub entries: Vec<(usize, f64, f64)>,
    pub rhs: f64,
    pub w: f64,
    pub dep: Dep,
}

fn fact(k: usize) -> f64 {
    (1..=k).map(|x| x as f64).product()
}

/// `x^k` for a possibly negative exponent; 0 where the derivative factor `k` is 0 anyway.
fn pw(x: f64, k: i64) -> f64 {
    x.powi(k as i32)
}

impl Problem {
    pub fn n(&self) -> usize {
        self.t * self.d * self.o
    }
    pub fn b(&self) -> usize {
        self.d * self.o
    }
    fn col(&self, t: usize, d: usize, o: usize) -> usize {
        (t * self.d + d) * self.o + o
    }
    pub fn shapes(&self) -> ([usize; 5], [usize; 3], [usize; 4], [usize; 2]) {
        (
            [self.batch, self.ct, self.e, self.d, self.o],
            [self.batch, self.rt, self.e],
            [self.batch, self.s, self.d, self.i],
            [self.batch, self.ht],
        )
    }
    fn h_at(&self, s: usize, t: usize) -> f64 {
        self.h[s * self.ht + if self.ht == 1 { 0 } else { t }]
    }

    /// The rows of system `s`, following docs/ARCHITECTURE.md ("The S-MNN rows") literally.
    pub fn rows(&self, s: usize) -> Vec<RowSpec> {
        let (tn, en, dn, on, b) = (self.t, self.e, self.d, self.o, self.b());
        let mut rows = Vec::new();
        for t in 0..tn {
            let tc = if self.ct == 1 { 0 } else { t };
            let tr = if self.rt == 1 { 0 } else { t };
            for e in 0..en {
                let base = ((s * self.ct + tc) * en + e) * b;
                let entries = (0..b).map(|j| (t * b + j, self.c[base + j], 0.0)).collect();
                rows.push(RowSpec { entries, rhs: self.r[(s * self.rt + tr) * en + e], w: self.w_eq, dep: Dep::Eq { t, e } });
            }
        }
        for t in 0..self.s {
            for d in 0..dn {
                for o in 0..self.i {
                    let v = self.v[((s * self.s + t) * dn + d) * self.i + o];
                    rows.push(RowSpec {
                        entries: vec![(self.col(t, d, o), 1.0, 0.0)],
                        rhs: v,
                        w: self.w_init,
                        dep: Dep::Init { t, d, o },
                    });
                }
            }
        }
        let kk = if self.central { on - 1 } else { on };
        for t in 0..tn - 1 {
            let h = self.h_at(s, t);
            for d in 0..dn {
                for k in 0..kk {
                    // Forward: Σ_{o≥k} h^o/(o−k)! u[t,d,o] − h^k u[t+1,d,k].
                    let mut fwd: Vec<(usize, f64, f64)> = (k..on)
                        .map(|o| {
                            let f = fact(o - k);
                            (self.col(t, d, o), pw(h, o as i64) / f, o as f64 * pw(h, o as i64 - 1) / f)
                        })
                        .collect();
                    fwd.push((self.col(t + 1, d, k), -pw(h, k as i64), -(k as f64) * pw(h, k as i64 - 1)));
                    rows.push(RowSpec { entries: fwd, rhs: 0.0, w: self.w_s, dep: Dep::Taylor { t } });
                    // Backward: Σ_{o≥k} (−h)^o/(o−k)! u[t+1,d,o] − (−h)^k u[t,d,k].
                    let mut bwd: Vec<(usize, f64, f64)> = (k..on)
                        .map(|o| {
                            let f = fact(o - k);
                            (self.col(t + 1, d, o), pw(-h, o as i64) / f, -(o as f64) * pw(-h, o as i64 - 1) / f)
                        })
                        .collect();
                    bwd.push((self.col(t, d, k), -pw(-h, k as i64), k as f64 * pw(-h, k as i64 - 1)));
                    rows.push(RowSpec { entries: bwd, rhs: 0.0, w: self.w_s, dep: Dep::Taylor { t } });
                }
            }
        }
        if self.central {
            for t in 0..tn.saturating_sub(2) {
                let hh = self.h_at(s, t) + self.h_at(s, t + 1);
                let (p3, p2) = (on as i64 - 3, on as i64 - 2);
                for d in 0..dn {
                    let entries = vec![
                        (self.col(t, d, on - 2), pw(hh, p3), p3 as f64 * pw(hh, p3 - 1)),
                        (self.col(t + 1, d, on - 1), pw(hh, p2), p2 as f64 * pw(hh, p2 - 1)),
                        (self.col(t + 2, d, on - 2), -pw(hh, p3), -(p3 as f64) * pw(hh, p3 - 1)),
                    ];
                    rows.push(RowSpec { entries, rhs: 0.0, w: self.w_s, dep: Dep::Central { t } });
                }
            }
        }
        rows
    }
}

/// The reference results of one problem, plus the quantities the error bounds need.
pub struct Reference {
    pub u: Vec<f64>,
    pub grad_c: Vec<f64>,
    pub grad_r: Vec<f64>,
    pub grad_v: Vec<f64>,
    pub grad_h: Vec<f64>,
    /// Per system: κ₂(M), ‖A‖₂, ‖u‖₂, ‖β‖₂, ‖λ‖₂.
    pub kappa: Vec<f64>,
    pub norm_a: Vec<f64>,
    pub norm_u: Vec<f64>,
    pub norm_beta: Vec<f64>,
    pub norm_lam: Vec<f64>,
    /// Per gradient entry: Σ |w ∂a_ij/∂θ| over the row entries it enters (for `r` and `v`:
    /// `w`), i.e. the factor by which an error in `∂ℓ/∂A` (or `∂ℓ/∂β`) reaches it.
    pub sens_c: Vec<f64>,
    pub sens_r: Vec<f64>,
    pub sens_v: Vec<f64>,
    pub sens_h: Vec<f64>,
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The weighted least-squares problem `min ‖A u − β‖` of system `s`: `A` (rows × `n`) and `β`.
pub fn dense(p: &Problem, s: usize) -> (Mat<f64>, Mat<f64>) {
    let rows = p.rows(s);
    let m = rows.len();
    let mut a = Mat::<f64>::zeros(m, p.n());
    let mut beta = Mat::<f64>::zeros(m, 1);
    for (i, row) in rows.iter().enumerate() {
        for &(j, v, _) in &row.entries {
            a[(i, j)] += row.w * v;
        }
        beta[(i, 0)] = row.w * row.rhs;
    }
    (a, beta)
}

pub fn reference(p: &Problem) -> Reference {
    let (n, b) = (p.n(), p.b());
    let mut out = Reference {
        u: vec![0.0; p.batch * n],
        grad_c: vec![0.0; p.c.len()],
        grad_r: vec![0.0; p.r.len()],
        grad_v: vec![0.0; p.v.len()],
        grad_h: vec![0.0; p.h.len()],
        kappa: vec![],
        norm_a: vec![],
        norm_u: vec![],
        norm_beta: vec![],
        norm_lam: vec![],
        sens_c: vec![0.0; p.c.len()],
        sens_r: vec![0.0; p.r.len()],
        sens_v: vec![0.0; p.v.len()],
        sens_h: vec![0.0; p.h.len()],
    };
    for s in 0..p.batch {
        let rows = p.rows(s);
        let (a, beta) = dense(p, s);
        let u = a.qr().solve_lstsq(&beta);
        let mm = a.transpose() * &a;
        let ev = mm.self_adjoint_eigenvalues(Side::Lower).expect("eigenvalues");
        let (lo, hi) = (ev[0], ev[ev.len() - 1]);
        out.kappa.push(if lo > 0.0 { hi / lo } else { f64::INFINITY });
        out.norm_a.push(hi.sqrt());
        let mut gu = Mat::<f64>::zeros(n, 1);
        for j in 0..n {
            gu[(j, 0)] = p.grad_u[s * n + j];
            out.u[s * n + j] = u[(j, 0)];
        }
        let lam = match mm.llt(Side::Lower) {
            Ok(llt) => llt.solve(&gu),
            // Numerically singular: the layer must report it (see the callers); keep going.
            Err(_) => Mat::<f64>::zeros(n, 1),
        };
        let au = &a * &u;
        let al = &a * &lam;
        let col = |x: &Mat<f64>| (0..x.nrows()).map(|i| x[(i, 0)]).collect::<Vec<_>>();
        out.norm_u.push(norm(&col(&u)));
        out.norm_beta.push(norm(&col(&beta)));
        out.norm_lam.push(norm(&col(&lam)));
        for (i, row) in rows.iter().enumerate() {
            let rho = au[(i, 0)] - beta[(i, 0)];
            let ali = al[(i, 0)];
            // ∂ℓ/∂A[i, j] for the entries of the row.
            let ga = |j: usize| -rho * lam[(j, 0)] - ali * u[(j, 0)];
            match row.dep {
                Dep::Eq { t, e } => {
                    let tc = if p.ct == 1 { 0 } else { t };
                    let tr = if p.rt == 1 { 0 } else { t };
                    let base = ((s * p.ct + tc) * p.e + e) * b;
                    for &(j, _, _) in &row.entries {
                        out.grad_c[base + j % b] += row.w * ga(j);
                        out.sens_c[base + j % b] += row.w;
                    }
                    let k = (s * p.rt + tr) * p.e + e;
                    out.grad_r[k] += row.w * ali;
                    out.sens_r[k] += row.w;
                }
                Dep::Init { t, d, o } => {
                    let k = ((s * p.s + t) * p.d + d) * p.i + o;
                    out.grad_v[k] += row.w * ali;
                    out.sens_v[k] += row.w;
                }
                Dep::Taylor { t } | Dep::Central { t } => {
                    let g: f64 = row.entries.iter().map(|&(j, _, dv)| row.w * ga(j) * dv).sum();
                    let sens: f64 = row.entries.iter().map(|&(_, _, dv)| (row.w * dv).abs()).sum();
                    let ts: Vec<usize> = if let Dep::Central { .. } = row.dep { vec![t, t + 1] } else { vec![t] };
                    for tt in ts {
                        let k = s * p.ht + if p.ht == 1 { 0 } else { tt };
                        out.grad_h[k] += g;
                        out.sens_h[k] += sens;
                    }
                }
            }
        }
    }
    out
}

/// What [`draw`] draws: the seed, the dimensions (`batch` systems of `t` steps, `e` equations,
/// `d` variables of `o` orders, initial values at `s` steps in `i` orders), which of the coefficient,
/// equation right-hand side and step axes are broadcast over `T`, the weights
/// `[equation, initial values, smoothness]`, `central`, and the range `h` of the steps.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub seed: u64,
    pub batch: usize,
    pub t: usize,
    pub e: usize,
    pub d: usize,
    pub o: usize,
    pub s: usize,
    pub i: usize,
    pub bcast: [bool; 3],
    pub weights: [f64; 3],
    pub central: bool,
    pub h: (f64, f64),
}

/// Draws a problem from `spec.seed` with the given dimensions. Coefficients are uniform in
/// [−1, 1] plus 1.5 on the "diagonal" `(e, d = e, o = 0)` so the equations involve every
/// variable; steps uniform in `[h_lo, h_hi]` (`spec.h`).
pub fn draw(spec: &Spec) -> Problem {
    let Spec { seed, batch, t, e, d, o, s, i, bcast, weights, central, h: (h_lo, h_hi) } = *spec;
    let mut rng = StdRng::seed_from_u64(seed);
    let ct = if bcast[0] { 1 } else { t };
    let rt = if bcast[1] { 1 } else { t };
    let ht = if bcast[2] { 1 } else { t - 1 };
    let b = d * o;
    let mut c: Vec<f64> = (0..batch * ct * e * b).map(|_| rng.random_range(-1.0..1.0)).collect();
    for x in 0..batch * ct {
        for ee in 0..e.min(d) {
            c[(x * e + ee) * b + ee * o] += 1.5;
        }
    }
    let r = (0..batch * rt * e).map(|_| rng.random_range(-1.0..1.0)).collect();
    let v = (0..batch * s * d * i).map(|_| rng.random_range(-1.0..1.0)).collect();
    let h = (0..batch * ht).map(|_| rng.random_range(h_lo..h_hi)).collect();
    let grad_u = (0..batch * t * b).map(|_| rng.random_range(-1.0..1.0)).collect();
    Problem {
        batch,
        t,
        e,
        d,
        o,
        s,
        i,
        ct,
        rt,
        ht,
        w_eq: weights[0],
        w_init: weights[1],
        w_s: weights[2],
        central,
        c,
        r,
        v,
        h,
        grad_u,
    }
}
