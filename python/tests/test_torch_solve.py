"""`banded.torch.solveh_banded` (python/README.md, "PyTorch API").

What is checked:

* the solution against `torch.linalg.solve` of the dense symmetric matrix, for `b` of shape
  `(..., n)` and `(..., n, k)`, batch shapes `()`, `(3,)`, `(2, 3)`, kd = 0, kd = n - 1,
  kd > n - 1 and n = 1, with garbage in the entries of `ab` outside the matrix;
* gradients: `torch.autograd.gradcheck` in float64 w.r.t. `ab` and `b`; equality with autograd
  through the dense solve (whose dense matrix is built from `ab` so that an off-diagonal stored
  entry stands for both A[i, j] and A[j, i]); exact zeros for the entries outside the matrix
  (j >= n - d);
* float32 (float32 results and gradients, ~1e-5 relative to float64);
* `torch.compile` (inductor; aot_eager only if inductor cannot compile here, with a warning)
  matching eager, forward and backward, and `torch.library.opcheck` on the registered op;
* non-contiguous inputs, inputs never modified, errors.
"""

import warnings
import zlib

import numpy as np
import pytest
import torch

import banded
import banded.torch as btorch

TOL64 = 1e-10
TOL32 = 1e-5


def rel_err(a, b):
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(b.abs().max()) if b.numel() else 0.0, np.finfo(np.float64).tiny)
    return (float((a - b).abs().max()) if a.numel() else 0.0) / scale


def seed(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def mask_lower(kd, n):
    """True where ab[d, j] is an entry of the matrix (j + d < n)."""
    return torch.arange(n)[None, :] + torch.arange(kd + 1)[:, None] < n


def random_ab(rng, batch_shape, n, kd, dtype=torch.float64, garbage=True):
    """A diagonally dominant SPD band, lower layout; garbage outside the matrix."""
    ab = rng.uniform(-1.0, 1.0, size=(*batch_shape, kd + 1, n))
    m = mask_lower(kd, n).numpy()
    ab = np.where(m, ab, 0.0)
    rowsum = np.zeros((*batch_shape, n))
    for d in range(1, min(kd, n - 1) + 1):
        rowsum[..., : n - d] += np.abs(ab[..., d, : n - d])  # column j of the lower part
        rowsum[..., d:] += np.abs(ab[..., d, : n - d])  # row j + d of the upper part
    ab[..., 0, :] = rowsum + 1.0 + rng.uniform(0.0, 1.0, size=(*batch_shape, n))
    if garbage:
        junk = rng.uniform(50.0, 100.0, size=ab.shape) * rng.choice([-1.0, 1.0], size=ab.shape)
        ab = np.where(m, ab, junk)
    return torch.tensor(ab, dtype=dtype)


def dense(ab):
    """The symmetric dense matrix of a lower band, built differentiably: ab[d, j] appears at
    both A[j + d, j] and A[j, j + d]; entries outside the matrix are not used."""
    *batch, w, n = ab.shape
    a = torch.diag_embed(ab[..., 0, :])
    for d in range(1, min(w - 1, n - 1) + 1):
        v = ab[..., d, : n - d]
        a = a + torch.diag_embed(v, offset=-d) + torch.diag_embed(v, offset=d)
    return a


def dense_solve(ab, b):
    a = dense(ab)
    if b.dim() == ab.dim() - 1:
        return torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
    return torch.linalg.solve(a, b)


def make_b(rng, batch_shape, n, rhs, dtype=torch.float64):
    shape = (*batch_shape, n) if rhs == "vec" else (*batch_shape, n, int(rhs[3:]))
    return torch.tensor(rng.standard_normal(shape), dtype=dtype)


BATCHES = [(), (3,), (2, 3)]
BATCH_IDS = ["nobatch", "b3", "b2x3"]
# (n, kd)
SIZES = [(7, 2), (6, 0), (6, 5), (5, 8), (1, 0), (1, 2), (30, 6)]
SIZE_IDS = ["n7kd2", "kd0", "kd=n-1", "kd>n-1", "n1kd0", "n1kd2", "n30kd6"]
RHS = ["vec", "mat1", "mat3"]


# --------------------------------------------------------------------------------------------
# forward and gradients against the dense solve
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rhs", RHS)
@pytest.mark.parametrize("n,kd", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("batch_shape", BATCHES, ids=BATCH_IDS)
def test_matches_dense_solve_and_its_gradient(batch_shape, n, kd, rhs):
    rng = seed("dense", batch_shape, n, kd, rhs)
    ab = random_ab(rng, batch_shape, n, kd).requires_grad_()
    b = make_b(rng, batch_shape, n, rhs).requires_grad_()
    ab0, b0 = ab.detach().clone(), b.detach().clone()
    x = btorch.solveh_banded(ab, b)
    assert isinstance(x, torch.Tensor)
    assert x.shape == b.shape and x.dtype == torch.float64
    assert torch.equal(ab.detach(), ab0) and torch.equal(b.detach(), b0), "an input was modified"

    ab_d = ab.detach().clone().requires_grad_()
    b_d = b.detach().clone().requires_grad_()
    x_ref = dense_solve(ab_d, b_d)
    assert rel_err(x, x_ref) < TOL64

    gx = torch.tensor(rng.standard_normal(tuple(x.shape)))
    ga, gb = torch.autograd.grad(x, (ab, b), gx)
    ga_ref, gb_ref = torch.autograd.grad(x_ref, (ab_d, b_d), gx)
    assert ga.shape == ab.shape and gb.shape == b.shape
    assert ga.dtype == torch.float64 and gb.dtype == torch.float64
    assert rel_err(gb, gb_ref) < TOL64
    assert rel_err(ga, ga_ref) < TOL64
    # entries of ab outside the matrix (j >= n - d): exactly zero gradient
    outside = ~mask_lower(kd, n)
    assert torch.all(ga[..., outside] == 0.0)


def test_reference_vectors():
    """tests/data/band_*.npz (SciPy/LAPACK): x, grad_rhs, grad_ab through autograd."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "tests" / "data"
    names = ["band_tridiag.npz", "band_kd4.npz", "band_kd17.npz", "band_dense_edge.npz"]
    for name in names:
        d = np.load(data / name)
        ab = torch.tensor(d["ab"], requires_grad=True)
        b = torch.tensor(d["rhs"], requires_grad=True)
        x = btorch.solveh_banded(ab, b)
        assert rel_err(x, d["x"]) < 1e-9, name
        ga, gb = torch.autograd.grad(x, (ab, b), torch.tensor(d["grad_x"]))
        assert rel_err(gb, d["grad_rhs"]) < 1e-9, name
        assert rel_err(ga, d["grad_ab"]) < 1e-9, name


GRADCHECK = [
    pytest.param((), 5, 2, "vec", id="nobatch-vec"),
    pytest.param((), 5, 2, "mat2", id="nobatch-mat2"),
    pytest.param((3,), 5, 2, "vec", id="b3-vec"),
    pytest.param((3,), 5, 2, "mat2", id="b3-mat2"),
    pytest.param((2, 3), 4, 1, "vec", id="b2x3-vec"),
    pytest.param((2, 3), 4, 2, "mat2", id="b2x3-mat2"),
    pytest.param((3,), 5, 0, "mat2", id="b3-kd0"),
    pytest.param((2,), 5, 4, "vec", id="b2-kd=n-1"),
    pytest.param((2,), 4, 6, "mat2", id="b2-kd>n-1"),
    pytest.param((2,), 1, 0, "mat2", id="b2-n1"),
]


@pytest.mark.parametrize("batch_shape,n,kd,rhs", GRADCHECK)
def test_gradcheck(batch_shape, n, kd, rhs):
    rng = seed("gradcheck", batch_shape, n, kd, rhs)
    ab = random_ab(rng, batch_shape, n, kd).requires_grad_()
    b = make_b(rng, batch_shape, n, rhs).requires_grad_()
    assert torch.autograd.gradcheck(btorch.solveh_banded, (ab, b))
    # one input differentiable at a time
    assert torch.autograd.gradcheck(lambda a: btorch.solveh_banded(a, b.detach()), (ab,))
    assert torch.autograd.gradcheck(lambda v: btorch.solveh_banded(ab.detach(), v), (b,))


def test_gradient_only_for_inputs_that_require_it():
    rng = seed("reqgrad")
    ab = random_ab(rng, (3,), 6, 2)
    b = make_b(rng, (3,), 6, "mat2").requires_grad_()
    x = btorch.solveh_banded(ab, b)
    x.sum().backward()
    assert ab.grad is None and b.grad is not None
    ab.requires_grad_()
    b2 = b.detach()
    x = btorch.solveh_banded(ab, b2)
    x.square().sum().backward()
    assert ab.grad is not None and b2.grad is None
    # neither: a plain tensor
    x = btorch.solveh_banded(ab.detach(), b2)
    assert not x.requires_grad


# --------------------------------------------------------------------------------------------
# float32, memory layouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rhs", ["vec", "mat3"])
@pytest.mark.parametrize("batch_shape", BATCHES, ids=BATCH_IDS)
def test_float32(batch_shape, rhs):
    rng = seed("f32", batch_shape, rhs)
    ab64 = random_ab(rng, batch_shape, 25, 4)
    b64 = make_b(rng, batch_shape, 25, rhs)
    ab = ab64.to(torch.float32).requires_grad_()
    b = b64.to(torch.float32).requires_grad_()
    x = btorch.solveh_banded(ab, b)
    assert x.dtype == torch.float32 and x.shape == b.shape
    # reference: float64 on the same (rounded) values
    ab_r = ab.detach().double().requires_grad_()
    b_r = b.detach().double().requires_grad_()
    x_r = btorch.solveh_banded(ab_r, b_r)
    assert rel_err(x, x_r) < TOL32
    assert rel_err(x, dense_solve(ab.detach().double(), b.detach().double())) < TOL32
    gx = torch.tensor(rng.standard_normal(tuple(x.shape)))
    ga, gb = torch.autograd.grad(x, (ab, b), gx.float())
    ga_r, gb_r = torch.autograd.grad(x_r, (ab_r, b_r), gx)
    assert ga.dtype == torch.float32 and gb.dtype == torch.float32
    assert rel_err(gb, gb_r) < TOL32
    assert rel_err(ga, ga_r) < TOL32
    assert torch.all(ga[..., ~mask_lower(4, 25)] == 0.0)


def test_non_contiguous_inputs():
    rng = seed("views")
    ab = random_ab(rng, (3,), 9, 2)
    b = make_b(rng, (3,), 9, "mat2")
    ab_t = ab.transpose(-1, -2).contiguous().transpose(-1, -2)  # column-major view
    b_t = b.transpose(-1, -2).contiguous().transpose(-1, -2)
    big = torch.tensor(rng.standard_normal((6, 3, 18)))
    big[::2, :, ::2] = ab
    ab_s = big[::2, :, ::2]  # strided in two axes
    bigb = torch.tensor(rng.standard_normal((3, 3, 9, 2)))
    bigb[:, 1] = b
    b_s = bigb[:, 1]  # strided across the batch
    for v in (ab_t, b_t, ab_s, b_s):
        assert not v.is_contiguous()
    ref = btorch.solveh_banded(ab, b)
    for a_v, b_v in ((ab_t, b), (ab, b_t), (ab_t, b_t), (ab_s, b_s), (ab_s, b_t)):
        a0, b0 = a_v.clone(), b_v.clone()
        x = btorch.solveh_banded(a_v, b_v)
        assert rel_err(x, ref) < TOL64
        assert torch.equal(a_v, a0) and torch.equal(b_v, b0), "an input was modified"
    xv = btorch.solveh_banded(ab_s, b_s[..., 0])
    assert rel_err(xv, btorch.solveh_banded(ab, b[..., 0].contiguous())) < TOL64
    # gradients land in the layout of the view's shape
    a_g = ab_t.detach().requires_grad_()
    b_g = b_t.detach().requires_grad_()
    gx = torch.tensor(rng.standard_normal((3, 9, 2)))
    ga, gb = torch.autograd.grad(btorch.solveh_banded(a_g, b_g), (a_g, b_g), gx)
    a_c = ab.clone().requires_grad_()
    b_c = b.clone().requires_grad_()
    ga_c, gb_c = torch.autograd.grad(btorch.solveh_banded(a_c, b_c), (a_c, b_c), gx)
    assert rel_err(ga, ga_c) < TOL64 and rel_err(gb, gb_c) < TOL64


def test_output_does_not_alias_inputs():
    rng = seed("alias")
    ab = random_ab(rng, (2,), 5, 1)
    b = make_b(rng, (2,), 5, "vec")
    x = btorch.solveh_banded(ab, b)
    assert x.data_ptr() != b.data_ptr() and x.data_ptr() != ab.data_ptr()
    x.zero_()
    assert b.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# torch.library registration, torch.compile
# --------------------------------------------------------------------------------------------

_COMPILE_BACKEND = {}


def _compile(fn, **options):
    """torch.compile(fn, fullgraph=True, **options) with inductor, or with aot_eager (and a
    warning) if inductor cannot compile on this machine (no C++ compiler, ...); which one ran
    is recorded in _COMPILE_BACKEND (this machine: inductor)."""
    import torch._dynamo

    compiled = []

    def run(*args):
        if not compiled:
            backend = _COMPILE_BACKEND.get("backend", "inductor")
            try:
                f = torch.compile(fn, backend=backend, fullgraph=True, **options)
                out = f(*args)
            except Exception as e:  # noqa: BLE001 - an inductor failure only: fall back, loudly
                if backend != "inductor" or type(e).__name__ not in ("BackendCompilerFailed", "InductorError"):
                    raise
                warnings.warn(f"inductor cannot compile here ({type(e).__name__}: {e}); using aot_eager")
                torch._dynamo.reset()
                backend = "aot_eager"
                f = torch.compile(fn, backend=backend, fullgraph=True, **options)
                out = f(*args)
            _COMPILE_BACKEND["backend"] = backend
            compiled.append(f)
            return out
        return compiled[0](*args)

    return run


def _loss(ab, b):
    x = btorch.solveh_banded(ab, b)
    return (x * x).sum() + x.sin().sum(), x


def test_torch_compile_matches_eager():
    torch._dynamo.reset()
    rng = seed("compile")
    compiled = _compile(_loss)
    for shape, n, kd, rhs in (((3,), 8, 2, "mat2"), ((2, 2), 6, 1, "vec")):
        ab = random_ab(rng, shape, n, kd)
        b = make_b(rng, shape, n, rhs)
        a_e, b_e = ab.clone().requires_grad_(), b.clone().requires_grad_()
        a_c, b_c = ab.clone().requires_grad_(), b.clone().requires_grad_()
        loss_e, x_e = _loss(a_e, b_e)
        loss_c, x_c = compiled(a_c, b_c)
        assert rel_err(x_c, x_e) < TOL64
        assert rel_err(loss_c, loss_e) < TOL64
        ge = torch.autograd.grad(loss_e, (a_e, b_e))
        gc = torch.autograd.grad(loss_c, (a_c, b_c))
        assert rel_err(gc[0], ge[0]) < TOL64 and rel_err(gc[1], ge[1]) < TOL64
        assert torch.all(gc[0][..., ~mask_lower(kd, n)] == 0.0)
    print(f"torch.compile backend used: {_COMPILE_BACKEND.get('backend')}")
    assert _COMPILE_BACKEND.get("backend") in ("inductor", "aot_eager")


def test_torch_compile_dynamic_shapes_matches_eager():
    """dynamic=True: the fake implementations with symbolic batch, n, kd and k."""
    torch._dynamo.reset()
    rng = seed("compile-dynamic")
    compiled = _compile(_loss, dynamic=True)
    for shape, n, kd, rhs in (((3,), 8, 2, "mat2"), ((4,), 11, 3, "mat3"), ((2,), 5, 0, "mat1")):
        ab = random_ab(rng, shape, n, kd)
        b = make_b(rng, shape, n, rhs)
        a_e, b_e = ab.clone().requires_grad_(), b.clone().requires_grad_()
        a_c, b_c = ab.clone().requires_grad_(), b.clone().requires_grad_()
        loss_e, x_e = _loss(a_e, b_e)
        loss_c, x_c = compiled(a_c, b_c)
        assert rel_err(x_c, x_e) < TOL64
        ge = torch.autograd.grad(loss_e, (a_e, b_e))
        gc = torch.autograd.grad(loss_c, (a_c, b_c))
        assert rel_err(gc[0], ge[0]) < TOL64 and rel_err(gc[1], ge[1]) < TOL64


def test_opcheck_registered_ops():
    """torch.library.opcheck on the registered ops (banded::solveh and its backward).

    `test_aot_dispatch_dynamic` is run on the backward only: the forward's second output is a
    handle to the factor kept for the backward, a fresh integer on every call, so eager and
    traced outputs differ by design there (its `x` is compared by the torch.compile tests)."""
    rng = seed("opcheck")
    ab = random_ab(rng, (2,), 6, 2)
    b = make_b(rng, (2,), 6, "mat2")
    fwd = torch.ops.banded.solveh.default
    torch.library.opcheck(
        fwd, (ab, b, [2]), test_utils=("test_schema", "test_autograd_registration", "test_faketensor")
    )
    x, handle = fwd(ab, b, [2])
    gx = make_b(rng, (2,), 6, "mat2")
    torch.library.opcheck(torch.ops.banded.solveh_backward.default, (ab, x, handle, gx))


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def _plain_value_error(call, arg=None):
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, banded.NotPositiveDefiniteError), info.value
    if arg is not None:
        import re

        pat = r"(?<![A-Za-z_])" + re.escape(arg) + r"(?![A-Za-z_])"
        assert re.search(pat, str(info.value)), str(info.value)
    return info.value


def test_not_positive_definite():
    rng = seed("npd")
    ab = random_ab(rng, (2, 3), 7, 2, garbage=False)
    ab[0, 2, 0, 0] = -1.0  # system 2 = (0, 2), column 0
    ab[1, 1, 0, 3] = -0.5  # system 4 = (1, 1), column 3
    b = make_b(rng, (2, 3), 7, "mat2")
    ab0, b0 = ab.clone(), b.clone()
    with pytest.raises(banded.NotPositiveDefiniteError) as info:
        btorch.solveh_banded(ab.requires_grad_(), b)
    e = info.value
    assert isinstance(e, np.linalg.LinAlgError)
    assert e.system == 2 and e.column == 0
    assert [tuple(int(v) for v in f) for f in e.failures] == [(2, 0), (4, 3)]
    assert tuple(e.batch_index) == (0, 2), e.batch_index  # an index into the batch axes (2, 3)
    assert torch.equal(ab.detach(), ab0) and torch.equal(b, b0)
    # no batch axis
    ab1 = random_ab(rng, (), 5, 1, garbage=False)
    ab1[0, 4] = -1.0
    with pytest.raises(banded.NotPositiveDefiniteError) as info:
        btorch.solveh_banded(ab1, make_b(rng, (), 5, "vec"))
    assert (info.value.system, info.value.column, tuple(info.value.batch_index)) == (0, 4, ())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite(bad):
    rng = seed("nonfinite")
    ab = random_ab(rng, (3,), 6, 2, garbage=False)
    b = make_b(rng, (3,), 6, "mat2")
    a2 = ab.clone()
    a2[1, 1, 2] = bad
    _plain_value_error(lambda: btorch.solveh_banded(a2, b), "ab")
    b2 = b.clone()
    b2[2, 4, 1] = bad
    _plain_value_error(lambda: btorch.solveh_banded(ab, b2), "b")
    _plain_value_error(lambda: btorch.solveh_banded(ab, b2[..., 1]), "b")


def test_shape_and_dtype_errors():
    rng = seed("shapes")
    ab = random_ab(rng, (3,), 5, 1)
    b = make_b(rng, (3,), 5, "mat2")
    for bad_b in (torch.ones(3, 4, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64),
                  torch.ones(2, 5, 1, dtype=torch.float64), torch.ones(5, dtype=torch.float64),
                  torch.ones(1, 3, 5, 1, dtype=torch.float64)):
        _plain_value_error(lambda: btorch.solveh_banded(ab, bad_b))
    for bad_ab in (torch.ones(5, dtype=torch.float64), torch.ones(3, 0, 5, dtype=torch.float64)):
        _plain_value_error(lambda: btorch.solveh_banded(bad_ab, b))
    # dtypes: complex and integer tensors refused, never truncated
    with pytest.raises((ValueError, TypeError)):
        btorch.solveh_banded(ab.to(torch.complex128), b.to(torch.complex128))
    with pytest.raises((ValueError, TypeError)):
        btorch.solveh_banded(ab, b.to(torch.complex128))
    with pytest.raises((ValueError, TypeError)):
        btorch.solveh_banded(ab.to(torch.int64), b.to(torch.int64))
    with pytest.raises((ValueError, TypeError)):
        btorch.solveh_banded(ab.numpy(), b.numpy())


def test_backward_without_the_forwards_factor_recomputes_it():
    """If the handle's factor is gone (python/banded/torch.py), the backward refactors `ab`
    with the same kernels: the same gradients, bit for bit."""
    rng = seed("refactor")
    ab, b = random_ab(rng, (3,), 9, 2), make_b(rng, (3,), 9, "mat2")

    def grads(drop_factors):
        a, x = ab.clone().requires_grad_(True), b.clone().requires_grad_(True)
        out = btorch.solveh_banded(a, x)
        if drop_factors:
            btorch._factors.clear()
        out.backward(torch.ones_like(out))
        return a.grad, x.grad

    for got, want in zip(grads(True), grads(False)):
        assert torch.equal(got, want)
