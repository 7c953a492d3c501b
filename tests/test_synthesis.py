import numpy as np
import pytest
import torch

from dydiff.builtin.locomotion import collect, to_dataset
from dydiff.diffusion.trajectory import TrajectoryModel
from dydiff.envs import locomotion
from dydiff.envs.evaluation import random_policy
from dydiff.envs.registry import get_task
from dydiff.models.ensemble import DynamicsEnsemble
from dydiff.synthesis import filter as F
from dydiff.synthesis import refine as R
from dydiff.synthesis.base import Synthesizer
from dydiff.synthesis.buffer import SyntheticBuffer
from dydiff.synthesis.real_env import RealEnv
from dydiff.synthesis.round import SynthesisRound
from dydiff.types import Transitions

OBS, ACT, L = 4, 2, 6


def models(kind="edm"):
    torch.manual_seed(0)
    dm = TrajectoryModel(OBS, ACT, L, center=[0.1] * (OBS + ACT), scale=[2.0] * (OBS + ACT), kind=kind,
                         network="mlp", network_kwargs={"mlp": {"width": 32, "depth": 1}}, sampler={"num_steps": 3})
    dyn = DynamicsEnsemble(OBS, ACT, members=3, elites=2, hidden=16, layers=2, weight_decay=(0, 0, 0))
    w = torch.randn(OBS, ACT)
    return dm, dyn, lambda s: torch.tanh(s @ w)


def test_refinement_keeps_s0_and_conditions_and_relabels_with_the_policy():
    dm, dyn, act = models()
    g = torch.Generator().manual_seed(0)
    s0 = torch.randn(5, OBS)
    states, actions = R.ensemble_rollout(dyn, act, s0, L, g)
    seen = []
    sample = dm.sample
    dm.sample = lambda s, a, *x, **k: (seen.append((s.clone(), a.clone())), sample(s, a, *x, **k))[1]
    before = (states.clone(), actions.clone())
    new, relabelled, changes = R.refine(dm, act, states, actions, iterations=2, blend=0.5, generator=g)
    assert torch.equal(states, before[0]) and torch.equal(actions, before[1])  # inputs untouched
    assert torch.equal(new[:, 0], s0)  # s0 bit-identical
    assert torch.equal(seen[0][0], s0) and torch.equal(seen[0][1], actions)  # iteration 1: the rollout's actions
    assert torch.equal(seen[1][0], s0)
    assert torch.equal(relabelled, act(new[:, :-1].reshape(-1, OBS)).view(5, L, ACT))  # Eq. 8
    assert len(changes) == 2 and all(c > 0 for c in changes)


def test_the_dm_sees_its_conditions_exactly():
    """Inside the sampler the window's s0 and action entries equal the conditions at every step (hard
    replacement), so the sampled trajectory is conditioned on exactly the actions given."""
    dm, _, _ = models()
    s0, actions = torch.randn(3, OBS), torch.rand(3, L, ACT) * 2 - 1
    cond = dm.conditions(s0, actions)
    windows = []
    dm.net.register_forward_pre_hook(lambda mod, args: windows.append(args[0].clone()))
    dm.sample(s0, actions, torch.Generator().manual_seed(0))
    mask = dm.cond_mask.expand_as(cond)
    assert len(windows) >= 3
    for x in windows:  # the network's input is c_in·x: undo the scale, compare the conditioned entries
        ratio = x[mask] / cond[mask]
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)


def test_zero_iterations_is_the_pure_ensemble_rollout_and_blend_one_is_the_dm():
    dm, dyn, act = models()
    s0 = torch.randn(4, OBS)
    states, actions = R.ensemble_rollout(dyn, act, s0, L, torch.Generator().manual_seed(1))
    same, same_a, ch = R.refine(dm, act, states, actions, iterations=0)
    assert torch.equal(same, states) and torch.equal(same_a, actions) and ch == []
    # by hand: s_{i+1} = s_i + Δ of an elite's mean (all members here are elites of 2 → check vs step)
    s, g = s0, torch.Generator().manual_seed(1)
    for t in range(L):
        assert torch.equal(actions[:, t], act(s))
        s = dyn.step(s, actions[:, t], g)
        assert torch.equal(states[:, t + 1], s)
    dm_states = dm.sample(s0, actions, torch.Generator().manual_seed(7))
    full, _, _ = R.refine(dm, act, states, actions, iterations=1, blend=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(full, dm_states)


def test_hardmax_keeps_exactly_the_top_scores():
    score = torch.tensor([3.0, -1.0, 7.0, 0.5, 2.0, 9.0])
    assert sorted(F.select(score, 3, "hardmax").tolist()) == [0, 2, 5]


def test_softmax_keeps_distinct_trajectories_and_prefers_high_scores():
    score = torch.linspace(0, 1, 200)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(200)
    for _ in range(200):
        idx = F.select(score, 60, "softmax", 0.05, g)
        assert len(idx) == 60 and len(set(idx.tolist())) == 60
        counts[idx] += 1
    assert counts[150:].mean() > 0.9 * 200 and counts[:50].sum() == 0  # T = 0.05: top ~60 nearly always
    soft = torch.zeros(200)
    for _ in range(200):  # a high temperature: every trajectory has a chance, high scores still more
        soft[F.select(score, 60, "softmax", 2.0, g)] += 1
    assert soft[:50].sum() > 0 and soft[150:].mean() > soft[:50].mean() * 1.5


def test_hopper_fall_truncates_after_the_first_terminal():
    task = get_task("hopper")
    k, horizon = 3, 8
    states = torch.zeros(2, horizon + 1, task.obs_dim)
    states[:, :, 0] = 1.25  # healthy height
    states[0, k + 1 :, 0] = 0.5  # trajectory 0 falls: s_{k+1} is unhealthy, so transition k is terminal
    actions, rewards = torch.zeros(2, horizon, task.act_dim), torch.arange(2 * horizon, dtype=torch.float32).view(2, -1)
    done = task.terminal(states[:, 1:])
    keep = R.keep_mask(done)
    t = R.to_transitions(states, actions, rewards, done, keep)
    assert keep[0].tolist() == [True] * (k + 1) + [False] * (horizon - k - 1) and bool(keep[1].all())
    assert len(t.obs) == (k + 1) + horizon
    assert t.done.tolist() == [0.0] * k + [1.0] + [0.0] * horizon
    assert t.rew[: k + 1].tolist() == rewards[0, : k + 1].tolist()
    # Eq. 11 scores the whole horizon, before the cut (a survival bonus otherwise); the masked sum is a key
    assert F.scores(rewards).tolist() == [sum(range(horizon)), sum(range(horizon, 2 * horizon))]
    assert F.scores(rewards, keep).tolist() == [sum(range(k + 1)), sum(range(horizon, 2 * horizon))]


class Exploding:
    """A dynamics model that multiplies the state by 3 each step; NaN for trajectories whose s0[0] < 0."""

    def step(self, s, a, generator=None, deterministic=True):
        out = 3 * s
        out[s[:, 0] < 0] = float("nan")
        return out


def test_the_box_clips_every_state_and_action_and_marks_non_finite_trajectories():
    s0 = torch.tensor([[0.5, 0.1, 0.0, 0.0], [-0.5, 0.1, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2]])
    box = R.Box(-torch.ones(OBS), torch.ones(OBS), torch.full((ACT,), -0.5), torch.full((ACT,), 0.5))
    box.reset(3)
    states, actions = R.ensemble_rollout(Exploding(), lambda s: s[:, :2] * 10, s0, 4, box=box)
    ok = states[[0, 2]]
    assert float(ok.abs().max()) == 1.0 and float(actions[[0, 2]].abs().max()) == 0.5
    torch.testing.assert_close(states[0, 2], torch.tensor([1.0, 0.9, 0.0, 0.0]))  # 0.5 → 1.5, clipped to 1 → 3 → 1
    assert box.nonfinite.tolist() == [False, True, False]
    assert box.seen == 12 and box.clipped == 4 + 3  # trajectory 0 from step 1 on, trajectory 2 from step 2 on


def batch(n, value):
    return Transitions(torch.full((n, 3), value), torch.full((n, 2), value), torch.full((n,), value),
                       torch.full((n, 3), value), torch.zeros(n))


def test_buffer_is_fifo_and_round_trips_bit_identically(tmp_path):
    buf = SyntheticBuffer(5, 3, 2)
    for v in range(4):
        buf.push(batch(2, float(v)))  # 8 pushed, the 3 oldest evicted
    assert len(buf) == 5 and buf.ordered().rew.tolist() == [1.0, 2.0, 2.0, 3.0, 3.0]
    buf.push(batch(7, 9.0))  # more than the capacity at once: the last 5 only
    assert buf.ordered().rew.tolist() == [9.0] * 5
    buf.push(batch(1, 4.0))
    assert buf.ordered().rew.tolist() == [9.0] * 4 + [4.0]
    torch.save(buf.state_dict(), tmp_path / "b.pt")
    back = SyntheticBuffer(1, 3, 2)
    back.load_state_dict(torch.load(tmp_path / "b.pt", weights_only=True))
    assert torch.equal(back.rows, buf.rows) and back.ptr == buf.ptr and len(back) == 5
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for a, b in zip(buf.sample(16, g1), back.sample(16, g2), strict=True):
        assert torch.equal(a, b)
    buf.push(batch(2, 5.0))
    back.push(batch(2, 5.0))
    assert torch.equal(back.ordered().rew, buf.ordered().rew)


@pytest.mark.parametrize("ratio", [0.6, 0.25])
def test_batch_has_exactly_floor_alpha_b_real(ratio):
    from dydiff.algos import ALGOS

    n = 1000
    g = torch.Generator().manual_seed(0)
    real = Transitions(torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g), torch.rand(n, generator=g),
                       torch.randn(n, 3, generator=g), torch.zeros(n))  # rewards in [0, 1)
    m = ALGOS["td3bc"](obs_dim=3, act_dim=2, task="maze2d-umaze", batch_size=100, real_ratio=ratio, hidden=8)
    m.attach_data(real)
    m.attach_round(SynthesisRound(Synthesizer(), 0, 1000, 3, 2))
    m.synthetic().push(batch(10, 5.0))  # fewer than the synthetic share: all real
    assert (m.sample_batch(g).rew < 1).sum() == 100
    m.synthetic().push(batch(100, 5.0))
    b = m.sample_batch(g)
    assert int((b.rew < 1).sum()) == int(ratio * 100) and int((b.rew == 5).sum()) == 100 - int(ratio * 100)


@pytest.fixture(scope="module")
def pointmaze_ds():
    from dydiff.builtin.maze import generate_maze_dataset

    return generate_maze_dataset(get_task("pointmaze-umaze"), 1500, seed=0, progress=False)


@pytest.mark.parametrize("frame", ["d4rl", "gymnasium"])
def test_real_env_oracle_matches_stepping_the_environment(frame, umaze_ds, pointmaze_ds):
    """The oracle's transitions are those of the learning policy stepped in the env one start at a time: exactly on
    PointMaze-v3 (envs stepped in lock-step), and to 1e-6 on D4RL's maze, whose starts are stepped all at once by
    MazeEnv.step_many (its solver's warm start moves a state by ~1e-12 before the float32 cast)."""
    ds = umaze_ds if frame == "d4rl" else pointmaze_ds
    task = ds.task
    w = torch.tensor([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2], [0.2, 0.1]])
    act = lambda s: torch.tanh(s @ w)  # noqa: E731
    oracle = RealEnv(ds, horizon=5, envs=3)
    t, metrics = oracle.generate(act, 4, torch.Generator().manual_seed(3))
    rows = torch.randint(len(ds.observations), (4,), generator=torch.Generator().manual_seed(3)).numpy()
    env = task.make_env()
    env.reset(seed=0)
    expected = []
    for r in rows:
        task.set_state(env, ds.observations[r])
        s = ds.observations[r]
        for _ in range(5):
            a = act(torch.as_tensor(s)[None])[0].numpy()
            nxt, rew, term = task.step_transition(env, a)
            expected.append((s, a, rew, nxt))
            s = nxt
    assert len(t.obs) == 20 and metrics["trajectories_kept"] == 4
    tol = {"atol": 1e-6, "rtol": 0} if frame == "d4rl" else {"atol": 0, "rtol": 0}
    np.testing.assert_allclose(t.obs.numpy(), np.stack([e[0] for e in expected]), **tol)
    np.testing.assert_allclose(t.act.numpy(), np.stack([e[1] for e in expected]), **tol)
    np.testing.assert_array_equal(t.rew.numpy(), np.array([e[2] for e in expected], np.float32))
    np.testing.assert_allclose(t.next_obs.numpy(), np.stack([e[3] for e in expected]), **tol)
    assert not t.done.any()


@pytest.mark.parametrize("name", ["hopper", "walker2d", "halfcheetah"])
def test_locomotion_step_many_is_gymnasium_step(name):
    """64 steps of 12 random-action trajectories from perturbed start states: ``step_many`` gives env.step's
    observations (to ~1e-12 on Hopper and Walker2d: only the solver's warm start differs; HalfCheetah's contacts
    amplify that, so it is checked over the first 8 steps), rewards and terminations."""
    task = get_task(name)
    env = task.make_env()
    env.reset(seed=0)
    u = env.unwrapped
    assert locomotion.supports(env)
    rng = np.random.default_rng(0)
    b, t_max = 12, 64
    q0 = u.init_qpos + rng.uniform(-0.1, 0.1, (b, u.model.nq))
    v0 = rng.uniform(-1.0, 1.0, (b, u.model.nv))
    acts = rng.uniform(-1.0, 1.0, (t_max, b, task.act_dim))
    ref = {"obs": np.zeros((b, t_max, task.obs_dim)), "rew": np.zeros((b, t_max)), "term": np.zeros((b, t_max), bool)}
    for i in range(b):
        u.set_state(q0[i], v0[i])
        for t in range(t_max):
            ref["obs"][i, t], ref["rew"][i, t], ref["term"][i, t], *_ = u.step(acts[t, i])
    got = {k: np.zeros_like(v) for k, v in ref.items()}
    q, v = q0, v0
    for t in range(t_max):
        q, v, got["obs"][:, t], got["rew"][:, t], got["term"][:, t] = locomotion.step_many(
            env, q, v, acts[t], task.velocity_clip)
    steps = 8 if name == "halfcheetah" else t_max
    np.testing.assert_allclose(got["obs"][:, :steps], ref["obs"][:, :steps], atol=1e-9, rtol=0)
    np.testing.assert_allclose(got["rew"][:, :steps], ref["rew"][:, :steps], atol=1e-9, rtol=0)
    np.testing.assert_array_equal(got["term"], ref["term"])
    assert ref["term"].any() == (name != "halfcheetah")  # random actions make the hopper and the walker fall


def test_real_env_oracle_on_hopper_matches_stepping_the_environment():
    """The oracle's hopper transitions, stepped all at once by ``locomotion.step_many`` from the stored qpos/qvel,
    are those of the policy stepped in the env one start at a time, terminations included."""
    task = get_task("hopper")
    ds = to_dataset(collect(task, random_policy(task, 1), 300, seed=1, progress=False), task, "test", 0.0, 1.0)
    env = task.make_env()
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    w = torch.as_tensor(rng.standard_normal((task.obs_dim, task.act_dim)), dtype=torch.float32) * 0.3
    act = lambda s: torch.tanh(s @ w)  # noqa: E731
    states, actions, rewards, done = RealEnv(ds, horizon=40, envs=4).rollout(act, np.arange(0, 300, 20))
    for j, r in enumerate(range(0, 300, 20)):
        ds.set_state(env, r)
        s = ds.observations[r]
        np.testing.assert_array_equal(states[j, 0], s)
        for t in range(40):
            a = act(torch.as_tensor(s)[None])[0].numpy()
            s, rew, term = task.step_transition(env, a)
            np.testing.assert_allclose(actions[j, t], a, atol=1e-5, rtol=0)
            np.testing.assert_allclose(states[j, t + 1], s, atol=1e-5, rtol=0)
            assert abs(rewards[j, t] - rew) < 1e-4 and done[j, t] == term
    assert done.any() and not done.all()
