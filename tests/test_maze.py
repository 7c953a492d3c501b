import mujoco
import numpy as np
import pytest

from dydiff.builtin.maze import controller_returns, generate_maze_dataset, measure_references
from dydiff.envs.d4rl_maze import maze_xml
from dydiff.envs.evaluation import evaluate, random_policy
from dydiff.envs.maze import LAYOUTS, Maze, WaypointController
from dydiff.envs.registry import get_task

MAZES = ("maze2d-umaze", "maze2d-medium", "maze2d-large")


@pytest.mark.parametrize("name", MAZES)
def test_mjcf_has_the_layouts_walls_and_d4rls_body_offset(name):
    task = get_task(name)
    model = mujoco.MjModel.from_xml_string(maze_xml(LAYOUTS[task.maze]))
    walls = {}
    for g in range(model.ngeom):
        gname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)
        if gname.startswith("wall_"):
            r, c = map(int, gname.split("_")[1:])
            walls[(r, c)] = model.geom_pos[g].copy()
            np.testing.assert_array_equal(model.geom_size[g], [0.5, 0.5, 0.2])
            assert (model.geom_contype[g], model.geom_conaffinity[g], model.geom_condim[g]) == (2, 1, 1)
    assert set(walls) == {tuple(rc) for rc in np.argwhere(task.grid.grid)}  # a box exactly where '#' is
    for (r, c), pos in walls.items():
        np.testing.assert_array_equal(pos, [r + 1.0, c + 1.0, 0.0])
    body = model.body("particle")
    np.testing.assert_array_equal(body.pos, [1.2, 1.2, 0.0])
    ball = model.geom("particle_geom")
    assert ball.type == mujoco.mjtGeom.mjGEOM_SPHERE and ball.size[0] == 0.1 and model.geom_margin[ball.id] == 0.002
    np.testing.assert_allclose(model.geom_friction[ball.id], [0.5, 0.1, 0.1])
    assert model.opt.timestep == 0.01 and model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    np.testing.assert_array_equal(model.actuator_gear[:, 0], [100, 100])
    np.testing.assert_array_equal(model.dof_damping, [1, 1])


def test_walls_stop_the_ball_0_2_off_the_cell_grid():
    """U-maze cell (1, 1): wall cells (0, 1) and (2, 1) above and below in x. With D4RL's offset their boxes
    cover x ≤ 0.3 and x ≥ 1.3, so a ball of radius 0.1 pushed either way stops at x = 0.4 or x = 1.2: not
    symmetric about the cell centre x = 1, as it would be without the offset (0.6 and 1.4)."""
    task = get_task("maze2d-umaze")
    env = task.make_env()
    env.reset(seed=0)
    for push, stop in ((-1.0, 0.4), (1.0, 1.2)):
        task.set_state(env, np.array([1.0, 1.0, 0.0, 0.0]))
        for _ in range(200):
            s = task.step_state(env, np.array([push, 0.0]))
        assert abs(s[0] - stop) < 0.01, (push, s)
        assert abs(s[1] - 1.0) < 1e-6 and abs(s[2]) < 0.05
        assert not task.grid.in_wall(s[:2]) and task.grid.in_wall(s[:2] + [np.sign(push) * 0.11, 0])
    env.close()


@pytest.mark.parametrize("name", ["maze2d-umaze", "maze2d-large"])
def test_step_many_is_step_from_every_state(name):
    """MazeEnv.step_many (all states in one MuJoCo rollout call) against ``step`` one env at a time, over 40 steps
    of pushes into the walls, with speeds beyond the ±5 clip and actions beyond ±1: the same states to 1e-9
    (the solver's warm start is the only difference), and the env's own state is left as it was."""
    task = get_task(name)
    env = task.make_env().unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    cells = np.array(env.reset_cells, np.float64)
    x = np.concatenate([cells[rng.integers(len(cells), size=32)], rng.uniform(-8, 8, (32, 2))], 1)
    x[:, :2] += rng.uniform(-0.3, 0.3, (32, 2))
    actions = rng.uniform(-1.5, 1.5, (40, 32, 2))
    one = [task.make_env().unwrapped for _ in range(32)]
    for e, s in zip(one, x, strict=True):
        e.set_state(s[:2], s[2:])
    own = env._obs().copy()
    walls = [g for g in range(env.model.ngeom) if env.model.geom(g).name.startswith("wall_")]
    contacts = 0
    for a in actions:
        x = env.step_many(x, a)
        ref = np.stack([e.step(ai)[0] for e, ai in zip(one, a, strict=True)])
        np.testing.assert_allclose(x, ref, atol=1e-9, rtol=0)
        contacts += sum(np.isin(e.data.contact.geom, walls).any() for e in one)
    assert contacts > 50  # the walls were hit
    np.testing.assert_array_equal(env._obs(), own)


def test_wall_geometry_of_both_frames():
    d4rl, gym = Maze(LAYOUTS["umaze"], "d4rl"), Maze(LAYOUTS["umaze"], "gymnasium")
    assert d4rl.wall_box((0, 1)) == pytest.approx((-0.7, 0.3, 0.3, 1.3))
    assert gym.wall_box((0, 1)) == pytest.approx((-1.5, -0.5, 1.5, 2.5))
    # cell (1, 3)'s right-hand neighbour (1, 4) is a wall: its box starts at y = 3.3 in D4RL's frame
    assert d4rl.in_wall(np.array([[1.0, 3.29], [1.0, 3.31], [1.0, 0.35], [1.0, 0.25], [4.5, 2.0]])).tolist() == [
        False, True, False, True, True]
    assert gym.in_wall(np.array([[0.0, 0.0], [-1.0, 1.0], [9.0, 9.0]])).tolist() == [True, False, True]
    for m in (d4rl, gym):
        for cell in m.free_cells:
            assert m.xy_to_cell(m.cell_to_xy(cell) + 0.3) == cell  # nearest centre
            assert not m.in_wall(m.cell_to_xy(cell))


def test_grid_conversions_match_gymnasium_robotics():
    task = get_task("pointmaze-medium")
    env = task.make_env()
    maze = env.unwrapped.maze
    for cell in task.grid.free_cells:
        np.testing.assert_allclose(task.grid.cell_to_xy(cell), maze.cell_rowcol_to_xy(np.array(cell)))
        assert task.grid.xy_to_cell(task.grid.cell_to_xy(cell) + 0.3) == tuple(maze.cell_xy_to_rowcol(
            task.grid.cell_to_xy(cell) + 0.3))
    env.close()


def test_q_iteration_plan_and_its_tie_breaking():
    maze = Maze(LAYOUTS["umaze"])
    assert maze.plan((3, 1), (1, 1)) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert maze.plan((1, 1), (1, 1)) == [(1, 1)]
    # medium (1, 1) → (2, 2): two shortest paths; gridcraft's action order (NOOP, UP, DOWN, LEFT, RIGHT in
    # (row, col) steps (0, −1), (0, 1), (−1, 0), (1, 0)) makes argmax take DOWN = column + 1 first
    assert Maze(LAYOUTS["medium"]).plan((1, 1), (2, 2)) == [(1, 2), (2, 2)]


@pytest.mark.parametrize("name", MAZES)
def test_controller_reaches_the_goal_from_every_cell(name):
    """The noiseless controller, planning afresh, drives from every free cell to the goal and stays there."""
    task = get_task(name)
    env = task.make_env()
    env.reset(seed=0)
    for cell in task.grid.free_cells:
        s = np.concatenate([task.grid.cell_to_xy(cell), [0.0, 0.0]])
        task.set_state(env, s)
        ctrl, solved_at = WaypointController(task.grid), None
        for t in range(task.episode_length):
            a, solved = ctrl.act(s[:2], s[2:], task.goal)
            solved_at = t if solved and solved_at is None else solved_at
            s = task.step_state(env, a).astype(np.float64)
        assert solved_at is not None, f"never reached the goal from {cell}"
        assert np.linalg.norm(s[:2] - task.goal) < 0.1
    env.close()


def test_reference_protocol_matches_d4rls_constants_on_umaze():
    """D4RL's reference protocol (100 episodes, one persistent controller): the controller's mean lies within its
    95% interval of REF_MAX and the random policy's within its interval of REF_MIN (all mazes: README table)."""
    task = get_task("maze2d-umaze")
    ctrl = controller_returns(task, 100, seed=0)
    rand = np.array(evaluate(random_policy(task, 0), task, 100, 0).returns)
    for r, ref in ((ctrl, task.ref_expert), (rand, task.ref_random)):
        assert abs(r.mean() - ref) <= 1.96 * r.std(ddof=1) / 10 + 15, (r.mean(), ref)
    assert abs(ctrl.mean() - task.ref_expert) <= 1.96 * ctrl.std(ddof=1) / 10
    # a controller that plans every episode afresh scores far higher: D4RL's REF_MAX is the persistent one's
    assert controller_returns(task, 30, seed=0, persistent=False).mean() > task.ref_expert + 40
    assert measure_references(task, 10) == (
        evaluate(random_policy(task, 0), task, 10, 0).return_mean, controller_returns(task, 10, 0).mean())


def test_evaluation_protocol_returns_a_scripted_policys_return():
    """Lock-step batched evaluation gives each episode the return of running it alone: full horizon, sparse reward
    on the next state, seeded resets."""
    task = get_task("maze2d-umaze")
    # the scripted policy: a fresh controller per episode, episode i's jitter from seed 3 + i, batched
    ctrls = [WaypointController(task.grid, rng=np.random.default_rng(3 + i)) for i in range(6)]

    def act(obs):
        return np.stack([c.act(o[:2], o[2:], task.goal)[0] for c, o in zip(ctrls, obs.astype(np.float64),
                                                                          strict=True)])

    res = evaluate(act, task, 6, seed=3)
    alone = controller_returns(task, 6, seed=3, persistent=False)
    assert res.lengths == [300] * 6
    np.testing.assert_array_equal(res.returns, alone)
    env = task.make_env()
    obs, _ = env.reset(seed=3)
    assert tuple(np.round(obs[:2]).astype(int)) in task.grid.free_cells and np.all(np.abs(obs[:2] - np.round(
        obs[:2])) <= 0.1)
    env.close()


def test_reward_relabel_rule_on_a_hand_made_path():
    """D4RL's relabel: 1 where the *current* position is within 0.5 (inclusive) of the goal; the live reward is
    the same rule on the next state."""
    task = get_task("maze2d-umaze")  # goal: cell (1, 1), at (1, 1)
    path = np.array([[3, 1], [3, 3], [1, 3], [1, 2], [1, 1.5], [1, 1.2], [1.3, 1.4], [1.0, 1.0]], np.float32)
    obs = np.concatenate([path, np.zeros_like(path)], 1)
    assert task.maze_reward(obs).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    ds = generate_maze_dataset(task, 4000, seed=2, progress=False)
    np.testing.assert_array_equal(ds.rewards, task.maze_reward(ds.observations))
    assert not np.array_equal(ds.rewards, task.maze_reward(ds.next_observations))  # not the next state's


def test_generator_semantics_and_determinism():
    task = get_task("maze2d-umaze")
    a = generate_maze_dataset(task, 3000, seed=7, progress=False)
    b = generate_maze_dataset(task, 3000, seed=7, progress=False)
    c = generate_maze_dataset(task, 3000, seed=8, progress=False)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    np.testing.assert_array_equal(a.observations[1:], a.next_observations[:-1])  # one continuous run
    assert not a.terminals.any() and a.timeouts[-1]
    assert a.num_episodes == a.timeouts.sum() > 10  # targets are reached and replaced
    assert np.all(np.abs(a.actions) <= 1.0)
    assert 0 < a.rewards.mean() < 0.5
    assert not task.grid.in_wall(a.observations[:, :2]).any()
    np.testing.assert_allclose(a.infos["qpos"], a.observations[:, :2], atol=1e-6)
    # an episode ends where the controller solved its target (within 0.1 of the target cell's centre), or at
    # the 300-step limit; targets lie within 0.1 of a free cell's centre
    ends = a.episode_ends[:-1] - 1
    cells = np.round(a.infos["goal"][ends])
    reached = np.linalg.norm(a.observations[ends, :2] - cells, axis=1) < 0.1
    long = np.diff(np.concatenate([[0], a.episode_ends]))[:-1] >= 301
    assert np.all(reached | long) and reached.mean() > 0.9
    assert np.all(np.abs(a.infos["goal"] - np.round(a.infos["goal"])) <= 0.1)
    # D4RL's stale observation after a goal change: the row after each timeout repeats the previous observation
    d = generate_maze_dataset(task, 3000, seed=7, stale_obs=True, progress=False)
    t = np.flatnonzero(d.timeouts[:-1])
    np.testing.assert_array_equal(d.observations[t + 1], d.observations[t])
    np.testing.assert_allclose(d.infos["qpos"][t + 1], d.next_observations[t, :2], atol=1e-6)


def test_set_state_reproduces_next_observation(umaze_ds):
    task = umaze_ds.task
    assert task.maze_frame == "d4rl"
    env = task.make_env()
    env.reset(seed=0)
    for i in np.random.default_rng(0).choice(len(umaze_ds), 300, replace=False):
        assert umaze_ds.set_state(env, i)
        nxt = task.step_state(env, umaze_ds.actions[i])
        np.testing.assert_allclose(nxt, umaze_ds.next_observations[i], atol=1e-5, rtol=0)
    env.close()


def test_pointmaze_variant_builds_and_replays():
    task = get_task("pointmaze-umaze")
    ds = generate_maze_dataset(task, 1500, seed=0, progress=False)
    assert ds.task.env_id == "PointMaze_UMaze-v3" and not task.grid.in_wall(ds.observations[:, :2]).any()
    env = task.make_env()
    env.reset(seed=0)
    for i in range(0, 1500, 97):
        assert task.set_state(env, ds.observations[i])
        np.testing.assert_allclose(task.step_state(env, ds.actions[i]), ds.next_observations[i], atol=1e-5)
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
    off_grid[3] = [4.5, 3.0]  # x = 4.5 is past the last wall row (x ≤ 4.3)
    grazing = around.copy()
    grazing[2] = [1.0, 3.29]  # in cell (1, 3), 0.01 from the wall box of (1, 4), which starts at y = 3.3
    paths = np.stack([around, through, off_grid, grazing])
    assert m.legal(paths).tolist() == [True, False, False, True]
    grazing[2] = [1.0, 3.31]  # inside that box, though nearer (1, 3)'s centre than (1, 4)'s
    assert not m.legal(grazing)
    assert m.legal(np.stack([paths, paths])).shape == (2, 4)  # leading batch dimensions
