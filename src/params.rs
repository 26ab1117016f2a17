//! Options shared by every batched operation.

use crate::band::Partitions;
use crate::par::{Par, all_threads};
use crate::simd::Kernel;

/// Options shared by the batched operations: parallelism, input checks and the kernel.
///
/// Built from [`Params::default`] with `with_*` methods, so that adding an option breaks no
/// caller:
///
/// ```
/// use banded::{Kernel, Par, Params};
/// let p = Params::default().with_par(Par::Seq).with_check_finite(false);
/// assert_eq!((p.par(), p.check_finite(), p.kernel()), (Par::Seq, false, Kernel::Auto));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    par: Par,
    check_finite: bool,
    kernel: Kernel,
    partitions: Partitions,
}

impl Default for Params {
    /// Every thread of the current rayon pool, inputs checked, [`Kernel::Auto`],
    /// [`Partitions::Auto`].
    fn default() -> Self {
        Self { par: all_threads(), check_finite: true, kernel: Kernel::Auto, partitions: Partitions::Auto }
    }
}

impl Params {
    /// Parallelism over the batch. Default: every thread of the current rayon pool.
    pub fn par(&self) -> Par {
        self.par
    }
    /// Whether inputs are checked for NaN and infinity first (as SciPy's `check_finite=True`),
    /// returning [`crate::Error::NonFinite`]. Default `true`. With `false` the O(size) scan is
    /// skipped; a non-finite matrix entry then still surfaces as
    /// [`crate::Error::NotPositiveDefinite`] (a NaN reaches a pivot), but non-finite right-hand
    /// sides propagate into the result.
    pub fn check_finite(&self) -> bool {
        self.check_finite
    }
    /// The kernel that runs the batched operations. Default [`Kernel::Auto`].
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
    /// Whether each system's factorization is split into chunks that run in parallel (one
    /// long system on every core; see [`Partitions`] and [`crate::band::partitions`]). Default
    /// [`Partitions::Auto`].
    pub fn partitions(&self) -> Partitions {
        self.partitions
    }

    /// These parameters with parallelism `par`.
    #[must_use]
    pub fn with_par(self, par: Par) -> Self {
        Self { par, ..self }
    }
    /// These parameters with input checks on or off (see [`check_finite`](Self::check_finite)).
    #[must_use]
    pub fn with_check_finite(self, check_finite: bool) -> Self {
        Self { check_finite, ..self }
    }
    /// These parameters with kernel `kernel`: [`Kernel::Reference`] for results that are the
    /// same bits on every machine, the default [`Kernel::Auto`] for speed (deterministic on one
    /// machine), a named instruction set for tests and measurements (see [`Kernel`]).
    #[must_use]
    pub fn with_kernel(self, kernel: Kernel) -> Self {
        Self { kernel, ..self }
    }
    /// These parameters with partitioning `partitions` ([`Partitions::Off`] for the sequential
    /// factorization's bits, [`Partitions::Count`] to force a split for tests and benchmarks).
    #[must_use]
    pub fn with_partitions(self, partitions: Partitions) -> Self {
        Self { partitions, ..self }
    }

    /// The number of threads `par` spreads a batch over (1 for `Par::Seq`).
    pub(crate) fn threads(&self) -> usize {
        match self.par {
            Par::Seq => 1,
            Par::Rayon(k) => k.get(),
        }
    }
}
