#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod alloc;
pub mod band;
pub mod error;
pub mod llt;
pub mod par;
mod params;
pub mod roofline;
pub mod scalar;
mod simd;
pub mod smnn;
#[cfg(feature = "cuda")]
pub mod cuda;
// The command-line tool (`src/main.rs` is its `main`); see the module's docs.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

pub use band::{BandBatch, BandRef, BatchMatrix, BatchMut, BatchRef, PackedBandBatch, PackedBatchMatrix, Partitions};
pub use error::{Error, PivotFailure, Result};
pub use llt::{Cholesky, PartialCholesky, SolveGrads};
pub use par::Par;
pub use params::Params;
pub use scalar::Real;
pub use simd::Kernel;
