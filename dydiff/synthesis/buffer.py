"""The synthetic replay buffer: a FIFO of transitions in raw units, one packed tensor on the training device."""

from __future__ import annotations

import torch

from dydiff.types import Transitions


class SyntheticBuffer:
    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device="cpu"):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.width = 2 * obs_dim + act_dim + 2
        self.rows = torch.empty(0, self.width, device=device)  # grows to capacity, then wraps
        self.ptr = 0  # next row to overwrite once full
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device:
        return self.rows.device

    def to(self, device) -> SyntheticBuffer:
        self.rows = self.rows.to(device)
        return self

    def split(self, rows: torch.Tensor) -> Transitions:
        return Transitions.unpack(rows, self.obs_dim, self.act_dim)

    def push(self, t: Transitions) -> None:
        """Append transitions; the oldest are evicted once the buffer holds ``capacity``."""
        new = t.pack().to(self.rows)[-self.capacity :]
        grow = min(len(new), self.capacity - len(self.rows))
        if grow > 0:  # still filling
            self.rows = torch.cat([self.rows, new[:grow]])
            new = new[grow:]
            self.ptr = len(self.rows) % self.capacity
        for part in (new[: self.capacity - self.ptr], new[self.capacity - self.ptr :]):  # wrap around
            if len(part):
                self.rows[self.ptr : self.ptr + len(part)] = part
                self.ptr = (self.ptr + len(part)) % self.capacity
        self.size = len(self.rows)

    def ordered(self) -> Transitions:
        """Everything held, oldest first."""
        return self.split(torch.cat([self.rows[self.ptr :], self.rows[: self.ptr]]) if self.size == self.capacity
                          else self.rows)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Transitions:
        idx = torch.randint(self.size, (n,), generator=generator, device=self.device)
        return self.split(self.rows[idx])

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "rows": self.rows.cpu(), "ptr": self.ptr}

    def load_state_dict(self, state: dict) -> None:
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(f"synthetic buffer of dims {state['obs_dim']}/{state['act_dim']} cannot load into "
                             f"{self.obs_dim}/{self.act_dim}")
        self.capacity, self.ptr = state["capacity"], state["ptr"]
        self.rows = state["rows"].to(self.device)
        self.size = len(self.rows)
