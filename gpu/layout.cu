// Conversions between the batch-first layout of host arrays (system after system, `m`
// elements each) and the interleaved layout of the device (element `k` of system `s` at
// `k * batch + s`), and the checks of the inputs. One thread per element (per system for the
// check).

// dst[k * batch + s] = src[s * m + k]: the writes coalesce.
template <class T>
__device__ void interleave(const T* __restrict__ src, T* __restrict__ dst, i64 batch, i64 m) {
    i64 id = global_id();
    if (id >= batch * m) return;
    i64 k = id / batch, s = id % batch;
    dst[id] = src[s * m + k];
}
BANDED_KERNEL(interleave, (const T* src, T* dst, i64 batch, i64 m), (src, dst, batch, m))

// dst[s * m + k] = src[k * batch + s]: the writes coalesce.
template <class T>
__device__ void deinterleave(const T* __restrict__ src, T* __restrict__ dst, i64 batch, i64 m) {
    i64 id = global_id();
    if (id >= batch * m) return;
    i64 s = id / m, k = id % m;
    dst[id] = src[k * batch + s];
}
BANDED_KERNEL(deinterleave, (const T* src, T* dst, i64 batch, i64 m), (src, dst, batch, m))

// first[s] = the first `k < m` whose element `k` of system `s` is a NaN or ±∞ (with
// `positive`, is not > 0), or -1. With `w > 0` the array is a column band (`k = j * w + d`)
// of order `n`, and the entries below the matrix (`j + d >= n`) are skipped (they are never
// read). One thread per system.
template <class T>
__device__ void first_bad(const T* __restrict__ src, i64* __restrict__ first, i64 batch, i64 m, i64 n, i64 w, i64 positive) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 found = -1;
    for (i64 k = 0; k < m; ++k) {
        if (w > 0 && k / w + k % w >= n) continue;
        T x = src[k * batch + s];
        if (positive ? !(x > T(0)) : !b_finite(x)) {
            found = k;
            break;
        }
    }
    first[s] = found;
}
BANDED_KERNEL(first_bad, (const T* src, i64* first, i64 batch, i64 m, i64 n, i64 w, i64 positive), (src, first, batch, m, n, w, positive))
