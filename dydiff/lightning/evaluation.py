"""Evaluation of the policy in the real environment during training, and the run's ``summary.json``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from dydiff.envs.evaluation import evaluate
from dydiff.envs.registry import Task
from dydiff.io import save_atomic, write_json


class Evaluator(L.Callback):
    """After every ``every``-th epoch (and the last) run ``episodes`` episodes with ``module.act``, split across DDP
    ranks and gathered; log ``eval/*`` and the progress bar's ``score``; keep every result in the checkpoint
    (``evaluations``) and write ``run_dir/summary.json`` at the end of fit. Episode seeds are (seed, evaluation
    index, episode), so every method is evaluated on the same starts."""

    def __init__(self, task: Task, seed: int = 0, episodes: int = 10, every: int = 1, ref_random: float | None = None,
                 ref_expert: float | None = None, run_dir: str | Path | None = None, run_info: dict | None = None,
                 member: int | None = None):
        """``member``: the seed's index in a K-seed module. Its tags are then ``seed<seed>/eval/*``, its checkpoint
        entry ``evaluations/seed<seed>``, and each checkpoint also writes the seed's policy alone to
        ``run_dir/policy.ckpt`` (what ``load_policy`` and ``analyze.py policy=`` read)."""
        self.task, self.seed, self.episodes, self.every, self.member = task, seed, episodes, every, member
        self.prefix, self.key = ("", "evaluations") if member is None else (f"seed{seed}/", f"evaluations/seed{seed}")
        self.ref_random, self.ref_expert = ref_random, ref_expert
        self.run_dir, self.run_info = Path(run_dir) if run_dir is not None else None, run_info or {}
        self.evaluations: list[dict] = []

    def run(self, trainer, module) -> dict:
        """One evaluation; under DDP each rank runs its share of the episodes."""
        n, world, rank = self.episodes, trainer.world_size, trainer.global_rank
        seeds = [self.seed * 100_000 + len(self.evaluations) * 1000 + i for i in range(rank, n, world)]
        g = torch.Generator(device=module.device).manual_seed(len(self.evaluations))
        act = lambda o: module.act(o, module.eval_deterministic, g, self.member or 0).cpu().numpy()  # noqa: E731
        res = evaluate(act, self.task, seeds=seeds, ref_random=self.ref_random, ref_expert=self.ref_expert)
        local = torch.tensor([res.returns, res.scores], dtype=torch.float64, device=module.device)
        if world > 1:
            pad = torch.full((2, -(-n // world)), float("nan"), dtype=torch.float64, device=module.device)
            pad[:, : local.shape[1]] = local
            gathered = module.all_gather(pad)  # (world, 2, per-rank)
            local = gathered.permute(1, 0, 2).reshape(2, -1)
            local = local[:, ~torch.isnan(local[0])]
        returns, scores = local[0].cpu().numpy(), local[1].cpu().numpy()
        return {"epoch": trainer.current_epoch, "updates": module.updates, "return_mean": float(returns.mean()),
                "return_std": float(returns.std()), "score_mean": float(scores.mean()),
                "score_std": float(scores.std())}

    def on_train_epoch_end(self, trainer, module) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every and epoch + 1 != trainer.max_epochs:
            return
        ev = self.run(trainer, module)
        self.evaluations.append(ev)
        module.scalars({f"{self.prefix}eval/{k}": ev[k] for k in ("return_mean", "return_std", "score_mean",
                                                                  "score_std")})
        module.log("score" if self.member is None else f"score{self.seed}", ev["score_mean"], prog_bar=True,
                   logger=False, batch_size=1, rank_zero_only=True)

    def summary(self) -> dict:
        """The paper's protocol: the mean of the last 5 evaluations; also the best and all of them."""
        scores = [e["score_mean"] for e in self.evaluations]
        return {**self.run_info, "last5_score_mean": float(np.mean(scores[-5:])) if scores else None,
                "best_score": max(scores) if scores else None, "evaluations": self.evaluations}

    def on_fit_end(self, trainer, module) -> None:
        if self.run_dir is not None and trainer.global_rank == 0:
            write_json(self.run_dir / "summary.json", self.summary(), indent=1)

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint[self.key] = self.evaluations
        if self.member is not None and self.run_dir is not None and trainer.global_rank == 0:
            hp = {**checkpoint["hyper_parameters"], "seed": self.seed}
            save_atomic({"algo": type(module).__name__.lower(), "updates": module.updates, "epoch": checkpoint["epoch"],
                         "hyper_parameters": hp, "state_dict": module.member_state(self.member),
                         "evaluations": self.evaluations}, self.run_dir / "policy.ckpt")

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        self.evaluations = list(checkpoint[self.key])
