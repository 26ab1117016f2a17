use crate::error::{fmt_shape, Error, Result};
use crate::alloc::zeroed_vec;
use crate::scalar::{first_non_finite, fmt_value, Real};

/// A batch of dense `rows × cols` matrices, row-major, systems consecutive: element `(s, i, r)`
/// is at `data[(s·rows + i)·cols + r]`. This is the `(batch, n, nrhs)` layout of right-hand
/// sides and solutions.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMatrix<T> {
    batch: usize,
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> BatchMatrix<T> {
    /// Wraps a row-major `(batch, rows, cols)` array.
    ///
    /// Errors: [`Error::Shape`] (argument name `arg`) if `data.len() != batch·rows·cols` or a
    /// dimension is zero.
    pub fn new(arg: &'static str, data: Vec<T>, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let expected = batch.checked_mul(rows).and_then(|x| x.checked_mul(cols));
        if batch == 0 || rows == 0 || cols == 0 || expected != Some(data.len()) {
            return Err(Error::shape(
                arg,
                format!("{} with every dimension ≥ 1", fmt_shape(&[batch, rows, cols])),
                format!("{} elements", data.len()),
            ));
        }
        Ok(Self { batch, rows, cols, data })
    }

    /// A batch of zero matrices (no dimension may be zero).
    pub fn zeros(batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let len = batch.checked_mul(rows).and_then(|x| x.checked_mul(cols)).ok_or_else(|| Error::InvalidArgument {
            arg: "shape",
            reason: format!("{} overflows usize", fmt_shape(&[batch, rows, cols])),
        })?;
        Self::new("shape", zeroed_vec("shape", len)?, batch, rows, cols)
    }

    /// Number of matrices.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Rows of each matrix (`n`).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns of each matrix (`nrhs`).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `(batch, rows, cols)`.
    pub fn shape(&self) -> [usize; 3] {
        [self.batch, self.rows, self.cols]
    }
    /// The row-major data.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
    /// The row-major data, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }
    /// Consumes `self`, returning the row-major data.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
    /// Element `(s, i, r)`, or `None` if out of range.
    pub fn get(&self, s: usize, i: usize, r: usize) -> Option<T> {
        (s < self.batch && i < self.rows && r < self.cols).then(|| self.data[(s * self.rows + i) * self.cols + r])
    }
    /// One matrix (`rows·cols` elements, row-major), or `None` if `s ≥ batch`.
    pub fn matrix(&self, s: usize) -> Option<&[T]> {
        let len = self.rows * self.cols;
        self.data.get(s * len..(s + 1) * len)
    }

    /// Errors with [`Error::NonFinite`] at the first NaN or infinity, index `(s, i, r)`.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        match first_non_finite(&self.data) {
            None => Ok(()),
            Some(k) => {
                let (s, i, r) = (k / (self.rows * self.cols), (k / self.cols) % self.rows, k % self.cols);
                Err(Error::NonFinite { arg, index: vec![s, i, r], value: fmt_value(self.data[k]) })
            }
        }
    }

    /// Errors with [`Error::Shape`] unless `self` is `(batch, rows, _)`.
    pub(crate) fn expect_systems(&self, arg: &'static str, batch: usize, rows: usize) -> Result<()> {
        if self.batch != batch || self.rows != rows {
            return Err(Error::shape(arg, format!("({batch}, {rows}, nrhs)"), fmt_shape(&self.shape())));
        }
        Ok(())
    }

    /// Errors with [`Error::Shape`] unless `self` has exactly `shape`.
    pub(crate) fn expect_shape(&self, arg: &'static str, shape: [usize; 3]) -> Result<()> {
        if self.shape() != shape {
            return Err(Error::shape(arg, fmt_shape(&shape), fmt_shape(&self.shape())));
        }
        Ok(())
    }
}
