// Batched band Cholesky on the interleaved layout: one thread per system, the recurrence
// over the columns inside the kernel (one launch per phase). The band of system `s` is
// `a[(j * (kd + 1) + d) * batch + s] = A_s[j + d, j]`; a right-hand side block is
// `b[(i * nrhs + r) * batch + s] = B_s[i, r]`. The arithmetic is that of the CPU reference
// kernels (src/llt/factor.rs, solve.rs, logdet.rs, backward.rs, inverse.rs), in the same order.

// Factors every system in place (LAPACK `pbtf2`, right-looking). `info[s]` is 0, or `j + 1`
// for the first column `j` whose pivot is not a positive finite number (the factor stops
// there). With `diag` (the diagonal of the matrices, interleaved `n` per system) a pivot
// `L[j,j]² ≤ tol · diag[j]` fails too (the S-MNN relative test), reported only if the whole
// factorization otherwise succeeded, at its first such column.
template <class T>
__device__ void band_factor(T* __restrict__ a, i64* __restrict__ info, const T* __restrict__ diag, T tol, i64 batch, i64 n, i64 kd) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 w = kd + 1;
    T* as = a + s;
    i64 relative = -1;
    for (i64 j = 0; j < n; ++j) {
        T* col = as + j * w * batch;
        T ajj = col[0];
        if (!(ajj > T(0) && b_finite(ajj))) {
            info[s] = j + 1;
            return;
        }
        T ljj = b_sqrt(ajj);
        if (diag && relative < 0 && !(ljj * ljj > tol * diag[j * batch + s])) relative = j;
        col[0] = ljj;
        i64 kn = b_min(kd, n - 1 - j);
        T inv = T(1) / ljj;
        for (i64 r = 1; r <= kn; ++r) col[r * batch] = col[r * batch] * inv;
        for (i64 c = 1; c <= kn; ++c) {
            T lc = col[c * batch];
            T* dst = as + (j + c) * w * batch;
            for (i64 r = c; r <= kn; ++r) dst[(r - c) * batch] = dst[(r - c) * batch] - col[r * batch] * lc;
        }
    }
    info[s] = relative + 1;
}
BANDED_KERNEL(band_factor, (T* a, i64* info, const T* diag, T tol, i64 batch, i64 n, i64 kd), (a, info, diag, tol, batch, n, kd))

// Solves `L Lᵀ X = B` in place in `b`, one thread per system and right-hand side (`batch * nrhs`
// threads, the system fastest).
template <class T>
__device__ void band_solve(const T* __restrict__ l, T* __restrict__ b, i64 batch, i64 n, i64 kd, i64 nrhs) {
    i64 id = global_id();
    if (id >= batch * nrhs) return;
    i64 s = id % batch, r = id / batch, w = kd + 1;
    const T* ls = l + s;
    T* x = b + r * batch + s;  // x[i * step] = B_s[i, r]
    i64 step = nrhs * batch;
    for (i64 j = 0; j < n; ++j) {
        const T* col = ls + j * w * batch;
        i64 kn = b_min(kd, n - 1 - j);
        T yj = x[j * step] * (T(1) / col[0]);
        x[j * step] = yj;
        for (i64 q = 1; q <= kn; ++q) x[(j + q) * step] = x[(j + q) * step] - col[q * batch] * yj;
    }
    for (i64 j = n - 1; j >= 0; --j) {
        const T* col = ls + j * w * batch;
        i64 kn = b_min(kd, n - 1 - j);
        T acc = x[j * step];
        for (i64 q = kn; q >= 1; --q) acc = acc - col[q * batch] * x[(j + q) * step];
        x[j * step] = acc * (T(1) / col[0]);
    }
}
BANDED_KERNEL(band_solve, (const T* l, T* b, i64 batch, i64 n, i64 kd, i64 nrhs), (l, b, batch, n, kd, nrhs))

// out[s] = log det A_s = 2 Σ_j log L_s[j, j]. One thread per system.
template <class T>
__device__ void band_logdet(const T* __restrict__ l, T* __restrict__ out, i64 batch, i64 n, i64 kd) {
    i64 s = global_id();
    if (s >= batch) return;
    T sum = T(0);
    for (i64 j = 0; j < n; ++j) sum = sum + b_log(l[j * (kd + 1) * batch + s]);
    out[s] = T(2) * sum;
}
BANDED_KERNEL(band_logdet, (const T* l, T* out, i64 batch, i64 n, i64 kd), (l, out, batch, n, kd))

// The band gradient of `X = A⁻¹ B` from `x` = X and `lam` = Λ = A⁻¹ ∂ℓ/∂X (both `n × nrhs`
// per system): g[j, 0] = −Σ_r Λ[j,r] X[j,r], g[j, d] = −Σ_r (Λ[j+d,r] X[j,r] + Λ[j,r] X[j+d,r]),
// zero below the matrix. One thread per system.
template <class T>
__device__ void band_gradient(const T* __restrict__ x, const T* __restrict__ lam, T* __restrict__ g, i64 batch, i64 n, i64 kd, i64 nrhs) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 w = kd + 1;
    for (i64 j = 0; j < n; ++j) {
        T* col = g + j * w * batch + s;
        i64 kn = b_min(kd, n - 1 - j);
        T acc = T(0);
        for (i64 r = 0; r < nrhs; ++r) acc = acc + x[(j * nrhs + r) * batch + s] * lam[(j * nrhs + r) * batch + s];
        col[0] = -acc;
        for (i64 d = 1; d <= kn; ++d) {
            acc = T(0);
            for (i64 r = 0; r < nrhs; ++r) {
                i64 pj = (j * nrhs + r) * batch + s, pi = ((j + d) * nrhs + r) * batch + s;
                acc = acc + lam[pi] * x[pj] + lam[pj] * x[pi];
            }
            col[d * batch] = -acc;
        }
        for (i64 d = kn + 1; d <= kd; ++d) col[d * batch] = T(0);
    }
}
BANDED_KERNEL(band_gradient, (const T* x, const T* lam, T* g, i64 batch, i64 n, i64 kd, i64 nrhs), (x, lam, g, batch, n, kd, nrhs))

// The band of Z = A⁻¹ from the factor `l` into `z` (same layout; zeros below the matrix), by
// selected inversion, last column first (src/llt/inverse.rs, the same operations in the same
// order): s_k = Σ_i Z[j+k, j+i]·L[j+i, j] read down the columns of Z already computed,
// Z[j+k, j] = −s_k / L[j,j], Z[j,j] = (1/L[j,j] − Σ_k Z[j+k, j]·L[j+k, j]) / L[j,j]. With
// `scale` (one weight c per system) the result is the log-determinant's gradient instead:
// c·Z[j,j] on the diagonal, 2c·Z[i,j] below (applied after the whole recurrence). One thread
// per system.
template <class T>
__device__ void band_inverse(const T* __restrict__ l, T* __restrict__ z, const T* __restrict__ scale, i64 batch, i64 n, i64 kd) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 w = kd + 1;
    const T* ls = l + s;
    T* zs = z + s;
    for (i64 j = n - 1; j >= 0; --j) {
        i64 kn = b_min(kd, n - 1 - j);
        const T* col = ls + j * w * batch;
        T* zj = zs + j * w * batch;
        T inv = T(1) / col[0];
        for (i64 k = 1; k <= kn; ++k) zj[k * batch] = T(0);
        for (i64 k = 1; k <= kn; ++k) {
            const T* zc = zs + (j + k) * w * batch;
            T vk = col[k * batch];
            T acc = zc[0] * vk;
            for (i64 d = 1; d <= kn - k; ++d) {
                T zd = zc[d * batch];
                acc = acc + zd * col[(k + d) * batch];
                zj[(k + d) * batch] = zj[(k + d) * batch] + zd * vk;
            }
            zj[k * batch] = -((zj[k * batch] + acc) * inv);
        }
        T sum = T(0);
        for (i64 i = 1; i <= kn; ++i) sum = sum + zj[i * batch] * col[i * batch];
        zj[0] = (inv - sum) * inv;
        for (i64 d = kn + 1; d <= kd; ++d) zj[d * batch] = T(0);
    }
    if (scale) {
        T c = scale[s];
        for (i64 j = 0; j < n; ++j) {
            T* zj = zs + j * w * batch;
            zj[0] = c * zj[0];
            // Only the entries inside the matrix: those below it stay +0 (as on the CPU).
            i64 kn = b_min(kd, n - 1 - j);
            for (i64 d = 1; d <= kn; ++d) zj[d * batch] = (c + c) * zj[d * batch];
        }
    }
}
BANDED_KERNEL(band_inverse, (const T* l, T* z, const T* scale, i64 batch, i64 n, i64 kd), (l, z, scale, batch, n, kd))
