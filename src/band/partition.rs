//! How one long system is split for the partitioned (parallel-in-`n`) Cholesky: `P` chunks of
//! columns separated by `P − 1` separators of `kd` columns each, and the rule that picks `P`.
//!
//! ```text
//!  columns:  | chunk 0 | sep 0 | chunk 1 | sep 1 | … | chunk P−1 |
//!  widths:     len_0     kd      len_1     kd          len_(P−1)
//! ```
//!
//! A chunk couples (within the band) only to its own columns and to the separators on either
//! side, so ordering the separators last makes the chunks' interiors independent. The
//! algorithm is in `crate::llt` (`partitioned.rs`) and `docs/ARCHITECTURE.md`, "One long system".

use crate::params::Params;
use crate::scalar::Real;
use crate::simd::Isa;

/// How many partitions (chunks) the factorization of each system of a batch is split into, an
/// option of [`Params`] (see [`Params::with_partitions`]).
///
/// The count never depends on the number of threads: for given `n`, `kd`, batch size and
/// option the same partitions, hence the same bits, on 1 thread or 128.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partitions {
    /// [`partitions`]'s rule (the default): split systems of batches below one pack that are
    /// long enough and whose band is at most [`AUTO_MAX_KD`] wide, into up to
    /// [`MAX_AUTO_PARTS`] chunks of at least [`min_chunk`] columns; never under
    /// [`Kernel::Reference`](crate::Kernel::Reference).
    #[default]
    Auto,
    /// Never split: the sequential factorization, column after column.
    Off,
    /// Split every system into this many chunks (fewer where `n` is too short for them: every
    /// chunk keeps at least one column, so at most `⌊(n + kd)/(kd + 1)⌋`); 1 is the same as
    /// [`Off`](Self::Off), and so is `kd = 0`. For batches of any size and under every kernel.
    Count(usize),
}

/// The most chunks [`Partitions::Auto`] splits one system into: enough 8-lane packs of chunks
/// (128) to keep 128 cores busy. A constant, not this machine's core count, so that the
/// result does not depend on where it runs.
pub const MAX_AUTO_PARTS: usize = 1024;

/// The widest band [`Partitions::Auto`] splits. The extra work of the split grows with `kd`
/// while the sequential path gets faster per flop (from kd 8 a lone system's columns run in
/// vectors): measured on an Intel Xeon (AVX-512), n = 10⁶, f64, the split path on one thread
/// against the sequential one: 1.2× / 2.3× / 3.3× the time at kd 1 / 4 / 8, 3.8× / 4.7× at
/// kd 12 / 17, where it only pays on many cores ([`Partitions::Count`] forces it).
pub const AUTO_MAX_KD: usize = 8;

/// The shortest chunk [`Partitions::Auto`] makes, in columns, at bandwidth `kd`: long enough
/// that a chunk's own work (≈ `len·kd²` multiply–adds and `len` pivots) dwarfs its share of the
/// separator system (≈ `8·kd³`) and the per-chunk overhead.
pub fn min_chunk(kd: usize) -> usize {
    256.max(32 * kd)
}

/// The number of chunks each system of a batch of `batch` systems of order `n` and bandwidth
/// `kd` is factored in, under `params` (1: not partitioned). The one rule:
///
/// - [`Partitions::Off`] → 1; [`Partitions::Count(p)`](Partitions::Count) → `p`, capped so that
///   every chunk keeps a column;
/// - [`Partitions::Auto`] → 1 under [`Kernel::Reference`](crate::Kernel::Reference), for
///   `kd = 0` and `kd > AUTO_MAX_KD`, and for batches of at least one pack ([`pack_lanes`](super::pack_lanes) > 1: the
///   batch already runs in parallel and at the packs' speed, so splitting only adds work);
///   otherwise `min(⌊n / (min_chunk(kd) + kd)⌋, MAX_AUTO_PARTS)`, and 1 if that is below 2.
///
/// A system alone runs its columns as one chain of dependent square roots and divisions; its
/// chunks run as packs of independent chains, which pays for part of the extra work: on one
/// thread the split path takes 1.2–3.3× the sequential one's time at kd 1–8, and its chunks run
/// in parallel (`docs/ARCHITECTURE.md`, "One long system").
pub fn partitions<T: Real>(batch: usize, n: usize, kd: usize, params: &Params) -> usize {
    let most = max_parts(n, kd);
    match params.partitions() {
        Partitions::Off => 1,
        // kd = 0: the columns are independent already (and a separator would be empty).
        Partitions::Count(p) => if kd == 0 { 1 } else { p.clamp(1, most) },
        Partitions::Auto => {
            if Isa::of(params.kernel()).is_none() || kd == 0 || kd > AUTO_MAX_KD || super::pack_lanes::<T>(batch, kd, params) > 1 {
                return 1;
            }
            let p = (n / (min_chunk(kd) + kd)).min(MAX_AUTO_PARTS);
            if p < 2 { 1 } else { p }
        }
    }
}

/// The most chunks a system of order `n` splits into with every chunk keeping a column:
/// `P` chunks and `P − 1` separators of `kd` columns need `n ≥ P + (P − 1)·kd`.
fn max_parts(n: usize, kd: usize) -> usize {
    ((n + kd) / (kd + 1)).max(1)
}

/// Where the chunks and separators of one system lie (every system of a batch alike).
///
/// `n − (P − 1)·kd` columns are dealt to the `P` chunks as evenly as possible, the longer ones
/// first: chunk `c` has `len(c)` columns (`m` or `m − 1`, `m` = [`m`](Self::m)), and in the
/// factorization every chunk is padded to `m` columns with identity columns after its last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub n: usize,
    pub kd: usize,
    /// Chunks, `P ≥ 2`.
    pub parts: usize,
    /// Columns of the longest chunk (the padded length of all).
    pub m: usize,
    /// `len(c) = m` for `c < long`, `m − 1` after (`long = P` when all are equal).
    long: usize,
}

impl Layout {
    /// The layout of `parts ≥ 2` chunks (the caller caps it by [`max_parts`]: `n ≥ parts +
    /// (parts − 1)·kd`, and `kd ≥ 1`).
    pub fn new(n: usize, kd: usize, parts: usize) -> Self {
        debug_assert!(parts >= 2 && kd >= 1 && parts <= max_parts(n, kd));
        let cols = n - (parts - 1) * kd;
        let (base, extra) = (cols / parts, cols % parts);
        let (m, long) = if extra == 0 { (base, parts) } else { (base + 1, extra) };
        Self { n, kd, parts, m, long }
    }
    /// Columns of chunk `c`.
    pub fn len(&self, c: usize) -> usize {
        if c < self.long { self.m } else { self.m - 1 }
    }
    /// The first column of chunk `c`.
    pub fn start(&self, c: usize) -> usize {
        c * (self.m + self.kd) - c.saturating_sub(self.long)
    }
    /// The first column of separator `c < P − 1` (right after chunk `c`).
    pub fn sep_start(&self, c: usize) -> usize {
        self.start(c) + self.len(c)
    }
    /// Order of the separator system: `(P − 1)·kd`.
    pub fn seps(&self) -> usize {
        (self.parts - 1) * self.kd
    }
    /// Bandwidth of the separator system (block tridiagonal in `kd × kd` blocks):
    /// `min(2kd − 1, seps − 1)`.
    pub fn sep_kd(&self) -> usize {
        (2 * self.kd - 1).min(self.seps() - 1)
    }
    /// The original column of separator-system column `k` (separator `k / kd`, column `k % kd`).
    pub fn sep_col(&self, k: usize) -> usize {
        self.sep_start(k / self.kd) + k % self.kd
    }

    /// Calls `f(r, q, col, d)` for every entry of `A` coupling chunk `c` to its separators, in a
    /// fixed order: chunk row `r` (local, `< len(c)`), separator column `q` (local to the chunk's
    /// two separators: `q < kd` the one before it, separator `c − 1`; `kd ≤ q < 2kd` the one
    /// after it, separator `c`, column `q − kd`), and where the entry lies in the band layout:
    /// `A[col + d, col]`.
    pub fn couplings(&self, c: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (kd, len, start) = (self.kd, self.len(c), self.start(c));
        if c > 0 {
            // Separator column g = start − kd + q; rows start + r with d = kd − q + r ≤ kd.
            for q in 0..kd {
                for r in 0..=q.min(len - 1) {
                    f(r, q, start - kd + q, kd - q + r);
                }
            }
        }
        if c + 1 < self.parts {
            // Separator column g = start + len + q; rows start + r with d = len + q − r ≤ kd.
            for q in 0..kd {
                for r in (len + q).saturating_sub(kd)..len {
                    f(r, kd + q, start + r, len + q - r);
                }
            }
        }
    }

    /// Calls `f(k, col, d, k2)` for every entry of `A` between two separator columns (`k2 ≥ k`
    /// their separator-system indices; `A[col + d, col]` in the band layout), column by column.
    pub fn sep_entries(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        for k in 0..self.seps() {
            let g = self.sep_col(k);
            for d in 0..=self.kd.min(self.n - 1 - g) {
                if let Some(k2) = self.sep_target(k, d) {
                    f(k, g, d, k2);
                }
            }
        }
    }

    /// The separator-system index of the row `d` below separator-system column `k`, or `None`
    /// when that row is in the next chunk (a coupling; rows past `n` are the caller's to skip).
    pub fn sep_target(&self, k: usize, d: usize) -> Option<usize> {
        let (c, q, kd) = (k / self.kd, k % self.kd, self.kd);
        if q + d < kd {
            return Some(k + d);
        }
        // Past this separator: chunk c + 1, then separator c + 1.
        let (r, next) = (q + d - kd, self.len(c + 1));
        (r >= next).then(|| (c + 1) * kd + r - next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column is in exactly one chunk or separator, in order; couplings and separator
    /// entries are exactly the band entries between them.
    #[test]
    fn layout_covers_the_band() {
        for n in 1..60 {
            for kd in 1..6 {
                for parts in 2..=max_parts(n, kd) {
                    let l = Layout::new(n, kd, parts);
                    let mut next = 0;
                    for c in 0..parts {
                        assert_eq!(l.start(c), next, "n {n} kd {kd} P {parts} chunk {c}");
                        assert!(l.len(c) >= 1 && l.len(c) <= l.m);
                        next += l.len(c);
                        if c + 1 < parts {
                            assert_eq!(l.sep_start(c), next);
                            next += kd;
                        }
                    }
                    assert_eq!(next, n);
                    // Which block each column is in: (is separator, index).
                    let mut block = vec![(false, 0); n];
                    for c in 0..parts {
                        for j in 0..l.len(c) {
                            block[l.start(c) + j] = (false, c);
                        }
                    }
                    for k in 0..l.seps() {
                        block[l.sep_col(k)] = (true, k);
                    }
                    let mut seen = std::collections::BTreeSet::new();
                    for c in 0..parts {
                        l.couplings(c, |r, q, col, d| {
                            let (i, j) = (col + d, col);
                            assert!(d <= kd && i < n);
                            let row = l.start(c) + r;
                            let sep = if q < kd { l.sep_col((c - 1) * kd + q) } else { l.sep_col(c * kd + q - kd) };
                            assert!((i, j) == (row, sep) || (i, j) == (sep, row));
                            assert!(seen.insert((i, j)));
                        });
                    }
                    l.sep_entries(|k, col, d, k2| {
                        assert_eq!(block[col], (true, k));
                        assert_eq!(block[col + d], (true, k2));
                        assert!(k2 - k <= l.sep_kd());
                        assert!(seen.insert((col + d, col)));
                    });
                    for j in 0..n {
                        for d in 0..=kd.min(n - 1 - j) {
                            let (bi, bj) = (block[j + d], block[j]);
                            let same_chunk = !bi.0 && !bj.0 && bi.1 == bj.1;
                            assert!(same_chunk || seen.contains(&(j + d, j)), "n {n} kd {kd} P {parts}: ({}, {j}) missed", j + d);
                            assert!(bi.0 || bj.0 || bi.1 == bj.1, "two chunks coupled");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rule() {
        let p = Params::default();
        assert_eq!(partitions::<f64>(1, 1_000_000, 4, &p), MAX_AUTO_PARTS);
        assert_eq!(partitions::<f64>(1, 10_000, 4, &p), 10_000 / 260);
        assert_eq!(partitions::<f64>(1, 500, 4, &p), 1);
        assert_eq!(partitions::<f64>(7, 100_000, 4, &p), 100_000 / 260);
        assert_eq!(partitions::<f64>(8, 100_000, 4, &p), 1, "a full pack is not split");
        assert_eq!(partitions::<f32>(15, 100_000, 4, &p), 100_000 / 260);
        assert_eq!(partitions::<f64>(1, 100_000, 0, &p), 1);
        assert_eq!(partitions::<f64>(1, 1_000_000, AUTO_MAX_KD, &p), MAX_AUTO_PARTS);
        assert_eq!(partitions::<f64>(1, 1_000_000, AUTO_MAX_KD + 1, &p), 1, "wide bands are not split");
        assert_eq!(partitions::<f64>(1, 1_000_000, 17, &p.with_partitions(Partitions::Count(64))), 64);
        assert_eq!(partitions::<f64>(1, 100_000, 4, &p.with_kernel(crate::Kernel::Reference)), 1);
        assert_eq!(partitions::<f64>(1, 100_000, 4, &p.with_partitions(Partitions::Off)), 1);
        assert_eq!(partitions::<f64>(64, 100, 4, &p.with_partitions(Partitions::Count(7))), 7);
        assert_eq!(partitions::<f64>(1, 9, 4, &p.with_partitions(Partitions::Count(7))), 2);
        assert_eq!(partitions::<f64>(1, 1, 4, &p.with_partitions(Partitions::Count(7))), 1);
        assert_eq!(partitions::<f64>(1, 100, 4, &p.with_partitions(Partitions::Count(0))), 1);
        // Never the thread count.
        let one = p.with_par(crate::Par::Seq);
        assert_eq!(partitions::<f64>(1, 1_000_000, 4, &one), partitions::<f64>(1, 1_000_000, 4, &p));
    }
}
