use crate::scalar::Real;

/// `log det A = 2 Σ_j log L[j, j]` for one factored system (column-major band). O(n).
pub(crate) fn logdet_system<T: Real>(l: &[T], n: usize, kd: usize) -> T {
    let two = T::one() + T::one();
    two * (0..n).map(|j| l[j * (kd + 1)].ln()).sum::<T>()
}
