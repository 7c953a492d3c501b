"""CQL (Kumar et al., 2020), SAC-based, as in CORL's reference implementation: the critic's TD loss plus
α'·(logsumexp_a Q(s, a) − Q(s, a_data)) over 10 random, current-policy and next-policy actions with importance
sampling; automatic entropy tuning; optional Lagrange tuning of α' towards a target gap."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import TanhGaussianActor, TwinQ
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


class CQL(PolicyModule):
    def __init__(self, obs_dim: int, act_dim: int, task: str, discount: float = 0.99, tau: float = 0.005,
                 policy_lr: float = 3e-5, critic_lr: float = 3e-4, alpha_lr: float = 3e-5, hidden: int = 256,
                 layers: int = 3, orthogonal_init: bool = True, actor_orthogonal: bool = False,
                 log_std_affine: bool = True, corl_order: bool = True, n_actions: int = 10, cql_weight: float = 10.0,
                 temperature: float = 1.0, importance_sample: bool = True, lagrange: bool = False,
                 target_action_gap: float = -1.0, backup_entropy: bool = False, target_entropy: float | None = None,
                 **base):
        super().__init__(obs_dim, act_dim, task, **base)
        self.save_hyperparameters()
        self.actor = TanhGaussianActor(obs_dim, act_dim, hidden, layers, actor_orthogonal,
                                       log_std_affine=log_std_affine, small_last=not actor_orthogonal)
        self.critic = TwinQ(obs_dim, act_dim, hidden, layers, orthogonal=orthogonal_init)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.zeros(()))
        self.log_alpha_prime = torch.nn.Parameter(torch.ones(()))  # CORL starts α' = e¹
        self.target_entropy = -float(act_dim) if target_entropy is None else target_entropy

    def configure_optimizers(self):
        h = self.hparams
        return (adam(self.actor.parameters(), h.policy_lr), adam(self.critic.parameters(), h.critic_lr),
                adam([self.log_alpha], h.alpha_lr), adam([self.log_alpha_prime], h.critic_lr))

    def policy_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                      member: int = 0) -> torch.Tensor:
        return self.actor(obs_n, generator, deterministic)[0]

    def actor_loss(self, obs_n: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy loss α·log π − min Q(s, π(s)), entropy-temperature loss)."""
        pi, log_pi = self.actor(obs_n, g)
        alpha = self.log_alpha.exp().detach()
        q = torch.min(*self.critic(obs_n, pi))
        alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()
        return (alpha * log_pi - q).mean(), alpha_loss

    def conservative_gap(self, obs_n: torch.Tensor, next_n: torch.Tensor, q_data: tuple, g: torch.Generator):
        """Per critic: logsumexp over OOD actions (importance-sampled) of Q, minus Q on the data, batch mean. The
        random, current-policy and next-policy actions go through both critics in one batched call."""
        h, (b, a_dim) = self.hparams, (len(obs_n), self.hparams.act_dim)
        rep = lambda x: x.repeat_interleave(h.n_actions, 0)  # noqa: E731
        rand = torch.rand(b * h.n_actions, a_dim, generator=g, device=self.device) * 2 - 1
        with torch.no_grad():
            cur, cur_lp = self.actor(rep(obs_n), g)
            nxt, nxt_lp = self.actor(rep(next_n), g)
        qs = [q.view(3, b, h.n_actions) for q in self.critic(rep(obs_n).repeat(3, 1), torch.cat([rand, nxt, cur]))]
        gaps = []
        for (q_rand, q_nxt, q_cur), q_d in zip(qs, q_data, strict=True):
            if h.importance_sample:
                parts = [q_rand - a_dim * math.log(0.5), q_nxt - nxt_lp.view(b, -1), q_cur - cur_lp.view(b, -1)]
            else:
                parts = [q_rand, q_d[:, None], q_nxt, q_cur]
            ood = torch.logsumexp(torch.cat(parts, 1) / h.temperature, 1) * h.temperature
            gaps.append((ood - q_d).mean())
        return gaps

    def critic_loss(self, b: Transitions, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(TD loss + α'·conservative gaps, Lagrange loss for α')."""
        h = self.hparams
        obs_n, next_n = b.obs, b.next_obs
        with torch.no_grad():
            next_a, next_lp = self.actor(next_n, g)
            target_q = torch.min(*self.critic_target(next_n, next_a))
            if h.backup_entropy:
                target_q = target_q - self.log_alpha.exp() * next_lp
            target = b.rew + (1 - b.done) * h.discount * target_q
        q_data = self.critic(obs_n, b.act)
        td = F.mse_loss(q_data[0], target) + F.mse_loss(q_data[1], target)
        gaps = self.conservative_gap(obs_n, next_n, q_data, g)
        if h.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            terms = [alpha_prime * h.cql_weight * (gap - h.target_action_gap) for gap in gaps]
            prime_loss = -0.5 * (terms[0] + terms[1])
        else:
            terms, prime_loss = [h.cql_weight * gap for gap in gaps], None
        return td + terms[0] + terms[1], prime_loss

    def training_step(self, step, batch_idx=None):
        """CORL's order: the policy, temperature and critic losses from the same actor, then the steps (temperature,
        actor, critic). ``corl_order=False``: the critic loss after the actor's step (this project's earlier order)."""
        actor_opt, critic_opt, alpha_opt, prime_opt = self.optimizers()
        for g, b in self.batches(step):
            loss_a, loss_alpha = self.actor_loss(b.obs, g)
            if self.hparams.corl_order:
                loss_c, loss_prime = self.critic_loss(b, g)
            alpha_opt.zero_grad()
            self.backprop(loss_alpha)
            alpha_opt.step()
            actor_opt.zero_grad()
            self.backprop(loss_a)
            actor_opt.step()
            if not self.hparams.corl_order:
                loss_c, loss_prime = self.critic_loss(b, g)
            if loss_prime is not None:
                prime_opt.zero_grad()
                self.backprop(loss_prime, retain_graph=True)
                prime_opt.step()
            critic_opt.zero_grad()
            self.backprop(loss_c)
            critic_opt.step()
            polyak(self.critic_target, self.critic, self.hparams.tau)
            self.log_train({"train/critic_loss": loss_c, "train/actor_loss": loss_a,
                            "train/alpha": self.log_alpha.exp().detach()})
