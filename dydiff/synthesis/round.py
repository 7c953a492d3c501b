"""One synthesis round per due epoch, owned by one object: the synthesizer, this rank's FIFO buffer and its
checkpoint state (the DDP per-rank files included), the per-round generator, the rank's share of B_r, the
``synth/*`` scalars and, in mazes, the legal share per iteration and the trajectory pictures (Figs. 8-9).

The policy module's ``on_train_epoch_start`` calls ``run(epoch, act, log)``; ``act(obs, deterministic,
generator)`` is the learning policy, ``log`` anything with ``scalars(dict)`` and ``image(tag, hwc_array)``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dydiff.envs.registry import Task
from dydiff.io import save_atomic
from dydiff.synthesis.base import Synthesizer
from dydiff.synthesis.buffer import SyntheticBuffer
from dydiff.types import stream_seed


class SynthesisRound:
    def __init__(self, synthesizer: Synthesizer, trajectories: int, capacity: int, obs_dim: int, act_dim: int,
                 seed: int = 0, task: Task | None = None, figure_every: int = 0, run_dir: str | Path | None = None,
                 key: str = "", batched: bool = False):
        """``trajectories`` is B_r over all ranks; ``capacity`` the buffer's size per rank; in mazes every
        ``figure_every``-th round logs 32 trajectories over the walls (0: never); ``key`` (``/seed<k>``: one round
        per seed in a K-seed run) suffixes its checkpoint entries and prefixes its tags (``seed<k>/synth/*``);
        ``batched``: a K-seed run makes its rounds as one batch (``run_batched``)."""
        if batched and not hasattr(synthesizer, "generate_many"):
            raise ValueError(f"synth.batched=true needs a synthesizer that makes several policies' rounds at once "
                             f"(dydiff); {type(synthesizer).__name__} makes one policy's at a time")
        self.batched = batched
        self.synthesizer, self.trajectories, self.seed, self.task = synthesizer, trajectories, seed, task
        self.figure_every, self.run_dir = figure_every, Path(run_dir) if run_dir is not None else None
        self.key, self.tags = key, f"{key.strip('/')}/synth/" if key else "synth/"
        self.buffer = SyntheticBuffer(capacity, obs_dim, act_dim)
        self.rank, self.world, self.device = 0, 1, torch.device("cpu")
        self.legal: list[float] = []  # this round's legal share per iteration (mazes)
        self.history: list[np.ndarray] = []  # this round's (x, y) per iteration, when it makes a picture
        self.picture = False
        if task is not None and task.is_maze:
            synthesizer.add_observer(self.observe)

    def setup(self, device, rank: int = 0, world: int = 1) -> None:
        self.device, self.rank, self.world = torch.device(device), rank, world
        self.synthesizer.to(device)
        self.buffer.to(device)

    @property
    def share(self) -> int:
        """This rank's share of B_r."""
        return -(-self.trajectories // self.world)

    def generator(self, epoch: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(stream_seed(self.seed, self.rank, epoch) ^ 0x5EED)

    def observe(self, iteration: int, states: torch.Tensor) -> None:
        """Fig. 9's count, every round: the share of trajectories with no state inside a wall."""
        xy = states[..., :2].float().cpu().numpy()
        self.legal.append(float(self.task.grid.legal(xy[:, 1:]).mean()))
        if self.picture:
            self.history.append(xy[:32])

    def run(self, epoch: int, act, log) -> dict | None:
        """One round into the buffer when ``epoch`` is due: its metrics, else None."""
        s = self.synthesizer
        if not s.due(epoch):
            return None
        t0 = time.perf_counter()
        g, n = self.begin(epoch), self.share
        new, metrics = s.generate(lambda obs: act(obs, s.deterministic, g), n, g)
        return self.finish(epoch, new, metrics, time.perf_counter() - t0, n, log)

    def begin(self, epoch: int) -> torch.Generator:
        """Prepare a due round's observations; the round's generator."""
        rounds_before = sum(self.synthesizer.due(e) for e in range(epoch))
        self.picture = bool(self.figure_every) and self.rank == 0 and self.task is not None and \
            self.task.is_maze and rounds_before % self.figure_every == 0
        self.legal, self.history = [], []
        return self.generator(epoch)

    def finish(self, epoch: int, new, metrics: dict, seconds: float, n: int, log) -> dict:
        """Push a round's transitions, log its metrics (and, when due, its picture over ``n`` trajectories)."""
        self.buffer.push(new)
        metrics.update({f"legal_share_iter{m}": x for m, x in enumerate(self.legal)})
        metrics.update(seconds=seconds, buffer_size=len(self.buffer))
        log.scalars({f"{self.tags}{k}": v for k, v in metrics.items()})
        if self.picture and self.history:
            log.image(f"{self.tags}maze_trajectories", self.maze_image(epoch, n))
        return metrics

    def maze_image(self, epoch: int, n: int) -> np.ndarray:
        """Figs. 8-9: this round's first trajectories over the walls, before and after each refinement iteration,
        titled with the legal count over all ``n`` of the round's trajectories."""
        from dydiff import figures

        legal = [round(x * n) for x in self.legal]
        fig = figures.maze_trajectories(self.task.grid, self.history, legal,
                                        title=f"epoch {epoch}: {len(self.history[0])} trajectories "
                                              f"(legal counts of {n})")
        return figures.to_image(fig)

    # ---- checkpoint state: rank 0's buffer in the checkpoint, every other rank's beside it ----------------
    def save(self, checkpoint: dict, rank: int) -> None:
        checkpoint[f"synthesizer{self.key}"] = self.synthesizer.state_dict()
        if rank == 0:
            checkpoint[f"synthetic{self.key}"] = self.buffer.state_dict()
        elif self.run_dir is not None:
            save_atomic(self.buffer.state_dict(), self.run_dir / f"synthetic-rank{rank}.pt")

    def load(self, checkpoint: dict, rank: int) -> None:
        self.synthesizer.load_state_dict(checkpoint.get(f"synthesizer{self.key}", {}))
        if f"synthetic{self.key}" not in checkpoint:
            return
        st = checkpoint[f"synthetic{self.key}"]
        own = self.run_dir / f"synthetic-rank{rank}.pt" if self.run_dir is not None else None
        if rank > 0 and own is not None and own.exists():
            st = torch.load(own, map_location="cpu", weights_only=True)
        self.buffer.load_state_dict(st)


def run_batched(rounds: list[SynthesisRound], epoch: int, act, log) -> list[dict] | None:
    """The K seeds' rounds of ``epoch`` as one batch (``synth.batched=true``, a synthesizer with
    ``generate_many``): one ensemble rollout and one DM call per iteration over K × B_r trajectories, drawn from
    the first seed's round generator; each seed's share is made by its own policy (``act(obs, deterministic,
    generator, k)``) and filtered into its own buffer. The legal shares, the clipped-state share and the picture are
    over all K × B_r (logged by every seed); each seed's ``seconds`` is the batch's time over K."""
    lead = rounds[0]
    s = lead.synthesizer
    if not s.due(epoch):
        return None
    t0 = time.perf_counter()
    g, n = lead.begin(epoch), lead.share
    acts = [lambda obs, k=k: act(obs, s.deterministic, g, k) for k in range(len(rounds))]
    outs = s.generate_many(acts, n, g)
    seconds = (time.perf_counter() - t0) / len(rounds)
    for r in rounds[1:]:
        r.legal, r.picture = lead.legal, False
    return [r.finish(epoch, new, metrics, seconds, n * len(rounds), log)
            for r, (new, metrics) in zip(rounds, outs, strict=True)]
