import math

import pytest
import torch

from dydiff.diffusion import edm


def gaussian_denoiser(mu: float, s: float):
    """The exact denoiser E[x₀ | x] of x₀ ~ N(mu, s²) under x = x₀ + σ·n: (s²·x + σ²·mu)/(s² + σ²)."""
    def d(x, sigma):
        sig2 = sigma.reshape(-1, *(1,) * (x.dim() - 1)).to(x.dtype) ** 2
        return (s**2 * x + sig2 * mu) / (s**2 + sig2)
    return d


@pytest.mark.parametrize("s_churn, num_steps", [(0.0, 34), (60.0, 256)])
def test_sampler_with_exact_denoiser_matches_gaussian(s_churn, num_steps):
    """Deterministic Heun at Table 3's N = 34, and with Table 3's churn once converged in N. (With churn 60 at
    N = 34 this Gaussian's std comes out ~6% high: a discretisation bias of the stochastic sampler.)"""
    mu, s, n = 0.7, 0.3, 20_000
    cond = torch.zeros(n, 3, 2)
    cond[:, 0, 1] = 5.0  # one conditioned entry per sample
    mask = torch.zeros(3, 2, dtype=torch.bool)
    mask[0, 1] = True
    g = torch.Generator().manual_seed(0)
    x = edm.sample(gaussian_denoiser(mu, s), cond, mask.expand_as(cond), g, num_steps=num_steps, s_churn=s_churn)
    free = x[:, ~mask]  # (n, 5) unconditioned entries
    assert float(free.mean()) == pytest.approx(mu, rel=0.02)
    assert float(free.std()) == pytest.approx(s, rel=0.02)
    assert torch.equal(x[:, 0, 1], cond[:, 0, 1].double())  # the condition comes back bit-identical


def test_sampler_is_reproducible_and_uses_generator():
    cond, mask = torch.zeros(4, 3, 2), torch.zeros(4, 3, 2, dtype=torch.bool)
    d = gaussian_denoiser(0.0, 1.0)
    a = edm.sample(d, cond, mask, torch.Generator().manual_seed(1), num_steps=5)
    b = edm.sample(d, cond, mask, torch.Generator().manual_seed(1), num_steps=5)
    c = edm.sample(d, cond, mask, torch.Generator().manual_seed(2), num_steps=5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_preconditioning_and_weight():
    sigma = torch.tensor([0.5, 0.002, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm.precondition(sigma, 0.5)
    assert float(c_skip[0]) == pytest.approx(0.5)
    assert float(c_out[0]) == pytest.approx(0.5 / math.sqrt(2))
    assert float(c_in[0]) == pytest.approx(1 / math.sqrt(0.5))
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    # EDM's λ(σ) = 1/c_out²: the effective training target has unit weight at every σ
    torch.testing.assert_close(edm.loss_weight(sigma) * c_out**2, torch.ones(3, dtype=torch.float64))


def test_time_steps_table3():
    t = edm.time_steps(34)
    assert len(t) == 35 and float(t[-1]) == 0.0
    assert float(t[0]) == pytest.approx(80.0) and float(t[-2]) == pytest.approx(0.002)
    assert bool((t[:-1][1:] < t[:-1][:-1]).all())


def test_loss_ignores_conditions_and_padding():
    """A denoiser that is exact on the loss entries and wrong elsewhere has zero loss."""
    x0 = torch.randn(5, 4, 3)
    cond_mask = torch.zeros(4, 3, dtype=torch.bool)
    cond_mask[:, 2] = True
    loss_mask = torch.zeros(5, 4, 3, dtype=torch.bool)
    loss_mask[:, 1:3, :2] = True
    wrong_outside = lambda x, sigma: torch.where(loss_mask, x0, x0 + 1.0)  # noqa: E731
    sigma = torch.full((5,), 0.3)
    loss = edm.edm_loss(wrong_outside, x0, cond_mask.expand_as(x0), loss_mask, sigma, torch.randn_like(x0))
    assert torch.equal(loss, torch.zeros(5))
    off_by_one = lambda x, sigma: x0 + 1.0  # noqa: E731
    loss = edm.edm_loss(off_by_one, x0, cond_mask.expand_as(x0), loss_mask, sigma, torch.randn_like(x0))
    torch.testing.assert_close(loss, edm.loss_weight(sigma))  # per-entry squared error 1, times λ(σ)


def test_denoiser_input_has_clean_conditions():
    seen = {}

    def spy(x, sigma):
        seen["x"] = x
        return x

    x0 = torch.randn(2, 3, 2)
    mask = torch.zeros(2, 3, 2, dtype=torch.bool)
    mask[:, 0] = True
    edm.edm_loss(spy, x0, mask, ~mask, torch.full((2,), 10.0), torch.randn_like(x0))
    assert torch.equal(seen["x"][mask], x0[mask]) and not torch.equal(seen["x"][~mask], x0[~mask])


@pytest.mark.parametrize("causal", [True, False])
def test_causal_mlp_sees_only_the_past(causal):
    """The output at step t depends on s_0..s_t and a_0..a_{t-1} only (gradients), for every t; the plain MLP
    sees the whole window."""
    from dydiff.diffusion.networks import ResidualMLP

    torch.manual_seed(0)
    rows, dim, obs = 9, 6, 4
    net = ResidualMLP(dim, rows, width=64, depth=2, causal=causal, state_dim=obs)
    x = torch.randn(3, rows, dim, requires_grad=True)
    out = net(x, torch.zeros(3))
    for t in range(1, rows):
        (g,) = torch.autograd.grad(out[:, t, :obs].sum(), x, retain_graph=True)
        seen = g.abs().sum(0) > 0
        allowed = torch.zeros(rows, dim, dtype=torch.bool)
        allowed[: t + 1, :obs], allowed[:t, obs:] = True, True
        if causal:
            assert torch.equal(seen, allowed), t  # all of the past is used, nothing of the future
        else:
            assert bool(seen.all()), t
