"""EDM (Karras et al., 2022) with hard-replaced conditions: all the diffusion math of DyDiff.

Paper Eqs. 3-4 and Algorithm 2; hyperparameter defaults from Table 3. Everything takes plain tensors and a
``torch.Generator``; nothing here knows about Lightning or configs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # D(x, sigma) -> x̂


def precondition(sigma: torch.Tensor, sigma_data: float = 0.5):
    """EDM Table 1: c_skip, c_out, c_in, c_noise = ¼·ln σ."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1.0 / (s2 + d2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def preconditioned(net: Callable, x: torch.Tensor, sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """D_θ(x; σ) = c_skip·x + c_out·F_θ(c_in·x; c_noise). ``sigma`` is (B,); x is (B, …)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    c_skip, c_out, c_in, c_noise = precondition(sigma.reshape(shape), sigma_data)
    return c_skip * x + c_out * net(c_in * x, c_noise.reshape(-1))


def loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²)/(σ·σ_d)²."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_sigma(n: int, p_mean: float = -1.2, p_std: float = 1.2, generator=None, device=None) -> torch.Tensor:
    """ln σ ~ N(P_mean, P_std²)."""
    return (torch.randn(n, generator=generator, device=device) * p_std + p_mean).exp()


def apply_conditions(x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3: hard replacement, x ← cond where ``cond_mask`` (s_0 and every action), x elsewhere."""
    return torch.where(cond_mask, cond, x)


def edm_loss(denoise: Denoiser, x0: torch.Tensor, cond_mask: torch.Tensor, loss_mask: torch.Tensor,
             sigma: torch.Tensor, noise: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """Eq. 4 per sample: λ(σ)·‖D(x₀ + n; σ) − x₀‖² over the ``loss_mask`` entries (the states s_1..s_L that
    are not padding), averaged per entry. The conditions are clean in the denoiser input."""
    x_noisy = apply_conditions(x0 + noise * sigma.reshape(-1, *(1,) * (x0.dim() - 1)), x0, cond_mask)
    err = (denoise(x_noisy, sigma) - x0) ** 2 * loss_mask
    per_sample = err.flatten(1).sum(1) / loss_mask.flatten(1).sum(1).clamp(min=1)
    return loss_weight(sigma, sigma_data) * per_sample


def time_steps(num_steps: int = 34, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               dtype=torch.float64, device=None) -> torch.Tensor:
    """Table 3: t_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i < N, and t_N = 0."""
    i = torch.arange(num_steps, dtype=dtype, device=device)
    t = (sigma_max ** (1 / rho) + i / max(num_steps - 1, 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, t.new_zeros(1)])


@torch.no_grad()
def sample(denoise: Denoiser, cond: torch.Tensor, cond_mask: torch.Tensor, generator: torch.Generator | None = None,
           num_steps: int = 34, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
           s_churn: float = 60.0, s_tmin: float = 0.37, s_tmax: float = 52.2, s_noise: float = 1.002,
           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Algorithm 2: EDM's stochastic Heun sampler with the conditions hard-replaced in the initial latent,
    after the churn noise, after each Euler step and after each Heun correction.

    The state is kept in ``dtype`` (fp64 by default) whatever precision ``denoise`` runs in; its output is
    cast back. All noise comes from ``generator``, so a fixed generator gives a fixed result.
    """
    cond64 = cond.to(dtype)
    t = time_steps(num_steps, sigma_min, sigma_max, rho, dtype, cond.device)
    gamma_max = min(s_churn / num_steps, math.sqrt(2) - 1)

    def randn():
        return torch.randn(cond.shape, generator=generator, device=cond.device, dtype=torch.float32).to(dtype)

    def d(x, sigma):
        out = denoise(x.to(cond.dtype), torch.full((len(x),), float(sigma), device=x.device, dtype=cond.dtype))
        return out.to(dtype)

    x = apply_conditions(randn() * t[0], cond64, cond_mask)
    for i in range(num_steps):
        t_cur, t_next = t[i], t[i + 1]
        gamma = gamma_max if s_tmin <= t_cur <= s_tmax else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x
        if gamma > 0:
            x_hat = apply_conditions(x + (t_hat**2 - t_cur**2).sqrt() * s_noise * randn(), cond64, cond_mask)
        d_cur = (x_hat - d(x_hat, t_hat)) / t_hat
        x = apply_conditions(x_hat + (t_next - t_hat) * d_cur, cond64, cond_mask)
        if t_next > 0:
            d_next = (x - d(x, t_next)) / t_next
            x = apply_conditions(x_hat + (t_next - t_hat) * (d_cur + d_next) / 2, cond64, cond_mask)
    return x
