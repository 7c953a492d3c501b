"""The trajectory model of DyDiff: states s_1..s_L given s_0 and a_0..a_{L−1}, on normalised windows.

``kind='edm'`` is the paper's DM (Eqs. 3-4, Algorithm 2). ``kind='regressor'`` is the same network trained
as a deterministic non-autoregressive regressor with MSE (the cheapest model Theorem 1 covers): ``sample``
then returns its prediction and ignores the generator.
"""

from __future__ import annotations

import torch
from torch import nn

from dydiff.diffusion import edm
from dydiff.diffusion.networks import build_network


class TrajectoryModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, horizon: int, center: list, scale: list, kind: str = "edm",
                 network: str = "unet", network_kwargs: dict | None = None, sigma_data: float = 0.5,
                 p_mean: float = -1.2, p_std: float = 1.2, pad_value: float = -1.1, sampler: dict | None = None):
        super().__init__()
        if kind not in ("edm", "regressor"):
            raise ValueError(f"unknown trajectory model kind {kind!r} (expected 'edm' or 'regressor')")
        self.obs_dim, self.act_dim, self.horizon, self.kind = obs_dim, act_dim, horizon, kind
        self.sigma_data, self.p_mean, self.p_std, self.pad_value = sigma_data, p_mean, p_std, pad_value
        self.sampler = dict(sampler or {})  # overrides of edm.sample's defaults (Table 3)
        self.net = build_network(network, obs_dim + act_dim, horizon + 1, **(network_kwargs or {}))
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))  # normaliser (obs ‖ act)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        mask = torch.zeros(horizon + 1, obs_dim + act_dim, dtype=torch.bool)
        mask[0, :obs_dim] = True  # s_0
        mask[:, obs_dim:] = True  # every action (the last row's is padding, also held fixed)
        self.register_buffer("cond_mask", mask)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D_θ(x; σ) with EDM preconditioning."""
        return edm.preconditioned(self.net, x, sigma, self.sigma_data)

    def loss_mask(self, valid: torch.Tensor) -> torch.Tensor:
        """State entries s_1..s_L that are not padding: (B, L+1, D)."""
        m = torch.zeros(*valid.shape, self.obs_dim + self.act_dim, dtype=torch.bool, device=valid.device)
        m[:, 1:, : self.obs_dim] = valid[:, 1:, None]
        return m

    def loss(self, x0: torch.Tensor, valid: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss (B,) and the σ used (B,; zeros for the regressor). x0: normalised windows."""
        cond_mask, loss_mask = self.cond_mask.expand_as(x0), self.loss_mask(valid)
        if self.kind == "regressor":
            pred = self.net(edm.apply_conditions(torch.zeros_like(x0), x0, cond_mask), x0.new_zeros(len(x0)))
            err = ((pred - x0) ** 2 * loss_mask).flatten(1).sum(1) / loss_mask.flatten(1).sum(1).clamp(min=1)
            return err, x0.new_zeros(len(x0))
        sigma = edm.sample_sigma(len(x0), self.p_mean, self.p_std, generator, x0.device).to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return edm.edm_loss(self.denoise, x0, cond_mask, loss_mask, sigma, noise, self.sigma_data), sigma

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.scale

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale + self.center

    def conditions(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Normalised condition window (B, L+1, D) from raw s0 (B, obs) and actions (B, L, act)."""
        if actions.shape[1:] != (self.horizon, self.act_dim) or s0.shape[1:] != (self.obs_dim,):
            raise ValueError(f"expected s0 (B, {self.obs_dim}) and actions (B, {self.horizon}, {self.act_dim}), "
                             f"got {tuple(s0.shape)} and {tuple(actions.shape)}")
        cond = torch.full((len(s0), self.horizon + 1, self.obs_dim + self.act_dim), self.pad_value,
                          device=s0.device, dtype=self.center.dtype)
        cond[:, 0, : self.obs_dim] = (s0 - self.center[: self.obs_dim]) / self.scale[: self.obs_dim]
        cond[:, :-1, self.obs_dim :] = (actions - self.center[self.obs_dim :]) / self.scale[self.obs_dim :]
        return cond

    @torch.no_grad()
    def sample(self, s0: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
               chunk: int = 4096, **sampler) -> torch.Tensor:
        """States (B, L+1, obs) in raw units given raw s0 (B, obs) and actions (B, L, act); states[:, 0] is s0
        exactly. Sampler keywords override the model's (Table 3) settings; ``chunk`` bounds each network
        call's batch without changing the result."""
        cond = self.conditions(s0.to(self.center.dtype), actions.to(self.center.dtype))
        mask = self.cond_mask.expand_as(cond)

        def chunked(f):
            split = lambda x, sigma: zip(x.split(chunk), sigma.split(chunk), strict=True)  # noqa: E731
            return lambda x, sigma: torch.cat([f(a, b) for a, b in split(x, sigma)])

        if self.kind == "regressor":
            x = chunked(self.net)(edm.apply_conditions(torch.zeros_like(cond), cond, mask), cond.new_zeros(len(cond)))
            x = edm.apply_conditions(x, cond, mask)
        else:
            x = edm.sample(chunked(self.denoise), cond, mask, generator, **{**self.sampler, **sampler})
        states = self.denormalize(x.to(cond.dtype))[..., : self.obs_dim]
        states[:, 0] = s0.to(states.dtype)
        return states
