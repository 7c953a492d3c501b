import h5py
import numpy as np
import pytest
from conftest import make_arrays

from dydiff.data.d4rl import read_d4rl
from dydiff.data.dataset import OfflineDataset
from dydiff.errors import DatasetError
from dydiff.sources import load_dataset


def _write(path, arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return str(path)


def test_episode_structure_and_summary():
    arrays = make_arrays([3, 4, 2], terminal_last=(1,))
    ds = OfflineDataset.from_arrays(arrays, "maze2d-umaze", "test")
    assert ds.episode_ends.tolist() == [3, 7, 9]
    assert ds.episode_starts.tolist() == [0, 3, 7]
    s = ds.summary()
    assert (s["transitions"], s["episodes"], s["terminals"], s["timeouts"]) == (9, 3, 1, 2)
    returns = [arrays["rewards"][a:b].sum() for a, b in ((0, 3), (3, 7), (7, 9))]
    assert s["return_min"] == pytest.approx(min(returns), abs=1e-5)
    assert s["return_mean"] == pytest.approx(np.mean(returns), abs=1e-5)
    assert s["return_max"] == pytest.approx(max(returns), abs=1e-5)
    np.testing.assert_array_equal(ds.episode_states(1), np.concatenate(
        [arrays["observations"][3:7], arrays["next_observations"][6:7]]))


def test_unflagged_discontinuity_splits_episodes():
    arrays = make_arrays([3, 4])
    arrays["timeouts"][2] = False  # boundary no longer flagged, but row 3 does not continue row 2
    ds = OfflineDataset.from_arrays(arrays, "maze2d-umaze", "test")
    assert ds.episode_ends.tolist() == [3, 7]


def test_fingerprint_is_content_hash():
    a = make_arrays([5, 5])
    f1 = OfflineDataset.from_arrays(a, "maze2d-umaze", "x").fingerprint
    assert OfflineDataset.from_arrays({k: v.copy() for k, v in a.items()}, "maze2d-umaze", "y").fingerprint == f1
    a["rewards"][3] += 1.0
    assert OfflineDataset.from_arrays(a, "maze2d-umaze", "x").fingerprint != f1
    assert len(f1) == 16


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("actions"), r"missing key\(s\) \['actions'\]"),
        (lambda a: a.update(rewards=a["rewards"][:-1]), "different lengths"),
        (lambda a: a["observations"].__setitem__((2, 1), np.nan), "NaN/inf"),
        (lambda a: a["rewards"].__setitem__(4, np.inf), "rewards has 1 NaN/inf"),
        (lambda a: a.update({k: v[:0] for k, v in a.items()}), "empty"),
        (lambda a: a.update(observations=a["observations"][:, :3], next_observations=a["next_observations"][:, :3]),
         r"observations has shape \(8, 3\), but task 'maze2d-umaze' needs \(N, 4\)"),
        (lambda a: a.update(actions=np.zeros((8, 3), np.float32)), r"actions has shape \(8, 3\)"),
    ],
)
def test_bad_input_raises_clear_error(tmp_path, mutate, message):
    arrays = make_arrays([4, 4])
    mutate(arrays)
    with pytest.raises(DatasetError, match=message) as e:
        OfflineDataset.from_arrays(arrays, "maze2d-umaze", "my-source")
    assert str(e.value).startswith("[my-source]")
    # the same failure through the HDF5 reader names the file
    path = _write(tmp_path / "bad.hdf5", arrays)
    with pytest.raises(DatasetError, match=message) as e:
        read_d4rl(path, "maze2d-umaze")
    assert str(e.value).startswith(f"[{path}]")


def test_not_hdf5_and_missing_path(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    p = tmp_path / "notes.hdf5"
    p.write_text("this is not HDF5")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_dataset(str(p), task="hopper")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(str(tmp_path / "missing.hdf5"), task="hopper")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset("hopper-medium-v2", data_dir=tmp_path)  # D4RL name, not downloaded here
