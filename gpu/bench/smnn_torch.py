#!/usr/bin/env python3
"""PyTorch peers of the S-MNN layer, for GPU (and CPU) benchmarks against the `banded` crate.

The S-MNN layer (Scalable Mechanistic Neural Networks, Chen et al., ICLR 2025) solves, per
system of a batch, a weighted least-squares problem ``A u ≈ β`` for the unknowns ``u[t, d, o]``
(``t < T`` steps, ``d < D`` variables, ``o < O`` orders; unknown ``(t·D + d)·O + o``, so one step
is a block of ``b = D·O``) with the rows of ``docs/ARCHITECTURE.md``, "The S-MNN rows":

1. equations (``w_eq``): ``Σ_{d,o} C[t,e,d,o] u[t,d,o] = r[t,e]`` for every ``t``, ``e < E``;
2. initial values (``w_init``): ``u[t,d,o] = v[t,d,o]`` for ``t < S``, ``o < I``;
3. Taylor smoothness (``w_s``), for ``t < T−1``, ``d < D``, ``k < O``:
   ``Σ_{o≥k} h_t^o/(o−k)! u[t,d,o] − h_t^k u[t+1,d,k] = 0`` and
   ``Σ_{o≥k} (−h_t)^o/(o−k)! u[t+1,d,o] − (−h_t)^k u[t,d,k] = 0``.

Every weight multiplies its rows, so it enters ``M = AᵀA`` squared. The output is
``u = M⁻¹ Aᵀβ``, shape ``(batch, T, D, O)``; without the central rows (not supported here) ``M``
is block tridiagonal with blocks of size ``b``. Inputs, as the crate's CLI takes them:
``coefficients (batch, T or 1, E, D, O)``, ``rhs_equation (batch, T or 1, E)``,
``init_vars (batch, S, D, I)``, ``steps (batch, T−1 or 1)``.

Two peers, each timed as one training step (forward, then the gradients of all four inputs
for a fixed cotangent ``grad_u``):

``paper``
    The paper's style of layer: the block-tridiagonal normal equations (diagonal blocks
    ``(batch, T, b, b)``, sub-diagonal blocks ``(batch, T−1, b, b)``, right-hand side
    ``(batch, T, b)``) assembled with vectorised torch ops, then a Python loop over the steps:
    batched block Cholesky (``torch.linalg.cholesky_ex``), ``torch.linalg.solve_triangular`` and
    matmuls (forward elimination, back substitution). The backward is the adjoint solve with the
    same factor, ``λ = M⁻¹ grad_u``, then ``∂ℓ/∂M = −λ uᵀ`` and ``∂ℓ/∂(Aᵀβ) = λ`` handed to
    autograd of the assembly (a ``torch.autograd.Function``).
``dense``
    The dense normal matrix ``(batch, n, n)``, ``n = T·D·O``, ``torch.linalg.cholesky_ex`` and
    ``torch.cholesky_solve``, autograd for everything. Skipped (with a line saying so) where it
    would not fit in memory: it needs about ``6·batch·n²`` elements.

On CUDA the training step is captured once in a ``torch.cuda.CUDAGraph`` (after warm-up
iterations on a side stream, as the PyTorch docs show) and the replays are timed with CUDA
events: ``--warmup`` untimed replays, then ``--reps`` timed ones. If capture fails the step is
timed eagerly (``mode=eager`` in the line; ``--no-graph`` asks for that). On CPU, the step is
timed eagerly with ``time.perf_counter``.

Inputs are drawn from ``--seed`` (NumPy's PCG64, in float64, then cast) with the distributions
of ``banded bench smnn``: coefficients uniform in [−1, 1] plus 1.5 on ``(e, d = e, o = 0)``,
right-hand sides and initial values (``S = 1``, ``I = O`` unless ``--init-steps`` /
``--init-orders``) uniform in [−1, 1], steps uniform in [0.05, 0.15], ``grad_u`` uniform in
[−1, 1]; all weights 1. (The values differ from the crate's: another generator.) ``--inputs
FILE.npz`` takes them from a file instead (the crate CLI's input keys; ``weight_*`` scalars in
the file are used unless a ``--weight-*`` flag is given).

One line per peer on stdout, in the key=value style of the crate's ``banded bench smnn``::

    bench=smnn impl=torch peer=paper device=cuda mode=graph dtype=f64 batch=512 steps=1000 dims=3
    orders=3 equations=3 central=false backward=true threads=0 warmup=3 reps=10 seed=0 n=9000
    block=9 median_s=... min_s=...

(one line; times in seconds per training step, as the crate's ``median_s``/``min_s``; ``threads``
is torch's CPU thread count, 0 on CUDA). A skipped peer prints ``skipped=REASON`` in place of the
times: at the default size (batch 512, T 1000, n = 9000) the dense peer would need about 1.8 TiB
in f64 and is always skipped; it runs for instance at ``--steps 100`` (n = 900, about 19 GiB).

Run on the device::

    python3 gpu/bench/smnn_torch.py --device cuda --batch 512 --steps 1000 --dtype f64 --peer both

Check against the crate (CPU is enough; the crate's CLI reads what ``--dump`` writes)::

    python3 gpu/bench/smnn_torch.py --device cpu --batch 4 --steps 50 --peer both --reps 1 \\
        --warmup 0 --dump /tmp/smnn_chk
    banded smnn backward --inputs /tmp/smnn_chk/inputs.npz --out /tmp/smnn_chk/crate.npz
    python3 gpu/bench/smnn_torch.py --device cpu --inputs /tmp/smnn_chk/inputs.npz --peer both \\
        --reps 1 --warmup 0 --check /tmp/smnn_chk/crate.npz

``--check REF.npz`` compares ``u`` and the four gradients (the crate's output keys) of each
peer with the file, as max |x − ref| / max |ref| per array (the crate's tests' measure), prints
one ``check`` line per peer and exits with status 1 if any exceeds ``--check-tol`` (default
1e-9 in f64; 1e-2 in f32, since κ(M) is about 1e5 for these draws, and the crate's own f32
results differ from its f64 ones by about 3e-3 in ``grad_steps``). With
``--peer both`` an ``agree`` line compares the two peers. Needs only ``torch`` and ``numpy``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

INPUT_KEYS = ("coefficients", "rhs_equation", "init_vars", "steps")
GRAD_KEYS = tuple("grad_" + k for k in INPUT_KEYS)
DTYPES = {"f32": torch.float32, "f64": torch.float64}
# Elements of (batch, n, n) the dense peer holds at its peak (M, its factor, and the
# backward's temporaries), for the memory estimate that decides whether it runs.
DENSE_COPIES = 6


# --------------------------------------------------------------------------------------------
# Problem: shapes, weights and the constant tables of the rows
# --------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """Sizes, weights and the constant tables the assembly reads, on the working device/dtype."""

    batch: int
    t: int  # T
    e: int  # E
    d: int  # D
    o: int  # O
    s: int  # S, steps with initial values
    i: int  # I, orders with initial values
    weight_equation: float
    weight_init_var: float
    weight_smooth: float
    gram1: torch.Tensor  # (2O, 2O): Gram matrix of the Taylor rows of one variable at h = 1
    gram_pow: torch.Tensor  # (2O, 2O): o_i + o_j, the power of h in each Gram entry
    eye_d: torch.Tensor  # (D, D)
    init_diag: torch.Tensor  # (T, b, b): w_init² on the diagonal at (t < S, d, o < I)
    dense_index: torch.Tensor  # arange(T), for the dense scatter

    @property
    def b(self) -> int:
        return self.d * self.o

    @property
    def n(self) -> int:
        return self.t * self.b


def taylor_gram(o: int) -> tuple[np.ndarray, np.ndarray]:
    """The Taylor rows of one variable between steps t and t+1 at h = 1, over the local unknowns
    ``[u[t, d, 0..O], u[t+1, d, 0..O]]``, as their Gram matrix ``G(1)`` and the powers ``P``
    with ``G(h) = G(1) ∘ h^P`` (column ``i`` of every row scales with ``h^(i mod O)``)."""
    inv_fact = [1.0 / math.factorial(j) for j in range(o)]
    sign = [(-1.0) ** j for j in range(o)]
    rows = np.zeros((2 * o, 2 * o))
    for k in range(o):
        fwd, bwd = rows[k], rows[o + k]
        for j in range(k, o):
            fwd[j] = inv_fact[j - k]  # h^j/(j−k)! u[t, j]
            bwd[o + j] = sign[j] * inv_fact[j - k]  # (−h)^j/(j−k)! u[t+1, j]
        fwd[o + k] = -1.0  # − h^k u[t+1, k]
        bwd[k] = -sign[k]  # − (−h)^k u[t, k]
    orders = np.arange(2 * o) % o
    return rows.T @ rows, (orders[:, None] + orders[None, :]).astype(np.float64)


def make_problem(shapes: dict, weights: tuple[float, float, float], device, dtype) -> Problem:
    batch, _, e, d, o = shapes["coefficients"]
    _, s, _, i = shapes["init_vars"]
    t = max(shapes["coefficients"][1], shapes["rhs_equation"][1], shapes["steps"][1] + 1)
    if t < 2:
        raise SystemExit("error: every step axis is broadcast (size 1): these peers need T from an input")
    gram1, gram_pow = taylor_gram(o)
    b = d * o
    diag = np.zeros((t, b))
    for tt in range(s):
        for dd in range(d):
            diag[tt, dd * o : dd * o + i] = weights[1] ** 2
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return Problem(
        batch=batch, t=t, e=e, d=d, o=o, s=s, i=i,
        weight_equation=weights[0], weight_init_var=weights[1], weight_smooth=weights[2],
        gram1=as_t(gram1), gram_pow=as_t(gram_pow), eye_d=as_t(np.eye(d)),
        init_diag=torch.diag_embed(as_t(diag)),
        dense_index=torch.arange(t, device=device),
    )


def assemble(p: Problem, c, r, v, h):
    """The block-tridiagonal normal equations, differentiable in all four inputs:
    diagonal blocks ``(batch, T, b, b)``, sub-diagonal blocks ``M[t+1, t]`` ``(batch, T−1, b, b)``
    and ``Aᵀβ`` ``(batch, T, b)``."""
    bs, t, e, d, o, b = p.batch, p.t, p.e, p.d, p.o, p.b
    cf = c.expand(bs, t, e, d, o).reshape(bs, t, e, b)
    r = r.expand(bs, t, e)
    h = h.expand(bs, t - 1)
    weq2, wi2, ws2 = p.weight_equation**2, p.weight_init_var**2, p.weight_smooth**2
    # Equation rows: w_eq² CᵀC per step, w_eq² Cᵀr.
    diag = weq2 * (cf.mT @ cf)
    rhs = weq2 * (cf.mT @ r.unsqueeze(-1)).squeeze(-1)
    # Taylor rows: the same (2O × 2O) Gram matrix for every variable of a step, I_D ⊗ G.
    gram = ws2 * p.gram1 * h[..., None, None] ** p.gram_pow  # (batch, T−1, 2O, 2O)

    def kron_eye(x):  # (batch, T−1, O, O) → I_D ⊗ x, (batch, T−1, b, b)
        return torch.einsum("de,btij->btdiej", p.eye_d, x).reshape(bs, t - 1, b, b)

    diag = diag + F.pad(kron_eye(gram[..., :o, :o]), (0, 0, 0, 0, 0, 1))  # block t
    diag = diag + F.pad(kron_eye(gram[..., o:, o:]), (0, 0, 0, 0, 1, 0))  # block t + 1
    lower = kron_eye(gram[..., o:, :o])  # M[t+1, t]
    # Initial-value rows.
    diag = diag + p.init_diag
    vv = F.pad(v, (0, o - p.i)).reshape(bs, p.s, b)
    rhs = rhs + wi2 * F.pad(vv, (0, 0, 0, t - p.s))
    return diag, lower, rhs


# --------------------------------------------------------------------------------------------
# Peer "paper": block-tridiagonal Cholesky, a Python loop over the steps
# --------------------------------------------------------------------------------------------


def blocktri_factor(diag, lower):
    """``M = L Lᵀ`` with ``L`` block lower bidiagonal: diagonal blocks ``Ls[t]`` (lower
    triangular) and sub-diagonal blocks ``Bs[t] = M[t+1, t] Ls[t]⁻ᵀ``. Step-major inputs
    ``(T, batch, b, b)`` and ``(T−1, batch, b, b)``; also the ``(T, batch)`` LAPACK infos."""
    ls, bs, infos = [], [], []
    schur = diag[0]
    for t in range(diag.shape[0]):
        l, info = torch.linalg.cholesky_ex(schur)
        ls.append(l)
        infos.append(info)
        if t + 1 < diag.shape[0]:
            bt = torch.linalg.solve_triangular(l.mT, lower[t], upper=True, left=False)
            bs.append(bt)
            schur = diag[t + 1] - bt @ bt.mT
    return ls, bs, torch.stack(infos)


def blocktri_solve(ls, bs, y):
    """``M⁻¹ y`` from :func:`blocktri_factor`; ``y`` step-major ``(T, batch, b)``."""
    tt = len(ls)
    z = [torch.linalg.solve_triangular(ls[0], y[0].unsqueeze(-1), upper=False)]
    for t in range(1, tt):
        z.append(torch.linalg.solve_triangular(ls[t], y[t].unsqueeze(-1) - bs[t - 1] @ z[-1], upper=False))
    x = [torch.linalg.solve_triangular(ls[-1].mT, z[-1], upper=True)]
    for t in range(tt - 2, -1, -1):
        x.append(torch.linalg.solve_triangular(ls[t].mT, z[t] - bs[t].mT @ x[-1], upper=True))
    return torch.stack(x[::-1]).squeeze(-1)


class BlockTridiagSolve(torch.autograd.Function):
    """``u = M⁻¹ y`` for block-tridiagonal SPD ``M`` given as (diagonal, sub-diagonal) blocks,
    batch-major. Backward: ``λ = M⁻¹ ū`` with the forward's factor, ``∂ℓ/∂y = λ``,
    ``∂ℓ/∂M[t,t] = −λ_t u_tᵀ``, ``∂ℓ/∂M[t+1,t] = −(λ_{t+1} u_tᵀ + u_{t+1} λ_tᵀ)`` (the block
    stands for itself and its transpose above the diagonal). Also returns the infos."""

    @staticmethod
    def forward(ctx, diag, lower, y):
        ls, bs, info = blocktri_factor(diag.transpose(0, 1).contiguous(), lower.transpose(0, 1).contiguous())
        u = blocktri_solve(ls, bs, y.transpose(0, 1).contiguous())  # (T, batch, b)
        ctx.factor = (ls, bs)
        ctx.save_for_backward(u)
        info = info.transpose(0, 1)
        ctx.mark_non_differentiable(info)
        return u.transpose(0, 1), info

    @staticmethod
    def backward(ctx, grad_u, _grad_info):
        (u,) = ctx.saved_tensors
        ls, bs = ctx.factor
        lam = blocktri_solve(ls, bs, grad_u.transpose(0, 1).contiguous())
        g_diag = -(lam.unsqueeze(-1) * u.unsqueeze(-2))
        g_lower = -(lam[1:].unsqueeze(-1) * u[:-1].unsqueeze(-2) + u[1:].unsqueeze(-1) * lam[:-1].unsqueeze(-2))
        del ctx.factor
        return g_diag.transpose(0, 1), g_lower.transpose(0, 1), lam.transpose(0, 1)


def paper_peer(p: Problem, c, r, v, h):
    diag, lower, rhs = assemble(p, c, r, v, h)
    u, info = BlockTridiagSolve.apply(diag, lower, rhs)
    return u.reshape(p.batch, p.t, p.d, p.o), info


# --------------------------------------------------------------------------------------------
# Peer "dense": the dense normal matrix, torch.linalg.cholesky_ex + torch.cholesky_solve
# --------------------------------------------------------------------------------------------


def dense_peer(p: Problem, c, r, v, h):
    diag, lower, rhs = assemble(p, c, r, v, h)
    bs, t, b = p.batch, p.t, p.b
    idx = p.dense_index
    m = diag.new_zeros(bs, t, b, t, b)
    # Advanced indices split by a slice: the indexed view is (T, batch, b, b).
    m[:, idx, :, idx, :] = diag.transpose(0, 1)
    m[:, idx[1:], :, idx[:-1], :] = lower.transpose(0, 1)
    m[:, idx[:-1], :, idx[1:], :] = lower.mT.transpose(0, 1)
    l, info = torch.linalg.cholesky_ex(m.reshape(bs, p.n, p.n))
    u = torch.cholesky_solve(rhs.reshape(bs, p.n, 1), l)
    return u.reshape(bs, t, p.d, p.o), info


PEERS = {"paper": paper_peer, "dense": dense_peer}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def draw_inputs(a) -> dict:
    """Random well-posed inputs (float64 NumPy), the distributions of `banded bench smnn`."""
    rng = np.random.default_rng(a.seed)
    bsz, t, d, o = a.batch, a.steps, a.dims, a.orders
    e = a.equations if a.equations is not None else d
    s = a.init_steps
    i = a.init_orders if a.init_orders is not None else o
    if t < 2 or not 1 <= s <= t or not 0 <= i <= o or min(bsz, d, o) < 1 or e < 0:
        raise SystemExit("error: need T >= 2, batch, D, O >= 1, E >= 0, 1 <= S <= T, 0 <= I <= O")
    c = rng.uniform(-1.0, 1.0, (bsz, t, e, d, o))
    for ee in range(min(e, d)):
        c[:, :, ee, ee, 0] += 1.5
    return {
        "coefficients": c,
        "rhs_equation": rng.uniform(-1.0, 1.0, (bsz, t, e)),
        "init_vars": rng.uniform(-1.0, 1.0, (bsz, s, d, i)),
        "steps": rng.uniform(0.05, 0.15, (bsz, t - 1)),
        "grad_u": rng.uniform(-1.0, 1.0, (bsz, t, d, o)),
    }


def load_inputs(a) -> tuple[dict, tuple[float, float, float]]:
    """Inputs (and weights) from an `.npz` with the crate CLI's keys; a missing grad_u is drawn."""
    with np.load(a.inputs) as z:
        arrays = {k: np.asarray(z[k], dtype=np.float64) for k in INPUT_KEYS}
        scal = {k: float(z[k]) for k in ("weight_equation", "weight_init_var", "weight_smooth", "central") if k in z}
        if "grad_u" in z:
            arrays["grad_u"] = np.asarray(z["grad_u"], dtype=np.float64)
    if scal.get("central", 0.0) != 0.0:
        raise SystemExit(f"error: {a.inputs} asks for central smoothness, which these peers do not implement")
    if "grad_u" not in arrays:
        bsz, _, _, d, o = arrays["coefficients"].shape
        t = max(arrays["coefficients"].shape[1], arrays["rhs_equation"].shape[1], arrays["steps"].shape[1] + 1)
        arrays["grad_u"] = np.random.default_rng(a.seed).uniform(-1.0, 1.0, (bsz, t, d, o))
    weights = (scal.get("weight_equation", 1.0), scal.get("weight_init_var", 1.0), scal.get("weight_smooth", 1.0))
    return arrays, weights


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def make_step(peer, p: Problem, inputs: list, grad_u, backward: bool):
    """One training step: u (and the gradients of the four inputs for the cotangent grad_u)."""

    def step():
        if not backward:
            with torch.no_grad():
                u, info = peer(p, *inputs)
            return u, (), info
        u, info = peer(p, *inputs)
        grads = torch.autograd.grad(u, inputs, grad_u, allow_unused=True)  # unused: an empty input (I = 0)
        return u, tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)), info

    return step


def check_info(info, peer: str):
    bad = int((info != 0).sum())
    if bad:
        raise SystemExit(f"error: peer {peer}: {bad} Cholesky factorizations failed (M not numerically SPD)")


def time_cuda(step, a, peer: str):
    """Warm-up on a side stream, capture one step in a CUDA graph, time the replays with events.
    Returns (times in seconds, the last step's outputs as NumPy arrays, mode)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            out = step()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    check_info(out[2], peer)
    run, mode = step, "eager"
    if not a.no_graph:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = step()
            run, mode = graph.replay, "graph"
        except Exception as err:  # noqa: BLE001 - any capture failure: time eagerly instead
            print(f"warning: peer {peer}: CUDA graph capture failed ({type(err).__name__}: {err}); timing eagerly",
                  file=sys.stderr)
            torch.cuda.synchronize()
            out = step()
    for _ in range(a.warmup):
        res = run()
        out = res if mode == "eager" else out
    events = []
    for _ in range(a.reps):
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ev0.record()
        res = run()
        ev1.record()
        out = res if mode == "eager" else out
        events.append((ev0, ev1))
    torch.cuda.synchronize()
    check_info(out[2], peer)
    return [e0.elapsed_time(e1) / 1e3 for e0, e1 in events], results_np(out), mode


def time_cpu(step, a, peer: str):
    """One untimed first step, ``--warmup`` more, then ``--reps`` timed with ``perf_counter``."""
    out = step()
    check_info(out[2], peer)
    for _ in range(a.warmup):
        out = step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - t0)
    check_info(out[2], peer)
    return times, results_np(out), "eager"


def release_memory(device):
    """Frees what the previous peer left (its graph's pool, the allocator's cache), so that the
    next one, and the dense peer's memory estimate, see the device's memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def dense_memory(p: Problem, itemsize: int, device) -> tuple[float, float]:
    """(bytes the dense peer needs, bytes free) on the device."""
    need = DENSE_COPIES * p.batch * p.n * p.n * itemsize
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = float("inf")
    return need, free


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    """max |x − ref| / max |ref|, the measure of the crate's tests."""
    if x.shape != ref.shape:
        raise SystemExit(f"error: shape {x.shape} against reference {ref.shape}")
    scale = max(float(np.max(np.abs(ref), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(x - ref), initial=0.0)) / scale


def results_np(out) -> dict:
    u, grads, _ = out
    res = {"u": u.detach().cpu().double().numpy()}
    for key, g in zip(GRAD_KEYS, grads):
        res[key] = g.detach().cpu().double().numpy()
    return res


def compare(res: dict, ref: dict) -> dict:
    return {k: rel_err(res[k], ref[k]) for k in ("u",) + GRAD_KEYS if k in res and k in ref}


def fmt_errs(errs: dict) -> str:
    return " ".join(f"{k}={v:.3e}" for k, v in errs.items())


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring of this file for the rows, the peers and the checks.")
    ap.add_argument("--peer", choices=("paper", "dense", "both"), default="paper")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda, cuda:N or cpu [default: cuda if available]")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="f64")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1000, help="T, number of steps (>= 2)")
    ap.add_argument("--dims", type=int, default=3, help="D, number of variables")
    ap.add_argument("--orders", type=int, default=3, help="O, number of orders (value and derivatives)")
    ap.add_argument("--equations", type=int, default=None, help="E, equations per step [default: D]")
    ap.add_argument("--init-steps", type=int, default=1, help="S, steps with initial values")
    ap.add_argument("--init-orders", type=int, default=None, help="I, orders with initial values [default: O]")
    ap.add_argument("--weight-equation", type=float, default=None, help="w_eq [default: 1, or the --inputs file's]")
    ap.add_argument("--weight-init", type=float, default=None, help="w_init [default: 1, or the --inputs file's]")
    ap.add_argument("--weight-smooth", type=float, default=None, help="w_s [default: 1, or the --inputs file's]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inputs", metavar="IN.npz", help="take the inputs (and grad_u, weights) from this file")
    ap.add_argument("--reps", type=int, default=10, help="timed training steps (graph replays on CUDA)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--forward-only", action="store_true", help="time the forward alone (no gradients)")
    ap.add_argument("--no-graph", action="store_true", help="CUDA: time eager steps instead of graph replays")
    ap.add_argument("--linalg", choices=("default", "cusolver", "magma"), default="default",
                    help="CUDA: torch.backends.cuda.preferred_linalg_library")
    ap.add_argument("--threads", type=int, default=None, help="CPU: torch.set_num_threads")
    ap.add_argument("--dump", metavar="DIR",
                    help="write DIR/inputs.npz (the crate CLI's input keys) and DIR/PEER.npz (u, grad_*)")
    ap.add_argument("--check", metavar="REF.npz", help="compare u and the gradients with this file (e.g. the crate's)")
    ap.add_argument("--check-tol", type=float, default=None, help="[default: 1e-9 for f64, 1e-2 for f32]")
    a = ap.parse_args(argv)
    if a.reps < 1 or a.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    device = torch.device(a.device)
    dtype = DTYPES[a.dtype]
    torch.set_float32_matmul_precision("highest")  # no TF32: the f32 peers stay IEEE f32
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    if device.type == "cuda" and a.linalg != "default":
        torch.backends.cuda.preferred_linalg_library(a.linalg)

    if a.inputs:
        arrays, weights = load_inputs(a)
    else:
        arrays, weights = draw_inputs(a), (1.0, 1.0, 1.0)
    weights = tuple(f if f is not None else w for f, w in
                    zip((a.weight_equation, a.weight_init, a.weight_smooth), weights))
    if min(weights) < 0 or not all(map(math.isfinite, weights)):
        raise SystemExit("error: weights must be finite and >= 0")
    if np.any(arrays["steps"] <= 0):
        raise SystemExit("error: every step must be positive")
    p = make_problem({k: arrays[k].shape for k in INPUT_KEYS}, weights, device, dtype)
    if arrays["grad_u"].shape != (p.batch, p.t, p.d, p.o):
        raise SystemExit(f"error: grad_u has shape {arrays['grad_u'].shape}, want {(p.batch, p.t, p.d, p.o)}")

    inputs = [torch.tensor(arrays[k], dtype=dtype, device=device, requires_grad=True) for k in INPUT_KEYS]
    grad_u = torch.tensor(arrays["grad_u"], dtype=dtype, device=device)
    ref = None
    if a.check:
        with np.load(a.check) as z:
            ref = {k: np.asarray(z[k], dtype=np.float64) for k in ("u",) + GRAD_KEYS if k in z}
    tol = a.check_tol if a.check_tol is not None else (1e-9 if dtype == torch.float64 else 1e-2)
    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
        np.savez(os.path.join(a.dump, "inputs.npz"),
                 **{k: t.detach().cpu().numpy() for k, t in zip(INPUT_KEYS, inputs)},
                 grad_u=grad_u.cpu().numpy(),
                 weight_equation=np.float64(weights[0]), weight_init_var=np.float64(weights[1]),
                 weight_smooth=np.float64(weights[2]), central=np.int64(0))

    threads = torch.get_num_threads() if device.type == "cpu" else 0
    head = lambda peer, mode: (  # noqa: E731
        f"bench=smnn impl=torch peer={peer} device={device.type} mode={mode} dtype={a.dtype} batch={p.batch} "
        f"steps={p.t} dims={p.d} orders={p.o} equations={p.e} central=false backward={str(not a.forward_only).lower()} "
        f"threads={threads} warmup={a.warmup} reps={a.reps} seed={a.seed} n={p.n} block={p.b}")

    peers = ("paper", "dense") if a.peer == "both" else (a.peer,)
    results, failed = {}, False
    for peer in peers:
        if peer == "dense":
            need, free = dense_memory(p, torch.empty((), dtype=dtype).element_size(), device)
            if need > 0.9 * free:
                print(f"{head(peer, 'none')} skipped=memory need_gib={need / 2**30:.1f} free_gib={free / 2**30:.1f}",
                      flush=True)
                continue
        step = make_step(PEERS[peer], p, inputs, grad_u, not a.forward_only)
        try:
            times, results[peer], mode = (time_cuda if device.type == "cuda" else time_cpu)(step, a, peer)
        except torch.cuda.OutOfMemoryError:
            print(f"{head(peer, 'none')} skipped=out-of-memory", flush=True)
            continue
        finally:
            del step
            release_memory(device)
        print(f"{head(peer, mode)} median_s={statistics.median(times):.9f} min_s={min(times):.9f}", flush=True)
        if a.dump:
            np.savez(os.path.join(a.dump, f"{peer}.npz"), **results[peer])
        if ref is not None:
            errs = compare(results[peer], ref)
            worst = max(errs.values(), default=float("nan"))
            ok = worst <= tol
            failed |= not ok
            print(f"check peer={peer} ref={a.check} {fmt_errs(errs)} max={worst:.3e} tol={tol:.0e} "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    if len(results) == 2:
        errs = compare(results["dense"], results["paper"])
        print(f"agree dense-vs-paper {fmt_errs(errs)} max={max(errs.values()):.3e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
