import numpy as np
import pytest
import torch

from dydiff.diagnostics import errors, heldout_windows, one_step, refinement_error, rollout_error, simulate


class Replay:
    """A 'DM' that is the real simulator: its error against the simulator must be exactly zero."""

    kind, horizon = "oracle", 12

    def __init__(self, ds):
        self.ds = ds

    def sample(self, s0, actions, generator=None, chunk=None):
        states, _ = simulate(self.ds, s0.numpy(), actions.numpy())
        return torch.as_tensor(states)


class Drift:
    """A 'dynamics ensemble' with a constant bias of 0.01 per step in x: error t·0.01 in x after t steps."""

    def step(self, s, a, generator=None, deterministic=True):  # one true step, then the bias
        nxt = torch.as_tensor(simulate(self.ds, s.numpy(), a[:, None].numpy())[0][:, 1])
        nxt[:, 0] += 0.01
        return nxt

    def rollout(self, s0, actions, generator=None):
        states = torch.as_tensor(simulate(self.ds, s0.numpy(), actions.numpy())[0])
        states[:, :, 0] += 0.01 * torch.arange(actions.shape[1] + 1)
        return states


class Pre:
    def __init__(self, ds, held):
        self.dynamics = Drift()
        self.dynamics.ds = ds
        self.denoiser = Replay(ds)
        self.normalizer = type("N", (), {"scale": np.full(6, 2.0)})()
        self.manifest = {"holdout_episodes": held}


def test_simulator_replays_dataset_windows(umaze_ds):
    held = np.arange(umaze_ds.num_episodes)
    s0, actions, rows = heldout_windows(umaze_ds, held, 12, 10, seed=0)
    states, inexact = simulate(umaze_ds, s0, actions, rows)
    assert inexact == 0
    for k, r in enumerate(rows):
        np.testing.assert_allclose(states[k, 1:], umaze_ds.next_observations[r : r + 12], atol=1e-5)


def test_rollout_error_arithmetic(umaze_ds, tmp_path):
    pre = Pre(umaze_ds, np.arange(umaze_ds.num_episodes).tolist())
    rep = rollout_error(pre, umaze_ds, windows=10, seed=0, out_dir=tmp_path)
    assert rep["models"]["oracle"]["e"] == [0.0] * 13 and rep["models"]["oracle"]["E"][-1] == 0.0
    e_m = np.array(rep["models"]["ensemble"]["e"])
    np.testing.assert_allclose(e_m, (0.01 * np.arange(13)) ** 2, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(rep["models"]["ensemble"]["e_norm"], e_m / 4.0, rtol=1e-4, atol=1e-9)
    assert rep["summary"]["e_m_L"] == rep["models"]["ensemble"]["e"][-1]
    assert rep["models"]["ensemble"]["in_wall"] >= 0 and rep["true_in_wall"] == 0
    assert (tmp_path / "rollout_error.json").exists()


def test_errors_units():
    pred, true = np.zeros((2, 3, 2)), np.ones((2, 3, 2))
    out = errors(pred, true, np.array([1.0, 2.0]))
    assert out["e"] == [2.0] * 3 and out["E"] == [2.0, 4.0, 6.0]
    assert out["e_norm"] == [1.25] * 3


@pytest.mark.parametrize("blend", [1.0, 0.5])
def test_refinement_error_shrinks_by_the_blend_each_iteration(umaze_ds, blend):
    """A constant policy keeps the actions, so the real trajectory is the same at every iteration; the 'DM'
    replays the simulator exactly, so iteration m's error is (1 − blend)^m times the ensemble's, and the total
    MSE (1 − blend)^(2m) times."""
    pre = Pre(umaze_ds, np.arange(umaze_ds.num_episodes).tolist())
    const = lambda obs: torch.tensor([[0.3, -0.2]]).repeat(len(obs), 1)  # noqa: E731
    rep = refinement_error(pre, umaze_ds, const, iterations=3, windows=10, seed=0, blend=blend)
    mse = [r["total_mse"] for r in rep["iterations"]]
    assert [r["iteration"] for r in rep["iterations"]] == [0, 1, 2, 3] and mse[0] > 1e-4
    for m in (1, 2, 3):
        assert mse[m] == pytest.approx(mse[0] * (1 - blend) ** (2 * m), rel=1e-3, abs=1e-9)
    norm = [r["total_mse_norm"] for r in rep["iterations"]]
    np.testing.assert_allclose(norm, np.array(mse) / 4.0, rtol=1e-4)  # the normaliser's scale is 2
    assert all(r["true_legal"] == 10 for r in rep["iterations"])  # the real ball never enters a wall
    maze = umaze_ds.task.grid
    assert [r["legal"] for r in rep["iterations"]] == [int(maze.legal(np.array(xy)[:, 1:]).sum())
                                                       for xy in rep["xy"]]
    assert np.array(rep["xy"]).shape == (4, 10, 13, 2)
    # every ensemble transition is one true step plus 0.01 in x; the replayed ones are the simulator's own
    step = [r["one_step_mse"] for r in rep["iterations"]]
    assert step[0] == pytest.approx(1e-4, rel=1e-3)
    assert rep["iterations"][0]["one_step_median"] == pytest.approx(1e-4, rel=1e-3)
    assert rep["iterations"][0]["one_step_mse_norm"] == pytest.approx(1e-4 / 4.0, rel=1e-3)
    if blend == 1.0:
        assert step[1:] == pytest.approx([0.0] * 3, abs=1e-9)


def test_one_step_error_of_a_jittered_simulator_trajectory(umaze_ds):
    """The simulator's own trajectory has no one-step error; +0.1 in x at every other state makes the first
    transition exactly 0.1² wrong: a trajectory can stay near the real one and still be wrong step by step."""
    held = np.arange(umaze_ds.num_episodes)
    s0, actions, rows = heldout_windows(umaze_ds, held, 12, 5, seed=0)
    states, _ = simulate(umaze_ds, s0, actions, rows)
    assert one_step(umaze_ds, states, actions).sum(-1) == pytest.approx(np.zeros((5, 12)), abs=1e-9)
    jitter = states.copy()
    jitter[:, 1::2, 0] += 0.1
    err = one_step(umaze_ds, jitter, actions).sum(-1)
    assert err.shape == (5, 12) and err[:, 0] == pytest.approx(np.full(5, 0.01), rel=1e-3)


class Noisy(Replay):
    """The simulator plus N(0, 0.1²) on x at every step after s_0, drawn from the generator."""

    kind = "noisy"

    def sample(self, s0, actions, generator=None, chunk=None):
        states = super().sample(s0, actions)
        states[:, 1:, 0] += 0.1 * torch.randn(states[:, 1:, 0].shape, generator=generator, dtype=states.dtype)
        return states


def test_spread_and_cost_and_each_model_its_own_draws(umaze_ds):
    pre = Pre(umaze_ds, np.arange(umaze_ds.num_episodes).tolist())
    alone = rollout_error(pre, umaze_ds, windows=10, seed=0, denoisers={"noisy": Noisy(umaze_ds)},
                          spread_samples=400, cost_trajectories=20)
    both = rollout_error(pre, umaze_ds, windows=10, seed=0, spread_samples=400, cost_trajectories=20,
                         denoisers={"oracle": Replay(umaze_ds), "noisy": Noisy(umaze_ds)})
    assert alone["models"]["noisy"]["e"] == both["models"]["noisy"]["e"]  # not moved by the other model's draws
    spread = np.array(alone["models"]["noisy"]["spread"])
    assert spread[0] == 0.0 and np.abs(spread[1:] / 0.01 - 1).max() < 0.15  # Var = 0.1², 400 samples
    assert both["models"]["oracle"]["spread"] == [0.0] * 13 and both["models"]["ensemble"]["spread"] == [0.0] * 13
    assert both["models"]["noisy"]["seconds"] > 0 and both["cost_trajectories"] == 20


def test_table_columns(umaze_ds):
    from dydiff.diagnostics import table

    pre = Pre(umaze_ds, np.arange(umaze_ds.num_episodes).tolist())
    rep = rollout_error(pre, umaze_ds, windows=10, seed=0, cost_trajectories=20)
    lines = table(rep).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    oracle = [c.strip() for c in lines[3].strip("|").split("|")]
    assert head[:5] == ["model", "e(1)", "e(6)", "e(12)", "E(12)"] and head[-1].startswith("share")
    assert oracle[0] == "oracle" and oracle[1:5] == ["0", "0", "0", "0"] and oracle[-1] == "1.00"
    assert lines[2].split("|")[-2].strip() == "1.00"  # the ensemble against itself


def test_table_without_walls():
    """A locomotion report has no wall counts: the table leaves the column out."""
    from dydiff.diagnostics import table

    m = {"e": [0.0, 1.0, 2.0, 3.0, 4.0], "E": [0.0, 1.0, 3.0, 6.0, 10.0], "spread": [0.0] * 5, "seconds": 0.5}
    rep = {"horizon": 4, "cost_trajectories": 2048, "models": {"ensemble": m, "regressor": {**m, "e": [0.0] * 5}}}
    lines = table(rep).splitlines()
    assert "in walls" not in lines[0] and len(lines) == 4
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["regressor", "0", "0", "0", "10", "0", "0.50",
                                                                    "1.00"]
