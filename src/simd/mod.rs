//! Which kernel runs, and SIMD dispatch through [`pulp`] (and, for the fast kernels, native
//! vectors: [`vector`]).
//!
//! The packed kernels are written once, as loops over `[T; L]` lanes (one lane per system of a
//! pack, see `band/lanes.rs`), inside a [`pulp::WithSimd`] operation. [`dispatch`] runs such an
//! operation under the instruction set of an [`Isa`]: pulp compiles the inlined lane loops with
//! that set's `#[target_feature]`s and proves at run time that the CPU has them (its `V3`/`V4`
//! tokens exist only where detected), so the compiler turns each `[T; L]` operation into
//! `L·size_of::<T>()` bytes of AVX2, AVX-512 or NEON instructions. The same source compiled for
//! the baseline target is the portable path. Every path performs the same IEEE operations in
//! the same order (no FMA contraction: Rust never fuses `a * b + c`), so they agree bit for bit
//! with each other and with the per-system reference kernels (see `docs/ARCHITECTURE.md`).

pub(crate) mod vector;

/// Which implementation runs the batched kernels (a request: see [`crate::Params::with_kernel`]).
///
/// Every choice gives bitwise the same results; they differ in speed only. A choice this CPU
/// cannot run falls back to [`Kernel::Portable`] (same bits, no SIMD instructions beyond the
/// baseline target). [`Kernel::available`] lists those that run natively here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum Kernel {
    /// The fastest path for the shape and CPU: packs of systems with the best instruction set
    /// measured on this kind of CPU, or one system at a time where a batch is too small for a
    /// pack (see `docs/ARCHITECTURE.md`).
    #[default]
    Auto,
    /// One system at a time with the per-system reference kernels (their loops run within the
    /// system, compiled for the CPU's best instruction set: the same bits as the baseline
    /// build; a factor already stored in packs is still solved in packs, with the instruction
    /// set it was factored with).
    Reference,
    /// Lane-interleaved packs compiled for the baseline target (no run-time CPU features).
    Portable,
    /// Lane-interleaved packs with AVX2 (x86-64 CPUs that have AVX2 and FMA).
    Avx2,
    /// Lane-interleaved packs with AVX-512 (x86-64 CPUs with AVX-512 F/BW/CD/DQ/VL).
    Avx512,
    /// Lane-interleaved packs with NEON (aarch64).
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
