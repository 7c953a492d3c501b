"""DyDiff's synthesis (Algorithm 1, §4.2) on batched tensors, in raw units:

  Eq. 6   single-step rollout: a_i = π(s_i), s_{i+1} = T_φ(s_i, a_i) for i < L, from real start states s_0
  Eq. 7/9 the DM resamples s_1..s_L given s_0 and the actions, with fresh noise
          (new = blend·DM + (1 − blend)·previous; blend 1 is the paper's text, 0.5 the official code)
  Eq. 8   the policy relabels every action: a_i = π(s_i)
every synthetic state and action clipped to the data's box (``Box``); then the transitions kept: up to the
first terminal. The filter (Eq. 11) is filter.py.

``act(states) -> actions`` is the learning policy; nothing here knows about Lightning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dydiff.types import Transitions

Act = Callable[[torch.Tensor], torch.Tensor]


class Box:
    """The dataset's per-dimension min–max box of states and actions. Every synthetic state and action is clipped
    into it as it is made (as the official code's normaliser does on every model↔environment conversion); the
    box counts how many states it clipped and which trajectories ever held a non-finite value."""

    def __init__(self, s_low: torch.Tensor, s_high: torch.Tensor, a_low: torch.Tensor, a_high: torch.Tensor):
        self.s_low, self.s_high, self.a_low, self.a_high = s_low, s_high, a_low, a_high
        self.reset(0)

    def to(self, device) -> Box:
        self.s_low, self.s_high, self.a_low, self.a_high = (x.to(device) for x in (self.s_low, self.s_high,
                                                                                    self.a_low, self.a_high))
        return self

    def reset(self, n: int) -> None:
        """Start a round of ``n`` trajectories."""
        self.clipped, self.seen = 0, 0
        self.nonfinite = torch.zeros(n, dtype=torch.bool, device=self.s_low.device)

    def _clip(self, x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, count: bool) -> torch.Tensor:
        flat = x.reshape(len(x), -1, x.shape[-1])  # (B, steps, dim); the first axis is the trajectory
        self.nonfinite |= ~torch.isfinite(flat).flatten(1).all(1)
        if count:
            self.clipped += int(((flat < low) | (flat > high)).any(-1).sum())
            self.seen += flat.shape[0] * flat.shape[1]
        return torch.minimum(torch.maximum(x, low), high)

    def states(self, s: torch.Tensor) -> torch.Tensor:
        return self._clip(s, self.s_low, self.s_high, True)

    def actions(self, a: torch.Tensor) -> torch.Tensor:
        return self._clip(a, self.a_low, self.a_high, False)

    @property
    def clipped_share(self) -> float:
        return self.clipped / max(self.seen, 1)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def ensemble_rollout(dynamics, act: Act, s0: torch.Tensor, horizon: int, generator=None,
                     deterministic: bool = True, box: Box | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6: states (B, L+1, obs) and actions (B, L, act) of the policy acting in the ensemble; each new state
    and action clipped into ``box`` when given."""
    clip_s, clip_a = (box.states, box.actions) if box is not None else (_identity, _identity)
    states, actions = [s0], []
    for _ in range(horizon):
        actions.append(clip_a(act(states[-1])))
        states.append(clip_s(dynamics.step(states[-1], actions[-1], generator, deterministic)))
    return torch.stack(states, 1), torch.stack(actions, 1)


def relabel(act: Act, states: torch.Tensor) -> torch.Tensor:
    """Eq. 8: a_i = π(s_i) for i < L, all trajectories in one batch: (B, L, act)."""
    b, n, d = states.shape
    return act(states[:, :-1].reshape(-1, d)).view(b, n - 1, -1)


@torch.no_grad()
def refine(denoiser, act: Act, states: torch.Tensor, actions: torch.Tensor, iterations: int, blend: float = 0.5,
           generator=None, chunk: int = 4096, box: Box | None = None) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Eqs. 7-9, ``iterations`` (M) times: resample the states given s_0 and the current actions, blend with the
    previous states (clip into ``box``), relabel the actions (clipped too). Returns the final states, actions and
    the mean per-state change ‖s_new − s_prev‖ of each iteration. s_0 never changes; the inputs are not
    modified."""
    clip_s, clip_a = (box.states, box.actions) if box is not None else (_identity, _identity)
    changes = []
    for _ in range(iterations):
        dm = denoiser.sample(states[:, 0], actions, generator, chunk=chunk).to(states.dtype)
        new = dm if blend == 1.0 else blend * dm + (1.0 - blend) * states
        new[:, 1:] = clip_s(new[:, 1:])
        new[:, 0] = states[:, 0]
        changes.append(float((new[:, 1:] - states[:, 1:]).norm(dim=-1).mean()))
        states, actions = new, clip_a(relabel(act, new))
    return states, actions, changes


def keep_mask(done: torch.Tensor) -> torch.Tensor:
    """(B, L) transitions kept: up to and including the first terminal."""
    return ~((torch.cumsum(done.to(torch.int32), 1) - done.to(torch.int32)) > 0)


def to_transitions(states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, done: torch.Tensor,
                   keep: torch.Tensor) -> Transitions:
    """The kept (s_i, a_i, r_i, s_{i+1}, done_i) of every trajectory, in trajectory-major order."""
    k = keep.reshape(-1)
    flat = lambda x: x.reshape(-1, *x.shape[2:])[k]  # noqa: E731
    return Transitions(flat(states[:, :-1]), flat(actions), flat(rewards), flat(states[:, 1:]),
                       flat(done.to(states.dtype)))
