"""`banded.torch.logdet_banded`: log det of SPD band matrices and its gradient (the band of A⁻¹).

Checked against torch.logdet of the dense matrix built differentiably from the band (values and
autograd gradients), torch.autograd.gradcheck, a Gaussian log-likelihood through both
`solveh_banded` and `logdet_banded` against its dense counterpart, opcheck of the registered
ops, float32, the refactoring fallback, and the errors.
"""

import pytest
import torch

import banded.torch as btorch
from test_torch_solve import BATCHES, BATCH_IDS, SIZES, SIZE_IDS, TOL32, TOL64, dense, random_ab, rel_err, seed


@pytest.mark.parametrize("n,kd", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("batch_shape", BATCHES, ids=BATCH_IDS)
def test_matches_dense_logdet_and_its_gradient(batch_shape, n, kd):
    rng = seed("logdet", batch_shape, n, kd)
    ab = random_ab(rng, batch_shape, n, kd)
    a1, a2 = ab.clone().requires_grad_(), ab.clone().requires_grad_()
    ld = btorch.logdet_banded(a1)
    want = torch.logdet(dense(a2))
    assert ld.shape == want.shape == torch.Size(batch_shape)
    assert rel_err(ld, want) < TOL64
    w = torch.tensor(rng.standard_normal(batch_shape))
    (ld * w).sum().backward()
    (want * w).sum().backward()
    assert rel_err(a1.grad, a2.grad) < TOL64
    # the ignored entries (outside the matrix) get exactly 0
    m = torch.arange(n)[None, :] + torch.arange(kd + 1)[:, None] < n
    assert torch.all(a1.grad[..., ~m] == 0)


def test_gradcheck():
    rng = seed("logdet_gradcheck")
    for batch_shape, n, kd in [((), 6, 2), ((2,), 5, 4), ((3,), 4, 6)]:
        ab = random_ab(rng, batch_shape, n, kd, garbage=False).requires_grad_()
        assert torch.autograd.gradcheck(btorch.logdet_banded, (ab,))


def test_gaussian_log_likelihood_matches_dense():
    """ℓ = −½ bᵀA⁻¹b − ½ log det A: value and gradients in ab and b against the dense formula."""
    rng = seed("gauss")
    ab0 = random_ab(rng, (4,), 12, 3)
    b0 = torch.tensor(rng.standard_normal((4, 12)))

    def loglik(solve, logdet, ab, b):
        return (-0.5 * (b * solve(ab, b)).sum(-1) - 0.5 * logdet(ab)).sum()

    ab1, b1 = ab0.clone().requires_grad_(), b0.clone().requires_grad_()
    ab2, b2 = ab0.clone().requires_grad_(), b0.clone().requires_grad_()
    l1 = loglik(btorch.solveh_banded, btorch.logdet_banded, ab1, b1)
    dense_solve = lambda ab, b: torch.linalg.solve(dense(ab), b.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    l2 = loglik(dense_solve, lambda ab: torch.logdet(dense(ab)), ab2, b2)
    assert rel_err(l1, l2) < TOL64
    l1.backward()
    l2.backward()
    assert rel_err(ab1.grad, ab2.grad) < TOL64
    assert rel_err(b1.grad, b2.grad) < TOL64


def test_float32():
    rng = seed("logdet32")
    ab = random_ab(rng, (3,), 10, 2, dtype=torch.float32).requires_grad_()
    ld = btorch.logdet_banded(ab)
    assert ld.dtype == torch.float32
    ab64 = ab.detach().double().requires_grad_()
    want = torch.logdet(dense(ab64))
    assert rel_err(ld, want) < TOL32
    ld.sum().backward()
    want.sum().backward()
    assert ab.grad.dtype == torch.float32 and rel_err(ab.grad, ab64.grad) < TOL32


def test_opcheck_registered_ops():
    """opcheck on banded::logdet (its handle output differs per call: see the solveh test) and
    its backward."""
    rng = seed("logdet_opcheck")
    ab = random_ab(rng, (2,), 6, 2)
    fwd = torch.ops.banded.logdet.default
    torch.library.opcheck(fwd, (ab, [2]), test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    _, handle = fwd(ab, [2])
    torch.library.opcheck(torch.ops.banded.logdet_backward.default, (ab, handle, torch.ones(2, dtype=torch.float64)))


def test_backward_without_the_forwards_factor_recomputes_it():
    rng = seed("logdet_refactor")
    ab = random_ab(rng, (3,), 9, 2)

    def grad(drop):
        a = ab.clone().requires_grad_()
        out = btorch.logdet_banded(a)
        if drop:
            btorch._factors.clear()
        out.sum().backward()
        return a.grad

    assert torch.equal(grad(True), grad(False))


def test_errors():
    rng = seed("logdet_err")
    with pytest.raises(ValueError, match="`ab`"):
        btorch.logdet_banded(torch.zeros(3))
    with pytest.raises(ValueError, match="float32 or float64"):
        btorch.logdet_banded(torch.ones(2, 4, dtype=torch.int64))
    ab = random_ab(rng, (2,), 5, 1, garbage=False)
    ab[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="ab"):
        btorch.logdet_banded(ab)
    bad = random_ab(rng, (3,), 5, 1, garbage=False)
    bad[1, 0, 3] = -5.0
    import banded

    with pytest.raises(banded.NotPositiveDefiniteError) as info:
        btorch.logdet_banded(bad)
    assert info.value.system == 1
