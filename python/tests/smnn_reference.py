"""A dense PyTorch reference of the S-MNN layer, for the tests of `banded.torch.ode_forward`.

It forms, per system, the weighted least-squares matrix `A` and right-hand side `β` of
docs/ARCHITECTURE.md, "The S-MNN rows", row by row (each row multiplied by its weight), and
solves the least-squares problem `u = (AᵀA)⁻¹Aᵀβ` densely (a QR factorization of `A` by
default, the normal equations with `torch.linalg.solve` on request). Every step is a
plain torch op, so torch autograd differentiates it with respect to all four inputs; broadcast
axes (a step axis of size 1, batch axes that broadcast between inputs) are handled with
`expand`, whose backward sums over the broadcast axis, as torch does.

Cost is O(T³·b³) per system: for small shapes only.
"""

import math

import torch


def _move_step_first(x, tail):
    """(..., S, *tail) -> (S, ..., *tail): the step axis is the `tail + 1`-th from the end."""
    return x.movedim(x.dim() - 1 - tail, 0)


def _move_step_last(x, tail):
    """(S, ..., *tail) -> (..., S, *tail)."""
    return x.movedim(0, x.dim() - 1 - tail)


def dense_rows(coefficients, rhs_equation, init_vars, steps, *, weight_equation=1.0,
               weight_init_var=1.0, weight_smooth=1.0, central=False):
    """The weighted rows `A (B, m, n)` and `β (B, m)` of `B` systems.

    Full shapes, no broadcasting: `coefficients (B, T, E, D, O)`, `rhs_equation (B, T, E)`,
    `init_vars (B, S, D, I)`, `steps (B, T − 1)`. Unknowns are numbered `(t·D + d)·O + o`.
    """
    B, T, E, D, O = coefficients.shape
    S, I = init_vars.shape[1], init_vars.shape[3]
    dt, dev = coefficients.dtype, coefficients.device
    assert rhs_equation.shape == (B, T, E)
    assert init_vars.shape == (B, S, D, I) and S <= T and I <= O
    assert steps.shape == (B, T - 1)
    assert T >= 2
    n = T * D * O
    kw = dict(dtype=dt, device=dev)
    eye_t = torch.eye(T, **kw)
    eye_d = torch.eye(D, **kw)
    blocks_a, blocks_b = [], []

    # 1. equations: Σ_{d,o} C[t,e,d,o] u[t,d,o] = r[t,e]
    a_eq = torch.einsum("bteq,tT->bteTq", coefficients.reshape(B, T, E, D * O), eye_t)
    blocks_a.append(weight_equation * a_eq.reshape(B, T * E, n))
    blocks_b.append(weight_equation * rhs_equation.reshape(B, T * E))

    # 2. initial values: u[t,d,o] = v[t,d,o] for t < S, o < I
    if S * D * I > 0:
        sel = torch.zeros(S, D, I, T, D, O, **kw)
        for t in range(S):
            for d in range(D):
                for o in range(I):
                    sel[t, d, o, t, d, o] = 1.0
        a_init = sel.reshape(S * D * I, n).expand(B, S * D * I, n)
        blocks_a.append(weight_init_var * a_init)
        blocks_b.append(weight_init_var * init_vars.reshape(B, S * D * I))

    # 3. Taylor smoothness, forward and backward, orders k < K
    K = O - 1 if central else O
    if K > 0:
        orders = torch.arange(O, device=dev)
        # fact[k, o] = 1 / (o − k)! for o ≥ k, else 0
        fact = torch.tensor(
            [[1.0 / math.factorial(o - k) if o >= k else 0.0 for o in range(O)] for k in range(K)], **kw)
        sign = torch.tensor([(-1.0) ** o for o in range(O)], **kw)
        hp = steps[..., None] ** orders.to(dt)          # (B, T−1, O): h_t^o
        hm = hp * sign                                  # (−h_t)^o
        cur = eye_t[:-1]                                # (T−1, T): step t
        nxt = eye_t[1:]                                 # (T−1, T): step t + 1
        pick = torch.eye(K, O, **kw)                    # (K, O): order k
        # forward: Σ_{o≥k} h^o/(o−k)! u[t,d,o] − h^k u[t+1,d,k]
        fwd = (torch.einsum("bto,ko,tT,dD->btdkTDo", hp, fact, cur, eye_d)
               - torch.einsum("btk,ko,tT,dD->btdkTDo", hp[..., :K], pick, nxt, eye_d))
        # backward: Σ_{o≥k} (−h)^o/(o−k)! u[t+1,d,o] − (−h)^k u[t,d,k]
        bwd = (torch.einsum("bto,ko,tT,dD->btdkTDo", hm, fact, nxt, eye_d)
               - torch.einsum("btk,ko,tT,dD->btdkTDo", hm[..., :K], pick, cur, eye_d))
        rows = (T - 1) * D * K
        for a in (fwd, bwd):
            blocks_a.append(weight_smooth * a.reshape(B, rows, n))
            blocks_b.append(torch.zeros(B, rows, **kw))

    # 4. central smoothness: H^{O−3} u[t,d,O−2] + H^{O−2} u[t+1,d,O−1] − H^{O−3} u[t+2,d,O−2]
    if central and T >= 3:
        assert O >= 2
        H = steps[:, :-1] + steps[:, 1:]                # (B, T−2)
        h3, h2 = H ** (O - 3), H ** (O - 2)
        e_o = torch.eye(O, **kw)
        a_c = (torch.einsum("bt,tT,dD,o->btdTDo", h3, eye_t[:-2], eye_d, e_o[O - 2])
               + torch.einsum("bt,tT,dD,o->btdTDo", h2, eye_t[1:-1], eye_d, e_o[O - 1])
               - torch.einsum("bt,tT,dD,o->btdTDo", h3, eye_t[2:], eye_d, e_o[O - 2]))
        rows = (T - 2) * D
        blocks_a.append(weight_smooth * a_c.reshape(B, rows, n))
        blocks_b.append(torch.zeros(B, rows, **kw))

    return torch.cat(blocks_a, dim=1), torch.cat(blocks_b, dim=1)


def dense_solve(coefficients, rhs_equation, init_vars, steps, method="qr", **opts):
    """`u (B, T, D, O)`, the least-squares solution `(AᵀA)⁻¹Aᵀβ` for full-shape inputs (see
    `dense_rows`).

    `method="qr"` (the default) solves through a QR factorization of `A` (condition number
    κ(A) = √κ(AᵀA)); `"normal"` solves the normal equations `AᵀA u = Aᵀβ` directly. Both are
    the same `u`; QR loses half as many digits, which matters for the reference vectors with
    κ(AᵀA) ≈ 3e7.
    """
    if method not in ("qr", "normal"):
        raise ValueError(f"method must be 'qr' or 'normal', got {method!r}")
    B, T, E, D, O = coefficients.shape
    a, beta = dense_rows(coefficients, rhs_equation, init_vars, steps, **opts)
    if method == "normal":
        at = a.transpose(-1, -2)
        u = torch.linalg.solve(at @ a, at @ beta[..., None])[..., 0]
    else:
        q, rr = torch.linalg.qr(a, mode="reduced")
        u = torch.linalg.solve_triangular(rr, q.transpose(-1, -2) @ beta[..., None], upper=True)[..., 0]
    return u.reshape(B, T, D, O)


def dense_ode_forward(coefficients, rhs_equation, init_vars, steps, n_steps=None,
                      n_init_var_steps=None, is_step_dim_first=False, weight_equation=1.0,
                      weight_init_var=1.0, weight_smooth=1.0, enable_central_smoothness=False):
    """The layer with the signature of `ode_forward` (no frozen path), computed densely.

    Shapes as `ode_forward`: `coefficients (..., T[b], E, D, O)`, `rhs_equation (..., T[b], E)`,
    `init_vars (..., S[b], D, I)`, `steps (..., T − 1[b])` (step axis first instead with
    `is_step_dim_first`); leading batch axes broadcast as torch broadcasts; a step axis of size
    1 is expanded (the init axis to `n_init_var_steps`); with `n_init_var_steps` below the init
    axis, its first `n_init_var_steps` steps are used. Returns `u (..., T, D, O)` (or
    `(T, ..., D, O)`).
    """
    if is_step_dim_first:
        coefficients = _move_step_last(coefficients, 3)
        rhs_equation = _move_step_last(rhs_equation, 1)
        init_vars = _move_step_last(init_vars, 2)
        steps = _move_step_last(steps, 0)
    *bc, tc, E, D, O = coefficients.shape
    *br, tr, er = rhs_equation.shape
    *bv, sv, dv, I = init_vars.shape
    *bh, th = steps.shape
    assert er == E and dv == D and I <= O
    T = th + 1 if n_steps is None else n_steps
    S = sv if n_init_var_steps is None else n_init_var_steps
    assert tc in (T, 1) and tr in (T, 1) and th in (T - 1, 1) and (sv >= S or sv == 1)
    if sv > S:  # n_init_var_steps below the init axis: the first S steps of it
        init_vars = init_vars[..., :S, :, :]
    batch = torch.broadcast_shapes(tuple(bc), tuple(br), tuple(bv), tuple(bh))
    C = coefficients.expand(*batch, T, E, D, O).reshape(-1, T, E, D, O)
    r = rhs_equation.expand(*batch, T, E).reshape(-1, T, E)
    v = init_vars.expand(*batch, S, D, I).reshape(-1, S, D, I)
    h = steps.expand(*batch, T - 1).reshape(-1, T - 1)
    u = dense_solve(C, r, v, h, weight_equation=weight_equation, weight_init_var=weight_init_var,
                    weight_smooth=weight_smooth, central=enable_central_smoothness)
    u = u.reshape(*batch, T, D, O)
    if is_step_dim_first:
        u = _move_step_first(u, 2)
    return u


def dense_frozen_forward(lhs_coefficients, lhs_steps, coefficients, rhs_equation, init_vars,
                         weight_equation=1.0, weight_init_var=1.0, weight_smooth=1.0,
                         enable_central_smoothness=False):
    """A later call of the frozen layer, densely: `u = M₀⁻¹ Aᵀβ`, where `M₀ = A₀ᵀA₀` is built
    from the first call's `lhs_coefficients` and `lhs_steps` and `Aᵀβ` from this call's
    `coefficients`, `rhs_equation` and `init_vars` (only the equation and initial-value rows have
    a right-hand side, so the steps do not enter it). Full shapes as `dense_rows`; differentiable.
    """
    opts = dict(weight_equation=weight_equation, weight_init_var=weight_init_var,
                weight_smooth=weight_smooth, central=enable_central_smoothness)
    B, T, E, D, O = coefficients.shape
    a0, _ = dense_rows(lhs_coefficients, rhs_equation.detach(), init_vars.detach(), lhs_steps, **opts)
    a, beta = dense_rows(coefficients, rhs_equation, init_vars, lhs_steps, **opts)
    m0 = a0.transpose(-1, -2) @ a0
    atb = a.transpose(-1, -2) @ beta[..., None]
    return torch.linalg.solve(m0, atb)[..., 0].reshape(B, T, D, O)
