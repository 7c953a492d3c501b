import numpy as np
import torch

from dydiff.envs.registry import get_task


def test_hopper_termination_hand_made_states():
    task = get_task("hopper")
    ok = np.zeros(11)
    ok[0] = 1.25
    fallen, tilted, wild = ok.copy(), ok.copy(), ok.copy()
    fallen[0] = 0.6
    tilted[1] = 0.25
    wild[7] = 150.0
    done = task.terminal(np.stack([ok, fallen, tilted, wild]))
    assert done.tolist() == [False, True, True, True]
    assert task.terminal(torch.as_tensor(np.stack([ok, fallen]))).tolist() == [False, True]


def test_walker_termination_hand_made_states():
    task = get_task("walker2d")
    s = np.zeros((5, 17))
    s[:, 0] = [1.2, 0.7, 2.1, 1.2, 1.2]
    s[:, 1] = [0.0, 0.0, 0.0, 1.1, -0.9]
    assert task.terminal(s).tolist() == [False, True, True, True, False]


def test_never_terminating_tasks():
    for name in ("halfcheetah", "maze2d-umaze"):
        task = get_task(name)
        s = np.full((3, task.obs_dim), 1e6)
        assert task.terminal(s).tolist() == [False] * 3
        assert task.terminal(torch.zeros(2, task.obs_dim)).dtype == torch.bool
