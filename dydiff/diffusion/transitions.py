"""SynthER's model (Lu et al., 2023): an unconditional EDM over single flattened transitions
x = (s, a, r, s', done), z-scored per dimension, with a residual-MLP denoiser. Same EDM as the trajectory
model (Eqs. 3-4, Algorithm 2) with a window of one row and no conditions."""

from __future__ import annotations

import torch
from torch import nn

from dydiff.diffusion import edm
from dydiff.diffusion.networks import ResidualMLP
from dydiff.types import Transitions

# SynthER's sampler (its elucidated-diffusion defaults, where they differ from edm.sample's): 128 Heun steps
SYNTHER_SAMPLER = dict(num_steps=128, s_churn=80.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)


class TransitionModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, center: list, scale: list, width: int = 1024, depth: int = 6,
                 sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2, sampler: dict | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.dim = obs_dim, act_dim, 2 * obs_dim + act_dim + 2
        self.sigma_data, self.p_mean, self.p_std = sigma_data, p_mean, p_std
        self.sampler = {**SYNTHER_SAMPLER, **(sampler or {})}
        self.net = ResidualMLP(self.dim, 1, width, depth)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return edm.preconditioned(self.net, x, sigma, self.sigma_data)

    def loss(self, x0: torch.Tensor, generator=None) -> torch.Tensor:
        """Eq. 4 per sample on normalised transitions (B, 1, D)."""
        sigma = edm.sample_sigma(len(x0), self.p_mean, self.p_std, generator, x0.device).to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        none, every = torch.zeros_like(x0, dtype=torch.bool), torch.ones_like(x0, dtype=torch.bool)
        return edm.edm_loss(self.denoise, x0, none, every, sigma, noise, self.sigma_data)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, chunk: int = 65536, **sampler) -> Transitions:
        """``n`` transitions in raw units; actions clipped to [−1, 1] and done rounded to {0, 1} (as SynthER)."""
        out = []
        for lo in range(0, n, chunk):
            shape = (min(chunk, n - lo), 1, self.dim)
            cond = torch.zeros(shape, device=self.center.device)
            x = edm.sample(self.denoise, cond, torch.zeros_like(cond, dtype=torch.bool), generator,
                           **{**self.sampler, **sampler})
            out.append(x[:, 0].float() * self.scale + self.center)
        t = Transitions.unpack(torch.cat(out), self.obs_dim, self.act_dim)
        return t._replace(act=t.act.clamp(-1, 1), done=(t.done > 0.5).float())
