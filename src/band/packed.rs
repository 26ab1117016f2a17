//! Batches in the lane-interleaved (pack) layout, for callers who build their data in the
//! layout the kernels run in: [`PackedBandBatch`] (band matrices) and [`PackedBatchMatrix`]
//! (right-hand sides). Factoring and solving them moves no data between layouts
//! ([`Cholesky::factor_packed`](crate::Cholesky::factor_packed),
//! [`Cholesky::solve_packed_in_place`](crate::Cholesky::solve_packed_in_place)).

use crate::alloc::copy_vec;
use crate::error::{Error, Result, fmt_shape};
use crate::par::Par;
use crate::params::Params;
use crate::scalar::{Real, first_non_finite_par, fmt_value};

use super::lanes::{pack_lanes, repack, with_lanes};
use super::{BandBatch, BatchMatrix};

/// The lane counts a packed batch may have: those [`pack_lanes`] returns.
const LANES: [usize; 5] = [1, 8, 16, 32, 64];

/// The shape shared by both packed types: `batch` systems of `len` elements each, the first
/// `batch / lanes · lanes` of them in packs of `lanes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packing {
    batch: usize,
    len: usize,
    lanes: usize,
}

impl Packing {
    /// Checks `lanes` and that `data_len == batch·len` (`shape` names the arrays' shape for the
    /// message; `len > 0` and `batch > 0` are the caller's checks).
    fn new(arg: &'static str, shape: &[usize], batch: usize, len: usize, lanes: usize, data_len: usize) -> Result<Self> {
        if !LANES.contains(&lanes) {
            return Err(Error::InvalidArgument { arg: "lanes", reason: format!("{lanes} lanes per pack; expected one of {LANES:?} (see pack_lanes)") });
        }
        if batch.checked_mul(len) != Some(data_len) {
            return Err(Error::shape(arg, format!("{} elements = {}", batch.saturating_mul(len), fmt_shape(shape)), format!("{data_len} elements")));
        }
        Ok(Self { batch, len, lanes })
    }

    /// Position in the storage of element `k < len` of system `s < batch`.
    fn offset(self, s: usize, k: usize) -> usize {
        let Packing { batch, len, lanes } = self;
        if s < batch / lanes * lanes { (s / lanes * len + k) * lanes + s % lanes } else { s * len + k }
    }

    /// The inverse of [`offset`](Self::offset): `(s, k)` of storage position `i`.
    fn locate(self, i: usize) -> (usize, usize) {
        let Packing { batch, len, lanes } = self;
        let packed = batch / lanes * lanes * len;
        if i < packed {
            let (p, r) = (i / (len * lanes), i % (len * lanes));
            (p * lanes + r % lanes, r / lanes)
        } else {
            (i / len, i % len)
        }
    }

    /// `data` rewritten between the plain layout (systems consecutive) and the packed one.
    fn repack<T: Real>(self, data: &mut [T], to_packs: bool) {
        with_lanes!(self.lanes, L => repack::<T, L>(data, self.batch, self.len, to_packs));
    }

    /// The first non-finite element of `data` for which `counts(k)` (element `k` of a system is
    /// a matrix entry), as `(s, k, value)`.
    fn first_non_finite<T: Real>(self, data: &[T], par: Par, counts: impl Fn(usize) -> bool) -> Option<(usize, usize, T)> {
        let mut from = 0;
        while let Some(i) = first_non_finite_par(&data[from..], par).map(|i| from + i) {
            let (s, k) = self.locate(i);
            if counts(k) {
                return Some((s, k, data[i]));
            }
            from = i + 1;
        }
        None
    }
}

/// A batch of symmetric band matrices (as [`BandBatch`]) stored **lane-interleaved**: the
/// systems are taken in packs of `lanes` consecutive systems, and a pack stores element `k` of
/// its systems side by side,
///
/// ```text
/// data[(p·len + k)·lanes + l] = element k of system p·lanes + l      (s < batch / lanes · lanes)
/// data[s·len + k]             = element k of system s                (the remaining systems)
/// ```
///
/// where `len = n·(kd+1)` and element `k = j·(kd+1) + d` is `A_s[j+d, j]` (the column band of
/// [`BandBatch`]; entries with `j + d ≥ n` are ignored). With `lanes = 1` this is the
/// [`BandBatch`] layout itself.
///
/// This is the layout the batched kernels factor in: [`Cholesky::factor_packed`](crate::Cholesky::factor_packed)
/// factors it in place with no transposes, where [`Cholesky::factor`](crate::Cholesky::factor)
/// moves every element into it and back. Take `lanes` from [`PackedBandBatch::lanes_for`] (what
/// the kernels would choose for the shape, CPU and parameters); any of 1, 8, 16, 32, 64 is
/// accepted and runs with that many lanes.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedBandBatch<T> {
    packing: Packing,
    n: usize,
    kd: usize,
    data: Vec<T>,
}

impl<T: Real> PackedBandBatch<T> {
    /// The lanes per pack the kernels would use for `batch` systems of bandwidth `kd` under
    /// `params` ([`pack_lanes`]): 1 (one system at a time), 8, 16, 32 or 64.
    pub fn lanes_for(batch: usize, kd: usize, params: &Params) -> usize {
        pack_lanes::<T>(batch, kd, params)
    }

    /// Wraps `data`, already in the packed layout above (no copy).
    ///
    /// Errors: [`Error::Shape`] (`ab`: a zero dimension, or `data.len() != batch·n·(kd+1)`),
    /// [`Error::InvalidArgument`] (`lanes` not one of 1, 8, 16, 32, 64; a size that overflows).
    pub fn new(data: Vec<T>, batch: usize, n: usize, kd: usize, lanes: usize) -> Result<Self> {
        let len = BandBatch::<T>::checked_len(1, n, kd)?;
        BandBatch::<T>::checked_len(batch, n, kd)?;
        let packing = Packing::new("ab", &[batch, n, kd + 1], batch, len, lanes, data.len())?;
        Ok(Self { packing, n, kd, data })
    }

    /// `a` in the packed layout with `lanes` per pack (one copy, one transpose per element).
    /// Errors: as [`new`](Self::new); [`Error::InvalidArgument`] if the copy cannot be allocated.
    pub fn from_band<S: AsRef<[T]>>(a: &BandBatch<T, S>, lanes: usize) -> Result<Self> {
        let mut p = Self::new(copy_vec("ab", a.as_slice())?, a.batch(), a.n(), a.kd(), lanes)?;
        p.packing.repack(&mut p.data, true);
        Ok(p)
    }

    /// The same batch in the [`BandBatch`] layout (in place, one transpose per element).
    pub fn into_band(mut self) -> BandBatch<T> {
        self.packing.repack(&mut self.data, false);
        BandBatch::from_parts(self.packing.batch, self.n, self.kd, self.data)
    }

    /// Position in [`as_slice`](Self::as_slice) of `A_s[i, j]` for `j ≤ i ≤ j + kd`, `i < n`,
    /// `s < batch` (`None` otherwise: the upper triangle, outside the band or out of range).
    pub fn offset(&self, s: usize, i: usize, j: usize) -> Option<usize> {
        (s < self.batch() && j <= i && i < self.n && i - j <= self.kd).then(|| self.packing.offset(s, j * (self.kd + 1) + (i - j)))
    }

    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.packing.batch
    }
    /// Order of each system.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.kd
    }
    /// Systems per pack.
    pub fn lanes(&self) -> usize {
        self.packing.lanes
    }
    /// The storage, in the packed layout.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
    /// The storage, in the packed layout, for filling in place.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Errors with [`Error::NonFinite`] (index `(s, d, j)` of the interchange layout, as
    /// [`BandBatch::check_finite`]) at the first NaN or infinity among the matrix entries.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        self.check_finite_par(arg, Par::Seq)
    }

    /// [`check_finite`](Self::check_finite), the scan spread over `par`.
    pub(crate) fn check_finite_par(&self, arg: &'static str, par: Par) -> Result<()> {
        let (n, w) = (self.n, self.kd + 1);
        match self.packing.first_non_finite(&self.data, par, |k| k / w + k % w < n) {
            Some((s, k, v)) => Err(Error::NonFinite { arg, index: vec![s, k % w, k / w], value: fmt_value(v) }),
            None => Ok(()),
        }
    }

    /// `(batch, n, kd, lanes, storage)`.
    pub(crate) fn into_parts(self) -> (usize, usize, usize, usize, Vec<T>) {
        (self.packing.batch, self.n, self.kd, self.packing.lanes, self.data)
    }
}

/// A batch of row-major `rows × cols` matrices (as [`BatchMatrix`], e.g. right-hand sides
/// `(batch, n, nrhs)`) stored lane-interleaved like [`PackedBandBatch`], with `len = rows·cols`
/// and element `k = i·cols + r`. [`Cholesky::solve_packed_in_place`](crate::Cholesky::solve_packed_in_place)
/// solves it in place with no transposes when its `lanes` are the factor's
/// ([`Cholesky::lanes`](crate::Cholesky::lanes)).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedBatchMatrix<T> {
    packing: Packing,
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> PackedBatchMatrix<T> {
    /// Wraps `data`, already in the packed layout (no copy).
    ///
    /// Errors: [`Error::Shape`] (`data`: a zero dimension, or `data.len() != batch·rows·cols`),
    /// [`Error::InvalidArgument`] (`lanes` not one of 1, 8, 16, 32, 64).
    pub fn new(data: Vec<T>, batch: usize, rows: usize, cols: usize, lanes: usize) -> Result<Self> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Err(Error::shape("data", "(batch ≥ 1, rows ≥ 1, cols ≥ 1)", fmt_shape(&[batch, rows, cols])));
        }
        let len = rows.checked_mul(cols).ok_or_else(|| Error::InvalidArgument { arg: "data", reason: format!("rows·cols = {rows}·{cols} overflows usize") })?;
        let packing = Packing::new("data", &[batch, rows, cols], batch, len, lanes, data.len())?;
        Ok(Self { packing, rows, cols, data })
    }

    /// `b` in the packed layout with `lanes` per pack (one copy, one transpose per element).
    /// Errors: as [`new`](Self::new); [`Error::InvalidArgument`] if the copy cannot be allocated.
    pub fn from_matrix<S: AsRef<[T]>>(b: &BatchMatrix<T, S>, lanes: usize) -> Result<Self> {
        let mut p = Self::new(copy_vec("data", b.as_slice())?, b.batch(), b.rows(), b.cols(), lanes)?;
        p.packing.repack(&mut p.data, true);
        Ok(p)
    }

    /// The same batch as a row-major [`BatchMatrix`] (in place, one transpose per element).
    pub fn into_matrix(mut self) -> BatchMatrix<T> {
        self.packing.repack(&mut self.data, false);
        let (batch, rows, cols) = (self.packing.batch, self.rows, self.cols);
        // The shape was checked by `new`.
        BatchMatrix::from_parts(self.data, batch, rows, cols)
    }

    /// Position in [`as_slice`](Self::as_slice) of element `(s, i, r)` (`None` if out of range).
    pub fn offset(&self, s: usize, i: usize, r: usize) -> Option<usize> {
        (s < self.batch() && i < self.rows && r < self.cols).then(|| self.packing.offset(s, i * self.cols + r))
    }

    /// Number of matrices.
    pub fn batch(&self) -> usize {
        self.packing.batch
    }
    /// Rows of each matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns of each matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Matrices per pack.
    pub fn lanes(&self) -> usize {
        self.packing.lanes
    }
    /// The storage, in the packed layout.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
    /// The storage, in the packed layout, for filling in place.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Errors with [`Error::NonFinite`] (index `(s, i, r)`) at the first NaN or infinity.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        self.check_finite_par(arg, Par::Seq)
    }

    /// [`check_finite`](Self::check_finite), the scan spread over `par`.
    pub(crate) fn check_finite_par(&self, arg: &'static str, par: Par) -> Result<()> {
        let cols = self.cols;
        match self.packing.first_non_finite(&self.data, par, |_| true) {
            Some((s, k, v)) => Err(Error::NonFinite { arg, index: vec![s, k / cols, k % cols], value: fmt_value(v) }),
            None => Ok(()),
        }
    }
}
