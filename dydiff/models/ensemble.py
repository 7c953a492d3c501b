"""MBPO's probabilistic dynamics ensemble (Janner et al., 2019), the single-step model T_φ of Eq. 5.

Each member predicts a Gaussian over Δs = s' − s from standardised (s, a). Training minimises the Gaussian
NLL with learned soft log-variance bounds (+ 0.01·(Σ max_logvar − Σ min_logvar)) and per-layer weight decay;
the elites are the members with the lowest holdout MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dydiff.models.inputs import StandardizedInput


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers applied to (E, B, in) in one batched matmul."""

    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, d_out))
        nn.init.trunc_normal_(self.weight, std=1 / (2 * d_in**0.5))  # MBPO's initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class DynamicsEnsemble(StandardizedInput):
    def __init__(self, obs_dim: int, act_dim: int, members: int = 7, elites: int = 5, hidden: int = 200,
                 layers: int = 4, weight_decay: tuple = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)):
        super().__init__()
        if len(weight_decay) != layers + 1:
            raise ValueError(f"weight_decay needs one value per layer ({layers + 1}), got {len(weight_decay)}")
        self.obs_dim, self.act_dim, self.members, self.num_elites = obs_dim, act_dim, members, elites
        self.weight_decay = tuple(weight_decay)
        dims = [obs_dim + act_dim] + [hidden] * layers + [2 * obs_dim]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.max_logvar = nn.Parameter(torch.full((obs_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((obs_dim,), -10.0))
        self.register_input_stats(obs_dim + act_dim)
        self.register_buffer("elites", torch.arange(elites))

    def forward(self, obs: torch.Tensor, act: torch.Tensor, member: int | None = None):
        """(…, obs), (…, act) broadcast to every member → mean Δs and log-variance, each (E, B, obs); with
        ``member``, that member's only, each (B, obs)."""
        x = self.standardize(obs, act)
        if member is None:
            h = x.expand(self.members, *x.shape[-2:]) if x.dim() == 2 else x
            for layer in self.layers[:-1]:
                h = F.silu(layer(h))
            out = self.layers[-1](h)
        else:
            h = x
            for layer in self.layers[:-1]:
                h = F.silu(torch.addmm(layer.bias[member], h, layer.weight[member]))
            out = torch.addmm(self.layers[-1].bias[member], h, self.layers[-1].weight[member])
        mean, logvar = out.chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)  # soft bounds
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def loss(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL on Δs summed over members, + log-variance bound penalty + per-layer weight decay.
        Inputs are (E, B, ·): each member sees its own batch."""
        mean, logvar = self(obs, act)
        target = next_obs - obs
        nll = (((mean - target) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
        bound = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        layers = zip(self.weight_decay, self.layers, strict=True)
        decay = sum(wd * 0.5 * (layer.weight**2).sum() for wd, layer in layers)
        return nll + bound + decay

    @torch.no_grad()
    def member_mse(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Holdout MSE of every member's mean Δs: (E,)."""
        mean, _ = self(obs, act)
        return ((mean - (next_obs - obs)) ** 2).mean(dim=(1, 2))

    def select_elites(self, holdout_mse: torch.Tensor) -> None:
        self.elites.copy_(torch.argsort(holdout_mse)[: self.num_elites])

    @torch.no_grad()
    def step(self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator | None = None,
             deterministic: bool = True) -> torch.Tensor:
        """s' = s + Δs from a random elite per sample: its mean, or a draw from its Gaussian. Each elite runs
        on its own samples only (1/elites of the work of running every member on every sample)."""
        pick = self.elites[torch.randint(self.num_elites, (len(obs),), generator=generator, device=obs.device)]
        mean, logvar = torch.empty_like(obs), torch.empty_like(obs)
        for e in self.elites.tolist():
            rows = (pick == e).nonzero()[:, 0]
            if len(rows):
                mean[rows], logvar[rows] = self(obs[rows], act[rows], member=e)
        delta = mean
        if not deterministic:
            noise = torch.randn(delta.shape, generator=generator, device=obs.device, dtype=delta.dtype)
            delta = delta + noise * (0.5 * logvar).exp()
        return obs + delta

    @torch.no_grad()
    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
                deterministic: bool = True) -> torch.Tensor:
        """Autoregressive states (B, L+1, obs) from s0 (B, obs) under fixed actions (B, L, act)."""
        states = [s0]
        for t in range(actions.shape[1]):
            states.append(self.step(states[-1], actions[:, t], generator, deterministic))
        return torch.stack(states, 1)
