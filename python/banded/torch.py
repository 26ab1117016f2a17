"""PyTorch ops: ``solveh_banded``, ``logdet_banded`` and the S-MNN layer ``ode_forward`` (see
``python/README.md``).

Each op is a ``torch.library.custom_op`` with a fake (meta) implementation and
``register_autograd``, so it runs in eager mode, under ``torch.compile`` and in
``torch.autograd.gradcheck``. The Rust code reads the tensors' memory in place (CPU, contiguous)
and its results become tensors without a copy.

The forward's Cholesky factor is what the backward solves with. Ops may only pass tensors, so
the forward returns, beside its result, a one-element int64 *handle*: the key of the factor in
``_factors``, which is dropped when the handle tensor is freed (with the autograd graph). A
backward whose factor is gone (e.g. a handle copied by a graph transformation) recomputes it
from the saved inputs: slower, never wrong.
"""

import itertools
import weakref

import torch

from . import _native
from ._linalg import _call

__all__ = ["solveh_banded", "logdet_banded", "ode_forward", "clear_frozen_cache", "empty_cache"]

# ---------------------------------------------------------------------------------------------
# Tensors in and out

_DTYPES = (torch.float32, torch.float64)


def _check(name, t, dtype=None):
    """``t`` is a CPU float32/float64 tensor (of ``dtype`` if given), else ``ValueError``."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"`{name}`: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"`{name}`: a {t.device.type} tensor; banded.torch runs on CPU tensors only (for now)")
    if t.dtype not in _DTYPES:
        raise ValueError(f"`{name}`: expected dtype float32 or float64, got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"`{name}`: expected dtype {dtype} (that of the first input), got {t.dtype}")


def _np(t):
    """The memory of a CPU tensor as a C-contiguous ndarray (a view if ``t`` is contiguous)."""
    return t.detach().contiguous().numpy()


def _t(a):
    """An ndarray returned by ``banded._native`` as a tensor (no copy)."""
    return torch.from_numpy(a)


_factors = {}
_keys = itertools.count(1)

# The frozen S-MNN operators, by `frozen_lhs_cache_version`: `(factor of M, the flattened shapes
# of coefficients, rhs_equation and init_vars of the call that made it)`.
_frozen = {}


def _keep(factor):
    """A handle tensor for ``factor``: ``_factors`` holds it while the handle lives."""
    key = next(_keys)
    _factors[key] = factor
    handle = torch.tensor([key], dtype=torch.int64)
    weakref.finalize(handle, _factors.pop, key, None)
    return handle


def _factor_of(handle):
    """The factor a handle stands for, or ``None`` if it is gone."""
    return _factors.get(int(handle[0]))


# ---------------------------------------------------------------------------------------------
# solveh_banded


@torch.library.custom_op("banded::solveh", mutates_args=())
def _solveh(ab: torch.Tensor, b: torch.Tensor, batch_shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    x, factor = _call(tuple(batch_shape), _native.factor_solve, _np(ab), _np(b), True)
    return _t(x), _keep(factor)


@_solveh.register_fake
def _(ab, b, batch_shape):
    return b.new_empty(b.shape), torch.empty(1, dtype=torch.int64)


@torch.library.custom_op("banded::solveh_backward", mutates_args=())
def _solveh_backward(ab: torch.Tensor, x: torch.Tensor, handle: torch.Tensor, grad_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    factor = _factor_of(handle)
    if factor is None:
        factor = _native.factor(_np(ab), True)
    grad_b, grad_ab = factor.backward(_np(x), _np(grad_x), True)
    return _t(grad_ab), _t(grad_b)


@_solveh_backward.register_fake
def _(ab, x, handle, grad_x):
    return ab.new_empty(ab.shape), x.new_empty(x.shape)


def _solveh_setup(ctx, inputs, output):
    ab, _, _ = inputs
    x, handle = output
    ctx.save_for_backward(ab, x, handle)
    ctx.mark_non_differentiable(handle)


def _solveh_grad(ctx, grad_x, _grad_handle):
    ab, x, handle = ctx.saved_tensors
    if grad_x is None:
        return None, None, None
    return (*_solveh_backward(ab, x, handle, grad_x), None)


_solveh.register_autograd(_solveh_grad, setup_context=_solveh_setup)


def solveh_banded(ab, b):
    """Solve ``A x = b`` for SPD band matrices, differentiably in ``ab`` and ``b``.

    ``ab`` ``(..., kd + 1, n)``: the lower band, ``ab[..., d, j] = A[j + d, j]`` (entries with
    ``j ≥ n − d`` ignored; their gradient is 0). ``b`` ``(..., n)`` or ``(..., n, k)`` with the
    same batch axes. CPU tensors of one dtype, float32 or float64. Returns ``x``, the shape of
    ``b``. The gradient of ``ab`` is that of the band entries (an off-diagonal entry stands for
    ``A[i, j]`` and ``A[j, i]``). Raises ``banded.NotPositiveDefiniteError``, ``ValueError``
    (shapes, dtypes, devices, NaN or ±∞).

    Cost O(n·kd²) per system for the forward (factor and solve in one pass), O(n·kd·k) for the
    backward (it reuses the forward's factor).
    """
    _check("ab", ab)
    _check("b", b, ab.dtype)
    if ab.dim() < 2 or ab.shape[-2] == 0:
        raise ValueError(f"`ab`: expected shape (..., kd + 1, n) with kd + 1 ≥ 1, got {tuple(ab.shape)}")
    batch, (w, n) = tuple(ab.shape[:-2]), ab.shape[-2:]
    nb = len(batch)
    if b.dim() not in (nb + 1, nb + 2) or tuple(b.shape[:nb]) != batch or b.shape[nb] != n:
        raise ValueError(f"`b`: expected shape {batch + (n,)} or {batch + (n, 'k')}, got {tuple(b.shape)}")
    count = 1
    for s in batch:
        count *= s
    if count == 0 or n == 0 or b.numel() == 0:
        return b * 0  # empty
    b3 = b.reshape(count, n, -1).contiguous()
    x, _ = _solveh(ab.reshape(count, w, n).contiguous(), b3, list(batch))
    return x.reshape(b.shape)


# ---------------------------------------------------------------------------------------------
# logdet_banded


@torch.library.custom_op("banded::logdet", mutates_args=())
def _logdet(ab: torch.Tensor, batch_shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    factor = _call(tuple(batch_shape), _native.factor, _np(ab), True)
    return _t(factor.logdet()), _keep(factor)


@_logdet.register_fake
def _(ab, batch_shape):
    return ab.new_empty(ab.shape[0]), torch.empty(1, dtype=torch.int64)


@torch.library.custom_op("banded::logdet_backward", mutates_args=())
def _logdet_backward(ab: torch.Tensor, handle: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    factor = _factor_of(handle)
    if factor is None:
        factor = _native.factor(_np(ab), True)
    return _t(factor.logdet_backward(_np(grad), True))


@_logdet_backward.register_fake
def _(ab, handle, grad):
    return ab.new_empty(ab.shape)


def _logdet_setup(ctx, inputs, output):
    ab, _ = inputs
    _, handle = output
    ctx.save_for_backward(ab, handle)
    ctx.mark_non_differentiable(handle)


def _logdet_grad(ctx, grad, _grad_handle):
    ab, handle = ctx.saved_tensors
    if grad is None:
        return None, None
    return _logdet_backward(ab, handle, grad), None


_logdet.register_autograd(_logdet_grad, setup_context=_logdet_setup)


def logdet_banded(ab):
    """``log det A`` of SPD band matrices, differentiably in ``ab``.

    ``ab`` ``(..., kd + 1, n)`` as in :func:`solveh_banded`; returns shape ``ab.shape[:-2]``.
    The gradient is ``A⁻¹`` on the band (selected inversion from the forward's factor, O(n·kd²)
    per system; nothing outside the band is formed): ``∂/∂ab[..., 0, j] = A⁻¹[j, j]`` and
    ``2·A⁻¹[j + d, j]`` for ``d ≥ 1`` (an off-diagonal entry stands for ``A[i, j]`` and
    ``A[j, i]``); 0 for the ignored entries. With :func:`solveh_banded` this gives a Gaussian
    log-likelihood ``−½ bᵀA⁻¹b − ½ log det A`` and its gradients. Raises as
    :func:`solveh_banded`.
    """
    _check("ab", ab)
    if ab.dim() < 2 or ab.shape[-2] == 0 or ab.shape[-1] == 0:
        raise ValueError(f"`ab`: expected shape (..., kd + 1, n) with kd + 1 ≥ 1 and n ≥ 1, got {tuple(ab.shape)}")
    batch, (w, n) = tuple(ab.shape[:-2]), ab.shape[-2:]
    count = 1
    for s in batch:
        count *= s
    if count == 0:
        return ab.new_zeros(batch)
    ld, _ = _logdet(ab.reshape(count, w, n).contiguous(), list(batch))
    return ld.reshape(batch)


# ---------------------------------------------------------------------------------------------
# The S-MNN layer


@torch.library.custom_op("banded::ode_forward", mutates_args=())
def _ode(
    coefficients: torch.Tensor,
    rhs_equation: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    n_steps: int,
    weight_equation: float,
    weight_init_var: float,
    weight_smooth: float,
    central: bool,
    batch_shape: list[int],
    frozen_version: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's forward on flattened inputs: ``(u, handle)``. With ``frozen_version > 0``
    the factor is also kept as that frozen operator (for ``_ode_frozen_solve``)."""
    opts = (n_steps, weight_equation, weight_init_var, weight_smooth, central)
    arrays = (_np(coefficients), _np(rhs_equation), _np(init_vars), _np(steps))
    u, factor = _call(tuple(batch_shape), _native.smnn_forward, *arrays, opts, True)
    if frozen_version > 0:
        _frozen[frozen_version] = (factor, (coefficients.shape, rhs_equation.shape, init_vars.shape))
    return _t(u), _keep(factor)


@_ode.register_fake
def _(coefficients, rhs_equation, init_vars, steps, n_steps, *_):
    batch, _, _, d, o = coefficients.shape
    return coefficients.new_empty((batch, n_steps, d, o)), torch.empty(1, dtype=torch.int64)


@torch.library.custom_op("banded::ode_backward", mutates_args=())
def _ode_backward(
    coefficients: torch.Tensor,
    rhs_equation: torch.Tensor,
    init_vars: torch.Tensor,
    steps: torch.Tensor,
    u: torch.Tensor,
    handle: torch.Tensor,
    grad_u: torch.Tensor,
    n_steps: int,
    weight_equation: float,
    weight_init_var: float,
    weight_smooth: float,
    central: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    opts = (n_steps, weight_equation, weight_init_var, weight_smooth, central)
    arrays = (_np(coefficients), _np(rhs_equation), _np(init_vars), _np(steps), _np(u))
    grads = _native.smnn_backward(*arrays, _factor_of(handle), _np(grad_u), opts, True)
    return tuple(_t(g) for g in grads)


@_ode_backward.register_fake
def _(coefficients, rhs_equation, init_vars, steps, u, handle, grad_u, *opts):
    return tuple(t.new_empty(t.shape) for t in (coefficients, rhs_equation, init_vars, steps))


def _ode_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:4], *output)
    ctx.opts = inputs[4:9]
    ctx.mark_non_differentiable(output[1])


def _ode_grad(ctx, grad_u, _grad_handle):
    nones = (None,) * 7  # n_steps, the weights, central, batch_shape, frozen_version
    if grad_u is None:
        return (None,) * 4 + nones
    return (*_ode_backward(*ctx.saved_tensors, grad_u, *ctx.opts), *nones)


_ode.register_autograd(_ode_grad, setup_context=_ode_setup)

def empty_cache():
    """Free the storage kept for the next factorization (see ``banded.empty_cache``)."""
    _native.empty_cache()


def clear_frozen_cache():
    """Forget every operator cached by ``ode_forward(..., frozen_lhs_cache_version=k)``."""
    _frozen.clear()


def _frozen_factor(version, rhs):
    if version not in _frozen:
        raise ValueError(f"`frozen_lhs_cache_version`: no operator is cached for version {version} (clear_frozen_cache() was called)")
    factor, _ = _frozen[version]
    if factor.dtype != str(rhs.dtype).removeprefix("torch."):
        raise ValueError(f"`rhs_equation`: expected {factor.dtype}, the dtype of frozen operator {version}, got {rhs.dtype}")
    return factor


def _check_frozen_shapes(version, c, r, v):
    """The inputs of a later call with ``version`` have the (flattened) shapes of the first."""
    _, first = _frozen[version]
    for name, t, s in zip(("coefficients", "rhs_equation", "init_vars"), (c, r, v), first):
        if t.shape != s:
            raise ValueError(
                f"`{name}`: frozen operator {version} was built for shape {tuple(s)} (batch flattened), got {tuple(t.shape)}; "
                "use another frozen_lhs_cache_version for another shape"
            )


@torch.library.custom_op("banded::ode_frozen_solve", mutates_args=())
def _ode_frozen_solve(rhs: torch.Tensor, version: int) -> torch.Tensor:
    """``u = M⁻¹ rhs`` with the frozen operator ``version``, ``rhs`` and ``u`` ``(batch, T, D, O)``."""
    b = _np(rhs).reshape(rhs.shape[0], -1, 1)
    factor = _frozen_factor(version, rhs)
    try:
        u = factor.solve(b, True)
    except ValueError as err:
        if getattr(err, "arg", None) == "b":  # a NaN or ±∞ in Aᵀβ
            raise ValueError(
                f"non-finite value in the right-hand side Aᵀβ of frozen operator {version}, formed from this call's "
                f"`coefficients`, `rhs_equation` and `init_vars` ({err})"
            ) from None
        raise
    return _t(u).reshape(rhs.shape)


@_ode_frozen_solve.register_fake
def _(rhs, version):
    return rhs.new_empty(rhs.shape)


def _ode_frozen_setup(ctx, inputs, output):
    ctx.version = inputs[1]


def _ode_frozen_grad(ctx, grad_u):
    # M is symmetric: the backward of u = M⁻¹ rhs is grad_rhs = M⁻¹ grad_u.
    return _ode_frozen_solve(grad_u, ctx.version), None


_ode_frozen_solve.register_autograd(_ode_frozen_grad, setup_context=_ode_frozen_setup)


def _normal_rhs(c, r, v, n_steps, weight_equation, weight_init_var):
    """``Aᵀβ`` of the layer, ``(batch, T, D, O)``, from ``c (batch, T or 1, E, D, O)``,
    ``r (batch, T or 1, E)``, ``v (batch, S, D, I)``: the equation rows give
    ``w_eq² Σ_e C[t,e,d,o] r[t,e]``, the initial-value rows ``w_init² v[t,d,o]`` (``t < S``,
    ``o < I``); the smoothness rows have none. Differentiable torch ops."""
    batch, _, e, d, o = c.shape
    eq = torch.einsum("btedo,bte->btdo", c.expand(batch, n_steps, e, d, o), r.expand(batch, n_steps, e))
    s, i = v.shape[1], v.shape[3]
    init = torch.nn.functional.pad(v, (0, o - i, 0, 0, 0, n_steps - s))
    return weight_equation**2 * eq + weight_init_var**2 * init


def ode_forward(
    coefficients,
    rhs_equation,
    init_vars,
    steps,
    n_steps=None,
    n_init_var_steps=None,
    is_step_dim_first=False,
    weight_equation=1.0,
    weight_init_var=1.0,
    weight_smooth=1.0,
    enable_central_smoothness=False,
    prefer_cuda_graph=True,
    frozen_lhs_cache_version=0,
):
    """The S-MNN layer (Scalable Mechanistic Neural Networks, ICLR 2025): a drop-in for the
    paper's ``ode_forward``, with the same signature and semantics.

    Solves, per system, the weighted least-squares problem of ``docs/ARCHITECTURE.md`` ("The
    S-MNN rows") for ``u[t, d, o]``, the ``o``-th derivative of variable ``d`` at step ``t``.

    Shapes (``...``: any number of batch axes, broadcast as torch broadcasts; a step axis marked
    ``T[b]`` may have size 1 and is then shared by every step):

    - ``coefficients (..., T[b], E, D, O)``: ``C[t, e, d, o]`` of the equations
      ``Σ_{d,o} C[t,e,d,o] u[t,d,o] = rhs_equation[t, e]``;
    - ``rhs_equation (..., T[b], E)``;
    - ``init_vars (..., S, D, I)``: ``u[t, d, o] = init_vars[t, d, o]`` for ``t < S``, ``o < I``;
    - ``steps (..., T − 1[b])``: the step sizes, positive;
    - returns ``u (..., T, D, O)``.

    With ``is_step_dim_first`` the step axis comes first instead (``(T, ..., E, D, O)`` …, and
    ``u (T, ..., D, O)``). ``n_steps`` defaults to ``steps.shape[step axis] + 1``;
    ``n_init_var_steps`` (``S``) to the step axis of ``init_vars`` (a smaller value uses the
    first ``S`` steps). Weights multiply their rows (``weight_smooth`` also the central rows of
    ``enable_central_smoothness``, which needs ``O ≥ 2``).

    ``frozen_lhs_cache_version = k > 0``: the first call with ``k`` factors the operator (from
    its ``coefficients`` and ``steps``), caches it and returns gradients for every input; later
    calls with ``k`` reuse it: their ``coefficients`` and ``steps`` are ignored and receive no
    gradient, and ``rhs_equation`` and ``init_vars`` (of the first call's shapes) cost one
    solve each way. ``clear_frozen_cache()`` forgets the operators. ``prefer_cuda_graph`` is
    accepted for compatibility and ignored.

    Gradients flow to all four inputs (summed over broadcast axes). CPU tensors of one dtype,
    float32 or float64. Raises ``banded.NotPositiveDefiniteError`` (a numerically singular
    system) and ``ValueError`` (shapes, dtypes, devices, NaN or ±∞, a step ≤ 0, a weight < 0).

    Cost per system O(T·(D·O)²·(E + D·O)) forward and backward, memory O(T·(D·O)²): linear in T.
    """
    del prefer_cuda_graph  # Only the paper's CUDA implementation uses it.
    _check("coefficients", coefficients)
    for name, t in (("rhs_equation", rhs_equation), ("init_vars", init_vars), ("steps", steps)):
        _check(name, t, coefficients.dtype)
    c, r, v, h = coefficients, rhs_equation, init_vars, steps
    for name, t, k, axes in (
        ("coefficients", c, 4, "(..., T, E, D, O)"),
        ("rhs_equation", r, 2, "(..., T, E)"),
        ("init_vars", v, 3, "(..., S, D, I)"),
        ("steps", h, 1, "(..., T − 1)"),
    ):
        if t.dim() < k:
            raise ValueError(f"`{name}`: expected shape {axes}, got {tuple(t.shape)}")
    if is_step_dim_first:
        c, r, v, h = c.movedim(0, -4), r.movedim(0, -2), v.movedim(0, -3), h.movedim(0, -1)
    if n_steps is None:
        n_steps = h.shape[-1] + 1
    if n_init_var_steps is not None and n_init_var_steps != v.shape[-3]:
        if v.shape[-3] == 1 and n_init_var_steps >= 1:
            v = v.expand(v.shape[:-3] + (n_init_var_steps,) + v.shape[-2:])
        elif 0 <= n_init_var_steps < v.shape[-3]:
            v = v[..., :n_init_var_steps, :, :]
        else:
            raise ValueError(
                f"`n_init_var_steps`: expected at most {v.shape[-3]} (the init axis of `init_vars`), or any value for an init axis of 1; got {n_init_var_steps}"
            )
    try:
        batch = torch.broadcast_shapes(c.shape[:-4], r.shape[:-2], v.shape[:-3], h.shape[:-1])
    except RuntimeError as err:
        shapes = ", ".join(f"{n} {tuple(t.shape[:-k])}" for n, t, k in (("coefficients", c, 4), ("rhs_equation", r, 2), ("init_vars", v, 3), ("steps", h, 1)))
        raise ValueError(f"the batch axes do not broadcast: {shapes}") from err
    count = 1
    for s in batch:
        count *= s

    def flat(t, k):
        return t.expand(batch + t.shape[t.dim() - k :]).reshape((count,) + t.shape[t.dim() - k :]).contiguous()

    c, r, v, h = flat(c, 4), flat(r, 2), flat(v, 3), flat(h, 1)
    weights = (float(weight_equation), float(weight_init_var), float(weight_smooth))
    central = bool(enable_central_smoothness)
    version = int(frozen_lhs_cache_version)
    opts = (int(n_steps), *weights, central)
    if version > 0 and version in _frozen:
        _check_frozen_shapes(version, c, r, v)
        u = _ode_frozen_solve(_normal_rhs(c, r, v, int(n_steps), weights[0], weights[1]).contiguous(), version)
    else:
        u, _ = _ode(c, r, v, h, *opts, list(batch), max(version, 0))
    u = u.reshape(batch + u.shape[1:])
    return u.movedim(-3, 0) if is_step_dim_first else u
