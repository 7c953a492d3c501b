"""Optimiser helpers shared by every actor-critic here (the offline algorithms and the SAC behaviour policies)."""

from __future__ import annotations

import torch


def polyak(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """θ' ← (1 − τ)·θ' + τ·θ, as one multi-tensor operation per step (same numbers as a per-tensor loop)."""
    with torch.no_grad():
        t, o = list(target.parameters()), list(online.parameters())
        assert len(t) == len(o)
        torch._foreach_mul_(t, 1 - tau)
        torch._foreach_add_(t, o, alpha=tau)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with multi-tensor updates: the same numbers as the per-tensor default, ~1.5x faster on CPU for
    these small networks."""
    return torch.optim.Adam(params, lr=lr, foreach=True)
