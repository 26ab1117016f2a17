//! Random SPD band problems for the property tests, and the helpers of their error bounds.

use std::fmt;

use banded::Params;
use faer::Mat;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One random batch: interchange-layout band `ab`, right-hand sides `b`, cotangents `g`, and
/// the parameters it runs under.
#[derive(Clone)]
pub struct Case {
    pub batch: usize,
    pub n: usize,
    pub kd: usize,
    pub nrhs: usize,
    pub seed: u64,
    pub kind: u8,
    pub params: Params,
    pub ab: Vec<f64>,
    pub b: Vec<f64>,
    pub g: Vec<f64>,
}

impl fmt::Debug for Case {
    /// What reproduces the case (`gen_case` from the seed), not its arrays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Case { batch, n, kd, nrhs, seed, kind, params, .. } = self;
        write!(f, "Case {{ batch: {batch}, n: {n}, kd: {kd}, nrhs: {nrhs}, seed: {seed}, kind: {kind}, params: {params:?} }}")
    }
}

/// Random SPD band matrices. `kind` 0: diagonally dominant with a random margin;
/// `kind` 1: `L₀L₀ᵀ` for a random lower band `L₀` (bandwidth `kd`, so the product has it too),
/// row diagonally dominant (`Σ|off-diagonal| ≤ 0.9·diagonal`) so that `κ(L₀) ≤ 19·max|L₀ᵢᵢ|/min|L₀ᵢᵢ|`:
/// a random triangular matrix is otherwise exponentially ill-conditioned in `n`.
pub fn gen_case(batch: usize, n: usize, kd: usize, nrhs: usize, seed: u64, kind: u8, params: Params) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = kd + 1;
    let mut ab = vec![0.0; batch * w * n];
    for s in 0..batch {
        let mut dense = vec![0.0; n * n];
        if kind == 0 {
            for j in 0..n {
                for i in j + 1..n.min(j + kd + 1) {
                    let v: f64 = rng.random_range(-1.0..1.0);
                    dense[i * n + j] = v;
                    dense[j * n + i] = v;
                }
            }
            for i in 0..n {
                let off: f64 = (0..n).filter(|&j| j != i).map(|j| dense[i * n + j].abs()).sum();
                dense[i * n + i] = off + rng.random_range(0.05..1.0);
            }
        } else {
            let mut l0 = vec![0.0; n * n];
            for i in 0..n {
                for j in i.saturating_sub(kd)..i {
                    l0[i * n + j] = rng.random_range(-0.9..0.9) / kd.max(1) as f64;
                }
                l0[i * n + i] = rng.random_range(1.0..2.0);
            }
            for i in 0..n {
                for j in 0..=i {
                    let v: f64 = (0..=j).map(|k| l0[i * n + k] * l0[j * n + k]).sum();
                    dense[i * n + j] = v;
                    dense[j * n + i] = v;
                }
            }
        }
        for d in 0..w {
            for j in 0..n.saturating_sub(d) {
                ab[(s * w + d) * n + j] = dense[(j + d) * n + j];
            }
            // Ignored corner entries: fill with junk to prove they are never read.
            for j in n.saturating_sub(d)..n {
                ab[(s * w + d) * n + j] = f64::NAN;
            }
        }
    }
    let b = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();
    let g = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();
    Case { batch, n, kd, nrhs, seed, kind, params, ab, b, g }
}

pub fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 0.5, "bound meaningless");
    ku / (1.0 - ku)
}

pub fn frob(m: &Mat<f64>) -> f64 {
    m.norm_l2()
}

pub fn abs_mat(m: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)].abs())
}

pub fn mat_of(rows: usize, cols: usize, data: &[f64]) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

