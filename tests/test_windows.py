import numpy as np
import pytest
import torch
from conftest import make_arrays

from dydiff.data.dataset import OfflineDataset
from dydiff.data.windows import TrajectoryWindows


@pytest.fixture
def ds():
    # episodes of 3, 10 and 5 transitions: shorter than, longer than and equal to L = 5
    return OfflineDataset.from_arrays(make_arrays([3, 10, 5]), "maze2d-umaze", "test")


def test_counts(ds):
    w = TrajectoryWindows(ds, horizon=5)
    assert len(w) == 1 + (10 - 5 + 1) + 1
    x, mask = w[torch.arange(len(w))]
    assert x.shape == (8, 6, 4 + 2) and mask.shape == (8, 6)


def test_short_episode_is_padded_with_mask(ds):
    w = TrajectoryWindows(ds, horizon=5, pad_value=-1.1)
    x, mask = w[0]
    assert mask.tolist() == [True, True, True, True, False, False]  # 3 transitions → 4 states
    assert torch.all(x[4:] == -1.1)
    assert torch.all(x[3, 4:] == -1.1)  # the last state has no action
    np.testing.assert_allclose(x[:4, :4].numpy(), _norm_states(w, np.concatenate(
        [ds.observations[:3], ds.next_observations[2:3]])), atol=1e-6)
    np.testing.assert_allclose(x[:3, 4:].numpy(), _norm_actions(w, ds.actions[:3]), atol=1e-6)


def test_long_episode_windows_are_contiguous_and_unpadded(ds):
    w = TrajectoryWindows(ds, horizon=5)
    for k in range(6):  # windows of the 10-step episode, which starts at transition 3
        x, mask = w[1 + k]
        assert bool(mask.all())
        expected = np.concatenate([ds.observations[3 + k : 3 + k + 5], ds.next_observations[3 + k + 4 : 3 + k + 5]])
        np.testing.assert_allclose(x[:, :4].numpy(), _norm_states(w, expected), atol=1e-6)
        np.testing.assert_allclose(x[:5, 4:].numpy(), _norm_actions(w, ds.actions[3 + k : 3 + k + 5]), atol=1e-6)
    x, mask = w[7]  # the 5-step episode gives exactly one full window
    assert bool(mask.all())
    states, actions = w.split(x)
    assert states.shape == (6, 4) and actions.shape == (5, 2)


def test_minmax_window_range(ds):
    w = TrajectoryWindows(ds, horizon=5)
    x, mask = w[torch.arange(len(w))]
    valid = x[mask][:, :4]
    assert float(valid.min()) >= -1 - 1e-6 and float(valid.max()) <= 1 + 1e-6
    assert float(valid.min()) == pytest.approx(-1, abs=1e-6)


def _norm_states(w, s):
    return ((s - w.normalizer.center[:4]) / w.normalizer.scale[:4]).astype(np.float32)


def _norm_actions(w, a):
    return ((a - w.normalizer.center[4:]) / w.normalizer.scale[4:]).astype(np.float32)
