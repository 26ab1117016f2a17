//! The S-MNN layer on the device (gpu/smnn.cu): the normal equations assembled on the device
//! straight into the band the factor reads, the factor and solve of gpu/llt.cu, and the
//! backward's row sums. One launch per phase; results equal the CPU layer's
//! ([`Smnn::forward`]) to rounding.

use cudarc::driver::DeviceRepr;

use super::array::{DeviceArray, NULL};
use super::backend::{Buffer, CudaBackend, CudaReal, DevPtr};
use super::llt::{DeviceBand, DeviceCholesky, factor_buffer, solve_buffer};
use crate::error::{Error, Result, fmt_shape};
use crate::params::Params;
use crate::scalar::fmt_value;
use crate::smnn::{Smnn, overflowed_pivot};
use crate::smnn::assemble::Taylor;

/// `SmnnShape` of gpu/smnn.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct Shape {
    t: i64,
    e: i64,
    d: i64,
    o: i64,
    s: i64,
    i: i64,
    ct: i64,
    rt: i64,
    ht: i64,
    kd: i64,
    central: i64,
}
// SAFETY: `#[repr(C)]` plain integers, the layout of `SmnnShape`.
unsafe impl DeviceRepr for Shape {}

/// `SmnnWeights<T>` of gpu/smnn.cu (the weights squared).
#[repr(C)]
#[derive(Clone, Copy)]
struct Weights<T> {
    equation: T,
    init_var: T,
    smooth: T,
}
// SAFETY: `#[repr(C)]` of three `f32` or `f64`, the layout of `SmnnWeights<T>`.
unsafe impl<T: CudaReal> DeviceRepr for Weights<T> {}

/// `SmnnTables<T>` of gpu/smnn.cu: pointers to [`Tables`] on the device.
#[repr(C)]
#[derive(Clone, Copy)]
struct TablePtrs {
    gram1: DevPtr,
    gram_pow: DevPtr,
    gram_off: DevPtr,
    gram_full: DevPtr,
    ngram: i64,
}
// SAFETY: `#[repr(C)]` of four 8-byte addresses and an `i64`, the layout of `SmnnTables<T>`.
unsafe impl DeviceRepr for TablePtrs {}

/// The Taylor rows' tables at `h = 1` ([`Taylor`]), on the device.
struct Tables<T: CudaReal> {
    gram1: Buffer<T>,
    pow: Buffer<i64>,
    off: Buffer<i64>,
    full: Buffer<T>,
    ngram: usize,
}

impl<T: CudaReal> std::fmt::Debug for Tables<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tables {{ ngram: {} }}", self.ngram)
    }
}

impl<T: CudaReal> Tables<T> {
    fn new(backend: &CudaBackend, layer: &Smnn) -> Result<Self> {
        let t = Taylor::<T>::new(layer);
        let ints = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
        Ok(Self {
            gram1: backend.copy_to_device(&t.gram1)?,
            pow: backend.copy_to_device(&ints(&t.gram_pow))?,
            off: backend.copy_to_device(&ints(&t.gram_off))?,
            full: backend.copy_to_device(&t.gram1_full)?,
            ngram: t.gram1.len(),
        })
    }
    fn ptrs(&self) -> TablePtrs {
        TablePtrs { gram1: self.gram1.ptr(), gram_pow: self.pow.ptr(), gram_off: self.off.ptr(), gram_full: self.full.ptr(), ngram: self.ngram as i64 }
    }
}

/// The four inputs of one call on the device, each of the layer's shape
/// ([`Smnn::coefficients_shape`] etc.; see [`Inputs`](crate::smnn::Inputs)).
#[derive(Clone, Copy, Debug)]
pub struct DeviceInputs<'a, T: CudaReal> {
    /// `C`, `(batch, T or 1, E, D, O)`.
    pub coefficients: &'a DeviceArray<T>,
    /// `r`, `(batch, T or 1, E)`.
    pub rhs_equation: &'a DeviceArray<T>,
    /// `v`, `(batch, S, D, I)`.
    pub init_vars: &'a DeviceArray<T>,
    /// `h`, `(batch, T − 1 or 1)`, every entry positive.
    pub steps: &'a DeviceArray<T>,
}

/// Gradients of ℓ with respect to the four inputs, on the device, each of its input's shape.
#[derive(Debug)]
pub struct DeviceGrads<T: CudaReal> {
    /// ∂ℓ/∂coefficients.
    pub coefficients: DeviceArray<T>,
    /// ∂ℓ/∂rhs_equation.
    pub rhs_equation: DeviceArray<T>,
    /// ∂ℓ/∂init_vars.
    pub init_vars: DeviceArray<T>,
    /// ∂ℓ/∂steps.
    pub steps: DeviceArray<T>,
}

/// The result of [`Smnn::forward_cuda`]: `u` and what the backward needs, on the device.
#[derive(Debug)]
pub struct DeviceForward<'a, T: CudaReal> {
    layer: Smnn,
    inputs: DeviceInputs<'a, T>,
    factor: DeviceCholesky<T>,
    u: DeviceArray<T>,
    /// The layer's Taylor tables, uploaded once for the forward's assembly and the backward.
    tables: Tables<T>,
}

/// A layer with its left-hand side fixed and `M` factored on the device ([`Smnn::freeze_cuda`];
/// the device counterpart of [`Frozen`](crate::smnn::Frozen)).
#[derive(Debug)]
pub struct DeviceFrozen<T: CudaReal> {
    layer: Smnn,
    coefficients: DeviceArray<T>,
    factor: DeviceCholesky<T>,
}

/// Gradients with respect to the inputs that vary in a [`DeviceFrozen`] layer.
#[derive(Debug)]
pub struct DeviceFrozenGrads<T: CudaReal> {
    /// ∂ℓ/∂rhs_equation, `(batch, T or 1, E)`.
    pub rhs_equation: DeviceArray<T>,
    /// ∂ℓ/∂init_vars, `(batch, S, D, I)`.
    pub init_vars: DeviceArray<T>,
}

impl Smnn {
    fn device_shape(&self) -> Shape {
        let i = |x: usize| x as i64;
        Shape {
            t: i(self.t),
            e: i(self.e),
            d: i(self.d),
            o: i(self.o),
            s: i(self.s),
            i: i(self.i),
            ct: i(self.ct),
            rt: i(self.rt),
            ht: i(self.ht),
            kd: i(self.kd),
            central: self.opts.central as i64,
        }
    }

    fn device_weights<T: CudaReal>(&self) -> Weights<T> {
        let sq = |w: f64| T::from_f64(w * w);
        Weights { equation: sq(self.opts.weight_equation), init_var: sq(self.opts.weight_init_var), smooth: sq(self.opts.weight_smooth) }
    }

    /// Checks `coefficients` and `steps` (backend, shape, finiteness, positive steps).
    fn check_lhs_cuda<T: CudaReal>(&self, backend: &CudaBackend, c: &DeviceArray<T>, h: &DeviceArray<T>, params: &Params) -> Result<()> {
        self.check_weights::<T>()?;
        c.expect("coefficients", backend, &self.coefficients_shape())?;
        h.expect("steps", backend, &self.steps_shape())?;
        if params.check_finite() {
            c.check_finite("coefficients")?;
            h.check_finite("steps")?;
        }
        if let Some((index, v)) = h.first_not_positive()? {
            return Err(Error::InvalidArgument { arg: "steps", reason: format!("step sizes must be positive, got {} at index {}", fmt_value(v), fmt_shape(&index)) });
        }
        Ok(())
    }

    /// Checks `rhs_equation` and `init_vars`.
    fn check_rhs_cuda<T: CudaReal>(&self, backend: &CudaBackend, r: &DeviceArray<T>, v: &DeviceArray<T>, params: &Params) -> Result<()> {
        r.expect("rhs_equation", backend, &self.rhs_equation_shape())?;
        v.expect("init_vars", backend, &self.init_vars_shape())?;
        if params.check_finite() {
            r.check_finite("rhs_equation")?;
            v.check_finite("init_vars")?;
        }
        Ok(())
    }

    /// Assembles `M` on the device and factors it with the relative pivot test of
    /// [`Smnn::forward`] (a pivot not above `2(kd+1)·ε` times its diagonal entry fails).
    fn factor_cuda<T: CudaReal>(&self, backend: &CudaBackend, c: &DeviceArray<T>, h: &DeviceArray<T>, tables: &Tables<T>, params: &Params) -> Result<DeviceCholesky<T>> {
        let (batch, n, kd) = (self.batch, self.n(), self.kd);
        let mut band = DeviceArray::<T>::zeros(backend, &[batch, n, kd + 1])?;
        let mut diag = DeviceArray::<T>::zeros(backend, &[batch, n])?;
        let name = format!("smnn_assemble_{}", T::SUFFIX);
        let (sh, wt, b) = (self.device_shape(), self.device_weights::<T>(), batch as i64);
        // SAFETY: `c`, `h` have the layer's shapes (checked); `band` holds `batch·n·(kd+1)`
        // elements, `diag` `batch·n`; the tables are those of this layer.
        unsafe { backend.launch(&name, batch, &[&c.buf.ptr(), &h.buf.ptr(), &band.buf.ptr_mut(), &diag.buf.ptr_mut(), &tables.ptrs(), &sh, &wt, &b])? };
        let tol = T::from_f64(2.0 * (kd as f64 + 1.0)) * T::epsilon();
        if let Err(e) = factor_buffer(backend, &mut band.buf, Some(&diag.buf), tol, (batch, n, kd)) {
            // As on the CPU: a failure at an overflowed diagonal entry of `M` is an overflow
            // (the diagonal is read back on this error path only).
            if let Error::NotPositiveDefinite { failures, .. } = &e
                && params.check_finite()
                && let Some(overflow) = overflowed_pivot(failures, &diag.to_host()?, n)
            {
                return Err(overflow);
            }
            return Err(e);
        }
        Ok(DeviceCholesky::from_factored(DeviceBand::from_array(band, n, kd)))
    }

    /// `Aᵀβ` on the device, `(batch, n, 1)`.
    fn rhs_cuda<T: CudaReal>(&self, backend: &CudaBackend, c: &DeviceArray<T>, r: &DeviceArray<T>, v: &DeviceArray<T>) -> Result<DeviceArray<T>> {
        let mut rhs = DeviceArray::<T>::zeros(backend, &[self.batch, self.n(), 1])?;
        let name = format!("smnn_rhs_{}", T::SUFFIX);
        let (sh, wt, b) = (self.device_shape(), self.device_weights::<T>(), self.batch as i64);
        // SAFETY: `c`, `r`, `v` have the layer's shapes (checked), `rhs` holds `batch·n`.
        unsafe { backend.launch(&name, self.batch, &[&c.buf.ptr(), &r.buf.ptr(), &v.buf.ptr(), &rhs.buf.ptr_mut(), &sh, &wt, &b])? };
        Ok(rhs)
    }

    /// `M⁻¹ x` for `x` of `u`'s shape, checked finite afterwards (as the CPU's `solve_vec`:
    /// [`Error::Overflow`] with `params.check_finite()`, else [`Error::NonFinite`]), returned as
    /// `(batch, T, D, O)`.
    fn solve_cuda<T: CudaReal>(&self, factor: &DeviceCholesky<T>, x: DeviceArray<T>, arg: &'static str, params: &Params) -> Result<DeviceArray<T>> {
        let mut x = x.reshaped(&[self.batch, self.n(), 1]);
        let backend = x.backend().clone();
        solve_buffer(&backend, &factor.l().array().buf, &mut x.buf, (self.batch, self.n(), self.kd, 1))?;
        let x = x.reshaped(&self.u_shape());
        x.check_finite(arg).map_err(|e| if params.check_finite() { e.into_overflow() } else { e })?;
        Ok(x)
    }

    /// `λ = M⁻¹ grad_u` after checking `grad_u` (backend, shape, finiteness).
    fn lambda_cuda<T: CudaReal>(&self, backend: &CudaBackend, factor: &DeviceCholesky<T>, grad_u: &DeviceArray<T>, params: &Params) -> Result<DeviceArray<T>> {
        grad_u.expect("grad_u", backend, &self.u_shape())?;
        if params.check_finite() {
            grad_u.check_finite("grad_u")?;
        }
        self.solve_cuda(factor, grad_u.try_clone()?, "lambda", params)
    }

    /// The row sums of the backward (gpu/smnn.cu `smnn_grads`). With `tables` (this layer's)
    /// all four gradients; without, only those of `rhs_equation` and `init_vars` (the kernel
    /// then reads no table).
    fn grads_cuda<T: CudaReal>(&self, backend: &CudaBackend, x: [Option<&DeviceArray<T>>; 5], out: [Option<&mut DeviceArray<T>>; 4], tables: Option<&Tables<T>>) -> Result<()> {
        let p = |a: Option<&DeviceArray<T>>| a.map_or(NULL, |a| a.buf.ptr());
        let coef_steps = out[0].is_some() as i64;
        let [gc, gr, gv, gh] = out.map(|a| a.map_or(NULL, |a| a.buf.ptr_mut()));
        let tables = tables.map_or(TablePtrs { gram1: NULL, gram_pow: NULL, gram_off: NULL, gram_full: NULL, ngram: 0 }, Tables::ptrs);
        debug_assert_eq!(coef_steps == 1, tables.ngram > 0, "all four gradients need the tables");
        let name = format!("smnn_grads_{}", T::SUFFIX);
        let (sh, wt, b) = (self.device_shape(), self.device_weights::<T>(), self.batch as i64);
        let [c, r, h, u, lam] = x.map(p);
        // SAFETY: every array has the layer's shape for its role (checked by the callers);
        // without `coef_steps` the kernel reads neither `r`, `h`, `u` nor writes `gc`, `gh`.
        unsafe { backend.launch(&name, self.batch, &[&c, &r, &h, &u, &lam, &gc, &gr, &gv, &gh, &tables, &sh, &wt, &coef_steps, &b]) }
    }

    /// The forward on the device (as [`forward`](Self::forward)): checks the inputs, assembles
    /// `M` and `Aᵀβ` on the device, factors and solves. One launch per phase (assembly,
    /// right-hand side, factor, solve), one read-back of the per-system status.
    ///
    /// Errors: as [`forward`](Self::forward), plus [`Error::InvalidArgument`] (an input on
    /// another backend) and [`Error::Cuda`].
    pub fn forward_cuda<'a, T: CudaReal>(&self, inputs: DeviceInputs<'a, T>, params: &Params) -> Result<DeviceForward<'a, T>> {
        let backend = inputs.coefficients.backend().clone();
        self.check_lhs_cuda(&backend, inputs.coefficients, inputs.steps, params)?;
        self.check_rhs_cuda(&backend, inputs.rhs_equation, inputs.init_vars, params)?;
        let rhs = self.rhs_cuda(&backend, inputs.coefficients, inputs.rhs_equation, inputs.init_vars)?;
        let tables = Tables::new(&backend, self)?;
        let factor = self.factor_cuda(&backend, inputs.coefficients, inputs.steps, &tables, params)?;
        let u = self.solve_cuda(&factor, rhs, "u", params)?;
        Ok(DeviceForward { layer: *self, inputs, factor, u, tables })
    }

    /// Freezes the left-hand side on the device (as [`freeze`](Self::freeze)): checks and
    /// copies `coefficients` (on the device), assembles and factors `M` once.
    ///
    /// Errors: as [`forward_cuda`](Self::forward_cuda) for `coefficients` and `steps`.
    pub fn freeze_cuda<T: CudaReal>(&self, coefficients: &DeviceArray<T>, steps: &DeviceArray<T>, params: &Params) -> Result<DeviceFrozen<T>> {
        let backend = coefficients.backend().clone();
        self.check_lhs_cuda(&backend, coefficients, steps, params)?;
        let factor = self.factor_cuda(&backend, coefficients, steps, &Tables::new(&backend, self)?, params)?;
        Ok(DeviceFrozen { layer: *self, coefficients: coefficients.try_clone()?, factor })
    }
}

impl<'a, T: CudaReal> DeviceForward<'a, T> {
    /// `u`, `(batch, T, D, O)`.
    pub fn u(&self) -> &DeviceArray<T> {
        &self.u
    }
    /// The factor of `M` (order [`Smnn::n`], bandwidth [`Smnn::kd`]).
    pub fn factor(&self) -> &DeviceCholesky<T> {
        &self.factor
    }
    /// The layer.
    pub fn layer(&self) -> &Smnn {
        &self.layer
    }

    /// The backward for `grad_u` = ∂ℓ/∂u `(batch, T, D, O)` (as
    /// [`Forward::backward`](crate::smnn::Forward::backward)): one solve with the forward's
    /// factor and one launch of the row sums.
    ///
    /// Errors: [`Error::Shape`], [`Error::NonFinite`] (`grad_u` if `params.check_finite()`, or
    /// an overflowing `λ`), [`Error::InvalidArgument`], [`Error::Cuda`].
    pub fn backward(&self, grad_u: &DeviceArray<T>, params: &Params) -> Result<DeviceGrads<T>> {
        let l = &self.layer;
        let backend = self.u.backend().clone();
        let lam = l.lambda_cuda(&backend, &self.factor, grad_u, params)?;
        let x = self.inputs;
        let mut g = DeviceGrads {
            coefficients: DeviceArray::zeros(&backend, &l.coefficients_shape())?,
            rhs_equation: DeviceArray::zeros(&backend, &l.rhs_equation_shape())?,
            init_vars: DeviceArray::zeros(&backend, &l.init_vars_shape())?,
            steps: DeviceArray::zeros(&backend, &l.steps_shape())?,
        };
        let inputs = [Some(x.coefficients), Some(x.rhs_equation), Some(x.steps), Some(&self.u), Some(&lam)];
        l.grads_cuda(&backend, inputs, [Some(&mut g.coefficients), Some(&mut g.rhs_equation), Some(&mut g.init_vars), Some(&mut g.steps)], Some(&self.tables))?;
        if params.check_finite() {
            for (arg, a) in [("grad_coefficients", &g.coefficients), ("grad_rhs_equation", &g.rhs_equation), ("grad_init_vars", &g.init_vars), ("grad_steps", &g.steps)] {
                a.check_finite(arg).map_err(Error::into_overflow)?;
            }
        }
        Ok(g)
    }
}

impl<T: CudaReal> DeviceFrozen<T> {
    /// The layer.
    pub fn layer(&self) -> &Smnn {
        &self.layer
    }
    /// The factor of `M`.
    pub fn factor(&self) -> &DeviceCholesky<T> {
        &self.factor
    }

    /// `u = M⁻¹ Aᵀβ` `(batch, T, D, O)` for new `rhs_equation` and `init_vars` (as
    /// [`Frozen::forward`](crate::smnn::Frozen::forward)): one assembly of `Aᵀβ`, one solve.
    ///
    /// Errors: [`Error::Shape`], [`Error::NonFinite`], [`Error::InvalidArgument`], [`Error::Cuda`].
    pub fn forward(&self, rhs_equation: &DeviceArray<T>, init_vars: &DeviceArray<T>, params: &Params) -> Result<DeviceArray<T>> {
        let l = &self.layer;
        let backend = self.coefficients.backend();
        l.check_rhs_cuda(backend, rhs_equation, init_vars, params)?;
        let rhs = l.rhs_cuda(backend, &self.coefficients, rhs_equation, init_vars)?;
        l.solve_cuda(&self.factor, rhs, "u", params)
    }

    /// ∂ℓ/∂rhs_equation and ∂ℓ/∂init_vars for `grad_u` (as
    /// [`Frozen::backward`](crate::smnn::Frozen::backward)): one solve, one launch.
    ///
    /// Errors: [`Error::Shape`], [`Error::NonFinite`], [`Error::InvalidArgument`], [`Error::Cuda`].
    pub fn backward(&self, grad_u: &DeviceArray<T>, params: &Params) -> Result<DeviceFrozenGrads<T>> {
        let l = &self.layer;
        let backend = self.coefficients.backend().clone();
        let lam = l.lambda_cuda(&backend, &self.factor, grad_u, params)?;
        let mut g = DeviceFrozenGrads {
            rhs_equation: DeviceArray::zeros(&backend, &l.rhs_equation_shape())?,
            init_vars: DeviceArray::zeros(&backend, &l.init_vars_shape())?,
        };
        l.grads_cuda(&backend, [Some(&self.coefficients), None, None, None, Some(&lam)], [None, Some(&mut g.rhs_equation), Some(&mut g.init_vars), None], None)?;
        if params.check_finite() {
            g.rhs_equation.check_finite("grad_rhs_equation").map_err(Error::into_overflow)?;
            g.init_vars.check_finite("grad_init_vars").map_err(Error::into_overflow)?;
        }
        Ok(g)
    }
}
