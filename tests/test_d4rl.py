import h5py
import numpy as np
import pytest
from conftest import make_arrays

from dydiff.data.d4rl import read_d4rl, write_d4rl


def reference_qlearning_dataset(dataset, max_episode_steps, terminate_on_end=False):
    """d4rl.qlearning_dataset, verbatim in logic (d4rl/__init__.py)."""
    n = dataset["rewards"].shape[0]
    obs_, next_obs_, action_, reward_, done_ = [], [], [], [], []
    use_timeouts = "timeouts" in dataset
    episode_step = 0
    for i in range(n - 1):
        obs = dataset["observations"][i].astype(np.float32)
        new_obs = dataset["observations"][i + 1].astype(np.float32)
        action = dataset["actions"][i].astype(np.float32)
        reward = dataset["rewards"][i].astype(np.float32)
        done_bool = bool(dataset["terminals"][i])
        if use_timeouts:
            final_timestep = dataset["timeouts"][i]
        else:
            final_timestep = episode_step == max_episode_steps - 1
        if (not terminate_on_end) and final_timestep:
            episode_step = 0
            continue
        if done_bool or final_timestep:
            episode_step = 0
        obs_.append(obs)
        next_obs_.append(new_obs)
        action_.append(action)
        reward_.append(reward)
        done_.append(done_bool)
        episode_step += 1
    return {"observations": np.array(obs_), "actions": np.array(action_), "next_observations": np.array(next_obs_),
            "rewards": np.array(reward_), "terminals": np.array(done_)}


def _write(path, arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return str(path)


def _raw(lengths, terminal_last, with_timeouts):
    """A D4RL-style file without next_observations: the rows of every episode, including its last state."""
    a = make_arrays(lengths, terminal_last=terminal_last)
    raw = {k: a[k] for k in ("observations", "actions", "rewards", "terminals")}
    if with_timeouts:
        raw["timeouts"] = a["timeouts"]
    return raw


@pytest.mark.parametrize("with_timeouts", [True, False])
def test_without_next_observations_matches_qlearning_dataset(tmp_path, with_timeouts):
    # without timeouts, d4rl cuts episodes at max_episode_steps (1000 for hopper)
    lengths = [7, 1000, 5, 1000, 12] if not with_timeouts else [7, 20, 5, 9, 12]
    raw = _raw(lengths, terminal_last=(0, 2), with_timeouts=with_timeouts)
    raw["observations"] = np.random.default_rng(0).normal(size=(len(raw["rewards"]), 11)).astype(np.float32)
    raw["actions"] = np.random.default_rng(1).uniform(-1, 1, size=(len(raw["rewards"]), 3)).astype(np.float32)
    ds = read_d4rl(_write(tmp_path / "hopper-test.hdf5", raw), "hopper")
    ref = reference_qlearning_dataset(raw, max_episode_steps=1000)
    assert len(ds) == len(ref["rewards"])
    for k in ("observations", "actions", "next_observations", "rewards"):
        np.testing.assert_array_equal(getattr(ds, k), ref[k])
    np.testing.assert_array_equal(ds.terminals, ref["terminals"])


def test_with_next_observations_keeps_every_row(tmp_path):
    a = make_arrays([6, 3, 8], terminal_last=(1,))
    ds = read_d4rl(_write(tmp_path / "maze.hdf5", a), "maze2d-umaze")
    assert len(ds) == 17 and ds.num_episodes == 3
    for k in a:
        np.testing.assert_array_equal(getattr(ds, k), a[k])


def test_with_next_observations_without_timeouts(tmp_path):
    a = make_arrays([6, 3, 8], terminal_last=(0, 1, 2))
    a.pop("timeouts")
    ds = read_d4rl(_write(tmp_path / "maze.hdf5", a), "maze2d-umaze")
    assert len(ds) == 17 and not ds.timeouts.any()
    assert ds.episode_ends.tolist() == [6, 9, 17]


def test_name_lookup_and_write_read_round_trip(tmp_path, monkeypatch, umaze_ds):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    write_d4rl(umaze_ds, tmp_path / "maze2d-umaze-mine-v0.hdf5")
    ds = read_d4rl("maze2d-umaze-mine-v0")
    assert ds.fingerprint == umaze_ds.fingerprint
    assert ds.task.name == "maze2d-umaze"
    np.testing.assert_array_equal(ds.infos["qpos"], umaze_ds.infos["qpos"])
    assert (ds.ref_random, ds.ref_expert) == (umaze_ds.ref_random, umaze_ds.ref_expert)
    with h5py.File(tmp_path / "maze2d-umaze-mine-v0.hdf5") as f:  # the D4RL schema, readable by any tool
        assert {"observations", "actions", "rewards", "terminals", "timeouts", "infos"} <= set(f.keys())
        assert {"qpos", "qvel", "goal"} <= set(f["infos"].keys())


def _d4rl_maze_file(path, n=2000):
    """A maze2d-umaze-v1 file as D4RL's generator writes it: no next_observations, the stale row after each
    timeout, rewards relabelled on the current state, infos/goal, infos/qpos, infos/qvel."""
    from dydiff.builtin.maze import generate_maze_dataset
    from dydiff.envs.registry import get_task

    ds = generate_maze_dataset(get_task("maze2d-umaze"), n, seed=3, stale_obs=True, progress=False)
    raw = {"observations": ds.observations, "actions": ds.actions, "rewards": ds.rewards,
           "terminals": ds.terminals, "timeouts": ds.timeouts,
           **{f"infos/{k}": v.astype(np.float32) for k, v in ds.infos.items()}}
    return _write(path, raw), raw


def test_d4rl_maze2d_file_loads_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    _, raw = _d4rl_maze_file(tmp_path / "maze2d-umaze-sparse-v1.hdf5")  # the name D4RL downloads it under
    ds = read_d4rl("maze2d-umaze-v1")
    assert ds.task.name == "maze2d-umaze" and ds.task.env_id == "dydiff/maze2d-umaze-v1"
    assert (ds.ref_random, ds.ref_expert) == (23.85, 161.86) and ds.measured_refs is None
    ref = reference_qlearning_dataset(raw, max_episode_steps=300)
    for k in ("observations", "actions", "next_observations", "rewards"):
        np.testing.assert_array_equal(getattr(ds, k), ref[k])
    keep = np.flatnonzero(~raw["timeouts"][:-1])
    for k in ("goal", "qpos", "qvel"):
        np.testing.assert_array_equal(ds.infos[k], raw[f"infos/{k}"][keep])
    assert 20 < ds.num_episodes <= raw["timeouts"].sum()  # consecutive timeouts (a target solved at once) merge


@pytest.mark.parametrize("bad, message", [
    (lambda r: r.pop("actions"), r"missing key\(s\) \['actions'\]"),
    (lambda r: r.update(observations=r["observations"][:, :3]), r"observations has shape \(\d+, 3\)"),
    (lambda r: r.update(rewards=r["rewards"][:-5]), "arrays have different lengths"),
    (lambda r: r["actions"].__setitem__((7, 0), np.nan), "actions has 1 NaN/inf value"),
    (lambda r: r.update({"infos/qpos": r["infos/qpos"][:-1]}), "infos/\\* with other lengths"),
])
def test_bad_d4rl_maze2d_files_raise_dataset_errors(tmp_path, bad, message):
    from dydiff.errors import DatasetError

    _, raw = _d4rl_maze_file(tmp_path / "good.hdf5", n=600)
    raw = {k: np.array(v) for k, v in raw.items()}
    bad(raw)
    path = _write(tmp_path / "maze2d-umaze-v1.hdf5", raw)
    with pytest.raises(DatasetError, match=message):
        read_d4rl(path)
