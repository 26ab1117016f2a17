//! The S-MNN layer: `smnn_forward` and `smnn_backward` (the frozen operator of
//! `banded.torch` is the forward's [`Factor`]).
//!
//! Inputs are the crate's shapes, batch first (`python/banded/torch.py` broadcasts and flattens
//! the paper's leading axes): `coefficients (batch, T or 1, E, D, O)`, `rhs_equation (batch,
//! T or 1, E)`, `init_vars (batch, S, D, I)`, `steps (batch, T − 1 or 1)`; `u (batch, T, D, O)`.

use std::sync::Mutex;

use banded::smnn::{Inputs, InputShapes, Options, Smnn, Workspace};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::{array, by_dtype, dtype_of, slice, view};
use crate::errors::IntoPy;
use crate::llt::{AnyCholesky, Factor, FactorElement};

/// The layer's options as Python passes them: `(n_steps, weight_equation, weight_init_var,
/// weight_smooth, central)`.
type Opts = (Option<usize>, f64, f64, f64, bool);

fn options((n_steps, weight_equation, weight_init_var, weight_smooth, central): Opts) -> Options {
    Options { n_steps, weight_equation, weight_init_var, weight_smooth, central }
}

fn params(check_finite: bool) -> banded::Params {
    banded::Params::default().with_check_finite(check_finite)
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

fn forward_t<'py, T: Pooled>(
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
    let workspace = take_workspace::<T>();
    let (u, factor) = py.detach(|| layer.forward_with(inputs, &params(check_finite), workspace).map(|f| f.into_parts())).py_err(py)?;
    Ok((array(py, u, &layer.u_shape())?, Factor::recycled(T::wrap(factor))))
}

/// The storage of the last S-MNN factor dropped, per element type: the next forward assembles
/// and factors in it (a training step then maps and zeroes no fresh pages for the factor, about
/// `8·batch·n·(kd+1)` bytes). At most one per element type is kept; [`empty_cache`] frees them.
static POOL_F32: Mutex<Option<Workspace<f32>>> = Mutex::new(None);
static POOL_F64: Mutex<Option<Workspace<f64>>> = Mutex::new(None);

/// The element types with a pool.
pub(crate) trait Pooled: FactorElement {
    fn pool() -> &'static Mutex<Option<Workspace<Self>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static Mutex<Option<Workspace<Self>>> {
        &POOL_F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static Mutex<Option<Workspace<Self>>> {
        &POOL_F64
    }
}

/// The pooled workspace, or an empty one. (A poisoned lock only means a panic elsewhere while
/// it was held: the pool is then bypassed.)
fn take_workspace<T: Pooled>() -> Workspace<T> {
    T::pool().lock().ok().and_then(|mut p| p.take()).unwrap_or_default()
}

/// Keeps the storage of a dropped S-MNN factor for the next forward (if the pool is empty).
pub(crate) fn recycle(c: AnyCholesky) {
    fn put<T: Pooled>(c: banded::Cholesky<T>) {
        if let Ok(mut p) = T::pool().lock()
            && p.is_none()
        {
            *p = Some(Workspace::from_factor(c));
        }
    }
    match c {
        AnyCholesky::F32(c) => put(c),
        AnyCholesky::F64(c) => put(c),
    }
}

/// Frees the pooled storage of both element types.
#[pyfunction]
pub(crate) fn empty_cache() {
    if let Ok(mut p) = POOL_F32.lock() {
        *p = None;
    }
    if let Ok(mut p) = POOL_F64.lock() {
        *p = None;
    }
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
