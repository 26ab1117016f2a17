//! The banded Cholesky: `factor`, `factor_solve` and the [`Factor`] object.

use banded::{BandBatch, BatchMatrix, Cholesky, Params};
use numpy::PyUntypedArrayMethods;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{Float, array, by_dtype, dtype_of, slice, view};
use crate::errors::IntoPy;
use crate::pool::{self, Pooled};

/// A factor of either element type.
pub(crate) enum AnyCholesky {
    F32(Cholesky<f32>),
    F64(Cholesky<f64>),
}

/// The element types with a [`Factor`] variant.
pub(crate) trait FactorElement: Float + Pooled {
    fn wrap(c: Cholesky<Self>) -> AnyCholesky;
    fn unwrap(c: &AnyCholesky) -> Option<&Cholesky<Self>>;
}

impl FactorElement for f32 {
    fn wrap(c: Cholesky<Self>) -> AnyCholesky {
        AnyCholesky::F32(c)
    }
    fn unwrap(c: &AnyCholesky) -> Option<&Cholesky<Self>> {
        match c {
            AnyCholesky::F32(c) => Some(c),
            AnyCholesky::F64(_) => None,
        }
    }
}

impl FactorElement for f64 {
    fn wrap(c: Cholesky<Self>) -> AnyCholesky {
        AnyCholesky::F64(c)
    }
    fn unwrap(c: &AnyCholesky) -> Option<&Cholesky<Self>> {
        match c {
            AnyCholesky::F64(c) => Some(c),
            AnyCholesky::F32(_) => None,
        }
    }
}

/// Calls `$body` with `$c` bound to the factor of `$any`, whatever its element type.
macro_rules! with_factor {
    ($any:expr, $c:ident => $body:expr) => {
        match $any {
            AnyCholesky::F32($c) => $body,
            AnyCholesky::F64($c) => $body,
        }
    };
}

/// The Cholesky factors of a batch of SPD band matrices (`banded.BandCholesky` wraps it; the
/// S-MNN forward returns one for its backward). When Python drops it, its storage goes to the
/// pool ([`crate::pool`]) for the next factorization.
#[pyclass(module = "banded._native", frozen)]
pub(crate) struct Factor {
    /// `None` only inside `drop`.
    inner: Option<AnyCholesky>,
}

impl Factor {
    pub(crate) fn new(c: AnyCholesky) -> Self {
        Self { inner: Some(c) }
    }

    fn any(&self) -> PyResult<&AnyCholesky> {
        self.inner.as_ref().ok_or_else(|| PyRuntimeError::new_err("the factor was released"))
    }

    /// The factor as `Cholesky<T>`, or `ValueError` if it holds the other element type.
    pub(crate) fn get<T: FactorElement>(&self, arg: &str) -> PyResult<&Cholesky<T>> {
        T::unwrap(self.any()?).ok_or_else(|| {
            PyValueError::new_err(format!("`{arg}`: expected {}, the dtype of the factor, got {}", self.dtype().unwrap_or("?"), T::NAME))
        })
    }
}

impl Drop for Factor {
    fn drop(&mut self) {
        if let Some(c) = self.inner.take() {
            crate::pool::put(c);
        }
    }
}

/// The crate's defaults (all threads of rayon's pool, automatic kernel), checks as asked.
pub(crate) fn params(check_finite: bool) -> Params {
    Params::default().with_check_finite(check_finite)
}

/// The crate's name for the right-hand sides of a solve, `rhs`, as Python calls them: `b`.
fn rhs_is_b(e: banded::Error) -> banded::Error {
    match e {
        banded::Error::NonFinite { arg: "rhs", .. } => e.for_arg("b"),
        e => e,
    }
}

/// `(batch, kd + 1, n)` of a band array, or `ValueError` for `kd + 1 = 0`.
fn band_dims(shape: &[usize]) -> PyResult<(usize, usize, usize)> {
    let (batch, w, n) = (shape[0], shape[1], shape[2]);
    if w == 0 {
        return Err(PyValueError::new_err("`ab`: expected kd + 1 ≥ 1 rows, got 0"));
    }
    Ok((batch, n, w - 1))
}

/// Factors `ab`, `(batch, kd + 1, n)` in the lower interchange layout.
#[pyfunction]
pub(crate) fn factor(py: Python<'_>, ab: &Bound<'_, PyAny>, check_finite: bool) -> PyResult<Factor> {
    by_dtype!(dtype_of("ab", ab)?, factor_t(py, ab, check_finite))
}

fn factor_t<T: FactorElement>(py: Python<'_>, ab: &Bound<'_, PyAny>, check_finite: bool) -> PyResult<Factor> {
    let ab = view::<T>("ab", ab, 3)?;
    let (batch, n, kd) = band_dims(ab.shape())?;
    let data = slice(&ab);
    let chol = py
        .detach(|| {
            let p = params(check_finite);
            let storage = pool::take::<T>().map(Cholesky::into_storage).unwrap_or_default();
            BandBatch::from_lower_band_in(storage, data, batch, n, kd, p.par()).and_then(|a| Cholesky::factor_in_place(a, &p))
        })
        .py_err(py)?;
    Ok(Factor::new(T::wrap(chol)))
}

/// Solves `A x = b` for `ab` `(batch, kd + 1, n)` and `b` `(batch, n, k)` (factor and solve in
/// one pass); returns `(x (batch, n, k), factor)`.
#[pyfunction]
pub(crate) fn factor_solve<'py>(py: Python<'py>, ab: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<(Bound<'py, PyAny>, Factor)> {
    by_dtype!(dtype_of("ab", ab)?, factor_solve_t(py, ab, b, check_finite))
}

fn factor_solve_t<'py, T: FactorElement>(py: Python<'py>, ab: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<(Bound<'py, PyAny>, Factor)> {
    let (ab, b) = (view::<T>("ab", ab, 3)?, view::<T>("b", b, 3)?);
    let (batch, n, kd) = band_dims(ab.shape())?;
    let shape = b.shape().to_vec();
    let (ab, b) = (slice(&ab), slice(&b));
    let (x, chol) = py
        .detach(|| -> banded::Result<(Vec<T>, Cholesky<T>)> {
            let p = params(check_finite);
            let storage = pool::take::<T>().map(Cholesky::into_storage).unwrap_or_default();
            let a = BandBatch::from_lower_band_in(storage, ab, batch, n, kd, p.par())?;
            let mut x = BatchMatrix::new(b.to_vec(), shape[0], shape[1], shape[2]).map_err(|e| e.for_arg("b"))?;
            let chol = Cholesky::factor_solve(a, &mut x, &p).map_err(rhs_is_b)?;
            Ok((x.into_vec(), chol))
        })
        .py_err(py)?;
    Ok((array(py, x, &shape)?, Factor::new(T::wrap(chol))))
}

/// Solves `A x = b` for `ab` `(batch, kd + 1, n)` and `b` `(batch, n, k)` without keeping the
/// factor ([`Cholesky::solve_lower_band`]: `ab` read once, straight into the kernels' packs and
/// checked in the same pass); returns `x (batch, n, k)`.
#[pyfunction]
pub(crate) fn solve_lower_band<'py>(py: Python<'py>, ab: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
    by_dtype!(dtype_of("ab", ab)?, solve_lower_band_t(py, ab, b, check_finite))
}

fn solve_lower_band_t<'py, T: FactorElement>(py: Python<'py>, ab: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
    let (ab, b) = (view::<T>("ab", ab, 3)?, view::<T>("b", b, 3)?);
    let (batch, n, kd) = band_dims(ab.shape())?;
    let shape = b.shape().to_vec();
    let (ab, b) = (slice(&ab), slice(&b));
    let x = py
        .detach(|| -> banded::Result<Vec<T>> {
            let p = params(check_finite);
            let mut x = BatchMatrix::new(b.to_vec(), shape[0], shape[1], shape[2]).map_err(|e| e.for_arg("b"))?;
            Cholesky::solve_lower_band(ab, batch, n, kd, &mut x, &p).map_err(rhs_is_b)?;
            Ok(x.into_vec())
        })
        .py_err(py)?;
    array(py, x, &shape)
}

#[pymethods]
impl Factor {
    /// Solves `A x = b` for `b` `(batch, n, k)` with this factor.
    fn solve<'py>(&self, py: Python<'py>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
        by_dtype!(dtype_of("b", b)?, solve_t(self, py, b, check_finite))
    }

    /// `log det A_s`, shape `(batch,)`.
    fn logdet<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_factor!(self.any()?, c => {
            let batch = c.batch();
            let v = py.detach(|| c.logdet());
            array(py, v, &[batch])
        })
    }

    /// The backward of `x = A⁻¹ b`: `(grad_b (batch, n, k), grad_ab (batch, kd + 1, n))`,
    /// `grad_ab` in the lower interchange layout.
    fn backward<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, grad_x: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        by_dtype!(dtype_of("x", x)?, backward_t(self, py, x, grad_x, check_finite))
    }

    /// The entries of `A⁻¹` inside the band, lower interchange layout `(batch, kd + 1, n)`.
    fn inverse_band<'py>(&self, py: Python<'py>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
        with_factor!(self.any()?, c => {
            let shape = [c.batch(), c.kd() + 1, c.n()];
            let v = py.detach(|| c.inverse_band(&params(check_finite))?.to_lower_band()).py_err(py)?;
            array(py, v, &shape)
        })
    }

    /// ∂(Σ_s grad_logdet[s]·log det A_s)/∂ab for `grad_logdet` `(batch,)`: `(batch, kd + 1, n)`,
    /// lower interchange layout.
    fn logdet_backward<'py>(&self, py: Python<'py>, grad_logdet: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
        by_dtype!(dtype_of("grad_logdet", grad_logdet)?, logdet_backward_t(self, py, grad_logdet, check_finite))
    }

    /// `L` in the lower interchange layout, `(batch, kd + 1, n)`.
    fn lower_band<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_factor!(self.any()?, c => {
            let shape = [c.batch(), c.kd() + 1, c.n()];
            let v = py.detach(|| c.l().to_lower_band()).py_err(py)?;
            array(py, v, &shape)
        })
    }

    #[getter]
    fn batch(&self) -> PyResult<usize> {
        Ok(with_factor!(self.any()?, c => c.batch()))
    }

    #[getter]
    fn n(&self) -> PyResult<usize> {
        Ok(with_factor!(self.any()?, c => c.n()))
    }

    #[getter]
    fn kd(&self) -> PyResult<usize> {
        Ok(with_factor!(self.any()?, c => c.kd()))
    }

    /// Systems per pack of the factor's storage (`Cholesky::lanes`; 1: one system at a time).
    /// Test-only (`_lanes`, no public API): lets the tests assert that a batch reached packs.
    #[getter(_lanes)]
    fn lanes(&self) -> PyResult<usize> {
        Ok(with_factor!(self.any()?, c => c.lanes()))
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    fn dtype(&self) -> PyResult<&'static str> {
        Ok(match self.any()? {
            AnyCholesky::F32(_) => "float32",
            AnyCholesky::F64(_) => "float64",
        })
    }
}

fn solve_t<'py, T: FactorElement>(f: &Factor, py: Python<'py>, b: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
    let c = f.get::<T>("b")?;
    let b = view::<T>("b", b, 3)?;
    let shape = b.shape().to_vec();
    let b = slice(&b);
    let x = py
        .detach(|| -> banded::Result<Vec<T>> {
            let mut x = BatchMatrix::new(b.to_vec(), shape[0], shape[1], shape[2]).map_err(|e| e.for_arg("b"))?;
            c.solve_in_place(&mut x, &params(check_finite)).map_err(rhs_is_b)?;
            Ok(x.into_vec())
        })
        .py_err(py)?;
    array(py, x, &shape)
}

fn backward_t<'py, T: FactorElement>(
    f: &Factor,
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    grad_x: &Bound<'py, PyAny>,
    check_finite: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let c = f.get::<T>("x")?;
    let (x, gx) = (view::<T>("x", x, 3)?, view::<T>("grad_x", grad_x, 3)?);
    let shape = x.shape().to_vec();
    if gx.shape() != shape.as_slice() {
        return Err(PyValueError::new_err(format!("`grad_x`: expected the shape of `x`, {shape:?}, got {:?}", gx.shape())));
    }
    let (x, gx) = (slice(&x), slice(&gx));
    let (gb, gab) = py
        .detach(|| -> banded::Result<(Vec<T>, Vec<T>)> {
            let x = BatchMatrix::new(x, shape[0], shape[1], shape[2]).map_err(|e| e.for_arg("x"))?;
            let gx = BatchMatrix::new(gx, shape[0], shape[1], shape[2]).map_err(|e| e.for_arg("grad_x"))?;
            let g = c.backward(&x, &gx, &params(check_finite))?;
            Ok((g.rhs.into_vec(), g.ab.to_lower_band()?))
        })
        .py_err(py)?;
    Ok((array(py, gb, &shape)?, array(py, gab, &[c.batch(), c.kd() + 1, c.n()])?))
}

fn logdet_backward_t<'py, T: FactorElement>(f: &Factor, py: Python<'py>, grad_logdet: &Bound<'py, PyAny>, check_finite: bool) -> PyResult<Bound<'py, PyAny>> {
    let c = f.get::<T>("grad_logdet")?;
    let g = view::<T>("grad_logdet", grad_logdet, 1)?;
    let g = slice(&g);
    let v = py.detach(|| c.logdet_backward(g, &params(check_finite))?.to_lower_band()).py_err(py)?;
    array(py, v, &[c.batch(), c.kd() + 1, c.n()])
}
