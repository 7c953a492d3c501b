"""Online SAC (Haarnoja et al., 2018) for the behaviour policies of the built-in locomotion datasets.

Twin critics, tanh-Gaussian actor, automatic entropy tuning towards −act_dim, one update per environment
step after ``start_steps`` uniform-random steps (D4RL's behaviour policies were SAC agents trained this way).
The loop keeps every transition with the simulator state before it (``qpos``/``qvel``), saves a **medium**
snapshot when the deterministic evaluation return first reaches ``medium_return`` and an **expert** one at
the end, checkpoints (replay buffer, optimisers, every RNG, the environment mid-episode) and resumes
bit-for-bit on CPU.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import mujoco
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dydiff.algos.networks import TanhGaussianActor, TwinQ
from dydiff.algos.optim import adam, polyak
from dydiff.envs.evaluation import evaluate
from dydiff.envs.registry import Task
from dydiff.io import load_or_discard, locked, save_atomic
from dydiff.progress import track
from dydiff.types import KEYS, STATE_KEYS, Transitions

BUFFER_KEYS = (*KEYS, *STATE_KEYS)


class SAC(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, lr: float = 3e-4, discount: float = 0.99,
                 tau: float = 0.005):
        super().__init__()
        self.discount, self.tau, self.target_entropy = discount, tau, -float(act_dim)
        self.actor = TanhGaussianActor(obs_dim, act_dim, hidden, 2)
        self.critic = TwinQ(obs_dim, act_dim, hidden, 2)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.opts = [adam(self.actor.parameters(), lr), adam(self.critic.parameters(), lr), adam([self.log_alpha], lr)]

    def update(self, b: Transitions, g: torch.Generator) -> dict:
        actor_opt, critic_opt, alpha_opt = self.opts
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_a, next_lp = self.actor(b.next_obs, g)
            q_next = torch.min(*self.critic_target(b.next_obs, next_a)) - alpha * next_lp
            target = b.rew + self.discount * (1 - b.done) * q_next
        q1, q2 = self.critic(b.obs, b.act)
        loss_c = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        critic_opt.zero_grad()
        loss_c.backward()
        critic_opt.step()
        pi, lp = self.actor(b.obs, g)
        loss_a = (alpha * lp - torch.min(*self.critic(b.obs, pi))).mean()
        actor_opt.zero_grad()
        loss_a.backward()
        actor_opt.step()
        loss_alpha = -(self.log_alpha * (lp.detach() + self.target_entropy)).mean()
        alpha_opt.zero_grad()
        loss_alpha.backward()
        alpha_opt.step()
        polyak(self.critic_target, self.critic, self.tau)
        return {"critic_loss": loss_c.detach(), "actor_loss": loss_a.detach(), "alpha": alpha}

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True, generator=None) -> np.ndarray:
        a, _ = self.actor(torch.as_tensor(obs, dtype=torch.float32), generator, deterministic)
        return a.numpy()

    def full_state(self) -> dict:
        return {"model": self.state_dict(), "opts": [o.state_dict() for o in self.opts]}

    def load_full_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        for o, s in zip(self.opts, state["opts"], strict=True):
            o.load_state_dict(s)


def empty_buffer(task: Task, n: int, env) -> dict:
    """Arrays for ``n`` transitions in the D4RL schema, plus the simulator state before each (qpos, qvel)."""
    model = env.unwrapped.model
    return {"observations": np.zeros((n, task.obs_dim), np.float32),
            "actions": np.zeros((n, task.act_dim), np.float32), "rewards": np.zeros(n, np.float32),
            "next_observations": np.zeros((n, task.obs_dim), np.float32), "terminals": np.zeros(n, bool),
            "timeouts": np.zeros(n, bool), "qpos": np.zeros((n, model.nq)), "qvel": np.zeros((n, model.nv))}


def record_step(env, buf: dict, t: int, obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Store the simulator state, step with ``action`` and store row ``t`` (a time limit is a timeout, never a
    terminal). Returns the observation to act on next (a new episode's after an end), the reward, and whether
    the episode ended."""
    u = env.unwrapped
    buf["qpos"][t], buf["qvel"][t] = u.data.qpos, u.data.qvel
    nxt, r, term, trunc, _ = env.step(action)
    for k, v in zip(BUFFER_KEYS[:6], (obs, action, r, nxt, term, trunc and not term), strict=True):
        buf[k][t] = v
    if term or trunc:
        return env.reset()[0], float(r), True
    return nxt, float(r), False


def sim_state(u) -> np.ndarray:
    """MuJoCo's full integration state (time, qpos, qvel, act, warm start, controls): restoring it continues
    the simulation bit for bit, which qpos/qvel alone do not (the solver's warm start differs)."""
    state = np.empty(mujoco.mj_stateSize(u.model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(u.model, u.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    return state


def tensors(buf: dict, n: int) -> dict:
    return {k: torch.from_numpy(np.ascontiguousarray(v[:n])) for k, v in buf.items()}


def load_actor(path: str | Path, task: Task, hidden: int = 256) -> SAC:
    """A snapshot (medium.pt / expert.pt) as an SAC agent for acting."""
    agent = SAC(task.obs_dim, task.act_dim, hidden)
    agent.actor.load_state_dict(torch.load(path, weights_only=True)["actor"])
    return agent


def train_sac(task: Task, out_dir: str | Path, steps: int, seed: int = 0, medium_return: float | None = None,
              max_steps: int | None = None, **kw) -> dict:
    """Train (or resume, or just load when finished) SAC for ``steps`` steps in ``out_dir``: checkpoint.pt
    (everything, while training), medium.pt / expert.pt (actor snapshots), buffer.pt (the replay buffer and the
    agent at the end). If no evaluation reached ``medium_return`` and ``max_steps`` > ``steps``, training goes
    on to ``max_steps`` in ``out_dir/extended-<max_steps>/`` (same files), from the finished run's agent and
    buffer with a fresh episode and generators seeded by (seed, steps): so a finished shorter run is continued,
    not repeated, and the result equals an uninterrupted one. Keyword arguments: ``SACRun``'s.
    Returns {buffer arrays, agent, medium_step, evaluations, dir (where the snapshots are)}."""
    with locked(Path(out_dir) / "run"):  # one process trains; others wait, then load the finished run
        res = SACRun(task, Path(out_dir), steps, seed, medium_return, **kw).run()
        if res["medium_step"] is not None or medium_return is None or not max_steps or max_steps <= steps:
            return res
        return SACRun(task, Path(out_dir) / f"extended-{max_steps}", max_steps, seed, medium_return, init=res,
                      **kw).run()


class SACRun:
    """One run up to ``steps`` in ``out``: from scratch (``init`` None) or continuing the finished run ``init``.
    ``run()`` loads a finished run, else resumes from checkpoint.pt (if ``resume``) and steps to the end."""

    def __init__(self, task: Task, out: Path, steps: int, seed: int, medium_return: float | None,
                 init: dict | None = None, start_steps: int = 10_000, batch_size: int = 256, hidden: int = 256,
                 lr: float = 3e-4, eval_every: int = 5000, eval_episodes: int = 5, checkpoint_every: int = 10_000,
                 resume: bool = True, progress: bool = True, log_dir: str | Path | None = None):
        self.task, self.out, self.steps, self.medium_return, self.init = task, out, steps, medium_return, init
        self.start_steps, self.batch_size, self.eval_every, self.eval_episodes = (start_steps, batch_size,
                                                                                  eval_every, eval_episodes)
        self.checkpoint_every, self.resume, self.progress, self.log_dir = checkpoint_every, resume, progress, log_dir
        self.seed, self.hidden, self.lr = seed, hidden, lr
        self.ckpt, self.done_path = out / "checkpoint.pt", out / "buffer.pt"

    def run(self) -> dict:
        if (res := load_or_discard(self.done_path)) is not None:
            return {**res, "buffer": {k: v.numpy() for k, v in res["buffer"].items()}, "dir": self.out}
        self.start()
        if self.resume and (st := load_or_discard(self.ckpt)) is not None:
            self.restore(st)
        writer = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.log_dir))
        bar = track(range(self.t0, self.steps), self.steps, f"SAC {self.task.name}", self.progress, self.t0)
        self.tick = time.perf_counter()
        for t in bar:
            self.step(t, writer)
            if (t + 1) % self.eval_every == 0 or t + 1 == self.steps:
                self.evaluate(t, bar, writer)
            if (t + 1) % self.checkpoint_every == 0 and t + 1 < self.steps:
                save_atomic(self.state(t + 1), self.ckpt)
        self.env.close()
        if writer is not None:
            writer.close()
        return self.finish()

    def start(self) -> None:
        """The agent, environment, buffer, generators and counters at step 0 (or at the continued run's end)."""
        task, seed, init = self.task, self.seed, self.init
        torch.manual_seed(seed)
        self.agent = SAC(task.obs_dim, task.act_dim, self.hidden, self.lr)
        self.env = task.make_env()
        self.buf = empty_buffer(task, self.steps, self.env)
        self.ep_ret, self.ep_rets = 0.0, []
        if init is None:
            self.rng, self.g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
            self.obs, _ = self.env.reset(seed=seed)
            self.t0, self.medium_step, self.evals = 0, None, []
            return
        self.t0 = len(init["buffer"]["rewards"])
        s = int(np.random.SeedSequence([seed, self.t0]).generate_state(1)[0])
        self.rng, self.g = np.random.default_rng(s), torch.Generator().manual_seed(s)
        self.obs, _ = self.env.reset(seed=s)
        self.agent.load_full_state(init["agent"])
        for k in BUFFER_KEYS:
            self.buf[k][: self.t0] = np.asarray(init["buffer"][k])
        self.medium_step, self.evals = init["medium_step"], [list(e) for e in init["evaluations"]]

    def state(self, t: int) -> dict:
        """Everything needed to continue after step ``t`` bit for bit (plain values only)."""
        u = self.env.unwrapped
        return {"agent": self.agent.full_state(), "t": t, "buffer": tensors(self.buf, t),
                "medium_step": self.medium_step, "evals": self.evals, "ep_ret": float(self.ep_ret),
                "ep_rets": [float(x) for x in self.ep_rets], "rng": self.rng.bit_generator.state,
                "env_rng": u.np_random.bit_generator.state, "torch_rng": self.g.get_state(),
                "env_state": torch.tensor(sim_state(u)), "env_elapsed": self.env._elapsed_steps,
                "obs": torch.tensor(self.obs)}

    def restore(self, st: dict) -> None:
        u = self.env.unwrapped
        self.agent.load_full_state(st["agent"])
        for k in BUFFER_KEYS:
            self.buf[k][: st["t"]] = st["buffer"][k].numpy()
        self.t0, self.medium_step, self.evals = st["t"], st["medium_step"], st["evals"]
        self.ep_ret, self.ep_rets = st["ep_ret"], st["ep_rets"]
        self.rng.bit_generator.state, u.np_random.bit_generator.state = st["rng"], st["env_rng"]
        self.g.set_state(st["torch_rng"])
        mujoco.mj_setState(u.model, u.data, st["env_state"].numpy(), mujoco.mjtState.mjSTATE_INTEGRATION)
        self.env._elapsed_steps = st["env_elapsed"]  # the TimeLimit wrapper's counter
        self.obs = st["obs"].numpy()

    def step(self, t: int, writer) -> None:
        """One environment step (uniform random before ``start_steps``) and, after that, one update."""
        a = self.rng.uniform(-1, 1, self.task.act_dim).astype(np.float32) if t < self.start_steps else \
            self.agent.act(self.obs[None], False, self.g)[0]
        self.obs, r, ended = record_step(self.env, self.buf, t, self.obs, a)
        self.ep_ret += r
        if ended:
            self.ep_rets.append(self.ep_ret)
            self.ep_ret = 0.0
        if t >= self.start_steps:
            idx = torch.randint(t + 1, (self.batch_size,), generator=self.g).numpy()
            b = Transitions(*(torch.as_tensor(self.buf[k][idx], dtype=torch.float32) for k in BUFFER_KEYS[:5]))
            logs = self.agent.update(b, self.g)
            if writer is not None and t % 1000 == 0:
                for k, v in logs.items():
                    writer.add_scalar(f"sac/{k}", float(v), t)

    def evaluate(self, t: int, bar, writer) -> None:
        """The deterministic policy's return; the medium snapshot when it first reaches ``medium_return``."""
        ret = evaluate(lambda o: self.agent.act(o), self.task, self.eval_episodes, seed=10_000 + t).return_mean
        self.evals.append([t + 1, float(ret)])
        sps = self.eval_every / (time.perf_counter() - self.tick)
        self.tick = time.perf_counter()
        bar.set_postfix(eval_return=f"{ret:.0f}", train_return=f"{np.mean(self.ep_rets[-10:] or [0]):.0f}",
                        steps_per_s=f"{sps:.0f}")
        if writer is not None:
            writer.add_scalar("sac/eval_return", ret, t + 1)
            writer.add_scalar("sac/steps_per_s", sps, t + 1)
        if self.medium_step is None and self.medium_return is not None and ret >= self.medium_return:
            self.medium_step = t + 1
            save_atomic({"actor": self.agent.actor.state_dict(), "step": t + 1, "return": ret}, self.out / "medium.pt")

    def finish(self) -> dict:
        """The expert snapshot and buffer.pt (the finished run); the checkpoint is no longer needed."""
        save_atomic({"actor": self.agent.actor.state_dict(), "step": self.steps, "return": self.evals[-1][1]},
                    self.out / "expert.pt")
        result = {"buffer": tensors(self.buf, self.steps), "medium_step": self.medium_step,
                  "evaluations": self.evals, "agent": self.agent.full_state()}
        save_atomic(result, self.done_path)
        self.ckpt.unlink(missing_ok=True)
        return {**result, "buffer": self.buf, "dir": self.out}
