//! The frozen left-hand side: `coefficients` and `steps` fixed, `M` factored once.

use super::{GradInputs, Inputs, Lhs, Outputs, Smnn, Workspace};
use crate::error::Result;
use crate::llt::Cholesky;
use crate::params::Params;
use crate::alloc::{copy_vec, zeroed_vec};
use crate::scalar::Real;

/// An S-MNN layer with its left-hand side (`coefficients`, `steps`) fixed and the normal
/// matrices `M` factored, from [`Smnn::freeze`].
///
/// Only `rhs_equation` and `init_vars` vary: [`forward`](Self::forward) assembles `Aᵀβ`
/// (O(T·E·b)) and solves (O(n·kd)); [`backward`](Self::backward) solves once more and needs
/// nothing else (`∂ℓ/∂r` and `∂ℓ/∂v` depend on `λ = M⁻¹ ∂ℓ/∂u` only). Results equal those of
/// [`Smnn::forward`] / [`Forward::backward`](super::Forward::backward) for the same inputs.
#[derive(Clone, Debug)]
pub struct Frozen<T> {
    layer: Smnn,
    coefficients: Vec<T>,
    steps: Vec<T>,
    factor: Cholesky<T>,
}

/// Gradients of ℓ with respect to the inputs that vary in a [`Frozen`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenGrads<T> {
    /// ∂ℓ/∂rhs_equation, `(batch, T or 1, E)`.
    pub rhs_equation: Vec<T>,
    /// ∂ℓ/∂init_vars, `(batch, S, D, I)`.
    pub init_vars: Vec<T>,
}

impl<T: Real> Frozen<T> {
    pub(super) fn new(layer: Smnn, coefficients: Vec<T>, steps: Vec<T>, factor: Cholesky<T>) -> Self {
        Self { layer, coefficients, steps, factor }
    }

    /// The layer.
    pub fn layer(&self) -> &Smnn {
        &self.layer
    }
    /// The frozen coefficients, `(batch, T or 1, E, D, O)`.
    pub fn coefficients(&self) -> &[T] {
        &self.coefficients
    }
    /// The frozen step sizes, `(batch, T − 1 or 1)`.
    pub fn steps(&self) -> &[T] {
        &self.steps
    }
    /// The factor of `M` (see [`Forward::factor`](super::Forward::factor)).
    pub fn factor(&self) -> &Cholesky<T> {
        &self.factor
    }

    /// The full [`Inputs`] made of the frozen left-hand side and the given right-hand side, e.g.
    /// for [`Smnn::backward`] with [`factor`](Self::factor) when all four gradients are wanted.
    pub fn inputs<'a>(&'a self, rhs_equation: &'a [T], init_vars: &'a [T]) -> Inputs<'a, T> {
        Inputs { coefficients: &self.coefficients, rhs_equation, init_vars, steps: &self.steps }
    }

    /// `u = M⁻¹ Aᵀβ` `(batch, T, D, O)` for `rhs_equation` `(batch, T or 1, E)` and
    /// `init_vars` `(batch, S, D, I)`. Cost per system O(T·E·b + n·kd).
    ///
    /// Errors: [`Error::Shape`](crate::Error::Shape), [`Error::NonFinite`](crate::Error::NonFinite)
    /// (an input, if `params.check_finite()`), [`Error::Overflow`](crate::Error::Overflow) (`u`
    /// overflowed, with that check).
    pub fn forward(&self, rhs_equation: &[T], init_vars: &[T], params: &Params) -> Result<Vec<T>> {
        self.layer.check_rhs(rhs_equation, init_vars, params)?;
        self.layer.solve_u(&self.factor, &self.inputs(rhs_equation, init_vars), params)
    }

    /// The gradients with respect to `rhs_equation` and `init_vars` for the cotangent
    /// `grad_u` = ∂ℓ/∂u `(batch, T, D, O)`: `λ = M⁻¹ grad_u`, `∂ℓ/∂r[t,e] = w_eq² C[t,e]·λ_t`,
    /// `∂ℓ/∂v[t,d,o] = w_init² λ[t,d,o]`. They do not depend on `u` or on the right-hand side.
    /// Cost per system O(n·kd + T·E·b).
    ///
    /// Errors: [`Error::Shape`](crate::Error::Shape), [`Error::NonFinite`](crate::Error::NonFinite)
    /// (`grad_u`, if `params.check_finite()`), [`Error::Overflow`](crate::Error::Overflow) (`lambda`,
    /// `grad_rhs_equation`, `grad_init_vars` overflowed, with that check).
    pub fn backward(&self, grad_u: &[T], params: &Params) -> Result<FrozenGrads<T>> {
        let l = &self.layer;
        Smnn::check_array("grad_u", grad_u, &l.u_shape(), params)?;
        let lam = l.solve_vec(&self.factor, copy_vec("grad_u", grad_u)?, "lambda", params)?;
        let [_, rl, vl, _, _] = l.system_lens();
        let b = l.batch;
        let mut g = FrozenGrads {
            rhs_equation: zeroed_vec("grad_rhs_equation", b * rl)?,
            init_vars: zeroed_vec("grad_init_vars", b * vl)?,
        };
        // Only the right-hand-side sums: no `u`, no coefficient or step gradients.
        let out = Outputs { gc: &mut [], gr: &mut g.rhs_equation, gv: &mut g.init_vars, gh: &mut [] };
        let x = GradInputs { c: &self.coefficients, r: &[], h: &[], u: &[], lam: &lam };
        l.grads_batch(x, out, false, params);
        if params.check_finite() {
            Smnn::check_result("grad_rhs_equation", &g.rhs_equation, &l.rhs_equation_shape(), params)?;
            Smnn::check_result("grad_init_vars", &g.init_vars, &l.init_vars_shape(), params)?;
        }
        Ok(g)
    }
}

impl Smnn {

    /// Freezes the left-hand side: checks `coefficients` and `steps`, keeps a copy, and factors
    /// `M` once. The returned [`Frozen`] then runs the forward and the backward for new
    /// `rhs_equation` and `init_vars` at the cost of one solve each.
    ///
    /// Also the way to recompute the factor for [`backward`](Self::backward) when only the
    /// inputs and `u` were kept ([`Frozen::factor`]).
    ///
    /// Errors: as [`forward`](Self::forward) for `coefficients` and `steps`.
    pub fn freeze<T: Real>(&self, coefficients: &[T], steps: &[T], params: &Params) -> Result<Frozen<T>> {
        self.check_lhs(coefficients, steps, params)?;
        let factor = self.factor_unchecked(Lhs { coefficients, steps }, None, &mut Workspace::new(), params)?;
        Ok(Frozen::new(*self, copy_vec("coefficients", coefficients)?, copy_vec("steps", steps)?, factor))
    }
}
