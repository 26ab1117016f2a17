//! The bodies of the fuzz targets (`fuzz_targets/*.rs` are one-line wrappers), the byte format
//! they decode, and encoders that write seed inputs in that format.
//!
//! This file is also compiled by the main crate's stable test `tests/fuzz_replay.rs` (as a
//! module, through `#[path]`), which replays the saved corpus and crash inputs: it uses
//! nothing but `banded` (feature `cli`) and `std`.
//!
//! Every body panics (a finding) when an invariant of the API breaks:
//! - nothing inside `banded` panics (libFuzzer aborts on any panic, also one caught later);
//! - an `Ok` result has the promised shape and is finite wherever the inputs were finite,
//!   `params.check_finite()` was on and the matrix was accepted; where cheap, it agrees with an
//!   independent fact (the residual of a solve of a diagonally dominant system, the
//!   log-determinant of a diagonal matrix, the equations that define the band of `A⁻¹` from the
//!   factor, the log-determinant's gradient from that band) or with a second path to it (the
//!   fused and the separate paths, the band and the packed layouts, a fresh and a reused
//!   output: bitwise where one kernel computes both);
//! - an `Err` displays a non-empty message that names its argument (or its system or file).
//!
//! Sizes are bounded so that one input stays small: band `batch ≤ 40`, `n ≤ 64`, `kd ≤ 33`,
//! `nrhs ≤ 4`; S-MNN `batch ≤ 20`, `T ≤ 40`, `E ≤ 4`, `D ≤ 3`, `O ≤ 4`.
//!
//! # Byte format
//! A header of fixed-position bytes (past the end of the input: 0), then values. A value is a
//! tag byte whose low 4 bits pick a class ([`Reader::value`]); past the end of the input, values
//! come from a deterministic generator in `(0, 2]`, so a short input still fills a large batch.

use banded::cli::npy::{Npz, parse_npy};
use banded::smnn::{InputShapes, Inputs, Options, Smnn};
use banded::{BandBatch, BatchMatrix, Cholesky, Error, Kernel, PackedBandBatch, PackedBatchMatrix, Par, Params, Real};

// ---------------------------------------------------------------------------------------------
// Reading the bytes.

/// Reads the fuzzer's bytes front to back (see the module documentation).
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    rng: u64,
}

/// The element types, with what the decoder needs beyond [`Real`].
pub trait Fz: Real {
    /// Bytes of a raw value.
    const BYTES: usize;
    /// Tag of the first header byte: 1 for f32, 0 for f64.
    const FLAG: u8;
    /// A value from its little-endian bytes (`BYTES` of them).
    fn from_le(b: &[u8]) -> Self;
    /// The little-endian bytes of `self`.
    fn to_le(self) -> Vec<u8>;
    /// A huge finite magnitude (1e300, 3e38).
    fn huge() -> Self;
    /// The bits, for bitwise comparisons (NaN included).
    fn bits(self) -> u64;
}

impl Fz for f64 {
    const BYTES: usize = 8;
    const FLAG: u8 = 0;
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        f64::from_le_bytes(a)
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn huge() -> Self {
        1e300
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

impl Fz for f32 {
    const BYTES: usize = 4;
    const FLAG: u8 = 1;
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        f32::from_le_bytes(a)
    }
    fn to_le(self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
    fn huge() -> Self {
        3e38
    }
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, rng: 0x9E37_79B9_7F4A_7C15 ^ data.len() as u64 }
    }

    /// Whether every byte has been read.
    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte; 0 past the end.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next byte mapped to `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        usize::from(self.u8()) % (max + 1)
    }

    fn generated(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The next value. Tag classes (low 4 bits; `s` = bit 4 of the tag picks the sign):
    /// 0 raw bits (`T::BYTES` bytes follow), 1 a ratio `i8 / (1 + u8 % 16)` (2 bytes follow),
    /// 2 ±0, 3 ±subnormal, 4 ±huge (1e300, 3e38), 5 ±tiny (the smallest normal), 6 NaN,
    /// 7 ±inf, 8–15 a small number `(tag >> 4) − 4 + (tag & 7)/8`. Past the end: a number in
    /// `(0, 2]`.
    pub fn value<T: Fz>(&mut self) -> T {
        if self.exhausted() {
            return T::from_f64((1 + self.generated() % 64) as f64 / 32.0);
        }
        let tag = self.u8();
        let sign = if tag & 0x10 != 0 { -T::one() } else { T::one() };
        match tag & 0x0f {
            0 => {
                let mut b = vec![0u8; T::BYTES];
                for x in &mut b {
                    *x = self.u8();
                }
                T::from_le(&b)
            }
            1 => {
                let num = self.u8() as i8;
                let den = 1 + self.u8() % 16;
                T::from_f64(f64::from(num) / f64::from(den))
            }
            2 => sign * T::zero(),
            3 => sign * T::min_positive_value() / T::from_f64(1024.0),
            4 => sign * T::huge(),
            5 => sign * T::min_positive_value(),
            6 => T::nan(),
            7 => sign * T::infinity(),
            _ => T::from_f64(f64::from(tag >> 4) - 4.0 + f64::from(tag & 7) / 8.0),
        }
    }

    /// `len` values.
    pub fn values<T: Fz>(&mut self, len: usize) -> Vec<T> {
        (0..len).map(|_| self.value()).collect()
    }

    /// Decodes the parallelism byte: 0 `Seq`, 1–4 `Rayon(0..=3)`, 5 `Rayon(huge)`, else `Seq`.
    pub fn par(&mut self) -> Par {
        match self.u8() {
            k @ 1..=4 => Par::rayon(usize::from(k) - 1),
            5 => Par::rayon(usize::MAX),
            _ => Par::Seq,
        }
    }

    /// Decodes the kernel byte (modulo the six kernels).
    pub fn kernel(&mut self) -> Kernel {
        KERNELS[usize::from(self.u8()) % KERNELS.len()]
    }
}

const KERNELS: [Kernel; 6] = [Kernel::Auto, Kernel::Reference, Kernel::Portable, Kernel::Avx2, Kernel::Avx512, Kernel::Neon];

/// The bytes of `v` as [`Reader::value`] reads it back bitwise (class 0, raw bits).
pub fn encode_value<T: Fz>(v: T) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend(v.to_le());
    out
}

// ---------------------------------------------------------------------------------------------
// Shared checks.

/// Asserts that `e` says what was wrong: a non-empty message naming its argument (one of
/// `args`), its system, or its file.
fn check_err(e: &Error, args: &[&str], what: &str) {
    let msg = e.to_string();
    assert!(!msg.trim().is_empty(), "{what}: empty error message for {e:?}");
    match e {
        Error::Shape { arg, .. } | Error::NonFinite { arg, .. } | Error::InvalidArgument { arg, .. } | Error::Overflow { arg, .. } => {
            assert!(!arg.is_empty() && msg.contains(arg), "{what}: the message `{msg}` does not name `{arg}`");
            assert!(args.contains(arg), "{what}: error names `{arg}`, expected one of {args:?}: {msg}");
        }
        Error::NotPositiveDefinite { system, column, failures } => {
            assert!(!failures.is_empty(), "{what}: NotPositiveDefinite without failures: {msg}");
            assert_eq!((failures[0].system, failures[0].column), (*system, *column), "{what}: first failure");
            assert!(failures.windows(2).all(|w| w[0].system < w[1].system), "{what}: failures not sorted: {msg}");
            assert!(msg.contains(&format!("system {system}")), "{what}: `{msg}` does not name the system");
        }
        _ => {}
    }
}

fn all_finite<T: Real>(x: &[T]) -> bool {
    x.iter().all(|v| v.is_finite())
}

fn same_bits<T: Fz>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.bits() == y.bits() || (x.is_nan() && y.is_nan()))
}

/// The length `len` changed by the perturbation code `code` (`which` is the array it may
/// apply to): `+1` or `−1` (never below 0).
fn perturbed(len: usize, code: u8, plus: u8, minus: u8) -> usize {
    if code == plus {
        len + 1
    } else if code == minus {
        len.saturating_sub(1)
    } else {
        len
    }
}

// ---------------------------------------------------------------------------------------------
// Band target.

/// The header of a band input (bytes 0–9).
#[derive(Clone, Copy, Debug, Default)]
pub struct BandHeader {
    /// Byte 0: bit 0 f32, bit 1 `check_finite` off, bit 2 borrowed views, bit 3 diagonally
    /// dominant mode, bit 4 `from_lower_band` (values in the interchange layout).
    pub flags: u8,
    /// Byte 1: the kernel (index modulo 6: Auto, Reference, Portable, Avx2, Avx512, Neon).
    pub kernel: u8,
    /// Byte 2: parallelism (see [`Reader::par`]).
    pub par: u8,
    /// Byte 3: `batch` (mod 41).
    pub batch: u8,
    /// Byte 4: `n` (mod 65).
    pub n: u8,
    /// Byte 5: `kd` (mod 34).
    pub kd: u8,
    /// Byte 6: `nrhs` (mod 5).
    pub nrhs: u8,
    /// Byte 7: a wrong length: 251/252 `ab` ±1, 253/254 `rhs` ±1, 255 `grad_x` −1; else none.
    pub lengths: u8,
    /// Bytes 8–9: an index probed by the accessors (besides huge ones).
    pub probe: u16,
}

/// Band flag bits.
pub const F32: u8 = 1;
/// `check_finite` off.
pub const UNCHECKED: u8 = 2;
/// Borrowed views instead of owned storage.
pub const VIEWS: u8 = 4;
/// Diagonally dominant mode (band) / moderate mode (S-MNN).
pub const NICE: u8 = 8;
/// Band: values in the interchange layout, through `from_lower_band`.
pub const LOWER_BAND: u8 = 16;

/// An input of the band target: the header, then `ab` in the column band layout
/// (`ab[(s·n + j)·(kd+1) + d] = A_s[j+d, j]`; with [`LOWER_BAND`] the body converts it to the
/// interchange layout for `from_lower_band`), `rhs` `(batch, n, nrhs)` and `grad_x`
/// `(batch, n, nrhs)`, as raw values; the body then reads `grad_logdet` (`batch` values, the
/// log-determinant's cotangent), here left out. Values left out are generated (see
/// [`Reader::value`]).
pub fn encode_band<T: Fz>(h: BandHeader, ab: &[T], rhs: &[T], grad_x: &[T]) -> Vec<u8> {
    let mut out = vec![(h.flags & !F32) | T::FLAG, h.kernel, h.par, h.batch, h.n, h.kd, h.nrhs, h.lengths];
    out.extend(h.probe.to_le_bytes());
    for &v in ab.iter().chain(rhs).chain(grad_x) {
        out.extend(encode_value(v));
    }
    out
}

/// The band target: arbitrary band batches through every entry point of `Cholesky` and the
/// storage accessors.
pub fn band(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    if flags & F32 != 0 {
        band_typed::<f32>(&mut r, flags);
    } else {
        band_typed::<f64>(&mut r, flags);
    }
}

/// Makes every system of `ab` (column band layout) strictly diagonally dominant with a margin
/// of 1/8 of its off-diagonal row sum (κ₂ ≤ 17): values made finite and clamped to ±1e6.
fn make_dominant<T: Real>(ab: &mut [T], batch: usize, n: usize, kd: usize) {
    let w = kd + 1;
    let clamp = |v: T| if v.is_finite() { v.max(T::from_f64(-1e6)).min(T::from_f64(1e6)) } else { T::zero() };
    for sys in ab.chunks_exact_mut(n * w).take(batch) {
        let mut rows = vec![0.0f64; n];
        for j in 0..n {
            for d in 0..w {
                let v = clamp(sys[j * w + d]);
                sys[j * w + d] = v;
                if d > 0 && j + d < n {
                    rows[j] += v.as_f64().abs();
                    rows[j + d] += v.as_f64().abs();
                }
            }
        }
        for j in 0..n {
            let diag = sys[j * w].as_f64().abs();
            sys[j * w] = T::from_f64(rows[j] * 1.125 + diag + 1.0);
        }
    }
}

/// `(A x − b)` residual test for `x` solving the band systems `ab` (column band layout):
/// `‖A x − b‖∞ ≤ 32(kd+2)ε(‖A‖∞‖x‖∞ + ‖b‖∞)` plus a floor for subnormal data, per system.
fn check_residual<T: Real>(ab: &[T], dims: (usize, usize, usize, usize), x: &[T], b: &[T], what: &str) {
    let (batch, n, kd, nrhs) = dims;
    let w = kd + 1;
    let eps = T::epsilon().as_f64();
    for s in 0..batch {
        let a = &ab[s * n * w..(s + 1) * n * w];
        let (xs, bs) = (&x[s * n * nrhs..(s + 1) * n * nrhs], &b[s * n * nrhs..(s + 1) * n * nrhs]);
        let mut res: Vec<f64> = bs.iter().map(|v| -v.as_f64()).collect();
        let mut row_norm = vec![0.0f64; n];
        for j in 0..n {
            for d in 0..w.min(n - j) {
                let v = a[j * w + d].as_f64();
                row_norm[j + d] += v.abs();
                if d > 0 {
                    row_norm[j] += v.abs();
                }
                for k in 0..nrhs {
                    res[(j + d) * nrhs + k] += v * xs[j * nrhs + k].as_f64();
                    if d > 0 {
                        res[j * nrhs + k] += v * xs[(j + d) * nrhs + k].as_f64();
                    }
                }
            }
        }
        let inf = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, |m, x| m.max(x.abs()));
        let (na, nx, nb) = (inf(&mut row_norm.iter().copied()), inf(&mut xs.iter().map(|v| v.as_f64())), inf(&mut bs.iter().map(|v| v.as_f64())));
        let nr = inf(&mut res.iter().copied());
        let tol = 32.0 * (kd + 2) as f64 * eps * (na * nx + nb) + (n * (kd + 2)) as f64 * T::min_positive_value().as_f64();
        assert!(nr <= tol, "{what}: system {s}: residual {nr:e} > {tol:e} (‖A‖ {na:e}, ‖x‖ {nx:e}, ‖b‖ {nb:e})");
    }
}

/// Whether the band entries of `ab` (column band layout, not the ignored ones below the
/// matrix) are all finite.
fn band_finite<T: Real>(ab: &[T], n: usize, kd: usize) -> bool {
    let w = kd + 1;
    ab.chunks_exact(n * w).all(|sys| (0..n).all(|j| (0..w.min(n - j)).all(|d| sys[j * w + d].is_finite())))
}

/// Converts the column band layout to the interchange layout `(batch, kd+1, n)`.
fn to_interchange<T: Real>(ab: &[T], n: usize, kd: usize) -> Vec<T> {
    let w = kd + 1;
    let mut out = vec![T::zero(); ab.len()];
    for (dst, sys) in out.chunks_exact_mut(n * w).zip(ab.chunks_exact(n * w)) {
        for j in 0..n {
            for d in 0..w {
                dst[d * n + j] = sys[j * w + d];
            }
        }
    }
    out
}

fn band_typed<T: Fz>(r: &mut Reader, flags: u8) {
    let kernel = r.kernel();
    let par = r.par();
    let (batch, n, kd, nrhs) = (r.upto(40), r.upto(64), r.upto(33), r.upto(4));
    let lengths = r.u8();
    let probe = usize::from(r.u16());
    let checked = flags & UNCHECKED == 0;
    let params = Params::default().with_kernel(kernel).with_par(par).with_check_finite(checked);
    let dominant = flags & NICE != 0;

    let exact = batch * n * (kd + 1);
    let ab_len = perturbed(exact, lengths, 251, 252);
    let mut ab: Vec<T> = r.values(ab_len);
    let shape_ok = batch > 0 && n > 0 && ab_len == exact;
    if dominant && shape_ok {
        make_dominant(&mut ab, batch, n, kd);
    }
    let a = if flags & LOWER_BAND != 0 && shape_ok {
        let inter = to_interchange(&ab, n, kd);
        BandBatch::from_lower_band(&inter, batch, n, kd)
    } else if flags & LOWER_BAND != 0 {
        BandBatch::from_lower_band(&ab, batch, n, kd)
    } else {
        BandBatch::new(ab.clone(), batch, n, kd)
    };
    let a = match a {
        Ok(a) => {
            assert!(shape_ok, "BandBatch accepted {ab_len} values for batch {batch}, n {n}, kd {kd}");
            a
        }
        Err(e) => {
            check_err(&e, &["ab"], "BandBatch::new");
            assert!(!shape_ok, "BandBatch refused a valid shape: {e}");
            return;
        }
    };
    // The band as stored (from_lower_band ignores the entries below the matrix; they need not be equal).
    let stored = a.as_slice().to_vec();
    check_band_accessors(&a, &stored, probe);

    let rhs_len = perturbed(batch * n * nrhs, lengths, 253, 254);
    let mut rhs: Vec<T> = r.values(rhs_len);
    let gx_len = perturbed(batch * n * nrhs, lengths, 0, 255);
    let mut grad_x: Vec<T> = r.values(gx_len);
    // ∂ℓ/∂ log det A_s, one per system (read last: the inputs before it keep their meaning).
    let mut grad_logdet: Vec<T> = r.values(batch);
    if dominant {
        for v in rhs.iter_mut().chain(grad_x.iter_mut()).chain(grad_logdet.iter_mut()) {
            if !v.is_finite() || v.abs() > T::from_f64(1e6) {
                *v = T::one();
            }
        }
    }
    let finite_a = band_finite(&stored, n, kd);

    // factor (owned or borrowed input).
    let factored = if flags & VIEWS != 0 { Cholesky::factor(&a.view(), &params) } else { Cholesky::factor(&a, &params) };
    let chol = match factored {
        Ok(c) => c,
        Err(e) => {
            check_err(&e, &["ab"], "factor");
            assert!(finite_a || matches!(e, Error::NonFinite { .. }) || !checked, "factor of non-finite input: {e}");
            assert!(!(dominant && finite_a), "factor refused a diagonally dominant batch: {e}");
            if checked && !finite_a {
                assert!(matches!(e, Error::NonFinite { arg: "ab", .. }), "non-finite band, check on: {e}");
            }
            check_partial_agrees(&a, &params, &e);
            return;
        }
    };
    assert!(finite_a || !checked, "factor accepted a non-finite band with check_finite on");
    assert_eq!((chol.batch(), chol.n(), chol.kd()), (batch, n, kd), "factor shape");
    let logdet = chol.logdet();
    assert_eq!(logdet.len(), batch, "logdet length");
    if finite_a {
        assert!(band_finite(chol.l().as_slice(), n, kd), "factor of a finite batch has a non-finite L");
        assert!(all_finite(&logdet), "logdet of an accepted finite batch is not finite: {logdet:?}");
        if kd == 0 {
            check_diagonal_logdet(&stored, n, &logdet);
        }
    }
    check_partial_agrees_ok(&a, &params, &chol);
    let in_place = Cholesky::factor_in_place(a.to_owned().expect("copy"), &params).expect("factor_in_place after factor");
    assert!(same_bits(in_place.l().as_slice(), chol.l().as_slice()), "factor_in_place differs from factor");
    // The packed-input API, in any of its lane counts, factors to the same bits.
    let lanes = [1usize, 8, 16, 32, 64][probe % 5];
    let packed = PackedBandBatch::from_band(&a, lanes).expect("from_band of an accepted batch");
    assert!(same_bits(packed.clone().into_band().as_slice(), a.as_slice()), "packed layout round trip");
    let pf = Cholesky::factor_packed(packed, &params).expect("factor_packed after factor");
    assert!(same_bits(pf.l().as_slice(), chol.l().as_slice()), "factor_packed ({lanes} lanes) differs from factor");
    assert!(same_bits(&pf.logdet(), &logdet), "factor_packed's logdet ({lanes} lanes) differs from factor's");
    // Selected inversion, against the equations that define it and the other paths to it.
    let z = check_inverse(&chol, &pf, &params);
    let logdet_grad = check_logdet_backward(&chol, z.as_ref(), &grad_logdet, &params);

    // solve, solve_in_place, factor_solve, backward.
    let b = match BatchMatrix::new(rhs.clone(), batch, n, nrhs) {
        Ok(b) => b,
        Err(e) => {
            check_err(&e, &["data"], "BatchMatrix::new(rhs)");
            assert!(nrhs == 0 || rhs_len != batch * n * nrhs, "BatchMatrix refused a valid shape: {e}");
            return;
        }
    };
    check_matrix_accessors(&b, probe);
    let finite_b = all_finite(&rhs);
    let x = match chol.solve(&b.view(), &params) {
        Ok(x) => x,
        Err(e) => {
            check_err(&e, &["rhs", "x"], "solve");
            let overflow = checked && !dominant && matches!(e, Error::Overflow { .. });
            assert!((checked && !finite_b) || overflow, "solve failed on valid input: {e}");
            return;
        }
    };
    assert!(finite_b || !checked, "solve accepted a non-finite rhs with check_finite on");
    assert_eq!(x.shape(), [batch, n, nrhs], "solve shape");
    // With the checks on, a result that overflows is an `Error::Overflow`; the diagonally
    // dominant mode cannot overflow at all.
    if finite_b && (dominant || checked) {
        assert!(all_finite(x.as_slice()), "solve of finite input gave a non-finite x");
    }
    if dominant {
        check_residual(&stored, (batch, n, kd, nrhs), x.as_slice(), &rhs, "solve");
    }
    check_packed_solve(&pf, &b, &params, dominant.then_some(&stored[..]));
    let mut x2 = rhs.clone();
    let mut x2m = BatchMatrix::new(&mut x2[..], batch, n, nrhs).expect("view of a valid shape");
    chol.solve_in_place(&mut x2m, &params).expect("solve_in_place after solve");
    assert!(same_bits(&x2, x.as_slice()), "solve_in_place differs from solve");
    let mut x3 = BatchMatrix::new(rhs.clone(), batch, n, nrhs).expect("valid shape");
    let fused = Cholesky::factor_solve(a.to_owned().expect("copy"), &mut x3, &params).expect("factor_solve after factor");
    assert!(same_bits(x3.as_slice(), x.as_slice()), "factor_solve's x differs from factor + solve");
    assert!(same_bits(fused.l().as_slice(), chol.l().as_slice()), "factor_solve's L differs from factor");

    let gx = match BatchMatrix::new(&grad_x[..], batch, n, nrhs) {
        Ok(g) => g,
        Err(e) => {
            check_err(&e, &["data"], "BatchMatrix::new(grad_x)");
            return;
        }
    };
    let finite_gx = all_finite(&grad_x);
    match chol.backward(&x, &gx, &params) {
        Ok(g) => {
            let finite_x = all_finite(x.as_slice());
            assert!((finite_x && finite_gx) || !checked, "backward accepted non-finite input with check_finite on");
            assert_eq!(g.rhs.shape(), [batch, n, nrhs], "backward rhs shape");
            assert_eq!((g.ab.batch(), g.ab.n(), g.ab.kd()), (batch, n, kd), "backward ab shape");
            let lam = chol.solve(&gx, &params.with_check_finite(false)).expect("solve of grad_x");
            assert!(same_bits(g.rhs.as_slice(), lam.as_slice()), "backward's grad rhs is not A⁻¹ grad_x");
            if finite_x && finite_gx && (dominant || checked) {
                assert!(all_finite(g.rhs.as_slice()) && all_finite(g.ab.as_slice()), "backward of finite input is not finite");
            }
            check_backward_with_logdet(&chol, (&x, &gx), &g, (&grad_logdet, logdet_grad.as_ref()), &params);
        }
        Err(e) => {
            check_err(&e, &["x", "grad_x", "grad_rhs", "grad_ab"], "backward");
            let overflow = checked && !dominant && matches!(e, Error::Overflow { .. });
            assert!((checked && !(all_finite(x.as_slice()) && finite_gx)) || overflow, "backward failed on valid input: {e}");
        }
    }
}

/// The spacing of `T`'s subnormals (`2⁻¹⁰⁷⁴` in f64, `2⁻¹⁴⁹` in f32): more than one rounding
/// can be off in absolute terms where the relative bound `u·|x|` fails (gradual underflow; half
/// of it, `2⁻¹⁰⁷⁵`, would round to 0 in f64).
fn eta<T: Real>() -> f64 {
    T::min_positive_value().as_f64() * T::epsilon().as_f64()
}

/// `γ_k = k·u / (1 − k·u)` for the unit roundoff `u` (Higham, *Accuracy and Stability of
/// Numerical Algorithms*, §3.1): the bound on `k` roundings.
fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

/// [`Cholesky::inverse_band`] of `chol` against the other paths to it and the equations that
/// define it; returns it when it is `Ok`.
///
/// - [`Cholesky::inverse_band_into`] over storage full of NaN: the same outcome, the same bits
///   (every element written).
/// - The same factor in `pf`'s layout (`factor_packed`, the same bits as `chol`): the same
///   outcome and bits (selected inversion is one kernel for every lane count).
/// - An error is [`Error::Overflow`] naming `inverse_band` (the same one from each path); an
///   `Ok` is finite with the checks on, and `+0` below the matrix.
/// - Where `Z` and `L` are finite: [`check_inverse_equations`].
fn check_inverse<T: Fz>(chol: &Cholesky<T>, pf: &Cholesky<T>, params: &Params) -> Option<BandBatch<T>> {
    let (batch, n, kd) = (chol.batch(), chol.n(), chol.kd());
    let z = chol.inverse_band(params);
    let mut out = BandBatch::new(vec![T::nan(); batch * n * (kd + 1)], batch, n, kd).expect("the factor's shape");
    let into = chol.inverse_band_into(&mut out, params);
    let zp = pf.inverse_band(params);
    let lanes = pf.lanes();
    match (z, into, zp) {
        (Ok(z), Ok(()), Ok(zp)) => {
            assert!(same_bits(out.as_slice(), z.as_slice()), "inverse_band_into differs from inverse_band");
            assert!(same_bits(zp.as_slice(), z.as_slice()), "inverse_band of the factor in {lanes}-lane packs differs");
            let finite = band_finite(z.as_slice(), n, kd);
            assert!(finite || !params.check_finite(), "inverse_band returned a non-finite band with check_finite on");
            let w = kd + 1;
            for (k, v) in z.as_slice().iter().enumerate() {
                let (j, d) = ((k / w) % n, k % w);
                assert!(j + d < n || v.bits() == T::zero().bits(), "inverse_band stores {v} below the matrix (system {}, j {j}, d {d})", k / (n * w));
            }
            if finite && band_finite(chol.l().as_slice(), n, kd) {
                check_inverse_equations(chol.l(), &z);
            }
            Some(z)
        }
        (Err(e), Err(ei), Err(ep)) => {
            check_err(&e, &["inverse_band"], "inverse_band");
            assert!(matches!(e, Error::Overflow { .. }), "inverse_band: {e}");
            assert_eq!(ei, e, "inverse_band_into's error differs from inverse_band's");
            assert_eq!(ep, e, "inverse_band's error differs in {lanes}-lane packs");
            let raw = chol.inverse_band(&params.with_check_finite(false)).expect("unchecked inverse_band");
            assert!(same_bits(out.as_slice(), raw.as_slice()), "after its overflow, inverse_band_into's out is not the raw inverse");
            None
        }
        (z, into, zp) => panic!("inverse_band {:?}, inverse_band_into {:?}, in {lanes}-lane packs {:?}: different outcomes", z.err(), into.err(), zp.err()),
    }
}

/// The equations that define the band of `Z = A⁻¹` from the factor `A = LLᵀ`: `ZL = L⁻ᵀ`, whose
/// entries on and below the diagonal involve only the band of `Z`. For each system, column
/// `j` and `0 ≤ i ≤ kn = min(kd, n − 1 − j)`,
///
/// ```text
/// r_i = Σ_{k=0..kn} Z[j+i, j+k]·L[j+k, j] − (1/L[j,j] if i = 0, else 0) = 0,
/// ```
///
/// evaluated in f64 from the stored `Z` and `L` (all finite). Selected inversion computes each
/// entry from these equations: one dot product of the `kn` other terms (`γ_kn`), then a
/// multiplication by the rounded `1/L[j,j]` (and for `i = 0` a subtraction from it), so
/// `|r_i| ≤ γ_{kn+4}·(Σ_k |Z[j+i, j+k]|·|L[j+k, j]| + |1/L[j,j]|)` in `T`'s unit roundoff (Higham
/// §3.1; FMA only tightens it), plus this check's own rounding in f64 (`γ_{kn+3}` of the same
/// sum), doubled for second-order terms, plus `(2kn + 8)` roundings' absolute error at
/// underflow ([`eta`]) scaled by `1 + |L[j,j]|` (an entry of `Z` enters `r` multiplied by it).
/// An equation whose sum overflows f64 is not checked.
fn check_inverse_equations<T: Real>(l: &BandBatch<T>, z: &BandBatch<T>) {
    let (batch, n, kd) = (l.batch(), l.n(), l.kd());
    let w = kd + 1;
    let (u, u64_) = (T::epsilon().as_f64() / 2.0, f64::EPSILON / 2.0);
    for (s, (ls, zs)) in l.as_slice().chunks_exact(n * w).zip(z.as_slice().chunks_exact(n * w)).enumerate().take(batch) {
        for j in 0..n {
            let kn = kd.min(n - 1 - j);
            let col = &ls[j * w..j * w + kn + 1]; // L[j.., j]
            let l0 = col[0].as_f64();
            let inv = 1.0 / l0;
            for i in 0..=kn {
                let (mut r, mut scale) = (if i == 0 { -inv } else { 0.0 }, if i == 0 { inv.abs() } else { 0.0 });
                // Z[j+i, j+k]: down column j+k for k ≤ i, down column j+i for k > i.
                let below = (0..=i).map(|k| zs[(j + k) * w + i - k]);
                let right = zs[(j + i) * w + 1..(j + i) * w + kn + 1 - i].iter().copied();
                for (zv, lv) in below.chain(right).zip(col) {
                    let t = zv.as_f64() * lv.as_f64();
                    r += t;
                    scale += t.abs();
                }
                let tol = 2.0 * (gamma(kn + 4, u) + gamma(kn + 3, u64_)) * scale + (2 * kn + 8) as f64 * (eta::<T>() * (1.0 + l0.abs()) + eta::<f64>());
                if !(r.is_finite() && tol.is_finite()) {
                    continue;
                }
                assert!(r.abs() <= tol, "inverse_band, system {s}, column {j}: (Z L)[{}, {j}] is off by {r:e} > {tol:e} (scale {scale:e})", j + i);
            }
        }
    }
}

/// [`Cholesky::logdet_backward`] for `grad_logdet` against its definition from the band of
/// `A⁻¹` (`z`, when it was `Ok`): `c·Z[j,j]` on the diagonal, `2c·Z[i,j]` below it, each one
/// rounding (`u·|want|`, or one at underflow) from the product in f64; errors as documented.
/// Returns it when it is `Ok`.
fn check_logdet_backward<T: Fz>(chol: &Cholesky<T>, z: Option<&BandBatch<T>>, grad_logdet: &[T], params: &Params) -> Option<BandBatch<T>> {
    let (n, w) = (chol.n(), chol.kd() + 1);
    let finite_c = all_finite(grad_logdet);
    match chol.logdet_backward(grad_logdet, params) {
        Ok(g) => {
            assert!(finite_c || !params.check_finite(), "logdet_backward accepted a non-finite grad_logdet with check_finite on");
            assert_eq!((g.batch(), g.n(), g.kd()), (chol.batch(), n, chol.kd()), "logdet_backward shape");
            assert!(!params.check_finite() || band_finite(g.as_slice(), n, chol.kd()), "logdet_backward returned a non-finite band with check_finite on");
            let Some(z) = z else {
                assert!(!params.check_finite(), "logdet_backward succeeded where inverse_band overflowed");
                return Some(g);
            };
            let u = T::epsilon().as_f64() / 2.0;
            for (k, (&got, &zk)) in g.as_slice().iter().zip(z.as_slice()).enumerate() {
                let (s, j, d) = (k / (n * w), (k / w) % n, k % w);
                let want = if d == 0 { 1.0 } else { 2.0 } * grad_logdet[s].as_f64() * zk.as_f64();
                if j + d >= n {
                    // +0, whatever `c` (the entries below the matrix are not scaled).
                    assert!(got.as_f64().to_bits() == 0, "logdet_backward stores {got} below the matrix (system {s}, j {j}, d {d})");
                } else if want.is_finite() && got.is_finite() {
                    let err = (got.as_f64() - want).abs();
                    assert!(err <= u * want.abs() + eta::<T>(), "logdet_backward, system {s}, (j {j}, d {d}): {got} vs c·Z = {want}");
                }
            }
            Some(g)
        }
        Err(e) => {
            check_err(&e, &["grad_logdet", "grad_ab"], "logdet_backward");
            match e {
                Error::NonFinite { arg: "grad_logdet", .. } => assert!(!finite_c, "logdet_backward refused a finite grad_logdet: {e}"),
                Error::Overflow { arg: "grad_ab", .. } => {}
                _ => panic!("logdet_backward: {e}"),
            }
            None
        }
    }
}

/// [`Cholesky::backward_with_logdet`] against its two parts, [`Cholesky::backward`]'s `g` and
/// [`Cholesky::logdet_backward`]'s `o` (`None`: it failed): the same `grad_rhs` (bits: the same solve), and each
/// `grad_ab` entry `b = c·z + g` within two roundings of the sum of the parts (`o` is `c·z`
/// rounded once; `b` rounds `c·z` and the sum, or the sum alone with FMA):
/// `|b − (o + g)| ≤ 2u(1 + u)(|o| + |g|)`, plus the f64 sum's rounding and `2η` at underflow.
fn check_backward_with_logdet<T: Fz>(
    chol: &Cholesky<T>,
    (x, gx): (&BatchMatrix<T>, &BatchMatrix<T, &[T]>),
    g: &banded::SolveGrads<T>,
    (grad_logdet, o): (&[T], Option<&BandBatch<T>>),
    params: &Params,
) {
    let both = match chol.backward_with_logdet(x, gx, grad_logdet, params) {
        Ok(both) => both,
        Err(e) => {
            check_err(&e, &["grad_logdet", "grad_ab", "grad_rhs"], "backward_with_logdet");
            match e {
                Error::NonFinite { arg: "grad_logdet", .. } => assert!(!all_finite(grad_logdet), "backward_with_logdet refused a finite grad_logdet: {e}"),
                Error::Overflow { .. } => {}
                _ => panic!("backward_with_logdet: {e}"),
            }
            return;
        }
    };
    assert!(same_bits(both.rhs.as_slice(), g.rhs.as_slice()), "backward_with_logdet's grad_rhs differs from backward's");
    let Some(o) = o else {
        assert!(!params.check_finite(), "backward_with_logdet succeeded where logdet_backward failed");
        return;
    };
    let (u, u64_) = (T::epsilon().as_f64() / 2.0, f64::EPSILON / 2.0);
    for (k, ((&b, &gk), &ok)) in both.ab.as_slice().iter().zip(g.ab.as_slice()).zip(o.as_slice()).enumerate() {
        let (b, gk, ok) = (b.as_f64(), gk.as_f64(), ok.as_f64());
        if !(b.is_finite() && (gk + ok).is_finite()) {
            continue;
        }
        let tol = (2.0 * u * (1.0 + u) + u64_) * (gk.abs() + ok.abs()) + 2.0 * eta::<T>();
        assert!((b - (gk + ok)).abs() <= tol, "backward_with_logdet's grad_ab[{k}] = {b} vs backward + logdet_backward = {gk} + {ok}");
    }
}

/// [`Cholesky::solve_packed_in_place`] with `pf` (the factor `factor_packed` made): right-hand
/// sides packed with other lanes are refused naming `rhs`; with its lanes, the outcome and bits
/// of [`Cholesky::solve`] with the same factor (one kernel, the right-hand sides gathered or
/// not); for a diagonally dominant batch (`dominant`: its band) the residual of the solution.
fn check_packed_solve<T: Fz>(pf: &Cholesky<T>, b: &BatchMatrix<T>, params: &Params, dominant: Option<&[T]>) {
    let [batch, n, nrhs] = b.shape();
    let other = if pf.lanes() == 8 { 16 } else { 8 };
    let mut wrong = PackedBatchMatrix::from_matrix(b, other).expect("a valid shape and lane count");
    match pf.solve_packed_in_place(&mut wrong, params) {
        Err(e @ Error::InvalidArgument { arg: "rhs", .. }) => check_err(&e, &["rhs"], "solve_packed_in_place"),
        r => panic!("solve_packed_in_place of rhs in {other} lanes for a factor in {}: {:?}", pf.lanes(), r.err()),
    }
    let mut bp = PackedBatchMatrix::from_matrix(b, pf.lanes()).expect("a valid shape and lane count");
    match (pf.solve_packed_in_place(&mut bp, params), pf.solve(b, params)) {
        (Ok(()), Ok(x)) => {
            let xp = bp.into_matrix();
            assert!(same_bits(xp.as_slice(), x.as_slice()), "solve_packed_in_place differs from solve ({} lanes)", pf.lanes());
            if let Some(ab) = dominant {
                check_residual(ab, (batch, n, pf.kd(), nrhs), xp.as_slice(), b.as_slice(), "solve_packed_in_place");
            }
        }
        (Err(e), Err(e2)) => {
            check_err(&e, &["rhs", "x"], "solve_packed_in_place");
            assert_eq!(e, e2, "solve_packed_in_place's error differs from solve's");
        }
        (r, r2) => panic!("solve_packed_in_place {:?} but solve {:?}", r.err(), r2.err()),
    }
}

/// `get`, `system` at `probe`, at the edges and at huge indices, against the stored data.
fn check_band_accessors<T: Fz, S: AsRef<[T]>>(a: &BandBatch<T, S>, stored: &[T], probe: usize) {
    let (batch, n, kd) = (a.batch(), a.n(), a.kd());
    let w = kd + 1;
    assert_eq!(a.system_len(), n * w, "system_len");
    for s in [0, probe % (batch + 1), batch - 1, batch, probe, usize::MAX, 1 << 62] {
        let sys = a.system(s);
        assert_eq!(sys.is_some(), s < batch, "system({s}) of batch {batch}");
        if let Some(sys) = sys {
            assert!(same_bits(sys, &stored[s * n * w..(s + 1) * n * w]), "system({s}) is not its slice");
        }
        for (i, j) in [(0, 0), (probe % (n + 1), probe / 7 % (n + 1)), (n - 1, 0), (n, 0), (0, usize::MAX), (usize::MAX, 1)] {
            let got = a.get(s, i, j);
            assert_eq!(got.is_some(), s < batch && i < n && j < n, "get({s}, {i}, {j}) of batch {batch}, n {n}");
            if let Some(v) = got {
                let (hi, lo) = if i >= j { (i, j) } else { (j, i) };
                let want = if hi - lo > kd { T::zero() } else { stored[(s * n + lo) * w + hi - lo] };
                assert!(same_bits(&[v], &[want]), "get({s}, {i}, {j}) = {v}, stored {want}");
            }
        }
    }
}

/// `get`, `matrix` at `probe`, at the edges and at huge indices.
fn check_matrix_accessors<T: Fz>(b: &BatchMatrix<T>, probe: usize) {
    let [batch, rows, cols] = b.shape();
    for s in [0, probe % (batch + 1), batch, probe, usize::MAX, 1 << 62] {
        let m = b.matrix(s);
        assert_eq!(m.is_some(), s < batch, "matrix({s}) of batch {batch}");
        if let Some(m) = m {
            assert_eq!(m.len(), rows * cols, "matrix({s}) length");
        }
        for (i, k) in [(0, 0), (probe % (rows + 1), probe % (cols + 1)), (rows, 0), (0, cols), (usize::MAX, 0)] {
            assert_eq!(b.get(s, i, k).is_some(), s < batch && i < rows && k < cols, "get({s}, {i}, {k})");
        }
    }
}

/// log det of a diagonal matrix is Σ ln a_jj.
fn check_diagonal_logdet<T: Real>(ab: &[T], n: usize, logdet: &[T]) {
    for (s, (&got, sys)) in logdet.iter().zip(ab.chunks_exact(n)).enumerate() {
        let want: f64 = sys.iter().map(|v| v.as_f64().ln()).sum();
        let scale: f64 = sys.iter().map(|v| v.as_f64().ln().abs()).sum::<f64>() + 1.0;
        let tol = 16.0 * (n as f64 + 1.0) * T::epsilon().as_f64() * scale;
        assert!((got.as_f64() - want).abs() <= tol, "logdet of diagonal system {s}: {got} vs Σ ln a_jj = {want}");
    }
}

/// After `factor` failed with `e`: `factor_partial` reports the same failures (or the same
/// non-finite error) and keeps exactly the other systems.
fn check_partial_agrees<T: Fz>(a: &BandBatch<T>, params: &Params, e: &Error) {
    let p = Cholesky::factor_partial(a.to_owned().expect("copy"), params);
    match (e, p) {
        (Error::NotPositiveDefinite { failures, .. }, Ok(p)) => {
            assert_eq!(&p.failures, failures, "factor_partial's failures differ from factor's");
            let kept: Vec<usize> = (0..a.batch()).filter(|s| !failures.iter().any(|f| f.system == *s)).collect();
            assert_eq!(p.systems, kept, "factor_partial kept the wrong systems");
            assert_eq!(p.factor.as_ref().map(Cholesky::batch), (!kept.is_empty()).then_some(kept.len()), "partial factor batch");
            if let Some(f) = &p.factor {
                let ld = f.logdet();
                assert_eq!(ld.len(), kept.len(), "partial logdet length");
            }
        }
        (_, Ok(p)) => panic!("factor failed ({e}) but factor_partial succeeded with failures {:?}", p.failures),
        (_, Err(e2)) => assert_eq!(&e2, e, "factor_partial's error differs from factor's"),
    }
}

/// After `factor` succeeded: `factor_partial` has no failures and the same factor.
fn check_partial_agrees_ok<T: Fz>(a: &BandBatch<T>, params: &Params, chol: &Cholesky<T>) {
    let p = Cholesky::factor_partial(a.to_owned().expect("copy"), params).expect("factor_partial after factor");
    assert!(p.failures.is_empty(), "factor_partial failed where factor did not: {:?}", p.failures);
    let f = p.factor.expect("a factor when nothing failed");
    assert!(same_bits(f.l().as_slice(), chol.l().as_slice()), "factor_partial's L differs from factor's");
}

// ---------------------------------------------------------------------------------------------
// S-MNN target.

/// The header of an S-MNN input (bytes 0–13), then three weight codes, then the values of
/// `coefficients`, `rhs_equation`, `init_vars`, `steps`, `grad_u`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmnnHeader {
    /// Byte 0: bit 0 f32, bit 1 `check_finite` off, bit 2 `central`, bit 3 moderate mode
    /// (values clamped to ±10, steps in (0.01, 1]), bit 4 `n_steps` given.
    pub flags: u8,
    /// Byte 1: the kernel.
    pub kernel: u8,
    /// Byte 2: parallelism.
    pub par: u8,
    /// Bytes 3–9: batch (mod 21), T (mod 41), E (mod 5), D (mod 4), O (mod 5), S (mod T+2),
    /// I (mod O+2).
    pub dims: [u8; 7],
    /// Byte 10: step axes, 2 bits each for coefficients, rhs_equation, steps: 0 full, 1
    /// broadcast (size 1), 2 wrong (full + 1), 3 zero.
    pub axes: u8,
    /// Byte 11: a wrong shape: 240–243 drops the last axis of input k, 244–247 adds a trailing
    /// axis of size 1, 248–251 makes `batch` one larger in input k; else none.
    pub shape: u8,
    /// Byte 12: a wrong length: 250–254 one more value in coefficients, rhs_equation,
    /// init_vars, steps, grad_u; 255 one fewer in coefficients.
    pub lengths: u8,
    /// Byte 13: `n_steps` if given: T + this − 1 (mod 4) (so T − 1 … T + 2).
    pub n_steps: u8,
    /// Weight codes (equation, init, smooth), see [`weight`].
    pub weights: [u8; 3],
}

/// Decodes a weight code: 0 → 1, 1 → 0, 2 → 0.5, 3 → 2, 4 → −1, 5 → NaN, 6 → inf, 7 → 1e20,
/// 8 → 1e200, 9 → 1e-20, 10 → 1e-200, 11 → 1e5, otherwise (code − 12)/20.
pub fn weight(code: u8) -> f64 {
    match code {
        0 => 1.0,
        1 => 0.0,
        2 => 0.5,
        3 => 2.0,
        4 => -1.0,
        5 => f64::NAN,
        6 => f64::INFINITY,
        7 => 1e20,
        8 => 1e200,
        9 => 1e-20,
        10 => 1e-200,
        11 => 1e5,
        c => f64::from(c - 12) / 20.0,
    }
}

/// Whether a weight cannot make the normal matrix overflow in any element type.
fn moderate_weight(w: f64) -> bool {
    w == 0.0 || (1e-3..=1e3).contains(&w)
}

/// An input of the S-MNN target: the header and the five arrays as raw values.
pub fn encode_smnn<T: Fz>(h: SmnnHeader, arrays: [&[T]; 5]) -> Vec<u8> {
    let mut out = vec![(h.flags & !F32) | T::FLAG, h.kernel, h.par];
    out.extend(h.dims);
    out.extend([h.axes, h.shape, h.lengths, h.n_steps]);
    out.extend(h.weights);
    for a in arrays {
        for &v in a {
            out.extend(encode_value(v));
        }
    }
    out
}

/// The S-MNN target: layers of arbitrary shapes and options, forward, backward, frozen.
pub fn smnn(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    if flags & F32 != 0 {
        smnn_typed::<f32>(&mut r, flags);
    } else {
        smnn_typed::<f64>(&mut r, flags);
    }
}

const SMNN_ARGS: [&str; 18] = [
    "lambda",
    "normal_matrix",
    "grad_coefficients",
    "grad_rhs_equation",
    "grad_init_vars",
    "grad_steps",
    "weight_equation",
    "weight_init_var",
    "weight_smooth",
    "coefficients",
    "rhs_equation",
    "init_vars",
    "steps",
    "n_steps",
    "central",
    "shape",
    "grad_u",
    "u",
];

fn smnn_typed<T: Fz>(r: &mut Reader, flags: u8) {
    let kernel = r.kernel();
    let par = r.par();
    let batch = r.upto(20);
    let t = r.upto(40);
    let (e, d, o) = (r.upto(4), r.upto(3), r.upto(4));
    let s = r.upto(t + 1);
    let i = r.upto(o + 1);
    let axes = r.u8();
    let shape_code = r.u8();
    let lengths = r.u8();
    let n_steps_code = r.u8();
    let weights = [weight(r.u8()), weight(r.u8()), weight(r.u8())];
    let checked = flags & UNCHECKED == 0;
    let moderate = flags & NICE != 0;
    let params = Params::default().with_kernel(kernel).with_par(par).with_check_finite(checked);
    let axis = |code: u8, full: usize| match code & 3 {
        0 => full,
        1 => 1,
        2 => full + 1,
        _ => 0,
    };
    let mut shapes: [Vec<usize>; 4] = [
        vec![batch, axis(axes, t), e, d, o],
        vec![batch, axis(axes >> 2, t), e],
        vec![batch, s, d, i],
        vec![batch, axis(axes >> 4, t.saturating_sub(1))],
    ];
    let k = usize::from(shape_code % 4);
    match shape_code {
        240..=243 => {
            shapes[k].pop();
        }
        244..=247 => shapes[k].push(1),
        248..=251 => shapes[k][0] += 1,
        _ => {}
    }
    let options = Options {
        n_steps: (flags & 16 != 0).then(|| (t + usize::from(n_steps_code % 4)).saturating_sub(1)),
        weight_equation: weights[0],
        weight_init_var: weights[1],
        weight_smooth: weights[2],
        central: flags & 4 != 0,
    };
    let layer = match Smnn::new(options, InputShapes { coefficients: &shapes[0], rhs_equation: &shapes[1], init_vars: &shapes[2], steps: &shapes[3] }) {
        Ok(l) => l,
        Err(err) => {
            check_err(&err, &SMNN_ARGS, "Smnn::new");
            return;
        }
    };
    assert_eq!(layer.batch(), shapes[0][0], "layer batch");
    assert!(layer.n_steps() >= 2, "layer with T < 2");
    assert_eq!(layer.n(), layer.n_steps() * layer.block(), "n = T·b");
    assert_eq!(layer.coefficients_shape().as_slice(), shapes[0].as_slice(), "coefficients shape");
    let prod = |s: &[usize]| s.iter().product::<usize>();
    let exact = [
        prod(&layer.coefficients_shape()),
        prod(&layer.rhs_equation_shape()),
        prod(&layer.init_vars_shape()),
        prod(&layer.steps_shape()),
        prod(&layer.u_shape()),
    ];
    let lens: Vec<usize> = (0..5)
        .map(|k| match lengths {
            250..=254 if usize::from(lengths - 250) == k => exact[k] + 1,
            255 if k == 0 => exact[k].saturating_sub(1),
            _ => exact[k],
        })
        .collect();
    let mut arrays: Vec<Vec<T>> = lens.iter().map(|&len| r.values(len)).collect();
    if moderate {
        for (k, a) in arrays.iter_mut().enumerate() {
            for v in a.iter_mut() {
                let x = if v.is_finite() { v.max(T::from_f64(-10.0)).min(T::from_f64(10.0)) } else { T::one() };
                // Steps in (0.01, 1].
                *v = if k == 3 { T::from_f64(0.01) + x.abs().min(T::from_f64(0.99)) } else { x };
            }
        }
    }
    let [c, rh, v, h, gu] = [&arrays[0], &arrays[1], &arrays[2], &arrays[3], &arrays[4]];
    let inputs = Inputs { coefficients: c.as_slice(), rhs_equation: rh.as_slice(), init_vars: v.as_slice(), steps: h.as_slice() };
    let finite_in = [c, rh, v, h].iter().all(|a| all_finite(a));
    let can_overflow = !(moderate && weights.iter().all(|&w| moderate_weight(w)));
    let lens_ok = lens[..4] == exact[..4];

    let fwd = match layer.forward(inputs, &params) {
        Ok(f) => f,
        Err(err) => {
            check_err(&err, &SMNN_ARGS, "forward");
            assert!(!(lens_ok && finite_in && matches!(err, Error::Shape { .. })), "forward: shape error on valid lengths: {err}");
            check_freeze_err(&layer, c, h, &params);
            return;
        }
    };
    assert!(lens_ok, "forward accepted wrong lengths {lens:?} for {exact:?}");
    assert!(finite_in || !checked, "forward accepted a non-finite input with check_finite on");
    assert!(h.iter().all(|&x| x > T::zero()) || !checked, "forward accepted a step ≤ 0");
    assert_eq!(fwd.u().len(), exact[4], "u length");
    if finite_in && (!can_overflow || checked) {
        assert!(all_finite(fwd.u()), "forward of finite moderate input gave a non-finite u");
    }

    let grads = match fwd.backward(gu, &params) {
        Ok(g) => {
            assert_eq!(lens[4], exact[4], "backward accepted a wrong grad_u length");
            assert_eq!([g.coefficients.len(), g.rhs_equation.len(), g.init_vars.len(), g.steps.len()], [exact[0], exact[1], exact[2], exact[3]], "gradient lengths");
            if finite_in && all_finite(gu) && (!can_overflow || checked) {
                for (name, x) in [("coefficients", &g.coefficients), ("rhs_equation", &g.rhs_equation), ("init_vars", &g.init_vars), ("steps", &g.steps)] {
                    assert!(all_finite(x), "backward of finite moderate input: grad {name} not finite");
                }
            }
            Some(g)
        }
        Err(err) => {
            check_err(&err, &SMNN_ARGS, "backward");
            // With the checks on, an overflowing result is `Overflow`; with them off, a
            // non-finite result (from a non-finite `grad_u`, or overflow) is `NonFinite`.
            let overflow = checked && can_overflow && matches!(err, Error::Overflow { .. });
            let unchecked_result = !checked && matches!(err, Error::NonFinite { .. } | Error::Overflow { .. });
            assert!(
                lens[4] != exact[4] || (checked && !all_finite(gu)) || !all_finite(fwd.u()) || overflow || unchecked_result,
                "backward failed on valid input: {err}"
            );
            None
        }
    };

    let frozen = layer.freeze(c, h, &params).expect("freeze after a successful forward");
    let u2 = frozen.forward(rh, v, &params).expect("frozen forward after a successful forward");
    assert!(same_bits(&u2, fwd.u()), "frozen forward differs from forward");
    if let Some(g) = grads {
        let fg = frozen.backward(gu, &params).expect("frozen backward after a successful backward");
        assert!(same_bits(&fg.rhs_equation, &g.rhs_equation), "frozen grad rhs_equation differs");
        assert!(same_bits(&fg.init_vars, &g.init_vars), "frozen grad init_vars differs");
        let full = layer.backward(inputs, fwd.u(), frozen.factor(), gu, &params);
        match full {
            Ok(g2) => assert!(same_bits(&g2.coefficients, &g.coefficients) && same_bits(&g2.steps, &g.steps), "backward from parts differs"),
            Err(err) => check_err(&err, &SMNN_ARGS, "backward from parts"),
        }
    }
}

/// After a failed forward: `freeze` fails too or succeeds; either way no panic, and an error
/// names its argument.
fn check_freeze_err<T: Fz>(layer: &Smnn, c: &[T], h: &[T], params: &Params) {
    if let Err(err) = layer.freeze(c, h, params) {
        check_err(&err, &SMNN_ARGS, "freeze");
    }
}

// ---------------------------------------------------------------------------------------------
// npy / npz target.

/// The npy target: the bytes as a `.npy` file (the CLI's own parser) and as an `.npz` archive
/// (every array it lists).
pub fn npy(data: &[u8]) {
    match parse_npy(data) {
        Ok(a) => check_array(&a, "parse_npy"),
        Err(reason) => assert!(!reason.trim().is_empty(), "parse_npy: empty error"),
    }
    match Npz::from_bytes("fuzz.npz", data.to_vec()) {
        Ok(mut z) => {
            let names = z.names();
            assert!(names.windows(2).all(|w| w[0] <= w[1]), "names not sorted: {names:?}");
            for name in names.iter().take(16) {
                match z.get(name) {
                    Ok(Some(a)) => check_array(&a, name),
                    Ok(None) => panic!("listed array `{name}` not found"),
                    Err(e) => check_npz_err(&e),
                }
            }
        }
        Err(e) => check_npz_err(&e),
    }
}

fn check_npz_err(e: &Error) {
    let msg = e.to_string();
    assert!(matches!(e, Error::Io { .. }), "npz: not an Io error: {e:?}");
    assert!(msg.contains("fuzz.npz") && msg.len() > "fuzz.npz: ".len(), "npz error does not name the file or is empty: {msg}");
}

fn check_array(a: &banded::cli::io::Array, what: &str) {
    let len = match a {
        banded::cli::io::Array::F32(t) => t.data.len(),
        banded::cli::io::Array::F64(t) => t.data.len(),
    };
    let elems = a.shape().iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    assert_eq!(elems, Some(len), "{what}: shape {:?} with {len} values", a.shape());
}
