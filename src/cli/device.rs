//! `--device`: where a command computes — the CPU, a CUDA device, or the host emulator of the
//! CUDA kernels — and the one place that opens it ([`Device::open`]).
//!
//! The flag parses the same on every build; a device the build cannot run (no `cuda` or no
//! `cuda-emulator` feature) is an error when it is opened, as is a machine without CUDA
//! ([`Error::Cuda`](crate::Error::Cuda) from `CudaBackend::new`): one `error: …` line and
//! exit status 1, before any file is read.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "cuda")]
use crate::cuda::CudaBackend;
use crate::{Error, Kernel, Params, Result};

/// The value of `--device`: `cpu`, `cuda` (= `cuda:0`), `cuda:N` or `emulator`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA device `N` (`cuda:N`; `cuda` is device 0). Needs the `cuda` feature.
    Cuda(usize),
    /// The CUDA kernels compiled for the CPU and run one thread at a time (slow; for tests).
    /// Needs the `cuda-emulator` feature.
    Emulator,
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "emulator" => Ok(Device::Emulator),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => match n.parse::<usize>() {
                    // `usize::from_str` takes a leading `+`; a device number is plain digits.
                    Ok(ordinal) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(Device::Cuda(ordinal)),
                    _ => Err(format!("`{n}` is not a device number: expected cuda:N with N = 0, 1, 2, …")),
                },
                None => Err(format!("unknown device `{s}`: expected cpu, cuda, cuda:N (CUDA device N) or emulator")),
            },
        }
    }
}

impl fmt::Display for Device {
    /// As spelled on the command line: `cpu`, `cuda:N`, `emulator`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Emulator => f.write_str("emulator"),
        }
    }
}

/// The `--device` flag of `banded solve`, `banded smnn forward|backward` and
/// `banded bench solve|smnn`.
#[derive(Debug, clap::Args)]
pub struct DeviceArg {
    /// Where to compute: cpu, cuda (= cuda:0), cuda:N (CUDA device N) or emulator
    ///
    /// cuda:N needs a banded built with `--features cuda`, an NVIDIA driver and libnvrtc;
    /// emulator runs the CUDA kernels on the CPU, one thread at a time (slow; for tests), and
    /// needs `--features cuda-emulator`. The results are the same on every device, up to
    /// rounding.
    #[arg(long, value_name = "DEVICE", default_value_t = Device::Cpu)]
    pub device: Device,
}

/// The `--kernel` flag of `banded solve` and `banded smnn forward|backward`: which CPU kernel
/// computes (the benches have their own, in `BenchArgs`).
#[derive(Debug, clap::Args)]
pub struct KernelArg {
    /// The CPU's kernel [default: auto]
    ///
    /// auto: the fastest for the shape and CPU; it fuses multiply–adds where the CPU has FMA,
    /// and its results are the same bits every run on this machine, whatever the batch size,
    /// threads or position of a system in the batch. reference: LAPACK's operations, unfused,
    /// one system at a time: the same bits on every machine (reproducible results). portable,
    /// avx2, avx512, neon: the packs under that instruction set (portable: unfused, the
    /// reference's bits; one this CPU lacks runs as portable). CPU only.
    #[arg(long, value_enum, value_name = "KERNEL")]
    pub kernel: Option<Kernel>,
}

impl KernelArg {
    /// The parameters of a command on `device`: the default ones with `--kernel`.
    ///
    /// Errors: [`Error::InvalidArgument`] for `--kernel` with a device other than the CPU (it
    /// chooses the CPU's kernels; a device runs its own).
    pub fn params(&self, device: Device) -> Result<Params> {
        match (self.kernel, device) {
            (Some(_), Device::Cuda(_) | Device::Emulator) => {
                Err(Error::InvalidArgument { arg: "--kernel", reason: format!("chooses the CPU's kernel; not used with --device {device}") })
            }
            (kernel, _) => Ok(Params::default().with_kernel(kernel.unwrap_or_default())),
        }
    }
}

/// An opened [`Device`]: what the commands dispatch on.
#[derive(Debug)]
pub enum Backend {
    /// The CPU.
    Cpu,
    /// A CUDA device or the host emulator.
    #[cfg(feature = "cuda")]
    Cuda(CudaBackend),
}

impl Device {
    /// Opens the device: on CUDA, creates the context and compiles the kernels (a few
    /// seconds).
    ///
    /// Errors: [`Error::InvalidArgument`](crate::Error::InvalidArgument) (`--device`) when this
    /// build lacks the feature the device needs; [`Error::Cuda`](crate::Error::Cuda) when CUDA
    /// cannot open it (no driver, no libnvrtc, no device `N`).
    pub fn open(self) -> Result<Backend> {
        match self {
            Device::Cpu => Ok(Backend::Cpu),
            Device::Cuda(ordinal) => open_cuda(ordinal),
            Device::Emulator => open_emulator(),
        }
    }
}

impl DeviceArg {
    /// [`Device::open`] of the flag's value.
    pub fn open(&self) -> Result<Backend> {
        self.device.open()
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Backend> {
    CudaBackend::new(ordinal).map(Backend::Cuda)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Backend> {
    Err(not_built(Device::Cuda(ordinal), "cuda"))
}

#[cfg(feature = "cuda-emulator")]
fn open_emulator() -> Result<Backend> {
    Ok(Backend::Cuda(CudaBackend::emulator()))
}

#[cfg(not(feature = "cuda-emulator"))]
fn open_emulator() -> Result<Backend> {
    Err(not_built(Device::Emulator, "cuda-emulator"))
}

/// The error for a device this build cannot run.
#[cfg(not(feature = "cuda-emulator"))]
fn not_built(device: Device, feature: &str) -> crate::Error {
    crate::Error::InvalidArgument {
        arg: "--device",
        reason: format!("{device}: this banded was built without the `{feature}` feature: cargo build --features {feature}"),
    }
}

/// The element types the commands compute in (`f32`, `f64`): with the `cuda` feature, also
/// [`CudaReal`](crate::cuda::CudaReal), so that every command's generic code can run on
/// either backend. A supertrait of [`io::Elem`](super::io::Elem).
#[cfg(feature = "cuda")]
pub trait DeviceReal: crate::cuda::CudaReal {}
#[cfg(feature = "cuda")]
impl<T: crate::cuda::CudaReal> DeviceReal for T {}

/// The element types the commands compute in (`f32`, `f64`): without the `cuda` feature, no
/// requirement. A supertrait of [`io::Elem`](super::io::Elem).
#[cfg(not(feature = "cuda"))]
pub trait DeviceReal {}
#[cfg(not(feature = "cuda"))]
impl<T> DeviceReal for T {}

// Test-only: the unwrap/expect/panic sites below are compiled under `cfg(test)` alone and
// are unreachable from the public API and the CLI.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:0".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!("emulator".parse(), Ok(Device::Emulator));
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(7), Device::Emulator] {
            assert_eq!(d.to_string().parse(), Ok(d));
        }
        for bad in ["", "tpu", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda:1:2", " cpu", "cuda0"] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.contains("expected") && e.contains("cuda:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpu_always_opens() {
        assert!(matches!(Device::Cpu.open(), Ok(Backend::Cpu)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_an_error() {
        let e = Device::Cuda(1).open().unwrap_err().to_string();
        assert!(e.contains("built without the `cuda` feature: cargo build --features cuda"), "{e}");
        assert!(e.contains("cuda:1"), "{e}");
    }

    #[cfg(not(feature = "cuda-emulator"))]
    #[test]
    fn emulator_without_the_feature_is_an_error() {
        let e = Device::Emulator.open().unwrap_err().to_string();
        assert!(e.contains("built without the `cuda-emulator` feature: cargo build --features cuda-emulator"), "{e}");
    }
}
