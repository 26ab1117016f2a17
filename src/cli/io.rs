//! NumPy `.npy` / `.npz` reading and writing of `float32` / `float64` arrays.
//!
//! Every function returns [`crate::Error`]: file problems are [`Error::Io`] naming the file
//! (and, inside an `.npz`, the array), so the CLI prints one line and exits.
//!
//! # Reading
//! - [`read_npy`] reads one `.npy` into an [`Array`], keeping its dtype (`F32` or `F64`).
//! - [`Npz::open`] opens an `.npz`; [`Npz::get`] / [`Npz::require`] read one named array,
//!   [`Npz::names`] lists them.
//!
//! Accepted: `.npy` format versions 1.0, 2.0 and 3.0; dtypes `<f4`, `>f4`, `<f8`, `>f8`
//! (little or big endian); C order and Fortran order (a Fortran-order array is transposed on
//! reading, so [`Tensor::data`] is always row-major, C order, whatever the file used).
//! Rejected with a clear message: anything else (integers, booleans, complex, `float16`,
//! structured and object arrays), truncated data, trailing bytes, a header that does not parse,
//! and, before the header is parsed, a header longer than 10 000 bytes (NumPy's own limit),
//! brackets nested more than 4 deep, or a shape whose elements overflow `u64`.
//!
//! # Writing
//! [`write_npy`] writes one array, [`write_npz`] several named arrays (an
//! uncompressed archive, as `numpy.savez`). Output is little-endian, C order. The file is
//! assembled in memory and written in one call, so an error never leaves a half-written
//! archive behind because of a failure of ours (the OS may still fail mid-write).
//!
//! Nothing here validates values; [`check_finite`] does, with the index in the array's own
//! shape.

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use crate::error::{fmt_shape, unravel};
use crate::{Error, Real, Result};

/// Element type of an array: NumPy's `float32` or `float64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Dtype {
    /// `float32` (`<f4`).
    F32,
    /// `float64` (`<f8`).
    F64,
}

impl Dtype {
    /// NumPy's type promotion for two float arrays: `f64` if either is `f64`.
    pub fn promote(a: Dtype, b: Dtype) -> Dtype {
        if a == Dtype::F32 && b == Dtype::F32 { Dtype::F32 } else { Dtype::F64 }
    }

    /// Short name: `f32` / `f64` (as the CLI's `--dtype` spells it).
    pub fn short(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }

    /// Bytes per element: 4 / 8.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => std::mem::size_of::<f32>(),
            Dtype::F64 => std::mem::size_of::<f64>(),
        }
    }
}

impl fmt::Display for Dtype {
    /// NumPy's name: `float32` / `float64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        })
    }
}

/// A row-major (C order) n-dimensional array: `data.len()` is the product of `shape`
/// (1 for a 0-dimensional array, `shape == []`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// Dimensions, slowest first.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<T>,
}

impl<T: Elem> Tensor<T> {
    /// Wraps `data` of `shape`. Errors ([`Error::Shape`], argument `arg`) if
    /// `data.len()` is not the product of `shape`.
    pub fn new(arg: &'static str, shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        if num_elements(&shape) != Some(data.len()) {
            return Err(Error::Shape {
                arg,
                expected: format!("{} elements for shape {}", data.len(), fmt_shape(&shape)),
                got: fmt_shape(&shape),
            });
        }
        Ok(Self { shape, data })
    }

    /// Converts to another element type (widening is exact; `f64 → f32` rounds to nearest).
    pub fn cast<U: Elem>(self) -> Tensor<U> {
        let data = self.data.into_iter().map(|v| U::from_f64(v.as_f64())).collect();
        Tensor { shape: self.shape, data }
    }

    /// Wraps into the dynamically typed [`Array`].
    pub fn into_array(self) -> Array {
        T::wrap(self)
    }
}

/// An array read from or written to a file, `float32` or `float64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// A `float32` array.
    F32(Tensor<f32>),
    /// A `float64` array.
    F64(Tensor<f64>),
}

impl Array {
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::F32(t) => &t.shape,
            Array::F64(t) => &t.shape,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Array::F32(_) => Dtype::F32,
            Array::F64(_) => Dtype::F64,
        }
    }

    /// The array in element type `T`, converting if needed (see [`Tensor::cast`]).
    pub fn into_tensor<T: Elem>(self) -> Tensor<T> {
        match self {
            Array::F32(t) => T::from_tensor_f32(t),
            Array::F64(t) => T::from_tensor_f64(t),
        }
    }
}

/// The element types an [`Array`] can hold (`f32`, `f64`): what generic code over the file's
/// dtype needs, on every `--device` ([`DeviceReal`](super::device::DeviceReal)).
pub trait Elem: Real + npyz::Serialize + npyz::AutoSerialize + super::device::DeviceReal {
    /// Wraps a tensor of this type into an [`Array`].
    fn wrap(t: Tensor<Self>) -> Array;
    /// Converts a `float32` tensor (no copy when `Self = f32`).
    fn from_tensor_f32(t: Tensor<f32>) -> Tensor<Self>;
    /// Converts a `float64` tensor (no copy when `Self = f64`).
    fn from_tensor_f64(t: Tensor<f64>) -> Tensor<Self>;
}

impl Elem for f32 {
    fn wrap(t: Tensor<Self>) -> Array {
        Array::F32(t)
    }
    fn from_tensor_f32(t: Tensor<f32>) -> Tensor<Self> {
        t
    }
    fn from_tensor_f64(t: Tensor<f64>) -> Tensor<Self> {
        t.cast()
    }
}

impl Elem for f64 {
    fn wrap(t: Tensor<Self>) -> Array {
        Array::F64(t)
    }
    fn from_tensor_f32(t: Tensor<f32>) -> Tensor<Self> {
        t.cast()
    }
    fn from_tensor_f64(t: Tensor<f64>) -> Tensor<Self> {
        t
    }
}

/// Product of the dimensions, `None` on overflow.
pub fn num_elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Errors with [`Error::NonFinite`] (index in `t`'s own shape) at the first NaN or infinity.
pub fn check_finite<T: Real>(arg: &'static str, t: &Tensor<T>) -> Result<()> {
    match t.data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(Error::NonFinite { arg, index: unravel(k, &t.shape), value: format!("{}", t.data[k]) }),
    }
}

pub(super) fn io_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), reason: reason.into() }
}

// ---------------------------------------------------------------------------------------------
// Panic containment for third-party parsers.

thread_local! {
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Installs the process's panic hook: one line `error: internal error: …` on stderr (never a
/// backtrace), and nothing at all for a panic contained by [`guarded`].
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        if QUIET_PANICS.with(Cell::get) {
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error (a bug in banded, please report it): {}{at}", msg.replace('\n', " "));
    }));
}

/// Runs `f` (a call into a file-format library on untrusted bytes), turning a panic inside it
/// into an [`Error::Io`] on `path` instead of aborting the command.
///
/// npyz and zip are not meant to panic on malformed input, but a dimension product overflowing
/// `u64` in npyz's header parsing does in debug builds; this is the backstop.
pub fn guarded<R>(path: &Path, what: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let previous = QUIET_PANICS.with(|q| q.replace(true));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(previous));
    out.unwrap_or_else(|_| Err(io_err(path, format!("malformed {what} (the parser gave up)"))))
}

pub use super::npy::{Npz, read_npy, write_npy, write_npz};
