"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term, π = argmax λ·Q(s, π(s)) − (π(s) − a)²,
λ = α / mean|Q|. States are normalised with the dataset's mean and std (+1e-3), at evaluation too."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from dydiff.algos.base import PolicyModule
from dydiff.algos.networks import TwinQ, mlp
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


class TD3BC(PolicyModule):
    def __init__(self, obs_dim: int, act_dim: int, task: str, alpha: float = 2.5, discount: float = 0.99,
                 tau: float = 0.005, policy_noise: float = 0.2, noise_clip: float = 0.5, policy_freq: int = 2,
                 actor_lr: float = 3e-4, critic_lr: float = 3e-4, hidden: int = 256, **base):
        super().__init__(obs_dim, act_dim, task, **base)
        self.save_hyperparameters()
        self.actor = nn.Sequential(mlp(obs_dim, act_dim, hidden, 2), nn.Tanh())
        self.critic = TwinQ(obs_dim, act_dim, hidden, 2)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_target.requires_grad_(False)
        self.critic_target.requires_grad_(False)

    def configure_optimizers(self):
        return adam(self.actor.parameters(), self.hparams.actor_lr), adam(self.critic.parameters(),
                                                                            self.hparams.critic_lr)

    def policy_action(self, obs_n: torch.Tensor, deterministic: bool = True, generator=None) -> torch.Tensor:
        return self.actor(obs_n)

    def critic_loss(self, b: Transitions, g: torch.Generator) -> torch.Tensor:
        """Clipped double-Q target with target policy smoothing (noise 0.2 clipped at 0.5)."""
        h = self.hparams
        obs, nxt = b.obs, b.next_obs
        with torch.no_grad():
            noise = (torch.randn(b.act.shape, generator=g, device=self.device) * h.policy_noise).clamp(
                -h.noise_clip, h.noise_clip)
            next_act = (self.actor_target(nxt) + noise).clamp(-1.0, 1.0)
            target = b.rew + h.discount * (1 - b.done) * torch.min(*self.critic_target(nxt, next_act))
        q1, q2 = self.critic(obs, b.act)
        return F.mse_loss(q1, target) + F.mse_loss(q2, target)

    def actor_loss(self, b: Transitions) -> torch.Tensor:
        """−λ·mean Q₁(s, π(s)) + MSE(π(s), a), λ = α / mean|Q₁| (detached)."""
        obs = b.obs
        pi = self.actor(obs)
        q = self.critic.q1(torch.cat([obs, pi], -1)).squeeze(-1)
        lam = self.hparams.alpha / q.abs().mean().detach()
        return -lam * q.mean() + F.mse_loss(pi, b.act)

    def training_step(self, step, batch_idx=None):
        actor_opt, critic_opt = self.optimizers()
        for g, b in self.batches(step):
            loss_c = self.critic_loss(b, g)
            critic_opt.zero_grad()
            self.backprop(loss_c)
            critic_opt.step()
            logs = {"train/critic_loss": loss_c}
            if self.updates % self.hparams.policy_freq == 0:
                loss_a = self.actor_loss(b)
                actor_opt.zero_grad()
                self.backprop(loss_a)
                actor_opt.step()
                polyak(self.critic_target, self.critic, self.hparams.tau)
                polyak(self.actor_target, self.actor, self.hparams.tau)
                logs["train/actor_loss"] = loss_a
            self.log_train(logs)
