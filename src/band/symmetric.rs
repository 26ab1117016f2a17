use std::marker::PhantomData;

use crate::error::{Error, Result, fmt_shape};
use crate::alloc::{resized_par, zeroed_vec};
use rayon::prelude::*;

use crate::par::{Par, min_len};
use crate::scalar::{first_non_finite_par, fmt_value, Real};

/// A batch of `batch` symmetric `n × n` band matrices of lower bandwidth `kd`
/// (`A[i, j] = 0` for `|i − j| > kd`), only the lower band stored.
///
/// # Layout
///
/// Internally each system is stored **column by column** (LAPACK's `'L'` band layout):
/// system `s`, column `j` occupies the `kd + 1` consecutive elements
///
/// ```text
/// data[(s·n + j)·(kd+1) + d] = A_s[j + d, j]      0 ≤ d ≤ kd
/// ```
///
/// Entries with `j + d ≥ n` (below the matrix) are never read as matrix entries: batches this
/// crate builds keep them at zero; a caller's storage wrapped by [`new`](Self::new) may hold
/// anything there (even NaN: [`check_finite`](Self::check_finite) skips them).
///
/// The storage `S` is owned (`Vec<T>`, the default) or a borrowed `&[T]` ([`BandRef`]).
///
/// The **interchange layout** (SciPy's `solveh_banded(ab, b, lower=True)`, one per system) is a
/// row-major `(batch, kd + 1, n)` array with `ab[s, d, j] = A_s[j + d, j]`; entries with
/// `j ≥ n − d` are ignored. [`from_lower_band`](Self::from_lower_band) and
/// [`to_lower_band`](Self::to_lower_band) convert in O(batch·n·kd) time, one pass.
///
/// ```text
///  A (n = 5, kd = 2)           ab (kd + 1 = 3 rows, n = 5 columns)
///  a00  .   .   .   .          d=0: a00 a11 a22 a33 a44
///  a10 a11  .   .   .          d=1: a10 a21 a32 a43  *
///  a20 a21 a22  .   .          d=2: a20 a31 a42  *   *
///   .  a31 a32 a33  .
///   .   .  a42 a43 a44         (* ignored)
/// ```
///
/// `kd = 0` (diagonal) and `kd ≥ n − 1` (the whole lower triangle) are valid.
#[derive(Clone, Debug, PartialEq)]
pub struct BandBatch<T, S = Vec<T>> {
    batch: usize,
    n: usize,
    kd: usize,
    data: S,
    elem: PhantomData<T>,
}

/// A [`BandBatch`] borrowing its data (the column band layout above).
pub type BandRef<'a, T> = BandBatch<T, &'a [T]>;

impl<T: Real> BandBatch<T> {
    /// A batch of zero matrices. Errors if `batch == 0` or `n == 0`, or if the size overflows.
    pub fn zeros(batch: usize, n: usize, kd: usize) -> Result<Self> {
        let len = Self::checked_len(batch, n, kd)?;
        Ok(Self::from_parts(batch, n, kd, zeroed_vec("ab", len)?))
    }

    /// `batch·n·(kd+1)`, or [`Error::Shape`] (empty batch or matrices) / [`Error::InvalidArgument`] (overflow).
    pub(crate) fn checked_len(batch: usize, n: usize, kd: usize) -> Result<usize> {
        if batch == 0 || n == 0 {
            return Err(Error::shape(
                "ab",
                "(batch ≥ 1, kd + 1, n ≥ 1)",
                fmt_shape(&[batch, kd.saturating_add(1), n]),
            ));
        }
        batch
            .checked_mul(n)
            .and_then(|x| x.checked_mul(kd.checked_add(1)?))
            .ok_or_else(|| Error::InvalidArgument {
                arg: "ab",
                reason: format!("batch·n·(kd+1) = {batch}·{n}·{} overflows usize", kd as u128 + 1),
            })
    }

    /// Reads the interchange layout: `ab` is a row-major `(batch, kd + 1, n)` array with
    /// `ab[s, d, j] = A_s[j + d, j]`. Entries with `j ≥ n − d` are ignored (not even read).
    ///
    /// Values are not checked here; [`crate::Cholesky::factor`] checks finiteness unless told
    /// not to. Errors: [`Error::Shape`] if `ab.len() != batch·(kd+1)·n`, `batch == 0` or `n == 0`.
    pub fn from_lower_band(ab: &[T], batch: usize, n: usize, kd: usize) -> Result<Self> {
        Self::from_lower_band_par(ab, batch, n, kd, Par::Seq)
    }

    /// [`from_lower_band`](Self::from_lower_band) with the systems spread over `par` (the
    /// conversion is one strided pass over memory, O(batch·n·kd)). Same result, same errors.
    pub fn from_lower_band_par(ab: &[T], batch: usize, n: usize, kd: usize, par: Par) -> Result<Self> {
        Self::from_lower_band_in(Vec::new(), ab, batch, n, kd, par)
    }

    /// [`from_lower_band_par`](Self::from_lower_band_par) into `storage` (any contents, e.g.
    /// [`Cholesky::into_storage`](crate::Cholesky::into_storage) of a factor no longer needed):
    /// reused if its capacity suffices, so a caller converting batches of one size repeatedly
    /// maps and zeroes no fresh pages. Every element is written once (the ignored entries with
    /// zeros). O(batch·n·kd). Errors: as [`from_lower_band`](Self::from_lower_band), or
    /// [`Error::InvalidArgument`] if new storage cannot be allocated.
    pub fn from_lower_band_in(storage: Vec<T>, ab: &[T], batch: usize, n: usize, kd: usize, par: Par) -> Result<Self> {
        let len = Self::checked_len(batch, n, kd)?;
        if ab.len() != len {
            return Err(Error::shape(
                "ab",
                format!("{len} elements = {}", fmt_shape(&[batch, kd + 1, n])),
                format!("{} elements", ab.len()),
            ));
        }
        let mut data = resized_par("ab", storage, len, batch, par)?;
        let w = kd + 1;
        let convert = |(sys, src): (&mut [T], &[T])| {
            // Column by column: contiguous writes, `w` sequential read streams.
            for (j, col) in sys.chunks_exact_mut(w).enumerate() {
                for (d, x) in col.iter_mut().enumerate() {
                    *x = if j + d < n { src[d * n + j] } else { T::zero() };
                }
            }
        };
        data.par_chunks_exact_mut(n * w)
            .zip(ab.par_chunks_exact(n * w))
            .with_min_len(min_len(par, batch))
            .for_each(convert);
        Ok(Self::from_parts(batch, n, kd, data))
    }

    /// Builds a batch from a function of `(system, i, j)` evaluated on the lower band
    /// (`j ≤ i ≤ j + kd`, `i < n`), column by column. O(batch·n·kd) calls.
    ///
    /// Errors: as [`zeros`](Self::zeros) (a zero dimension, or a size that cannot be allocated).
    pub fn from_fn(batch: usize, n: usize, kd: usize, mut f: impl FnMut(usize, usize, usize) -> T) -> Result<Self> {
        let mut out = Self::zeros(batch, n, kd)?;
        let w = kd + 1;
        for (s, sys) in out.data.chunks_exact_mut(n * w).enumerate() {
            for j in 0..n {
                for d in 0..w.min(n - j) {
                    sys[j * w + d] = f(s, j + d, j);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes `self`, returning `(batch, n, kd, storage)`.
    pub(crate) fn into_parts(self) -> (usize, usize, usize, Vec<T>) {
        (self.batch, self.n, self.kd, self.data)
    }

    /// Wraps storage in the internal layout; the caller guarantees
    /// `data.len() == batch·n·(kd+1)` with `batch, n ≥ 1`.
    pub(crate) fn from_parts(batch: usize, n: usize, kd: usize, data: Vec<T>) -> Self {
        debug_assert_eq!(data.len(), batch * n * (kd + 1));
        Self { batch, n, kd, data, elem: PhantomData }
    }

    /// Keeps only the listed systems (in the given order; each `< batch`): `None` if the list
    /// is empty; [`Error::InvalidArgument`] if the copy cannot be allocated.
    pub(crate) fn select(&self, systems: &[usize]) -> Result<Option<Self>> {
        if systems.is_empty() {
            return Ok(None);
        }
        let len = self.system_len();
        // `systems.len() ≤ batch`: the product is at most the batch's own length.
        let mut data = crate::alloc::with_capacity("factor", systems.len() * len)?;
        for &s in systems {
            debug_assert!(s < self.batch);
            data.extend_from_slice(&self.data[s * len..(s + 1) * len]);
        }
        Ok(Some(Self::from_parts(systems.len(), self.n, self.kd, data)))
    }
}

impl<T: Real, S: AsRef<[T]>> BandBatch<T, S> {
    /// Wraps `batch` systems already in the column band layout above (LAPACK's lower band
    /// storage, `data[(s·n + j)·(kd+1) + d] = A_s[j + d, j]`): a `Vec<T>`, or a borrowed `&[T]`
    /// (no copy). Entries below the matrix (`j + d ≥ n`) are ignored.
    ///
    /// Errors: [`Error::Shape`] (`ab`) if `data.len() != batch·n·(kd+1)`, `batch == 0` or
    /// `n == 0`; [`Error::InvalidArgument`] if that size overflows.
    pub fn new(data: S, batch: usize, n: usize, kd: usize) -> Result<Self> {
        let len = BandBatch::<T>::checked_len(batch, n, kd)?;
        if data.as_ref().len() != len {
            return Err(Error::shape(
                "ab",
                format!("{len} elements = batch·n·(kd+1) for batch {batch}, n {n}, kd {kd}"),
                format!("{} elements", data.as_ref().len()),
            ));
        }
        Ok(Self { batch, n, kd, data, elem: PhantomData })
    }

    /// A borrowed view of the same data.
    pub fn view(&self) -> BandRef<'_, T> {
        BandBatch { batch: self.batch, n: self.n, kd: self.kd, data: self.data.as_ref(), elem: PhantomData }
    }

    /// An owned copy (errors only if it cannot be allocated).
    pub fn to_owned(&self) -> Result<BandBatch<T>> {
        Ok(BandBatch::from_parts(self.batch, self.n, self.kd, crate::alloc::copy_vec("ab", self.as_slice())?))
    }

    /// Writes the interchange layout `(batch, kd + 1, n)` (row-major); ignored entries are 0.
    ///
    /// Errors: [`Error::InvalidArgument`] if the copy cannot be allocated.
    pub fn to_lower_band(&self) -> Result<Vec<T>> {
        let (n, w) = (self.n, self.kd + 1);
        let mut ab = crate::alloc::zeroed_vec("ab", self.as_slice().len())?;
        for (dst, sys) in ab.chunks_exact_mut(n * w).zip(self.as_slice().chunks_exact(n * w)) {
            for d in 0..w.min(n) {
                for j in 0..n - d {
                    dst[d * n + j] = sys[j * w + d];
                }
            }
        }
        Ok(ab)
    }

    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Order of each matrix.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.kd
    }

    /// `A_s[i, j]` for any `i, j < n` (zero outside the band; symmetric).
    /// Returns `None` if an index is out of range.
    pub fn get(&self, system: usize, i: usize, j: usize) -> Option<T> {
        if system >= self.batch || i >= self.n || j >= self.n {
            return None;
        }
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        if i - j > self.kd {
            return Some(T::zero());
        }
        Some(self.as_slice()[(system * self.n + j) * (self.kd + 1) + (i - j)])
    }

    /// One system's column-major band (`n·(kd+1)` elements, layout as above), or `None` if
    /// `s ≥ batch`.
    pub fn system(&self, s: usize) -> Option<&[T]> {
        let len = self.system_len();
        self.as_slice().get(s.checked_mul(len)?..s.checked_add(1)?.checked_mul(len)?)
    }

    /// Elements per system, `n·(kd+1)`.
    pub fn system_len(&self) -> usize {
        self.n * (self.kd + 1)
    }

    /// All systems, internal layout.
    pub fn as_slice(&self) -> &[T] {
        self.data.as_ref()
    }

    /// Errors with [`Error::NonFinite`] (index in the interchange layout `(s, d, j)`) if a
    /// band entry of the matrices (not one of the ignored entries below them) is NaN or
    /// infinite.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        self.check_finite_par(arg, Par::Seq)
    }

    /// [`check_finite`](Self::check_finite), the scan spread over `par`.
    pub(crate) fn check_finite_par(&self, arg: &'static str, par: Par) -> Result<()> {
        let (data, n, w) = (self.as_slice(), self.n, self.kd + 1);
        let mut from = 0;
        while let Some(k) = first_non_finite_par(&data[from..], par).map(|k| from + k) {
            let (s, j, d) = (k / (n * w), (k / w) % n, k % w);
            if j + d < n {
                return Err(Error::NonFinite { arg, index: vec![s, d, j], value: fmt_value(data[k]) });
            }
            from = k + 1;
        }
        Ok(())
    }
}
