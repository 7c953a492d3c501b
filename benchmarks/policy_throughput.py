"""Gradient updates per second of each algorithm's LightningModule against a plain PyTorch loop with the same
networks, batch and optimisers, in one process. Target: ratio ≥ 1.0 for TD3+BC and CQL. The
plain loops keep two separate critic MLPs, so the ratio includes what the fused twin critics (``TwinQ``) buy.

With ``--seeds 1 3 5 8``, each algorithm also trains K seeds as one stacked model (``seeds=[...]``): the per-seed
rate (K × updates/s) against the plain loop's single seed.

    python benchmarks/policy_throughput.py [--steps 500] [--algos td3bc cql diffql] [--device cuda]
    python benchmarks/policy_throughput.py --seeds 1 3 5 8
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F

from dydiff.algos import ALGOS
from dydiff.algos.networks import mlp
from dydiff.algos.optim import adam, polyak
from dydiff.types import Transitions


def data(n=100_000, obs_dim=11, act_dim=3) -> Transitions:
    g = torch.Generator().manual_seed(0)
    return Transitions(torch.randn(n, obs_dim, generator=g), torch.rand(n, act_dim, generator=g) * 2 - 1,
                       torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timer(L.Callback):
    def __init__(self, device: str):
        self.device = device

    def on_train_batch_start(self, trainer, module, batch, idx):
        if idx == 10:  # skip warm-up (and compilation)
            sync(self.device)
            self.t0, self.u0 = time.perf_counter(), module.updates

    def on_train_epoch_end(self, trainer, module):
        sync(self.device)
        self.rate = module.members * (module.updates - self.u0) / (time.perf_counter() - self.t0)


def lightning_rate(algo: str, steps: int, d: Transitions, updates_per_step: int = 1, device: str = "cpu",
                   seeds: int = 1, compile: bool = False) -> float:
    """Updates/s of the module; with ``seeds`` = K, K seeds stacked, counted K per update (per-seed rate)."""
    m = ALGOS[algo].stacked(list(range(seeds)), obs_dim=11, act_dim=3, task="hopper", steps_per_epoch=steps,
                            updates_per_step=updates_per_step, compile=compile)
    m.attach_data(d)
    timer = Timer(device)
    L.Trainer(max_epochs=1, accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, logger=False,
              enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[timer]).fit(m)
    return timer.rate


class SeparateTwinQ(torch.nn.Module):
    """Twin critics as two separate MLPs (the layout before the fused ``TwinQ``), with its interface."""

    def __init__(self, d_in: int, hidden: int, layers: int, act, orthogonal: bool):
        super().__init__()
        self.q1, self.q2 = (mlp(d_in, 1, hidden, layers, act, orthogonal) for _ in range(2))

    def forward(self, obs, act):
        x = torch.cat([obs, act], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def both(self, obs, act, seeds=None):  # one seed's (1, B, ·) → (1, 2, B)
        return torch.stack(self(obs, act), 1)


def plain_rate(algo: str, steps: int, d: Transitions, device: str = "cpu") -> float:
    """The same update written as a plain loop with two separate nn.Sequential critics: TD3+BC fully by hand; CQL
    and Diffusion-QL reuse the module's loss functions (plain torch) with its fused TwinQ swapped for two MLPs."""
    torch.manual_seed(0)
    m = ALGOS[algo](obs_dim=11, act_dim=3, task="hopper", steps_per_epoch=steps).to(device)
    if algo != "td3bc":
        h = m.hparams
        layers, act = (h.layers, torch.nn.ReLU) if algo == "cql" else (3, torch.nn.Mish)
        m.critic = SeparateTwinQ(14, h.hidden, layers, act, getattr(h, "orthogonal_init", False)).to(device)
        m.critic_target = copy.deepcopy(m.critic).requires_grad_(False)
    opts = m.configure_optimizers()
    if algo == "td3bc":
        actor = torch.nn.Sequential(mlp(11, 3), torch.nn.Tanh()).to(device)
        q1, q2 = mlp(14, 1).to(device), mlp(14, 1).to(device)
        actor_t, q1_t, q2_t = (copy.deepcopy(n).requires_grad_(False) for n in (actor, q1, q2))
        opts = adam(actor.parameters(), 3e-4), adam([*q1.parameters(), *q2.parameters()], 3e-4)
    g = torch.Generator(device).manual_seed(0)
    d = Transitions(*(t.to(device) for t in d))
    d = d._replace(obs=(d.obs - m.obs_mean) / m.obs_std, next_obs=(d.next_obs - m.obs_mean) / m.obs_std)
    t0 = None
    for i in range(steps):
        if i == 10:
            sync(device)
            t0 = time.perf_counter()
        idx = torch.randint(len(d.obs), (256,), generator=g, device=device)
        b = Transitions(*(t[idx] for t in d))
        if algo == "td3bc":
            actor_opt, critic_opt = opts
            obs, nxt = b.obs, b.next_obs  # normalised once above
            with torch.no_grad():
                noise = (torch.randn(b.act.shape, generator=g, device=device) * 0.2).clamp(-0.5, 0.5)
                x = torch.cat([nxt, (actor_t(nxt) + noise).clamp(-1, 1)], -1)
                target = b.rew + 0.99 * (1 - b.done) * torch.min(q1_t(x), q2_t(x)).squeeze(-1)
            x = torch.cat([obs, b.act], -1)
            loss = F.mse_loss(q1(x).squeeze(-1), target) + F.mse_loss(q2(x).squeeze(-1), target)
            critic_opt.zero_grad()
            loss.backward()
            critic_opt.step()
            if i % 2 == 0:
                pi = actor(obs)
                q = q1(torch.cat([obs, pi], -1)).squeeze(-1)
                loss = -2.5 / q.abs().mean().detach() * q.mean() + F.mse_loss(pi, b.act)
                actor_opt.zero_grad()
                loss.backward()
                actor_opt.step()
                for target_net, net in ((q1_t, q1), (q2_t, q2), (actor_t, actor)):
                    polyak(target_net, net, 0.005)
        elif algo == "cql":
            actor_opt, critic_opt, alpha_opt, _ = opts
            b1 = Transitions(*(t[None] for t in b))  # the module's losses take (seeds, B, ·)
            dr = m.draws(b1, [g])
            alpha, alpha_prime = m.temperatures()
            la, log_pi = m.actor_loss(b1.obs, dr.pi, alpha)
            lc, _ = m.critic_loss(b1, dr, alpha, alpha_prime)
            for opt, loss in ((alpha_opt, m.alpha_loss(log_pi)), (actor_opt, la)):
                opt.zero_grad()
                loss.backward()
                opt.step()
            critic_opt.zero_grad()
            lc.backward()
            critic_opt.step()
            polyak(m.critic_target, m.critic, 0.005)
        else:
            actor_opt, critic_opt = opts
            b1 = Transitions(*(t[None] for t in b))  # the module's losses take (seeds, B, ·)
            target_noise, bc_draws, noise, first = m.draws(b1, [g])
            lc = m.critic_loss(b1, target_noise)
            critic_opt.zero_grad()
            lc.backward()
            torch.nn.utils.clip_grad_norm_(m.critic.parameters(), 1.0)
            critic_opt.step()
            la, _ = m.actor_loss(b1, bc_draws, noise, first)
            actor_opt.zero_grad()
            la.backward()
            torch.nn.utils.clip_grad_norm_(m.actor.parameters(), 1.0)
            actor_opt.step()
            polyak(m.critic_target, m.critic, 0.005)
    sync(device)
    return (steps - 10) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--algos", nargs="+", default=list(ALGOS))
    p.add_argument("--repeats", type=int, default=5, help="alternating rounds (this machine's timings vary ±10%% "
                   "from round to round): the median of the per-round ratios is reported")
    p.add_argument("--updates-per-step", type=int, default=4, help="as conf/policy.yaml's updates_per_step")
    p.add_argument("--device", default="cpu", help="cpu | cuda: both loops run there")
    p.add_argument("--seeds", type=int, nargs="+", default=[1],
                   help="K seeds as one model, per-seed rate")
    p.add_argument("--compile", action="store_true", help="also with compile=true")
    args = p.parse_args()
    d = data()
    print(f"hopper-sized batches (obs 11, act 3), batch 256, {args.steps} updates, threads {torch.get_num_threads()}, "
          f"device {args.device}, "
          f"{args.updates_per_step} updates per Lightning step")
    print(f"{'algo':13} {'seeds':>5} {'lightning upd/s per seed':>20} {'plain upd/s':>12} {'median ratio':>13} "
          f"{'min':>5} {'max':>5}")
    for algo in args.algos:
        compiled = [False, True] if args.compile else [False]
        for k, comp in [(k, comp) for comp in compiled for k in (args.seeds if ALGOS[algo].stackable else [1])]:
            plain, light = [], []
            for _ in range(args.repeats):
                plain.append(plain_rate(algo, args.steps, copy.deepcopy(d), args.device))
                light.append(lightning_rate(algo, args.steps, d, args.updates_per_step, args.device, k, comp))
            ratios = sorted(x / y for x, y in zip(light, plain, strict=True))
            name = algo + (" comp" if comp else "")
            print(f"{name:13} {k:5d} {statistics.median(light):20.1f} {statistics.median(plain):12.1f} "
                  f"{statistics.median(ratios):13.2f} {ratios[0]:5.2f} {ratios[-1]:5.2f}", flush=True)


if __name__ == "__main__":
    main()
