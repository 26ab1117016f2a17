//! The S-MNN layer: `smnn_forward` and `smnn_backward` (the frozen operator of
//! `banded.torch` is the forward's [`Factor`]).
//!
//! Inputs are the crate's shapes, batch first (`python/banded/torch.py` broadcasts and flattens
//! the paper's leading axes): `coefficients (batch, T or 1, E, D, O)`, `rhs_equation (batch,
//! T or 1, E)`, `init_vars (batch, S, D, I)`, `steps (batch, T − 1 or 1)`; `u (batch, T, D, O)`.

use banded::smnn::{Inputs, InputShapes, Options, Smnn, Workspace};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::{array, by_dtype, dtype_of, slice, view};
use crate::errors::IntoPy;
use crate::llt::{Factor, FactorElement, params};
use crate::pool;

/// The layer's options as Python passes them: `(n_steps, weight_equation, weight_init_var,
/// weight_smooth, central)`.
type Opts = (Option<usize>, f64, f64, f64, bool);

fn options((n_steps, weight_equation, weight_init_var, weight_smooth, central): Opts) -> Options {
    Options { n_steps, weight_equation, weight_init_var, weight_smooth, central }
}

/// The four input arrays of one call, viewed.
struct Views<'py, T: FactorElement> {
    c: PyReadonlyArrayDyn<'py, T>,
    r: PyReadonlyArrayDyn<'py, T>,
    v: PyReadonlyArrayDyn<'py, T>,
    h: PyReadonlyArrayDyn<'py, T>,
}

impl<'py, T: FactorElement> Views<'py, T> {
    fn new(c: &Bound<'py, PyAny>, r: &Bound<'py, PyAny>, v: &Bound<'py, PyAny>, h: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(Self {
            c: view("coefficients", c, 5)?,
            r: view("rhs_equation", r, 3)?,
            v: view("init_vars", v, 4)?,
            h: view("steps", h, 2)?,
        })
    }

    fn layer(&self, py: Python<'_>, opts: Opts) -> PyResult<Smnn> {
        let shapes = InputShapes { coefficients: self.c.shape(), rhs_equation: self.r.shape(), init_vars: self.v.shape(), steps: self.h.shape() };
        Smnn::new(options(opts), shapes).py_err(py)
    }

    fn inputs(&self) -> Inputs<'_, T> {
        Inputs { coefficients: slice(&self.c), rhs_equation: slice(&self.r), init_vars: slice(&self.v), steps: slice(&self.h) }
    }
}

/// The forward: `(u (batch, T, D, O), factor)`; the factor is for [`smnn_backward`].
#[pyfunction]
pub(crate) fn smnn_forward<'py>(
    py: Python<'py>,
    coefficients: &Bound<'py, PyAny>,
    rhs_equation: &Bound<'py, PyAny>,
    init_vars: &Bound<'py, PyAny>,
    steps: &Bound<'py, PyAny>,
    opts: Opts,
    check_finite: bool,
) -> PyResult<(Bound<'py, PyAny>, Factor)> {
    by_dtype!(dtype_of("coefficients", coefficients)?, forward_t(py, coefficients, rhs_equation, init_vars, steps, opts, check_finite))
}

fn forward_t<'py, T: FactorElement>(
    py: Python<'py>,
    c: &Bound<'py, PyAny>,
    r: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    h: &Bound<'py, PyAny>,
    opts: Opts,
    check_finite: bool,
) -> PyResult<(Bound<'py, PyAny>, Factor)> {
    let views = Views::<T>::new(c, r, v, h)?;
    let layer = views.layer(py, opts)?;
    let inputs = views.inputs();
    let workspace = pool::take::<T>().map(Workspace::from_factor).unwrap_or_default();
    let (u, factor) = py.detach(|| layer.forward_with(inputs, &params(check_finite), workspace).map(|f| f.into_parts())).py_err(py)?;
    Ok((array(py, u, &layer.u_shape())?, Factor::new(T::wrap(factor))))
}

/// The four input gradients for the cotangent `grad_u`, from the forward's inputs, output `u`
/// and `factor` (recomputed from `coefficients` and `steps` if `None`).
#[pyfunction]
#[pyo3(signature = (coefficients, rhs_equation, init_vars, steps, u, factor, grad_u, opts, check_finite))]
#[expect(clippy::too_many_arguments, reason = "the layer's inputs and options, as Python passes them")]
pub(crate) fn smnn_backward<'py>(
    py: Python<'py>,
    coefficients: &Bound<'py, PyAny>,
    rhs_equation: &Bound<'py, PyAny>,
    init_vars: &Bound<'py, PyAny>,
    steps: &Bound<'py, PyAny>,
    u: &Bound<'py, PyAny>,
    factor: Option<PyRef<'py, Factor>>,
    grad_u: &Bound<'py, PyAny>,
    opts: Opts,
    check_finite: bool,
) -> PyResult<[Bound<'py, PyAny>; 4]> {
    let job = Backward { c: coefficients, r: rhs_equation, v: init_vars, h: steps, u, grad_u, opts, check_finite };
    by_dtype!(dtype_of("coefficients", coefficients)?, backward_t(py, job, factor.as_deref()))
}

/// The arguments of [`smnn_backward`] but the factor.
struct Backward<'a, 'py> {
    c: &'a Bound<'py, PyAny>,
    r: &'a Bound<'py, PyAny>,
    v: &'a Bound<'py, PyAny>,
    h: &'a Bound<'py, PyAny>,
    u: &'a Bound<'py, PyAny>,
    grad_u: &'a Bound<'py, PyAny>,
    opts: Opts,
    check_finite: bool,
}

fn backward_t<'py, T: FactorElement>(py: Python<'py>, job: Backward<'_, 'py>, factor: Option<&Factor>) -> PyResult<[Bound<'py, PyAny>; 4]> {
    let views = Views::<T>::new(job.c, job.r, job.v, job.h)?;
    let layer = views.layer(py, job.opts)?;
    let (u, gu) = (view::<T>("u", job.u, 4)?, view::<T>("grad_u", job.grad_u, 4)?);
    let factor = factor.map(|f| f.get::<T>("coefficients")).transpose()?;
    let (inputs, u, gu, p) = (views.inputs(), slice(&u), slice(&gu), params(job.check_finite));
    let g = py
        .detach(|| match factor {
            Some(f) => layer.backward(inputs, u, f, gu, &p),
            None => {
                let frozen = layer.freeze(inputs.coefficients, inputs.steps, &p)?;
                layer.backward(inputs, u, frozen.factor(), gu, &p)
            }
        })
        .py_err(py)?;
    Ok([
        array(py, g.coefficients, &layer.coefficients_shape())?,
        array(py, g.rhs_equation, &layer.rhs_equation_shape())?,
        array(py, g.init_vars, &layer.init_vars_shape())?,
        array(py, g.steps, &layer.steps_shape())?,
    ])
}
