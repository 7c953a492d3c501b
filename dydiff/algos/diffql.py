"""Diffusion-QL (Wang et al., 2023): a 5-step diffusion actor trained with BC + η·Q guidance, twin critics.

actor loss = BC(ε-prediction) + η·(−Q_i(s, π(s)) / mean|Q_j(s, π(s))|), i, j a random order of the two
critics; an EMA copy of the actor (0.995, every 5 updates from update 1000) gives the target actions;
gradient norms are clipped. Evaluation samples 50 actions per state and picks one by softmax over the target
critic's Q, as the reference code does (the paper does not say so); ``act(deterministic=True)`` takes the argmax.

Stackable as TD3+BC is: K seeds' actors (time embedding and ε network) and twin critics are members of ``Stacked``
networks, batches are (K, B, ·), every draw of seed k comes from its own generator in its single-seed order, and
each seed's gradients are clipped by their own norm."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import DiffusionActor, TwinQ
from dydiff.algos.optim import adam, clip_grad_norm, polyak
from dydiff.types import Transitions


class DiffQL(PolicyModule):
    eval_deterministic = False  # the reference evaluation: softmax over Q of 50 sampled actions
    stackable = True

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
                      member: int | None = 0) -> torch.Tensor:
        return self.best_of(obs_n, self.hparams.eval_samples, deterministic, generator, member)

    @torch.no_grad()
    def best_of(self, obs_n: torch.Tensor, k: int, deterministic: bool = True, generator=None,
                member: int | None = 0) -> torch.Tensor:
        """One of ``k`` sampled actions per state: the argmax of Q, or drawn by softmax over Q. Seed ``member``'s
        for (B, obs_dim); ``None``: every seed's for (K, B, obs_dim), ``generator`` then one per seed or shared."""
        flat = member is not None
        seeds = slice(member, member + 1) if flat else slice(None)
        obs = obs_n[None] if flat else obs_n
        (m, n), rep = obs.shape[:2], obs.repeat_interleave(k, 1)
        actions = self.actor(rep, generator, seeds)
        q = self.critic_target.both(rep, actions, seeds).min(1).values.view(m, n, k)
        if deterministic:
            pick = q.argmax(-1)
        else:
            gens = generator if isinstance(generator, list | tuple) else [generator] * m
            pick = torch.stack([torch.multinomial(F.softmax(q_k, -1), 1, generator=g)[:, 0]
                                for q_k, g in zip(q, gens, strict=True)])
        a = actions.view(m, n, k, -1).gather(2, pick[..., None, None].expand(-1, -1, 1, actions.shape[-1]))[:, :, 0]
        return a[0] if flat else a

    def rollout_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                       member: int = 0) -> torch.Tensor:
        """Synthetic rollouts: one reverse-diffusion sample per state (the official DyDiff code), 1/50 of the
        evaluation's cost; ``rollout_samples`` > 1 picks among that many by Q, as evaluation does."""
        k = self.hparams.rollout_samples
        return self.actor(obs_n, generator, slice(member, member + 1)) if k == 1 else \
            self.best_of(obs_n, k, deterministic, generator, member)

    def draws(self, b: Transitions, gens: list) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                                                         torch.Tensor]:
        """Every random draw of one update, before its losses, each seed's from its own generator in its
        single-seed run's order: the EMA actor's sampling noise on s' (target), the BC term's (t, ε), the actor's
        sampling noise on s, the critic order."""
        actor, rows = self.actor, b.obs.shape[1]
        d = self.per_seed(gens, lambda g: [*actor.sample_draws(g, rows), *actor.loss_draws(g, rows),
                                           *actor.sample_draws(g, rows),
                                           torch.rand((), generator=g, device=self.device)])
        n = actor.steps
        return d[:n], d[n:n + 2], d[n + 2:2 * n + 2], d[-1] > 0.5

    def critic_loss(self, b: Transitions, target_noise: list[torch.Tensor]) -> torch.Tensor:
        """Σ over seeds of MSE(Q₁, y) + MSE(Q₂, y), y from the EMA actor's next actions (its noise drawn
        beforehand); (K, B, ·) batches."""
        obs, nxt = b.obs, b.next_obs
        with torch.no_grad():
            target_q = self.critic_target.both(nxt, self.actor_ema(nxt, noise=target_noise)).min(1).values
            target = b.rew + (1 - b.done) * self.hparams.discount * target_q
        return (self.critic.both(obs, b.act) - target[:, None]).pow(2).mean(-1).sum()

    def actor_loss(self, b: Transitions, bc_draws: list[torch.Tensor], noise: list[torch.Tensor],
                   first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ over seeds of BC + η·Q loss, mean BC loss); ``first`` (K,): whether Q₁ is each seed's guiding critic
        (its own random order of the two)."""
        obs = b.obs
        bc = self.actor.loss(obs, b.act, *bc_draws)
        q = self.critic.both(obs, self.actor(obs, noise=noise))
        qi, qj = torch.where(first[:, None], q[:, 0], q[:, 1]), torch.where(first[:, None], q[:, 1], q[:, 0])
        q_loss = -qi.mean(-1) / qj.abs().mean(-1).detach()
        return (bc + self.hparams.eta * q_loss).sum(), bc.detach().mean()

    def training_step(self, step, batch_idx=None):
        h = self.hparams
        actor_opt, critic_opt = self.optimizers()
        for gens, b in self.batches(step):
            target_noise, bc_draws, noise, first = self.draws(b, gens)
            loss_c = self.fns.critic_loss(b, target_noise)
            critic_opt.zero_grad()
            self.backprop(loss_c)
            if h.grad_norm > 0:  # each seed's gradient norm, as its single-seed run clips it
                clip_grad_norm(self.critic.parameters(), h.grad_norm, self.members)
            critic_opt.step()
            loss_a, bc = self.fns.actor_loss(b, bc_draws, noise, first)
            actor_opt.zero_grad()
            self.backprop(loss_a)
            if h.grad_norm > 0:
                clip_grad_norm(self.actor.parameters(), h.grad_norm, self.members)
            actor_opt.step()
            if self.updates % h.ema_every == 0 and self.updates >= h.ema_start:  # the reference's step_ema
                polyak(self.actor_ema, self.actor, 1 - h.ema_decay)
            polyak(self.critic_target, self.critic, h.tau)
            self.log_train({"train/critic_loss": loss_c, "train/actor_loss": loss_a, "train/bc_loss": bc})
