//! The scaling study: one S-MNN system (D = O = E = 3) of growing length T, forward + backward
//! through the banded layer and through a dense normal-equations solve (faer's dense
//! Cholesky), timed, with the peak heap memory of each call from the counting allocator.
#![allow(dead_code)]

use std::time::Instant;

use banded::Params;
use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::alloc;

pub const D: usize = 3;
pub const O: usize = 3;
pub const E: usize = 3;

/// One system of `T` steps: random coefficients (uniform in [−1, 1], plus 1.5 on the value of
/// variable e in equation e), right-hand sides, initial values (every order at step 0), steps
/// in [0.05, 0.15], and a cotangent `∂ℓ/∂u`.
pub struct Problem {
    pub layer: Smnn,
    pub t: usize,
    pub c: Vec<f64>,
    pub r: Vec<f64>,
    pub v: Vec<f64>,
    pub h: Vec<f64>,
    pub grad_u: Vec<f64>,
}

pub fn problem(t: usize, seed: u64) -> banded::Result<Problem> {
    let layer = Smnn::new(
        Options::default(),
        InputShapes {
            coefficients: &[1, t, E, D, O],
            rhs_equation: &[1, t, E],
            init_vars: &[1, 1, D, O],
            steps: &[1, t - 1],
        },
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |len: usize, lo: f64, hi: f64| -> Vec<f64> {
        (0..len).map(|_| rng.random_range(lo..=hi)).collect()
    };
    let mut c = draw(t * E * D * O, -1.0, 1.0);
    for step in 0..t {
        for e in 0..E.min(D) {
            c[(step * E + e) * D * O + e * O] += 1.5;
        }
    }
    let r = draw(t * E, -1.0, 1.0);
    let v = draw(D * O, -1.0, 1.0);
    let h = draw(t - 1, 0.05, 0.15);
    let grad_u = draw(t * D * O, -1.0, 1.0);
    Ok(Problem {
        layer,
        t,
        c,
        r,
        v,
        h,
        grad_u,
    })
}

impl Problem {
    fn inputs(&self) -> Inputs<'_, f64> {
        Inputs {
            coefficients: &self.c,
            rhs_equation: &self.r,
            init_vars: &self.v,
            steps: &self.h,
        }
    }
}

/// The banded layer: forward, then backward (all four gradients). Returns `u`.
pub fn banded(p: &Problem, params: &Params) -> banded::Result<Vec<f64>> {
    let fwd = p.layer.forward(p.inputs(), params)?;
    let grads = fwd.backward(&p.grad_u, params)?;
    std::hint::black_box(&grads);
    Ok(fwd.into_parts().0)
}

fn fact(k: usize) -> f64 {
    (1..=k).map(|x| x as f64).product()
}

/// The dense formulation of the original MNN: the normal matrix `M = AᵀA` (n × n, n = T·D·O)
/// and `Aᵀβ` accumulated row by row from the rows of docs/ARCHITECTURE.md ("The S-MNN rows") (unit weights, no central
/// rows), factored by faer's dense Cholesky; `u = M⁻¹Aᵀβ`; backward `λ = M⁻¹ ∂ℓ/∂u` (one more
/// solve) and the gradients of the right-hand sides (`∂ℓ/∂r = Cλ`, `∂ℓ/∂v = λ` on the initial
/// rows; the remaining O(T) row sums are left out). Returns `u`.
pub fn dense(p: &Problem) -> Result<Vec<f64>, String> {
    let (t_n, b) = (p.t, D * O);
    let n = t_n * b;
    let mut m = Mat::<f64>::zeros(n, n);
    let mut rhs = Mat::<f64>::zeros(n, 1);
    let mut add_row = |entries: &[(usize, f64)], beta: f64| {
        for &(i, a) in entries {
            for &(j, c) in entries {
                m[(i, j)] += a * c;
            }
            rhs[(i, 0)] += a * beta;
        }
    };
    let col = |t: usize, d: usize, o: usize| (t * D + d) * O + o;
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(b + 1);
    for t in 0..t_n {
        for e in 0..E {
            row.clear();
            row.extend((0..b).map(|j| (t * b + j, p.c[(t * E + e) * b + j])));
            add_row(&row, p.r[t * E + e]);
        }
    }
    for d in 0..D {
        for o in 0..O {
            add_row(&[(col(0, d, o), 1.0)], p.v[d * O + o]);
        }
    }
    for t in 0..t_n - 1 {
        let h = p.h[t];
        for d in 0..D {
            for k in 0..O {
                row.clear();
                row.extend((k..O).map(|o| (col(t, d, o), h.powi(o as i32) / fact(o - k))));
                row.push((col(t + 1, d, k), -h.powi(k as i32)));
                add_row(&row, 0.0);
                row.clear();
                row.extend((k..O).map(|o| (col(t + 1, d, o), (-h).powi(o as i32) / fact(o - k))));
                row.push((col(t, d, k), -(-h).powi(k as i32)));
                add_row(&row, 0.0);
            }
        }
    }
    let llt = m
        .llt(Side::Lower)
        .map_err(|e| format!("dense Cholesky failed: {e:?}"))?;
    drop(m);
    llt.solve_in_place(rhs.as_mut());
    let mut lam = Mat::<f64>::from_fn(n, 1, |i, _| p.grad_u[i]);
    llt.solve_in_place(lam.as_mut());
    let grad_r: Vec<f64> = (0..t_n * E)
        .map(|te| {
            (0..b)
                .map(|j| p.c[te * b + j] * lam[((te / E) * b + j, 0)])
                .sum()
        })
        .collect();
    let grad_v: Vec<f64> = (0..b).map(|j| lam[(j, 0)]).collect();
    std::hint::black_box((&grad_r, &grad_v));
    Ok((0..n).map(|i| rhs[(i, 0)]).collect())
}

/// Seconds (the fastest of repeated runs, repeated until `min_time` has passed, at most 20)
/// and peak heap bytes of `f` (above what was in use before the call).
///
/// The peak is taken from one more call after the timed ones when a call takes under a second
/// (so one-time allocations such as thread-local matmul buffers are not counted), else from
/// the first call. `R` is the result of the first call.
pub fn measure<R, Err>(
    mut f: impl FnMut() -> Result<R, Err>,
    min_time: f64,
) -> Result<(f64, usize, R), Err> {
    let base = alloc::start();
    let t0 = Instant::now();
    let out = f()?;
    let mut best = t0.elapsed().as_secs_f64();
    let mut bytes = alloc::peak_since(base);
    let (mut total, mut reps) = (best, 1);
    while total < min_time && reps < 20 {
        let t0 = Instant::now();
        std::hint::black_box(f()?);
        let dt = t0.elapsed().as_secs_f64();
        best = best.min(dt);
        total += dt;
        reps += 1;
    }
    if best < 1.0 {
        let base = alloc::start();
        std::hint::black_box(f()?);
        bytes = alloc::peak_since(base);
    }
    Ok((best, bytes, out))
}

/// One length T: the banded measurement, and the dense one where it was run.
#[derive(Clone, Debug)]
pub struct Point {
    pub t: usize,
    pub banded_s: f64,
    pub banded_bytes: usize,
    pub dense: Option<(f64, usize)>,
    /// max |u_dense − u_banded| / max |u_banded| where both ran.
    pub agreement: Option<f64>,
}

/// `count` log-spaced lengths from `lo` to `hi` (rounded, distinct).
pub fn log_space(lo: usize, hi: usize, count: usize) -> Vec<usize> {
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    let mut v: Vec<usize> = (0..count)
        .map(|i| {
            (a + (b - a) * i as f64 / (count - 1).max(1) as f64)
                .exp()
                .round() as usize
        })
        .collect();
    v.dedup();
    v
}

/// Limits of the dense runs: the next one is skipped once its predicted time (cubic in T from
/// the last) or its memory (two n × n matrices) would pass these.
#[derive(Clone, Copy, Debug)]
pub struct DenseLimits {
    pub max_seconds: f64,
    pub max_bytes: usize,
}

/// Runs the study over `ts` (increasing); `report` is called after each length.
pub fn sweep(
    ts: &[usize],
    limits: DenseLimits,
    min_time: f64,
    params: &Params,
    mut report: impl FnMut(&Point),
) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    let mut dense_on = true;
    // Warm-up: faer's matmul allocates per-thread packing buffers once; not part of any call.
    for _ in 0..3 {
        dense(&problem(100, 0).map_err(|e| e.to_string())?)?;
    }
    for &t in ts {
        let p = problem(t, t as u64).map_err(|e| e.to_string())?;
        let (banded_s, banded_bytes, u) =
            measure(|| banded(&p, params), min_time).map_err(|e| e.to_string())?;
        let n = t * D * O;
        if let Some(prev) = out
            .iter()
            .rev()
            .find_map(|q: &Point| q.dense.map(|d| (q.t, d.0)))
        {
            let predicted = prev.1 * (t as f64 / prev.0 as f64).powi(3);
            if predicted > limits.max_seconds {
                dense_on = false;
            }
        }
        if 2 * n * n * 8 > limits.max_bytes {
            dense_on = false;
        }
        let (dense, agreement) = if dense_on {
            let (s, bytes, ud) = measure(|| dense(&p), min_time)?;
            let scale = u.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let diff = u
                .iter()
                .zip(&ud)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            (Some((s, bytes)), Some(diff / scale))
        } else {
            (None, None)
        };
        let point = Point {
            t,
            banded_s,
            banded_bytes,
            dense,
            agreement,
        };
        report(&point);
        out.push(point);
    }
    Ok(out)
}
