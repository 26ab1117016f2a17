//! [`Packed`]: a factored batch kept in pack layout, in place of the input's storage.

use crate::band::lanes::{repack, with_lanes};
use crate::scalar::Real;
use crate::simd::Isa;

use crate::par::Par;

use super::batched::{Batch, solve_packs};
use super::driver::Sweep;
use super::Dims;
use super::inverse::inverse_packs;

/// A factored batch stored as packs **in place of the input's storage**: the first
/// `full = batch / lanes` packs of `lanes` systems are rewritten, each in its own `len·lanes`
/// slice (`len = n·(kd+1)`), into the pack layout (`data[(p·len + k)·lanes + lane]`,
/// `k = j·(kd+1) + d`); the remaining `batch % lanes` systems stay in the band layout at their
/// usual offsets (no padding is stored: a single huge system costs no more memory than its
/// band). A solve reads the packs directly (no transposes); converting back to the band layout
/// is one transpose per element ([`Packed::into_band`], in place).
#[derive(Clone, Debug)]
pub(crate) struct Packed<T> {
    pub(crate) data: Vec<T>,
    pub(crate) isa: Isa,
    pub(crate) lanes: usize,
    pub(crate) batch: usize,
    pub(crate) n: usize,
    pub(crate) kd: usize,
}

impl<T: Real> Packed<T> {
    /// The storage in the band layout (in place; one transpose per element of the packs).
    pub(crate) fn into_band(mut self) -> Vec<T> {
        let len = self.n * (self.kd + 1);
        with_lanes!(self.lanes, L => repack::<T, L>(&mut self.data, self.batch, len, false));
        self.data
    }

    /// The storage, as it is (for reuse by the next factorization).
    pub(crate) fn into_storage(self) -> Vec<T> {
        self.data
    }

    /// `(batch, n, kd)`.
    pub(crate) fn shape(&self) -> (usize, usize, usize) {
        (self.batch, self.n, self.kd)
    }

    /// The diagonal of `L_s` as `(slice, stride)`: `L_s[j, j] = slice[j·stride]`, and
    /// `slice.iter().step_by(stride)` yields exactly the `n` diagonal entries.
    pub(crate) fn diag_strided(&self, s: usize) -> (&[T], usize) {
        let (len, lanes, w) = (self.n * (self.kd + 1), self.lanes, self.kd + 1);
        if s < self.batch / lanes * lanes {
            let start = s / lanes * len * lanes + s % lanes;
            (&self.data[start..start + (len - w) * lanes + 1], w * lanes)
        } else {
            (&self.data[s * len..s * len + len - w + 1], w)
        }
    }

    /// Solves `job` (this factor's `batch` systems, `n`, `kd`) in place under `isa`; with
    /// `rhs_packed`, the right-hand sides of the full packs are in pack layout (`lanes` wide).
    pub(crate) fn solve(&self, isa: Isa, job: Batch<'_, T>, rhs_packed: bool, sweep: Sweep) {
        debug_assert_eq!((job.batch, job.dims.n, job.dims.kd), self.shape());
        let full = self.batch / self.lanes * self.lanes;
        let (lf, lt) = self.data.split_at(full * self.n * (self.kd + 1));
        with_lanes!(self.lanes, L => solve_packs::<T, L>(isa, lf, lt, job, rhs_packed, sweep));
    }

    /// The band of every `A_s⁻¹` into `out` (band layout, `batch·n·(kd+1)` elements) under `isa`.
    pub(crate) fn inverse_band(&self, isa: Isa, out: &mut [T], par: Par) {
        let (batch, n, kd) = self.shape();
        let full = batch / self.lanes * self.lanes;
        let (lf, lt) = self.data.split_at(full * n * (kd + 1));
        with_lanes!(self.lanes, L => inverse_packs::<T, L>(isa, lf, lt, out, batch, Dims { n, kd, nrhs: 0 }, par));
    }
}
