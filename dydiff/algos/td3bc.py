"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term, π = argmax λ·Q(s, π(s)) − (π(s) − a)²,
λ = α / mean|Q|. States are normalised with the dataset's mean and std (+1e-3), at evaluation too.

The networks are ``Stacked``: K seeds' actors are K members and their twin critics 2K, so K independent runs
(``PolicyModule.stacked``) train as one batched model. Batches are (K, B, ·); every loss is the sum over seeds
of each seed's own loss, so each seed's gradients are its single-seed run's. A single-seed run is K = 1."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import Stacked, TwinQ, mlp
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


class TD3BC(PolicyModule):
    stackable = True

    def __init__(self, obs_dim: int, act_dim: int, task: str, alpha: float = 2.5, discount: float = 0.99,
                 tau: float = 0.005, policy_noise: float = 0.2, noise_clip: float = 0.5, policy_freq: int = 2,
                 actor_lr: float = 3e-4, critic_lr: float = 3e-4, hidden: int = 256, **base):
        super().__init__(obs_dim, act_dim, task, **base)
        self.save_hyperparameters()
        # the draws of the separate-module layout, in its order (actor, then q1, q2); its checkpoints load
        self.actor = Stacked([mlp(obs_dim, act_dim, hidden, 2)], nn.Tanh(), legacy=["0."])
        self.critic = TwinQ(obs_dim, act_dim, hidden, 2)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_target.requires_grad_(False)
        self.critic_target.requires_grad_(False)

    def configure_optimizers(self):
        return adam(self.actor.parameters(), self.hparams.actor_lr), adam(self.critic.parameters(),
                                                                            self.hparams.critic_lr)

    def policy_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                      member: int | None = 0) -> torch.Tensor:
        """Seed ``member``'s actions for observations (B, obs_dim); ``None``: every seed's, (K, B, ·) → (K, B, ·)."""
        return self.actor(obs_n) if member is None else self.actor(obs_n, slice(member, member + 1))[0]

    def target_noise(self, b: Transitions, gens: list[torch.Generator]) -> torch.Tensor:
        """Target policy smoothing noise (std 0.2, clipped at 0.5), each seed's from its own generator."""
        h = self.hparams
        noise, = self.per_seed(gens, lambda g: [torch.randn(b.act.shape[1:], generator=g, device=self.device)])
        return (noise * h.policy_noise).clamp(-h.noise_clip, h.noise_clip)

    def critic_loss(self, b: Transitions, noise: torch.Tensor) -> torch.Tensor:
        """Clipped double-Q target with target policy smoothing; Σ over seeds of MSE(Q₁, y) + MSE(Q₂, y). A pure
        function of the parameters, the batch and the noise (what ``compile=true`` compiles)."""
        h = self.hparams
        with torch.no_grad():
            next_act = (self.actor_target(b.next_obs) + noise).clamp(-1.0, 1.0)
            q_next = self.critic_target.both(b.next_obs, next_act).min(1).values
            target = b.rew + h.discount * (1 - b.done) * q_next
        return (self.critic.both(b.obs, b.act) - target[:, None]).pow(2).mean(-1).sum()

    def actor_loss(self, b: Transitions) -> torch.Tensor:
        """Σ over seeds of −λ·mean Q₁(s, π(s)) + MSE(π(s), a), λ = α / mean|Q₁| (detached), per seed."""
        pi = self.actor(b.obs)
        q = self.critic.q1(b.obs, pi)  # each seed's Q₁: (K, B)
        lam = self.hparams.alpha / q.abs().mean(-1).detach()
        return (-lam * q.mean(-1) + (pi - b.act).pow(2).mean((1, 2))).sum()

    def training_step(self, step, batch_idx=None):
        actor_opt, critic_opt = self.optimizers()
        critic_loss, actor_loss = self.fns.critic_loss, self.fns.actor_loss
        for gens, b in self.batches(step):
            loss_c = critic_loss(b, self.target_noise(b, gens))
            critic_opt.zero_grad()
            self.backprop(loss_c)
            critic_opt.step()
            logs = {"train/critic_loss": loss_c}
            if self.updates % self.hparams.policy_freq == 0:
                loss_a = actor_loss(b)
                actor_opt.zero_grad()
                self.backprop(loss_a)
                actor_opt.step()
                polyak(self.critic_target, self.critic, self.hparams.tau)
                polyak(self.actor_target, self.actor, self.hparams.tau)
                logs["train/actor_loss"] = loss_a
            self.log_train(logs)
