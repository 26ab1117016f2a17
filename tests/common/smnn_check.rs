#![allow(dead_code)]
//! The S-MNN layer in `T` against the dense reference of `smnn_ref.rs` (rows of `A` built
//! explicitly, faer QR), system by system, with error bounds that come from first-order
//! analysis, not from tuning. Include next to `smnn_ref.rs`:
//!
//! ```ignore
//! #[path = "common/smnn_ref.rs"]
//! mod smnn_ref;
//! #[path = "common/smnn_check.rs"]
//! mod smnn_check;
//! ```
//!
//! # Forward error bounds
//!
//! With `κ = κ₂(M)` (computed by the reference from the eigenvalues of the dense `M = AᵀA`),
//! the banded path computes `M`, `Aᵀβ` (sums of at most `E + 2O + 3` products per entry), the
//! band Cholesky (inner products of length ≤ `kd + 1`) and two solves: it is backward stable
//! with relative backward error `≲ c·ε`, `c = 4·(kd + E + 2O + 4)`, in `M` and in `|A|ᵀ|β|`.
//! Hence
//!
//! - `‖Δu‖₂ ≤ c·ε·κ·(‖u‖₂ + ‖β‖₂/‖A‖₂)` and `‖Δλ‖₂ ≤ c·ε·κ·‖λ‖₂`;
//! - `∂ℓ/∂A = −ρλᵀ − (Aλ)uᵀ` then errs entrywise by at most
//!   `ΔG = ‖A‖(Δu‖λ‖ + Δλ‖u‖) + (‖A‖‖u‖ + ‖β‖)Δλ + ‖A‖‖λ‖Δu + c·ε·(‖A‖‖u‖ + ‖β‖)‖λ‖`, and
//!   `∂ℓ/∂β = Aλ` by `Δg = ‖A‖Δλ + c·ε‖A‖‖λ‖`;
//! - each input gradient entry is a sum of row-entry gradients times `w ∂a/∂θ`: its error is at
//!   most `sens·ΔG` (or `sens·Δg`), `sens = Σ|w ∂a/∂θ|` computed by the reference.
//!
//! The reference itself (f64 QR) obeys the same kind of bound with `ε = ε_f64`, which is added.
//!
//! # Ill-conditioned systems
//!
//! Where `c·ε·κ ≥ 1/2` (f32 on an ill-conditioned system) the forward bound guarantees no
//! correct digit. Such a system is still checked, by the backward error of `u` (which does not
//! depend on `κ`): with `L̂` the layer's factor, `û` satisfies `(M + ΔM)û = Aᵀβ + δb` with
//! `|ΔM| ≤ c·ε|A|ᵀ|A| + γ_{3(kd+1)+1}|L̂||L̂ᵀ|` (assembly; Higham, *Accuracy and Stability of
//! Numerical Algorithms*, Thm 10.4, for the factor and the solves) and `|δb| ≤ c·ε|A|ᵀ|β|`, so
//! `‖Mû − Aᵀβ‖₂ ≤ c·ε(‖|A|ᵀ|A|‖_F‖û‖ + ‖|A|ᵀ|β|‖) + γ_{3(kd+1)+1}‖|L̂||L̂ᵀ|‖_F‖û‖`, doubled
//! for second-order terms, plus the f64 evaluation of the residual. A system the layer reports
//! as not positive definite must be numerically singular by the reference. [`Tally`] counts
//! how each system was checked, so that tests can require that the large majority got the
//! full forward-error check.

use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::{Params, Real};
use faer::Mat;

use crate::common::assert_same_bits;
use crate::smnn_ref::{dense, reference, Problem};

/// The layer's results, widened to f64.
pub struct Got {
    pub u: Vec<f64>,
    pub c: Vec<f64>,
    pub r: Vec<f64>,
    pub v: Vec<f64>,
    pub h: Vec<f64>,
    /// The factor `L̂` in the internal band layout (`[(s·n + j)·(kd+1) + d] = L̂_s[j + d, j]`).
    pub l: Vec<f64>,
    pub kd: usize,
}

fn to<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(v)).collect()
}
fn back<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|&v| v.as_f64()).collect()
}

pub fn options(p: &Problem, give_t: bool) -> Options {
    Options {
        n_steps: give_t.then_some(p.t),
        weight_equation: p.w_eq,
        weight_init_var: p.w_init,
        weight_smooth: p.w_s,
        central: p.central,
    }
}

/// The layer of problem `p` (`give_t`: pass `T` explicitly).
pub fn layer(p: &Problem, give_t: bool) -> Smnn {
    let (cs, rs, vs, hs) = p.shapes();
    Smnn::new(options(p, give_t), InputShapes { coefficients: &cs, rhs_equation: &rs, init_vars: &vs, steps: &hs }).unwrap()
}

/// Runs the layer in `T` under `params` (forward, backward), and checks on the way that the
/// other ways to the same results give the same bits.
pub fn run<T: Real>(p: &Problem, give_t: bool, params: &Params) -> Result<Got, banded::Error> {
    let layer = layer(p, give_t);
    let (c, r, v, h, gu) = (to::<T>(&p.c), to::<T>(&p.r), to::<T>(&p.v), to::<T>(&p.h), to::<T>(&p.grad_u));
    let fwd = layer.forward(Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h }, params)?;
    let g = fwd.backward(&gu, params).unwrap();

    // The frozen left-hand side gives the same results (same operations in the same order).
    let frozen = layer.freeze(&c, &h, params).unwrap();
    let u2 = frozen.forward(&r, &v, params).unwrap();
    assert_same_bits(&u2, fwd.u(), "frozen forward");
    let fg = frozen.backward(&gu, params).unwrap();
    assert_same_bits(&fg.rhs_equation, &g.rhs_equation, "frozen grad_rhs_equation");
    assert_same_bits(&fg.init_vars, &g.init_vars, "frozen grad_init_vars");
    let same_grads = |a: &banded::smnn::Grads<T>, what: &str| {
        assert_same_bits(&a.coefficients, &g.coefficients, format!("{what}: grad_coefficients"));
        assert_same_bits(&a.rhs_equation, &g.rhs_equation, format!("{what}: grad_rhs_equation"));
        assert_same_bits(&a.init_vars, &g.init_vars, format!("{what}: grad_init_vars"));
        assert_same_bits(&a.steps, &g.steps, format!("{what}: grad_steps"));
    };
    // And the custom-op shaped backward from (inputs, u, factor, grad_u).
    let g2 = layer.backward(frozen.inputs(&r, &v), fwd.u(), frozen.factor(), &gu, params).unwrap();
    same_grads(&g2, "backward from parts");
    // A forward in the storage of an earlier one (holding its factor and `u`): the same bits.
    let inputs = Inputs { coefficients: &c, rhs_equation: &r, init_vars: &v, steps: &h };
    let fwd3 = layer.forward_with(inputs, params, fwd.clone().into_workspace()).unwrap();
    assert_same_bits(fwd3.u(), fwd.u(), "forward in a reused workspace");
    same_grads(&fwd3.backward(&gu, params).unwrap(), "backward after a reused workspace");
    let ws = fwd3.into_workspace();
    assert!(ws.capacity() >= layer.batch() * layer.n() * (layer.kd() + 3));

    Ok(Got {
        u: back(fwd.u()),
        c: back(&g.coefficients),
        r: back(&g.rhs_equation),
        v: back(&g.init_vars),
        h: back(&g.steps),
        l: back(fwd.factor().l().as_slice()),
        kd: layer.kd(),
    })
}

/// Rounds every input to `T` (and back), so that the reference solves the problem the layer got.
pub fn rounded<T: Real>(p: &Problem) -> Problem {
    let rd = |x: &[f64]| back(&to::<T>(x));
    Problem {
        c: rd(&p.c),
        r: rd(&p.r),
        v: rd(&p.v),
        h: rd(&p.h),
        grad_u: rd(&p.grad_u),
        w_eq: T::from_f64(p.w_eq).as_f64(),
        w_init: T::from_f64(p.w_init).as_f64(),
        w_s: T::from_f64(p.w_s).as_f64(),
        ..p.clone()
    }
}

/// How the systems of the checked problems were checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// `u` and the four gradients within their forward error bounds.
    pub full: usize,
    /// Ill-conditioned beyond the forward bound (`c·ε·κ ≥ 1/2`): `u` within its backward error
    /// bound.
    pub residual: usize,
    /// Reported not positive definite, and singular to working precision by the reference.
    pub singular: usize,
    /// Not checked: another system of the batch was singular (the layer returns no results).
    pub skipped: usize,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.full += other.full;
        self.residual += other.residual;
        self.singular += other.singular;
        self.skipped += other.skipped;
    }
    pub fn total(&self) -> usize {
        self.full + self.residual + self.singular + self.skipped
    }
    /// Asserts that at least `min_full` of the systems got the full check and that none was
    /// skipped (a singular system in a batch of several hides its neighbours).
    pub fn assert_mostly_full(&self, what: &str, min_full: f64) {
        assert!(self.total() > 0, "{what}: nothing checked");
        assert!(
            self.full as f64 >= min_full * self.total() as f64 && self.skipped == 0,
            "{what}: too few systems got the forward-error check: {self:?}"
        );
    }
}

/// `γ_k = k·u/(1 − k·u)`.
fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 0.5, "bound meaningless");
    ku / (1.0 - ku)
}

fn abs(m: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)].abs())
}

/// The backward-error check of `u` of system `s` (see the module docs).
fn check_residual(p: &Problem, s: usize, got: &Got, c: f64, eps: f64) {
    let (n, kd) = (p.n(), got.kd);
    let (a, beta) = dense(p, s);
    let u = Mat::from_fn(n, 1, |j, _| got.u[s * n + j]);
    let res = a.transpose() * (&a * &u - &beta);
    let (aa, ab) = (abs(&a), abs(&beta));
    let ata = aa.transpose() * &aa;
    let atb = aa.transpose() * &ab;
    let w = kd + 1;
    let l = Mat::from_fn(n, n, |i, j| if i >= j && i - j <= kd { got.l[(s * n + j) * w + i - j].abs() } else { 0.0 });
    let ll = &l * l.transpose();
    let nu = u.norm_l2();
    let assembly = c * (eps + f64::EPSILON) * (ata.norm_l2() * nu + atb.norm_l2());
    let factor = gamma(3 * w + 1, eps) * ll.norm_l2() * nu;
    let evaluation = gamma(a.nrows() + n, f64::EPSILON / 2.0) * (ata.norm_l2() * nu + atb.norm_l2());
    let bound = 2.0 * (assembly + factor) + evaluation;
    let err = res.norm_l2();
    if std::env::var_os("SMNN_PRINT").is_some() {
        eprintln!("system {s}: backward error/bound {:.3e}", err / bound);
    }
    assert!(err <= bound, "system {s}: ‖Mû − Aᵀβ‖ = {err:e} > bound {bound:e}");
}

/// Checks the layer in `T` under `params` against the reference, system by system (see the
/// module docs); panics on a violated bound. Returns how each system was checked and the
/// largest ratio error/bound of the forward checks (for information).
pub fn check<T: Real>(p: &Problem, give_t: bool, params: &Params) -> (Tally, f64) {
    let p = rounded::<T>(p);
    let re = reference(&p);
    let eps = T::epsilon().as_f64();
    let mut tally = Tally::default();
    let got = match run::<T>(&p, give_t, params) {
        Ok(got) => got,
        Err(banded::Error::NotPositiveDefinite { failures, .. }) => {
            // The layer reports a system when a pivot is below 2(kd+1)·ε of its diagonal entry;
            // pivots satisfy d_j/M_jj ≥ 1/κ₂(M), so that needs κ₂(M) ≳ 1/(2(kd+1)ε). Allow a
            // factor 4 for the rounding in assembling M.
            let kd = layer(&p, give_t).kd();
            for f in &failures {
                let k = re.kappa[f.system];
                assert!(8.0 * (kd + 1) as f64 * eps * k >= 1.0, "system {} reported singular, but κ₂(M) = {k:e}", f.system);
            }
            tally.singular = failures.len();
            tally.skipped = p.batch - failures.len();
            return (tally, 0.0);
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    let c = 4.0 * (got.kd + p.e + 2 * p.o + 4) as f64;
    let n = p.n();
    let mut worst = 0.0f64;
    // Per system: the bounds of ∂ℓ/∂A and ∂ℓ/∂β entries, or `None` (ill-conditioned).
    let (mut db_a, mut db_b) = (vec![], vec![]);
    for s in 0..p.batch {
        let (k, na, nu, nb, nl) = (re.kappa[s], re.norm_a[s], re.norm_u[s], re.norm_beta[s], re.norm_lam[s]);
        let rel = c * (eps + f64::EPSILON) * k;
        if rel.is_nan() || rel >= 0.5 {
            check_residual(&p, s, &got, c, eps);
            tally.residual += 1;
            db_a.push(None);
            db_b.push(None);
            continue;
        }
        tally.full += 1;
        let du = rel * (nu + nb / na);
        let dl = rel * nl;
        let err_u = (0..n).map(|j| (got.u[s * n + j] - re.u[s * n + j]).powi(2)).sum::<f64>().sqrt();
        assert!(err_u <= du, "system {s}: ‖Δu‖ = {err_u:e} > bound {du:e} (κ = {k:e})");
        worst = worst.max(err_u / du);
        db_a.push(Some(na * (du * nl + dl * nu) + (na * nu + nb) * dl + na * nl * du + c * eps * (na * nu + nb) * nl));
        db_b.push(Some(na * dl + c * eps * na * nl));
    }
    for (name, got, want, sens, db) in [
        ("grad_coefficients", &got.c, &re.grad_c, &re.sens_c, &db_a),
        ("grad_rhs_equation", &got.r, &re.grad_r, &re.sens_r, &db_b),
        ("grad_init_vars", &got.v, &re.grad_v, &re.sens_v, &db_b),
        ("grad_steps", &got.h, &re.grad_h, &re.sens_h, &db_a),
    ] {
        assert_eq!(got.len(), want.len(), "{name} length");
        let per = got.len() / p.batch;
        for k in 0..got.len() {
            let Some(db) = db[k / per] else { continue };
            let bound = sens[k] * db;
            let err = (got[k] - want[k]).abs();
            assert!(err <= bound, "{name}[{k}]: got {}, want {}, |Δ| = {err:e} > bound {bound:e}", got[k], want[k]);
            if bound > 0.0 {
                worst = worst.max(err / bound);
            }
        }
    }
    (tally, worst)
}
