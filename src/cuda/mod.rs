//! The CUDA backend (feature `cuda`): the band Cholesky and the S-MNN layer on NVIDIA GPUs.
//!
//! - [`CudaBackend`]: a device (context, stream, the kernels of `gpu/` compiled by NVRTC for
//!   its architecture, once per handle), or with the `cuda-emulator` feature the same kernels
//!   compiled as C++ and run on the CPU ([`CudaBackend::emulator`], for tests).
//! - [`DeviceArray`]: batches on the device, interleaved over the batch (element `k` of system
//!   `s` at `k·batch + s`). Copies between host and device happen only in
//!   [`CudaBackend::upload`] / [`DeviceArray::to_host`] (and the status words an operation
//!   reads back to report errors).
//! - [`DeviceBand`], [`DeviceCholesky`]: factor, solve, log-determinant, the solve's backward.
//! - The S-MNN layer: [`Smnn::forward_cuda`](crate::smnn::Smnn::forward_cuda),
//!   [`DeviceForward::backward`], [`Smnn::freeze_cuda`](crate::smnn::Smnn::freeze_cuda).
//!
//! Building never needs a CUDA toolkit: the driver and NVRTC are loaded at run time, and a
//! machine without them gets [`Error::Cuda`](crate::Error::Cuda) from [`CudaBackend::new`].
//!
//! ```no_run
//! use banded::cuda::CudaBackend;
//! use banded::{BandBatch, Params};
//! # fn main() -> banded::Result<()> {
//! let gpu = CudaBackend::new(0)?;
//! let ab = BandBatch::<f64>::from_fn(4096, 1000, 4, |_, i, j| if i == j { 10.0 } else { -1.0 })?;
//! let l = banded::cuda::DeviceCholesky::factor(&gpu.upload_band(&ab)?, &Params::default())?;
//! let b = gpu.upload(&vec![1.0; 4096 * 1000], &[4096, 1000, 1])?;
//! let x = l.solve(&b, &Params::default())?.to_host()?;
//! # Ok(()) }
//! ```

mod array;
mod backend;
mod llt;
pub mod nvrtc;
mod smnn;

pub use array::DeviceArray;
pub use backend::{CudaBackend, CudaReal};
pub use llt::{DeviceBand, DeviceCholesky, DeviceSolveGrads};
pub use smnn::{DeviceForward, DeviceFrozen, DeviceFrozenGrads, DeviceGrads, DeviceInputs};
