import numpy as np
import pytest

from dydiff.errors import DatasetError
from dydiff.types import KEYS


def test_round_trip_through_local_minari_dataset(tmp_path, monkeypatch, umaze_ds):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    from dydiff.data.minari_io import write_minari
    from dydiff.sources import load_dataset

    write_minari(umaze_ds, "dydiff/maze2d-umaze/test-v0")
    ds = load_dataset("minari:dydiff/maze2d-umaze/test-v0")
    assert ds.task.name == "maze2d-umaze"
    assert ds.num_episodes == umaze_ds.num_episodes
    for k in KEYS:
        np.testing.assert_array_equal(getattr(ds, k), getattr(umaze_ds, k))
    assert ds.fingerprint == umaze_ds.fingerprint
    assert (ds.ref_random, ds.ref_expert) == (umaze_ds.ref_random, umaze_ds.ref_expert)


def test_dict_observations_are_flattened(tmp_path, monkeypatch):
    """A PointMaze-style Minari dataset (dict observations) loads as (x, y, vx, vy)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    from dydiff.data.minari_io import load_minari

    rng = np.random.default_rng(0)
    obs = {"observation": rng.normal(size=(6, 4)), "achieved_goal": rng.normal(size=(6, 2)),
           "desired_goal": np.zeros((6, 2))}
    space = gym.spaces.Dict({k: gym.spaces.Box(-np.inf, np.inf, shape=(v.shape[1],)) for k, v in obs.items()})
    buf = EpisodeBuffer(id=0, observations=obs, actions=rng.uniform(-1, 1, size=(5, 2)), rewards=np.ones(5),
                        terminations=np.zeros(5, bool), truncations=np.eye(5, dtype=bool)[-1])
    minari.create_dataset_from_buffers("test/pointmaze/umaze-v0", [buf], observation_space=space,
                                       action_space=gym.spaces.Box(-1, 1, shape=(2,)))
    ds = load_minari("test/pointmaze/umaze-v0")
    assert ds.task.name == "pointmaze-umaze" and len(ds) == 5
    np.testing.assert_allclose(ds.observations, obs["observation"][:-1].astype(np.float32))
    np.testing.assert_allclose(ds.next_observations, obs["observation"][1:].astype(np.float32))


def test_missing_dataset_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    from dydiff.data.minari_io import load_minari

    with pytest.raises(DatasetError, match="minari download mujoco/hopper/medium-v0"):
        load_minari("mujoco/hopper/medium-v0", download=False)
