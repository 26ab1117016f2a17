#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod band;
pub mod error;
pub mod llt;
pub mod par;
pub mod scalar;
pub mod smnn;

pub use band::{BandBatch, BatchMatrix};
pub use error::{Error, PivotFailure, Result};
pub use llt::{Cholesky, Params, PartialCholesky, SolveGrad};
pub use par::Par;
pub use scalar::Real;
