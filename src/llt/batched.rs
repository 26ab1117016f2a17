//! The batched drivers: a batch split into packs by the lane policy (`band/lanes.rs`), every
//! pack run by the windowed drivers (`driver.rs`) under the instruction set of the plan
//! (`crate::simd`), the packs spread over rayon; or, for batches too small for a pack, one
//! system at a time (the fast kernels on one lane, or the reference kernels under
//! `Kernel::Reference`).
//!
//! Scratch is planned per pack ([`scratch_len`]) and taken from the calling thread's reusable
//! scratch (`alloc::with_thread_scratch`); nothing allocates inside a per-column loop.

use rayon::prelude::*;

use crate::alloc::with_thread_scratch;
use crate::band::lanes::{block_cols, gather_all, pack_lanes, scatter, tail_as_pack, with_lanes};
use crate::par::{Par, join, min_len};
use crate::params::Params;
use crate::scalar::Real;
use crate::simd::Isa;

use super::driver::{BandFactor, Columns, Factored, Filled, Gathered, InMemory, Streamed, Sweep, factor_pack, solve_pack};
use super::kernels::Dims;
use super::{factor_system, solve_system};

/// Per system: `Ok`, or `Err(column)` of the first pivot that is not positive and finite.
pub(crate) type Status = Vec<Result<(), usize>>;

/// How a batch runs: `lanes` systems per pack under `isa` (`lanes == 1`: one system at a time,
/// with the fast kernels on one lane), or with the per-system reference kernels
/// (`reference`, `Kernel::Reference`: then `lanes == 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub isa: Isa,
    pub lanes: usize,
    pub reference: bool,
}

impl Plan {
    /// The plan for `batch` systems of bandwidth `kd` under `params` ([`pack_lanes`]).
    pub(crate) fn new<T: Real>(batch: usize, kd: usize, params: &Params) -> Self {
        let isa = Isa::of(params.kernel());
        Self { isa: isa.unwrap_or(Isa::Portable), lanes: pack_lanes::<T>(batch, kd, params), reference: isa.is_none() }
    }
}

/// A batch's shape and right-hand sides: `batch` systems of shape `dims`, `rhs` their
/// row-major `n × nrhs` right-hand sides (empty when `dims.nrhs == 0`).
pub(crate) struct Batch<'a, T> {
    pub batch: usize,
    pub dims: Dims,
    pub rhs: &'a mut [T],
    pub par: Par,
}

/// What a pack's columns are read from, for [`scratch_len`].
#[derive(Clone, Copy)]
enum Source {
    Gathered,
    Streamed,
    Filled,
    InMemory,
}

/// Scratch elements of `T` one pack of `L` lanes needs with `source`: the right-hand sides
/// (`n·nrhs` rows; none when they are solved where they are), the reciprocal pivots (`n`
/// rows) and, for [`Source::Gathered`], the whole pack (`n·(kd+1)` rows), for
/// [`Source::Streamed`] one window of columns. Laid out in that order: columns, right-hand
/// sides, reciprocals ([`split_scratch`]).
fn scratch_len<T, const L: usize>(source: Source, dims: Dims, rhs_in_place: bool) -> usize {
    (source_rows::<T, L>(source, dims) + if rhs_in_place { 0 } else { dims.n * dims.nrhs } + dims.n) * L
}

/// Rows of scratch the column source of [`scratch_len`] needs.
fn source_rows<T, const L: usize>(source: Source, dims: Dims) -> usize {
    let w = dims.kd + 1;
    match source {
        Source::Gathered => dims.n * w,
        Source::Streamed => (block_cols::<T, L>(dims.n, dims.kd) + dims.kd.min(dims.n)) * w,
        Source::Filled | Source::InMemory => 0,
    }
}

/// Rows of `L` lanes.
type Rows<'a, T, const L: usize> = &'a mut [[T; L]];

/// [`scratch_len`]'s scratch as `(columns, right-hand sides, reciprocals)` rows of `L` lanes
/// (the right-hand sides empty with `rhs_in_place`).
fn split_scratch<T: Real, const L: usize>(s: &mut [T], source: Source, dims: Dims, rhs_in_place: bool) -> (Rows<'_, T, L>, Rows<'_, T, L>, Rows<'_, T, L>) {
    let rows = s.as_chunks_mut::<L>().0;
    let (cols, rest) = rows.split_at_mut(source_rows::<T, L>(source, dims));
    let (rbuf, inv) = rest.split_at_mut(if rhs_in_place { 0 } else { dims.n * dims.nrhs });
    (cols, rbuf, inv)
}

/// `v` in `count` consecutive pieces of `len` (`count` empty pieces when `len == 0`).
pub(crate) fn pieces<T>(v: &mut [T], len: usize, count: usize) -> Vec<&mut [T]> {
    if len == 0 { (0..count).map(|_| &mut [][..]).collect() } else { v.chunks_mut(len).take(count).collect() }
}

/// Factors one pack from `cols` under `isa`, its right-hand sides `rhs` (`≤ L` row-major
/// matrices; empty when `dims.nrhs == 0`) gathered into `rbuf`, solved, and scattered back
/// (with `L = 1` they are solved where they are: one system's row-major right-hand sides are
/// its pack layout). `inv`: `n` rows of scratch.
fn factor_one<T: Real, const L: usize, C: Columns<T, L>>(isa: Isa, mut cols: C, rhs: &mut [T], rbuf: &mut [[T; L]], dims: Dims, inv: &mut [[T; L]]) -> [usize; L] {
    let len = dims.n * dims.nrhs;
    if L == 1 {
        return factor_pack(isa, &mut cols, &mut rhs.as_chunks_mut::<L>().0[..len], dims, inv);
    }
    if len > 0 {
        gather_all(rhs, rbuf, len);
    }
    let fail = factor_pack(isa, &mut cols, &mut rbuf[..len], dims, inv);
    if len > 0 {
        scatter(&rbuf[..len], rhs, len, 0);
    }
    fail
}

/// Solves one pack's right-hand sides with the factor in `cols` (see [`factor_one`]).
fn solve_one<T: Real, const L: usize, C: Factored<T, L>>(isa: Isa, mut cols: C, rhs: &mut [T], rbuf: &mut [[T; L]], dims: Dims, inv: &mut [[T; L]], sweep: Sweep) {
    let len = dims.n * dims.nrhs;
    if L == 1 {
        return solve_pack(isa, &mut cols, &mut rhs.as_chunks_mut::<L>().0[..len], dims, inv, sweep);
    }
    gather_all(rhs, rbuf, len);
    solve_pack(isa, &mut cols, &mut rbuf[..len], dims, inv, sweep);
    scatter(&rbuf[..len], rhs, len, 0);
}

/// Per-lane failures of a pack as per-system statuses (only the `present` real lanes).
fn status<const L: usize>(fail: [usize; L], present: usize) -> impl Iterator<Item = Result<(), usize>> {
    fail.into_iter().take(present).map(|f| if f == usize::MAX { Ok(()) } else { Err(f) })
}

/// Factors (and with `nrhs > 0` solves) every system of `data` (`batch` systems in the band
/// layout) one at a time with the reference kernels; the factor stays in the band layout.
pub(crate) fn factor_reference<T: Real>(data: &mut [T], job: Batch<'_, T>) -> Status {
    let Dims { n, kd, nrhs } = job.dims;
    pieces(data, n * (kd + 1), job.batch)
        .into_par_iter()
        .zip(pieces(job.rhs, n * nrhs, job.batch))
        .with_min_len(min_len(job.par, job.batch))
        .map(|(a, x)| {
            let st = factor_system(a, n, kd);
            if st.is_ok() && nrhs > 0 {
                solve_system(a, n, kd, x, nrhs, Sweep::Both);
            }
            st
        })
        .collect()
}

/// Factors (and with `nrhs > 0` solves) every system of `data` (`batch` systems in the band
/// layout) one at a time with the fast kernels on one lane under `isa`, in place (one system's
/// band is its pack layout with `L = 1`): the same operations, hence bits, as in a lane of a
/// pack.
pub(crate) fn factor_singles<T: Real>(isa: Isa, data: &mut [T], job: Batch<'_, T>) -> Status {
    let dims = job.dims;
    let w = dims.kd + 1;
    pieces(data, dims.n * w, job.batch)
        .into_par_iter()
        .zip(pieces(job.rhs, dims.n * dims.nrhs, job.batch))
        .with_min_len(min_len(job.par, job.batch))
        .map(|(a, x)| {
            let cols = Filled { pack: a.as_chunks_mut::<1>().0, w, fill: |_: &mut [[T; 1]], _| {} };
            let fail = with_thread_scratch::<T, _>(scratch_len::<T, 1>(Source::Filled, dims, true), |s| {
                let (_, _, inv) = split_scratch::<T, 1>(s, Source::Filled, dims, true);
                factor_one::<T, 1, _>(isa, cols, x, &mut [], dims, inv)
            });
            if fail[0] == usize::MAX { Ok(()) } else { Err(fail[0]) }
        })
        .collect()
}

/// Factors (and with `nrhs > 0` solves, fused) `data`, `batch` systems in the band layout, in
/// packs of `L` under `isa`: the full packs gathered from the band layout and left in pack
/// layout in their own storage (see [`crate::llt::packed::Packed`]), the rest as
/// [`factor_tail`] leaves it. A failed system's storage and right-hand side hold garbage.
pub(crate) fn factor_packs<T: Real, const L: usize>(isa: Isa, data: &mut [T], job: Batch<'_, T>) -> Status {
    let dims = job.dims;
    let full = job.batch / L;
    factor_full_and_tail::<T, L, ()>(isa, data, job, vec![(); full], &|_, chunk, x, ()| {
        with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::Gathered, dims, false), |s| {
            let (buf, rbuf, inv) = split_scratch::<T, L>(s, Source::Gathered, dims, false);
            let cols = Gathered { band: chunk, buf, n: dims.n, kd: dims.kd, loaded: 0 };
            factor_one(isa, cols, x, rbuf, dims, inv)
        })
    })
}

/// [`factor_packs`] whose full packs are produced during the factorization instead of read
/// from the band layout: `make_fill(p, side)` gives, for full pack `p` (with its `side`, one per
/// full pack, e.g. the pack's share of an output), a function `fill(pack, upto)` that must make
/// the pack's first `upto` columns final in the pack layout (called with non-decreasing
/// `upto`, ending at `n`) before the factorization reads them. `data`: the full packs' storage
/// (any contents) followed by the other systems in the band layout, already filled. `L` must be
/// the plan's lanes ([`crate::llt::packed::Packed`] reads the packs with that width).
pub(crate) fn factor_filled<T: Real, const L: usize, S, G, F>(isa: Isa, data: &mut [T], job: Batch<'_, T>, sides: Vec<S>, make_fill: &G) -> Status
where
    S: Send,
    G: Fn(usize, S) -> F + Sync,
    F: FnMut(&mut [[T; L]], usize),
{
    let dims = job.dims;
    factor_full_and_tail::<T, L, S>(isa, data, job, sides, &|p, chunk, x, side| {
        with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::Filled, dims, false), |s| {
            let (_, rbuf, inv) = split_scratch::<T, L>(s, Source::Filled, dims, false);
            let cols = Filled { pack: chunk.as_chunks_mut::<L>().0, w: dims.kd + 1, fill: make_fill(p, side) };
            factor_one(isa, cols, x, rbuf, dims, inv)
        })
    })
}

/// A full pack's factorization: `(p, storage, rhs, side) → per-lane failures`.
type PackFn<'a, T, S, const L: usize> = dyn Fn(usize, &mut [T], &mut [T], S) -> [usize; L] + Sync + 'a;

/// Runs `per_pack` on the full packs of `data` (each with its right-hand sides and side) in
/// parallel, and [`factor_tail`] on the rest alongside.
fn factor_full_and_tail<T: Real, const L: usize, S: Send>(isa: Isa, data: &mut [T], job: Batch<'_, T>, sides: Vec<S>, per_pack: &PackFn<'_, T, S, L>) -> Status {
    let Batch { batch, dims, rhs, par } = job;
    let (len, blen) = (dims.n * (dims.kd + 1), dims.n * dims.nrhs);
    let full = batch / L;
    debug_assert_eq!(sides.len(), full);
    let (df, dt) = data.split_at_mut(full * L * len);
    let (bf, bt) = rhs.split_at_mut(full * L * blen);
    let (packs, tail) = join(
        par,
        || {
            pieces(df, len * L, full)
                .into_par_iter()
                .zip(pieces(bf, blen * L, full))
                .zip(sides)
                .enumerate()
                .with_min_len(min_len(par, full.max(1)))
                .map(|(p, ((chunk, x), side))| per_pack(p, chunk, x, side))
                .collect::<Vec<[usize; L]>>()
        },
        || factor_tail::<T, L>(isa, dt, Batch { batch: batch - full * L, dims, rhs: bt, par }),
    );
    packs.into_iter().flat_map(|f| status(f, L)).chain(tail).collect()
}

/// The systems after the full packs (`job.batch < L`, band layout, left in it): one padded
/// pack streamed through a window ([`tail_as_pack`]), or one at a time on one lane.
fn factor_tail<T: Real, const L: usize>(isa: Isa, data: &mut [T], job: Batch<'_, T>) -> Status {
    let (rem, dims) = (job.batch, job.dims);
    if !tail_as_pack(rem, L) {
        return factor_singles(isa, data, job);
    }
    let fail = with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::Streamed, dims, false), |s| {
        let (buf, rbuf, inv) = split_scratch::<T, L>(s, Source::Streamed, dims, false);
        let cols = Streamed { band: data, buf, n: dims.n, kd: dims.kd, start: 0, loaded: 0 };
        factor_one(isa, cols, job.rhs, rbuf, dims, inv)
    });
    status(fail, rem).collect()
}

/// Solves `b` (`batch` row-major `n × nrhs` matrices) in place with the factor `l` in the band
/// layout, under `plan`: in packs streamed from the band layout (the last one padded), or one
/// system at a time (with the reference kernels under `plan.reference`, which must then be
/// the kernels that made `l`); only the substitutions of `sweep`.
pub(crate) fn solve_band<T: Real>(plan: Plan, l: &[T], job: Batch<'_, T>, sweep: Sweep) {
    let Batch { batch, dims, rhs, par } = job;
    let Dims { n, kd, nrhs } = dims;
    if plan.reference {
        rhs.par_chunks_mut(n * nrhs)
            .zip(l.par_chunks(n * (kd + 1)))
            .with_min_len(min_len(par, batch))
            .for_each(|(x, l)| solve_system(l, n, kd, x, nrhs, sweep));
        return;
    }
    with_lanes!(plan.lanes, L => {
        rhs.par_chunks_mut(n * nrhs * L)
            .zip(l.par_chunks(n * (kd + 1) * L))
            .with_min_len(min_len(par, batch.div_ceil(L)))
            .for_each(|(x, lc)| solve_band_pack::<T, L>(plan.isa, lc, x, dims, sweep))
    })
}

/// One pack (`≤ L` systems) of [`solve_band`]; one system (`L = 1`) reads its band in place.
fn solve_band_pack<T: Real, const L: usize>(isa: Isa, l: &[T], x: &mut [T], dims: Dims, sweep: Sweep) {
    if L == 1 {
        return with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::InMemory, dims, true), |s| {
            let (_, _, inv) = split_scratch::<T, L>(s, Source::InMemory, dims, true);
            let cols = InMemory { pack: l.as_chunks::<L>().0, w: dims.kd + 1 };
            solve_one(isa, cols, x, &mut [], dims, inv, sweep);
        });
    }
    with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::Streamed, dims, false), |s| {
        let (buf, rbuf, inv) = split_scratch::<T, L>(s, Source::Streamed, dims, false);
        let cols = BandFactor { band: l, buf, n: dims.n, kd: dims.kd };
        solve_one(isa, cols, x, rbuf, dims, inv, sweep);
    })
}

/// Solves the full packs' systems with their factor in pack layout (`lf`: `full` packs of
/// `L·n·(kd+1)` elements) and the rest with theirs in the band layout (`lt`), as
/// [`factor_packs`] left them. With `rhs_packed`, the full packs' right-hand sides are in pack
/// layout too (`L·n·nrhs` elements per pack, solved in place with no gather or scatter); the
/// others' are row-major either way. Only the substitutions of `sweep`.
pub(crate) fn solve_packs<T: Real, const L: usize>(isa: Isa, lf: &[T], lt: &[T], job: Batch<'_, T>, rhs_packed: bool, sweep: Sweep) {
    let Batch { batch, dims, rhs, par } = job;
    let (len, blen) = (dims.n * (dims.kd + 1), dims.n * dims.nrhs);
    let full = batch / L;
    let (bf, bt) = rhs.split_at_mut(full * L * blen);
    join(
        par,
        || {
            bf.par_chunks_mut(blen * L).zip(lf.par_chunks(len * L)).with_min_len(min_len(par, full.max(1))).for_each(|(x, lc)| {
                let mut cols = InMemory { pack: lc.as_chunks::<L>().0, w: dims.kd + 1 };
                with_thread_scratch::<T, _>(scratch_len::<T, L>(Source::InMemory, dims, rhs_packed), |s| {
                    let (_, rbuf, inv) = split_scratch::<T, L>(s, Source::InMemory, dims, rhs_packed);
                    if rhs_packed {
                        solve_pack(isa, &mut cols, x.as_chunks_mut::<L>().0, dims, inv, sweep);
                    } else {
                        solve_one(isa, cols, x, rbuf, dims, inv, sweep);
                    }
                })
            })
        },
        || {
            let rem = batch - full * L;
            let lanes = if tail_as_pack(rem, L) { L } else { 1 };
            solve_band(Plan { isa, lanes, reference: false }, lt, Batch { batch: rem, dims, rhs: bt, par }, sweep);
        },
    );
}
