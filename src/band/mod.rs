//! Storage: batches of symmetric band matrices and batches of dense right-hand sides.
//!
//! Algorithms live in [`crate::llt`]; this module only holds data and converts layouts.

pub(crate) mod lanes;
mod matrix;
mod packed;
pub(crate) mod partition;
#[cfg(feature = "cli")]
mod random;
mod symmetric;

pub use lanes::pack_lanes;
pub use matrix::{BatchMatrix, BatchMut, BatchRef};
pub use packed::{PackedBandBatch, PackedBatchMatrix};
pub use partition::{AUTO_MAX_KD, MAX_AUTO_PARTS, Partitions, min_chunk, partitions};
#[cfg(feature = "cli")]
pub use random::random_spd_problem;
pub use symmetric::{BandBatch, BandRef};
