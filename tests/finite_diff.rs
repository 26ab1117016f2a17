//! The backward of `X = A⁻¹B` against central finite differences of ℓ = Σ G∘X.
//!
//! Central differences with step `h` have truncation error `h²/6·|ℓ'''|` and rounding error
//! about `ε·|ℓ|/h`; with `h = 1e-5` on these well-conditioned systems (κ ≲ 10, entries O(1))
//! both are below 1e-8 of the gradient's scale, so 1e-6 relative is a safe, non-tuned margin.

use banded::{BandBatch, BatchMatrix, Cholesky, Params};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn loss(ab: &[f64], b: &[f64], g: &[f64], batch: usize, kd: usize, n: usize, nrhs: usize) -> f64 {
    let p = Params::default();
    let a = BandBatch::from_lower_band(ab, batch, n, kd).unwrap();
    let chol = Cholesky::factor(&a, &p).unwrap();
    let x = chol.solve(&BatchMatrix::new(b.to_vec(), batch, n, nrhs).unwrap(), &p).unwrap();
    x.as_slice().iter().zip(g).map(|(x, g)| x * g).sum()
}

fn random_spd_band(rng: &mut StdRng, batch: usize, kd: usize, n: usize) -> Vec<f64> {
    let w = kd + 1;
    let mut ab = vec![0.0; batch * w * n];
    for s in 0..batch {
        for d in 1..w {
            for j in 0..n.saturating_sub(d) {
                ab[(s * w + d) * n + j] = rng.random_range(-1.0..1.0);
            }
        }
        for j in 0..n {
            ab[s * w * n + j] = 2.0 * kd as f64 + rng.random_range(1.0..2.0);
        }
    }
    ab
}

#[test]
fn backward_matches_central_differences() {
    let mut rng = StdRng::seed_from_u64(7);
    for &(batch, kd, n, nrhs) in &[(1, 0, 1, 1), (2, 1, 6, 2), (3, 3, 9, 1), (1, 5, 5, 3), (2, 7, 5, 2)] {
        let ab = random_spd_band(&mut rng, batch, kd, n);
        let b: Vec<f64> = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();
        let g: Vec<f64> = (0..batch * n * nrhs).map(|_| rng.random_range(-1.0..1.0)).collect();

        let p = Params::default();
        let a = BandBatch::from_lower_band(&ab, batch, n, kd).unwrap();
        let chol = Cholesky::factor(&a, &p).unwrap();
        let bm = BatchMatrix::new(b.clone(), batch, n, nrhs).unwrap();
        let x = chol.solve(&bm, &p).unwrap();
        let grad = chol.backward(&x, &BatchMatrix::new(g.clone(), batch, n, nrhs).unwrap(), &p).unwrap();
        let gab = grad.ab.to_lower_band().unwrap();

        let h = 1e-5;
        let fd = |ab: &[f64], b: &[f64]| loss(ab, b, &g, batch, kd, n, nrhs);
        let scale = gab.iter().chain(grad.rhs.as_slice()).fold(0.0f64, |m, v| m.max(v.abs()));
        let w = kd + 1;
        for s in 0..batch {
            for d in 0..w {
                for j in 0..n.saturating_sub(d) {
                    let k = (s * w + d) * n + j;
                    let (mut ap, mut am) = (ab.clone(), ab.clone());
                    ap[k] += h;
                    am[k] -= h;
                    let num = (fd(&ap, &b) - fd(&am, &b)) / (2.0 * h);
                    assert!(
                        (num - gab[k]).abs() <= 1e-6 * scale,
                        "kd={kd} n={n}: ∂ℓ/∂ab[{s},{d},{j}] = {} but finite difference {num}",
                        gab[k]
                    );
                }
            }
        }
        for k in 0..b.len() {
            let (mut bp, mut bmn) = (b.clone(), b.clone());
            bp[k] += h;
            bmn[k] -= h;
            let num = (fd(&ab, &bp) - fd(&ab, &bmn)) / (2.0 * h);
            let got = grad.rhs.as_slice()[k];
            assert!((num - got).abs() <= 1e-6 * scale, "∂ℓ/∂rhs[{k}] = {got} but finite difference {num}");
        }
    }
}
