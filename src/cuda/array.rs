//! Device-resident batches: [`DeviceArray`], interleaved over the batch on the device.

use super::backend::{Buffer, CudaBackend, CudaReal, DevPtr};
use crate::error::{Error, Result, fmt_shape, unravel};
use crate::scalar::fmt_value;

/// A batch of arrays on a [`CudaBackend`]: logical shape `(batch, …)` (row-major per system,
/// as on the host), stored **interleaved over the batch**: element `k` of system `s` at
/// device offset `k·batch + s`, so that the kernels' consecutive threads (consecutive systems)
/// read consecutive addresses (docs/ARCHITECTURE.md, "The CUDA backend").
///
/// Made by [`CudaBackend::upload`] (one host→device copy and one transpose on the device) and
/// by the operations; read back by [`to_host`](Self::to_host).
pub struct DeviceArray<T: CudaReal> {
    pub(crate) backend: CudaBackend,
    pub(crate) buf: Buffer<T>,
    shape: Vec<usize>,
}

impl<T: CudaReal> std::fmt::Debug for DeviceArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceArray<{}>{} on {:?}", T::NAME, fmt_shape(&self.shape), self.backend)
    }
}

/// `Π dims`, or [`Error::InvalidArgument`] if it overflows.
fn elements(arg: &'static str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::InvalidArgument { arg, reason: format!("shape {} overflows", fmt_shape(shape)) })
}

impl CudaBackend {
    /// Copies `data` (row-major, shape `shape = (batch, …)`, batch first) to the device,
    /// interleaved over the batch (see [`DeviceArray`]). Cost: one copy of `data` and one
    /// transpose on the device.
    ///
    /// Errors: [`Error::Shape`] (`shape` is empty, its batch is 0, or `data` is not
    /// `Π shape` long); [`Error::Cuda`].
    pub fn upload<T: CudaReal>(&self, data: &[T], shape: &[usize]) -> Result<DeviceArray<T>> {
        let len = elements("data", shape)?;
        if shape.first().is_none_or(|&b| b == 0) || data.len() != len {
            return Err(Error::shape("data", format!("{} = {len} elements, batch ≥ 1", fmt_shape(shape)), format!("{} elements", data.len())));
        }
        let (batch, m) = (shape[0], len / shape[0]);
        let src = self.copy_to_device(data)?;
        let mut dst = DeviceArray::zeros(self, shape)?;
        let name = format!("interleave_{}", T::SUFFIX);
        let (b, m64) = (batch as i64, m as i64);
        // SAFETY: `src` holds `batch·m` elements, `dst` as many (`interleave` in gpu/layout.cu).
        unsafe { self.launch(&name, len, &[&src.ptr(), &dst.buf.ptr_mut(), &b, &m64])? };
        Ok(dst)
    }
}

impl<T: CudaReal> DeviceArray<T> {
    /// A zeroed array of `shape` on `backend`.
    pub(crate) fn zeros(backend: &CudaBackend, shape: &[usize]) -> Result<Self> {
        let len = elements("shape", shape)?;
        Ok(Self { backend: backend.clone(), buf: backend.alloc(len)?, shape: shape.to_vec() })
    }

    /// A copy of this array (on the device, no host copy). Errors: [`Error::Cuda`] (allocation).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self { backend: self.backend.clone(), buf: self.backend.duplicate(&self.buf)?, shape: self.shape.clone() })
    }

    /// The logical shape `(batch, …)`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of systems (the first dimension).
    pub fn batch(&self) -> usize {
        self.shape[0]
    }
    /// Elements of one system.
    pub fn system_len(&self) -> usize {
        self.shape[1..].iter().product()
    }
    /// Elements in all.
    pub fn len(&self) -> usize {
        self.batch() * self.system_len()
    }
    /// Never true (a batch has at least one system); for symmetry with [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The backend the array lives on.
    pub fn backend(&self) -> &CudaBackend {
        &self.backend
    }

    /// The array on the host, row-major `(batch, …)` (one transpose on the device, one copy).
    ///
    /// Errors: [`Error::Cuda`] (including a failure of an earlier kernel on this stream).
    pub fn to_host(&self) -> Result<Vec<T>> {
        let len = self.len();
        let mut tmp = self.backend.alloc::<T>(len)?;
        let (b, m) = (self.batch() as i64, self.system_len() as i64);
        let name = format!("deinterleave_{}", T::SUFFIX);
        // SAFETY: both buffers hold `batch·m` elements.
        unsafe { self.backend.launch(&name, len, &[&self.buf.ptr(), &tmp.ptr_mut(), &b, &m])? };
        self.backend.copy_to_host(&tmp, len)
    }

    /// Reshaped view of the same data (`Π shape` unchanged, same batch).
    pub(crate) fn reshaped(mut self, shape: &[usize]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), self.len());
        debug_assert_eq!(shape[0], self.batch());
        self.shape = shape.to_vec();
        self
    }

    /// Errors with [`Error::Shape`] unless this array has shape `shape`, or with
    /// [`Error::InvalidArgument`] if it lives on another backend than `backend`.
    pub(crate) fn expect(&self, arg: &'static str, backend: &CudaBackend, shape: &[usize]) -> Result<()> {
        if !self.backend.same(backend) {
            return Err(Error::InvalidArgument { arg, reason: format!("lives on {:?}, expected {:?}", self.backend, backend) });
        }
        if self.shape != shape {
            return Err(Error::shape(arg, fmt_shape(shape), fmt_shape(&self.shape)));
        }
        Ok(())
    }

    /// For every system, the first element `k` that is non-finite (or, with `positive`, not
    /// `> 0`), skipping the entries below a band of order `band_n` when `band_w > 0`
    /// (column band, `k = j·band_w + d`); the first offending `(system, k, value)`.
    fn first_bad(&self, positive: bool, band_n: usize, band_w: usize) -> Result<Option<(usize, usize, T)>> {
        let batch = self.batch();
        let mut first = self.backend.alloc::<i64>(batch)?;
        let (b, m, n, w, p) = (batch as i64, self.system_len() as i64, band_n as i64, band_w as i64, positive as i64);
        let name = format!("first_bad_{}", T::SUFFIX);
        // SAFETY: `self.buf` holds `batch·m` elements, `first` `batch`.
        unsafe { self.backend.launch(&name, batch, &[&self.buf.ptr(), &first.ptr_mut(), &b, &m, &n, &w, &p])? };
        let first = self.backend.copy_to_host(&first, batch)?;
        let Some((s, k)) = first.iter().enumerate().find(|&(_, &k)| k >= 0).map(|(s, &k)| (s, k as usize)) else { return Ok(None) };
        let value = self.backend.copy_element(&self.buf, k * batch + s)?;
        Ok(Some((s, k, value)))
    }

    /// [`Error::NonFinite`] at the first NaN or ±∞, its index in the row-major shape `shape`
    /// of one system (batch index first).
    pub(crate) fn check_finite(&self, arg: &'static str) -> Result<()> {
        match self.first_bad(false, 0, 0)? {
            None => Ok(()),
            Some((s, k, v)) => {
                let mut index = vec![s];
                index.extend(unravel(k, &self.shape[1..]));
                Err(Error::NonFinite { arg, index, value: fmt_value(v) })
            }
        }
    }

    /// [`check_finite`](Self::check_finite) of a column band of order `n` (`(batch, n, kd+1)`
    /// here), reported in the interchange layout `(batch, kd + 1, n)` as the CPU does.
    pub(crate) fn check_finite_band(&self, arg: &'static str, n: usize, kd: usize) -> Result<()> {
        match self.first_bad(false, n, kd + 1)? {
            None => Ok(()),
            Some((s, k, v)) => Err(Error::NonFinite { arg, index: vec![s, k % (kd + 1), k / (kd + 1)], value: fmt_value(v) }),
        }
    }

    /// The first entry that is not `> 0` (system, index in one system's shape, value).
    pub(crate) fn first_not_positive(&self) -> Result<Option<(Vec<usize>, T)>> {
        Ok(self.first_bad(true, 0, 0)?.map(|(s, k, v)| {
            let mut index = vec![s];
            index.extend(unravel(k, &self.shape[1..]));
            (index, v)
        }))
    }
}

/// A null pointer argument (an optional array a kernel does not read).
pub(crate) const NULL: DevPtr = DevPtr(0);
