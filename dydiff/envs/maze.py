"""PointMaze helpers: D4RL's maze layouts and goals, grid ↔ xy, wall checks, and a waypoint controller.

Coordinates are Gymnasium-Robotics' (maze centred on the origin, cell size 1), not D4RL's (row, col) frame.
"""

from __future__ import annotations

from collections import deque

import numpy as np

# D4RL's layouts (identical to gymnasium_robotics.envs.maze.maps); 1 = wall, 0 = free.
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


class Maze:
    """A grid maze: free cells, cell ↔ xy conversion and wall tests (cell size 1, centred frame)."""

    def __init__(self, layout: list[str]):
        self.grid = np.array([[c == "#" for c in row] for row in layout])  # True = wall
        self.rows, self.cols = self.grid.shape
        self.free_cells = [tuple(c) for c in np.argwhere(~self.grid)]

    def cell_to_xy(self, cell) -> np.ndarray:
        r, c = cell
        return np.array([c + 0.5 - self.cols / 2, self.rows / 2 - r - 0.5])

    def xy_to_cell(self, xy) -> tuple[int, int]:
        return int(np.floor(self.rows / 2 - xy[1])), int(np.floor(xy[0] + self.cols / 2))

    def in_wall(self, xy: np.ndarray, radius: float = 0.0) -> np.ndarray:
        """True where a point (…, 2) (a ball of ``radius``) overlaps a wall cell or leaves the grid."""
        xy = np.asarray(xy, dtype=np.float64)
        hit = np.zeros(xy.shape[:-1], dtype=bool)
        for dx in (-radius, radius) if radius else (0.0,):
            for dy in (-radius, radius) if radius else (0.0,):
                r = np.floor(self.rows / 2 - (xy[..., 1] + dy)).astype(int)
                c = np.floor(xy[..., 0] + dx + self.cols / 2).astype(int)
                outside = (r < 0) | (r >= self.rows) | (c < 0) | (c >= self.cols)
                hit |= outside | self.grid[r.clip(0, self.rows - 1), c.clip(0, self.cols - 1)]
        return hit

    def legal(self, xy: np.ndarray) -> np.ndarray:
        """Per trajectory (…, T, 2): True when none of its states lies inside a wall or off the grid (the
        paper's 'legal trajectory', Fig. 9)."""
        return ~self.in_wall(xy).any(-1)

    def gym_map(self, goal_cell: tuple[int, int] | None = None) -> list[list]:
        """The layout as a Gymnasium-Robotics ``maze_map`` (1 wall, 0 free, 'g' goal)."""
        m = [[int(w) for w in row] for row in self.grid]
        if goal_cell is not None:
            m[goal_cell[0]][goal_cell[1]] = "g"
        return m

    def distances_to(self, goal_cell: tuple[int, int]) -> np.ndarray:
        """Shortest-path length in cells from every cell to ``goal_cell`` (BFS; inf for walls)."""
        dist = np.full(self.grid.shape, np.inf)
        dist[goal_cell] = 0
        queue = deque([goal_cell])
        while queue:
            r, c = queue.popleft()
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if (
                    0 <= nr < self.rows
                    and 0 <= nc < self.cols
                    and not self.grid[nr, nc]
                    and dist[nr, nc] == np.inf
                ):
                    dist[nr, nc] = dist[r, c] + 1
                    queue.append((nr, nc))
        return dist

    def path(self, start_cell: tuple[int, int], goal_cell: tuple[int, int]) -> list[tuple[int, int]]:
        """Cells from ``start_cell`` (excluded) to ``goal_cell`` (included) along a shortest path."""
        dist = self.distances_to(goal_cell)
        if not np.isfinite(dist[start_cell]):
            raise ValueError(f"cell {start_cell} cannot reach {goal_cell}")
        cells, (r, c) = [], start_cell
        while (r, c) != tuple(goal_cell):
            r, c = min(((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)), key=lambda rc: dist[rc])
            cells.append((r, c))
        return cells


class WaypointController:
    """D4RL's maze2d expert: plan over the grid, then PD-control towards the next waypoint.

    action = clip(p_gain·(waypoint − pos) + d_gain·vel, −1, 1) with p_gain 10, d_gain −1. A waypoint is
    passed when the point is within ``solve_thresh``; waypoints are cell centres plus uniform ``jitter``.
    """

    def __init__(self, maze: Maze, p_gain=10.0, d_gain=-1.0, solve_thresh=0.1, jitter=0.0, rng=None):
        self.maze, self.p_gain, self.d_gain = maze, p_gain, d_gain
        self.solve_thresh, self.jitter = solve_thresh, jitter
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.target: np.ndarray | None = None
        self.waypoints: list[np.ndarray] = []

    def set_target(self, pos: np.ndarray, target: np.ndarray) -> None:
        """Plan a path of cell centres from the cell of ``pos`` to ``target`` (which ends the path)."""
        self.target = np.asarray(target, dtype=np.float64)
        cells = self.maze.path(self.maze.xy_to_cell(pos), self.maze.xy_to_cell(self.target))[:-1]
        noise = self.rng.uniform(-self.jitter, self.jitter, size=(len(cells), 2)) if self.jitter else 0.0
        self.waypoints = list(np.array([self.maze.cell_to_xy(c) for c in cells]).reshape(-1, 2) + noise)
        self.waypoints.append(self.target)

    def act(self, pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, bool]:
        """Return (action, reached) for the current target."""
        while len(self.waypoints) > 1 and np.linalg.norm(pos - self.waypoints[0]) < self.solve_thresh:
            self.waypoints.pop(0)
        action = self.p_gain * (self.waypoints[0] - pos) + self.d_gain * vel
        reached = len(self.waypoints) == 1 and np.linalg.norm(pos - self.target) < self.solve_thresh
        return np.clip(action, -1.0, 1.0), bool(reached)
