// The S-MNN layer on the interleaved layout (docs/ARCHITECTURE.md, "The S-MNN rows"): the
// normal equations `M = AᵀA` and `Aᵀβ` assembled on the device straight into the band layout
// `band_factor` reads, and the backward's row sums. One thread per system, the loop over the
// steps inside the kernel. The arithmetic is that of the CPU kernels (src/smnn/assemble.rs,
// src/smnn/grads.rs) for one system, in the same order.
//
// Inputs, interleaved (`k * batch + s`): `c` coefficients (Tc, E, D, O), `r` rhs_equation
// (Tr, E), `v` init_vars (S, D, I), `h` steps (Th); `u`, `lam`: `n = T·D·O` per system.

// The layer's sizes (src/smnn/layer.rs): `ct`, `rt`, `ht` are the step axes of `c`, `r`, `h`
// (1 when broadcast), `central` is 0 or 1.
struct SmnnShape {
    i64 t, e, d, o, s, i, ct, rt, ht, kd, central;
};

// The weights, squared.
template <class T>
struct SmnnWeights {
    T equation, init_var, smooth;
};

// The Taylor rows' tables at h = 1 (`Taylor` in src/smnn/assemble.rs): the packed lower
// triangle of their Gram matrix `gram1` (`ngram` entries), each entry's power of `h`
// (`gram_pow`) and band offset from `(t·b + d·O)·(kd+1)` (`gram_off`), and the full Gram
// matrix `gram_full` (2O × 2O).
template <class T>
struct SmnnTables {
    const T* gram1;
    const i64* gram_pow;
    const i64* gram_off;
    const T* gram_full;
    i64 ngram;
};

// x^k by repeated squaring (`powu` in src/smnn/assemble.rs).
template <class T>
__device__ inline T powu(T x, i64 k) {
    T acc = T(1);
    while (k > 0) {
        if (k & 1) acc = acc * x;
        x = x * x;
        k >>= 1;
    }
    return acc;
}

// x^k as 1·x·x·…·x (`k` products, the order the CPU forms its table of powers in).
template <class T>
__device__ inline T power_chain(T x, i64 k) {
    T p = T(1);
    for (i64 q = 0; q < k; ++q) p = p * x;
    return p;
}

// The central row over steps t, t+1, t+2 for H = h_t + h_{t+1}: values `a` and d/dH `da`.
template <class T>
__device__ inline void central_row(T hh, i64 o, T* a, T* da) {
    T p3, dp3;
    if (o >= 3) {
        p3 = powu(hh, o - 3);
        T p4 = o >= 4 ? powu(hh, o - 4) : T(1) / hh;
        dp3 = T(o - 3) * p4;
    } else {
        T rr = T(1) / hh;
        p3 = rr;
        dp3 = -(rr * rr);
    }
    T b = powu(hh, o - 2);
    T db = o >= 3 ? T(o - 2) * powu(hh, o - 3) : T(0);
    a[0] = p3; a[1] = b; a[2] = -p3;
    da[0] = dp3; da[1] = db; da[2] = -dp3;
}

// M (band, `n·(kd+1)` per system, any contents on entry) and its diagonal `diag` (`n`).
template <class T>
__device__ void smnn_assemble(const T* __restrict__ c, const T* __restrict__ h, T* __restrict__ m, T* __restrict__ diag, SmnnTables<T> tab, SmnnShape sh, SmnnWeights<T> wt, i64 batch) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 b = sh.d * sh.o, w = sh.kd + 1, n = sh.t * b;
    T* ms = m + s;
    for (i64 k = 0; k < n * w; ++k) ms[k * batch] = T(0);
    for (i64 t = 0; t < sh.t; ++t) {
        i64 base = t * b;
        // 1. Equations: block (t, t) += w_eq² Σ_e c cᵀ (lower triangle).
        i64 tc = sh.ct == 1 ? 0 : t;
        for (i64 e = 0; e < sh.e; ++e) {
            const T* row = c + (tc * sh.e + e) * b * batch + s;
            for (i64 q = 0; q < b; ++q) {
                T cq = wt.equation * row[q * batch];
                if (cq == T(0)) continue;
                T* dst = ms + (base + q) * w * batch;
                for (i64 p = q; p < b; ++p) dst[(p - q) * batch] = dst[(p - q) * batch] + cq * row[p * batch];
            }
        }
        // 2. Initial values: diagonal.
        if (t < sh.s) {
            for (i64 d = 0; d < sh.d; ++d)
                for (i64 o = 0; o < sh.i; ++o) {
                    T* x = ms + (base + d * sh.o + o) * w * batch;
                    *x = *x + wt.init_var;
                }
        }
        // 3. Taylor rows between t and t + 1: w_s² G(h), G_ij(h) = G_ij(1)·h^{o_i+o_j}.
        if (t + 1 < sh.t) {
            T hs = h[(sh.ht == 1 ? 0 : t) * batch + s];
            for (i64 g = 0; g < tab.ngram; ++g) {
                T val = wt.smooth * tab.gram1[g] * power_chain(hs, tab.gram_pow[g]);
                for (i64 d = 0; d < sh.d; ++d) {
                    T* x = ms + ((base + d * sh.o) * w + tab.gram_off[g]) * batch;
                    *x = *x + val;
                }
            }
        }
        // 4. Central rows over t, t + 1, t + 2.
        if (sh.central && t + 2 < sh.t) {
            T a[3], da[3];
            i64 k0 = sh.ht == 1 ? 0 : t, k1 = sh.ht == 1 ? 0 : t + 1;
            central_row(h[k0 * batch + s] + h[k1 * batch + s], sh.o, a, da);
            for (i64 d = 0; d < sh.d; ++d) {
                i64 idx[3] = {base + d * sh.o + sh.o - 2, base + b + d * sh.o + sh.o - 1, base + 2 * b + d * sh.o + sh.o - 2};
                for (int i = 0; i < 3; ++i)
                    for (int j = 0; j <= i; ++j) {
                        T* x = ms + (idx[j] * w + (idx[i] - idx[j])) * batch;
                        *x = *x + wt.smooth * a[i] * a[j];
                    }
            }
        }
    }
    for (i64 j = 0; j < n; ++j) diag[j * batch + s] = ms[j * w * batch];
}
BANDED_KERNEL(smnn_assemble,
              (const T* c, const T* h, T* m, T* diag, SmnnTables<T> tab, SmnnShape sh, SmnnWeights<T> wt, i64 batch),
              (c, h, m, diag, tab, sh, wt, batch))

// Aᵀβ (`n` per system): only the equation and initial-value rows have a right-hand side.
template <class T>
__device__ void smnn_rhs(const T* __restrict__ c, const T* __restrict__ r, const T* __restrict__ v, T* __restrict__ rhs, SmnnShape sh, SmnnWeights<T> wt, i64 batch) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 b = sh.d * sh.o, n = sh.t * b;
    T* x = rhs + s;
    for (i64 j = 0; j < n; ++j) x[j * batch] = T(0);
    for (i64 t = 0; t < sh.t; ++t) {
        i64 tc = sh.ct == 1 ? 0 : t, tr = sh.rt == 1 ? 0 : t;
        for (i64 e = 0; e < sh.e; ++e) {
            T re = wt.equation * r[(tr * sh.e + e) * batch + s];
            const T* row = c + (tc * sh.e + e) * b * batch + s;
            for (i64 q = 0; q < b; ++q) x[(t * b + q) * batch] = x[(t * b + q) * batch] + re * row[q * batch];
        }
    }
    for (i64 t = 0; t < sh.s; ++t)
        for (i64 d = 0; d < sh.d; ++d)
            for (i64 o = 0; o < sh.i; ++o) {
                i64 j = t * b + d * sh.o + o;
                x[j * batch] = x[j * batch] + wt.init_var * v[((t * sh.d + d) * sh.i + o) * batch + s];
            }
}
BANDED_KERNEL(smnn_rhs, (const T* c, const T* r, const T* v, T* rhs, SmnnShape sh, SmnnWeights<T> wt, i64 batch), (c, r, v, rhs, sh, wt, batch))

// The backward's row sums from `u` and `lam` = M⁻¹ ∂ℓ/∂u: ∂ℓ/∂r (`gr`) and ∂ℓ/∂v (`gv`), and
// with `coef_steps` also ∂ℓ/∂c (`gc`) and ∂ℓ/∂h (`gh`); without it `r`, `h`, `u`, `gc`, `gh`
// are not read (may be null). Every output is written for every system.
template <class T>
__device__ void smnn_grads(const T* __restrict__ c, const T* __restrict__ r, const T* __restrict__ h, const T* __restrict__ u, const T* __restrict__ lam,
                           T* __restrict__ gc, T* __restrict__ gr, T* __restrict__ gv, T* __restrict__ gh,
                           SmnnTables<T> tab, SmnnShape sh, SmnnWeights<T> wt, i64 coef_steps, i64 batch) {
    i64 s = global_id();
    if (s >= batch) return;
    i64 b = sh.d * sh.o, O = sh.o, k2 = 2 * O;
    i64 cl = sh.ct * sh.e * b, rl = sh.rt * sh.e;
    for (i64 k = 0; k < rl; ++k) gr[k * batch + s] = T(0);
    for (i64 k = 0; k < sh.s * sh.d * sh.i; ++k) gv[k * batch + s] = T(0);
    if (coef_steps) {
        for (i64 k = 0; k < cl; ++k) gc[k * batch + s] = T(0);
        for (i64 k = 0; k < sh.ht; ++k) gh[k * batch + s] = T(0);
    }
    // Element `k` of this system's `u` / `λ`.
    auto U = [&](i64 k) { return u[k * batch + s]; };
    auto Lam = [&](i64 k) { return lam[k * batch + s]; };
    for (i64 t = 0; t < sh.t; ++t) {
        // 2. Equations: ∂ℓ/∂r[t, e] = w_eq² q, ∂ℓ/∂c[t, e, ·] = −w_eq² (ρ λ_t + q u_t).
        i64 tc = sh.ct == 1 ? 0 : t, tr = sh.rt == 1 ? 0 : t;
        for (i64 e = 0; e < sh.e; ++e) {
            i64 ci = (tc * sh.e + e) * b, ri = tr * sh.e + e;
            T q = T(0);
            for (i64 p = 0; p < b; ++p) q = q + c[(ci + p) * batch + s] * Lam(t * b + p);
            gr[ri * batch + s] = gr[ri * batch + s] + wt.equation * q;
            if (coef_steps) {
                T ru = T(0);
                for (i64 p = 0; p < b; ++p) ru = ru + c[(ci + p) * batch + s] * U(t * b + p);
                T rho = ru - r[ri * batch + s];
                for (i64 p = 0; p < b; ++p) {
                    T* g = gc + (ci + p) * batch + s;
                    *g = *g - wt.equation * (rho * Lam(t * b + p) + q * U(t * b + p));
                }
            }
        }
        // 3. Initial values: ∂ℓ/∂v[t, d, o] = w_init² λ[t, d, o].
        if (t < sh.s)
            for (i64 d = 0; d < sh.d; ++d)
                for (i64 o = 0; o < sh.i; ++o) gv[((t * sh.d + d) * sh.i + o) * batch + s] = wt.init_var * Lam(t * b + d * O + o);
        if (!coef_steps) continue;
        // 4. Taylor rows: ∂ℓ/∂h_t = −w_s² Σ_i o_i h^{o_i−1} (λ_i (G(1) ũ)_i + u_i (G(1) λ̃)_i),
        //    ũ_i = h^{o_i} u_i, λ̃_i = h^{o_i} λ_i (see src/smnn/grads.rs).
        if (t + 1 < sh.t) {
            T hs = h[(sh.ht == 1 ? 0 : t) * batch + s];
            T acc = T(0);
            for (i64 d = 0; d < sh.d; ++d) {
                i64 gx = t * b + d * O, gy = (t + 1) * b + d * O;
                // Local unknown `k` of the two blocks: (t, d, k) for k < O, else (t + 1, d, k − O).
                auto at = [&](i64 k) { return k < O ? gx + k : gy + k - O; };
                for (int half = 0; half < 2; ++half) {
                    i64 g0 = half == 0 ? gx : gy;
                    for (i64 j = 1; j < O; ++j) {
                        const T* g1 = tab.gram_full + (half * O + j) * k2;
                        T gu = T(0), gl = T(0);
                        for (i64 k = 0; k < k2; ++k) {
                            T hk = power_chain(hs, k % O);
                            gu = gu + g1[k] * (hk * U(at(k)));
                            gl = gl + g1[k] * (hk * Lam(at(k)));
                        }
                        acc = acc + T(j) * power_chain(hs, j - 1) * (Lam(g0 + j) * gu + U(g0 + j) * gl);
                    }
                }
            }
            i64 k = sh.ht == 1 ? 0 : t;
            gh[k * batch + s] = gh[k * batch + s] - wt.smooth * acc;
        }
        // 5. Central rows: H = h_t + h_{t+1}, ∂H/∂h_t = ∂H/∂h_{t+1} = 1.
        if (sh.central && t + 2 < sh.t) {
            i64 k0 = sh.ht == 1 ? 0 : t, k1 = sh.ht == 1 ? 0 : t + 1;
            T a[3], da[3];
            central_row(h[k0 * batch + s] + h[k1 * batch + s], O, a, da);
            T acc = T(0);
            for (i64 d = 0; d < sh.d; ++d) {
                i64 idx[3] = {t * b + d * O + O - 2, (t + 1) * b + d * O + O - 1, (t + 2) * b + d * O + O - 2};
                T p = a[0] * U(idx[0]) + a[1] * U(idx[1]) + a[2] * U(idx[2]);
                T q = a[0] * Lam(idx[0]) + a[1] * Lam(idx[1]) + a[2] * Lam(idx[2]);
                for (int j = 0; j < 3; ++j) acc = acc + da[j] * (p * Lam(idx[j]) + q * U(idx[j]));
            }
            T g = wt.smooth * acc;
            gh[k0 * batch + s] = gh[k0 * batch + s] - g;
            gh[k1 * batch + s] = gh[k1 * batch + s] - g;
        }
    }
}
BANDED_KERNEL(smnn_grads,
              (const T* c, const T* r, const T* h, const T* u, const T* lam, T* gc, T* gr, T* gv, T* gh, SmnnTables<T> tab, SmnnShape sh, SmnnWeights<T> wt, i64 coef_steps, i64 batch),
              (c, r, h, u, lam, gc, gr, gv, gh, tab, sh, wt, coef_steps, batch))
