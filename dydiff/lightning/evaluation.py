"""Evaluation of the policy in the real environment during training, and the run's ``summary.json``."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from dydiff.envs.evaluation import evaluate
from dydiff.envs.registry import Task
from dydiff.io import save_atomic, write_json

STATS = ("return_mean", "return_std", "score_mean", "score_std")


class Evaluator(L.Callback):
    """After every ``every``-th epoch (and the last) run ``episodes`` episodes per seed with ``module.act``, split
    across DDP ranks and gathered; log ``eval/*`` and the progress bar's ``score``; keep every result in the
    checkpoint (``evaluations``) and write ``summary.json`` into each seed's run folder at the end of fit.
    The summary also holds the run's cost: ``updates`` and ``wall_s``, the seconds from fit start to fit end summed
    over resumed sessions (synthesis and evaluation included; shared by the K seeds of a K-seed run).
    Episode seeds are (seed, evaluation index, episode), so every method is evaluated on the same starts.

    ``seeds``/``run_dirs``/``run_infos``: one entry per seed of the module, in member order. A K-seed module
    (``stacked``) runs its K policies in one lock-step batch of K × episodes environments, each seed on its own
    episode seeds; per seed its tags are ``seed<k>/eval/*``, its checkpoint entry ``evaluations/seed<k>``, and each
    checkpoint also writes that seed's policy alone to ``<run_dir>/policy.ckpt`` (for ``load_policy``)."""

    def __init__(self, task: Task, seeds: list[int], episodes: int = 10, every: int = 1,
                 ref_random: float | None = None, ref_expert: float | None = None,
                 run_dirs: list[str | Path | None] | None = None, run_infos: list[dict] | None = None,
                 stacked: bool = False):
        self.task, self.seeds, self.episodes, self.every, self.stacked = task, list(seeds), episodes, every, stacked
        self.ref_random, self.ref_expert = ref_random, ref_expert
        self.run_dirs = [Path(d) if d is not None else None for d in (run_dirs or [None] * len(self.seeds))]
        self.run_infos = run_infos or [{} for _ in self.seeds]
        self.evaluations: list[list[dict]] = [[] for _ in self.seeds]
        self.prefixes = [f"seed{k}/" if stacked else "" for k in self.seeds]
        self.keys = [f"evaluations/seed{k}" if stacked else "evaluations" for k in self.seeds]
        self.wall_before, self.wall_s, self._t0 = 0.0, None, None  # earlier sessions' seconds; the total at fit end

    def elapsed(self) -> float:
        """Seconds of fit so far, earlier sessions included."""
        return self.wall_before + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def on_fit_start(self, trainer, module) -> None:
        self._t0 = time.perf_counter()

    def run(self, trainer, module) -> list[dict]:
        """One evaluation of every seed; under DDP each rank runs its share of each seed's episodes."""
        n, world, rank, k = self.episodes, trainer.world_size, trainer.global_rank, len(self.seeds)
        done = len(self.evaluations[0])
        per = [[s * 100_000 + done * 1000 + i for i in range(rank, n, world)] for s in self.seeds]
        gens = [torch.Generator(device=module.device).manual_seed(done) for _ in self.seeds]  # each seed's own

        def act(obs):  # (K × m, obs_dim), seed-major → each seed's policy on its m environments
            a = module.act(torch.as_tensor(obs).view(k, -1, obs.shape[-1]), module.eval_deterministic, gens, None)
            return a.reshape(len(obs), -1).cpu().numpy()

        res = evaluate(act, self.task, seeds=[s for p in per for s in p], ref_random=self.ref_random,
                       ref_expert=self.ref_expert)
        local = torch.tensor([res.returns, res.scores], dtype=torch.float64, device=module.device).view(2, k, -1)
        if world > 1:
            pad = torch.full((2, k, -(-n // world)), float("nan"), dtype=torch.float64, device=module.device)
            pad[..., : local.shape[-1]] = local
            gathered = module.all_gather(pad)  # (world, 2, K, per-rank)
            local = gathered.permute(1, 2, 0, 3).reshape(2, k, -1)
        out = []
        for returns, scores in zip(local[0].cpu().numpy(), local[1].cpu().numpy(), strict=True):
            returns, scores = returns[~np.isnan(returns)], scores[~np.isnan(scores)]
            out.append({"epoch": trainer.current_epoch, "updates": module.updates,
                        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
                        "score_mean": float(scores.mean()), "score_std": float(scores.std())})
        return out

    def on_train_epoch_end(self, trainer, module) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every and epoch + 1 != trainer.max_epochs:
            return
        for seed, prefix, evals, ev in zip(self.seeds, self.prefixes, self.evaluations, self.run(trainer, module),
                                           strict=True):
            evals.append(ev)
            module.scalars({f"{prefix}eval/{k}": ev[k] for k in STATS})
            module.log(f"score{seed}" if self.stacked else "score", ev["score_mean"], prog_bar=True, logger=False,
                       batch_size=1, rank_zero_only=True)

    def summary(self, member: int = 0) -> dict:
        """The paper's protocol: the mean of the last 5 evaluations; also the best and all of them."""
        evals = self.evaluations[member]
        scores = [e["score_mean"] for e in evals]
        return {**self.run_infos[member], "last5_score_mean": float(np.mean(scores[-5:])) if scores else None,
                "best_score": max(scores) if scores else None, "updates": evals[-1]["updates"] if evals else 0,
                "wall_s": round(self.wall_s if self.wall_s is not None else self.elapsed(), 1), "evaluations": evals}

    def on_fit_end(self, trainer, module) -> None:
        self.wall_s = self.elapsed()
        for m, d in enumerate(self.run_dirs):
            if d is not None and trainer.global_rank == 0:
                write_json(d / "summary.json", self.summary(m), indent=1)

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["wall_s"] = self.elapsed()
        for m, (key, evals, d) in enumerate(zip(self.keys, self.evaluations, self.run_dirs, strict=True)):
            checkpoint[key] = evals
            if self.stacked and d is not None and trainer.global_rank == 0:
                hp = {**checkpoint["hyper_parameters"], "seed": self.seeds[m]}
                save_atomic({"algo": type(module).__name__.lower(), "updates": module.updates,
                             "epoch": checkpoint["epoch"], "hyper_parameters": hp,
                             "state_dict": module.member_state(m), "evaluations": evals}, d / "policy.ckpt")

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        self.evaluations = [list(checkpoint[key]) for key in self.keys]
        self.wall_before = float(checkpoint.get("wall_s", 0.0))
