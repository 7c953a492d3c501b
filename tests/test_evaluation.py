import numpy as np
import pytest

from dydiff.envs.evaluation import evaluate
from dydiff.envs.registry import get_task


def scripted(t_holder):
    def act(obs):
        t_holder[0] += 1
        return np.tile(np.sin(0.1 * t_holder[0] + np.arange(3)), (len(obs), 1)) * 0.8
    return act


def test_returns_known_return_of_scripted_policy():
    """Batched evaluation equals a plain Gymnasium loop of the same scripted policy, episode by episode."""
    task = get_task("hopper")
    result = evaluate(scripted([0]), task, episodes=3, seed=5)
    t = [0]
    act = scripted(t)
    for i in range(3):
        env = task.make_env()
        obs, _ = env.reset(seed=5 + i)
        t[0], ret, n, done = 0, 0.0, 0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs[None])[0].astype(np.float32))  # evaluate sends float32
            ret, n, done = ret + r, n + 1, term or trunc
        assert result.returns[i] == pytest.approx(ret, rel=1e-12)
        assert result.lengths[i] == n
    assert min(result.lengths) < 1000  # this policy makes the hopper fall: termination is honoured
    expected = 100 * (np.array(result.returns) + 20.272305) / (3234.3 + 20.272305)
    np.testing.assert_allclose(result.scores, expected)
    assert result.score_mean == pytest.approx(expected.mean())
    assert result.score_std == pytest.approx(expected.std())


def test_maze_episode_length_and_sparse_return():
    """A policy that holds still from a start away from the goal earns exactly 0 over 300 steps; with custom
    references, the score is 100·(0 − lo)/(hi − lo)."""
    task = get_task("maze2d-umaze")
    r = evaluate(lambda obs: -obs[:, 2:] * 1.0, task, episodes=2, seed=0, ref_random=10.0, ref_expert=110.0)
    assert r.lengths == [300, 300]
    assert r.returns == [0.0, 0.0]
    assert r.scores == [-10.0, -10.0]
