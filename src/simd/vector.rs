//! Native SIMD vectors for the fast kernels: one [`Vector`] is `W` lanes of one element type
//! in one machine register (a `__m512d` holds 8 f64 lanes), with the handful of operations a
//! Cholesky factor and its substitutions need.
//!
//! The fast kernels are written once, generic over a [`Vector`], and instantiated per
//! instruction set through a [`VectorSet`] ([`Avx512`], [`Avx2`], [`Fused`], [`Plain`]): a run
//! of [`dispatch`] enters a function compiled with that set's `#[target_feature]`s (after the
//! CPU was found to have them) and calls [`VecOp::run`] with the set, so every vector
//! operation inlines into one instruction. Register-typed values (not `[T; W]` arrays) keep a
//! register tile's accumulators in registers: with arrays of lanes LLVM spilled them to the
//! stack, or re-vectorised a loop over rows with gathers and scatters (measured: a kd = 17
//! pack factored 1.2–2× slower).
//!
//! Every operation is IEEE-exact per lane: `fnma` is one fused multiply–add (one rounding)
//! wherever the set has FMA ([`Avx512`], [`Avx2`], [`Fused`]) and a multiply then a subtract
//! in [`Plain`]; `sqrt` and `recip` (`1/x`) are correctly rounded everywhere. So a kernel's
//! results depend on the set only through fusing, never on the width `W`: a lane computes the
//! same bits in a `__m512d`, a `__m256d` or alone.

use crate::scalar::Real;

/// `W` lanes of `T` in one register, and the kernels' operations on them, lane by lane.
pub trait Vector<T>: Copy {
    /// Lanes per vector.
    const W: usize;
    /// The vector registers of the instruction set (32 with AVX-512, 16 with AVX2 and the
    /// baseline x86-64): how many accumulators a register tile may hold.
    const REGS: usize;
    /// The first `W` elements of `src` (which must hold at least `W`; the kernels pass the
    /// lanes of a pack row, whose length the compiler knows).
    fn load(src: &[T]) -> Self;
    /// Writes the lanes to the first `W` elements of `dst`.
    fn store(self, dst: &mut [T]);
    /// The `W` elements at `src`.
    ///
    /// # Safety
    /// `src` must be valid for reads of `W` elements of `T` (any alignment).
    unsafe fn load_ptr(src: *const T) -> Self;
    /// Writes the lanes to the `W` elements at `dst`.
    ///
    /// # Safety
    /// `dst` must be valid for writes of `W` elements of `T` (any alignment).
    unsafe fn store_ptr(self, dst: *mut T);
    /// Whether every lane is a valid Cholesky pivot: positive and finite (NaN is not).
    fn pivots_ok(self) -> bool;
    /// The first `count ≤ W` elements at `src`, the other lanes zero (nothing past them is
    /// read).
    ///
    /// # Safety
    /// `src` must be valid for reads of `count` elements of `T` (any alignment).
    unsafe fn load_first(src: *const T, count: usize) -> Self;
    /// `self − a·b` in the first `count ≤ W` lanes (as [`fnma`](Self::fnma)), `self` in the
    /// others.
    fn fnma_first(self, a: Self, b: Self, count: usize) -> Self;
    /// Writes the first `count ≤ W` lanes to `dst` (nothing past them is written).
    ///
    /// # Safety
    /// `dst` must be valid for writes of `count` elements of `T` (any alignment).
    unsafe fn store_first(self, dst: *mut T, count: usize);
    /// `self − a·b`: one rounding where the set fuses, two where it does not.
    fn fnma(self, a: Self, b: Self) -> Self;
    /// `self · b`.
    fn mul(self, b: Self) -> Self;
    /// `self + b`.
    fn add(self, b: Self) -> Self;
    /// `self − b`.
    fn sub(self, b: Self) -> Self;
    /// Every lane `x`.
    fn splat(x: T) -> Self;
    /// The square root of each lane.
    fn sqrt(self) -> Self;
    /// `1 / self`, lane by lane.
    fn recip(self) -> Self;
}

/// The vectors of one instruction set, for each element type, and its scalar (`W = 1`) type
/// for rows narrower than a vector (a lone system): the same fusing as the vectors.
pub trait VectorSet {
    /// f64 lanes.
    type F64: Vector<f64>;
    /// f32 lanes.
    type F32: Vector<f32>;
    /// One f64 lane, fused like [`Self::F64`].
    type S64: Vector<f64>;
    /// One f32 lane, fused like [`Self::F32`].
    type S32: Vector<f32>;
}

/// An operation generic over the [`VectorSet`] it runs with: [`dispatch`] calls `run` inside
/// the set's `#[target_feature]` context. Everything `run` reaches in its hot loops must be
/// `#[inline(always)]`.
pub(crate) trait VecOp {
    /// What the operation returns.
    type Output;
    /// Runs the operation with the vectors of `S`.
    fn run<S: VectorSet>(self) -> Self::Output;
}

/// The vector and scalar types of `T` within a [`VectorSet`] (`Real` is sealed to f32/f64).
pub trait SetElem: Copy {
    /// `S`'s vector of `Self`.
    type Vec<S: VectorSet>: Vector<Self>;
    /// `S`'s one-lane type of `Self`.
    type One<S: VectorSet>: Vector<Self>;
}

impl SetElem for f64 {
    type Vec<S: VectorSet> = S::F64;
    type One<S: VectorSet> = S::S64;
}

impl SetElem for f32 {
    type Vec<S: VectorSet> = S::F32;
    type One<S: VectorSet> = S::S32;
}

/// One lane of `T`, fused (`FUSED`) or not: the scalar vector of every set, and the whole
/// vector of [`Fused`] and [`Plain`].
#[derive(Clone, Copy)]
pub(crate) struct One<T, const FUSED: bool>(T);

impl<T: Real, const FUSED: bool> Vector<T> for One<T, FUSED> {
    const W: usize = 1;
    const REGS: usize = 16;
    #[inline(always)]
    fn load(src: &[T]) -> Self {
        One(src[0])
    }
    #[inline(always)]
    fn store(self, dst: &mut [T]) {
        dst[0] = self.0;
    }
    #[inline(always)]
    unsafe fn load_ptr(src: *const T) -> Self {
        // SAFETY: the caller guarantees `src` is valid for one read.
        One(unsafe { src.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store_ptr(self, dst: *mut T) {
        // SAFETY: the caller guarantees `dst` is valid for one write.
        unsafe { dst.write_unaligned(self.0) }
    }
    #[inline(always)]
    fn pivots_ok(self) -> bool {
        self.0 > T::zero() && self.0 < T::infinity()
    }
    #[inline(always)]
    unsafe fn load_first(src: *const T, count: usize) -> Self {
        // SAFETY: the caller guarantees `src` valid for `count` reads (one when `count ≥ 1`).
        One(if count >= 1 { unsafe { src.read_unaligned() } } else { T::zero() })
    }
    #[inline(always)]
    fn fnma_first(self, a: Self, b: Self, count: usize) -> Self {
        if count >= 1 { self.fnma(a, b) } else { self }
    }
    #[inline(always)]
    unsafe fn store_first(self, dst: *mut T, count: usize) {
        if count >= 1 {
            // SAFETY: the caller guarantees `dst` valid for `count ≥ 1` writes.
            unsafe { dst.write_unaligned(self.0) }
        }
    }
    #[inline(always)]
    fn fnma(self, a: Self, b: Self) -> Self {
        // Inside a `#[target_feature(enable = "fma")]` function `mul_add` is one instruction;
        // `Plain` (no FMA on the baseline target) never fuses, so never calls libm's `fma`.
        One(if FUSED { (-a.0).mul_add(b.0, self.0) } else { self.0 - a.0 * b.0 })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        One(self.0 * b.0)
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        One(self.0 + b.0)
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        One(self.0 - b.0)
    }
    #[inline(always)]
    fn splat(x: T) -> Self {
        One(x)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        One(self.0.sqrt())
    }
    #[inline(always)]
    fn recip(self) -> Self {
        One(T::one() / self.0)
    }
}

/// Lane-by-lane operations on whole pack rows (`[T; L]`, `L` a multiple of `V::W`) through the
/// vector `V`, **unfused** (a multiply, then an add: the same bits in any width, as the
/// per-system code computes them). Written as vector operations rather than `for l in 0..L`
/// loops: over a loop of rows, LLVM vectorised such loops across the rows, with a gather or a
/// scatter per lane (measured: the S-MNN assembly and gradient sums, a third of the layer's
/// time).
pub(crate) mod rows {
    use super::Vector;

    /// `a + b·c`.
    #[inline(always)]
    pub(crate) fn add_mul<T: Copy, V: Vector<T>, const L: usize>(a: &[T; L], b: &[T; L], c: &[T; L]) -> [T; L] {
        let mut out = *a;
        for m in 0..L / V::W {
            let i = m * V::W;
            V::load(&a[i..]).add(V::load(&b[i..]).mul(V::load(&c[i..]))).store(&mut out[i..]);
        }
        out
    }

    /// `a + x` with `x` the same in every lane.
    #[inline(always)]
    pub(crate) fn add_splat<T: Copy, V: Vector<T>, const L: usize>(a: &[T; L], x: T) -> [T; L] {
        let mut out = *a;
        for m in 0..L / V::W {
            let i = m * V::W;
            V::load(&a[i..]).add(V::splat(x)).store(&mut out[i..]);
        }
        out
    }

    /// `a + b`.
    #[inline(always)]
    pub(crate) fn add<T: Copy, V: Vector<T>, const L: usize>(a: &[T; L], b: &[T; L]) -> [T; L] {
        let mut out = *a;
        for m in 0..L / V::W {
            let i = m * V::W;
            V::load(&a[i..]).add(V::load(&b[i..])).store(&mut out[i..]);
        }
        out
    }

    /// `x·b` with `x` the same in every lane.
    #[inline(always)]
    pub(crate) fn scale<T: Copy, V: Vector<T>, const L: usize>(x: T, b: &[T; L]) -> [T; L] {
        let mut out = *b;
        for m in 0..L / V::W {
            let i = m * V::W;
            V::splat(x).mul(V::load(&b[i..])).store(&mut out[i..]);
        }
        out
    }

    /// `Σ_k a[k]·b[k]` per lane, left to right from zero.
    #[inline(always)]
    pub(crate) fn dot<T: Copy, V: Vector<T>, const L: usize>(zero: T, a: &[[T; L]], b: &[[T; L]]) -> [T; L] {
        let mut out = [zero; L];
        for m in 0..L / V::W {
            let i = m * V::W;
            let mut s = V::splat(zero);
            for (x, y) in a.iter().zip(b) {
                s = s.add(V::load(&x[i..]).mul(V::load(&y[i..])));
            }
            s.store(&mut out[i..]);
        }
        out
    }
}

/// Scalar lanes with FMA (aarch64 NEON: the compiler vectorises the lane loops, `fmla`).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) struct Fused;

impl VectorSet for Fused {
    type F64 = One<f64, true>;
    type F32 = One<f32, true>;
    type S64 = One<f64, true>;
    type S32 = One<f32, true>;
}

/// Scalar lanes without FMA: the baseline target (`Kernel::Portable`).
pub(crate) struct Plain;

impl VectorSet for Plain {
    type F64 = One<f64, false>;
    type F32 = One<f32, false>;
    type S64 = One<f64, false>;
    type S32 = One<f32, false>;
}

#[cfg(target_arch = "x86_64")]
#[allow(unused_imports)]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{One, Vector, VectorSet};

    /// AVX-512 (F, VL, DQ, BW) with FMA: 8 f64 / 16 f32 lanes.
    pub(crate) struct Avx512;

    impl VectorSet for Avx512 {
        type F64 = Zmm64;
        type F32 = Zmm32;
        type S64 = One<f64, true>;
        type S32 = One<f32, true>;
    }

    /// AVX2 with FMA: 4 f64 / 8 f32 lanes.
    pub(crate) struct Avx2;

    impl VectorSet for Avx2 {
        type F64 = Ymm64;
        type F32 = Ymm32;
        type S64 = One<f64, true>;
        type S32 = One<f32, true>;
    }

    /// 8 f64 lanes in a `zmm` register.
    #[derive(Clone, Copy)]
    pub(crate) struct Zmm64(__m512d);
    /// 16 f32 lanes in a `zmm` register.
    #[derive(Clone, Copy)]
    pub(crate) struct Zmm32(__m512);
    /// 4 f64 lanes in a `ymm` register.
    #[derive(Clone, Copy)]
    pub(crate) struct Ymm64(__m256d);
    /// 8 f32 lanes in a `ymm` register.
    #[derive(Clone, Copy)]
    pub(crate) struct Ymm32(__m256);

    // SAFETY (every `unsafe` block below): these types are only named by `Avx512` and `Avx2`,
    // whose kernels run only through `simd::vector::dispatch` inside a function compiled with
    // that set's target features and entered only after pulp detected them on this CPU
    // (`V4::try_new` / `V3::try_new`), so every intrinsic is supported. Loads and stores go
    // through `src[..W]` / `dst[..W]`, bounds-checked slices of `W` elements, and are unaligned
    // (`loadu` / `storeu`).
    macro_rules! vector {
        ($ty:ident, $t:ty, $w:literal, $regs:expr, $load:ident, $store:ident, $fnma:ident, $mul:ident, $sqrt:ident, $div:ident, $set1:ident, $ok:expr, $add:ident, $sub:ident, $load_first:ident, $fnma_first:ident, $store_first:ident) => {
            impl Vector<$t> for $ty {
                const W: usize = $w;
                const REGS: usize = $regs;
                #[inline(always)]
                fn load(src: &[$t]) -> Self {
                    let src = &src[..$w];
                    // SAFETY: see above (`src` holds `W` elements).
                    $ty(unsafe { $load(src.as_ptr()) })
                }
                #[inline(always)]
                fn store(self, dst: &mut [$t]) {
                    let dst = &mut dst[..$w];
                    // SAFETY: see above (`dst` holds `W` elements).
                    unsafe { $store(dst.as_mut_ptr(), self.0) }
                }
                #[inline(always)]
                unsafe fn load_ptr(src: *const $t) -> Self {
                    // SAFETY: see above; the caller guarantees `src` valid for `W` reads.
                    $ty(unsafe { $load(src) })
                }
                #[inline(always)]
                unsafe fn store_ptr(self, dst: *mut $t) {
                    // SAFETY: see above; the caller guarantees `dst` valid for `W` writes.
                    unsafe { $store(dst, self.0) }
                }
                #[inline(always)]
                fn pivots_ok(self) -> bool {
                    // SAFETY: see above.
                    unsafe { $ok(self.0) }
                }
                #[inline(always)]
                unsafe fn load_first(src: *const $t, count: usize) -> Self {
                    // SAFETY: see above; the masked load reads only the first `count` lanes,
                    // which the caller guarantees valid.
                    $ty(unsafe { $load_first(src, count) })
                }
                #[inline(always)]
                fn fnma_first(self, a: Self, b: Self, count: usize) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $fnma_first(a.0, b.0, self.0, count) })
                }
                #[inline(always)]
                unsafe fn store_first(self, dst: *mut $t, count: usize) {
                    // SAFETY: see above; the masked store writes only the first `count` lanes,
                    // which the caller guarantees valid.
                    unsafe { $store_first(dst, self.0, count) }
                }
                #[inline(always)]
                fn fnma(self, a: Self, b: Self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $fnma(a.0, b.0, self.0) })
                }
                #[inline(always)]
                fn mul(self, b: Self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $mul(self.0, b.0) })
                }
                #[inline(always)]
                fn add(self, b: Self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $add(self.0, b.0) })
                }
                #[inline(always)]
                fn sub(self, b: Self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $sub(self.0, b.0) })
                }
                #[inline(always)]
                fn splat(x: $t) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $set1(x) })
                }
                #[inline(always)]
                fn sqrt(self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $sqrt(self.0) })
                }
                #[inline(always)]
                fn recip(self) -> Self {
                    // SAFETY: see above.
                    $ty(unsafe { $div($set1(1.0), self.0) })
                }
            }
        };
    }
    // `0 < x < ∞` in every lane, with ordered comparisons (false for NaN).
    #[inline(always)]
    unsafe fn ok_zmm64(v: __m512d) -> bool {
        // SAFETY: AVX-512F (see above).
        unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(v, _mm512_setzero_pd()) & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(v, _mm512_set1_pd(f64::INFINITY)) == 0xff }
    }
    #[inline(always)]
    unsafe fn ok_zmm32(v: __m512) -> bool {
        // SAFETY: AVX-512F (see above).
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps()) & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_set1_ps(f32::INFINITY)) == 0xffff }
    }
    #[inline(always)]
    unsafe fn ok_ymm64(v: __m256d) -> bool {
        // SAFETY: AVX (see above).
        unsafe {
            let ok = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(v, _mm256_setzero_pd()), _mm256_cmp_pd::<_CMP_LT_OQ>(v, _mm256_set1_pd(f64::INFINITY)));
            _mm256_movemask_pd(ok) == 0xf
        }
    }
    #[inline(always)]
    unsafe fn ok_ymm32(v: __m256) -> bool {
        // SAFETY: AVX (see above).
        unsafe {
            let ok = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_setzero_ps()), _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_set1_ps(f32::INFINITY)));
            _mm256_movemask_ps(ok) == 0xff
        }
    }

    // Masked loads and multiply–adds on the first `count` lanes (`count ≤ W`).
    #[inline(always)]
    unsafe fn first_zmm64(p: *const f64, count: usize) -> __m512d {
        // SAFETY: AVX-512F (see above); lanes past `count` are masked off, never read.
        unsafe { _mm512_maskz_loadu_pd(((1u32 << count) - 1) as __mmask8, p) }
    }
    #[inline(always)]
    unsafe fn fnma_first_zmm64(a: __m512d, b: __m512d, c: __m512d, count: usize) -> __m512d {
        // SAFETY: AVX-512F (see above).
        unsafe { _mm512_mask3_fnmadd_pd(a, b, c, ((1u32 << count) - 1) as __mmask8) }
    }
    #[inline(always)]
    unsafe fn first_zmm32(p: *const f32, count: usize) -> __m512 {
        // SAFETY: AVX-512F (see above); lanes past `count` are masked off, never read.
        unsafe { _mm512_maskz_loadu_ps(((1u32 << count) - 1) as __mmask16, p) }
    }
    #[inline(always)]
    unsafe fn fnma_first_zmm32(a: __m512, b: __m512, c: __m512, count: usize) -> __m512 {
        // SAFETY: AVX-512F (see above).
        unsafe { _mm512_mask3_fnmadd_ps(a, b, c, ((1u32 << count) - 1) as __mmask16) }
    }
    #[inline(always)]
    unsafe fn store_first_zmm64(p: *mut f64, v: __m512d, count: usize) {
        // SAFETY: AVX-512F (see above); lanes past `count` are masked off, never written.
        unsafe { _mm512_mask_storeu_pd(p, ((1u32 << count) - 1) as __mmask8, v) }
    }
    #[inline(always)]
    unsafe fn store_first_zmm32(p: *mut f32, v: __m512, count: usize) {
        // SAFETY: AVX-512F (see above); lanes past `count` are masked off, never written.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << count) - 1) as __mmask16, v) }
    }
    #[inline(always)]
    unsafe fn store_first_ymm64(p: *mut f64, v: __m256d, count: usize) {
        // SAFETY: AVX2 (see above); a full vector's `count` is 4, and `maskstore` writes only
        // the lanes whose mask is set.
        unsafe { if count == 4 { _mm256_storeu_pd(p, v) } else { _mm256_maskstore_pd(p, mask64(count), v) } }
    }
    #[inline(always)]
    unsafe fn store_first_ymm32(p: *mut f32, v: __m256, count: usize) {
        // SAFETY: AVX2 (see above); a full vector's `count` is 8, and `maskstore` writes only
        // the lanes whose mask is set.
        unsafe { if count == 8 { _mm256_storeu_ps(p, v) } else { _mm256_maskstore_ps(p, mask32(count), v) } }
    }
    /// All-ones in the first `count` 64-bit lanes of a `ymm`.
    #[inline(always)]
    unsafe fn mask64(count: usize) -> __m256i {
        // SAFETY: AVX2 (see above).
        unsafe { _mm256_cmpgt_epi64(_mm256_set1_epi64x(count as i64), _mm256_setr_epi64x(0, 1, 2, 3)) }
    }
    /// All-ones in the first `count` 32-bit lanes of a `ymm`.
    #[inline(always)]
    unsafe fn mask32(count: usize) -> __m256i {
        // SAFETY: AVX2 (see above).
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }
    #[inline(always)]
    unsafe fn first_ymm64(p: *const f64, count: usize) -> __m256d {
        // SAFETY: AVX2 (see above); a full vector's `count` is 4, and `maskload` reads only the
        // lanes whose mask is set.
        unsafe { if count == 4 { _mm256_loadu_pd(p) } else { _mm256_maskload_pd(p, mask64(count)) } }
    }
    #[inline(always)]
    unsafe fn fnma_first_ymm64(a: __m256d, b: __m256d, c: __m256d, count: usize) -> __m256d {
        // SAFETY: AVX2 and FMA (see above).
        unsafe { if count == 4 { _mm256_fnmadd_pd(a, b, c) } else { _mm256_blendv_pd(c, _mm256_fnmadd_pd(a, b, c), _mm256_castsi256_pd(mask64(count))) } }
    }
    #[inline(always)]
    unsafe fn first_ymm32(p: *const f32, count: usize) -> __m256 {
        // SAFETY: AVX2 (see above); a full vector's `count` is 8, and `maskload` reads only the
        // lanes whose mask is set.
        unsafe { if count == 8 { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, mask32(count)) } }
    }
    #[inline(always)]
    unsafe fn fnma_first_ymm32(a: __m256, b: __m256, c: __m256, count: usize) -> __m256 {
        // SAFETY: AVX2 and FMA (see above).
        unsafe { if count == 8 { _mm256_fnmadd_ps(a, b, c) } else { _mm256_blendv_ps(c, _mm256_fnmadd_ps(a, b, c), _mm256_castsi256_ps(mask32(count))) } }
    }

    vector!(Zmm64, f64, 8, 32, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fnmadd_pd, _mm512_mul_pd, _mm512_sqrt_pd, _mm512_div_pd, _mm512_set1_pd, ok_zmm64, _mm512_add_pd, _mm512_sub_pd, first_zmm64, fnma_first_zmm64, store_first_zmm64);
    vector!(Zmm32, f32, 16, 32, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fnmadd_ps, _mm512_mul_ps, _mm512_sqrt_ps, _mm512_div_ps, _mm512_set1_ps, ok_zmm32, _mm512_add_ps, _mm512_sub_ps, first_zmm32, fnma_first_zmm32, store_first_zmm32);
    vector!(Ymm64, f64, 4, 16, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fnmadd_pd, _mm256_mul_pd, _mm256_sqrt_pd, _mm256_div_pd, _mm256_set1_pd, ok_ymm64, _mm256_add_pd, _mm256_sub_pd, first_ymm64, fnma_first_ymm64, store_first_ymm64);
    vector!(Ymm32, f32, 8, 16, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fnmadd_ps, _mm256_mul_ps, _mm256_sqrt_ps, _mm256_div_ps, _mm256_set1_ps, ok_ymm32, _mm256_add_ps, _mm256_sub_ps, first_ymm32, fnma_first_ymm32, store_first_ymm32);

    /// Runs `op` with the AVX-512 vectors.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F/VL/DQ/BW, AVX2 and FMA (pulp's `V4` detected).
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx512cd,avx2,fma,bmi1,bmi2,lzcnt,popcnt,avx,sse4.2")]
    pub(super) unsafe fn run_avx512<Op: super::VecOp>(op: Op) -> Op::Output {
        op.run::<Avx512>()
    }

    /// Runs `op` with the AVX2 vectors.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA (pulp's `V3` detected).
    #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt,avx,sse4.2")]
    pub(super) unsafe fn run_avx2<Op: super::VecOp>(op: Op) -> Op::Output {
        op.run::<Avx2>()
    }
}

/// Runs `op` with the vectors of `isa` (see [`VecOp`]): [`Avx512`] and [`Avx2`] where the CPU
/// has them (else [`Plain`], as `Isa::of` already promised), [`Fused`] on aarch64 NEON, and
/// [`Plain`] for the portable path.
#[inline(always)]
pub(crate) fn dispatch<Op: VecOp>(isa: super::Isa, op: Op) -> Op::Output {
    use super::Isa;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if pulp::x86::V4::try_new().is_some() => {
            // SAFETY: pulp detected AVX-512 F/VL/DQ/BW/CD with AVX2 and FMA just now (`V4`).
            return unsafe { x86::run_avx512(op) };
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if pulp::x86::V3::try_new().is_some() => {
            // SAFETY: pulp detected AVX2 and FMA just now (`V3`).
            return unsafe { x86::run_avx2(op) };
        }
        // NEON (with its fused multiply–add) is part of the aarch64 baseline.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => return op.run::<Fused>(),
        _ => {}
    }
    op.run::<Plain>()
}
