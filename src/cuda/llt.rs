//! The band Cholesky on the device: [`DeviceBand`], [`DeviceCholesky`] (factor, solve,
//! log-determinant, the solve's backward), with the CPU API's shapes, semantics and errors.

use super::array::{DeviceArray, NULL};
use super::backend::{Buffer, CudaBackend, CudaReal, DevPtr};
use crate::band::BandBatch;
use crate::error::{Error, PivotFailure, Result, fmt_shape};
use crate::params::Params;

/// A batch of symmetric band matrices on the device: the column band of
/// [`BandBatch`] per system (`(batch, n, kd + 1)`, element `j·(kd+1) + d` = `A_s[j + d, j]`),
/// interleaved over the batch like every [`DeviceArray`].
#[derive(Debug)]
pub struct DeviceBand<T: CudaReal> {
    array: DeviceArray<T>,
    n: usize,
    kd: usize,
}

impl CudaBackend {
    /// Copies a band batch to the device (one copy, one transpose on the device).
    ///
    /// Errors: [`Error::Cuda`].
    pub fn upload_band<T: CudaReal, S: AsRef<[T]>>(&self, ab: &BandBatch<T, S>) -> Result<DeviceBand<T>> {
        let (batch, n, kd) = (ab.batch(), ab.n(), ab.kd());
        Ok(DeviceBand { array: self.upload(ab.as_slice(), &[batch, n, kd + 1])?, n, kd })
    }
}

impl<T: CudaReal> DeviceBand<T> {
    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.array.batch()
    }
    /// Order of each matrix.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.kd
    }
    /// The data, `(batch, n, kd + 1)`.
    pub fn array(&self) -> &DeviceArray<T> {
        &self.array
    }
    /// The batch on the host (one transpose on the device, one copy).
    ///
    /// Errors: [`Error::Cuda`].
    pub fn to_host(&self) -> Result<BandBatch<T>> {
        Ok(BandBatch::from_parts(self.batch(), self.n, self.kd, self.array.to_host()?))
    }
    /// A copy on the device. Errors: [`Error::Cuda`] (allocation).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self { array: self.array.try_clone()?, n: self.n, kd: self.kd })
    }
}

/// The Cholesky factors `A_s = L_s L_sᵀ` of a [`DeviceBand`] batch, on the device (the
/// device counterpart of [`Cholesky`](crate::Cholesky)): `L` in the input's layout.
///
/// Kernels (gpu/llt.cu): one thread per system (per system and right-hand side for the
/// solve), the recurrence over the columns inside one launch per phase.
#[derive(Debug)]
pub struct DeviceCholesky<T: CudaReal> {
    l: DeviceBand<T>,
}

/// Gradients through `X = A⁻¹ B` on the device (see [`Cholesky::backward`](crate::Cholesky::backward)).
#[derive(Debug)]
pub struct DeviceSolveGrads<T: CudaReal> {
    /// ∂ℓ/∂B, `(batch, n, nrhs)`.
    pub rhs: DeviceArray<T>,
    /// ∂ℓ/∂(stored lower band of A), the layout of the input (an off-diagonal entry stands for
    /// both `A[i, j]` and `A[j, i]`).
    pub ab: DeviceBand<T>,
}

/// Factors `band` (`batch` systems of order `n`, bandwidth `kd`) in place; with `diag`, the
/// relative pivot test of the S-MNN layer with `tol`. Reads the status back (one copy of
/// `batch` integers): [`Error::NotPositiveDefinite`] listing every failing system.
pub(crate) fn factor_buffer<T: CudaReal>(backend: &CudaBackend, band: &mut Buffer<T>, diag: Option<&Buffer<T>>, tol: T, dims: (usize, usize, usize)) -> Result<()> {
    let (batch, n, kd) = dims;
    let mut info = backend.alloc::<i64>(batch)?;
    let diag: DevPtr = diag.map_or(NULL, |d| d.ptr());
    let (b, n64, kd64) = (batch as i64, n as i64, kd as i64);
    let name = format!("band_factor_{}", T::SUFFIX);
    // SAFETY: `band` holds `batch·n·(kd+1)` elements, `diag` (if any) `batch·n`, `info` `batch`.
    unsafe { backend.launch(&name, batch, &[&band.ptr_mut(), &info.ptr_mut(), &diag, &tol, &b, &n64, &kd64])? };
    let info = backend.copy_to_host(&info, batch)?;
    let failures: Vec<PivotFailure> = info.iter().enumerate().filter(|&(_, &i)| i > 0).map(|(system, &i)| PivotFailure { system, column: (i - 1) as usize }).collect();
    if failures.is_empty() { Ok(()) } else { Err(Error::not_positive_definite(failures)) }
}

/// Solves in place in `b` (`batch × n × nrhs`) with the factor in `l`.
pub(crate) fn solve_buffer<T: CudaReal>(backend: &CudaBackend, l: &Buffer<T>, b: &mut Buffer<T>, dims: (usize, usize, usize, usize)) -> Result<()> {
    let (batch, n, kd, nrhs) = dims;
    let (b64, n64, kd64, r64) = (batch as i64, n as i64, kd as i64, nrhs as i64);
    let name = format!("band_solve_{}", T::SUFFIX);
    // SAFETY: `l` holds `batch·n·(kd+1)` elements, `b` `batch·n·nrhs`.
    unsafe { backend.launch(&name, batch * nrhs, &[&l.ptr(), &b.ptr_mut(), &b64, &n64, &kd64, &r64]) }
}

impl<T: CudaReal> DeviceCholesky<T> {
    /// Factors every system of `a` (copied on the device first; see
    /// [`factor_in_place`](Self::factor_in_place)).
    ///
    /// Errors: [`Error::NonFinite`] (if `params.check_finite()`, index in the interchange
    /// layout `(batch, kd + 1, n)` as on the CPU); [`Error::NotPositiveDefinite`] naming the
    /// first failing system and column and listing every failing system; [`Error::Cuda`].
    pub fn factor(a: &DeviceBand<T>, params: &Params) -> Result<Self> {
        if params.check_finite() {
            a.array.check_finite_band("ab", a.n, a.kd)?;
        }
        Self::factor_in_place(a.try_clone()?, &params.with_check_finite(false))
    }

    /// Like [`factor`](Self::factor), overwriting `a` with the factor (no copy).
    pub fn factor_in_place(mut a: DeviceBand<T>, params: &Params) -> Result<Self> {
        if params.check_finite() {
            a.array.check_finite_band("ab", a.n, a.kd)?;
        }
        let dims = (a.batch(), a.n, a.kd);
        let backend = a.array.backend.clone();
        factor_buffer(&backend, &mut a.array.buf, None, T::zero(), dims)?;
        Ok(Self { l: a })
    }

    pub(crate) fn from_factored(l: DeviceBand<T>) -> Self {
        Self { l }
    }

    /// The factor `L` (the input's layout).
    pub fn l(&self) -> &DeviceBand<T> {
        &self.l
    }
    /// Consumes `self`, returning `L`.
    pub fn into_l(self) -> DeviceBand<T> {
        self.l
    }
    /// Number of systems.
    pub fn batch(&self) -> usize {
        self.l.batch()
    }
    /// Order of each system.
    pub fn n(&self) -> usize {
        self.l.n
    }
    /// Lower bandwidth.
    pub fn kd(&self) -> usize {
        self.l.kd
    }
    fn backend(&self) -> &CudaBackend {
        &self.l.array.backend
    }

    /// Errors unless `b` is `(batch, n, nrhs)` on this factor's backend; returns `nrhs`.
    fn expect_rhs(&self, arg: &'static str, b: &DeviceArray<T>) -> Result<usize> {
        let shape = b.shape();
        if shape.len() != 3 || shape[0] != self.batch() || shape[1] != self.n() {
            return Err(Error::shape(arg, format!("({}, {}, nrhs)", self.batch(), self.n()), fmt_shape(shape)));
        }
        b.expect(arg, self.backend(), shape)?;
        Ok(shape[2])
    }

    /// Solves `A_s X_s = B_s` for every system: `b` is `(batch, n, nrhs)`, the result too.
    ///
    /// Cost O(n·kd·nrhs) per system, `batch·nrhs` threads. Errors: [`Error::Shape`],
    /// [`Error::NonFinite`] (if `params.check_finite()`), [`Error::InvalidArgument`] (`b` on
    /// another backend), [`Error::Cuda`].
    pub fn solve(&self, b: &DeviceArray<T>, params: &Params) -> Result<DeviceArray<T>> {
        self.expect_rhs("rhs", b)?;
        let mut x = b.try_clone()?;
        self.solve_in_place(&mut x, params)?;
        Ok(x)
    }

    /// [`solve`](Self::solve) overwriting `b` with the solution.
    pub fn solve_in_place(&self, b: &mut DeviceArray<T>, params: &Params) -> Result<()> {
        let nrhs = self.expect_rhs("rhs", b)?;
        if params.check_finite() {
            b.check_finite("rhs")?;
        }
        solve_buffer(self.backend(), &self.l.array.buf, &mut b.buf, (self.batch(), self.n(), self.kd(), nrhs))?;
        if params.check_finite() {
            b.check_finite("x").map_err(Error::into_overflow)?;
        }
        Ok(())
    }

    /// `log det A_s = 2 Σ_j log L_s[j, j]`, shape `(batch,)`, on the device. Cost O(n).
    ///
    /// Errors: [`Error::Cuda`].
    pub fn logdet(&self) -> Result<DeviceArray<T>> {
        let mut out = DeviceArray::zeros(self.backend(), &[self.batch()])?;
        let (b, n, kd) = (self.batch() as i64, self.n() as i64, self.kd() as i64);
        let name = format!("band_logdet_{}", T::SUFFIX);
        // SAFETY: `l` holds `batch·n·(kd+1)` elements, `out` `batch`.
        unsafe { self.backend().launch(&name, self.batch(), &[&self.l.array.buf.ptr(), &out.buf.ptr_mut(), &b, &n, &kd])? };
        Ok(out)
    }

    /// The backward of `X = A⁻¹ B` (as [`Cholesky::backward`](crate::Cholesky::backward)):
    /// `x` and `grad_x` `(batch, n, nrhs)`; returns ∂ℓ/∂B = A⁻¹ ∂ℓ/∂X and the band gradient.
    ///
    /// Cost O(n·kd·nrhs) per system. Errors: [`Error::Shape`], [`Error::NonFinite`] (if
    /// `params.check_finite()`), [`Error::InvalidArgument`], [`Error::Cuda`].
    pub fn backward(&self, x: &DeviceArray<T>, grad_x: &DeviceArray<T>, params: &Params) -> Result<DeviceSolveGrads<T>> {
        let nrhs = self.expect_rhs("x", x)?;
        grad_x.expect("grad_x", self.backend(), x.shape())?;
        if params.check_finite() {
            x.check_finite("x")?;
            grad_x.check_finite("grad_x")?;
        }
        let lambda = self.solve(grad_x, &params.with_check_finite(false))?;
        let (batch, n, kd) = (self.batch(), self.n(), self.kd());
        let mut g = DeviceArray::zeros(self.backend(), &[batch, n, kd + 1])?;
        let (b, n64, kd64, r64) = (batch as i64, n as i64, kd as i64, nrhs as i64);
        let name = format!("band_gradient_{}", T::SUFFIX);
        // SAFETY: `x`, `lambda` hold `batch·n·nrhs` elements, `g` `batch·n·(kd+1)`.
        unsafe { self.backend().launch(&name, batch, &[&x.buf.ptr(), &lambda.buf.ptr(), &g.buf.ptr_mut(), &b, &n64, &kd64, &r64])? };
        if params.check_finite() {
            lambda.check_finite("grad_rhs").map_err(Error::into_overflow)?;
            g.check_finite_band("grad_ab", n, kd).map_err(Error::into_overflow)?;
        }
        Ok(DeviceSolveGrads { rhs: lambda, ab: DeviceBand { array: g, n, kd } })
    }
}

impl<T: CudaReal> DeviceCholesky<T> {
    /// The entries of `A_s⁻¹` inside the band, on the device, as
    /// [`Cholesky::inverse_band`](crate::Cholesky::inverse_band) (selected inversion, the same
    /// operations in the same order): a [`DeviceBand`] of the factor's shape.
    ///
    /// Cost `2·n·kd²` flops per system (one thread per system). Errors: [`Error::Overflow`]
    /// (`inverse_band`, if `params.check_finite()`), [`Error::Cuda`].
    pub fn inverse_band(&self, params: &Params) -> Result<DeviceBand<T>> {
        self.inverse_scaled(None, "inverse_band", params)
    }

    /// The gradient of `Σ_s grad_logdet[s]·log det A_s` with respect to the stored band, on
    /// the device, as [`Cholesky::logdet_backward`](crate::Cholesky::logdet_backward):
    /// `grad_logdet` `(batch,)` on this backend.
    ///
    /// Cost: that of [`inverse_band`](Self::inverse_band). Errors: [`Error::Shape`] and
    /// [`Error::InvalidArgument`] (`grad_logdet`: shape, another backend),
    /// [`Error::NonFinite`] (`grad_logdet`) and [`Error::Overflow`] (`grad_ab`) if
    /// `params.check_finite()`, [`Error::Cuda`].
    pub fn logdet_backward(&self, grad_logdet: &DeviceArray<T>, params: &Params) -> Result<DeviceBand<T>> {
        grad_logdet.expect("grad_logdet", self.backend(), &[self.batch()])?;
        if params.check_finite() {
            grad_logdet.check_finite("grad_logdet")?;
        }
        self.inverse_scaled(Some(grad_logdet), "grad_ab", params)
    }

    /// The `band_inverse` kernel, scaled by `scale` if given; the result checked as `arg`.
    fn inverse_scaled(&self, scale: Option<&DeviceArray<T>>, arg: &'static str, params: &Params) -> Result<DeviceBand<T>> {
        let (batch, n, kd) = (self.batch(), self.n(), self.kd());
        let mut z = DeviceArray::zeros(self.backend(), &[batch, n, kd + 1])?;
        let scale: DevPtr = scale.map_or(NULL, |c| c.buf.ptr());
        let (b, n64, kd64) = (batch as i64, n as i64, kd as i64);
        let name = format!("band_inverse_{}", T::SUFFIX);
        // SAFETY: `l` and `z` hold `batch·n·(kd+1)` elements, `scale` (if any) `batch`.
        unsafe { self.backend().launch(&name, batch, &[&self.l.array.buf.ptr(), &z.buf.ptr_mut(), &scale, &b, &n64, &kd64])? };
        if params.check_finite() {
            z.check_finite_band(arg, n, kd).map_err(Error::into_overflow)?;
        }
        Ok(DeviceBand { array: z, n, kd })
    }
}

impl<T: CudaReal> DeviceBand<T> {
    pub(crate) fn from_array(array: DeviceArray<T>, n: usize, kd: usize) -> Self {
        Self { array, n, kd }
    }
}
