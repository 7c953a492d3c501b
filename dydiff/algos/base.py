"""What the three offline algorithms share: on-device batches, the update counter, evaluation, checkpoints.

A subclass implements ``critic_loss``, ``actor_loss``, ``configure_optimizers``, ``training_step`` (the only
place optimisers step) and ``policy_action``. ``act(obs, deterministic)`` works on batched raw observations.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from dydiff.data.dataset import Transitions
from dydiff.envs.evaluation import evaluate
from dydiff.envs.registry import get_task
from dydiff.lightning.trainer import Steps, save_atomic
from dydiff.synthesis import Synthesizer, SyntheticBuffer


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


class PolicyModule(L.LightningModule):
    automatic_optimization = False
    eval_deterministic = True  # how evaluation acts

    def __init__(self, obs_dim: int, act_dim: int, task: str, obs_mean: list | None = None,
                 obs_std: list | None = None, batch_size: int = 256, steps_per_epoch: int = 1000, seed: int = 0,
                 eval_every: int = 1, eval_episodes: int = 10, ref_random: float | None = None,
                 ref_expert: float | None = None, real_ratio: float = 1.0, updates_per_step: int = 1):
        super().__init__()
        # the shared settings (a subclass's save_hyperparameters() records only those passed explicitly)
        self.cfg = SimpleNamespace(obs_dim=obs_dim, act_dim=act_dim, task=task, batch_size=batch_size,
                                   steps_per_epoch=steps_per_epoch, seed=seed,
                                   eval_every=eval_every, eval_episodes=eval_episodes, ref_random=ref_random,
                                   ref_expert=ref_expert, real_ratio=real_ratio,
                                   updates_per_step=updates_per_step)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean or [0.0] * obs_dim, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std or [1.0] * obs_dim, dtype=torch.float32))
        self.updates = 0  # gradient updates (Lightning's global_step counts every optimizer step)
        self.evaluations: list[dict] = []
        self.real: Transitions | None = None
        self.synthetic: SyntheticBuffer | None = None  # synthetic transitions (raw units), mixed in by α
        self.synthesizer: Synthesizer | None = None  # fills it at the start of due epochs
        self.synth_trajectories = 0  # B_r over all ranks
        self.run_dir: Path | None = None
        self.run_info: dict = {}  # what the run was (dataset, algo, synth settings, seed): copied into summary.json
        self._fast_backward: bool | None = None

    # ---- data --------------------------------------------------------------------------------
    def attach_data(self, real: Transitions) -> None:
        """The real transitions (raw units). They are kept on the device with observations normalised once."""
        self.real = real
        self._real_n = None

    def attach_synthesizer(self, synthesizer: Synthesizer, trajectories: int, capacity: int) -> None:
        """Synthesise ``trajectories`` (B_r, split across DDP ranks) at the start of every due epoch into a
        FIFO buffer of ``capacity`` transitions per rank."""
        self.synthesizer, self.synth_trajectories = synthesizer, trajectories
        self.synthetic = SyntheticBuffer(capacity, self.cfg.obs_dim, self.cfg.act_dim) if self.synthetic is None \
            else self.synthetic

    def on_fit_start(self) -> None:
        if self.synthesizer is not None:
            self.synthesizer.to(self.device)
            self.synthesizer.rank, self.synthesizer.world = self.global_rank, self.trainer.world_size
        if self.synthetic is not None:
            self.synthetic.to(self.device)
        self._prepare_real()

    def _prepare_real(self) -> None:
        r = Transitions(*(t.to(self.device) for t in self.real))
        self._real_n = r._replace(obs=self.norm(r.obs), next_obs=self.norm(r.next_obs)).pack()

    def train_dataloader(self):
        """One Lightning step runs ``updates_per_step`` updates: Lightning's per-step hooks (~0.3 ms) are paid
        once per k updates. The updates, their randomness and their order do not depend on k."""
        return Steps(-(-self.cfg.steps_per_epoch // self.cfg.updates_per_step))

    def batches(self, step: int):
        """The (generator, batch) of each update of Lightning step ``step``; the update counter advances after
        each one's body has run."""
        k = self.cfg.updates_per_step
        for _ in range(min(k, self.cfg.steps_per_epoch - step * k)):
            g = self.generator()
            yield g, self.sample_batch(g)
            self.updates += 1

    def generator(self) -> torch.Generator:
        """Randomness of update k: seeded by (seed, rank, k), so a resumed run repeats an uninterrupted one."""
        if getattr(self, "_gen", None) is None or self._gen.device != self.device:
            self._gen = torch.Generator(device=self.device)
        return self._gen.manual_seed(self.cfg.seed * 1_000_003 + self.global_rank * 7919 + self.updates)

    def on_train_epoch_start(self) -> None:
        """One synthesis round (DyDiff: Algorithm 1 lines 4-12) into the synthetic buffer, when due."""
        s = self.synthesizer
        if s is None or not s.due(self.current_epoch):
            return
        t0 = time.perf_counter()
        g = torch.Generator(device=self.device).manual_seed(
            (self.cfg.seed * 1_000_003 + self.global_rank * 7919 + self.current_epoch) ^ 0x5EED)
        n = -(-self.synth_trajectories // self.trainer.world_size)  # this rank's share of B_r
        every = getattr(s, "figure_every", 0)
        picture = bool(every) and self.global_rank == 0 and get_task(self.cfg.task).is_maze and \
            ((self.current_epoch - s.start_epoch) // s.every) % every == 0
        s.record_xy = 32 if picture else 0
        new, metrics = s.generate(lambda obs: self.act(obs, s.deterministic, g), n, g)
        self.synthetic.push(new)
        metrics.update(seconds=time.perf_counter() - t0, buffer_size=len(self.synthetic))
        self.scalars({f"synth/{k}": v for k, v in metrics.items()})
        if picture and s.history and isinstance(self.logger, TensorBoardLogger):
            self.log_maze_image(s.history, metrics, n)

    def log_maze_image(self, history: list, metrics: dict, n: int) -> None:
        """Figs. 8-9 in TensorBoard: this round's first trajectories over the walls, before and after each
        refinement iteration, titled with the legal count over all ``n`` of the round's trajectories."""
        from dydiff import figures

        legal = [round(metrics[f"legal_share_iter{m}"] * n) for m in range(len(history))]
        fig = figures.maze_trajectories(get_task(self.cfg.task).grid, history, legal,
                                        title=f"epoch {self.current_epoch}: {len(history[0])} trajectories "
                                              f"(legal counts of {n})")
        self.logger.experiment.add_image("synth/maze_trajectories", figures.to_image(fig), self.updates,
                                         dataformats="HWC")

    def sample_batch(self, g: torch.Generator) -> Transitions:
        """⌊αB⌋ real transitions and the rest synthetic once the synthetic buffer holds that share, else all real.
        Observations come normalised (the policy's input space); actions, rewards and done as stored."""
        b = self.cfg.batch_size
        n_real = b
        if self.synthetic is not None and len(self.synthetic) >= b - int(self.cfg.real_ratio * b):
            n_real = int(self.cfg.real_ratio * b)
        if self._real_n is None:  # outside a Trainer (tests, notebooks)
            self._prepare_real()
        idx = torch.randint(len(self._real_n), (n_real,), generator=g, device=self.device)
        rows = self._real_n[idx]  # one gather for all five fields
        if n_real < b:
            syn = self.synthetic.sample(b - n_real, g)  # raw units
            syn = syn._replace(obs=self.norm(syn.obs), next_obs=self.norm(syn.next_obs))
            rows = torch.cat([rows, syn.pack()])
        batch = Transitions.unpack(rows, self.cfg.obs_dim, self.cfg.act_dim)
        return batch

    def backprop(self, loss: torch.Tensor, **kw) -> None:
        """``loss.backward()`` on one device in fp32/bf16, where Lightning's ``manual_backward`` adds only hook
        dispatch (~0.1 ms, a few % of an update); ``manual_backward`` elsewhere (DDP, fp16 loss scaling).
        Callbacks' on_before/after_backward hooks therefore do not run on the fast path."""
        if self._fast_backward is None:
            t = self._trainer
            self._fast_backward = t is None or (t.world_size == 1 and "16-mixed" != t.precision)
        if self._fast_backward:
            loss.backward(**kw)
        else:
            self.manual_backward(loss, **kw)

    def log_train(self, metrics: dict) -> None:
        """Training losses to TensorBoard every 50 updates, against the update counter (logging every update
        would cost more than the update itself)."""
        if self.updates % 50 == 0:
            self.scalars(metrics)

    def scalars(self, metrics: dict) -> None:
        """Write scalars to TensorBoard on rank 0 with the update counter as the step."""
        if self.global_rank == 0 and isinstance(self.logger, TensorBoardLogger):
            for k, v in metrics.items():
                self.logger.experiment.add_scalar(k, float(v.detach() if torch.is_tensor(v) else v), self.updates)

    def norm(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    # ---- acting and evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator=None) -> torch.Tensor:
        """Actions (B, act_dim) in [−1, 1] for raw observations (B, obs_dim)."""
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.policy_action(self.norm(obs), deterministic, generator)

    def run_evaluation(self) -> dict:
        """Evaluate in the real environment; under DDP each rank runs its share of the episodes."""
        n, world, rank = self.cfg.eval_episodes, self.trainer.world_size, self.global_rank
        seeds = [self.cfg.seed * 100_000 + len(self.evaluations) * 1000 + i for i in range(rank, n, world)]
        g = torch.Generator(device=self.device).manual_seed(len(self.evaluations))
        act = lambda o: self.act(o, self.eval_deterministic, g).cpu().numpy()  # noqa: E731
        res = evaluate(act, get_task(self.cfg.task), seeds=seeds, ref_random=self.cfg.ref_random,
                       ref_expert=self.cfg.ref_expert)
        local = torch.tensor([res.returns, res.scores], dtype=torch.float64, device=self.device)
        if world > 1:
            pad = torch.full((2, -(-n // world)), float("nan"), dtype=torch.float64, device=self.device)
            pad[:, : local.shape[1]] = local
            gathered = self.all_gather(pad)  # (world, 2, per-rank)
            local = gathered.permute(1, 0, 2).reshape(2, -1)
            local = local[:, ~torch.isnan(local[0])]
        returns, scores = local[0].cpu().numpy(), local[1].cpu().numpy()
        return {"epoch": self.current_epoch, "updates": self.updates, "return_mean": float(returns.mean()),
                "return_std": float(returns.std()), "score_mean": float(scores.mean()),
                "score_std": float(scores.std())}

    def on_train_epoch_end(self) -> None:
        if (self.current_epoch + 1) % self.cfg.eval_every and self.current_epoch + 1 != self.trainer.max_epochs:
            return
        ev = self.run_evaluation()
        self.evaluations.append(ev)
        self.scalars({f"eval/{k}": ev[k] for k in ("return_mean", "return_std", "score_mean", "score_std")})
        self.log("score", ev["score_mean"], prog_bar=True, logger=False, batch_size=1, rank_zero_only=True)

    def summary(self) -> dict:
        """The paper's protocol: the mean of the last 5 evaluations; also the best and all of them."""
        scores = [e["score_mean"] for e in self.evaluations]
        return {**self.run_info, "last5_score_mean": float(np.mean(scores[-5:])) if scores else None,
                "best_score": max(scores) if scores else None, "evaluations": self.evaluations}

    def on_fit_end(self) -> None:
        if self.run_dir is not None and self.global_rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "summary.json").write_text(json.dumps(self.summary(), indent=1))

    # ---- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["algo"] = type(self).__name__.lower()
        checkpoint["updates"] = self.updates
        checkpoint["evaluations"] = self.evaluations
        if self.synthetic is not None:  # saved with the policy, so a resumed run regenerates nothing
            if self.global_rank == 0:
                checkpoint["synthetic"] = self.synthetic.state_dict()
            elif self.run_dir is not None:  # DDP: every rank keeps its own share, beside the checkpoint
                save_atomic(self.synthetic.state_dict(), self.run_dir / f"synthetic-rank{self.global_rank}.pt")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.updates = checkpoint["updates"]
        self.evaluations = checkpoint["evaluations"]
        if "synthetic" in checkpoint:
            st = checkpoint["synthetic"]
            own = self.run_dir / f"synthetic-rank{self.global_rank}.pt" if self.run_dir is not None else None
            if self.global_rank > 0 and own is not None and own.exists():
                st = torch.load(own, map_location="cpu", weights_only=True)
            if self.synthetic is None:
                self.synthetic = SyntheticBuffer(st["capacity"], self.cfg.obs_dim, self.cfg.act_dim)
            self.synthetic.load_state_dict(st)
