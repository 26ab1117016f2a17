use std::marker::PhantomData;

use crate::alloc::zeroed_vec;
use crate::error::{Error, Result, fmt_shape};
use crate::par::Par;
use crate::scalar::{Real, first_non_finite_par, fmt_value};

/// A batch of dense `rows × cols` matrices, row-major, systems consecutive: element `(s, i, r)`
/// is at `data[(s·rows + i)·cols + r]`. This is the `(batch, n, nrhs)` layout of right-hand
/// sides and solutions.
///
/// The storage `S` is owned (`Vec<T>`, the default) or borrowed: a [`BatchRef`] over a
/// caller's `&[T]` or a [`BatchMut`] over a `&mut [T]` (like faer's `MatRef`/`MatMut`), so a
/// caller whose data already has this layout never copies to call
/// ([`Cholesky::solve_in_place`](crate::Cholesky::solve_in_place) solves in the caller's
/// memory):
///
/// ```
/// use banded::{BandBatch, BatchMatrix, Cholesky, Params};
/// let a = BandBatch::from_lower_band(&[4.0, 4.0], 1, 2, 0)?; // batch 1, n 2, kd 0: A = 4·I
/// let chol = Cholesky::factor(&a, &Params::default())?;
/// let mut mine = [4.0, 8.0];
/// chol.solve_in_place(&mut BatchMatrix::new(&mut mine[..], 1, 2, 1)?, &Params::default())?;
/// assert_eq!(mine, [1.0, 2.0]); // solved in the caller's array
/// # Ok::<(), banded::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMatrix<T, S = Vec<T>> {
    batch: usize,
    rows: usize,
    cols: usize,
    data: S,
    elem: PhantomData<T>,
}

/// A [`BatchMatrix`] borrowing its data.
pub type BatchRef<'a, T> = BatchMatrix<T, &'a [T]>;
/// A [`BatchMatrix`] borrowing its data mutably.
pub type BatchMut<'a, T> = BatchMatrix<T, &'a mut [T]>;

impl<T: Real, S: AsRef<[T]>> BatchMatrix<T, S> {
    /// Wraps a row-major `(batch, rows, cols)` array (a `Vec<T>`, or a borrowed `&[T]` /
    /// `&mut [T]`: no copy).
    ///
    /// Errors: [`Error::Shape`] (argument `data`) if `data.len() != batch·rows·cols` or a
    /// dimension is zero.
    pub fn new(data: S, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        Self::named("data", data, batch, rows, cols)
    }

    /// [`new`](Self::new), the error naming the caller's argument `arg`.
    pub(crate) fn named(arg: &'static str, data: S, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let expected = batch.checked_mul(rows).and_then(|x| x.checked_mul(cols));
        let len = data.as_ref().len();
        if batch == 0 || rows == 0 || cols == 0 || expected != Some(len) {
            return Err(Error::shape(
                arg,
                format!("{} with every dimension ≥ 1", fmt_shape(&[batch, rows, cols])),
                format!("{len} elements"),
            ));
        }
        Ok(Self { batch, rows, cols, data, elem: PhantomData })
    }

    /// A borrowed view of the same data.
    pub fn view(&self) -> BatchRef<'_, T> {
        BatchMatrix { batch: self.batch, rows: self.rows, cols: self.cols, data: self.data.as_ref(), elem: PhantomData }
    }

    /// An owned copy (errors only if it cannot be allocated).
    pub fn to_owned(&self) -> Result<BatchMatrix<T>> {
        let data = crate::alloc::copy_vec("data", self.data.as_ref())?;
        Ok(BatchMatrix { batch: self.batch, rows: self.rows, cols: self.cols, data, elem: PhantomData })
    }

}

impl<T: Real> BatchMatrix<T> {
    /// A batch of zero matrices (no dimension may be zero).
    pub fn zeros(batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let len = batch.checked_mul(rows).and_then(|x| x.checked_mul(cols)).ok_or_else(|| Error::InvalidArgument {
            arg: "shape",
            reason: format!("{} overflows usize", fmt_shape(&[batch, rows, cols])),
        })?;
        Self::named("shape", zeroed_vec("shape", len)?, batch, rows, cols)
    }

    /// Consumes `self`, returning the row-major data.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// Wraps row-major data; the caller guarantees `data.len() == batch·rows·cols`, all ≥ 1.
    pub(crate) fn from_parts(data: Vec<T>, batch: usize, rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), batch * rows * cols);
        Self { batch, rows, cols, data, elem: PhantomData }
    }
}

impl<T: Real, S: AsRef<[T]> + AsMut<[T]>> BatchMatrix<T, S> {
    /// The row-major data, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data.as_mut()
    }

    /// A mutably borrowed view of the same data.
    pub fn view_mut(&mut self) -> BatchMut<'_, T> {
        BatchMatrix { batch: self.batch, rows: self.rows, cols: self.cols, data: self.data.as_mut(), elem: PhantomData }
    }
}

impl<'a, T: Real> BatchMut<'a, T> {
    /// The borrowed data, for as long as the borrow lasts.
    pub(crate) fn into_mut_slice(self) -> &'a mut [T] {
        self.data
    }
}

impl<T: Real, S: AsRef<[T]>> BatchMatrix<T, S> {
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
        self.data.as_ref()
    }
    /// Element `(s, i, r)`, or `None` if out of range.
    pub fn get(&self, s: usize, i: usize, r: usize) -> Option<T> {
        (s < self.batch && i < self.rows && r < self.cols).then(|| self.as_slice()[(s * self.rows + i) * self.cols + r])
    }
    /// One matrix (`rows·cols` elements, row-major), or `None` if `s ≥ batch`.
    pub fn matrix(&self, s: usize) -> Option<&[T]> {
        let len = self.rows * self.cols;
        self.as_slice().get(s.checked_mul(len)?..s.checked_add(1)?.checked_mul(len)?)
    }

    /// Errors with [`Error::NonFinite`] at the first NaN or infinity, index `(s, i, r)`.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        self.check_finite_par(arg, Par::Seq)
    }

    /// [`check_finite`](Self::check_finite), the scan spread over `par`.
    pub(crate) fn check_finite_par(&self, arg: &'static str, par: Par) -> Result<()> {
        let data = self.as_slice();
        match first_non_finite_par(data, par) {
            None => Ok(()),
            Some(k) => {
                let (s, i, r) = (k / (self.rows * self.cols), (k / self.cols) % self.rows, k % self.cols);
                Err(Error::NonFinite { arg, index: vec![s, i, r], value: fmt_value(data[k]) })
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
