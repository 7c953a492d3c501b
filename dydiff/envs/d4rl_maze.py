"""D4RL's maze2d point-maze environment (``d4rl/pointmaze/maze_model.py``) on current MuJoCo and Gymnasium.

The MJCF is generated from the layout as D4RL's ``point_maze`` does: timestep 0.01, Euler, no gravity, 20 solver
iterations; joints damped 1; geoms with friction (.5, .1, .1), density 1000, margin 0.002, condim 1, contype 2,
conaffinity 1; a sphere of radius 0.1 on a body at (1.2, 1.2) with two slide joints; a 1×1×0.4 box at
(r + 1, c + 1) per wall cell; motors of gear 100 and ctrlrange ±1. The observation is qpos ‖ qvel (D4RL's frame,
see ``envs/maze.py``).

Reset: a uniformly drawn empty or goal cell plus U(±0.1) per coordinate, qvel ~ N(0, 0.1²). Step: clip the action
to ±1, clip qvel to ±5, one MuJoCo step; reward 1 when the new position is within 0.5 of the fixed target (the
goal cell's centre), else 0; never terminates (the time limit is the wrapper's: 300 / 600 / 800 steps).
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

from dydiff.envs.maze import EPISODE_STEPS, GOAL_CELLS, LAYOUTS, Maze

BODY_POS = 1.2  # D4RL's particle body position; walls are at (r + 1, c + 1)


def maze_xml(layout: list[str]) -> str:
    """D4RL's point-maze MJCF for a layout (visual-only textures left out)."""
    walls = "\n".join(
        f'    <geom name="wall_{r}_{c}" type="box" pos="{r + 1.0} {c + 1.0} 0" size="0.5 0.5 0.2" '
        f'conaffinity="1" rgba=".7 .5 .3 1"/>'
        for r, row in enumerate(layout) for c, ch in enumerate(row) if ch == "#"
    )
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"/>
    <body name="particle" pos="{BODY_POS} {BODY_POS} 0">
      <geom name="particle_geom" type="sphere" size="0.1" rgba="0 0 1 1" contype="1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1.0 1.0" ctrllimited="true" gear="100"/>
    <motor joint="ball_y" ctrlrange="-1.0 1.0" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>
"""


class MazeEnv(gym.Env):
    """D4RL's ``MazeEnv(maze_spec, reward_type='sparse', reset_target=False)`` as a Gymnasium env."""

    metadata = {"render_modes": []}

    def __init__(self, maze: str = "umaze"):
        if maze not in LAYOUTS:
            raise ValueError(f"unknown maze {maze!r}: {', '.join(LAYOUTS)}")
        self.maze = Maze(LAYOUTS[maze], "d4rl")
        self.model = mujoco.MjModel.from_xml_string(maze_xml(LAYOUTS[maze]))
        self.data = mujoco.MjData(self.model)
        self.target = self.maze.cell_to_xy(GOAL_CELLS[maze])
        # D4RL: the sorted empty cells, then the goal cell
        goal = GOAL_CELLS[maze]
        self.reset_cells = sorted(c for c in self.maze.free_cells if c != goal) + [goal]
        self.many = mujoco.MjData(self.model)  # step_many's scratch: the env's own state stays as it is
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def set_state(self, qpos, qvel) -> None:
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        cell = np.array(self.reset_cells[self.np_random.integers(len(self.reset_cells))], np.float64)
        self.set_state(cell + self.np_random.uniform(-0.1, 0.1, 2), self.np_random.standard_normal(2) * 0.1)
        return self._obs(), {}

    def step(self, action):
        self.set_state(self.data.qpos.copy(), np.clip(self.data.qvel, -5.0, 5.0))
        self.data.ctrl[:] = np.clip(action, -1.0, 1.0)
        mujoco.mj_step(self.model, self.data)
        obs = self._obs()
        reward = float(np.linalg.norm(obs[:2] - self.target) <= 0.5)
        return obs, reward, False, False, {}

    def step_many(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """``step`` from B states at once, one call of MuJoCo's rollout: (B, 4) states qpos ‖ qvel and (B, 2)
        actions → the (B, 4) next states, float64. The same clipping and physics as ``step``; only the constraint
        solver's warm start differs (zero here, the last step's there), which moves a state by ~1e-12."""
        nq, nv = self.model.nq, self.model.nv
        state = np.zeros((len(obs), mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
        state[:, 1 : 1 + nq] = obs[:, :nq]  # FULLPHYSICS: time, qpos, qvel, act
        state[:, 1 + nq : 1 + nq + nv] = np.clip(obs[:, nq : nq + nv], -5.0, 5.0)
        out, _ = mujoco.rollout.rollout(self.model, self.many, state, np.clip(action, -1.0, 1.0)[:, None], nstep=1)
        return out[:, 0, 1 : 1 + nq + nv]


for _maze in LAYOUTS:
    gym.register(f"dydiff/maze2d-{_maze}-v1", entry_point="dydiff.envs.d4rl_maze:MazeEnv", kwargs={"maze": _maze},
                 max_episode_steps=EPISODE_STEPS[_maze])
