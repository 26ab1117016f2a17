//! Parallelism over the batch.
//!
//! [`Par`] is faer's: `Par::Seq` runs on the calling thread, `Par::Rayon(k)` spreads the
//! systems of a batch over (at most about) `k` tasks of the current rayon pool. Run inside
//! `rayon::ThreadPool::install` to choose the pool.

pub use faer::Par;

/// `rayon`'s `with_min_len` for a batch of `batch` equal-cost systems under `par`:
/// `Seq` never splits (the whole batch runs on the calling thread); `Rayon(k)` splits into
/// about `4k` tasks for load balance.
pub(crate) fn min_len(par: Par, batch: usize) -> usize {
    match par {
        Par::Seq => batch.max(1),
        // Saturating: `Par::rayon(usize::MAX)` is a valid (if odd) request.
        Par::Rayon(k) => batch.div_ceil(k.get().saturating_mul(4)).max(1),
    }
}

/// `rayon::join(a, b)` under `Par::Rayon`; `a` then `b`, one after the other, under `Par::Seq`.
pub(crate) fn join<A, B, RA, RB>(par: Par, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match par {
        Par::Seq => (a(), b()),
        Par::Rayon(_) => rayon::join(a, b),
    }
}

/// `Par::Rayon` over every thread of the current rayon pool.
pub fn all_threads() -> Par {
    Par::rayon(0)
}
