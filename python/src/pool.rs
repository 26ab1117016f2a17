//! The storage of the last factor released, one per element type, for the next factorization.
//!
//! A training loop or a loop of solves calls the binding with batches of one size again and
//! again; each call needs a factor's worth of storage (`batch·n·(kd+1)` elements), and fresh
//! storage costs page faults and the kernel's zeroing of every page (about a third of a kd-17
//! solve of 256 systems of order 1000 from NumPy). When Python drops a [`Factor`](crate::llt::Factor),
//! its storage comes here; the next `factor`, `factor_solve` or `smnn_forward` of that element
//! type takes it (reused if large enough, else replaced). `empty_cache` frees it.

use std::sync::Mutex;

use banded::Cholesky;
use pyo3::prelude::*;

use crate::llt::AnyCholesky;

static POOL_F32: Mutex<Option<Cholesky<f32>>> = Mutex::new(None);
static POOL_F64: Mutex<Option<Cholesky<f64>>> = Mutex::new(None);

/// The element types with a pool.
pub(crate) trait Pooled: Sized + 'static {
    fn pool() -> &'static Mutex<Option<Cholesky<Self>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static Mutex<Option<Cholesky<Self>>> {
        &POOL_F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static Mutex<Option<Cholesky<Self>>> {
        &POOL_F64
    }
}

/// The pooled factor of element type `T`, if any. (A poisoned lock only means a panic
/// elsewhere while it was held: the pool is then bypassed.)
pub(crate) fn take<T: Pooled>() -> Option<Cholesky<T>> {
    T::pool().lock().ok().and_then(|mut p| p.take())
}

/// Keeps a released factor for the next factorization (if none is kept yet).
pub(crate) fn put(c: AnyCholesky) {
    fn put_t<T: Pooled>(c: Cholesky<T>) {
        if let Ok(mut p) = T::pool().lock()
            && p.is_none()
        {
            *p = Some(c);
        }
    }
    match c {
        AnyCholesky::F32(c) => put_t(c),
        AnyCholesky::F64(c) => put_t(c),
    }
}

/// Elements of storage the pool holds, per element type: `(float32, float64)`, 0 where it holds
/// none (a pooled factor's `batch·n·(kd+1)`). Test-only (`banded._native._pool_sizes`, no
/// public API): lets the tests observe that a released factor is kept, that the next
/// factorization takes it and that [`empty_cache`] frees it.
#[pyfunction]
#[pyo3(name = "_pool_sizes")]
pub(crate) fn pool_sizes() -> (usize, usize) {
    fn size<T: Pooled + banded::Real>() -> usize {
        T::pool().lock().ok().and_then(|p| p.as_ref().map(|c| c.batch() * c.n() * (c.kd() + 1))).unwrap_or(0)
    }
    (size::<f32>(), size::<f64>())
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
