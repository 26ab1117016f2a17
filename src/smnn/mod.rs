//! The S-MNN layer: a least-squares ODE solve that turns per-step ODE coefficients into a
//! trajectory, and its gradients, in O(T) time and memory (the rows are also in
//! `docs/ARCHITECTURE.md`, "The S-MNN rows").
//!
//! # The problem
//!
//! Per system `s` of the batch, the unknowns `u[t, d, o]` are the `o`-th derivative of variable
//! `d` at step `t` (`t < T`, `d < D`, `o < O`). Weighted least-squares rows `A u ≈ β`:
//!
//! 1. equations (`w_eq`): `Σ_{d,o} C[t,e,d,o] u[t,d,o] = r[t,e]` for every `t`, `e < E`;
//! 2. initial values (`w_init`): `u[t,d,o] = v[t,d,o]` for `t < S`, `o < I`;
//! 3. Taylor smoothness (`w_s`), for `t < T−1`, `k < K` (`K = O − 1` with `central`, else `O`):
//!    `Σ_{o≥k} h_t^o/(o−k)! u[t,d,o] − h_t^k u[t+1,d,k] = 0` and
//!    `Σ_{o≥k} (−h_t)^o/(o−k)! u[t+1,d,o] − (−h_t)^k u[t,d,k] = 0`;
//! 4. central smoothness (`w_s`, only with `central`), for `t < T−2`, `H = h_t + h_{t+1}`:
//!    `H^{O−3} u[t,d,O−2] + H^{O−2} u[t+1,d,O−1] − H^{O−3} u[t+2,d,O−2] = 0`.
//!
//! The output is `u = M⁻¹ Aᵀβ` with `M = AᵀA`, shape `(batch, T, D, O)`. `M` (lower bandwidth
//! [`Smnn::kd`]) is assembled straight into the storage the batched Cholesky factors it in:
//! for batches of at least one pack, `L` systems at a time in the lane-interleaved layout, a
//! window of columns just before the factorization takes it (so each window is assembled,
//! factored and forward-substituted while in cache, and the storage written once); otherwise
//! the band layout of [`BandBatch`](crate::BandBatch). `A` is never formed. Repeated calls can reuse the
//! storage of the previous one ([`Smnn::forward_with`], [`Workspace`]).
//!
//! # Use
//!
//! ```
//! use banded::smnn::{InputShapes, Inputs, Options, Smnn};
//! use banded::Params;
//!
//! // One system, T = 5 steps, one equation u' = −u (E = D = 1, O = 2), u(0) = 1.
//! let (t, o) = (5, 2);
//! let coefficients: Vec<f64> = [1.0, 1.0].repeat(t); // (1, T, 1, 1, 2): u + u' = 0
//! let rhs_equation = vec![0.0; t];                  // (1, T, 1)
//! let init_vars = vec![1.0];                        // (1, 1, 1, 1)
//! let steps = vec![0.1];                            // (1, 1): broadcast over the T − 1 steps
//! let layer = Smnn::new(
//!     Options::default(),
//!     InputShapes { coefficients: &[1, t, 1, 1, o], rhs_equation: &[1, t, 1], init_vars: &[1, 1, 1, 1], steps: &[1, 1] },
//! )?;
//! let inputs = Inputs { coefficients: &coefficients, rhs_equation: &rhs_equation, init_vars: &init_vars, steps: &steps };
//! let params = Params::default();
//! let fwd = layer.forward(inputs, &params)?;
//! assert_eq!(fwd.u().len(), t * o); // (1, T, 1, 2)
//! let grads = fwd.backward(&vec![1.0; t * o], &params)?; // ℓ = Σ u
//! assert_eq!(grads.steps.len(), 1); // summed over the broadcast axis
//! # Ok::<(), banded::Error>(())
//! ```
//!
//! Costs per system (`n = T·D·O`, `kd` = [`Smnn::kd`] ≤ `2b` with `b = D·O`): assembly
//! O(T·(E·b² + D·O²·K)), factor O(n·kd²), each solve O(n·kd), backward row sums O(T·(E·b + D·O·K));
//! memory O(n·kd). Systems run in parallel under [`Params::par`](crate::Params).

pub(crate) mod assemble;
mod backward;
mod forward;
#[cfg(feature = "cuda")]
pub(crate) use forward::overflowed_pivot;
mod frozen;
mod grads;
mod layer;

pub use forward::{Forward, Workspace};
pub use frozen::{Frozen, FrozenGrads};
pub use layer::{InputShapes, Options, Smnn};

/// The four input arrays of one call, row-major (C order), batch first, borrowed.
///
/// Shapes as described by the layer ([`Smnn::coefficients_shape`] etc.):
/// `coefficients` `(batch, T or 1, E, D, O)`, `rhs_equation` `(batch, T or 1, E)`,
/// `init_vars` `(batch, S, D, I)`, `steps` `(batch, T − 1 or 1)`. The layer checks the lengths,
/// finiteness (unless [`Params::check_finite`](crate::Params::check_finite) is off) and that every step is positive.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a, T> {
    /// `C`, `(batch, T or 1, E, D, O)`.
    pub coefficients: &'a [T],
    /// `r`, `(batch, T or 1, E)`.
    pub rhs_equation: &'a [T],
    /// `v`, `(batch, S, D, I)`.
    pub init_vars: &'a [T],
    /// `h`, `(batch, T − 1 or 1)`, every entry positive.
    pub steps: &'a [T],
}

/// Gradients of a loss ℓ with respect to the four inputs, each with its input's shape and
/// layout (a broadcast step axis of size 1 receives the sum over the steps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grads<T> {
    /// ∂ℓ/∂coefficients, `(batch, T or 1, E, D, O)`.
    pub coefficients: Vec<T>,
    /// ∂ℓ/∂rhs_equation, `(batch, T or 1, E)`.
    pub rhs_equation: Vec<T>,
    /// ∂ℓ/∂init_vars, `(batch, S, D, I)`.
    pub init_vars: Vec<T>,
    /// ∂ℓ/∂steps, `(batch, T − 1 or 1)`.
    pub steps: Vec<T>,
}

/// The left-hand-side inputs of a batch: `coefficients` and `steps`.
#[derive(Clone, Copy)]
struct Lhs<'a, T> {
    coefficients: &'a [T],
    steps: &'a [T],
}

/// What the backward's row sums read: the inputs `c`, `r`, `h`, the forward's `u` and
/// `λ = M⁻¹ ∂ℓ/∂u`, each for the whole batch.
struct GradInputs<'a, T> {
    c: &'a [T],
    r: &'a [T],
    h: &'a [T],
    u: &'a [T],
    lam: &'a [T],
}

/// The four gradient arrays of a batch (see [`Grads`]), zeroed.
struct Outputs<'a, T> {
    gc: &'a mut [T],
    gr: &'a mut [T],
    gv: &'a mut [T],
    gh: &'a mut [T],
}
