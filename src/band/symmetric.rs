use crate::error::{fmt_shape, Error, Result};
use crate::alloc::zeroed_vec;
use crate::scalar::{first_non_finite, fmt_value, Real};

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
/// Entries with `j + d ≥ n` (below the matrix) are kept at zero.
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
pub struct BandBatch<T> {
    batch: usize,
    n: usize,
    kd: usize,
    data: Vec<T>,
}

impl<T: Real> BandBatch<T> {
    /// A batch of zero matrices. Errors if `batch == 0` or `n == 0`, or if the size overflows.
    pub fn zeros(batch: usize, n: usize, kd: usize) -> Result<Self> {
        let len = Self::checked_len(batch, n, kd)?;
        Ok(Self { batch, n, kd, data: zeroed_vec("ab", len)? })
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
    pub fn from_lower_band(ab: &[T], batch: usize, kd: usize, n: usize) -> Result<Self> {
        let mut out = Self::zeros(batch, n, kd)?;
        if ab.len() != out.data.len() {
            return Err(Error::shape(
                "ab",
                format!("{} elements = {}", out.data.len(), fmt_shape(&[batch, kd + 1, n])),
                format!("{} elements", ab.len()),
            ));
        }
        let w = kd + 1;
        for (sys, src) in out.data.chunks_exact_mut(n * w).zip(ab.chunks_exact(n * w)) {
            for d in 0..w.min(n) {
                let row = &src[d * n..d * n + (n - d)];
                for (j, &v) in row.iter().enumerate() {
                    sys[j * w + d] = v;
                }
            }
        }
        Ok(out)
    }

    /// Writes the interchange layout `(batch, kd + 1, n)` (row-major); ignored entries are 0.
    pub fn to_lower_band(&self) -> Vec<T> {
        let (n, w) = (self.n, self.kd + 1);
        let mut ab = vec![T::zero(); self.data.len()];
        for (dst, sys) in ab.chunks_exact_mut(n * w).zip(self.data.chunks_exact(n * w)) {
            for d in 0..w.min(n) {
                for j in 0..n - d {
                    dst[d * n + j] = sys[j * w + d];
                }
            }
        }
        ab
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
        Some(self.data[(system * self.n + j) * (self.kd + 1) + (i - j)])
    }

    /// One system's column-major band (`n·(kd+1)` elements, layout as above), or `None` if
    /// `s ≥ batch`.
    pub fn system(&self, s: usize) -> Option<&[T]> {
        let len = self.system_len();
        self.data.get(s * len..(s + 1) * len)
    }

    /// Elements per system, `n·(kd+1)`.
    pub fn system_len(&self) -> usize {
        self.n * (self.kd + 1)
    }

    /// All systems, internal layout.
    pub fn as_slice(&self) -> &[T] {
        &self.data
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
        Self { batch, n, kd, data }
    }

    /// Keeps only the listed systems (in the given order).
    pub(crate) fn select(&self, systems: &[usize]) -> Option<Self> {
        if systems.is_empty() {
            return None;
        }
        let len = self.system_len();
        let mut data = Vec::with_capacity(systems.len() * len);
        for &s in systems {
            data.extend_from_slice(self.system(s)?);
        }
        Some(Self { batch: systems.len(), n: self.n, kd: self.kd, data })
    }

    /// Errors with [`Error::NonFinite`] (index in the interchange layout `(s, d, j)`) if a
    /// stored band entry is NaN or infinite.
    pub fn check_finite(&self, arg: &'static str) -> Result<()> {
        match first_non_finite(&self.data) {
            None => Ok(()),
            Some(k) => {
                let w = self.kd + 1;
                let (s, j, d) = (k / (self.n * w), (k / w) % self.n, k % w);
                Err(Error::NonFinite { arg, index: vec![s, d, j], value: fmt_value(self.data[k]) })
            }
        }
    }
}
