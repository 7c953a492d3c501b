"""Maze geometry and D4RL's maze2d waypoint controller (``d4rl/pointmaze/{maze_model,waypoint_controller}.py``).

A maze is a grid of cells (row r, column c). Two coordinate frames place it in the plane:

- ``d4rl``: D4RL's maze2d. The position is the slide joints' qpos, and the centre of cell (r, c) is (r, c):
  x runs along rows. The point body sits at (1.2, 1.2) and the wall boxes at (r + 1, c + 1), so in this frame
  wall cell (r, c) covers [r − 0.7, r + 0.3] × [c − 0.7, c + 0.3]: the walls lie 0.2 off the grid that
  targets, rewards and the controller use.
- ``gymnasium``: Gymnasium-Robotics ``PointMaze_*-v3``. Centred on the origin, y up, walls on the grid.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

# D4RL's layouts (identical to gymnasium_robotics.envs.maze.maps); '#' = wall, 'O' = free.
_U = ["#####", "#OOO#", "###O#", "#OOO#", "#####"]
_MEDIUM = ["########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#", "#OOO#OO#", "########"]
_LARGE = [
    "############",
    "#OOOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OOO#",
    "############",
]
LAYOUTS = {"umaze": _U, "medium": _MEDIUM, "large": _LARGE}
# D4RL's fixed evaluation goal cells ('G' in d4rl/pointmaze/maze_model.py).
GOAL_CELLS = {"umaze": (1, 1), "medium": (6, 6), "large": (7, 9)}
EPISODE_STEPS = {"umaze": 300, "medium": 600, "large": 800}  # maze2d-*-v1's max_episode_steps
# D4RL's wall offset: body at (1.2, 1.2), walls at (r + 1, c + 1), so walls sit −0.2 off the cell grid.
D4RL_WALL_SHIFT = -0.2
# gridcraft's grid actions in (row, col) steps, in its order (np.argmax breaks ties by the first):
# NOOP, UP, DOWN, LEFT, RIGHT.
GRID_MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)])


class Maze:
    """A grid maze in one of two frames: cell ↔ xy, wall tests and D4RL's grid planner."""

    def __init__(self, layout: list[str], frame: str = "d4rl"):
        if frame not in ("d4rl", "gymnasium"):
            raise ValueError(f"unknown maze frame {frame!r}: d4rl or gymnasium")
        self.frame = frame
        self.grid = np.array([[c == "#" for c in row] for row in layout])  # True = wall
        self.rows, self.cols = self.grid.shape
        self.free_cells = [tuple(int(i) for i in c) for c in np.argwhere(~self.grid)]
        self.wall_shift = D4RL_WALL_SHIFT if frame == "d4rl" else 0.0

    # ---- frames ------------------------------------------------------------------------------
    def cell_to_xy(self, cell) -> np.ndarray:
        """Cell (r, c) (integer or fractional, shape (…, 2)) → its centre in this frame."""
        rc = np.asarray(cell, dtype=np.float64)
        if self.frame == "d4rl":
            return rc.copy()
        return np.stack([rc[..., 1] + 0.5 - self.cols / 2, self.rows / 2 - rc[..., 0] - 0.5], -1)

    def xy_to_rc(self, xy) -> np.ndarray:
        """The inverse of ``cell_to_xy``: fractional (r, c) of points (…, 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        if self.frame == "d4rl":
            return xy.copy()
        return np.stack([self.rows / 2 - 0.5 - xy[..., 1], xy[..., 0] - 0.5 + self.cols / 2], -1)

    def xy_to_cell(self, xy) -> tuple[int, int]:
        """The cell whose centre is nearest (D4RL's ``gridify_state``: round each coordinate)."""
        r, c = np.floor(self.xy_to_rc(xy) + 0.5).astype(int)
        return int(r), int(c)

    # ---- walls -------------------------------------------------------------------------------
    def wall_box(self, cell) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the wall geometry of cell (r, c) in this frame."""
        lo = self.cell_to_xy(np.asarray(cell, float) - 0.5 + self.wall_shift)
        hi = self.cell_to_xy(np.asarray(cell, float) + 0.5 + self.wall_shift)
        return min(lo[0], hi[0]), max(lo[0], hi[0]), min(lo[1], hi[1]), max(lo[1], hi[1])

    def in_wall(self, xy: np.ndarray, radius: float = 0.0) -> np.ndarray:
        """True where a point (…, 2) (a ball of ``radius``) overlaps the wall geometry or leaves the grid."""
        rc = self.xy_to_rc(xy) - self.wall_shift
        hit = np.zeros(rc.shape[:-1], dtype=bool)
        for dr in (-radius, radius) if radius else (0.0,):
            for dc in (-radius, radius) if radius else (0.0,):
                r = np.floor(rc[..., 0] + dr + 0.5).astype(int)
                c = np.floor(rc[..., 1] + dc + 0.5).astype(int)
                outside = (r < 0) | (r >= self.rows) | (c < 0) | (c >= self.cols)
                hit |= outside | self.grid[r.clip(0, self.rows - 1), c.clip(0, self.cols - 1)]
        return hit

    def legal(self, xy: np.ndarray) -> np.ndarray:
        """Per trajectory (…, T, 2): True when none of its states lies inside a wall or off the grid (the
        paper's 'legal trajectory', Fig. 9)."""
        return ~self.in_wall(xy).any(-1)

    def image(self) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """The wall grid as an image for ``imshow(..., origin='lower', extent=extent)`` in this frame."""
        x0, _, y0, _ = self.wall_box((0, 0))
        if self.frame == "d4rl":  # x along rows, y along columns
            return self.grid.T, (x0, x0 + self.rows, y0, y0 + self.cols)
        return self.grid[::-1], (-self.cols / 2, self.cols / 2, -self.rows / 2, self.rows / 2)

    def gym_map(self, goal_cell: tuple[int, int] | None = None) -> list[list]:
        """The layout as a Gymnasium-Robotics ``maze_map`` (1 wall, 0 free, 'g' goal)."""
        m = [[int(w) for w in row] for row in self.grid]
        if goal_cell is not None:
            m[goal_cell[0]][goal_cell[1]] = "g"
        return m

    # ---- D4RL's planner ------------------------------------------------------------------------
    def step_cell(self, cell, move: int) -> tuple[int, int]:
        """gridcraft's deterministic move: into the neighbour unless it is a wall or off the grid."""
        r, c = np.asarray(cell) + GRID_MOVES[move]
        if 0 <= r < self.rows and 0 <= c < self.cols and not self.grid[r, c]:
            return int(r), int(c)
        return int(cell[0]), int(cell[1])

    @cached_property
    def _moves(self) -> tuple[list, dict, np.ndarray]:
        """Every cell, its index, and the index each grid move leads to (planning reuses them)."""
        cells = [(r, c) for r in range(self.rows) for c in range(self.cols)]
        index = {cell: i for i, cell in enumerate(cells)}
        return cells, index, np.array([[index[self.step_cell(cell, a)] for a in range(len(GRID_MOVES))]
                                       for cell in cells])

    def plan(self, start, target, iterations: int = 50, discount: float = 0.99, max_steps: int = 100) -> list:
        """D4RL's ``WaypointController._new_target``: tabular Q-iteration (reward 1 on the target cell, 50
        iterations, γ 0.99, Q₀ = 0), then a greedy rollout of at most 100 moves from ``start``. Returns the cells
        visited after ``start``, ending at ``target`` when it is reached."""
        cells, index, nxt = self._moves
        reward = np.array([float(cell == tuple(target)) for cell in cells])
        q = np.zeros(nxt.shape)
        for _ in range(iterations):
            q = reward[:, None] + discount * q.max(1)[nxt]
        path, s = [], index[tuple(start)]
        for _ in range(max_steps):
            s = nxt[s, int(np.argmax(q[s]))]
            path.append(cells[s])
            if cells[s] == tuple(target):
                break
        return path


class WaypointController:
    """D4RL's maze2d controller: plan over the grid, then PD-control towards the next waypoint.

    ``act(pos, vel, target)``: action = clip(10·(waypoint − pos) − 1·vel, ±1). It plans anew only when the
    target's cell changes, so one controller carries its state from one call (and episode) to the next, as
    D4RL's generator and reference script use it. Waypoints are the planned cells' centres, each but the last
    moved by −U(0, 0.2) per grid coordinate; a waypoint is passed within ``solve_thresh`` at a per-step
    displacement under ``vel_thresh``, and the task is solved there at the target cell's centre.
    """

    def __init__(self, maze: Maze, rng=None, p_gain=10.0, d_gain=-1.0, solve_thresh=0.1, vel_thresh=0.1,
                 jitter=0.2):
        self.maze, self.p_gain, self.d_gain = maze, p_gain, d_gain
        self.solve_thresh, self.vel_thresh, self.jitter = solve_thresh, vel_thresh, jitter
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.target_cell: tuple[int, int] | None = None
        self.target = np.zeros(2)
        self.waypoints: list[np.ndarray] = []
        self.index = 0
        self.prev = np.zeros(2)

    def _new_target(self, pos, cell) -> None:
        start = self.maze.xy_to_cell(pos)
        path = self.maze.plan(start, cell)
        rc = np.array(path, dtype=np.float64).reshape(-1, 2)
        jitter = self.rng.uniform(size=rc.shape) * self.jitter
        rc -= np.where((rc == cell).all(1, keepdims=True), 0.0, jitter)
        self.waypoints, self.index = list(self.maze.cell_to_xy(rc)), 0
        self.target_cell, self.target = cell, self.maze.cell_to_xy(cell)
        self.prev = self.maze.cell_to_xy(start)  # D4RL starts the displacement from the start cell's centre

    def act(self, pos, vel, target) -> tuple[np.ndarray, bool]:
        """(action, solved) for the continuous ``target`` (only its cell matters)."""
        pos, vel = np.asarray(pos, np.float64), np.asarray(vel, np.float64)
        cell = self.maze.xy_to_cell(target)
        if cell != self.target_cell:
            self._new_target(pos, cell)
        moved = np.linalg.norm(self.prev - pos)
        unsolved = np.linalg.norm(pos - self.target) >= self.solve_thresh or moved >= self.vel_thresh
        waypoint = self.waypoints[self.index] if unsolved else self.target
        action = self.p_gain * (waypoint - pos) + self.d_gain * vel
        if unsolved and np.linalg.norm(pos - waypoint) < self.solve_thresh and moved < self.vel_thresh:
            self.index = min(self.index + 1, len(self.waypoints) - 1)
        self.prev = pos
        return np.clip(action, -1.0, 1.0), not unsolved
