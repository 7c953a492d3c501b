"""CQL (Kumar et al., 2020), SAC-based, as in CORL's reference implementation: the critic's TD loss plus
α'·(logsumexp_a Q(s, a) − Q(s, a_data)) over 10 random, current-policy and next-policy actions with importance
sampling; automatic entropy tuning; optional Lagrange tuning of α' towards a target gap.

Stackable as TD3+BC is: K seeds' actors are K members of one ``Stacked`` network, their twin critics 2K, and log α,
log α' and the actor's log-std affine (m, b) one entry per seed. Batches are (K, B, ·) and every random draw of seed
k comes from its own generator in its single-seed run's order, so each seed's updates are its single-seed run's."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

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

    def draws(self, b: Transitions, gens: list) -> SimpleNamespace:
        """Every random draw of one update, before its losses, each seed's from its own generator in its
        single-seed run's order: the actor's ε on s (policy loss) and on s' (target); the conservative term's
        uniform actions, and the ε of the current- and next-policy actions on the n-fold repeated s and s'."""
        (rows, a_dim), n = b.act.shape[1:], self.hparams.n_actions
        normal = lambda g, m: torch.randn(m, a_dim, generator=g, device=self.device)  # noqa: E731
        d = self.per_seed(gens, lambda g: [normal(g, rows), normal(g, rows),
                                           torch.rand(rows * n, a_dim, generator=g, device=self.device),
                                           normal(g, rows * n), normal(g, rows * n)])
        return SimpleNamespace(pi=d[0], target=d[1], rand=d[2] * 2 - 1, cur=d[3], nxt=d[4])

    def temperatures(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(α (K, 1), α' (K,)) now, detached: inputs of the losses, which hold them as constants (the optimisers
        step log α and log α' in place while the losses' graphs are alive, so a compiled graph must not save them)."""
        return self.log_alpha.exp().detach()[:, None], self.log_alpha_prime.exp().clamp(0.0, 1e6).detach()

    def actor_loss(self, obs_n: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
        """(Σ over seeds of the policy loss α·log π − min Q(s, π(s)), log π detached for the temperature's loss);
        (K, B, ·) inputs, the actor's noise ε drawn beforehand."""
        pi, log_pi = self.actor(obs_n, eps=eps)
        q = self.critic.both(obs_n, pi).min(1).values
        return (alpha * log_pi - q).mean(-1).sum(), log_pi.detach()

    def alpha_loss(self, log_pi: torch.Tensor) -> torch.Tensor:
        """SAC's entropy-temperature loss, Σ over seeds of −mean(log α·(log π + H̄))."""
        return -(self.log_alpha[:, None] * (log_pi + self.target_entropy)).mean(-1).sum()

    def conservative_gap(self, obs_n: torch.Tensor, next_n: torch.Tensor, q_data: torch.Tensor, d: SimpleNamespace):
        """Per critic, per seed: logsumexp over OOD actions (importance-sampled) of Q, minus Q on the data, batch
        mean; [(K,), (K,)]. The random, current-policy and next-policy actions go through both critics in one call."""
        h, (k, b, a_dim) = self.hparams, (*obs_n.shape[:2], self.hparams.act_dim)
        rep = lambda x: x.repeat_interleave(h.n_actions, 1)  # noqa: E731
        with torch.no_grad():
            cur, cur_lp = self.actor(rep(obs_n), eps=d.cur)
            nxt, nxt_lp = self.actor(rep(next_n), eps=d.nxt)
        q = self.critic.both(rep(obs_n).repeat(1, 3, 1), torch.cat([d.rand, nxt, cur], 1)).view(k, 2, 3, b, -1)
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

    def critic_loss(self, b: Transitions, d: SimpleNamespace, alpha: torch.Tensor,
                    alpha_prime: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ over seeds of TD loss + α'·conservative gaps, the gaps (2, K) detached for α''s Lagrange loss); a
        batch of (K, B, ·), the draws of ``draws``. α' is a constant here: the critics' gradient is CORL's, and the
        gradient CORL's critic backward leaves on log α' is zeroed before α' next learns."""
        h = self.hparams
        obs_n, next_n = b.obs, b.next_obs
        with torch.no_grad():
            next_a, next_lp = self.actor(next_n, eps=d.target)
            target_q = self.critic_target.both(next_n, next_a).min(1).values
            if h.backup_entropy:
                target_q = target_q - alpha * next_lp
            target = b.rew + (1 - b.done) * h.discount * target_q
        q_data = self.critic.both(obs_n, b.act)
        td = (q_data - target[:, None]).pow(2).mean(-1).sum()  # Σ over seeds and both critics of the MSE
        gaps = self.conservative_gap(obs_n, next_n, q_data, d)
        if h.lagrange:
            terms = [alpha_prime * h.cql_weight * (gap - h.target_action_gap) for gap in gaps]
        else:
            terms = [h.cql_weight * gap for gap in gaps]
        return td + (terms[0] + terms[1]).sum(), torch.stack(gaps).detach()

    def prime_loss(self, gaps: torch.Tensor) -> torch.Tensor:
        """CORL's Lagrange loss for α': −½·Σ over critics and seeds of α'·w·(gap − target gap). Its gradient reaches
        only α' (CORL backpropagates it through the critics too, then zeroes their gradients before their own)."""
        h = self.hparams
        terms = self.log_alpha_prime.exp().clamp(0.0, 1e6) * h.cql_weight * (gaps - h.target_action_gap)
        return -0.5 * (terms[0] + terms[1]).sum()

    def training_step(self, step, batch_idx=None):
        """CORL's order: the policy, temperature and critic losses from the same actor, then the steps (temperature,
        actor, critic). ``corl_order=False``: the critic loss after the actor's step (this project's earlier order)."""
        actor_opt, critic_opt, alpha_opt, prime_opt = self.optimizers()
        for gens, b in self.batches(step):
            d = self.draws(b, gens)
            temps = self.temperatures()
            loss_a, log_pi = self.fns.actor_loss(b.obs, d.pi, temps[0])
            if self.hparams.corl_order:
                loss_c, gaps = self.fns.critic_loss(b, d, *temps)
            alpha_opt.zero_grad()
            self.backprop(self.alpha_loss(log_pi))
            alpha_opt.step()
            actor_opt.zero_grad()
            self.backprop(loss_a)
            actor_opt.step()
            if not self.hparams.corl_order:
                loss_c, gaps = self.fns.critic_loss(b, d, *self.temperatures())
            if self.hparams.lagrange:
                prime_opt.zero_grad()
                self.backprop(self.prime_loss(gaps))
                prime_opt.step()
            critic_opt.zero_grad()
            self.backprop(loss_c)
            critic_opt.step()
            polyak(self.critic_target, self.critic, self.hparams.tau)
            self.log_train({"train/critic_loss": loss_c, "train/actor_loss": loss_a,
                            "train/alpha": self.log_alpha.exp().detach().mean()})
