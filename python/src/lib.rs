//! `banded._native`: the Rust side of the Python package (see `python/README.md`).
//!
//! The Python modules (`python/banded/`) normalise shapes and dtypes and call these functions
//! with C-contiguous float32 or float64 arrays of fixed rank: band batches `(batch, kd + 1, n)`
//! in the lower interchange layout, right-hand sides `(batch, n, k)`, the S-MNN inputs
//! `(batch, …)`. Every array of one call has the same dtype; it is read in place (no copy), the
//! GIL is released while the crate computes, and results are NumPy arrays that own the crate's
//! vectors (no copy either). A crate [`banded::Error`] becomes the Python exception that
//! `banded._errors.from_native` builds (`NotPositiveDefiniteError`, `ValueError`).

mod convert;
mod errors;
mod llt;
mod pool;
mod smnn;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<llt::Factor>()?;
    m.add_function(wrap_pyfunction!(llt::factor, m)?)?;
    m.add_function(wrap_pyfunction!(llt::factor_solve, m)?)?;
    m.add_function(wrap_pyfunction!(llt::solve_lower_band, m)?)?;
    m.add_function(wrap_pyfunction!(smnn::smnn_forward, m)?)?;
    m.add_function(wrap_pyfunction!(smnn::smnn_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pool::empty_cache, m)?)?;
    m.add_function(wrap_pyfunction!(pool::pool_sizes, m)?)?;
    Ok(())
}
