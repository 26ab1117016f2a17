//! The element types the crate works in.

use std::fmt::{Debug, Display};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point element type: `f32` or `f64`.
///
/// Sealed: the kernels' accuracy arguments assume IEEE binary32/binary64.
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + std::iter::Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// NumPy's name of the type (`"float32"`, `"float64"`).
    const NAME: &'static str;

    /// Converts from `f64` (rounding to nearest in `f32`).
    fn from_f64(x: f64) -> Self;
    /// Widens to `f64` (exact). (Named `as_f64` so it does not clash with
    /// `num_traits::ToPrimitive::to_f64`, which returns an `Option`.)
    fn as_f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "float32";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "float64";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// Returns the index of the first non-finite entry of `data`, if any.
pub(crate) fn first_non_finite<T: Real>(data: &[T]) -> Option<usize> {
    data.iter().position(|x| !x.is_finite())
}

pub(crate) fn fmt_value<T: Real>(x: T) -> String {
    format!("{x}")
}
