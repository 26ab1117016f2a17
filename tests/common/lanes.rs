//! Which layout a batch runs in: one system at a time, or lane-interleaved packs of the single
//! or double width ([`pack_lanes`]) with or without a tail, so that tests can draw batches
//! that reach each one and assert that they did.

use banded::band::pack_lanes;
use banded::{Params, Real};

/// How the last `batch mod L` systems of a batch in packs of `L` run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tail {
    /// There are none: the batch is whole packs.
    None,
    /// As one more pack, padded (at least `L/2` systems).
    Padded,
    /// One at a time (fewer than `L/2`).
    Single,
}

/// The tail of `batch` systems in packs of `lanes`.
pub fn tail(batch: usize, lanes: usize) -> Tail {
    match batch % lanes {
        0 => Tail::None,
        rem if 2 * rem >= lanes => Tail::Padded,
        _ => Tail::Single,
    }
}

/// A layout: `Some((wide, tail))`, packs of the single (`wide == false`) or double width with
/// `tail`, or `None`, one system at a time.
pub type Layout = Option<(bool, Tail)>;

/// Every layout: one at a time, and each width with each kind of tail.
pub const LAYOUTS: [Layout; 7] = [
    None,
    Some((false, Tail::None)),
    Some((false, Tail::Padded)),
    Some((false, Tail::Single)),
    Some((true, Tail::None)),
    Some((true, Tail::Padded)),
    Some((true, Tail::Single)),
];

/// Bandwidths up to this may run in double-width packs.
pub const WIDE_MAX_KD: usize = 8;

/// The single pack width of `T` under `p` (one 64-byte cache line per row: 8 f64 / 16 f32
/// lanes, or 1 under `Kernel::Reference`): what any large batch of a band too wide for double
/// width runs in.
pub fn base_lanes<T: Real>(p: &Params) -> usize {
    pack_lanes::<T>(1 << 20, WIDE_MAX_KD + 1, p)
}

/// The layout of `batch` systems of bandwidth `kd` in `T` under `p`.
pub fn layout_of<T: Real>(batch: usize, kd: usize, p: &Params) -> Layout {
    let lanes = pack_lanes::<T>(batch, kd, p);
    (lanes > 1).then(|| (lanes > base_lanes::<T>(p), tail(batch, lanes)))
}

/// The batch sizes up to `max` that run in `layout`.
pub fn sizes_for<T: Real>(layout: Layout, kd: usize, p: &Params, max: usize) -> Vec<usize> {
    (1..=max).filter(|&b| layout_of::<T>(b, kd, p) == layout).collect()
}
