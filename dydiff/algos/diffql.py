"""Diffusion-QL (Wang et al., 2023): a 5-step diffusion actor trained with BC + η·Q guidance, twin critics.

actor loss = BC(ε-prediction) + η·(−Q_i(s, π(s)) / mean|Q_j(s, π(s))|), i, j a random order of the two
critics; an EMA copy of the actor (0.995, every 5 updates from update 1000) gives the target actions;
gradient norms are clipped. Evaluation samples 50 actions per state and picks one by softmax over the target
critic's Q, as the reference code does (the paper does not say so); ``act(deterministic=True)`` takes the argmax.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import DiffusionActor, TwinQ
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


class DiffQL(PolicyModule):
    eval_deterministic = False  # the reference evaluation: softmax over Q of 50 sampled actions

    def __init__(self, obs_dim: int, act_dim: int, task: str, discount: float = 0.99, tau: float = 0.005,
                 eta: float = 1.0, lr: float = 3e-4, grad_norm: float = 1.0, diffusion_steps: int = 5,
                 hidden: int = 256, ema_decay: float = 0.995, ema_every: int = 5, ema_start: int = 1000,
                 eval_samples: int = 50, rollout_samples: int = 1, **base):
        super().__init__(obs_dim, act_dim, task, **base)
        self.save_hyperparameters()
        self.actor = DiffusionActor(obs_dim, act_dim, hidden, diffusion_steps)
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = TwinQ(obs_dim, act_dim, hidden, 3, act=nn.Mish)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def configure_optimizers(self):
        return adam(self.actor.parameters(), self.hparams.lr), adam(self.critic.parameters(), self.hparams.lr)

    def policy_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                      member: int = 0) -> torch.Tensor:
        return self.best_of(obs_n, self.hparams.eval_samples, deterministic, generator)

    @torch.no_grad()
    def best_of(self, obs_n: torch.Tensor, k: int, deterministic: bool = True, generator=None) -> torch.Tensor:
        """One of ``k`` sampled actions per state: the argmax of Q, or drawn by softmax over Q."""
        n = len(obs_n)
        rep = obs_n.repeat_interleave(k, 0)
        actions = self.actor(rep, generator)
        q = torch.min(*self.critic_target(rep, actions)).view(n, k)
        pick = q.argmax(1) if deterministic else torch.multinomial(F.softmax(q, 1), 1, generator=generator)[:, 0]
        return actions.view(n, k, -1)[torch.arange(n, device=obs_n.device), pick]

    def rollout_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                       member: int = 0) -> torch.Tensor:
        """Synthetic rollouts: one reverse-diffusion sample per state (the official DyDiff code), 1/50 of the
        evaluation's cost; ``rollout_samples`` > 1 picks among that many by Q, as evaluation does."""
        k = self.hparams.rollout_samples
        return self.actor(obs_n, generator) if k == 1 else self.best_of(obs_n, k, deterministic, generator)

    def critic_loss(self, b: Transitions, g: torch.Generator) -> torch.Tensor:
        obs, nxt = b.obs, b.next_obs
        with torch.no_grad():
            target_q = torch.min(*self.critic_target(nxt, self.actor_ema(nxt, g)))
            target = b.rew + (1 - b.done) * self.hparams.discount * target_q
        q1, q2 = self.critic(obs, b.act)
        return F.mse_loss(q1, target) + F.mse_loss(q2, target)

    def actor_loss(self, b: Transitions, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(BC + η·Q loss, BC loss)."""
        obs = b.obs
        bc = self.actor.loss(obs, b.act, g)
        q1, q2 = self.critic(obs, self.actor(obs, g))
        first = bool(torch.rand((), generator=g, device=self.device) > 0.5)
        q_loss = -q1.mean() / q2.abs().mean().detach() if first else -q2.mean() / q1.abs().mean().detach()
        return bc + self.hparams.eta * q_loss, bc

    def training_step(self, step, batch_idx=None):
        h = self.hparams
        actor_opt, critic_opt = self.optimizers()
        for g, b in self.batches(step):
            loss_c = self.critic_loss(b, g)
            critic_opt.zero_grad()
            self.backprop(loss_c)
            if h.grad_norm > 0:
                nn.utils.clip_grad_norm_(self.critic.parameters(), h.grad_norm)
            critic_opt.step()
            loss_a, bc = self.actor_loss(b, g)
            actor_opt.zero_grad()
            self.backprop(loss_a)
            if h.grad_norm > 0:
                nn.utils.clip_grad_norm_(self.actor.parameters(), h.grad_norm)
            actor_opt.step()
            if self.updates % h.ema_every == 0 and self.updates >= h.ema_start:  # the reference's step_ema
                polyak(self.actor_ema, self.actor, 1 - h.ema_decay)
            polyak(self.critic_target, self.critic, h.tau)
            self.log_train({"train/critic_loss": loss_c, "train/actor_loss": loss_a, "train/bc_loss": bc})
