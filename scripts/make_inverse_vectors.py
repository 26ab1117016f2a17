#!/usr/bin/env python3
"""Writes tests/data/inverse_band.npz: for each reference band file (tests/data/band_*.npz,
made with SciPy/LAPACK), the entries of A_s^-1 inside the band, from LAPACK's dense Cholesky
inverse (scipy.linalg.lapack.dpotri) of the matrix expanded to dense, in the interchange
layout (batch, kd+1, n) with the ignored entries 0. Keys: the file's stem without `band_`
(`tridiag`, `kd4`, `kd17`, `dense_edge`).

    python3 scripts/make_inverse_vectors.py        # needs numpy and scipy; not part of CI
"""
import os

import numpy as np
import scipy.linalg.lapack as lapack

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
out = {}
for stem in ["tridiag", "kd4", "kd17", "dense_edge"]:
    ab = np.load(os.path.join(here, f"band_{stem}.npz"))["ab"]
    batch, w, n = ab.shape
    inv = np.zeros_like(ab)
    for s in range(batch):
        a = np.zeros((n, n))
        for d in range(min(w, n)):
            idx = np.arange(n - d)
            a[idx + d, idx] = ab[s, d, : n - d]
            a[idx, idx + d] = ab[s, d, : n - d]
        c, info = lapack.dpotrf(a, lower=1)
        assert info == 0, (stem, s, info)
        z, info = lapack.dpotri(c, lower=1)
        assert info == 0, (stem, s, info)
        for d in range(min(w, n)):
            inv[s, d, : n - d] = z[np.arange(d, n), np.arange(n - d)]
    out[stem] = inv
np.savez(os.path.join(here, "inverse_band.npz"), **out)
print({k: v.shape for k, v in out.items()})
