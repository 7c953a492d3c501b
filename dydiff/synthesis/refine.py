"""DyDiff's synthesis (Algorithm 1, §4.2) on batched tensors, in raw units:

  Eq. 6   single-step rollout: a_i = π(s_i), s_{i+1} = T_φ(s_i, a_i) for i < L, from real start states s_0
  Eq. 7/9 the DM resamples s_1..s_L given s_0 and the actions, with fresh noise
          (new = blend·DM + (1 − blend)·previous; blend 1 is the paper's text, 0.5 the official code)
  Eq. 8   the policy relabels every action: a_i = π(s_i)
then the transitions kept: up to the first terminal, before any padded step. The filter (Eq. 11) is filter.py.

``act(states) -> actions`` is the learning policy; nothing here knows about Lightning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dydiff.types import Transitions

Act = Callable[[torch.Tensor], torch.Tensor]


def ensemble_rollout(dynamics, act: Act, s0: torch.Tensor, horizon: int, generator=None,
                     deterministic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6: states (B, L+1, obs) and actions (B, L, act) of the policy acting in the ensemble."""
    states, actions = [s0], []
    for _ in range(horizon):
        actions.append(act(states[-1]))
        states.append(dynamics.step(states[-1], actions[-1], generator, deterministic))
    return torch.stack(states, 1), torch.stack(actions, 1)


def relabel(act: Act, states: torch.Tensor) -> torch.Tensor:
    """Eq. 8: a_i = π(s_i) for i < L, all trajectories in one batch: (B, L, act)."""
    b, n, d = states.shape
    return act(states[:, :-1].reshape(-1, d)).view(b, n - 1, -1)


@torch.no_grad()
def refine(denoiser, act: Act, states: torch.Tensor, actions: torch.Tensor, iterations: int, blend: float = 0.5,
           generator=None, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Eqs. 7-9, ``iterations`` (M) times: resample the states given s_0 and the current actions, blend with the
    previous states, relabel the actions. Returns the final states, actions and the mean per-state change
    ‖s_new − s_prev‖ of each iteration. s_0 never changes; the inputs are not modified."""
    changes = []
    for _ in range(iterations):
        dm = denoiser.sample(states[:, 0], actions, generator, chunk=chunk).to(states.dtype)
        new = dm if blend == 1.0 else blend * dm + (1.0 - blend) * states
        new[:, 0] = states[:, 0]
        changes.append(float((new[:, 1:] - states[:, 1:]).norm(dim=-1).mean()))
        states, actions = new, relabel(act, new)
    return states, actions, changes


def padded_steps(denoiser, states: torch.Tensor) -> torch.Tensor:
    """(B, L+1) bool: steps the DM generated as episode padding (normalised states below the data's [−1, 1],
    nearer the pad sentinel than −1)."""
    z = (states - denoiser.center[: states.shape[-1]]) / denoiser.scale[: states.shape[-1]]
    return z.mean(-1) < (denoiser.pad_value - 1.0) / 2


def keep_mask(valid: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """(B, L) transitions kept: up to and including the first terminal, and before the first invalid one."""
    alive = torch.cumprod(valid.to(torch.int8), 1).bool()
    earlier_done = (torch.cumsum(done.to(torch.int32), 1) - done.to(torch.int32)) > 0
    return alive & ~earlier_done


def to_transitions(states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, done: torch.Tensor,
                   keep: torch.Tensor) -> Transitions:
    """The kept (s_i, a_i, r_i, s_{i+1}, done_i) of every trajectory, in trajectory-major order."""
    k = keep.reshape(-1)
    flat = lambda x: x.reshape(-1, *x.shape[2:])[k]  # noqa: E731
    return Transitions(flat(states[:, :-1]), flat(actions), flat(rewards), flat(states[:, 1:]),
                       flat(done.to(states.dtype)))
