"""The NumPy API of `banded` (python/README.md, "NumPy API").

What is checked, and against what:

* `solveh_banded`, `cholesky_banded`, `logdet_banded` and `BandCholesky` against SciPy's
  `solveh_banded` / `cholesky_banded` (looped over the batch) and NumPy's dense `slogdet`, for
  random diagonally dominant SPD band matrices, in both layouts (`lower=True` and SciPy's upper
  layout `ab[kd + i - j, j] = A[i, j]`), with `b` as `(..., n)` and `(..., n, k)`; edge cases
  kd = 0, kd = n - 1, kd > n - 1, n = 1, batch 1, no batch axis, two batch axes. The entries of
  `ab` that lie outside the matrix are filled with garbage that would change every result if
  they were read.
* non-contiguous inputs (transposed, strided, reversed, Fortran-order views), float32 (float32
  result, ~1e-5 relative), float32 mixed with float64 (float64 result), integers (float64);
* `BandCholesky.backward` against a dense derivation (grad_b = A^-1 grad_x,
  grad_A = -grad_b x^T, symmetrized onto the stored band) and central finite differences;
* the reference vectors tests/data/band_*.npz (SciPy/LAPACK, float64) at 1e-9 relative;
* errors: `NotPositiveDefiniteError` (a `numpy.linalg.LinAlgError`) with `.system`,
  `.batch_index`, `.column`, `.failures`; NaN/inf -> `ValueError` naming the argument; bad
  shapes -> `ValueError`; complex input refused; `check_finite=False` with NaN returns or raises
  cleanly (run in a child process so that a crash fails the test instead of killing pytest);
* C-contiguous float arrays are read in place (the package's array-preparing helper returns the
  very object), and no call ever modifies its inputs or returns a view of them;
* batches of at least one pack of systems (the factor stored in packs, asserted through the
  test-only `_lanes` of the native factor) against SciPy / NumPy; the storage pool observed
  through the test-only `banded._native._pool_sizes()` (kept, taken, emptied).
"""

import re
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as sla

import banded

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
REF_FILES = ["band_tridiag.npz", "band_kd4.npz", "band_kd17.npz", "band_dense_edge.npz"]

# Random systems are diagonally dominant (condition number ~ 10): a float64 solve differs from
# LAPACK's by O(kd * eps * kappa) ~ 1e-14; float32 by ~1e-6.
TOL64 = 1e-10
TOL32 = 1e-5
# The reference vectors (kappa <~ 1e3, LAPACK in float64).
TOL_REF = 1e-9


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def rel_err(a, b):
    """max |a - b| / max |b| (shapes must agree)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.abs(b).max(initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max(initial=0.0)) / scale


def mask_lower(kd, n):
    """True where `ab[d, j]` (lower layout) is an entry of the matrix: j + d < n."""
    return np.arange(n)[None, :] + np.arange(kd + 1)[:, None] < n


def mask_upper(kd, n):
    """True where `ab[r, j]` (upper layout, row r = kd + i - j) is an entry: i = j - kd + r >= 0."""
    return np.arange(n)[None, :] >= kd - np.arange(kd + 1)[:, None]


def dense_from_lower(ab):
    """The symmetric dense matrix of a lower-layout band `(..., kd + 1, n)`."""
    ab = np.asarray(ab, dtype=np.float64)
    *batch, w, n = ab.shape
    a = np.zeros((*batch, n, n))
    for d in range(min(w - 1, n - 1) + 1):
        j = np.arange(n - d)
        a[..., j + d, j] = ab[..., d, : n - d]
        a[..., j, j + d] = ab[..., d, : n - d]
    return a


def lower_to_upper(ab, fill=None):
    """SciPy's upper layout `up[kd + i - j, j] = A[i, j]` (i <= j) of a lower-layout band.

    The entries outside the matrix get `fill` (an array of the shape of `ab`) or zeros.
    """
    *batch, w, n = ab.shape
    kd = w - 1
    up = np.zeros(ab.shape, dtype=ab.dtype) if fill is None else np.array(fill, dtype=ab.dtype)
    for d in range(min(kd, n - 1) + 1):
        # A[j - d, j] = A[j, j - d] = lower ab[d, j - d]
        up[..., kd - d, d:] = ab[..., d, : n - d]
    return up


def upper_to_lower(up):
    *batch, w, n = up.shape
    kd = w - 1
    lo = np.zeros(up.shape, dtype=up.dtype)
    for d in range(min(kd, n - 1) + 1):
        lo[..., d, : n - d] = up[..., kd - d, d:]
    return lo


def random_spd_band(rng, batch_shape, n, kd, lower=True, garbage=True):
    """A random diagonally dominant SPD band in the requested layout (float64).

    With `garbage`, the entries outside the matrix hold large values of both signs: a solver that
    read them would give wrong results (or fail to factor).
    """
    ab = rng.uniform(-1.0, 1.0, size=(*batch_shape, kd + 1, n))
    ab = np.where(mask_lower(kd, n), ab, 0.0)
    a = dense_from_lower(ab)
    off = np.abs(a).sum(-1) - np.abs(np.diagonal(a, axis1=-2, axis2=-1))
    ab[..., 0, :] = off + 1.0 + rng.uniform(0.0, 1.0, size=(*batch_shape, n))
    junk = rng.uniform(50.0, 100.0, size=ab.shape) * rng.choice([-1.0, 1.0], size=ab.shape)
    if lower:
        return np.where(mask_lower(kd, n), ab, junk) if garbage else ab
    return lower_to_upper(ab, fill=junk if garbage else None)


def as_lower(ab, lower):
    """The lower layout of `ab` (entries outside the matrix zeroed)."""
    *_, w, n = ab.shape
    if lower:
        return np.where(mask_lower(w - 1, n), ab, 0.0)
    return upper_to_lower(ab)


def band_only(ab, lower):
    """`ab` with the entries outside the matrix zeroed (layout kept)."""
    *_, w, n = ab.shape
    m = mask_lower(w - 1, n) if lower else mask_upper(w - 1, n)
    return np.where(m, ab, 0.0)


def make_rhs(rng, batch_shape, n, rhs):
    if rhs == "vec":
        return rng.standard_normal((*batch_shape, n))
    k = int(rhs[3:])
    return rng.standard_normal((*batch_shape, n, k))


def scipy_solve(ab, b, lower):
    *batch, w, n = ab.shape
    abf = np.asarray(ab, dtype=np.float64).reshape(-1, w, n)
    bf = np.asarray(b, dtype=np.float64).reshape(abf.shape[0], *b.shape[len(batch):])
    out = [sla.solveh_banded(abf[s], bf[s], lower=lower) for s in range(abf.shape[0])]
    return np.stack(out).reshape(b.shape)


def scipy_cholesky(ab, lower):
    *batch, w, n = ab.shape
    abf = np.asarray(ab, dtype=np.float64).reshape(-1, w, n)
    out = [sla.cholesky_banded(abf[s], lower=lower) for s in range(abf.shape[0])]
    return np.stack(out).reshape(ab.shape)


def dense_logdet(ab, lower):
    sign, ld = np.linalg.slogdet(dense_from_lower(as_lower(ab, lower)))
    assert np.all(sign == 1.0)
    return ld


def unchanged(fn, *args, **kwargs):
    """Calls fn(*args, **kwargs), asserting that no array argument is modified and that no
    returned array shares memory with an argument."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    out = fn(*args, **kwargs)
    for a, c in zip(arrays, before):
        assert a.dtype == c.dtype and a.shape == c.shape
        assert np.array_equal(a, c, equal_nan=True), "an input array was modified"
    outs = out if isinstance(out, tuple) else (out,)
    for o in outs:
        if isinstance(o, np.ndarray):
            for a in arrays:
                assert not np.shares_memory(o, a), "a result is a view of an input"
    return out


def dense_backward(ab, x, grad_x, lower, vec):
    """(grad_b, grad_ab) of X = A^-1 B by dense linear algebra, grad_ab in the layout of `ab`."""
    a = dense_from_lower(as_lower(ab, lower))
    xm = x[..., None] if vec else x
    gm = grad_x[..., None] if vec else grad_x
    grad_b = np.linalg.solve(a, gm)
    g = -grad_b @ np.swapaxes(xm, -1, -2)  # dL/dA[i, j] treating the entries as independent
    *batch, w, n = ab.shape
    kd = w - 1
    gl = np.zeros(ab.shape)
    for d in range(min(kd, n - 1) + 1):
        j = np.arange(n - d)
        gl[..., d, : n - d] = g[..., j + d, j] + (g[..., j, j + d] if d > 0 else 0.0)
    grad_ab = gl if lower else lower_to_upper(gl)
    return (grad_b[..., 0] if vec else grad_b), grad_ab


# (batch shape, n, kd): the general case and the edge cases of the brief.
CASES = [
    pytest.param((4,), 10, 2, id="b4-n10-kd2"),
    pytest.param((), 7, 3, id="nobatch-n7-kd3"),
    pytest.param((1,), 5, 1, id="b1-n5-kd1"),
    pytest.param((2, 3), 9, 2, id="b2x3-n9-kd2"),
    pytest.param((3,), 8, 0, id="b3-n8-kd0"),
    pytest.param((3,), 6, 5, id="b3-n6-kd=n-1"),
    pytest.param((2,), 4, 6, id="b2-n4-kd>n-1"),
    pytest.param((3,), 1, 0, id="b3-n1-kd0"),
    pytest.param((2,), 1, 2, id="b2-n1-kd2"),
    pytest.param((), 1, 0, id="nobatch-n1-kd0"),
    pytest.param((5,), 40, 7, id="b5-n40-kd7"),
]
RHS = ["vec", "mat1", "mat3"]


def seed(*parts):
    """A generator seeded by the test's parameters (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


# --------------------------------------------------------------------------------------------
# against SciPy / NumPy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rhs", RHS)
@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("batch_shape,n,kd", CASES)
def test_solveh_banded_matches_scipy(batch_shape, n, kd, lower, rhs):
    rng = seed("solve", batch_shape, n, kd, lower, rhs)
    ab = random_spd_band(rng, batch_shape, n, kd, lower=lower)
    b = make_rhs(rng, batch_shape, n, rhs)
    x = unchanged(banded.solveh_banded, ab, b, lower=lower)
    assert isinstance(x, np.ndarray)
    assert x.shape == b.shape and x.dtype == np.float64
    assert rel_err(x, scipy_solve(ab, b, lower)) < TOL64
    # and the residual of the dense system
    a = dense_from_lower(as_lower(ab, lower))
    xm, bm = (x[..., None], b[..., None]) if rhs == "vec" else (x, b)
    assert rel_err(a @ xm, bm) < TOL64


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("batch_shape,n,kd", CASES)
def test_cholesky_banded_matches_scipy(batch_shape, n, kd, lower):
    rng = seed("chol", batch_shape, n, kd, lower)
    ab = random_spd_band(rng, batch_shape, n, kd, lower=lower)
    c = unchanged(banded.cholesky_banded, ab, lower=lower)
    assert isinstance(c, np.ndarray)
    assert c.shape == ab.shape and c.dtype == np.float64
    ref = scipy_cholesky(ab, lower)
    # SciPy leaves the entries outside the matrix as they were in `ab`; compare the band.
    assert rel_err(band_only(c, lower), band_only(ref, lower)) < TOL64
    # the factor reproduces A: L L^T (lower) or U^T U (upper)
    lo = as_lower(c, lower)  # lower layout of L (U = L^T has the same band as L^T)
    m = np.zeros((*batch_shape, n, n))
    for d in range(min(kd, n - 1) + 1):
        j = np.arange(n - d)
        m[..., j + d, j] = lo[..., d, : n - d]
    assert rel_err(m @ np.swapaxes(m, -1, -2), dense_from_lower(as_lower(ab, lower))) < TOL64


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("batch_shape,n,kd", CASES)
def test_logdet_banded_matches_slogdet(batch_shape, n, kd, lower):
    rng = seed("logdet", batch_shape, n, kd, lower)
    ab = random_spd_band(rng, batch_shape, n, kd, lower=lower)
    ld = unchanged(banded.logdet_banded, ab, lower=lower)
    assert np.shape(ld) == tuple(batch_shape)
    assert np.asarray(ld).dtype == np.float64
    ref = dense_logdet(ab, lower)
    assert np.max(np.abs(np.asarray(ld) - ref)) < TOL64 * max(1.0, float(np.max(np.abs(ref))))


def test_lower_is_the_default():
    rng = seed("default")
    ab = random_spd_band(rng, (3,), 9, 2, lower=True)
    b = rng.standard_normal((3, 9))
    assert rel_err(banded.solveh_banded(ab, b), scipy_solve(ab, b, True)) < TOL64
    assert rel_err(band_only(banded.cholesky_banded(ab), True), band_only(scipy_cholesky(ab, True), True)) < TOL64
    assert np.allclose(banded.logdet_banded(ab), dense_logdet(ab, True), rtol=TOL64, atol=0)
    c = banded.BandCholesky(ab)
    assert rel_err(c.solve(b), scipy_solve(ab, b, True)) < TOL64


def test_both_layouts_same_solution():
    """The same matrix in both layouts: the same solution, logdet; the factors are transposes."""
    rng = seed("layouts")
    lo = random_spd_band(rng, (2, 2), 12, 3, lower=True, garbage=False)
    up = lower_to_upper(lo)
    b = rng.standard_normal((2, 2, 12, 2))
    assert rel_err(banded.solveh_banded(up, b, lower=False), banded.solveh_banded(lo, b, lower=True)) < TOL64
    assert np.allclose(banded.logdet_banded(up, lower=False), banded.logdet_banded(lo), rtol=TOL64, atol=0)
    l_fac = banded.cholesky_banded(lo, lower=True)
    u_fac = banded.cholesky_banded(up, lower=False)
    assert rel_err(band_only(u_fac, False), lower_to_upper(band_only(l_fac, True))) < TOL64


# --------------------------------------------------------------------------------------------
# layouts in memory, dtypes
# --------------------------------------------------------------------------------------------


def _views(a, rng):
    """Non-C-contiguous arrays equal to `a`: Fortran order, a transposed view, a strided view,
    a reversed (negative-stride) view."""
    out = {}
    out["fortran"] = np.asfortranarray(a)
    out["transposed"] = np.swapaxes(np.ascontiguousarray(np.swapaxes(a, -1, -2)), -1, -2)
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    big[..., 1::2] = rng.standard_normal(big[..., 1::2].shape)  # junk between the entries
    out["strided"] = big[..., ::2]
    out["reversed"] = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    for name, v in out.items():
        assert np.array_equal(v, a), name
    assert not out["strided"].flags.c_contiguous
    assert not out["reversed"].flags.c_contiguous
    assert not out["transposed"].flags.c_contiguous
    return out


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("kind", ["fortran", "transposed", "strided", "reversed"])
def test_non_contiguous_inputs(kind, lower):
    rng = seed("views", kind, lower)
    ab = random_spd_band(rng, (3,), 11, 3, lower=lower)
    b = rng.standard_normal((3, 11, 2))
    bv = rng.standard_normal((3, 11))
    ab_v = _views(ab, rng)[kind]
    b_v = _views(b, rng)[kind]
    bv_v = _views(bv, rng)[kind]
    ref = scipy_solve(ab, b, lower)
    assert rel_err(unchanged(banded.solveh_banded, ab_v, b_v, lower=lower), ref) < TOL64
    assert rel_err(unchanged(banded.solveh_banded, ab_v, b, lower=lower), ref) < TOL64
    assert rel_err(unchanged(banded.solveh_banded, ab, b_v, lower=lower), ref) < TOL64
    assert rel_err(unchanged(banded.solveh_banded, ab_v, bv_v, lower=lower), scipy_solve(ab, bv, lower)) < TOL64
    c = unchanged(banded.cholesky_banded, ab_v, lower=lower)
    assert rel_err(band_only(c, lower), band_only(scipy_cholesky(ab, lower), lower)) < TOL64
    assert np.allclose(unchanged(banded.logdet_banded, ab_v, lower=lower), dense_logdet(ab, lower), rtol=TOL64, atol=0)
    f = banded.BandCholesky(ab_v, lower=lower)
    x = unchanged(f.solve, b_v)
    assert rel_err(x, ref) < TOL64
    gx = rng.standard_normal(b.shape)
    gb, gab = unchanged(f.backward, _views(x, rng)[kind], _views(gx, rng)[kind])
    gb_ref, gab_ref = dense_backward(ab, x, gx, lower, vec=False)
    assert rel_err(gb, gb_ref) < TOL64
    assert rel_err(gab, gab_ref) < TOL64


def test_batch_axis_views():
    """A batch taken with a step and a batch axis moved: non-contiguous across systems."""
    rng = seed("batchviews")
    ab_all = random_spd_band(rng, (6,), 9, 2)
    b_all = rng.standard_normal((6, 9, 2))
    ab = ab_all[::2]
    b = b_all[::2]
    assert rel_err(unchanged(banded.solveh_banded, ab, b), scipy_solve(ab, b, True)) < TOL64
    # a batch axis that is last in memory
    ab2 = np.moveaxis(np.ascontiguousarray(np.moveaxis(random_spd_band(rng, (4,), 7, 1), 0, -1)), -1, 0)
    b2 = np.moveaxis(np.ascontiguousarray(np.moveaxis(rng.standard_normal((4, 7)), 0, -1)), -1, 0)
    assert not ab2.flags.c_contiguous and not b2.flags.c_contiguous
    assert rel_err(unchanged(banded.solveh_banded, ab2, b2), scipy_solve(ab2, b2, True)) < TOL64


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("rhs", ["vec", "mat3"])
def test_float32(lower, rhs):
    rng = seed("f32", lower, rhs)
    ab = random_spd_band(rng, (4,), 30, 5, lower=lower).astype(np.float32)
    b = make_rhs(rng, (4,), 30, rhs).astype(np.float32)
    x = unchanged(banded.solveh_banded, ab, b, lower=lower)
    assert x.dtype == np.float32 and x.shape == b.shape
    assert rel_err(x, scipy_solve(ab, b, lower)) < TOL32
    c = unchanged(banded.cholesky_banded, ab, lower=lower)
    assert c.dtype == np.float32
    assert rel_err(band_only(c, lower), band_only(scipy_cholesky(ab, lower), lower)) < TOL32
    ld = unchanged(banded.logdet_banded, ab, lower=lower)
    assert np.asarray(ld).dtype == np.float32
    ref = dense_logdet(ab, lower)
    assert np.max(np.abs(np.asarray(ld, np.float64) - ref) / np.abs(ref)) < TOL32
    f = banded.BandCholesky(ab, lower=lower)
    assert np.dtype(f.dtype) == np.float32
    xf = unchanged(f.solve, b)
    assert xf.dtype == np.float32 and rel_err(xf, x) < TOL32
    assert f.factor().dtype == np.float32
    gx = rng.standard_normal(b.shape).astype(np.float32)
    gb, gab = unchanged(f.backward, xf, gx)
    assert gb.dtype == np.float32 and gab.dtype == np.float32
    gb_ref, gab_ref = dense_backward(ab, xf.astype(np.float64), gx, lower, vec=(rhs == "vec"))
    assert rel_err(gb, gb_ref) < TOL32
    assert rel_err(gab, gab_ref) < TOL32


@pytest.mark.parametrize("which", ["ab32-b64", "ab64-b32"])
def test_mixed_precision_is_float64(which):
    rng = seed("mixed", which)
    ab = random_spd_band(rng, (3,), 12, 2)
    b = rng.standard_normal((3, 12, 2))
    if which == "ab32-b64":
        ab = ab.astype(np.float32)
    else:
        b = b.astype(np.float32)
    x = unchanged(banded.solveh_banded, ab, b)
    assert x.dtype == np.float64
    # computed in float64 on the (exactly converted) float32 values
    assert rel_err(x, scipy_solve(ab, b, True)) < TOL64
    # A factor keeps the dtype of `ab` and converts what its methods get to it (the class's
    # docstring): a float64 factor solves a float32 b in float64.
    if which == "ab64-b32":
        f = banded.BandCholesky(ab)
        xf = unchanged(f.solve, b)
        assert xf.dtype == np.float64 and rel_err(xf, x) < TOL64
    else:
        f = banded.BandCholesky(ab)
        assert np.dtype(f.dtype) == np.float32
        xf = unchanged(f.solve, b)
        assert xf.dtype == np.float32 and rel_err(xf, x) < TOL32


def test_integer_inputs_are_converted():
    ab = np.array([[[4, 5, 6, 7], [1, -1, 2, 0]], [[3, 3, 3, 3], [1, 1, 1, 0]]], dtype=np.int64)
    b = np.array([[1, 2, 3, 4], [0, -1, 0, 1]], dtype=np.int32)
    x = unchanged(banded.solveh_banded, ab, b)
    assert x.dtype == np.float64
    assert rel_err(x, scipy_solve(ab.astype(float), b.astype(float), True)) < TOL64
    assert banded.cholesky_banded(ab).dtype == np.float64
    assert np.allclose(banded.logdet_banded(ab), dense_logdet(ab.astype(float), True), rtol=TOL64, atol=0)


# --------------------------------------------------------------------------------------------
# BandCholesky
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("batch_shape,n,kd", CASES)
def test_band_cholesky_object(batch_shape, n, kd, lower):
    rng = seed("obj", batch_shape, n, kd, lower)
    ab = random_spd_band(rng, batch_shape, n, kd, lower=lower)
    f = unchanged(banded.BandCholesky, ab, lower=lower)
    assert tuple(f.batch_shape) == tuple(batch_shape)
    assert f.n == n and f.kd == kd
    assert np.dtype(f.dtype) == np.float64
    fac = f.factor()
    assert fac.shape == ab.shape and fac.dtype == np.float64
    assert rel_err(band_only(fac, lower), band_only(scipy_cholesky(ab, lower), lower)) < TOL64
    ld = f.logdet()
    assert np.shape(ld) == tuple(batch_shape)
    ref_ld = dense_logdet(ab, lower)
    assert np.max(np.abs(np.asarray(ld) - ref_ld)) < TOL64 * max(1.0, float(np.max(np.abs(ref_ld))))
    for rhs in RHS:  # one factor, several right-hand sides of both forms
        b = make_rhs(rng, batch_shape, n, rhs)
        x = unchanged(f.solve, b)
        assert x.shape == b.shape
        assert rel_err(x, scipy_solve(ab, b, lower)) < TOL64
        gx = rng.standard_normal(b.shape)
        gb, gab = unchanged(f.backward, x, gx)
        assert gb.shape == b.shape and gab.shape == ab.shape
        gb_ref, gab_ref = dense_backward(ab, x, gx, lower, vec=(rhs == "vec"))
        assert rel_err(gb, gb_ref) < TOL64, rhs
        assert rel_err(gab, gab_ref) < TOL64, rhs
        # the entries of ab outside the matrix get a zero gradient, exactly
        m = mask_lower(kd, n) if lower else mask_upper(kd, n)
        assert np.all(gab[..., ~m] == 0.0)


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
def test_backward_finite_differences(lower):
    """grad_ab and grad_b of L = sum(grad_x * x(ab, b)) by central differences on stored
    entries (an off-diagonal stored entry moves both A[i, j] and A[j, i])."""
    rng = seed("fd", lower)
    n, kd = 8, 2
    ab = random_spd_band(rng, (), n, kd, lower=lower)
    b = rng.standard_normal((n, 2))
    gx = rng.standard_normal((n, 2))
    f = banded.BandCholesky(ab, lower=lower)
    x = f.solve(b)
    gb, gab = f.backward(x, gx)

    def loss(ab_, b_):
        return float(np.sum(gx * scipy_solve(ab_, b_, lower)))

    h = 1e-6
    m = mask_lower(kd, n) if lower else mask_upper(kd, n)
    fd = np.zeros_like(ab)
    for r in range(kd + 1):
        for j in range(n):
            if not m[r, j]:
                continue
            e = np.zeros_like(ab)
            e[r, j] = h
            fd[r, j] = (loss(ab + e, b) - loss(ab - e, b)) / (2 * h)
    assert rel_err(gab, fd) < 1e-7
    fdb = np.zeros_like(b)
    for i in range(n):
        for c in range(2):
            e = np.zeros_like(b)
            e[i, c] = h
            fdb[i, c] = (loss(ab, b + e) - loss(ab, b - e)) / (2 * h)
    assert rel_err(gb, fdb) < 1e-7


def lower_band_of(z, kd):
    """The lower layout `(..., kd + 1, n)` of the band of dense symmetric `z` (0 outside)."""
    n = z.shape[-1]
    out = np.zeros((*z.shape[:-2], kd + 1, n))
    for d in range(min(kd, n - 1) + 1):
        j = np.arange(n - d)
        out[..., d, : n - d] = z[..., j + d, j]
    return out


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("batch_shape,n,kd", CASES)
def test_inverse_band_and_logdet_backward_match_dense_inverse(batch_shape, n, kd, lower):
    """`inverse_banded` / `BandCholesky.inverse_band` against NumPy's dense inverse, restricted to
    the band, in the layout of `ab`; `logdet_backward` is `g·A⁻¹` on the diagonal and `2g·A⁻¹`
    off it; float32 stays float32."""
    rng = seed("inv", batch_shape, n, kd, lower)
    ab = random_spd_band(rng, batch_shape, n, kd, lower=lower)
    zinv = np.linalg.inv(dense_from_lower(as_lower(ab, lower)))
    want_low = lower_band_of(zinv, kd)
    want = want_low if lower else lower_to_upper(want_low)
    z = unchanged(banded.inverse_banded, ab, lower=lower)
    assert z.shape == ab.shape and z.dtype == np.float64
    assert rel_err(z, want) < TOL64
    f = banded.BandCholesky(ab, lower=lower)
    assert np.array_equal(f.inverse_band(), z)
    g = rng.uniform(-2.0, 2.0, size=batch_shape)
    gab = unchanged(f.logdet_backward, g)
    scale_low = np.where(np.arange(kd + 1)[:, None] == 0, 1.0, 2.0) * np.ones((kd + 1, n))
    grad_low = np.asarray(g)[..., None, None] * scale_low * want_low
    assert gab.shape == ab.shape
    assert rel_err(gab, grad_low if lower else lower_to_upper(grad_low)) < TOL64
    z32 = banded.inverse_banded(ab.astype(np.float32), lower=lower)
    assert z32.dtype == np.float32 and rel_err(z32, want) < TOL32


def test_logdet_backward_finite_differences():
    """∂(g·log det A)/∂ab by central differences on stored entries (an off-diagonal stored
    entry moves both A[i, j] and A[j, i])."""
    rng = seed("ldfd")
    n, kd = 7, 2
    ab = random_spd_band(rng, (), n, kd, garbage=False)
    g = 0.7
    gab = banded.BandCholesky(ab).logdet_backward(g)
    h = 1e-6
    fd = np.zeros_like(ab)
    m = mask_lower(kd, n)
    for d in range(kd + 1):
        for j in range(n):
            if m[d, j]:
                e = np.zeros_like(ab)
                e[d, j] = h
                fd[d, j] = g * (banded.logdet_banded(ab + e) - banded.logdet_banded(ab - e)) / (2 * h)
    assert rel_err(gab, fd) < 1e-7


def test_logdet_backward_errors():
    ab = random_spd_band(seed("lderr"), (2, 3), 6, 1)
    f = banded.BandCholesky(ab)
    with pytest.raises(ValueError, match="grad_logdet.*expected shape \\(2, 3\\)"):
        f.logdet_backward(np.ones(6))
    with pytest.raises(ValueError, match="grad_logdet"):
        f.logdet_backward(np.array([[1.0, np.nan, 1.0], [1.0, 1.0, 1.0]]))


# --------------------------------------------------------------------------------------------
# reference vectors (SciPy/LAPACK)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
@pytest.mark.parametrize("name", REF_FILES)
def test_reference_vectors(name, lower):
    path = DATA / name
    assert path.is_file(), path
    d = np.load(path)
    ab = d["ab"]
    ab_in = ab if lower else lower_to_upper(ab)
    conv = (lambda a: a) if lower else lower_to_upper
    rhs, gx = d["rhs"], d["grad_x"]

    x = unchanged(banded.solveh_banded, ab_in, rhs, lower=lower)
    assert rel_err(x, d["x"]) < TOL_REF
    c = unchanged(banded.cholesky_banded, ab_in, lower=lower)
    assert rel_err(band_only(c, lower), band_only(conv(d["cholesky"]), lower)) < TOL_REF
    ld = banded.logdet_banded(ab_in, lower=lower)
    assert rel_err(ld, d["logdet"]) < TOL_REF

    f = banded.BandCholesky(ab_in, lower=lower)
    assert rel_err(f.solve(rhs), d["x"]) < TOL_REF
    assert rel_err(f.logdet(), d["logdet"]) < TOL_REF
    assert rel_err(band_only(f.factor(), lower), band_only(conv(d["cholesky"]), lower)) < TOL_REF
    gb, gab = unchanged(f.backward, d["x"], gx)
    assert rel_err(gb, d["grad_rhs"]) < TOL_REF
    assert rel_err(gab, conv(d["grad_ab"])) < TOL_REF
    # the same with one right-hand side as a vector (b of shape (..., n))
    if rhs.shape[-1] == 1:
        xv = banded.solveh_banded(ab_in, rhs[..., 0], lower=lower)
        assert rel_err(xv, d["x"][..., 0]) < TOL_REF
        gbv, gabv = f.backward(d["x"][..., 0], gx[..., 0])
        assert rel_err(gbv, d["grad_rhs"][..., 0]) < TOL_REF
        assert rel_err(gabv, conv(d["grad_ab"])) < TOL_REF


def test_reference_vectors_agree_with_scipy():
    """The vectors themselves, as a check of the conventions used above."""
    for name in REF_FILES:
        d = np.load(DATA / name)
        assert rel_err(scipy_solve(d["ab"], d["rhs"], True), d["x"]) < 1e-12
        gb_ref, gab_ref = dense_backward(d["ab"], d["x"], d["grad_x"], True, vec=False)
        assert rel_err(gb_ref, d["grad_rhs"]) < TOL_REF
        assert rel_err(gab_ref, d["grad_ab"]) < TOL_REF


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def _failures(e):
    return [tuple(int(v) for v in f) for f in e.failures]


def test_not_positive_definite_is_linalg_error():
    assert issubclass(banded.NotPositiveDefiniteError, np.linalg.LinAlgError)


def _npd_calls(ab, b, lower):
    return {
        "solveh_banded": lambda: banded.solveh_banded(ab, b, lower=lower),
        "cholesky_banded": lambda: banded.cholesky_banded(ab, lower=lower),
        "logdet_banded": lambda: banded.logdet_banded(ab, lower=lower),
        "BandCholesky": lambda: banded.BandCholesky(ab, lower=lower),
    }


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
def test_not_positive_definite_one_of_five(lower):
    rng = seed("npd5", lower)
    lo = random_spd_band(rng, (5,), 8, 2, garbage=False)
    lo[2, 0, 3] = -1.0  # system 2: a negative diagonal at column 3
    ab = lo if lower else lower_to_upper(lo)
    b = rng.standard_normal((5, 8))
    for name, call in _npd_calls(ab, b, lower).items():
        ab0, b0 = ab.copy(), b.copy()
        with pytest.raises(banded.NotPositiveDefiniteError) as info:
            call()
        e = info.value
        assert isinstance(e, np.linalg.LinAlgError), name
        assert e.system == 2, name
        assert tuple(e.batch_index) == (2,), name
        assert e.column == 3, name
        assert _failures(e) == [(2, 3)], name
        assert "positive definite" in str(e), name
        assert np.array_equal(ab, ab0) and np.array_equal(b, b0)


@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
def test_not_positive_definite_two_batch_axes_several_failures(lower):
    rng = seed("npd2x3", lower)
    lo = random_spd_band(rng, (2, 3), 7, 3, garbage=False)
    lo[0, 1, 0, 0] = -2.0  # system 1 = (0, 1), column 0
    lo[1, 1, 0, 5] = 0.0  # system 4 = (1, 1), column 5: a zero pivot is not positive either
    ab = lo if lower else lower_to_upper(lo)
    b = rng.standard_normal((2, 3, 7, 2))
    for name, call in _npd_calls(ab, b, lower).items():
        with pytest.raises(banded.NotPositiveDefiniteError) as info:
            call()
        e = info.value
        assert e.system == 1, name
        assert tuple(e.batch_index) == (0, 1), name
        assert e.column == 0, name
        assert _failures(e) == [(1, 0), (4, 5)], name


def test_not_positive_definite_column_from_elimination_no_batch():
    # A = [[1, 2], [2, 1]]: every diagonal entry positive, the pivot at column 1 is 1 - 4 < 0.
    ab = np.array([[1.0, 1.0], [2.0, 0.0]])
    for lower, a in ((True, ab), (False, lower_to_upper(ab))):
        for name, call in _npd_calls(a, np.ones(2), lower).items():
            with pytest.raises(banded.NotPositiveDefiniteError) as info:
                call()
            e = info.value
            assert (e.system, tuple(e.batch_index), e.column) == (0, (), 1), name
            assert _failures(e) == [(0, 1)], name


def _plain_value_error(call, arg=None):
    """`call()` raises a ValueError that is not a NotPositiveDefiniteError (and names `arg`)."""
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, banded.NotPositiveDefiniteError), info.value
    if arg is not None:
        assert re.search(r"(?<![A-Za-z_])" + re.escape(arg) + r"(?![A-Za-z_])", str(info.value)), str(info.value)
    return info.value


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("lower", [True, False], ids=["lower", "upper"])
def test_non_finite_inputs(bad, lower):
    rng = seed("nonfinite", lower)
    good = random_spd_band(rng, (3,), 6, 2, lower=lower, garbage=False)
    b = rng.standard_normal((3, 6, 2))
    for pos in [(1, 0, 2), (2, 1, 3) if lower else (2, 1, 2)]:  # a diagonal, an off-diagonal entry
        ab = good.copy()
        ab[pos] = bad
        _plain_value_error(lambda: banded.solveh_banded(ab, b, lower=lower), "ab")
        _plain_value_error(lambda: banded.cholesky_banded(ab, lower=lower), "ab")
        _plain_value_error(lambda: banded.logdet_banded(ab, lower=lower), "ab")
        _plain_value_error(lambda: banded.BandCholesky(ab, lower=lower), "ab")
    bb = b.copy()
    bb[2, 4, 1] = bad
    _plain_value_error(lambda: banded.solveh_banded(good, bb, lower=lower), "b")
    _plain_value_error(lambda: banded.solveh_banded(good, bb[..., 1], lower=lower), "b")
    f = banded.BandCholesky(good, lower=lower)
    _plain_value_error(lambda: f.solve(bb), "b")
    x = f.solve(b)
    _plain_value_error(lambda: f.backward(x, bb), "grad_x")
    _plain_value_error(lambda: f.backward(bb, x), "x")


def test_check_finite_false_finite_input_same_result():
    rng = seed("cf")
    ab = random_spd_band(rng, (3,), 10, 2)
    b = rng.standard_normal((3, 10))
    assert np.array_equal(banded.solveh_banded(ab, b, check_finite=False), banded.solveh_banded(ab, b))
    assert np.array_equal(banded.cholesky_banded(ab, check_finite=False), banded.cholesky_banded(ab))
    assert np.array_equal(banded.logdet_banded(ab, check_finite=False), banded.logdet_banded(ab))
    f = banded.BandCholesky(ab, check_finite=False)
    assert np.array_equal(f.solve(b), banded.solveh_banded(ab, b))


def test_check_finite_false_with_nan_returns_or_raises_cleanly():
    """In a child process, so that a crash (abort, segfault, Rust panic) fails this test."""
    script = textwrap.dedent(
        """
        import numpy as np, banded
        rng = np.random.default_rng(0)
        n, kd = 6, 2
        good = np.zeros((3, kd + 1, n))
        good[:, 0] = 5.0
        good[:, 1, :-1] = 1.0
        good[:, 2, :-2] = 0.5
        b = rng.standard_normal((3, n, 2))
        outcomes = []
        def attempt(tag, call):
            try:
                r = call()
            except (ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
                outcomes.append((tag, "raised " + type(e).__name__))
                return
            def arrays(v):
                if isinstance(v, tuple):
                    for w in v:
                        arrays(w)
                else:
                    assert np.asarray(v).dtype == np.float64, (tag, type(v))
            arrays(r)
            outcomes.append((tag, "returned"))
        for bad in (np.nan, np.inf, -np.inf):
            for pos in ((1, 0, 2), (1, 1, 2), (0, 0, 0), (2, 2, 3)):
                for lower in (True, False):
                    ab = good.copy()
                    ab[pos] = bad
                    kw = dict(lower=lower, check_finite=False)
                    attempt("solve", lambda: banded.solveh_banded(ab, b, **kw))
                    attempt("solve-vec", lambda: banded.solveh_banded(ab, b[..., 0], **kw))
                    attempt("chol", lambda: banded.cholesky_banded(ab, **kw))
                    attempt("logdet", lambda: banded.logdet_banded(ab, **kw))
                    def obj():
                        f = banded.BandCholesky(ab, **kw)
                        x = f.solve(b)
                        return f.logdet(), f.factor(), x, f.backward(x, b)
                    attempt("object", obj)
            bb = b.copy()
            bb[1, 3, 0] = bad
            attempt("solve-b", lambda: banded.solveh_banded(good, bb, check_finite=False))
            f = banded.BandCholesky(good, check_finite=False)
            attempt("object-b", lambda: f.backward(f.solve(bb), bb))
        print("DONE", len(outcomes))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    assert "DONE 126" in r.stdout, r.stdout[-2000:]


def test_shape_errors():
    rng = seed("shapes")
    ab = random_spd_band(rng, (3,), 5, 1)
    # b rows != n
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((3, 4))))
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((3, 6, 2))))
    # batch axes differing
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((4, 5))))
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((2, 5, 1))))
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((3, 2, 5))))
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones((1, 3, 5, 1))))
    # b without the batch axes, or a scalar
    _plain_value_error(lambda: banded.solveh_banded(ab, np.ones(5)))
    _plain_value_error(lambda: banded.solveh_banded(ab, np.float64(1.0)))
    # ab with ndim < 2, or no rows (kd + 1 = 0)
    for bad_ab in (np.ones(5), np.float64(2.0), np.ones((0, 5)), np.ones((3, 0, 5))):
        _plain_value_error(lambda: banded.solveh_banded(bad_ab, np.ones(5)))
        _plain_value_error(lambda: banded.cholesky_banded(bad_ab))
        _plain_value_error(lambda: banded.logdet_banded(bad_ab))
        _plain_value_error(lambda: banded.BandCholesky(bad_ab))
    # the factor's methods
    f = banded.BandCholesky(ab)
    _plain_value_error(lambda: f.solve(np.ones((3, 4))))
    _plain_value_error(lambda: f.solve(np.ones((2, 5))))
    x = f.solve(np.ones((3, 5, 2)))
    _plain_value_error(lambda: f.backward(x, np.ones((3, 5, 3))))
    _plain_value_error(lambda: f.backward(x, np.ones((3, 5))))
    _plain_value_error(lambda: f.backward(np.ones((3, 4, 2)), np.ones((3, 4, 2))))
    # no batch axis: SciPy's shapes
    ab2 = random_spd_band(rng, (), 5, 1)
    _plain_value_error(lambda: banded.solveh_banded(ab2, np.ones(4)))
    _plain_value_error(lambda: banded.solveh_banded(ab2, np.ones((4, 2))))
    _plain_value_error(lambda: banded.solveh_banded(ab2, np.ones((2, 5, 2))))


@pytest.mark.parametrize("where", ["ab", "b"])
def test_complex_input_is_refused(where):
    rng = seed("complex", where)
    ab = random_spd_band(rng, (2,), 6, 1)
    b = rng.standard_normal((2, 6))
    if where == "ab":
        ab = ab + 0.5j
    else:
        b = b + 0.5j
    with pytest.raises((ValueError, TypeError)) as info:
        banded.solveh_banded(ab, b)
    assert not isinstance(info.value, banded.NotPositiveDefiniteError)
    if where == "ab":
        with pytest.raises((ValueError, TypeError)):
            banded.cholesky_banded(ab)
        with pytest.raises((ValueError, TypeError)):
            banded.logdet_banded(ab)
        with pytest.raises((ValueError, TypeError)):
            banded.BandCholesky(ab)
    else:
        f = banded.BandCholesky(ab)
        with pytest.raises((ValueError, TypeError)):
            f.solve(b)
        x = f.solve(b.real)
        with pytest.raises((ValueError, TypeError)):
            f.backward(x, b)


# --------------------------------------------------------------------------------------------
# no copies, no writes
# --------------------------------------------------------------------------------------------


def test_contiguous_helper_returns_the_very_array():
    """banded._linalg._contiguous: the object itself for C-contiguous arrays of the wanted dtype,
    a C-contiguous copy otherwise."""
    from banded._linalg import _contiguous

    rng = seed("helper")
    for dt in (np.float64, np.float32):
        a = rng.standard_normal((3, 4, 5)).astype(dt)
        assert _contiguous(a, np.dtype(dt)) is a
        sub = a[1:]  # a C-contiguous view with an offset
        assert _contiguous(sub, np.dtype(dt)) is sub
        for other in (np.asfortranarray(a), a[..., ::2], np.swapaxes(a, -1, -2)):
            c = _contiguous(other, np.dtype(dt))
            assert c is not other and c.flags.c_contiguous and c.dtype == dt
            assert not np.shares_memory(c, other) and np.array_equal(c, other)
    a = rng.standard_normal((2, 3))
    c = _contiguous(a, np.dtype(np.float32))
    assert c.dtype == np.float32 and not np.shares_memory(c, a)


class _Spy:
    """Stands for banded._native (or a native factor): records what reaches the Rust side."""

    def __init__(self, real, calls):
        self._real = real
        self._calls = calls

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def wrapper(*args, **kwargs):
            self._calls.append((name, args))
            return attr(*args, **kwargs)

        return wrapper


def _arrays_passed(calls, name):
    found = [args for n, args in calls if n == name]
    assert len(found) == 1, (name, [n for n, _ in calls])
    return [a for a in found[0] if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_c_contiguous_inputs_reach_the_native_code_in_place(monkeypatch, dt):
    import banded._linalg as lin

    rng = seed("inplace", np.dtype(dt).name)
    calls = []
    monkeypatch.setattr(lin, "_native", _Spy(lin._native, calls))
    ab_all = random_spd_band(rng, (4,), 9, 2).astype(dt)
    ab = ab_all[1:]  # C-contiguous, with an offset into its buffer
    b = rng.standard_normal((3, 9, 2)).astype(dt)
    assert ab.flags.c_contiguous and b.flags.c_contiguous

    x = unchanged(banded.solveh_banded, ab, b)
    ab3, b3 = _arrays_passed(calls, "solve_lower_band")
    assert np.shares_memory(ab3, ab) and np.shares_memory(b3, b), "C-contiguous input copied"
    assert rel_err(x, scipy_solve(ab, b, True)) < (TOL64 if dt == np.float64 else TOL32)

    calls.clear()
    f = banded.BandCholesky(ab)
    (ab3,) = _arrays_passed(calls, "factor")
    assert np.shares_memory(ab3, ab)

    fcalls = []
    f._factor = _Spy(f._factor, fcalls)
    unchanged(f.solve, b)
    (b3,) = _arrays_passed(fcalls, "solve")
    assert np.shares_memory(b3, b)
    gx = rng.standard_normal(b.shape).astype(dt)
    unchanged(f.backward, x, gx)
    x3, g3 = _arrays_passed(fcalls, "backward")
    assert np.shares_memory(x3, x) and np.shares_memory(g3, gx)

    # vectors (..., n) too
    calls.clear()
    bv = np.ascontiguousarray(b[..., 0])
    banded.solveh_banded(ab, bv)
    _, bv3 = _arrays_passed(calls, "solve_lower_band")
    assert np.shares_memory(bv3, bv)


def test_other_inputs_are_copied_once_not_written(monkeypatch):
    import banded._linalg as lin

    rng = seed("copied")
    calls = []
    monkeypatch.setattr(lin, "_native", _Spy(lin._native, calls))
    ab = np.asfortranarray(random_spd_band(rng, (3,), 8, 2))
    b = rng.standard_normal((3, 8, 2))
    b32 = b.astype(np.float32)
    x = unchanged(banded.solveh_banded, ab, b32)  # Fortran ab; float32 b with a float64 ab
    ab3, b3 = _arrays_passed(calls, "solve_lower_band")
    assert ab3.flags.c_contiguous and b3.flags.c_contiguous
    assert ab3.dtype == np.float64 and b3.dtype == np.float64
    assert not np.shares_memory(ab3, ab) and not np.shares_memory(b3, b32)
    assert x.dtype == np.float64
    assert rel_err(x, scipy_solve(ab, b32, True)) < TOL64


def test_reused_storage_gives_the_same_result():
    """A factorization writes into the storage of the last factor released (python/README.md):
    from a larger batch, a smaller one, a float32 one or fresh after empty_cache(), the results
    are the same bits."""
    rng = np.random.default_rng(77)

    def problem(batch, n, kd, dtype=np.float64):
        ab = rng.uniform(-1, 1, (batch, kd + 1, n))
        ab[:, 0] += 2 * (kd + 1)
        return ab.astype(dtype), rng.uniform(-1, 1, (batch, n, 2)).astype(dtype)

    ab, b = problem(5, 40, 3)
    banded.empty_cache()
    want = banded.solveh_banded(ab, b)
    want_l = banded.cholesky_banded(ab)
    for other in (problem(9, 70, 6), problem(2, 10, 1), problem(4, 40, 3, np.float32)):
        banded.solveh_banded(*other)
        np.testing.assert_array_equal(banded.solveh_banded(ab, b), want)
        np.testing.assert_array_equal(banded.cholesky_banded(ab), want_l)
    banded.empty_cache()
    np.testing.assert_array_equal(banded.solveh_banded(ab, b), want)


def test_the_pool_keeps_released_storage_for_the_next_factorization():
    """The storage pool (python/src/pool.rs) observed through the test-only
    `banded._native._pool_sizes()` (elements held, `(float32, float64)`): a released factor's
    storage is kept, one per dtype; the next factorization of that dtype takes it (not the other
    dtype's) and still gives SciPy's factor; `empty_cache()` frees both."""
    import gc

    from banded import _native

    rng = seed("pool")
    big = random_spd_band(rng, (4,), 30, 3)  # 4·30·4 = 480 elements
    small = random_spd_band(rng, (2,), 10, 1)  # 2·10·2 = 40
    gc.collect()  # factors of earlier tests, released now rather than during this one
    banded.empty_cache()
    assert _native._pool_sizes() == (0, 0)
    f = banded.BandCholesky(big)
    assert _native._pool_sizes() == (0, 0), "a live factor is not pooled"
    del f
    gc.collect()
    assert _native._pool_sizes() == (0, 480), "the released factor's storage is kept"
    g32 = banded.BandCholesky(small.astype(np.float32))
    assert _native._pool_sizes() == (0, 480), "float32 does not take float64's storage"
    del g32
    gc.collect()
    assert _native._pool_sizes() == (40, 480)
    g = banded.BandCholesky(small)
    assert _native._pool_sizes() == (40, 0), "the next float64 factorization takes the kept storage"
    assert rel_err(band_only(g.factor(), True), band_only(scipy_cholesky(small, True), True)) < TOL64
    del g
    gc.collect()
    assert _native._pool_sizes() == (40, 40)
    # solveh_banded keeps no factor (its packs live in scratch): it neither takes the kept
    # storage nor leaves any.
    b = rng.standard_normal((4, 30))
    assert rel_err(banded.solveh_banded(big, b), scipy_solve(big, b, True)) < TOL64
    gc.collect()
    assert _native._pool_sizes() == (40, 40)
    # A factor of the big batch (it takes the kept storage, too small, so replaced), released.
    banded.BandCholesky(big)
    gc.collect()
    assert _native._pool_sizes() == (40, 480)
    banded.empty_cache()
    assert _native._pool_sizes() == (0, 0), "empty_cache frees the kept storage of both dtypes"


def test_inverse_banded_check_finite_false():
    """`inverse_banded(..., check_finite=False)`: finite input gives the checked result, bit for
    bit; an inverse beyond float32 (a nearly singular matrix, c·[[1, a], [a, 1]] with c = 1e-36,
    a = 1 − 2⁻¹⁰, all normal numbers: its inverse is ≈ 5e38 > 3.4e38) is a ValueError naming
    `inverse_band` when checked, and returned as computed (infinite there) when not."""
    rng = seed("inv-check-finite")
    ab = random_spd_band(rng, (3,), 10, 2)
    for dt in (np.float64, np.float32):
        z, zu = banded.inverse_banded(ab.astype(dt)), banded.inverse_banded(ab.astype(dt), check_finite=False)
        assert zu.dtype == z.dtype == dt and zu.shape == z.shape
        assert zu.tobytes() == z.tobytes()
    c, a = np.float32(1e-36), np.float32(1.0 - 2.0**-10)
    bad = np.array([[[c, c], [a * c, 0.0]], [[2.0, 2.0], [-1.0, 0.0]]], dtype=np.float32)
    with pytest.raises(ValueError, match="inverse_band") as err:
        banded.inverse_banded(bad)
    assert err.value.arg == "inverse_band" and err.value.index[0] == 0
    z = banded.inverse_banded(bad, check_finite=False)
    assert z.dtype == np.float32 and z.shape == bad.shape
    assert np.isinf(z[0, 0, 1]), z[0]  # (A⁻¹)[1, 1] of the nearly singular system
    # The other system is [[2, −1], [−1, 2]]: its inverse is [[2, 1], [1, 2]] / 3.
    assert rel_err(z[1], np.array([[2.0, 2.0], [1.0, 0.0]]) / 3.0) < TOL32


@pytest.mark.parametrize("kd", [2, 10])
@pytest.mark.parametrize(
    "dtype,batch",
    [(np.float64, 8), (np.float64, 9), (np.float64, 16), (np.float64, 17), (np.float32, 16), (np.float32, 17), (np.float32, 32), (np.float32, 33)],
    ids=["f64-b8", "f64-b9", "f64-b16", "f64-b17", "f32-b16", "f32-b17", "f32-b32", "f32-b33"],
)
def test_batches_in_packs_match_scipy(dtype, batch, kd):
    """Batches of at least one pack of systems (8 float64 or 16 float32 a pack, twice that for
    some narrow bands), with systems after the packs or not: the factor is stored in packs
    (asserted through the test-only `_lanes` of the native factor; a band wider than 8 always
    takes single-width packs), and every result agrees with SciPy / NumPy on the same (rounded)
    input: solve, factor, log-determinant, band of the inverse, backward."""
    n = 30
    rng = seed("packs", np.dtype(dtype).name, batch, kd)
    ab = random_spd_band(rng, (batch,), n, kd).astype(dtype)
    b = rng.standard_normal((batch, n, 2)).astype(dtype)
    ab64, b64 = ab.astype(np.float64), b.astype(np.float64)
    tol = TOL64 if dtype == np.float64 else TOL32
    base = 8 if dtype == np.float64 else 16
    f = banded.BandCholesky(ab)
    lanes = f._factor._lanes
    assert (lanes == base) if kd > 8 else (lanes in (base, 2 * base)), lanes
    x = f.solve(b)
    assert x.dtype == dtype and rel_err(x, scipy_solve(ab64, b64, True)) < tol
    assert rel_err(banded.solveh_banded(ab, b), scipy_solve(ab64, b64, True)) < tol
    assert rel_err(band_only(f.factor(), True), band_only(scipy_cholesky(ab64, True), True)) < tol
    ld, ref_ld = f.logdet(), dense_logdet(ab64, True)
    assert np.max(np.abs(ld - ref_ld)) < tol * max(1.0, float(np.max(np.abs(ref_ld))))
    zinv = np.linalg.inv(dense_from_lower(as_lower(ab64, True)))
    assert rel_err(f.inverse_band(), lower_band_of(zinv, kd)) < tol
    gx = rng.standard_normal(b.shape).astype(dtype)
    gb, gab = f.backward(x, gx)
    gb_ref, gab_ref = dense_backward(ab64, x.astype(np.float64), gx.astype(np.float64), True, vec=False)
    assert rel_err(gb, gb_ref) < tol and rel_err(gab, gab_ref) < tol
