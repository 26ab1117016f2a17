"""Tests of `banded.torch.ode_forward`, the S-MNN layer as a PyTorch op.

What is checked (the rows of the layer: docs/ARCHITECTURE.md, "The S-MNN rows"; the call
semantics: python/README.md):

- the dense reference of `smnn_reference.py` (rows of `A` formed explicitly, solved with torch,
  differentiated by torch autograd) against the paper authors' vectors `tests/data/smnn_*.npz`;
- `ode_forward` against that reference to 1e-10 in float64, output and the gradients of all
  four inputs: leading batch shapes (), (3,), (2, 3); step axes of size 1 (broadcast);
  central smoothness; weights; `init_vars` covering fewer steps and orders than `u`; an init
  step axis of size 1 broadcast over `n_init_var_steps`; `is_step_dim_first`; batch axes that
  broadcast between the inputs (the gradient of a broadcast input is summed, as torch does);
- `ode_forward` against the vectors directly (1e-9, as the crate's own tests);
- `torch.autograd.gradcheck` w.r.t. all four inputs, and the frozen operator
  (`frozen_lhs_cache_version`): a later call solves with the first call's operator for its own
  right-hand side (gradients to coefficients through Aᵀβ, none to steps);
- `torch.compile` of a small model against eager; float32 against float64; bad input gets a
  `ValueError` naming the argument; `prefer_cuda_graph` accepted either way.

Inputs are well-conditioned: coefficients uniform in [-1, 1] plus 1.5 on (e, d = e, o = 0)
when E = D, right-hand sides in [-1, 1], steps in [0.05, 0.15].
"""

import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import banded.torch as bt  # noqa: E402
from smnn_reference import dense_frozen_forward, dense_ode_forward  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
VECTOR_FILES = ["smnn_broadcast", "smnn_scalar_ode", "smnn_tiny", "smnn_tiny_central", "smnn_weighted"]
INPUTS = ("coefficients", "rhs_equation", "init_vars", "steps")
F64 = torch.float64

# ode_forward vs the dense reference (both float64, κ(M) ≲ 1e6 for these inputs).
TOL_DENSE = 1e-10
# ode_forward vs the authors' vectors: the crate's own tolerance (tests/smnn_vectors.rs).
TOL_VECTORS = 1e-9
# The dense reference vs the vectors. The vectors carry their own rounding error: against an
# 80-bit (long double) solve of the same rows, smnn_broadcast.npz (κ(M) ≈ 3e7) has a
# grad_steps off by 1.03e-9 relative and a u off by 5.6e-10; the reference (a QR solve, within
# ~1e-11 of the 80-bit solve) can agree with them no better than that.
TOL_REFERENCE_VS_VECTORS = 2e-9


# ------------------------------------------------------------------------------------------
# helpers


def rel_err(got, want):
    """max |got − want| / max |want| (the crate's `rel_err`), shapes required equal."""
    assert tuple(got.shape) == tuple(want.shape), f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    got = torch.as_tensor(got).detach().to(F64)
    want = torch.as_tensor(want).detach().to(F64)
    scale = want.abs().max().clamp_min(torch.finfo(F64).tiny)
    return ((got - want).abs().max() / scale).item()


def assert_close(got, want, tol, what):
    assert got is not None, f"{what}: no gradient"
    assert torch.isfinite(torch.as_tensor(got)).all(), f"{what}: not finite"
    err = rel_err(got, want)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def _seed(name):
    return zlib.crc32(name.encode()) % 10_000


def make_inputs(*, T=5, E=2, D=2, O=3, S=1, I=2, batch=(), cb=None, rb=None, vb=None, hb=None,
                ct=None, rt=None, vt=None, ht=None, seed=0):
    """Well-conditioned float64 inputs, batch first. `cb`/`rb`/`vb`/`hb`: the batch axes of each
    input (default `batch`); `ct`/`rt`/`vt`/`ht`: the length of each step axis (default
    T, T, S, T − 1; 1 broadcasts)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(shape, lo=-1.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)

    cb, rb, vb, hb = (tuple(batch if x is None else x) for x in (cb, rb, vb, hb))
    ct, rt, vt, ht = (T if ct is None else ct), (T if rt is None else rt), (S if vt is None else vt), \
        (T - 1 if ht is None else ht)
    c = uniform((*cb, ct, E, D, O))
    if E == D:
        idx = torch.arange(E)
        c[..., idx, idx, 0] += 1.5
    r = uniform((*rb, rt, E))
    v = uniform((*vb, vt, D, I))
    h = uniform((*hb, ht), 0.05, 0.15)
    return [c, r, v, h]


def to_step_first(inputs):
    """Batch-first inputs → the `is_step_dim_first=True` layout (contiguous)."""
    c, r, v, h = inputs
    return [c.movedim(-4, 0).contiguous(), r.movedim(-2, 0).contiguous(),
            v.movedim(-3, 0).contiguous(), h.movedim(-1, 0).contiguous()]


def run(fn, inputs, cotangent=None, seed=1, **kw):
    """`fn(*inputs, **kw)` on fresh leaves; backward of Σ cotangent·u (a random cotangent unless
    given). Returns (u, [grad of each input], cotangent)."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    u = fn(*xs, **kw)
    if cotangent is None:
        g = torch.Generator().manual_seed(seed)
        cotangent = (2 * torch.rand(u.shape, generator=g, dtype=F64) - 1).to(u.dtype)
    (u * cotangent).sum().backward()
    return u.detach(), [x.grad for x in xs], cotangent


def compare_with_dense(inputs, tol=TOL_DENSE, **kw):
    dense_kw = {k: x for k, x in kw.items() if k not in ("frozen_lhs_cache_version", "prefer_cuda_graph")}
    want_u, want_g, cot = run(dense_ode_forward, inputs, **dense_kw)
    got_u, got_g, _ = run(bt.ode_forward, inputs, cotangent=cot, **kw)
    assert got_u.dtype == F64
    assert_close(got_u, want_u, tol, "u")
    for name, x, gg, wg in zip(INPUTS, inputs, got_g, want_g):
        assert gg is not None, f"{name}: no gradient"
        assert gg.shape == x.shape, f"{name}: gradient shape {tuple(gg.shape)} != {tuple(x.shape)}"
        assert_close(gg, wg, tol, f"grad {name}")
    return got_u


def load_vectors(name):
    z = np.load(DATA / f"{name}.npz")
    inputs = [torch.from_numpy(z[k]).to(F64) for k in INPUTS]
    kw = dict(n_steps=int(z["n_steps"]), weight_equation=float(z["weight_equation"]),
              weight_init_var=float(z["weight_init_var"]), weight_smooth=float(z["weight_smooth"]),
              enable_central_smoothness=bool(z["central"]))
    return z, inputs, kw


# ------------------------------------------------------------------------------------------
# 1. the reference itself, against the authors' vectors


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_dense_reference_matches_vectors(name):
    z, inputs, kw = load_vectors(name)
    u, grads, _ = run(dense_ode_forward, inputs, cotangent=torch.from_numpy(z["grad_u"]), **kw)
    assert_close(u, torch.from_numpy(z["u"]), TOL_REFERENCE_VS_VECTORS, f"{name}: u")
    for k, gr in zip(INPUTS, grads):
        assert_close(gr, torch.from_numpy(z[f"grad_{k}"]), TOL_REFERENCE_VS_VECTORS, f"{name}: grad_{k}")


# ------------------------------------------------------------------------------------------
# 2. ode_forward against the dense reference


DENSE_CASES = {
    "batch_none": (dict(batch=()), {}),
    "batch_3": (dict(batch=(3,)), {}),
    "batch_2x3": (dict(batch=(2, 3)), {}),
    "E_gt_D": (dict(batch=(2,), E=3, D=2), {}),
    "scalar_ode_D1": (dict(batch=(3,), T=8, E=1, D=1, O=3, I=2), {}),
    "coefficients_step_axis_1": (dict(batch=(2,), ct=1), {}),
    "rhs_step_axis_1": (dict(batch=(2,), rt=1), {}),
    "steps_step_axis_1": (dict(batch=(2,), ht=1), dict(n_steps=5)),
    "every_step_axis_1_n_steps": (dict(batch=(2,), T=6, ct=1, rt=1, ht=1), dict(n_steps=6)),
    "central": (dict(batch=(2,), T=7), dict(enable_central_smoothness=True)),
    "central_O2": (dict(batch=(2,), T=6, O=2, I=1), dict(enable_central_smoothness=True)),
    "central_step_axes_1": (dict(batch=(2,), T=7, ct=1, ht=1),
                            dict(enable_central_smoothness=True, n_steps=7)),
    "weights": (dict(batch=(3,)), dict(weight_equation=0.7, weight_init_var=1.9, weight_smooth=0.4)),
    "weights_central": (dict(batch=(2,), T=6, D=3, E=3, O=3),
                        dict(weight_equation=1.3, weight_init_var=0.6, weight_smooth=2.1,
                             enable_central_smoothness=True)),
    "init_fewer_steps_and_orders": (dict(batch=(2,), T=6, O=3, S=2, I=1), {}),
    "init_all_orders_three_steps": (dict(batch=(2,), T=6, O=3, S=3, I=3), {}),
    # The init axis is a step axis too: of size 1 it is shared by the first n_init_var_steps
    # steps (python/README.md: "any step axis may be 1 (broadcast)"; the paper's layer asserts
    # the init axis is n_init_var_steps or 1 and broadcasts the latter).
    "init_step_axis_1_broadcast": (dict(batch=(2,), T=6, S=3, vt=1), dict(n_init_var_steps=3)),
    "n_init_var_steps_below_init_axis": (dict(batch=(2,), T=6, S=3, I=1), dict(n_init_var_steps=2)),
    "T2_every_step_axis_1": (dict(batch=(2,), T=2, ct=1, rt=1), {}),
    "batch_broadcast_between_inputs": (dict(cb=(1, 3), rb=(2, 3), vb=(3,), hb=(2, 1)), {}),
    "one_operator_many_rhs": (dict(cb=(), hb=(), rb=(4,), vb=(4,)), {}),
    "rhs_and_init_shared": (dict(cb=(2, 3), hb=(3,), rb=(), vb=(1, 1)), {}),
    "batch_broadcast_and_step_axes_1": (dict(cb=(1, 3), rb=(2, 1), vb=(), hb=(3,), ct=1, ht=1, T=5),
                                        dict(n_steps=5, enable_central_smoothness=True)),
}


@pytest.mark.parametrize("case", list(DENSE_CASES))
def test_matches_dense_reference(case):
    shape, kw = DENSE_CASES[case]
    compare_with_dense(make_inputs(**shape, seed=_seed(case)), **kw)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_step_dim_first_matches_dense_reference(batch):
    inputs = to_step_first(make_inputs(batch=batch, T=6, seed=11))
    u = compare_with_dense(inputs, is_step_dim_first=True)
    assert u.shape == (6, *batch, 2, 3)


def test_step_dim_first_broadcast_matches_dense_reference():
    inputs = to_step_first(make_inputs(cb=(1, 3), rb=(2, 3), vb=(3,), hb=(2, 1), ct=1, ht=1, T=6, seed=12))
    u = compare_with_dense(inputs, is_step_dim_first=True, n_steps=6, enable_central_smoothness=True,
                           weight_smooth=0.8)
    assert u.shape == (6, 2, 3, 2, 3)


def test_step_dim_first_equals_batch_first():
    inputs = make_inputs(batch=(2, 3), T=6, seed=13)
    u = bt.ode_forward(*inputs)
    u_first = bt.ode_forward(*to_step_first(inputs), is_step_dim_first=True)
    assert u_first.shape == (6, 2, 3, 2, 3)
    assert_close(u_first, u.movedim(-3, 0), 1e-14, "u (step first) vs u (batch first)")


def test_output_shape_and_broadcast_gradient_shapes():
    # coefficients (1, 3, 1, E, D, O): batch axis 0 and step axis broadcast; the gradient has
    # the shape of the input (summed over what was broadcast). The inputs are left unchanged.
    inputs = make_inputs(cb=(1, 3), rb=(2, 3), vb=(3,), hb=(2, 1), ct=1, T=5, seed=14)
    xs = [x.clone().requires_grad_(True) for x in inputs]
    u = bt.ode_forward(*xs, n_steps=5)
    assert u.shape == (2, 3, 5, 2, 3) and u.dtype == F64 and u.requires_grad
    u.sum().backward()
    for name, x, x0 in zip(INPUTS, xs, inputs):
        assert x.grad is not None and x.grad.shape == x.shape, name
        assert torch.equal(x.detach(), x0), f"{name} was modified"
    assert not bt.ode_forward(*inputs).requires_grad


@pytest.mark.parametrize("which", range(4), ids=INPUTS)
def test_gradient_of_one_input_only(which):
    # only one input requires a gradient: the backward gives that one, equal to the dense one
    inputs = make_inputs(batch=(2,), T=5, seed=16 + which)
    xs = [x.clone().requires_grad_(i == which) for i, x in enumerate(inputs)]
    ys = [x.clone().requires_grad_(i == which) for i, x in enumerate(inputs)]
    u = bt.ode_forward(*xs, enable_central_smoothness=True)
    want = dense_ode_forward(*ys, enable_central_smoothness=True)
    cot = torch.rand(u.shape, generator=torch.Generator().manual_seed(17), dtype=F64)
    (got_g,) = torch.autograd.grad((u * cot).sum(), [xs[which]])
    (want_g,) = torch.autograd.grad((want * cot).sum(), [ys[which]])
    assert_close(got_g, want_g, TOL_DENSE, f"grad {INPUTS[which]}")


def test_non_contiguous_inputs():
    inputs = make_inputs(batch=(3, 2), T=5, seed=15)
    # the same values through transposed (non-contiguous) and expanded views
    c_t = inputs[0].transpose(0, 1).contiguous().transpose(0, 1)
    r_e = inputs[1][:1].expand(3, 2, 5, 2)
    assert not c_t.is_contiguous() and not r_e.is_contiguous()
    want = bt.ode_forward(inputs[0], r_e.contiguous(), inputs[2], inputs[3])
    got = bt.ode_forward(c_t, r_e, inputs[2], inputs[3])
    assert_close(got, want, 0.0, "u from non-contiguous inputs")
    assert_close(got, dense_ode_forward(c_t, r_e, inputs[2], inputs[3]), TOL_DENSE, "u vs dense")


# ------------------------------------------------------------------------------------------
# 3. ode_forward against the authors' vectors


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_matches_vectors(name):
    z, inputs, kw = load_vectors(name)
    u, grads, _ = run(bt.ode_forward, inputs, cotangent=torch.from_numpy(z["grad_u"]), **kw)
    assert_close(u, torch.from_numpy(z["u"]), TOL_VECTORS, f"{name}: u")
    for k, gr in zip(INPUTS, grads):
        assert_close(gr, torch.from_numpy(z[f"grad_{k}"]), TOL_VECTORS, f"{name}: grad_{k}")


# ------------------------------------------------------------------------------------------
# 4. gradcheck, and the frozen operator

# torch.autograd.gradcheck with its default eps = 1e-6, atol = 1e-5, rtol = 1e-3: a central
# difference of a solve with κ(M) up to ~1e5 carries ~κ·ε·|u|/eps of rounding (up to ~1e-5 for
# a normal-equations solve). The analytic gradients are held to 1e-10 against the dense
# reference above; this is the check that does not depend on that reference.
GRADCHECK_CASES = {
    "batch_none": (dict(batch=(), T=4), {}),
    "batch_3": (dict(batch=(3,), T=4), {}),
    "batch_2x3": (dict(batch=(2, 3), T=3, O=2, I=1), {}),
    "step_axes_1": (dict(batch=(2,), T=4, ct=1, rt=1, ht=1), dict(n_steps=4)),
    "central_weights": (dict(batch=(2,), T=5, E=3, D=3, O=3, S=2, I=1),
                        dict(enable_central_smoothness=True, weight_equation=0.8, weight_init_var=1.7,
                             weight_smooth=1.3)),
    "batch_broadcast": (dict(cb=(1, 2), rb=(2, 2), vb=(2,), hb=(2, 1), T=4), {}),
    "step_dim_first": (dict(batch=(2,), T=4), dict(is_step_dim_first=True)),
}


@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_gradcheck(case):
    shape, kw = GRADCHECK_CASES[case]
    inputs = make_inputs(**shape, seed=_seed(case))
    if kw.get("is_step_dim_first"):
        inputs = to_step_first(inputs)
    xs = tuple(x.requires_grad_(True) for x in inputs)
    assert torch.autograd.gradcheck(lambda *a: bt.ode_forward(*a, **kw), xs)


def _frozen_setup(seed):
    first = make_inputs(batch=(2,), T=5, seed=seed)
    other = make_inputs(batch=(2,), T=5, seed=seed + 1)  # other coefficients, rhs, init, steps
    return first, other


def test_frozen_first_call_gives_every_gradient():
    first, _ = _frozen_setup(100)
    compare_with_dense(first, frozen_lhs_cache_version=7101)


def test_frozen_later_call_reuses_operator():
    version = 7102
    first, other = _frozen_setup(200)
    c1, r1, v1, h1 = first
    c2, r2, v2, h2 = other
    kw = dict(weight_equation=0.9, weight_init_var=1.3, weight_smooth=1.2, enable_central_smoothness=True)
    u1 = bt.ode_forward(c1, r1, v1, h1, frozen_lhs_cache_version=version, **kw)
    assert_close(u1, dense_ode_forward(c1, r1, v1, h1, **kw), TOL_DENSE, "first call u")
    # A later call with the same version: the operator M is the FIRST call's (its coefficients
    # and steps); the right-hand side Aᵀβ is this call's (coefficients, rhs, init), as in the
    # paper's layer (python/README.md).
    xs = [x.clone().requires_grad_(True) for x in (c2, r2, v2, h2)]
    u2 = bt.ode_forward(*xs, frozen_lhs_cache_version=version, **kw)
    ref = [x.clone().requires_grad_(True) for x in (c2, r2, v2)]
    want = dense_frozen_forward(c1, h1, *ref, **kw)
    assert_close(u2, want, TOL_DENSE, "later call u")
    # ... and not the solution of the operator of the coefficients and steps it was given
    assert rel_err(u2, dense_ode_forward(c2, r2, v2, h2, **kw)) > 1e-3
    cot = torch.randn(want.shape, dtype=want.dtype, generator=torch.Generator().manual_seed(5))
    (want * cot).sum().backward()
    (u2 * cot).sum().backward()
    for name, got, x in zip(("coefficients", "rhs_equation", "init_vars"), xs, ref):
        assert_close(got.grad, x.grad, TOL_DENSE, f"later call grad {name}")
    # coefficients get a gradient through Aᵀβ only (checked above); steps get none
    assert xs[3].grad is None or not xs[3].grad.any(), "steps got a gradient through the frozen operator"


def test_frozen_later_call_gradcheck():
    version = 7103
    first, other = _frozen_setup(300)
    c1, r1, v1, h1 = first
    c2, r2, v2, h2 = other
    bt.ode_forward(c1, r1, v1, h1, frozen_lhs_cache_version=version)
    c2, r2, v2 = (x.clone().requires_grad_(True) for x in (c2, r2, v2))

    def f(c, r, v):
        return bt.ode_forward(c, r, v, h2, frozen_lhs_cache_version=version)

    assert torch.autograd.gradcheck(f, (c2, r2, v2))
    assert_close(f(c2, r2, v2), dense_frozen_forward(c1, h1, c2, r2, v2), TOL_DENSE, "later call u")


def test_frozen_versions_are_independent():
    # two versions cached side by side; version 0 (the default) never caches
    a, b = _frozen_setup(400)
    ua = bt.ode_forward(*a, frozen_lhs_cache_version=7104)
    ub = bt.ode_forward(*b, frozen_lhs_cache_version=7105)
    assert_close(ua, dense_ode_forward(*a), TOL_DENSE, "version 7104")
    assert_close(ub, dense_ode_forward(*b), TOL_DENSE, "version 7105")
    assert_close(bt.ode_forward(*a, frozen_lhs_cache_version=7104), ua, TOL_DENSE, "version 7104, same inputs")
    assert_close(bt.ode_forward(b[0], a[1], a[2], b[3], frozen_lhs_cache_version=7104),
                 dense_frozen_forward(a[0], a[3], b[0], a[1], a[2]), TOL_DENSE, "version 7104, other coefficients")
    assert_close(bt.ode_forward(*a), dense_ode_forward(*a), TOL_DENSE, "version 0, a")
    assert_close(bt.ode_forward(*b), dense_ode_forward(*b), TOL_DENSE, "version 0, b")


def test_frozen_later_call_of_another_shape_raises():
    a, _ = _frozen_setup(500)
    bt.ode_forward(*a, frozen_lhs_cache_version=7106)
    c, r, v, h = make_inputs(batch=(3,), T=5, seed=501)
    with pytest.raises(ValueError, match="frozen operator 7106"):
        bt.ode_forward(c, r, v, h, frozen_lhs_cache_version=7106)
    bt.clear_frozen_cache()
    # after clearing, the version factors anew
    assert_close(bt.ode_forward(c, r, v, h, frozen_lhs_cache_version=7106), dense_ode_forward(c, r, v, h), TOL_DENSE, "after clear")


# ------------------------------------------------------------------------------------------
# 5. torch.compile

# inductor (the default backend) works on CPU here (it needs a C++ compiler); fullgraph=True:
# the op must trace without a graph break.
COMPILE_BACKEND = "inductor"


class _OdeModel(torch.nn.Module):
    """A Linear layer makes the coefficients of each system from its features; ode_forward
    solves; the loss is a weighted sum of squares of u."""

    def __init__(self, T, E, D, O):
        super().__init__()
        self.shape = (T, E, D, O)
        g = torch.Generator().manual_seed(21)
        self.lin = torch.nn.Linear(4, T * E * D * O, dtype=F64)
        with torch.no_grad():
            self.lin.weight.copy_(0.3 * (2 * torch.rand(self.lin.weight.shape, generator=g, dtype=F64) - 1))
            self.lin.bias.copy_(0.3 * (2 * torch.rand(self.lin.bias.shape, generator=g, dtype=F64) - 1))
        diag = torch.zeros(E, D, O, dtype=F64)
        diag[torch.arange(E), torch.arange(E), 0] = 1.5
        self.register_buffer("diag", diag)

    def forward(self, x, rhs, init, steps):
        c = self.lin(x).reshape(x.shape[0], *self.shape) + self.diag
        u = bt.ode_forward(c, rhs, init, steps, weight_smooth=0.9, enable_central_smoothness=True)
        return (u * u).sum() + u[:, -1].sum()


def test_torch_compile_matches_eager():
    torch._dynamo.reset()
    T, E, D, O, B = 5, 2, 2, 3, 3
    g = torch.Generator().manual_seed(22)
    x = 2 * torch.rand(B, 4, generator=g, dtype=F64) - 1
    _, r, v, h = make_inputs(batch=(B,), T=T, E=E, D=D, O=O, seed=23)

    def loss_and_grads(model):
        ps = [p for p in model.parameters()]
        rs, hs = r.clone().requires_grad_(True), h.clone().requires_grad_(True)
        loss = model(x, rs, v, hs)
        grads = torch.autograd.grad(loss, [*ps, rs, hs])
        return loss.detach(), grads

    model = _OdeModel(T, E, D, O)
    want_loss, want_grads = loss_and_grads(model)
    compiled = torch.compile(model, backend=COMPILE_BACKEND, fullgraph=True)
    got_loss, got_grads = loss_and_grads(compiled)
    assert_close(got_loss, want_loss, 1e-12, "compiled loss")
    for name, gg, wg in zip(["weight", "bias", "rhs_equation", "steps"], got_grads, want_grads):
        assert_close(gg, wg, 1e-12, f"compiled grad {name}")
    torch._dynamo.reset()


def test_torch_compile_frozen_path_matches_eager():
    """The frozen path compiled (fullgraph): the first call caches, the later call reuses; both
    match the eager calls of another version with the same inputs."""
    torch._dynamo.reset()
    first, other = _frozen_setup(600)

    def step(forward, inputs):
        xs = [x.clone().requires_grad_(True) for x in inputs]
        u = forward(*xs)
        grads = torch.autograd.grad(u.square().sum(), xs[:3])
        return u.detach(), grads

    def frozen(version):
        return lambda c, r, v, h: bt.ode_forward(c, r, v, h, frozen_lhs_cache_version=version)

    compiled = torch.compile(frozen(7108), backend=COMPILE_BACKEND, fullgraph=True)
    for inputs, what in ((first, "first call"), (other, "later call")):
        got_u, got_g = step(compiled, inputs)
        want_u, want_g = step(frozen(7109), inputs)
        assert_close(got_u, want_u, 1e-12, f"compiled {what} u")
        for name, gg, wg in zip(["coefficients", "rhs_equation", "init_vars"], got_g, want_g):
            assert_close(gg, wg, 1e-12, f"compiled {what} grad {name}")
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------
# 6. float32


# A first-order system (O = 2): κ(M) ≲ 5e4 here, so a float32 solve of the normal equations is
# good to κ·ε₃₂ ≈ 3e-3 at worst and ~1e-5 in practice. (With O = 3, κ(M) reaches ~1e6 for these
# inputs and a dense float32 solve of the same normal equations is itself off by up to ~1e-3.)
@pytest.mark.parametrize("central", [False, True])
def test_float32_agrees_with_float64(central):
    inputs = make_inputs(batch=(2, 3), T=6, O=2, I=1, seed=31)
    kw = dict(enable_central_smoothness=central, weight_init_var=1.3)
    u64, g64, cot = run(bt.ode_forward, inputs, **kw)
    u32, g32, _ = run(bt.ode_forward, [x.float() for x in inputs], cotangent=cot.float(), **kw)
    assert u32.dtype == torch.float32
    assert_close(u32, u64, 1e-4, "float32 u")
    for name, a, b in zip(INPUTS, g32, g64):
        assert a.dtype == torch.float32, f"grad {name} dtype {a.dtype}"
        assert_close(a, b, 1e-4, f"float32 grad {name}")


# ------------------------------------------------------------------------------------------
# 7. bad input


def _replace(inputs, name, value):
    out = dict(zip(INPUTS, inputs))
    out[name] = value
    return [out[k] for k in INPUTS]


def _bad_cases():
    c, r, v, h = make_inputs(batch=(2,), T=5, seed=41)
    nan, inf = float("nan"), float("inf")

    def with_value(x, index, value):
        x = x.clone()
        x[index] = value
        return x

    both = [c, r, v, h]
    # (names of which the message must mention one, inputs, keyword arguments)
    return {
        # ranks
        "coefficients_rank": (("coefficients",), _replace(both, "coefficients", c[0, 0]), {}),
        "rhs_equation_rank": (("rhs_equation",), _replace(both, "rhs_equation", r[0, 0]), {}),
        "init_vars_rank": (("init_vars",), _replace(both, "init_vars", v[0, 0]), {}),
        "steps_rank": (("steps",), _replace(both, "steps", h[0, 0]), {}),
        # mismatched E, D, I, S
        "rhs_equation_E": (("rhs_equation",), _replace(both, "rhs_equation", r[..., :1]), {}),
        "init_vars_D": (("init_vars",), _replace(both, "init_vars", v[..., :1, :]), {}),
        "init_vars_I_gt_O": (("init_vars",), _replace(both, "init_vars", torch.zeros(2, 1, 2, 4, dtype=F64)), {}),
        "init_vars_S_gt_T": (("init_vars", "n_init_var_steps"),
                             _replace(both, "init_vars", torch.zeros(2, 6, 2, 2, dtype=F64)), {}),
        "init_vars_S_below_n_init_var_steps": (("init_vars", "n_init_var_steps"),
                                               _replace(both, "init_vars", torch.zeros(2, 2, 2, 2, dtype=F64)),
                                               dict(n_init_var_steps=3)),
        # step axes neither T (T − 1 for steps) nor 1; T = steps axis + 1 unless n_steps is given
        "coefficients_T": (("coefficients",), _replace(both, "coefficients", c[:, :3]), {}),
        "rhs_equation_T": (("rhs_equation",), _replace(both, "rhs_equation", r[:, :3]), {}),
        "steps_T": (("steps", "coefficients"), _replace(both, "steps", h[:, :2]), {}),
        "n_steps_disagrees": (("n_steps", "coefficients", "steps"), both, dict(n_steps=7)),
        "steps_axis_1_without_n_steps": (("n_steps", "coefficients"), _replace(both, "steps", h[:, :1]), {}),
        # non-positive steps
        "steps_zero": (("steps",), _replace(both, "steps", with_value(h, (1, 2), 0.0)), {}),
        "steps_negative": (("steps",), _replace(both, "steps", with_value(h, (0, 3), -0.1)), {}),
        # NaN or infinity in each input
        "coefficients_nan": (("coefficients",), _replace(both, "coefficients", with_value(c, (1, 2, 0, 1, 2), nan)), {}),
        "rhs_equation_nan": (("rhs_equation",), _replace(both, "rhs_equation", with_value(r, (0, 4, 1), nan)), {}),
        "init_vars_nan": (("init_vars",), _replace(both, "init_vars", with_value(v, (1, 0, 1, 0), nan)), {}),
        "steps_nan": (("steps",), _replace(both, "steps", with_value(h, (1, 0), nan)), {}),
        "coefficients_inf": (("coefficients",), _replace(both, "coefficients", with_value(c, (0, 0, 0, 0, 0), inf)), {}),
        "rhs_equation_inf": (("rhs_equation",), _replace(both, "rhs_equation", with_value(r, (1, 1, 0), -inf)), {}),
        # weights
        "weight_negative": (("weight_smooth",), both, dict(weight_smooth=-1.0)),
        "weight_nan": (("weight_equation",), both, dict(weight_equation=nan)),
        "weight_inf": (("weight_init_var",), both, dict(weight_init_var=inf)),
    }


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_value_error(case):
    names, inputs, kw = BAD_CASES[case]
    with pytest.raises(ValueError) as info:
        bt.ode_forward(*inputs, **kw)
    # the name as a word: "steps" in "n_steps" does not count
    assert any(re.search(rf"(?<![A-Za-z_]){n}(?![A-Za-z_])", str(info.value)) for n in names), \
        f"message names none of {names}: {info.value}"


def test_batch_axes_that_do_not_broadcast_raise():
    c, r, v, h = make_inputs(cb=(2,), rb=(3,), vb=(2,), hb=(2,), seed=42)
    with pytest.raises(ValueError):
        bt.ode_forward(c, r, v, h)


# ------------------------------------------------------------------------------------------
# 8. prefer_cuda_graph


def test_prefer_cuda_graph_accepted_and_ignored():
    inputs = make_inputs(batch=(2,), seed=51)
    want = dense_ode_forward(*inputs)
    for flag in (False, True):
        assert_close(bt.ode_forward(*inputs, prefer_cuda_graph=flag), want, TOL_DENSE, f"prefer_cuda_graph={flag}")


def test_opcheck_registered_ops():
    """torch.library.opcheck on the S-MNN ops. As for banded::solveh, the forward's second
    output is a fresh handle to the factor on every call, so `test_aot_dispatch_dynamic` runs on
    the backward and the frozen solve only (the forward's `u` is compared by the compile test)."""
    c, r, v, h = make_inputs(batch=(2,), T=5, seed=900)
    opts = (5, 1.0, 0.8, 1.1, True, [2], 0)
    checks = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(torch.ops.banded.ode_forward.default, (c, r, v, h, *opts), test_utils=checks)
    u, handle = torch.ops.banded.ode_forward.default(c, r, v, h, *opts)
    gu = torch.randn(u.shape, dtype=u.dtype, generator=torch.Generator().manual_seed(901))
    torch.library.opcheck(torch.ops.banded.ode_backward.default, (c, r, v, h, u, handle, gu, *opts[:5]))
    bt.ode_forward(c, r, v, h, n_steps=5, frozen_lhs_cache_version=7107)
    torch.library.opcheck(torch.ops.banded.ode_frozen_solve.default, (gu, 7107))


def test_reused_storage_gives_the_same_bits():
    """A forward factors in the storage of the last factor released (python/README.md); with it,
    from another shape or fresh after empty_cache(), the results are the same bits."""
    a = make_inputs(batch=(3,), T=6, seed=950)
    b = make_inputs(batch=(2,), T=9, O=2, I=2, seed=951)

    def grads(inputs):
        xs = [x.clone().requires_grad_(True) for x in inputs]
        u = bt.ode_forward(*xs)
        u.backward(torch.ones_like(u))
        return [u.detach()] + [x.grad for x in xs]

    bt.empty_cache()
    fresh = grads(a)
    for other in (b, a, a):  # b's storage, then a's own
        grads(other)
        again = grads(a)
        for got, want in zip(again, fresh):
            assert torch.equal(got, want)
    bt.empty_cache()
    assert all(torch.equal(g, w) for g, w in zip(grads(a), fresh))


def test_tensors_off_the_cpu_get_a_clear_error():
    """Only CPU tensors for now (python/README.md): another device is a ValueError naming the
    argument and the device, raised before any data is touched (a `meta` tensor stands in for
    a CUDA one on machines without a GPU)."""
    c, r, v, h = make_inputs(batch=(2,), T=5, seed=960)
    with pytest.raises(ValueError, match=r"`rhs_equation`: a meta tensor; banded.torch runs on CPU tensors only"):
        bt.ode_forward(c, r.to("meta"), v, h)
    ab = torch.ones(2, 2, 5, dtype=F64)
    with pytest.raises(ValueError, match=r"`ab`: a meta tensor"):
        bt.solveh_banded(ab.to("meta"), torch.ones(2, 5, dtype=F64))


def test_backward_without_the_forwards_factor_recomputes_it():
    """The backward finds the forward's factor through the handle; if the handle's entry is gone
    (python/banded/torch.py), it refactors from the saved inputs with the same kernels: the
    same gradients, bit for bit."""
    inputs = make_inputs(batch=(2,), T=6, seed=970)

    def grads(drop_factors):
        xs = [x.clone().requires_grad_(True) for x in inputs]
        u = bt.ode_forward(*xs, weight_init_var=0.7, enable_central_smoothness=True)
        if drop_factors:
            bt._factors.clear()
        u.backward(torch.ones_like(u))
        return [x.grad for x in xs]

    for got, want in zip(grads(True), grads(False)):
        assert torch.equal(got, want)


def test_frozen_later_call_with_a_nan_names_the_inputs():
    a, b = _frozen_setup(980)
    bt.ode_forward(*a, frozen_lhs_cache_version=7110)
    c, r, v, h = (x.clone() for x in b)
    r[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"frozen operator 7110.*`rhs_equation`"):
        bt.ode_forward(c, r, v, h, frozen_lhs_cache_version=7110)
