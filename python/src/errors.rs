//! [`banded::Error`] → the Python exception built by `banded._errors.from_native`.

use banded::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The Python exception for `e`: `from_native(kind, message, details)` of `banded._errors`
/// (kinds `shape`, `non_finite`, `not_positive_definite`, `invalid_argument`, `overflow`,
/// `cuda`, `io`, `other`; `details` holds the variant's fields). If that module cannot be
/// imported, the import error is raised instead.
pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    build(py, &e).unwrap_or_else(|import_error| import_error)
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let details = PyDict::new(py);
    let kind = match e {
        Error::Shape { arg, expected, got } => {
            details.set_item("arg", arg)?;
            details.set_item("expected", expected)?;
            details.set_item("got", got)?;
            "shape"
        }
        Error::NonFinite { arg, index, value } => {
            details.set_item("arg", arg)?;
            details.set_item("index", index.clone())?;
            details.set_item("value", value)?;
            "non_finite"
        }
        Error::NotPositiveDefinite { system, column, failures } => {
            details.set_item("system", system)?;
            details.set_item("column", column)?;
            let failures: Vec<(usize, usize)> = failures.iter().map(|f| (f.system, f.column)).collect();
            details.set_item("failures", failures)?;
            "not_positive_definite"
        }
        Error::InvalidArgument { arg, .. } => {
            details.set_item("arg", arg)?;
            "invalid_argument"
        }
        Error::Overflow { arg, index, value } => {
            details.set_item("arg", arg)?;
            details.set_item("index", index.clone())?;
            details.set_item("value", value)?;
            "overflow"
        }
        Error::Cuda { .. } => "cuda",
        Error::Io { .. } => "io",
        _ => "other",
    };
    let module = py.import("banded._errors")?;
    let exc = module.getattr("from_native")?.call1((kind, e.to_string(), details))?;
    Ok(PyErr::from_value(exc))
}

/// `Result<T, banded::Error>` → `PyResult<T>`.
pub(crate) trait IntoPy<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for banded::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
