import numpy as np
import pytest

from dydiff.builtin.maze import expert_policy, generate_maze_dataset
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.maze import LAYOUTS, Maze, WaypointController
from dydiff.envs.registry import get_task


def test_grid_conversions_match_gymnasium_robotics():
    task = get_task("maze2d-medium")
    env = task.make_env()
    maze = env.unwrapped.maze
    for cell in task.grid.free_cells:
        np.testing.assert_allclose(task.grid.cell_to_xy(cell), maze.cell_rowcol_to_xy(np.array(cell)))
        assert task.grid.xy_to_cell(task.grid.cell_to_xy(cell) + 0.3) == tuple(maze.cell_xy_to_rowcol(
            task.grid.cell_to_xy(cell) + 0.3))
    env.close()


def test_bfs_path_in_umaze():
    maze = Maze(LAYOUTS["umaze"])
    assert maze.path((3, 1), (1, 1)) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert maze.in_wall(np.array([[0.0, 0.0], [-1.0, 1.0], [9.0, 9.0]])).tolist() == [True, False, True]


@pytest.mark.parametrize("name", ["maze2d-umaze", "maze2d-medium"])
def test_controller_reaches_goal(name):
    """The noiseless controller drives from every free cell to the far goal and stays there."""
    task = get_task(name)
    env = task.make_env()
    env.reset(seed=0)
    for cell in task.grid.free_cells[:: max(1, len(task.grid.free_cells) // 6)]:
        start = np.concatenate([task.grid.cell_to_xy(cell), [0.0, 0.0]])
        task.set_state(env, start)
        ctrl = WaypointController(task.grid)
        ctrl.set_target(start[:2], task.goal)
        s, reached_at = start, None
        for t in range(task.episode_length):
            a, reached = ctrl.act(s[:2], s[2:])
            if reached and reached_at is None:
                reached_at = t
            s = task.step_state(env, a).astype(np.float64)
        assert reached_at is not None, f"never reached the goal from {cell}"
        assert np.linalg.norm(s[:2] - task.goal) < 0.5
    env.close()


def test_expert_near_100_and_far_above_random():
    task = get_task("maze2d-umaze")
    ds = generate_maze_dataset(task, 500, progress=False)
    from dydiff.builtin.maze import measure_references

    ref_random, ref_expert = measure_references(task, episodes=30)
    expert = evaluate(expert_policy(task, 30), task, 30, seed=123, ref_random=ref_random, ref_expert=ref_expert)
    rand = evaluate(random_policy(task, 1), task, 30, seed=123, ref_random=ref_random, ref_expert=ref_expert)
    assert 85 <= expert.score_mean <= 115
    assert expert.return_mean >= 5 * max(rand.return_mean, 1e-9)
    assert expert.return_mean > 150  # it sits on the goal for most of the 300 steps
    assert len(ds) == 500


def test_generator_semantics_and_determinism():
    task = get_task("maze2d-umaze")
    a = generate_maze_dataset(task, 3000, seed=7, progress=False)
    b = generate_maze_dataset(task, 3000, seed=7, progress=False)
    c = generate_maze_dataset(task, 3000, seed=8, progress=False)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    # one continuous run: every next observation is the following observation
    np.testing.assert_array_equal(a.observations[1:], a.next_observations[:-1])
    assert not a.terminals.any() and a.timeouts[-1]
    assert a.num_episodes == a.timeouts.sum() > 10  # goals are reached and replaced
    assert np.all(np.abs(a.actions) <= 1.0)
    # sparse reward relabelled on the fixed evaluation goal, radius 0.5
    d = np.linalg.norm(a.next_observations[:, :2] - task.goal, axis=1)
    np.testing.assert_array_equal(a.rewards, (d <= 0.5).astype(np.float32))
    assert 0 < a.rewards.mean() < 0.5
    # the state never enters a wall
    assert not task.grid.in_wall(a.observations[:, :2]).any()
    # the goal an episode ends on is reached: the last state of each episode is within 0.1 of it
    ends = a.episode_ends[:-1] - 1
    reached = np.linalg.norm(a.next_observations[ends, :2] - a.infos["goal"][ends], axis=1)
    assert np.mean(reached < 0.1) > 0.9


def test_set_state_reproduces_next_observation(umaze_ds):
    task = umaze_ds.task
    env = task.make_env()
    env.reset(seed=0)
    for i in np.random.default_rng(0).choice(len(umaze_ds), 300, replace=False):
        assert task.set_state(env, umaze_ds.observations[i])
        nxt = task.step_state(env, umaze_ds.actions[i])
        np.testing.assert_allclose(nxt, umaze_ds.next_observations[i], atol=1e-5, rtol=0)
    env.close()


def test_set_state_locomotion_from_observation_and_from_qpos():
    task = get_task("hopper")
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        u = env.unwrapped
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        nxt, *_ = env.step(a)
        rows.append((obs, qpos, qvel, a, nxt))
        obs = nxt
    replay = task.make_env()
    replay.reset(seed=1)
    for obs, qpos, qvel, a, nxt in rows:
        exact = task.set_state(replay, obs)
        assert exact == bool(np.all(np.abs(qvel) < 10))
        if exact:
            np.testing.assert_allclose(task.step_state(replay, a), nxt, atol=1e-5)
        assert task.set_state(replay, obs, qpos, qvel)
        np.testing.assert_allclose(task.step_state(replay, a), nxt, atol=1e-5)
    env.close()
    replay.close()


def test_legal_trajectory_counter_on_hand_made_paths():
    """U-maze: free cells (1,1)-(1,3), (2,3), (3,1)-(3,3); (2,1) and (2,2) are the inner wall."""
    m = Maze(LAYOUTS["umaze"])
    xy = lambda cells: np.array([m.cell_to_xy(c) for c in cells])  # noqa: E731
    around = xy([(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)])  # the legal way round
    through = xy([(1, 1), (2, 1), (3, 1), (3, 2), (3, 3), (3, 3), (3, 3)])  # cuts through the wall at (2, 1)
    off_grid = around.copy()
    off_grid[3] = [3.0, 0.0]  # x = 3 is outside the 5-wide grid (x in [-2.5, 2.5])
    grazing = around.copy()
    grazing[2] = m.cell_to_xy((1, 3)) + [0.49, 0.0]  # inside its free cell, 0.01 from the outer wall
    paths = np.stack([around, through, off_grid, grazing])
    assert m.legal(paths).tolist() == [True, False, False, True]
    assert int(m.legal(paths).sum()) == 2
    assert m.legal(np.stack([paths, paths])).shape == (2, 4)  # leading batch dimensions
