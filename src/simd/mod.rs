//! Which kernel runs, and SIMD dispatch.
//!
//! The fast kernels (the factorization and substitutions, the S-MNN assembly and gradient sums)
//! are written once, generic over a native vector ([`vector::Vector`]: a `__m512d`, a
//! `__m256d`, or one lane), and [`vector::dispatch`] runs them inside a function compiled with
//! the instruction set's `#[target_feature]`s after the CPU was found to have them. The older
//! `[T; L]` lane loops (selected inversion) run through [`pulp`] ([`dispatch`]) the same way.
//!
//! Two promises (see `docs/ARCHITECTURE.md`, "Invariants"): [`Kernel::Reference`] and
//! [`Kernel::Portable`] perform LAPACK's operations unfused, in its order, so their bits are the
//! same on every machine; the FMA kernels fuse each multiply–add, and are deterministic: the
//! same bits for a system whatever its position, the batch, the lanes or the threads.

pub(crate) mod vector;

/// Which implementation runs the batched kernels (a request: see [`crate::Params::with_kernel`]).
///
/// Two families:
///
/// - **Reproducible**: [`Kernel::Reference`] (one system at a time, LAPACK `dpbtf2`'s
///   operations in its order, no fused multiply–add) and [`Kernel::Portable`] (the same
///   operations in lane-interleaved packs) give the same bits on every machine. A factor made by
///   them is solved by them.
/// - **Fast**: [`Kernel::Auto`] (the default) and the instruction sets [`Kernel::Avx2`],
///   [`Kernel::Avx512`], [`Kernel::Neon`] fuse each multiply–add (one rounding where LAPACK's
///   order has two) and block the work for the registers and caches. They are deterministic: a
///   system's results do not depend on its position in the batch, the batch size, the thread
///   count, the lane width or how the last systems of a batch run, and (every one performing the
///   same fused operations in the same order) not on which of them runs. They differ from the
///   reference in rounding only, within the bounds `tests/packs.rs` derives and checks.
///
/// A choice this CPU cannot run falls back to [`Kernel::Portable`]. [`Kernel::available`] lists
/// those that run natively here. MKL calls this conditional numerical reproducibility.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum Kernel {
    /// The fast kernels under the best instruction set of this CPU (AVX-512, else AVX2, NEON):
    /// packs of systems, or one system at a time where a batch is too small for a pack (see
    /// `docs/ARCHITECTURE.md`).
    #[default]
    Auto,
    /// Reproducible: one system at a time with the per-system reference kernels, unfused, the
    /// same bits on every machine (their loops run within the system, compiled for the CPU's
    /// best instruction set: the same bits as the baseline build). A factor made by the fast
    /// kernels is still solved by them.
    Reference,
    /// Reproducible: lane-interleaved packs compiled for the baseline target (no run-time CPU
    /// features), unfused: bitwise [`Kernel::Reference`].
    Portable,
    /// Fast: the FMA kernels with AVX2 (x86-64 CPUs that have AVX2 and FMA).
    Avx2,
    /// Fast: the FMA kernels with AVX-512 (x86-64 CPUs with AVX-512 F/BW/CD/DQ/VL).
    Avx512,
    /// Fast: the FMA kernels with NEON (aarch64).
    Neon,
}

impl Kernel {
    /// The explicit kernels (not [`Kernel::Auto`]) this CPU runs natively.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Reference, Kernel::Portable, Kernel::Avx2, Kernel::Avx512, Kernel::Neon]
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// Whether this CPU runs `self` natively (always true for `Auto`, `Reference`, `Portable`).
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Auto | Kernel::Reference | Kernel::Portable => true,
            Kernel::Avx2 => Isa::Avx2.is_present(),
            Kernel::Avx512 => Isa::Avx512.is_present(),
            Kernel::Neon => Isa::Neon.is_present(),
        }
    }
}

/// An instruction set the packed kernels run under (resolved from a [`Kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Baseline target: `[T; L]` loops as the compiler vectorises them without extra features.
    Portable,
    /// x86-64-v3 (AVX2, FMA): pulp's `V3`.
    Avx2,
    /// x86-64-v4 (AVX-512): pulp's `V4`.
    Avx512,
    /// aarch64 NEON: pulp's `Arch` there.
    Neon,
}

impl Isa {
    /// Whether the CPU has this instruction set (what [`dispatch`] will find).
    pub(crate) fn is_present(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => pulp::x86::V3::try_new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => pulp::x86::V4::try_new().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            _ => false,
        }
    }

    /// The fastest instruction set here: AVX-512 where the CPU has it, else AVX2, NEON, or the
    /// portable build. Measured on an Intel Xeon (AVX-512 with two FMA units; `banded bench solve
    /// --n 1000 --batch 256`, f64, AVX-512 / AVX2 ms): kd 1 0.66 / 0.70, kd 4 1.12 / 1.37, kd 17
    /// 4.0 / 5.2, kd 33 10.0 / 13.1, kd 64 29.6 / 41.2. Not measured on an AMD EPYC (Zen 4), where
    /// a 512-bit operation runs as two 256-bit halves: the arithmetic per cycle is AVX2's, and a
    /// pack row takes one instruction instead of two and the register tiles twice the registers,
    /// so it is chosen there too (the older, array-based kernels measured AVX2 faster there).
    pub(crate) fn best() -> Isa {
        [Isa::Avx512, Isa::Avx2, Isa::Neon].into_iter().find(|i| i.is_present()).unwrap_or(Isa::Portable)
    }

    /// The kernel request that runs under this instruction set.
    pub(crate) fn kernel(self) -> Kernel {
        match self {
            Isa::Portable => Kernel::Portable,
            Isa::Avx2 => Kernel::Avx2,
            Isa::Avx512 => Kernel::Avx512,
            Isa::Neon => Kernel::Neon,
        }
    }

    /// The instruction set a kernel request runs under (`None`: the per-system reference).
    pub(crate) fn of(kernel: Kernel) -> Option<Isa> {
        let isa = match kernel {
            Kernel::Reference => return None,
            Kernel::Auto => return Some(Isa::best()),
            Kernel::Portable => Isa::Portable,
            Kernel::Avx2 => Isa::Avx2,
            Kernel::Avx512 => Isa::Avx512,
            Kernel::Neon => Isa::Neon,
        };
        Some(if isa.is_present() { isa } else { Isa::Portable })
    }
}

/// Runs `op` with the instruction set `isa` (the portable path if the CPU lacks it).
///
/// Dispatch once per pack or window, never inside a per-column loop: everything `op` calls in
/// its hot loops must be `#[inline(always)]` so that it is compiled with `isa`'s features.
#[inline(always)]
pub(crate) fn dispatch<Op: pulp::WithSimd>(isa: Isa, op: Op) -> Op::Output {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            if let Some(simd) = pulp::x86::V3::try_new() {
                return pulp::Simd::vectorize(simd, op);
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return pulp::Simd::vectorize(simd, op);
            }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => return pulp::Arch::new().dispatch(op),
        _ => {}
    }
    pulp::Simd::vectorize(pulp::Scalar::new(), op)
}
