//! The S-MNN layer: `smnn_forward`, `smnn_backward`, `smnn_freeze` and the [`Frozen`] object.
//!
//! Inputs are the crate's shapes, batch first (`python/banded/torch.py` broadcasts and flattens
//! the paper's leading axes): `coefficients (batch, T or 1, E, D, O)`, `rhs_equation (batch,
//! T or 1, E)`, `init_vars (batch, S, D, I)`, `steps (batch, T − 1 or 1)`; `u (batch, T, D, O)`.

use banded::smnn::{Inputs, InputShapes, Options, Smnn};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert::{array, by_dtype, dtype_of, slice, view};
use crate::errors::IntoPy;
use crate::llt::{Factor, FactorElement};

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
    let (u, factor) = py.detach(|| layer.forward(inputs, &params(check_finite)).map(|f| f.into_parts())).py_err(py)?;
    Ok((array(py, u, &layer.u_shape())?, Factor { inner: T::wrap(factor) }))
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

/// A frozen left-hand side of either element type.
enum AnyFrozen {
    F32(banded::smnn::Frozen<f32>),
    F64(banded::smnn::Frozen<f64>),
}

/// The element types with an [`AnyFrozen`] variant.
trait FrozenElement: FactorElement {
    fn wrap_frozen(f: banded::smnn::Frozen<Self>) -> AnyFrozen;
    fn unwrap_frozen(f: &AnyFrozen) -> Option<&banded::smnn::Frozen<Self>>;
}

impl FrozenElement for f32 {
    fn wrap_frozen(f: banded::smnn::Frozen<Self>) -> AnyFrozen {
        AnyFrozen::F32(f)
    }
    fn unwrap_frozen(f: &AnyFrozen) -> Option<&banded::smnn::Frozen<Self>> {
        match f {
            AnyFrozen::F32(f) => Some(f),
            AnyFrozen::F64(_) => None,
        }
    }
}

impl FrozenElement for f64 {
    fn wrap_frozen(f: banded::smnn::Frozen<Self>) -> AnyFrozen {
        AnyFrozen::F64(f)
    }
    fn unwrap_frozen(f: &AnyFrozen) -> Option<&banded::smnn::Frozen<Self>> {
        match f {
            AnyFrozen::F64(f) => Some(f),
            AnyFrozen::F32(_) => None,
        }
    }
}

/// A factored S-MNN operator (`coefficients` and `steps` fixed) for new `rhs_equation` and
/// `init_vars` of the shapes given to [`smnn_freeze`].
#[pyclass(module = "banded._native", frozen)]
pub(crate) struct Frozen {
    inner: AnyFrozen,
}

/// Freezes the left-hand side of the layer for right-hand sides of shapes `rhs_shape` and
/// `init_shape`.
#[pyfunction]
pub(crate) fn smnn_freeze(
    py: Python<'_>,
    coefficients: &Bound<'_, PyAny>,
    steps: &Bound<'_, PyAny>,
    rhs_shape: Vec<usize>,
    init_shape: Vec<usize>,
    opts: Opts,
    check_finite: bool,
) -> PyResult<Frozen> {
    by_dtype!(dtype_of("coefficients", coefficients)?, freeze_t(py, coefficients, steps, &rhs_shape, &init_shape, opts, check_finite))
}

fn freeze_t<T: FrozenElement>(
    py: Python<'_>,
    c: &Bound<'_, PyAny>,
    h: &Bound<'_, PyAny>,
    rhs_shape: &[usize],
    init_shape: &[usize],
    opts: Opts,
    check_finite: bool,
) -> PyResult<Frozen> {
    let (c, h) = (view::<T>("coefficients", c, 5)?, view::<T>("steps", h, 2)?);
    let shapes = InputShapes { coefficients: c.shape(), rhs_equation: rhs_shape, init_vars: init_shape, steps: h.shape() };
    let layer = Smnn::new(options(opts), shapes).py_err(py)?;
    let (c, h) = (slice(&c), slice(&h));
    let frozen = py.detach(|| layer.freeze(c, h, &params(check_finite))).py_err(py)?;
    Ok(Frozen { inner: T::wrap_frozen(frozen) })
}

impl Frozen {
    fn get<T: FrozenElement>(&self, arg: &str) -> PyResult<&banded::smnn::Frozen<T>> {
        T::unwrap_frozen(&self.inner)
            .ok_or_else(|| PyValueError::new_err(format!("`{arg}`: expected {}, the dtype of the frozen operator, got {}", self.dtype(), T::NAME)))
    }
}

#[pymethods]
impl Frozen {
    /// `u` for new right-hand sides (one solve).
    fn forward<'py>(&self, py: Python<'py>, rhs_equation: &Bound<'py, PyAny>, init_vars: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
        by_dtype!(dtype_of("rhs_equation", rhs_equation)?, frozen_forward_t(self, py, rhs_equation, init_vars, check_finite))
    }

    /// `(grad_rhs_equation, grad_init_vars)` for the cotangent `grad_u` (one solve).
    fn backward<'py>(&self, py: Python<'py>, grad_u: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        by_dtype!(dtype_of("grad_u", grad_u)?, frozen_backward_t(self, py, grad_u, check_finite))
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.inner {
            AnyFrozen::F32(_) => "float32",
            AnyFrozen::F64(_) => "float64",
        }
    }

    /// The shapes `(coefficients, rhs_equation, init_vars, steps)` the operator was frozen for.
    #[getter]
    fn shapes(&self) -> [Vec<usize>; 4] {
        let l = match &self.inner {
            AnyFrozen::F32(f) => *f.layer(),
            AnyFrozen::F64(f) => *f.layer(),
        };
        [l.coefficients_shape().to_vec(), l.rhs_equation_shape().to_vec(), l.init_vars_shape().to_vec(), l.steps_shape().to_vec()]
    }
}

fn frozen_forward_t<'py, T: FrozenElement>(f: &Frozen, py: Python<'py>, r: &Bound<'py, PyAny>, v: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
    let f = f.get::<T>("rhs_equation")?;
    let (r, v) = (view::<T>("rhs_equation", r, 3)?, view::<T>("init_vars", v, 4)?);
    let (r, v) = (slice(&r), slice(&v));
    let u = py.detach(|| f.forward(r, v, &params(check_finite))).py_err(py)?;
    array(py, u, &f.layer().u_shape())
}

fn frozen_backward_t<'py, T: FrozenElement>(f: &Frozen, py: Python<'py>, gu: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let f = f.get::<T>("grad_u")?;
    let gu = view::<T>("grad_u", gu, 4)?;
    let gu = slice(&gu);
    let g = py.detach(|| f.backward(gu, &params(check_finite))).py_err(py)?;
    let l = f.layer();
    Ok((array(py, g.rhs_equation, &l.rhs_equation_shape())?, array(py, g.init_vars, &l.init_vars_shape())?))
}
