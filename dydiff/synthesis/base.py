"""The interface every synthesizer implements, and the registry keyed by ``conf/synth/<name>.yaml``'s name.

A new synthesizer is one class (decorated ``@register("name")``, imported in ``dydiff/synthesis/__init__.py``)
and one YAML file. The policy stage builds it as ``SYNTHESIZERS[name](ds, pretrained, cache_dir, **yaml_keys)``
and hands it to a ``SynthesisRound``, which calls, at the start of every epoch:

- ``due(epoch)``: whether this epoch has a round;
- ``generate(act, n, generator) -> (Transitions, metrics)``: ``n`` trajectories' worth (this rank's share) of
  transitions in raw units, from ``act(obs) -> actions`` (the learning policy) and ``generator`` (all
  randomness); ``metrics`` are scalars logged as ``synth/<key>``;
- ``to(device)``: moves its models and tensors, returns itself;
- ``state_dict()`` / ``load_state_dict(state)``: plain values saved with the policy checkpoint.

Diagnostics per refinement iteration reach observers: ``add_observer(fn)``; the synthesizer calls
``fn(iteration, states)`` with the states (B, L+1, obs) after each iteration (0 = the first rollout).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dydiff.types import Transitions

SYNTHESIZERS: dict[str, type[Synthesizer]] = {}
Observer = Callable[[int, torch.Tensor], None]


def register(*names: str):
    """Class decorator: make the synthesizer available as ``synth=<name>`` for each name."""

    def add(cls):
        for name in names:
            SYNTHESIZERS[name] = cls
        return cls

    return add


class Synthesizer:
    needs: tuple[str, ...] = ()  # the stage-1 models it loads (names in dydiff.stage1.MODULES)
    deterministic = True  # how the policy acts in rollouts

    def __init__(self, start_epoch: int = 0, every: int = 1):
        self.start_epoch, self.every = start_epoch, every
        self.observers: list[Observer] = []

    def due(self, epoch: int) -> bool:
        return epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every == 0

    def generate(self, act, n: int, generator: torch.Generator | None = None) -> tuple[Transitions, dict]:
        raise NotImplementedError

    def to(self, device) -> Synthesizer:
        return self

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def add_observer(self, fn: Observer) -> None:
        self.observers.append(fn)

    def notify(self, iteration: int, states: torch.Tensor) -> None:
        for fn in self.observers:
            fn(iteration, states)
