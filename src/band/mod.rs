//! Storage: batches of symmetric band matrices and batches of dense right-hand sides.
//!
//! Algorithms live in [`crate::llt`]; this module only holds data and converts layouts.

mod matrix;
mod symmetric;

pub use matrix::BatchMatrix;
pub use symmetric::BandBatch;
