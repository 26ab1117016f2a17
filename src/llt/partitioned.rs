//! The partitioned Cholesky factorization of long systems: one system's columns split into
//! chunks that factor in parallel (as a batch, in packs), and a small separator system.
//!
//! With the layout of [`Layout`] (chunks `I_c`, separators of `kd` columns between them) and
//! the separators ordered last, `A` is (a symmetric permutation, so it stays SPD and
//! Cholesky stays backward stable: nested dissection of a chain, one level)
//!
//! ```text
//!  ⎡ A_II  A_IS ⎤    A_II = diag(A_0, …, A_(P−1))   the chunks, independent band matrices
//!  ⎣ A_SI  A_SS ⎦    A_IS: chunk c couples only to separators c − 1 and c (B_c, len_c × 2kd)
//! ```
//!
//! - **factor**: `A_c = L_c L_cᵀ` (all chunks of all systems as one batch of equal-length
//!   systems, shorter chunks padded with identity columns, factored in packs); the spikes
//!   `W_c = L_c⁻¹ B_c`: the left one a forward substitution of `kd` right-hand sides through
//!   the chunk (one batched sweep), the right one nonzero only in the chunk's last `kd` rows
//!   (a `kd × kd` triangular solve with the end of `L_c`); the separators' Schur complement
//!   `S = A_SS − Σ_c W_cᵀ W_c`, block tridiagonal in `kd × kd` blocks, i.e. a band matrix of
//!   order `(P − 1)·kd` and bandwidth `2kd − 1`, factored sequentially (it is small).
//! - **solve** `A x = b`: `y_c = L_c⁻¹ b_c`; `S x_S = b_S − Σ_c W_cᵀ y_c`;
//!   `x_c = L_c⁻ᵀ (y_c − W_c x_S)` (one forward and one backward batched sweep through the
//!   chunks, two products with the spikes, one separator solve).
//! - **log-determinant**: `Σ_c log det A_c + log det S`.
//! - **selected inversion** (the band of `A⁻¹`): with `X_c = L_c⁻ᵀ W_c = A_c⁻¹ B_c` (one
//!   backward sweep of `2kd` right-hand sides), `Y_c` the `2kd × 2kd` block of `S⁻¹` on chunk
//!   `c`'s two separators (inside the band of `S⁻¹`) and `V_c = X_c Y_c`:
//!   `(A⁻¹)_II = A_c⁻¹ + X_c Y_c X_cᵀ`, `(A⁻¹)_IS = −V_c`, `(A⁻¹)_SS = S⁻¹`, each only inside
//!   the band.
//!
//! Extra work against the sequential factorization (`≈ n·kd²/2` multiply–adds and `n`
//! pivots): the left spikes' sweep `≈ n·kd²`, their Gram `≈ n·kd²/2`, the separator system
//! `≈ 2·P·kd³`; memory: `A` kept, the chunks' factor (`≈ n·(kd+1)`) and the left spikes
//! (`≈ n·kd`). Every step runs per chunk in parallel except the separator system and the sums
//! over a system's chunks (`O(P·kd²)`), in chunk order: the results do not depend on the
//! threads. Why it pays on one thread too: see `docs/ARCHITECTURE.md`, "One long system".

use rayon::prelude::*;

use crate::alloc::zeroed_vec_par;
use crate::band::partition::Layout;
use crate::band::{BandBatch, Partitions};
use crate::error::{Error, PivotFailure, Result};
use crate::par::{Par, min_len};
use crate::params::Params;
use crate::scalar::Real;

use super::Cholesky;
use super::driver::Sweep;

/// A factored batch of partitioned systems (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Partitioned<T> {
    /// The matrices as given (band layout): the couplings `B_c` are read from them, and
    /// [`Cholesky::l`] factors them sequentially on request.
    pub a: BandBatch<T>,
    pub layout: Layout,
    /// Every system's chunks, padded to `layout.m` columns: chunk `c` of system `s` is system
    /// `s·P + c`.
    pub chunks: Cholesky<T>,
    /// Every system's separator system `S` (order `layout.seps()`, bandwidth `layout.sep_kd()`).
    pub seps: Cholesky<T>,
    /// The spikes `W = L_c⁻¹ B_c`: `left`, on the separator before each chunk, `(batch·P, m,
    /// kd)` (zero for a system's first chunk); `right`, on the separator after it, nonzero only
    /// in the chunk's last `tail(c) = min(len(c), kd)` rows, kept as `kd × kd` per chunk (row
    /// `i` is chunk row `len(c) − tail(c) + i`; zero for the last chunk).
    left: Vec<T>,
    right: Vec<T>,
}

/// What [`factor`] gives: the factor of the systems that succeeded (in batch order), their
/// batch indices, and the failures (column indices of the original matrices).
pub(crate) type Outcome<T> = (Option<Partitioned<T>>, Vec<usize>, Vec<PivotFailure>);

/// The parameters of the inner (chunk and separator) operations: never split again, inputs
/// already checked.
fn inner(params: &Params) -> Params {
    params.with_partitions(Partitions::Off).with_check_finite(false)
}

/// `dims[0]·dims[1]·…`, or [`Error::InvalidArgument`] naming `arg` if it overflows.
fn product(arg: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::InvalidArgument { arg, reason: format!("size {dims:?} overflows usize") })
}

/// Separator-system index of local separator column `q` of chunk `c` (see [`Layout::couplings`]).
fn sep_index(kd: usize, c: usize, q: usize) -> usize {
    if q < kd { (c - 1) * kd + q } else { c * kd + q - kd }
}

/// Factors every system of `a` (`kd ≥ 1`) in `parts ≥ 2` chunks (capped by the caller).
/// Errors only for allocation failures; a system that is not positive definite is reported in
/// the outcome's failures, at the column of `a` of the first failing pivot in the partitioned
/// order (the first failing chunk column, else separator column), and the others are factored.
pub(crate) fn factor<T: Real>(a: BandBatch<T>, parts: usize, params: &Params) -> Result<Outcome<T>> {
    let (batch, n, kd) = (a.batch(), a.n(), a.kd());
    let l = Layout::new(n, kd, parts);
    let p = inner(params);
    // 1. The chunks.
    let chunks = Cholesky::factor_partial(gather_chunks(&a, &l, params.par())?, &p)?;
    let mut first: Vec<Option<usize>> = vec![None; batch];
    for f in &chunks.failures {
        let (s, c) = (f.system / parts, f.system % parts);
        let col = l.start(c) + f.column;
        first[s] = Some(first[s].map_or(col, |x| x.min(col)));
    }
    if first.iter().any(Option::is_some) {
        return retry(a, first, parts, params);
    }
    let chunks = chunks.complete()?;
    // 2. The spikes and the separators' Schur complement.
    let left = left_spikes(&a, &l, &chunks, params)?;
    let right = right_spikes(&a, &l, &chunks, params.par())?;
    let seps = Cholesky::factor_partial(schur(&a, &l, &left, &right, params.par())?, &p)?;
    if !seps.failures.is_empty() {
        for f in &seps.failures {
            first[f.system] = Some(l.sep_col(f.column));
        }
        return retry(a, first, parts, params);
    }
    let seps = seps.complete()?;
    Ok((Some(Partitioned { a, layout: l, chunks, seps, left, right }), (0..batch).collect(), Vec::new()))
}

/// The outcome when the systems with `first[s] = Some(column)` failed: the others factored
/// again on their own (their bits do not depend on the batch, so they are what they would
/// have been).
fn retry<T: Real>(a: BandBatch<T>, first: Vec<Option<usize>>, parts: usize, params: &Params) -> Result<Outcome<T>> {
    let good: Vec<usize> = (0..first.len()).filter(|&s| first[s].is_none()).collect();
    let mut failures: Vec<PivotFailure> = first.iter().enumerate().filter_map(|(system, f)| f.map(|column| PivotFailure { system, column })).collect();
    let Some(rest) = a.select(&good)? else {
        return Ok((None, Vec::new(), failures));
    };
    drop(a);
    let (factor, systems, more) = factor(rest, parts, params)?;
    failures.extend(more.iter().map(|f| PivotFailure { system: good[f.system], column: f.column }));
    failures.sort_by_key(|f| f.system);
    Ok((factor, systems.iter().map(|&k| good[k]).collect(), failures))
}

/// The chunks of every system as one band batch `(batch·P, m, kd)`: chunk columns copied
/// (entries that reach past the chunk, its couplings, left out), padding columns the identity.
fn gather_chunks<T: Real>(a: &BandBatch<T>, l: &Layout, par: Par) -> Result<BandBatch<T>> {
    let (batch, n, w) = (a.batch(), a.n(), l.kd + 1);
    let count = product("ab", &[batch, l.parts])?;
    let len = l.m * w;
    let mut data = zeroed_vec_par("ab", Vec::new(), product("ab", &[count, len])?, count, par)?;
    data.par_chunks_mut(len).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, out)| {
        let (s, c) = (sc / l.parts, sc % l.parts);
        let (start, lc) = (l.start(c), l.len(c));
        // The chunk's columns in one copy; then the entries of its last columns that reach
        // past it (its couplings) cleared, and the padding columns made the identity.
        out[..lc * w].copy_from_slice(&a.as_slice()[(s * n + start) * w..(s * n + start + lc) * w]);
        for j in lc.saturating_sub(l.kd)..lc {
            out[j * w + lc - j..(j + 1) * w].fill(T::zero());
        }
        for col in out[lc * w..].chunks_exact_mut(w) {
            col[0] = T::one();
        }
    });
    Ok(BandBatch::from_parts(count, l.m, l.kd, data))
}

/// The left spikes `W_L = L_c⁻¹ B_L` of every chunk, `(batch·P, m, kd)`: `B_L` (nonzero in
/// the chunk's first `kd` rows) forward-substituted through the whole chunk.
fn left_spikes<T: Real>(a: &BandBatch<T>, l: &Layout, chunks: &Cholesky<T>, params: &Params) -> Result<Vec<T>> {
    let (n, kd, w, par) = (a.n(), l.kd, l.kd + 1, params.par());
    let count = chunks.batch();
    let len = l.m * kd;
    let mut data = zeroed_vec_par("spikes", Vec::new(), product("spikes", &[count, len])?, count, par)?;
    let ab = a.as_slice();
    data.par_chunks_mut(len).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, out)| {
        let s = sc / l.parts;
        l.couplings(sc % l.parts, |r, q, col, d| {
            if q < kd {
                out[r * kd + q] = ab[(s * n + col) * w + d];
            }
        });
    });
    chunks.solve_sweep(&mut data, kd, &inner(params), Sweep::Forward)?;
    Ok(data)
}

/// Rows of the right spike kept per chunk: `min(len(c), kd)`, from chunk row `len(c) − tail`.
fn tail(l: &Layout, c: usize) -> (usize, usize) {
    let t = l.len(c).min(l.kd);
    (l.len(c) - t, t)
}

/// The right spikes `W_R = L_c⁻¹ B_R` of every chunk (`kd × kd` each, see
/// [`Partitioned::right`]): `B_R` is zero above the chunk's last `kd` rows, so is `W_R`, and
/// its last rows need only the last `kd × kd` triangle of `L_c`.
fn right_spikes<T: Real>(a: &BandBatch<T>, l: &Layout, chunks: &Cholesky<T>, par: Par) -> Result<Vec<T>> {
    let (n, kd, w) = (a.n(), l.kd, l.kd + 1);
    let count = chunks.batch();
    let mut data = zeroed_vec_par("spikes", Vec::new(), product("spikes", &[count, kd, kd])?, count, par)?;
    let ab = a.as_slice();
    data.par_chunks_mut(kd * kd).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, out)| {
        let (s, c) = (sc / l.parts, sc % l.parts);
        let (e0, t) = tail(l, c);
        l.couplings(c, |r, q, col, d| {
            if q >= kd {
                out[(r - e0) * kd + q - kd] = ab[(s * n + col) * w + d];
            }
        });
        for i in 0..t {
            for k in i.saturating_sub(kd)..i {
                let lik = chunks.entry(sc, e0 + k, i - k);
                for q in 0..kd {
                    out[i * kd + q] = out[i * kd + q] - lik * out[k * kd + q];
                }
            }
            let inv = chunks.entry(sc, e0 + i, 0).recip();
            for v in &mut out[i * kd..(i + 1) * kd] {
                *v = *v * inv;
            }
        }
    });
    Ok(data)
}

/// The separators' Schur complement `S = A_SS − Σ_c W_cᵀ W_c` of every system, `(batch, seps,
/// sep_kd)`: the `2kd × 2kd` products per chunk in parallel, then summed per system in chunk
/// order.
fn schur<T: Real>(a: &BandBatch<T>, l: &Layout, left: &[T], right: &[T], par: Par) -> Result<BandBatch<T>> {
    let (batch, n, kd, w) = (a.batch(), a.n(), l.kd, l.kd + 1);
    let (k2, m, ab) = (2 * kd, l.m, a.as_slice());
    let count = batch * l.parts;
    let mut prods: Vec<T> = zeroed_vec_par("schur", Vec::new(), product("schur", &[count, k2, k2])?, count, par)?;
    prods.par_chunks_mut(k2 * k2).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, cm)| {
        let c = sc % l.parts;
        let (wl, wr) = (&left[sc * m * kd..(sc * m + l.len(c)) * kd], &right[sc * kd * kd..(sc + 1) * kd * kd]);
        let (e0, t) = tail(l, c);
        // W_Lᵀ W_L (the lower triangle, mirrored), W_Rᵀ W_L on the last rows, W_Rᵀ W_R.
        let acc = gram(wl, kd);
        for q1 in 0..kd {
            cm[q1 * k2..q1 * k2 + q1 + 1].copy_from_slice(&acc[q1 * kd..q1 * kd + q1 + 1]);
        }
        for i in 0..t {
            let (rr, rl) = (&wr[i * kd..(i + 1) * kd], &wl[(e0 + i) * kd..(e0 + i + 1) * kd]);
            for q1 in 0..kd {
                for q2 in 0..kd {
                    cm[(kd + q1) * k2 + q2] = cm[(kd + q1) * k2 + q2] + rr[q1] * rl[q2];
                }
                for q2 in 0..=q1 {
                    cm[(kd + q1) * k2 + kd + q2] = cm[(kd + q1) * k2 + kd + q2] + rr[q1] * rr[q2];
                }
            }
        }
    });
    let (ns, ws) = (l.seps(), l.sep_kd() + 1);
    let mut data = zeroed_vec_par("schur", Vec::new(), product("schur", &[batch, ns, ws])?, batch, par)?;
    data.par_chunks_mut(ns * ws).enumerate().with_min_len(min_len(par, batch)).for_each(|(s, out)| {
        l.sep_entries(|k, col, d, k2i| out[k * ws + (k2i - k)] = ab[(s * n + col) * w + d]);
        for c in 0..l.parts {
            let cm = &prods[(s * l.parts + c) * k2 * k2..(s * l.parts + c + 1) * k2 * k2];
            // The lower triangle: local q1 ≥ q2 is global g1 ≥ g2.
            for q1 in present(l, c) {
                for q2 in present(l, c).filter(|&q2| q2 <= q1) {
                    let (g1, g2) = (sep_index(kd, c, q1), sep_index(kd, c, q2));
                    out[g2 * ws + (g1 - g2)] = out[g2 * ws + (g1 - g2)] - cm[q1 * k2 + q2];
                }
            }
        }
    });
    Ok(BandBatch::from_parts(batch, ns, l.sep_kd(), data))
}

/// `$body` with the constant `$K` equal to `$k` for `$k` in `1..=8` (the width known to the
/// compiler: unrolled and vectorised; the same operations as `$dynamic`, in the same order),
/// else `$dynamic`.
macro_rules! with_width {
    ($k:expr, $K:ident => $body:expr, $dynamic:block) => {
        match $k {
            1 => { const $K: usize = 1; $body }
            2 => { const $K: usize = 2; $body }
            3 => { const $K: usize = 3; $body }
            4 => { const $K: usize = 4; $body }
            5 => { const $K: usize = 5; $body }
            6 => { const $K: usize = 6; $body }
            7 => { const $K: usize = 7; $body }
            8 => { const $K: usize = 8; $body }
            _ => $dynamic,
        }
    };
}

/// `WᵀW` (`kd × kd`, row-major) of the rows of `w` (`kd` per row): the whole product, each
/// entry summed over the rows in order; for `kd ≤ 8` with the width known to the compiler
/// (unrolled and vectorised: the dynamic loop took an eighth of a kd = 4 factorization).
fn gram<T: Real>(w: &[T], kd: usize) -> Vec<T> {
    fn fixed<T: Real, const K: usize>(w: &[T]) -> Vec<T> {
        let mut acc = [[T::zero(); K]; K];
        for row in w.as_chunks::<K>().0 {
            for (accr, &a) in acc.iter_mut().zip(row) {
                for (o, &b) in accr.iter_mut().zip(row) {
                    *o = *o + a * b;
                }
            }
        }
        acc.concat()
    }
    with_width!(kd, K => fixed::<T, K>(w), {
        let mut acc = vec![T::zero(); kd * kd];
        for row in w.chunks_exact(kd) {
            for (&a, accr) in row.iter().zip(acc.chunks_exact_mut(kd)) {
                for (o, &b) in accr.iter_mut().zip(row) {
                    *o = *o + a * b;
                }
            }
        }
        acc
    })
}

/// `t += Wᵀ y` for the rows of `w` (`kd = t.len()` per row) and `y[i·stride]`, each entry of `t`
/// summed over the rows in order (the width known to the compiler for `kd ≤ 8`).
fn wt_y<T: Real>(t: &mut [T], w: &[T], y: &[T], stride: usize) {
    fn fixed<T: Real, const K: usize>(t: &mut [T], w: &[T], y: &[T], stride: usize) {
        let mut acc: [T; K] = std::array::from_fn(|q| t[q]);
        for (row, &yv) in w.as_chunks::<K>().0.iter().zip(y.iter().step_by(stride)) {
            for (o, &wv) in acc.iter_mut().zip(row) {
                *o = *o + wv * yv;
            }
        }
        t.copy_from_slice(&acc);
    }
    with_width!(t.len(), K => fixed::<T, K>(t, w, y, stride), {
        for (row, &yv) in w.chunks_exact(t.len()).zip(y.iter().step_by(stride)) {
            for (o, &wv) in t.iter_mut().zip(row) {
                *o = *o + wv * yv;
            }
        }
    })
}

/// `y[i·stride] −= W[i] · x` for the rows of `w` (`kd = x.len()` per row), each dot product in
/// order (the width known to the compiler for `kd ≤ 8`).
fn y_minus_wx<T: Real>(y: &mut [T], w: &[T], x: &[T], stride: usize) {
    fn fixed<T: Real, const K: usize>(y: &mut [T], w: &[T], x: &[T], stride: usize) {
        let x: [T; K] = std::array::from_fn(|q| x[q]);
        for (row, yv) in w.as_chunks::<K>().0.iter().zip(y.iter_mut().step_by(stride)) {
            *yv = *yv - row.iter().zip(&x).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
        }
    }
    with_width!(x.len(), K => fixed::<T, K>(y, w, x, stride), {
        for (row, yv) in w.chunks_exact(x.len()).zip(y.iter_mut().step_by(stride)) {
            *yv = *yv - row.iter().zip(x).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
        }
    })
}

/// The local separator columns of chunk `c` that exist: `0..kd` unless `c` is the first,
/// `kd..2kd` unless it is the last.
fn present(l: &Layout, c: usize) -> impl Iterator<Item = usize> + Clone {
    let lo = if c == 0 { l.kd } else { 0 };
    let hi = if c + 1 == l.parts { l.kd } else { 2 * l.kd };
    lo..hi
}

impl<T: Real> Partitioned<T> {
    fn shape(&self) -> (usize, usize, usize) {
        (self.a.batch(), self.a.n(), self.a.kd())
    }

    /// Solves in place the `batch` right-hand sides of `rhs` (`n × nrhs` each, row-major).
    /// Unchecked (the caller checks shapes and finiteness); errors only if scratch cannot be
    /// allocated.
    ///
    /// `y_c = L_c⁻¹ b_c`; `S x_S = b_S − Σ_c W_cᵀ y_c`; `x_c = L_c⁻ᵀ (y_c − W_c x_S)`: one
    /// forward and one backward sweep through the chunks, two products with the spikes.
    pub(crate) fn solve(&self, rhs: &mut [T], nrhs: usize, params: &Params) -> Result<()> {
        let (batch, n, kd) = self.shape();
        let (l, par, p) = (&self.layout, params.par(), inner(params));
        let (m, count) = (l.m, batch * l.parts);
        let (ns, len, k2) = (l.seps(), l.m * nrhs, 2 * kd);
        if nrhs == 0 {
            return Ok(());
        }
        // y_c = L_c⁻¹ b_c.
        let mut y = zeroed_vec_par("rhs", Vec::new(), product("rhs", &[count, len])?, count, par)?;
        y.par_chunks_mut(len).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, out)| {
            let (s, c) = (sc / l.parts, sc % l.parts);
            let from = (s * n + l.start(c)) * nrhs;
            out[..l.len(c) * nrhs].copy_from_slice(&rhs[from..from + l.len(c) * nrhs]);
        });
        self.chunks.solve_sweep(&mut y, nrhs, &p, Sweep::Forward)?;
        // t_c = W_cᵀ y_c per chunk, in parallel: per right-hand side `k`, `2kd` values (the
        // separator before, then after).
        let mut t = zeroed_vec_par("rhs", Vec::new(), product("rhs", &[count, nrhs, k2])?, count, par)?;
        t.par_chunks_mut(k2 * nrhs).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, tc)| {
            let c = sc % l.parts;
            let (wl, wr, yc) = self.pieces(sc, &y, nrhs);
            let (e0, tl) = tail(l, c);
            for (k, tk) in tc.chunks_exact_mut(k2).enumerate() {
                let (tl_part, tr_part) = tk.split_at_mut(kd);
                wt_y(tl_part, &wl[..l.len(c) * kd], &yc[k..], nrhs);
                wt_y(tr_part, &wr[..tl * kd], &yc[e0 * nrhs + k..], nrhs);
            }
        });
        // S x_S = b_S − Σ_c t_c, summed per system in chunk order.
        let mut xs = zeroed_vec_par("rhs", Vec::new(), product("rhs", &[batch, ns, nrhs])?, batch, par)?;
        xs.par_chunks_mut(ns * nrhs).enumerate().with_min_len(min_len(par, batch)).for_each(|(s, out)| {
            for k in 0..ns {
                let from = (s * n + l.sep_col(k)) * nrhs;
                out[k * nrhs..(k + 1) * nrhs].copy_from_slice(&rhs[from..from + nrhs]);
            }
            for c in 0..l.parts {
                let tc = &t[(s * l.parts + c) * k2 * nrhs..(s * l.parts + c + 1) * k2 * nrhs];
                for q in present(l, c) {
                    let g = sep_index(kd, c, q);
                    for k in 0..nrhs {
                        out[g * nrhs + k] = out[g * nrhs + k] - tc[k * k2 + q];
                    }
                }
            }
        });
        self.seps.solve_sweep(&mut xs, nrhs, &p, Sweep::Both)?;
        // x_c = L_c⁻ᵀ (y_c − W_c x_S).
        y.par_chunks_mut(len).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, yc)| {
            let (s, c) = (sc / l.parts, sc % l.parts);
            let (e0, tl) = tail(l, c);
            let xsys = &xs[s * ns * nrhs..(s + 1) * ns * nrhs];
            let wl = &self.left[sc * m * kd..(sc + 1) * m * kd];
            let wr = &self.right[sc * kd * kd..(sc + 1) * kd * kd];
            // The separators' values per right-hand side, contiguous: `xk[k·kd + q]`.
            let gather_x = |sep: usize| -> Vec<T> { (0..nrhs * kd).map(|i| xsys[(sep * kd + i % kd) * nrhs + i / kd]).collect() };
            if c > 0 {
                let xk = gather_x(c - 1);
                for (k, x) in xk.chunks_exact(kd).enumerate() {
                    y_minus_wx(&mut yc[k..], &wl[..l.len(c) * kd], x, nrhs);
                }
            }
            if c + 1 < l.parts {
                let xk = gather_x(c);
                for (k, x) in xk.chunks_exact(kd).enumerate() {
                    y_minus_wx(&mut yc[e0 * nrhs + k..], &wr[..tl * kd], x, nrhs);
                }
            }
        });
        self.chunks.solve_sweep(&mut y, nrhs, &p, Sweep::Backward)?;
        // Back into `rhs`: each chunk with the separator after it (contiguous rows).
        segments(rhs, l, batch, nrhs).into_par_iter().with_min_len(min_len(par, count)).for_each(|(s, c, out)| {
            let lc = l.len(c);
            let sc = s * l.parts + c;
            out[..lc * nrhs].copy_from_slice(&y[sc * len..sc * len + lc * nrhs]);
            if c + 1 < l.parts {
                let from = (s * ns + c * kd) * nrhs;
                out[lc * nrhs..].copy_from_slice(&xs[from..from + kd * nrhs]);
            }
        });
        Ok(())
    }

    /// Chunk `sc`'s left spike, right spike and rows of `y` (`nrhs` per row).
    fn pieces<'a>(&'a self, sc: usize, y: &'a [T], nrhs: usize) -> (&'a [T], &'a [T], &'a [T]) {
        let (m, kd) = (self.layout.m, self.layout.kd);
        (&self.left[sc * m * kd..(sc + 1) * m * kd], &self.right[sc * kd * kd..(sc + 1) * kd * kd], &y[sc * m * nrhs..(sc + 1) * m * nrhs])
    }

    /// `log det A_s` of every system: its chunks' (in order), then its separators'.
    pub(crate) fn logdet(&self) -> Vec<T> {
        let (chunks, seps) = (self.chunks.logdet(), self.seps.logdet());
        chunks.chunks_exact(self.layout.parts).zip(seps).map(|(c, s)| c.iter().fold(T::zero(), |a, &x| a + x) + s).collect()
    }

    /// Writes the band of every `A_s⁻¹` into `z` (band layout of `a`'s shape; every element
    /// written, zeros below the matrix). Errors only if scratch cannot be allocated.
    pub(crate) fn inverse_band(&self, z: &mut [T], params: &Params) -> Result<()> {
        let (batch, n, kd) = self.shape();
        let (l, par, p) = (&self.layout, params.par(), inner(params));
        let (m, w, k2, count) = (l.m, kd + 1, 2 * kd, batch * l.parts);
        let (ns, ws) = (l.seps(), l.sep_kd() + 1);
        let zc = self.chunks.inverse_band_unchecked(&p)?;
        let zs = self.seps.inverse_band_unchecked(&p)?;
        // X_c = A_c⁻¹ B_c = L_c⁻ᵀ W_c, both spikes side by side, `(batch·P, m, 2kd)`.
        let mut xv: Vec<T> = zeroed_vec_par("inverse_band", Vec::new(), product("inverse_band", &[count, m, k2])?, count, par)?;
        xv.par_chunks_mut(m * k2).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, xc)| {
            let (wl, wr, _) = self.pieces(sc, &[], 0);
            let (e0, tl) = tail(l, sc % l.parts);
            for (row, wrow) in xc.chunks_exact_mut(k2).zip(wl.chunks_exact(kd)) {
                row[..kd].copy_from_slice(wrow);
            }
            for i in 0..tl {
                xc[(e0 + i) * k2 + kd..(e0 + i + 1) * k2].copy_from_slice(&wr[i * kd..(i + 1) * kd]);
            }
        });
        self.chunks.solve_sweep(&mut xv, k2, &p, Sweep::Backward)?;
        let (zsv, zcv) = (zs.as_slice(), zc.as_slice());
        // V_c = X_c Y_c, with Y_c = S⁻¹ on chunk c's separators (symmetric: read from its band).
        let mut v: Vec<T> = zeroed_vec_par("inverse_band", Vec::new(), product("inverse_band", &[count, m, k2])?, count, par)?;
        v.par_chunks_mut(m * k2).enumerate().with_min_len(min_len(par, count)).for_each(|(sc, vc)| {
            let (s, c) = (sc / l.parts, sc % l.parts);
            let mut y = vec![T::zero(); k2 * k2];
            for q1 in present(l, c) {
                for q2 in present(l, c) {
                    let (g1, g2) = (sep_index(kd, c, q1), sep_index(kd, c, q2));
                    let (hi, lo) = (g1.max(g2), g1.min(g2));
                    y[q1 * k2 + q2] = zsv[(s * ns + lo) * ws + (hi - lo)];
                }
            }
            let xc = &xv[sc * m * k2..(sc + 1) * m * k2];
            for (vr, xr) in vc.chunks_exact_mut(k2).zip(xc.chunks_exact(k2)) {
                for (q1, &xq) in xr.iter().enumerate() {
                    for (o, &yv) in vr.iter_mut().zip(&y[q1 * k2..(q1 + 1) * k2]) {
                        *o = *o + xq * yv;
                    }
                }
            }
        });
        segments(z, l, batch, w).into_par_iter().with_min_len(min_len(par, count)).for_each(|(s, c, out)| {
            out.fill(T::zero());
            let sc = s * l.parts + c;
            let (lc, start) = (l.len(c), l.start(c));
            let (xc, vc) = (&xv[sc * m * k2..(sc + 1) * m * k2], &v[sc * m * k2..(sc + 1) * m * k2]);
            let zcc = &zcv[sc * m * w..(sc + 1) * m * w];
            // Inside the chunk: A_c⁻¹ + X_c Y_c X_cᵀ.
            for j in 0..lc {
                for d in 0..=kd.min(lc - 1 - j) {
                    let corr = vc[(j + d) * k2..(j + d + 1) * k2].iter().zip(&xc[j * k2..(j + 1) * k2]).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
                    out[j * w + d] = zcc[j * w + d] + corr;
                }
            }
            // Between the chunk and the separator after it: −V_c (the columns are the chunk's).
            l.couplings(c, |r, q, col, d| {
                if q >= kd {
                    out[(col - start) * w + d] = -vc[r * k2 + q];
                }
            });
            if c + 1 < l.parts {
                // Inside separator c (and to the next when chunk c + 1 is short): S⁻¹.
                let base = l.sep_start(c);
                for q in 0..kd {
                    let k = c * kd + q;
                    for d in 0..=kd.min(n - 1 - (base + q)) {
                        if let Some(k2i) = l.sep_target(k, d) {
                            out[(base + q - start) * w + d] = zsv[(s * ns + k) * ws + (k2i - k)];
                        }
                    }
                }
                // Between separator c and chunk c + 1: −V_(c+1) (the columns are separator c's).
                let vn = &v[(sc + 1) * m * k2..(sc + 2) * m * k2];
                l.couplings(c + 1, |r, q, col, d| {
                    if q < kd {
                        out[(col - start) * w + d] = -vn[r * k2 + q];
                    }
                });
            }
        });
        Ok(())
    }

    /// The systems (`systems[k]` the batch index of system `k`; its diagonal of `M` is row
    /// `systems[k]` of `diag`, `n` per system) with a pivot `p` (the diagonal of the chunk or
    /// separator factor at that column) where `fails(p, diag)`, each with its first such
    /// column of the original matrix.
    pub(crate) fn pivot_failures(&self, systems: &[usize], diag: &[T], fails: impl Fn(T, T) -> bool + Sync, par: Par) -> Vec<PivotFailure> {
        let (_, n, kd) = self.shape();
        let l = &self.layout;
        let first = |k: usize| -> Option<PivotFailure> {
            let s = systems[k];
            let dg = &diag[s * n..(s + 1) * n];
            let (sep, sep_stride) = self.seps.diag_strided(k);
            for c in 0..l.parts {
                let (l0, stride) = self.chunks.diag_strided(k * l.parts + c);
                let start = l.start(c);
                if let Some(r) = (0..l.len(c)).find(|&r| fails(l0[r * stride], dg[start + r])) {
                    return Some(PivotFailure { system: s, column: start + r });
                }
                if c + 1 < l.parts {
                    let base = l.sep_start(c);
                    if let Some(q) = (0..kd).find(|&q| fails(sep[(c * kd + q) * sep_stride], dg[base + q])) {
                        return Some(PivotFailure { system: s, column: base + q });
                    }
                }
            }
            None
        };
        (0..systems.len()).into_par_iter().with_min_len(min_len(par, systems.len())).filter_map(first).collect()
    }
}

/// `data` (`batch` systems of `n` rows of `row` elements) cut into each system's chunks, each
/// with the separator after it: `(system, chunk, rows)`, contiguous and disjoint.
fn segments<'a, T>(data: &'a mut [T], l: &Layout, batch: usize, row: usize) -> Vec<(usize, usize, &'a mut [T])> {
    let mut out = Vec::with_capacity(batch * l.parts);
    let mut rest = data;
    for s in 0..batch {
        for c in 0..l.parts {
            let end = if c + 1 < l.parts { l.start(c + 1) } else { l.n };
            let (seg, tail) = rest.split_at_mut((end - l.start(c)) * row);
            out.push((s, c, seg));
            rest = tail;
        }
    }
    out
}
