"""The trajectory model of DyDiff: states s_1..s_L given s_0 and a_0..a_{L−1}, on normalised windows.

- ``kind='edm'``: the paper's DM (Eqs. 3-4, Algorithm 2).
- ``kind='regressor'``: the same network trained as a deterministic non-autoregressive regressor with MSE (the
  cheapest model Theorem 1 covers); ``sample`` returns its prediction μ(s_0, a) and ignores the generator.
- ``kind='residual'``: regression plus residual diffusion (CorrDiff, Mardani et al. 2023). A regressor
  ``mean_net`` predicts μ(s_0, a); an EDM (Eqs. 3-4, Algorithm 2 unchanged) then models the standardised
  residual z = (x − μ)/ρ, where ρ is the residual's RMS per window entry (``residual_scale='entry'``) or over
  all state entries (``'global'``), measured once on training windows when μ is frozen (``fit_residual``). By
  construction z has RMS 1, so the residual EDM's σ_data is 1. The condition slots hold s_0 and the actions
  themselves (their residual is zero), hard-replaced as in Eq. 3, so the network sees what it is conditioned
  on. A sample is μ + ρ·z on the states; s_0 is exact.
"""

from __future__ import annotations

import torch
from torch import nn

from dydiff.diffusion import edm
from dydiff.diffusion.networks import build_network

KINDS = ("edm", "regressor", "residual")


class TrajectoryModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, horizon: int, center: list, scale: list, kind: str = "edm",
                 network: str = "unet", network_kwargs: dict | None = None, sigma_data: float = 0.5,
                 p_mean: float = -1.2, p_std: float = 1.2, pad_value: float = -1.1, sampler: dict | None = None,
                 residual_scale: str = "entry"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown trajectory model kind {kind!r} (expected one of {', '.join(KINDS)})")
        if residual_scale not in ("entry", "global"):
            raise ValueError(f"unknown residual_scale {residual_scale!r} (expected 'entry' or 'global')")
        self.obs_dim, self.act_dim, self.horizon, self.kind = obs_dim, act_dim, horizon, kind
        self.sigma_data = 1.0 if kind == "residual" else sigma_data  # z = (x − μ)/ρ has RMS 1
        self.p_mean, self.p_std, self.pad_value, self.residual_scale = p_mean, p_std, pad_value, residual_scale
        self.sampler = dict(sampler or {})  # overrides of edm.sample's defaults (Table 3), and ``average``
        make = lambda: build_network(network, obs_dim + act_dim, horizon + 1, **(network_kwargs or {}),  # noqa: E731
                                     state_dim=obs_dim)
        self.net = make()
        if kind == "residual":
            self.mean_net = make()
            self.register_buffer("rho", torch.ones(horizon + 1, obs_dim + act_dim))  # ρ; 1 until fit_residual
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

    def mean(self, cond: torch.Tensor) -> torch.Tensor:
        """μ(s_0, a): the regressor's window from a condition window (states zero), conditions hard-replaced."""
        net = self.mean_net if self.kind == "residual" else self.net
        mask = self.cond_mask.expand_as(cond)
        return edm.apply_conditions(net(edm.apply_conditions(torch.zeros_like(cond), cond, mask),
                                        cond.new_zeros(len(cond))), cond, mask)

    def mean_loss(self, x0: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Per-sample MSE of μ over the ``loss_mask`` entries (B,): the regressor's loss, and the residual model's
        first phase."""
        loss_mask = self.loss_mask(valid)
        err = (self.mean(x0) - x0) ** 2 * loss_mask
        return err.flatten(1).sum(1) / loss_mask.flatten(1).sum(1).clamp(min=1)

    def to_residual(self, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The residual model's window: z = (x − μ)/ρ on the states, the conditions themselves in their slots."""
        return edm.apply_conditions((x - mu) / self.rho, x, self.cond_mask.expand_as(x))

    def from_residual(self, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return edm.apply_conditions(mu + self.rho.to(z.dtype) * z, z, self.cond_mask.expand_as(z))

    @torch.no_grad()
    def fit_residual(self, x0: torch.Tensor, valid: torch.Tensor) -> None:
        """Set ρ from the residuals x − μ of these (training) windows: RMS over the non-padding state entries,
        per entry or globally; 1 on the conditions and where no window has data."""
        m = self.loss_mask(valid).to(x0.dtype)
        r2 = (x0 - self.mean(x0)) ** 2 * m
        if self.residual_scale == "global":
            rho = (r2.sum() / m.sum().clamp(min=1)).sqrt().expand_as(self.rho)
            rho = torch.where(self.cond_mask, 1.0, rho)
        else:
            rho = (r2.sum(0) / m.sum(0).clamp(min=1)).sqrt()
            rho = torch.where(m.sum(0) > 0, rho, 1.0)
        self.rho.copy_(rho.clamp(min=1e-6))

    def loss(self, x0: torch.Tensor, valid: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss (B,) and the σ used (B,; zeros for the regressor). x0: normalised windows. For the
        residual model this is the residual EDM's loss, with μ frozen (``mean_loss`` trains μ)."""
        if self.kind == "regressor":
            return self.mean_loss(x0, valid), x0.new_zeros(len(x0))
        cond_mask, loss_mask = self.cond_mask.expand_as(x0), self.loss_mask(valid)
        if self.kind == "residual":
            with torch.no_grad():
                x0 = self.to_residual(x0, self.mean(x0))
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
        exactly. Sampler keywords override the model's (Table 3) settings; ``average=n`` returns the mean of n
        samples (n draws in turn from ``generator``); ``chunk`` bounds each network call's batch without changing
        the result."""
        cond = self.conditions(s0.to(self.center.dtype), actions.to(self.center.dtype))
        mask = self.cond_mask.expand_as(cond)
        kw = {**self.sampler, **sampler}
        average = int(kw.pop("average", 1))
        if average < 1:
            raise ValueError(f"average={average}: the number of samples averaged must be ≥ 1")

        def chunked(f):
            split = lambda x, sigma: zip(x.split(chunk), sigma.split(chunk), strict=True)  # noqa: E731
            return lambda x, sigma: torch.cat([f(a, b) for a, b in split(x, sigma)])

        mu = torch.cat([self.mean(c) for c in cond.split(chunk)]) if self.kind != "edm" else None
        if self.kind == "regressor":
            x = mu
        else:
            x = sum(edm.sample(chunked(self.denoise), cond, mask, generator, **kw) for _ in range(average)) / average
            x = self.from_residual(x, mu.to(x.dtype)) if self.kind == "residual" else x
        states = self.denormalize(x.to(cond.dtype))[..., : self.obs_dim]
        states[:, 0] = s0.to(states.dtype)
        return states
