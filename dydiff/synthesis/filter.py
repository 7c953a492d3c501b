"""The filter of DyDiff (Eq. 11), on batched tensors:

  score = Σ_{i<L} r̂_ψ(s_i, a_i) over the whole horizon, before any termination cut (the official code too);
  hardmax keeps the top ⌊η·B_r⌋ trajectories, softmax draws ⌊η·B_r⌋ without replacement with p ∝ exp(z/T),
  z the z-scored scores (DyDiff-H and DyDiff-S).
"""

from __future__ import annotations

import torch


def scores(rewards: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 11: the predicted return of each trajectory over all L steps (B,); with ``keep``, only over the
    transitions it keeps after the termination cut (a survival bonus where episodes terminate: not the paper's)."""
    return rewards.sum(1) if keep is None else (rewards * keep).sum(1)


def select(score: torch.Tensor, n: int, method: str = "softmax", temperature: float = 0.05,
           generator=None) -> torch.Tensor:
    """Indices of the ``n`` trajectories kept. hardmax: the top n scores. softmax: z-score, p ∝ exp(z/T), n draws
    without replacement (as Gumbel-top-n, which is that distribution exactly and never runs out of mass).
    none: the first n."""
    if n > len(score):
        raise ValueError(f"cannot keep {n} of {len(score)} trajectories")
    if method == "hardmax":
        return torch.topk(score, n, sorted=False).indices
    if method == "softmax":
        z = (score - score.mean()) / score.std().clamp(min=1e-8) if len(score) > 1 else score * 0
        u = torch.rand(score.shape, generator=generator, device=score.device, dtype=torch.float64)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
        return torch.topk(z.double() / temperature + gumbel, n, sorted=False).indices
    if method == "none":
        return torch.arange(n, device=score.device)
    raise ValueError(f"unknown filter {method!r} (expected hardmax, softmax or none)")
