//! The layer's options and the shape of its inputs, validated once; and the checks of the
//! arrays of each call against that shape.

use crate::error::{Error, Result, fmt_shape, unravel};
use crate::llt::Cholesky;
use crate::params::Params;
use crate::scalar::{Real, first_non_finite_par, fmt_value};

use super::Inputs;

/// Hyper-parameters of the S-MNN layer (the rows: `docs/ARCHITECTURE.md`, "The S-MNN rows").
///
/// Every weight multiplies its rows of the least-squares system (so it enters the normal matrix
/// squared) and must be finite and non-negative.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Number of steps `T`. Needed only when every step axis of the inputs is broadcast (size 1);
    /// otherwise it is inferred, and if given it must agree. Must be ≥ 2. Default `None`.
    pub n_steps: Option<usize>,
    /// Weight `w_eq` of the governing-equation rows. Default 1.
    pub weight_equation: f64,
    /// Weight `w_init` of the initial-value rows. Default 1.
    pub weight_init_var: f64,
    /// Weight `w_s` of the smoothness (Taylor and central) rows. Default 1.
    pub weight_smooth: f64,
    /// Add the central-difference smoothness rows (needs `O ≥ 2`); the Taylor rows then cover
    /// the orders `k < O − 1` only. Default `false`.
    pub central: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { n_steps: None, weight_equation: 1.0, weight_init_var: 1.0, weight_smooth: 1.0, central: false }
    }
}

/// The shapes of the four inputs, as found in the caller's arrays (row-major, batch first).
///
/// | input | shape |
/// |---|---|
/// | `coefficients` | `(batch, T or 1, E, D, O)` |
/// | `rhs_equation` | `(batch, T or 1, E)` |
/// | `init_vars` | `(batch, S, D, I)`, `S ≤ T`, `I ≤ O` |
/// | `steps` | `(batch, T − 1 or 1)` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShapes<'a> {
    /// Shape of `coefficients`.
    pub coefficients: &'a [usize],
    /// Shape of `rhs_equation`.
    pub rhs_equation: &'a [usize],
    /// Shape of `init_vars`.
    pub init_vars: &'a [usize],
    /// Shape of `steps`.
    pub steps: &'a [usize],
}

/// An S-MNN layer for one input shape: the validated [`Options`] and dimensions.
///
/// Built once by [`Smnn::new`] (which checks every shape rule of the layer); afterwards
/// [`forward`](Self::forward), [`backward`](Self::backward) and [`freeze`](Self::freeze) only
/// check that the arrays they get have the lengths this shape implies. It holds no buffers:
/// `Copy`, and cheap to keep next to a framework's op.
///
/// Per system the unknowns `u[t, d, o]` (`t < T`, `d < D`, `o < O`) are numbered
/// `(t·D + d)·O + o`: `n = T·b` unknowns in blocks of `b = D·O`. The normal matrix is stored as a
/// scalar band of lower bandwidth [`kd`](Self::kd).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Smnn {
    pub(crate) opts: Options,
    pub(crate) batch: usize,
    /// T
    pub(crate) t: usize,
    /// E
    pub(crate) e: usize,
    /// D
    pub(crate) d: usize,
    /// O
    pub(crate) o: usize,
    /// S
    pub(crate) s: usize,
    /// I
    pub(crate) i: usize,
    /// Length of the step axis of `coefficients` (T or 1).
    pub(crate) ct: usize,
    /// Length of the step axis of `rhs_equation` (T or 1).
    pub(crate) rt: usize,
    /// Length of the step axis of `steps` (T − 1 or 1).
    pub(crate) ht: usize,
    pub(crate) kd: usize,
}

fn check_weight(arg: &'static str, w: f64) -> Result<()> {
    if !(w.is_finite() && w >= 0.0) {
        return Err(Error::InvalidArgument { arg, reason: format!("must be finite and ≥ 0, got {w}") });
    }
    Ok(())
}

fn rank(arg: &'static str, shape: &[usize], names: &str, r: usize) -> Result<()> {
    if shape.len() != r {
        return Err(Error::shape(arg, format!("{r} axes {names}"), format!("{} axes {}", shape.len(), fmt_shape(shape))));
    }
    Ok(())
}

fn overflow(what: &str) -> Error {
    Error::InvalidArgument { arg: "shape", reason: format!("{what} overflows usize") }
}

impl Smnn {
    /// Validates `options` and the input `shapes` (see [`InputShapes`]) and builds the layer.
    ///
    /// `T` is `options.n_steps` if given, otherwise the length of the first step axis that is not
    /// broadcast (`coefficients` axis 1, `rhs_equation` axis 1, `steps` axis 1 plus one).
    ///
    /// Errors:
    /// - [`Error::Shape`] naming the input, with the expected shape (`T` and the other sizes
    ///   filled in) and the one got: wrong number of axes, `batch` not the same in every input or
    ///   zero, `D` or `O` zero, `E` or `D` disagreeing between inputs, a step axis that is neither
    ///   the full length nor 1, `S > T` or `I > O` in `init_vars`;
    /// - [`Error::InvalidArgument`]: a weight negative or not finite; `n_steps` missing while
    ///   every step axis has size 1, or `T < 2`; `central` with `O < 2`; sizes overflowing `usize`.
    pub fn new(options: Options, shapes: InputShapes<'_>) -> Result<Self> {
        check_weight("weight_equation", options.weight_equation)?;
        check_weight("weight_init_var", options.weight_init_var)?;
        check_weight("weight_smooth", options.weight_smooth)?;
        let InputShapes { coefficients: cs, rhs_equation: rs, init_vars: vs, steps: hs } = shapes;
        rank("coefficients", cs, "(batch, T, E, D, O)", 5)?;
        rank("rhs_equation", rs, "(batch, T, E)", 3)?;
        rank("init_vars", vs, "(batch, S, D, I)", 4)?;
        rank("steps", hs, "(batch, T − 1)", 2)?;
        let (batch, e, d, o) = (cs[0], cs[2], cs[3], cs[4]);
        if batch == 0 || d == 0 || o == 0 {
            return Err(Error::shape("coefficients", "(batch ≥ 1, T, E, D ≥ 1, O ≥ 1)", fmt_shape(cs)));
        }
        // The number of steps.
        let t = match options.n_steps {
            Some(t) => t,
            None => {
                if cs[1] != 1 {
                    cs[1]
                } else if rs[1] != 1 {
                    rs[1]
                } else if hs[1] != 1 {
                    hs[1].checked_add(1).ok_or_else(|| overflow("T"))?
                } else {
                    return Err(Error::InvalidArgument {
                        arg: "n_steps",
                        reason: "every step axis of the inputs has size 1 (broadcast): give the number of steps T"
                            .into(),
                    });
                }
            }
        };
        if t < 2 {
            return Err(Error::InvalidArgument { arg: "n_steps", reason: format!("T must be ≥ 2, got T = {t}") });
        }
        if options.central && o < 2 {
            return Err(Error::InvalidArgument {
                arg: "central",
                reason: format!("central smoothness needs O ≥ 2 orders, got O = {o}"),
            });
        }
        let step_axis = |len: usize, full: usize| len == full || len == 1;
        if !step_axis(cs[1], t) {
            return Err(Error::shape(
                "coefficients",
                format!("(batch={batch}, T={t} or 1, E={e}, D={d}, O={o})"),
                fmt_shape(cs),
            ));
        }
        if rs[0] != batch || !step_axis(rs[1], t) || rs[2] != e {
            return Err(Error::shape("rhs_equation", format!("(batch={batch}, T={t} or 1, E={e})"), fmt_shape(rs)));
        }
        if hs[0] != batch || !step_axis(hs[1], t - 1) {
            return Err(Error::shape("steps", format!("(batch={batch}, T−1={} or 1)", t - 1), fmt_shape(hs)));
        }
        let (s, i) = (vs[1], vs[3]);
        if vs[0] != batch || s > t || vs[2] != d || i > o {
            return Err(Error::shape(
                "init_vars",
                format!("(batch={batch}, S ≤ T={t}, D={d}, I ≤ O={o})"),
                fmt_shape(vs),
            ));
        }
        let b = d.checked_mul(o).ok_or_else(|| overflow("D·O"))?;
        let kd = if options.central { b.checked_mul(2) } else { b.checked_add(o - 1) }.ok_or_else(|| overflow("kd"))?;
        // Every array length (and the band) must be representable.
        let n = t.checked_mul(b).ok_or_else(|| overflow("T·D·O"))?;
        let lens = [
            batch.checked_mul(cs[1]).and_then(|x| x.checked_mul(e)).and_then(|x| x.checked_mul(b)),
            batch.checked_mul(rs[1]).and_then(|x| x.checked_mul(e)),
            batch.checked_mul(s).and_then(|x| x.checked_mul(d)).and_then(|x| x.checked_mul(i)),
            batch.checked_mul(n).and_then(|x| x.checked_mul(kd.checked_add(1)?)),
        ];
        if lens.iter().any(Option::is_none) {
            return Err(overflow("an array size"));
        }
        Ok(Self { opts: options, batch, t, e, d, o, s, i, ct: cs[1], rt: rs[1], ht: hs[1], kd })
    }

    /// The options the layer was built with (`n_steps` as given, not as inferred).
    pub fn options(&self) -> &Options {
        &self.opts
    }
    /// Number of independent systems.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of steps `T`.
    pub fn n_steps(&self) -> usize {
        self.t
    }
    /// Number of governing equations per step `E`.
    pub fn n_equations(&self) -> usize {
        self.e
    }
    /// Number of state variables `D`.
    pub fn n_dims(&self) -> usize {
        self.d
    }
    /// Number of orders (the value and its derivatives) per variable `O`.
    pub fn n_orders(&self) -> usize {
        self.o
    }
    /// Number of steps with initial values `S`.
    pub fn n_init_steps(&self) -> usize {
        self.s
    }
    /// Number of orders with initial values `I`.
    pub fn n_init_orders(&self) -> usize {
        self.i
    }
    /// Block size `b = D·O` (unknowns per step).
    pub fn block(&self) -> usize {
        self.d * self.o
    }
    /// Order `n = T·D·O` of each system's normal matrix.
    pub fn n(&self) -> usize {
        self.t * self.block()
    }
    /// Lower bandwidth of the normal matrix as stored: `b + O − 1` without `central` (the
    /// Taylor rows couple step `t + 1` to step `t` only within one variable, so this is the
    /// exact bandwidth, at most the block-tridiagonal `2b − 1`), `2b` with it (at most `3b − 1`).
    pub fn kd(&self) -> usize {
        self.kd
    }
    /// Taylor orders per variable and step: `O − 1` with `central`, else `O`.
    pub(crate) fn k_taylor(&self) -> usize {
        if self.opts.central { self.o - 1 } else { self.o }
    }

    /// `(batch, T or 1, E, D, O)`, as given.
    pub fn coefficients_shape(&self) -> [usize; 5] {
        [self.batch, self.ct, self.e, self.d, self.o]
    }
    /// `(batch, T or 1, E)`, as given.
    pub fn rhs_equation_shape(&self) -> [usize; 3] {
        [self.batch, self.rt, self.e]
    }
    /// `(batch, S, D, I)`.
    pub fn init_vars_shape(&self) -> [usize; 4] {
        [self.batch, self.s, self.d, self.i]
    }
    /// `(batch, T − 1 or 1)`, as given.
    pub fn steps_shape(&self) -> [usize; 2] {
        [self.batch, self.ht]
    }
    /// `(batch, T, D, O)`: the output `u` and its cotangent.
    pub fn u_shape(&self) -> [usize; 4] {
        [self.batch, self.t, self.d, self.o]
    }

    /// Per-system lengths of (coefficients, rhs_equation, init_vars, steps, u).
    pub(crate) fn system_lens(&self) -> [usize; 5] {
        [self.ct * self.e * self.block(), self.rt * self.e, self.s * self.d * self.i, self.ht, self.n()]
    }
}

/// Validation of the arrays of one call against the layer's shape.
impl Smnn {
    /// Errors with [`Error::Shape`] unless `data` has the length of `shape`, then (if `finite`)
    /// with [`Error::NonFinite`] at its first NaN or infinity.
    pub(super) fn check_array<T: Real>(arg: &'static str, data: &[T], shape: &[usize], params: &Params) -> Result<()> {
        let len: usize = shape.iter().product();
        if data.len() != len {
            return Err(Error::shape(arg, format!("{} = {len} elements", fmt_shape(shape)), format!("{} elements", data.len())));
        }
        if params.check_finite() && let Some(k) = first_non_finite_par(data, params.par()) {
            return Err(Error::NonFinite { arg, index: unravel(k, shape), value: fmt_value(data[k]) });
        }
        Ok(())
    }

    /// Errors if the result `data` (of `shape`) holds a NaN or ±∞: [`Error::Overflow`] if
    /// `params.check_finite()` (the inputs were checked, so the result overflowed),
    /// [`Error::NonFinite`] otherwise (a non-finite input may have caused it).
    pub(super) fn check_result<T: Real>(arg: &'static str, data: &[T], shape: &[usize], params: &Params) -> Result<()> {
        if let Some(k) = first_non_finite_par(data, params.par()) {
            let e = Error::NonFinite { arg, index: unravel(k, shape), value: fmt_value(data[k]) };
            return Err(if params.check_finite() { e.into_overflow() } else { e });
        }
        Ok(())
    }

    /// Errors with [`Error::InvalidArgument`] naming the weight if a weight, which enters the
    /// normal matrix squared, has a square that is not finite in `T` (e.g. 1e20 in f32).
    pub(crate) fn check_weights<T: Real>(&self) -> Result<()> {
        let o = &self.opts;
        for (arg, w) in [("weight_equation", o.weight_equation), ("weight_init_var", o.weight_init_var), ("weight_smooth", o.weight_smooth)] {
            if !T::from_f64(w * w).is_finite() {
                return Err(Error::InvalidArgument {
                    arg,
                    reason: format!(
                        "{w:e} enters the normal matrix squared ({:e}), which overflows {} (largest finite {:e})",
                        w * w,
                        T::NAME,
                        T::max_value().as_f64()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks the weights for `T` (see [`check_weights`](Self::check_weights)), `coefficients`
    /// and `steps` (lengths, finiteness, positive steps).
    pub(super) fn check_lhs<T: Real>(&self, coefficients: &[T], steps: &[T], params: &Params) -> Result<()> {
        self.check_weights::<T>()?;
        Self::check_array("coefficients", coefficients, &self.coefficients_shape(), params)?;
        Self::check_array("steps", steps, &self.steps_shape(), params)?;
        if let Some(k) = steps.iter().position(|&h| h.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater)) {
            let shape = self.steps_shape();
            return Err(Error::InvalidArgument {
                arg: "steps",
                reason: format!(
                    "step sizes must be positive, got {} at index {}",
                    fmt_value(steps[k]),
                    fmt_shape(&unravel(k, &shape))
                ),
            });
        }
        Ok(())
    }

    /// Checks `rhs_equation` and `init_vars`.
    pub(super) fn check_rhs<T: Real>(&self, rhs_equation: &[T], init_vars: &[T], params: &Params) -> Result<()> {
        Self::check_array("rhs_equation", rhs_equation, &self.rhs_equation_shape(), params)?;
        Self::check_array("init_vars", init_vars, &self.init_vars_shape(), params)
    }

    pub(super) fn check_inputs<T: Real>(&self, x: &Inputs<'_, T>, params: &Params) -> Result<()> {
        self.check_lhs(x.coefficients, x.steps, params)?;
        self.check_rhs(x.rhs_equation, x.init_vars, params)
    }

    /// Errors with [`Error::Shape`] unless `factor` fits this layer.
    pub(super) fn check_factor<T: Real>(&self, factor: &Cholesky<T>) -> Result<()> {
        if factor.batch() != self.batch || factor.n() != self.n() || factor.kd() != self.kd {
            return Err(Error::shape(
                "factor",
                format!("batch {}, n {}, kd {}", self.batch, self.n(), self.kd),
                format!("batch {}, n {}, kd {}", factor.batch(), factor.n(), factor.kd()),
            ));
        }
        Ok(())
    }
}
