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
        Par::Rayon(k) => batch.div_ceil(4 * k.get()).max(1),
    }
}

/// `Par::Rayon` over every thread of the current rayon pool.
pub fn all_threads() -> Par {
    Par::rayon(0)
}
