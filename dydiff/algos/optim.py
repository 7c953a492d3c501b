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


def clip_grad_norm(params, max_norm: float, members: int = 1) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for each of ``members`` independent runs stacked along dim 0 of every
    parameter (run k owns rows k·n … (k+1)·n − 1): each run's gradients are scaled by min(1, max_norm / (‖g_k‖ +
    1e-6)), ‖g_k‖ the norm over all of its parameters, as its single-seed run's are."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.reshape(members, -1).norm(dim=1) for g in grads]).norm(dim=0)  # (members,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.view(members, -1).mul_(coef[:, None])
