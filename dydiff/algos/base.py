"""What the three offline algorithms share: on-device batches, the update counter, acting, the backward.

A subclass implements ``critic_loss``, ``actor_loss``, ``configure_optimizers``, ``training_step`` (the only
place optimisers step) and ``policy_action``. The two losses are pure functions of the parameters, the batch and
random draws made beforehand (``per_seed``), so ``compile=true`` runs them through ``torch.compile``
(``self.fns``). ``act(obs, deterministic)`` works on batched raw observations.
Synthetic data comes from an attached ``SynthesisRound`` (run at the start of each epoch); evaluation and
``summary.json`` are the ``dydiff.lightning.evaluation.Evaluator`` callback.

Several seeds as one model: a ``stackable`` algorithm keeps its networks as ``Stacked`` members, and
``stacked(seeds, **kw)`` joins K single-seed modules, each built as its own run would build it. Seed k (its
``member`` index) keeps its own generator stream, synthesis round and buffer; batches are (K, B, ·).
"""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import torch

from dydiff.algos.networks import Stacked
from dydiff.lightning.logging import TensorBoardLogging
from dydiff.lightning.trainer import Steps
from dydiff.synthesis.round import SynthesisRound, run_batched
from dydiff.types import Transitions, stream_seed


class PolicyModule(TensorBoardLogging, L.LightningModule):
    automatic_optimization = False
    eval_deterministic = True  # how evaluation acts
    stackable = False  # True: every parameter lives in a Stacked network, so K seeds train as one model
    seed_parameters: tuple[str, ...] = ()  # parameters outside Stacked networks with one entry per seed (dim 0)

    def __init__(self, obs_dim: int, act_dim: int, task: str, obs_mean: list | None = None,
                 obs_std: list | None = None, batch_size: int = 256, steps_per_epoch: int = 1000, seed: int = 0,
                 real_ratio: float = 1.0, updates_per_step: int = 1, compile: bool = False):
        super().__init__()
        # the shared settings (a subclass's save_hyperparameters() records only those passed explicitly)
        self.cfg = SimpleNamespace(obs_dim=obs_dim, act_dim=act_dim, task=task, batch_size=batch_size,
                                   steps_per_epoch=steps_per_epoch, seed=seed, real_ratio=real_ratio,
                                   updates_per_step=updates_per_step, seeds=[seed], compile=compile)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean or [0.0] * obs_dim, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std or [1.0] * obs_dim, dtype=torch.float32))
        self.updates = 0  # gradient updates (Lightning's global_step counts every optimizer step)
        self.real: Transitions | None = None
        self.rounds: list[SynthesisRound] = []  # one per seed: fills its buffer at the start of due epochs
        self._real_n = self._fast_backward = None
        self._gens: list[torch.Generator] = []

    @classmethod
    def stacked(cls, seeds: list[int], **kw) -> PolicyModule:
        """K independent runs as one module: run k's module is built under ``torch.manual_seed(seeds[k])`` with
        ``seed=seeds[k]`` (its single-seed run's initial weights), and every Stacked network's members are
        concatenated in seed order."""
        if len(set(seeds)) != len(seeds) or not seeds:
            raise ValueError(f"seeds={seeds}: must be distinct, and at least one")
        if len(seeds) > 1 and not cls.stackable:
            raise ValueError(f"{cls.__name__} trains one seed per process (it is not stackable)")
        modules = []
        for s in seeds:
            torch.manual_seed(s)
            modules.append(cls(seed=s, **kw))
        m = modules[0]
        assert len(modules) == 1 or {n for n, _ in m.named_parameters()} <= m.stacked_names(), \
            f"{cls.__name__}: a stackable module keeps every parameter in Stacked networks"
        if len(modules) > 1:
            params = [dict(x.named_parameters()) for x in modules]
            with torch.no_grad():
                for name, p in params[0].items():
                    p.data = torch.cat([ps[name] for ps in params])
        m.cfg.seeds = list(seeds)
        return m

    def stacked_names(self) -> set[str]:
        """The state_dict names of the parameters that live in Stacked networks or have one entry per seed."""
        return {f"{n}.{p}" for n, mod in self.named_modules() if isinstance(mod, Stacked)
                for p, _ in mod.named_parameters()} | set(self.seed_parameters) & dict(self.named_parameters()).keys()

    @property
    def members(self) -> int:
        return len(self.cfg.seeds)

    def member_state(self, k: int) -> dict:
        """Seed k's state_dict in the single-seed layout (every Stacked parameter's k-th share of members)."""
        stacked, out = self.stacked_names(), {}
        for name, t in self.state_dict().items():
            if name in stacked:
                n = len(t) // self.members
                t = t[k * n:(k + 1) * n]
            out[name] = t.detach().clone()
        return out

    # ---- data --------------------------------------------------------------------------------
    def attach_data(self, real: Transitions) -> None:
        """The real transitions (raw units). They are kept on the device with observations normalised once."""
        self.real, self._real_n = real, None

    def attach_round(self, synthesis: SynthesisRound) -> None:
        """Synthetic data (raw units), mixed into every batch by α once the buffer holds a batch's share. With K
        seeds, attach one round per seed, in seed order."""
        self.rounds.append(synthesis)

    def synthetic(self, member: int = 0):
        return self.rounds[member].buffer if self.rounds else None

    def on_fit_start(self) -> None:
        for r in self.rounds:
            r.setup(self.device, self.global_rank, self.trainer.world_size)
        self._prepare_real()
        fns = {n: getattr(self, n) for n in ("critic_loss", "actor_loss")}
        self.fns = SimpleNamespace(**{n: torch.compile(f) if self.cfg.compile else f for n, f in fns.items()})

    def _prepare_real(self) -> None:
        r = Transitions(*(t.to(self.device) for t in self.real))
        self._real_n = r._replace(obs=self.norm(r.obs), next_obs=self.norm(r.next_obs)).pack()

    def on_train_epoch_start(self) -> None:
        """One synthesis round (DyDiff: Algorithm 1 lines 4-12) into the synthetic buffer, when due."""
        act = lambda obs, det, g, k: self.rollout_act(obs, det, g, member=k)  # noqa: E731
        if len(self.rounds) > 1 and self.rounds[0].batched:  # synth.batched=true: the K seeds' rounds as one batch
            run_batched(self.rounds, self.current_epoch, act, self)
            return
        for k, r in enumerate(self.rounds):
            r.run(self.current_epoch, lambda obs, det, g, k=k: act(obs, det, g, k), self)

    def train_dataloader(self):
        """One Lightning step runs ``updates_per_step`` updates: Lightning's per-step hooks (~0.3 ms) are paid
        once per k updates. The updates, their randomness and their order do not depend on k."""
        return Steps(-(-self.cfg.steps_per_epoch // self.cfg.updates_per_step))

    def batches(self, step: int):
        """The (generator, batch) of each update of Lightning step ``step``; the update counter advances after
        each one's body has run. A stackable module gets each seed's generator and the seeds' batches stacked,
        (K, B, ·), each drawn as its single-seed run draws it."""
        k = self.cfg.updates_per_step
        for _ in range(min(k, self.cfg.steps_per_epoch - step * k)):
            if self.stackable:
                gens = [self.generator(m) for m in range(self.members)]
                b = [self.sample_batch(g, m) for m, g in enumerate(gens)]
                yield gens, Transitions(*(f[0][None] if len(f) == 1 else torch.stack(f) for f in zip(*b, strict=True)))
            else:
                g = self.generator()
                yield g, self.sample_batch(g)
            self.updates += 1

    def generator(self, member: int = 0) -> torch.Generator:
        """Randomness of update k: seeded by (seed, rank, k), so a resumed run repeats an uninterrupted one."""
        while len(self._gens) <= member:
            self._gens.append(torch.Generator(device=self.device))
        if self._gens[member].device != self.device:
            self._gens[member] = torch.Generator(device=self.device)
        return self._gens[member].manual_seed(stream_seed(self.cfg.seeds[member], self.global_rank, self.updates))

    def sample_batch(self, g: torch.Generator, member: int = 0) -> Transitions:
        """⌊αB⌋ real transitions and the rest synthetic once the synthetic buffer holds that share, else all real.
        Observations come normalised (the policy's input space); actions, rewards and done as stored."""
        b, syn_buf = self.cfg.batch_size, self.synthetic(member)
        n_real = b
        if syn_buf is not None and len(syn_buf) >= b - int(self.cfg.real_ratio * b):
            n_real = int(self.cfg.real_ratio * b)
        if self._real_n is None:  # outside a Trainer (tests, notebooks)
            self._prepare_real()
        idx = torch.randint(len(self._real_n), (n_real,), generator=g, device=self.device)
        rows = self._real_n[idx]  # one gather for all five fields
        if n_real < b:
            syn = syn_buf.sample(b - n_real, g)  # raw units
            syn = syn._replace(obs=self.norm(syn.obs), next_obs=self.norm(syn.next_obs))
            rows = torch.cat([rows, syn.pack()])
        return Transitions.unpack(rows, self.cfg.obs_dim, self.cfg.act_dim)

    def norm(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    @staticmethod
    def per_seed(gens: list[torch.Generator], draw) -> list[torch.Tensor]:
        """An update's random draws made before its losses: ``draw(g)`` → one seed's list of tensors, from its own
        generator in its single-seed run's order; each stacked over the seeds, (K, ...)."""
        return [torch.stack(d) for d in zip(*(draw(g) for g in gens), strict=True)]

    # ---- updates ----------------------------------------------------------------------------
    def backprop(self, loss: torch.Tensor, **kw) -> None:
        """``loss.backward()`` on one device in fp32/bf16 (``manual_backward`` adds only ~0.1 ms of hook dispatch, so
        callbacks' backward hooks do not run there); ``manual_backward`` under DDP and fp16 loss scaling."""
        if self._fast_backward is None:
            t = self._trainer
            self._fast_backward = t is None or (t.world_size == 1 and "16-mixed" != t.precision)
        if self._fast_backward:
            loss.backward(**kw)
        else:
            self.manual_backward(loss, **kw)

    # ---- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator=None,
            member: int | None = 0) -> torch.Tensor:
        """Seed ``member``'s actions (B, act_dim) in [−1, 1] for raw observations (B, obs_dim); ``member=None``:
        every seed's actions (K, B, act_dim) for its own observations (K, B, obs_dim)."""
        obs_n = self.norm(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        if member is None and not self.stackable:  # one seed
            return self.policy_action(obs_n[0], deterministic, generator)[None]
        return self.policy_action(obs_n, deterministic, generator, member)

    @torch.no_grad()
    def rollout_act(self, obs: torch.Tensor, deterministic: bool = True, generator=None,
                    member: int = 0) -> torch.Tensor:
        """``act`` for synthetic rollouts and relabelling, through ``rollout_action``."""
        return self.rollout_action(self.norm(torch.as_tensor(obs, dtype=torch.float32, device=self.device)),
                                   deterministic, generator, member)

    def rollout_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                       member: int = 0) -> torch.Tensor:
        """How the policy acts in synthetic rollouts: as in evaluation unless an algorithm says otherwise."""
        return self.policy_action(obs_n, deterministic, generator, member)

    # ---- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["algo"] = type(self).__name__.lower()
        checkpoint["updates"] = self.updates
        for r in self.rounds:  # saved with the policy, so a resumed run regenerates nothing
            r.save(checkpoint, self.global_rank)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.updates = checkpoint["updates"]
        for r in self.rounds:
            r.load(checkpoint, self.global_rank)

