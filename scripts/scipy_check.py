#!/usr/bin/env python3
"""Checks `banded solve` against SciPy's solveh_banded and cholesky_banded on random
well-conditioned SPD band systems of many bandwidths (needs numpy and scipy; not part of CI).

    cargo build --release && python3 scripts/scipy_check.py [path/to/banded]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import scipy.linalg as sl

exe = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/banded")
rng = np.random.default_rng(1)
worst = {"x": 0.0, "cholesky": 0.0, "logdet": 0.0}
with tempfile.TemporaryDirectory() as d:
    for n, kd, batch, nrhs in [(1, 0, 3, 1), (7, 0, 2, 2), (50, 1, 4, 1), (100, 4, 3, 3), (90, 17, 2, 1),
                               (200, 40, 2, 2), (64, 63, 1, 1), (10, 25, 2, 1), (300, 64, 2, 4)]:
        ab = np.zeros((batch, kd + 1, n))
        ab[:, 1:, :] = rng.uniform(-1, 1, (batch, kd, n))
        for d_ in range(1, kd + 1):
            ab[:, d_, max(n - d_, 0):] = 0.0
        for s in range(batch):
            rowsum = np.zeros(n)
            for d_ in range(1, min(kd, n - 1) + 1):
                v = np.abs(ab[s, d_, : n - d_])
                rowsum[: n - d_] += v
                rowsum[d_:] += v
            ab[s, 0] = rowsum + rng.uniform(0.5, 2.0, n)
        rhs = rng.uniform(-1, 1, (batch, n, nrhs))
        np.save(os.path.join(d, "ab.npy"), ab)
        np.save(os.path.join(d, "rhs.npy"), rhs)
        subprocess.run([exe, "solve", "--ab", "ab.npy", "--rhs", "rhs.npy", "--out", "x.npy",
                        "--logdet", "ld.npy", "--cholesky", "l.npy"], cwd=d, check=True)
        x, ld, l = (np.load(os.path.join(d, f)) for f in ("x.npy", "ld.npy", "l.npy"))
        for s in range(batch):
            band = ab[s, : min(kd, n - 1) + 1]
            xs = sl.solveh_banded(band, rhs[s], lower=True)
            cs = sl.cholesky_banded(band, lower=True)
            for d_ in range(cs.shape[0]):
                cs[d_, n - d_:] = 0.0
            rel = lambda a, b: np.abs(a - b).max() / np.abs(b).max()
            worst["x"] = max(worst["x"], rel(x[s], xs))
            worst["cholesky"] = max(worst["cholesky"], rel(l[s, : cs.shape[0]], cs))
            worst["logdet"] = max(worst["logdet"], abs(ld[s] - 2 * np.log(cs[0]).sum()) / max(1.0, abs(ld[s])))
print("worst relative error against SciPy:", " ".join(f"{k}={v:.2e}" for k, v in worst.items()))
assert all(v < 1e-10 for v in worst.values())
