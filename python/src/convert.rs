//! NumPy arrays in and out: the dtype of a call, C-contiguous views, results that own the
//! crate's vectors.

use banded::Real;
use numpy::{Element, IntoPyArray, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The two element types of the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    F64,
}

/// The dtype of the NumPy array `a` (argument `arg`): float32 or float64, else `ValueError`.
pub(crate) fn dtype_of(arg: &str, a: &Bound<'_, PyAny>) -> PyResult<Dtype> {
    let py = a.py();
    let a = a
        .cast::<PyUntypedArray>()
        .map_err(|_| PyValueError::new_err(format!("`{arg}`: expected a NumPy array, got {}", type_name(a))))?;
    let dt = a.dtype();
    if dt.is_equiv_to(&numpy::dtype::<f64>(py)) {
        Ok(Dtype::F64)
    } else if dt.is_equiv_to(&numpy::dtype::<f32>(py)) {
        Ok(Dtype::F32)
    } else {
        Err(PyValueError::new_err(format!("`{arg}`: expected dtype float32 or float64, got {dt}")))
    }
}

fn type_name(a: &Bound<'_, PyAny>) -> String {
    a.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Calls `$f::<f64>(args)` or `$f::<f32>(args)` by `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            $crate::convert::Dtype::F64 => $f::<f64>($($arg),*),
            $crate::convert::Dtype::F32 => $f::<f32>($($arg),*),
        }
    };
}
pub(crate) use by_dtype;

/// The element types the bindings instantiate.
pub(crate) trait Float: Real + Element {}
impl Float for f32 {}
impl Float for f64 {}

/// A read-only view of the array `a` (argument `arg`), which must be C-contiguous with
/// element type `T` and `ndim` axes.
pub(crate) fn view<'py, T: Float>(arg: &str, a: &Bound<'py, PyAny>, ndim: usize) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let v: PyReadonlyArrayDyn<'py, T> = a.extract().map_err(|_| {
        PyValueError::new_err(format!("`{arg}`: expected a {} array, got {}", T::NAME, describe(a)))
    })?;
    if v.ndim() != ndim {
        return Err(PyValueError::new_err(format!("`{arg}`: expected {ndim} axes, got shape {:?}", v.shape())));
    }
    if !v.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("`{arg}`: expected a C-contiguous array")));
    }
    Ok(v)
}

fn describe(a: &Bound<'_, PyAny>) -> String {
    match a.cast::<PyUntypedArray>() {
        Ok(u) => format!("dtype {}", u.dtype()),
        Err(_) => type_name(a),
    }
}

/// The elements of a C-contiguous view (checked by [`view`]).
pub(crate) fn slice<'a, T: Float>(v: &'a PyReadonlyArrayDyn<'_, T>) -> &'a [T] {
    // `view` checked contiguity; a contiguous array always has a slice.
    v.as_slice().unwrap_or(&[])
}

/// A NumPy array of `shape` owning `data` (no copy).
pub(crate) fn array<'py, T: Float>(py: Python<'py>, data: Vec<T>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(data.into_pyarray(py).reshape(shape.to_vec())?.into_any())
}
