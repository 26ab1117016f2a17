"""The NumPy API: SciPy's banded Cholesky functions, batched (see ``python/README.md``).

Every function takes SciPy's shapes with any number of leading batch axes: ``ab (..., kd + 1,
n)``, ``b (..., n)`` or ``(..., n, k)``. The batch is flattened (a view for C-contiguous input)
and handed to ``banded._native``, which reads the arrays in place and releases the GIL.
"""

import math

import numpy as np

from . import _native
from ._errors import NotPositiveDefiniteError, with_batch_shape

__all__ = ["solveh_banded", "cholesky_banded", "logdet_banded", "inverse_banded", "BandCholesky", "empty_cache"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _array(x, name):
    """``x`` as an ndarray of real numbers (complex input is an error, never truncated)."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise ValueError(f"`{name}`: expected real numbers, got dtype {x.dtype}")
    return x


def _dtype(*arrays):
    """float32 if every array is float32, float64 otherwise."""
    return _F32 if all(a.dtype == _F32 for a in arrays) else _F64


def _contiguous(x, dtype):
    """``x`` as a C-contiguous array of ``dtype``: ``x`` itself when it already is one."""
    if x.dtype == dtype and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=dtype)


def _band(ab, dtype, lower):
    """``(ab3, batch_shape)``: ``ab`` as a C-contiguous ``(batch, kd + 1, n)`` array in the lower
    layout, and its batch axes."""
    if ab.ndim < 2:
        raise ValueError(f"`ab`: expected shape (..., kd + 1, n), got {ab.shape}")
    if ab.shape[-2] == 0:
        raise ValueError(f"`ab`: expected kd + 1 ≥ 1 rows, got shape {ab.shape}")
    batch_shape = ab.shape[:-2]
    if not lower:
        ab = _upper_to_lower(ab)
    return _contiguous(ab, dtype).reshape((math.prod(batch_shape),) + ab.shape[-2:]), batch_shape


def _upper_to_lower(up):
    """SciPy's upper layout (``up[kd + i − j, j] = A[i, j]``) → the lower one (``lo[d, j] = A[j + d, j]``)."""
    w, n = up.shape[-2:]
    lo = np.zeros(up.shape, dtype=np.result_type(up.dtype, _F32))
    for d in range(min(w, n)):
        lo[..., d, : n - d] = up[..., w - 1 - d, d:]
    return lo


def _lower_to_upper(lo):
    """The inverse of :func:`_upper_to_lower` (zeros where the upper layout has no entry)."""
    w, n = lo.shape[-2:]
    up = np.zeros_like(lo)
    for d in range(min(w, n)):
        up[..., w - 1 - d, d:] = lo[..., d, : n - d]
    return up


def _rhs(b, batch_shape, n, dtype, name="b"):
    """``b`` (``batch_shape + (n,)`` or ``batch_shape + (n, k)``) as a C-contiguous
    ``(batch, n, k)`` array."""
    nb = len(batch_shape)
    if b.ndim not in (nb + 1, nb + 2) or b.shape[:nb] != batch_shape or b.shape[nb] != n:
        raise ValueError(f"`{name}`: expected shape {batch_shape + (n,)} or {batch_shape + (n, 'k')}, got {b.shape}")
    k = b.shape[nb + 1] if b.ndim == nb + 2 else 1
    return _contiguous(b, dtype).reshape(math.prod(batch_shape), n, k)


def empty_cache():
    """Free the storage kept for the next factorization.

    When a factor is released (a ``BandCholesky`` or the factor inside ``solveh_banded``,
    ``banded.torch``'s after the backward), its storage (``batch·n·(kd + 1)`` elements) is kept,
    one per dtype, and the next factorization of that dtype writes into it instead of mapping
    and zeroing fresh pages. This frees it.
    """
    _native.empty_cache()


def _call(batch_shape, f, *args):
    """``f(*args)``, a ``NotPositiveDefiniteError`` given the caller's batch index."""
    try:
        return f(*args)
    except NotPositiveDefiniteError as err:
        raise with_batch_shape(err, batch_shape) from None


def solveh_banded(ab, b, lower=True, check_finite=True):
    """Solve ``A x = b`` for symmetric positive-definite band matrices ``A`` (a batch of them).

    Parameters
    ----------
    ab : array_like, shape (..., kd + 1, n)
        The band of each ``A`` in SciPy's layout: with ``lower`` (the default here, SciPy's is
        ``lower=False``), ``ab[..., d, j] = A[j + d, j]``; otherwise ``ab[..., kd + i − j, j] =
        A[i, j]`` for ``i ≤ j``. Leading axes are a batch.
    b : array_like, shape (..., n) or (..., n, k)
        Right-hand sides, with the batch axes of ``ab``.
    lower : bool
        Which layout ``ab`` has.
    check_finite : bool
        Reject NaN and ±∞ in the inputs (and results that overflow) with ``ValueError``.

    Returns
    -------
    x : ndarray, the shape of ``b``; float32 if ``ab`` and ``b`` are float32, float64 otherwise.

    Raises
    ------
    NotPositiveDefiniteError
        A matrix is not positive definite (``.system``, ``.batch_index``, ``.column``, ``.failures``).
    ValueError
        Shapes, dtypes, non-finite values.

    Cost: O(n·kd²) per system, factor and solve in one pass over each band (read once, straight
    into the solver's packs; the factor is not kept), on all cores.
    """
    ab, b = _array(ab, "ab"), _array(b, "b")
    dtype = _dtype(ab, b)
    ab3, batch_shape = _band(ab, dtype, lower)
    b3 = _rhs(b, batch_shape, ab.shape[-1], dtype)
    if b3.size == 0 or ab3.size == 0:
        return np.zeros(b.shape, dtype=dtype)
    return _call(batch_shape, _native.solve_lower_band, ab3, b3, check_finite).reshape(b.shape)


def cholesky_banded(ab, lower=True, check_finite=True):
    """The Cholesky factor of each band matrix, in the layout of ``ab`` (see :func:`solveh_banded`).

    Returns ``L`` (``A = L Lᵀ``) in the lower layout if ``lower``, else ``U = Lᵀ`` (``A = Uᵀ U``)
    in the upper layout, like SciPy's ``cholesky_banded``; shape and dtype of ``ab``
    (float32 stays float32). Raises as :func:`solveh_banded`.
    """
    return BandCholesky(ab, lower, check_finite).factor()


def logdet_banded(ab, lower=True, check_finite=True):
    """``log det A`` for each band matrix (see :func:`solveh_banded` for ``ab``): shape
    ``ab.shape[:-2]`` (a NumPy scalar without batch axes). Raises as :func:`solveh_banded`."""
    return BandCholesky(ab, lower, check_finite).logdet()


def inverse_banded(ab, lower=True, check_finite=True):
    """The entries of ``A⁻¹`` inside the band of each matrix, in the layout and shape of ``ab``
    (see :func:`solveh_banded`): the marginal variances (diagonal) and neighbour covariances of
    a Gaussian with precision ``A``, and ``∂ log det A / ∂A``. Selected inversion from the
    Cholesky factor, O(n·kd²) per system (about twice the factorization), nothing outside the
    band formed; entries outside the matrix are 0. Raises as :func:`solveh_banded`.
    """
    return BandCholesky(ab, lower, check_finite).inverse_band()


class BandCholesky:
    """The Cholesky factors of a batch of SPD band matrices: factor once, solve often.

    ``BandCholesky(ab, lower=True, check_finite=True)`` factors ``ab`` (see
    :func:`solveh_banded`; O(n·kd²) per system). The factor keeps the dtype of ``ab``
    (float32 or float64; other dtypes become float64); arrays passed to its methods are
    converted to it.
    """

    def __init__(self, ab, lower=True, check_finite=True):
        ab = _array(ab, "ab")
        dtype = _dtype(ab)
        ab3, self._batch_shape = _band(ab, dtype, lower)
        if ab3.size == 0:
            raise ValueError(f"`ab`: expected a non-empty batch of n ≥ 1, got shape {ab.shape}")
        self._shape = ab.shape
        self._lower = lower
        self._dtype = dtype
        self._check_finite = check_finite
        self._factor = _call(self._batch_shape, _native.factor, ab3, check_finite)

    @property
    def batch_shape(self):
        """The batch axes of ``ab``."""
        return self._batch_shape

    @property
    def n(self):
        """The order of each matrix."""
        return self._factor.n

    @property
    def kd(self):
        """The bandwidth: ``ab.shape[-2] − 1``."""
        return self._factor.kd

    @property
    def dtype(self):
        """float32 or float64."""
        return self._dtype

    def solve(self, b):
        """``x = A⁻¹ b`` for ``b`` of shape ``batch_shape + (n,)`` or ``batch_shape + (n, k)``;
        O(n·kd·k) per system."""
        b = _array(b, "b")
        b3 = _rhs(b, self._batch_shape, self.n, self._dtype)
        if b3.size == 0:
            return np.zeros(b.shape, dtype=self._dtype)
        return self._factor.solve(b3, self._check_finite).reshape(b.shape)

    def logdet(self):
        """``log det A``, shape ``batch_shape``; O(n) per system."""
        return self._factor.logdet().reshape(self._batch_shape)[()]

    def inverse_band(self):
        """The entries of ``A⁻¹`` inside the band, in the layout and shape of ``ab`` (see
        :func:`inverse_banded`); O(n·kd²) per system."""
        low = self._factor.inverse_band(self._check_finite).reshape(self._shape)
        return low if self._lower else _lower_to_upper(low)

    def logdet_backward(self, grad_logdet):
        """∂ℓ/∂ab for a loss with ``∂ℓ/∂ log det A = grad_logdet`` (shape ``batch_shape``):
        ``grad_logdet·A⁻¹[j, j]`` on the diagonal, ``2·grad_logdet·A⁻¹[i, j]`` off it (an
        off-diagonal entry of ``ab`` stands for both ``A[i, j]`` and ``A[j, i]``, as in
        :meth:`backward`), in the layout and shape of ``ab``; O(n·kd²) per system."""
        g = _array(grad_logdet, "grad_logdet")
        if g.shape != tuple(self._batch_shape):
            raise ValueError(f"`grad_logdet`: expected shape {tuple(self._batch_shape)}, got {g.shape}")
        g1 = np.ascontiguousarray(g.reshape(-1), dtype=self._dtype)
        low = self._factor.logdet_backward(g1, self._check_finite).reshape(self._shape)
        return low if self._lower else _lower_to_upper(low)

    def factor(self):
        """The factor in the layout of ``ab`` (``L`` lower, or ``U = Lᵀ`` upper), shape of ``ab``."""
        low = self._factor.lower_band().reshape(self._shape)
        return low if self._lower else _lower_to_upper(low)

    def backward(self, x, grad_x):
        """The vector–Jacobian product of ``x = A⁻¹ b``: ``(grad_b, grad_ab)``.

        ``x`` is the solution (as :meth:`solve` returned it), ``grad_x`` = ∂ℓ/∂x, both of the
        shape of ``b``. ``grad_b = A⁻¹ grad_x``; ``grad_ab`` = ∂ℓ/∂ab in the layout and shape of
        ``ab`` (an off-diagonal entry of ``ab`` stands for both ``A[i, j]`` and ``A[j, i]``;
        entries outside the matrix get 0). O(n·kd·k) per system.
        """
        x, grad_x = _array(x, "x"), _array(grad_x, "grad_x")
        x3 = _rhs(x, self._batch_shape, self.n, self._dtype, "x")
        if grad_x.shape != x.shape:
            raise ValueError(f"`grad_x`: expected the shape of `x`, {x.shape}, got {grad_x.shape}")
        g3 = _rhs(grad_x, self._batch_shape, self.n, self._dtype, "grad_x")
        grad_b, grad_ab = self._factor.backward(x3, g3, self._check_finite)
        grad_ab = grad_ab.reshape(self._shape)
        return grad_b.reshape(x.shape), grad_ab if self._lower else _lower_to_upper(grad_ab)
