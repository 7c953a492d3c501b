"""CQL (Kumar et al., 2020), SAC-based, as in CORL's reference implementation: the critic's TD loss plus
α'·(logsumexp_a Q(s, a) − Q(s, a_data)) over 10 random, current-policy and next-policy actions with importance
sampling; automatic entropy tuning; optional Lagrange tuning of α' towards a target gap.

Stackable as TD3+BC is: K seeds' actors are K members of one ``Stacked`` network, their twin critics 2K, and log α,
log α' and the actor's log-std affine (m, b) one entry per seed. Batches are (K, B, ·) and every random draw of seed
k comes from its own generator in its single-seed run's order, so each seed's updates are its single-seed run's."""

from __future__ import annotations

import copy
import math

import torch

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import TanhGaussianActor, TwinQ, load_scalars_as
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


class CQL(PolicyModule):
    stackable = True
    seed_parameters = ("log_alpha", "log_alpha_prime", "actor.log_std_multiplier", "actor.log_std_offset")

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
        self.log_alpha = torch.nn.Parameter(torch.zeros(1))  # one per seed
        self.log_alpha_prime = torch.nn.Parameter(torch.ones(1))  # CORL starts α' = e¹
        self.target_entropy = -float(act_dim) if target_entropy is None else target_entropy
        load_scalars_as(self, ("log_alpha", "log_alpha_prime"), (1,))

    def configure_optimizers(self):
        h = self.hparams
        return (adam(self.actor.parameters(), h.policy_lr), adam(self.critic.parameters(), h.critic_lr),
                adam([self.log_alpha], h.alpha_lr), adam([self.log_alpha_prime], h.critic_lr))

    def policy_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None,
                      member: int | None = 0) -> torch.Tensor:
        """Seed ``member``'s actions for observations (B, obs_dim); ``None``: every seed's, (K, B, ·) → (K, B, ·)."""
        members = slice(None) if member is None else slice(member, member + 1)
        return self.actor(obs_n, generator, deterministic, members)[0]

    def actor_loss(self, obs_n: torch.Tensor, gens: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ over seeds of (policy loss α·log π − min Q(s, π(s)), entropy-temperature loss); (K, B, ·) inputs."""
        pi, log_pi = self.actor(obs_n, gens)
        alpha = self.log_alpha.exp().detach()[:, None]
        q = self.critic.both(obs_n, pi).min(1).values
        alpha_loss = -(self.log_alpha[:, None] * (log_pi + self.target_entropy).detach()).mean(-1).sum()
        return (alpha * log_pi - q).mean(-1).sum(), alpha_loss

    def conservative_gap(self, obs_n: torch.Tensor, next_n: torch.Tensor, q_data: torch.Tensor, gens: list):
        """Per critic, per seed: logsumexp over OOD actions (importance-sampled) of Q, minus Q on the data, batch
        mean; [(K,), (K,)]. The random, current-policy and next-policy actions go through both critics in one call."""
        h, (k, b, a_dim) = self.hparams, (*obs_n.shape[:2], self.hparams.act_dim)
        rep = lambda x: x.repeat_interleave(h.n_actions, 1)  # noqa: E731
        rand = torch.stack([torch.rand(b * h.n_actions, a_dim, generator=g, device=self.device) for g in gens]) * 2 - 1
        with torch.no_grad():
            cur, cur_lp = self.actor(rep(obs_n), gens)
            nxt, nxt_lp = self.actor(rep(next_n), gens)
        q = self.critic.both(rep(obs_n).repeat(1, 3, 1), torch.cat([rand, nxt, cur], 1)).view(k, 2, 3, b, -1)
        gaps = []
        for i in range(2):
            q_rand, q_nxt, q_cur, q_d = q[:, i, 0], q[:, i, 1], q[:, i, 2], q_data[:, i]
            if h.importance_sample:
                parts = [q_rand - a_dim * math.log(0.5), q_nxt - nxt_lp.view(k, b, -1), q_cur - cur_lp.view(k, b, -1)]
            else:
                parts = [q_rand, q_d[..., None], q_nxt, q_cur]
            ood = torch.logsumexp(torch.cat(parts, -1) / h.temperature, -1) * h.temperature
            gaps.append((ood - q_d).mean(-1))
        return gaps

    def critic_loss(self, b: Transitions, gens: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ over seeds of (TD loss + α'·conservative gaps, Lagrange loss for α'); a batch of (K, B, ·)."""
        h = self.hparams
        obs_n, next_n = b.obs, b.next_obs
        with torch.no_grad():
            next_a, next_lp = self.actor(next_n, gens)
            target_q = self.critic_target.both(next_n, next_a).min(1).values
            if h.backup_entropy:
                target_q = target_q - self.log_alpha.exp()[:, None] * next_lp
            target = b.rew + (1 - b.done) * h.discount * target_q
        q_data = self.critic.both(obs_n, b.act)
        td = (q_data - target[:, None]).pow(2).mean(-1).sum()  # Σ over seeds and both critics of the MSE
        gaps = self.conservative_gap(obs_n, next_n, q_data, gens)
        if h.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            terms = [alpha_prime * h.cql_weight * (gap - h.target_action_gap) for gap in gaps]
            prime_loss = -0.5 * (terms[0] + terms[1]).sum()
        else:
            terms, prime_loss = [h.cql_weight * gap for gap in gaps], None
        return td + (terms[0] + terms[1]).sum(), prime_loss

    def training_step(self, step, batch_idx=None):
        """CORL's order: the policy, temperature and critic losses from the same actor, then the steps (temperature,
        actor, critic). ``corl_order=False``: the critic loss after the actor's step (this project's earlier order)."""
        actor_opt, critic_opt, alpha_opt, prime_opt = self.optimizers()
        for gens, b in self.batches(step):
            loss_a, loss_alpha = self.actor_loss(b.obs, gens)
            if self.hparams.corl_order:
                loss_c, loss_prime = self.critic_loss(b, gens)
            alpha_opt.zero_grad()
            self.backprop(loss_alpha)
            alpha_opt.step()
            actor_opt.zero_grad()
            self.backprop(loss_a)
            actor_opt.step()
            if not self.hparams.corl_order:
                loss_c, loss_prime = self.critic_loss(b, gens)
            if loss_prime is not None:
                prime_opt.zero_grad()
                self.backprop(loss_prime, retain_graph=True)
                prime_opt.step()
            critic_opt.zero_grad()
            self.backprop(loss_c)
            critic_opt.step()
            polyak(self.critic_target, self.critic, self.hparams.tau)
            self.log_train({"train/critic_loss": loss_c, "train/actor_loss": loss_a,
                            "train/alpha": self.log_alpha.exp().detach().mean()})
