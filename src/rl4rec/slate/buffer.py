"""Replay buffer of whole trajectories (spec §7.2), one independent FIFO per ensemble member.

Stores observations o_0..o_{T-1} (reset observation + the first T-1 step observations), actions,
the clicks each action received, rewards and, for SlateQ, the per-turn user vectors after influence. Capacity and batch size count
trajectories (paper: 10,000 and 20). Sampling is uniform without replacement, per member.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: dtype ``sample`` hands a field out as, where it differs from the compact storage dtype
SAMPLED_DTYPES = {"slates": torch.long, "clicks": torch.float32, "step_clicks": torch.float32}


class TrajectoryBuffer:
    FIELDS = ("slates", "clicks", "step_clicks", "actions", "rewards", "users")

    def __init__(
        self,
        num_members: int,
        capacity: int,
        horizon: int,
        rec_size: int,
        action_shape: Sequence[int],
        action_dtype: torch.dtype = torch.float32,
        user_dim: int = 0,
    ):
        s, c, t = num_members, capacity, horizon
        self.capacity, self.horizon = capacity, horizon
        self.slates = torch.zeros(s, c, t, rec_size, dtype=torch.int16)
        self.clicks = torch.zeros(s, c, t, rec_size, dtype=torch.uint8)
        self.step_clicks = torch.zeros(s, c, t, rec_size, dtype=torch.uint8)
        self.actions = torch.zeros(s, c, t, *action_shape, dtype=action_dtype)
        self.rewards = torch.zeros(s, c, t)
        self.users = torch.zeros(s, c, t, user_dim) if user_dim else None
        self.size = 0
        self._next = 0

    def add(self, traj) -> None:
        """One trajectory per member: user 0 of :class:`~rl4rec.slate.loop.Trajectories` (S, B, T, ...),
        i.e. observations (slates, clicks), actions, rewards, the clicks each action received
        [, user vectors after each turn]."""
        i = self._next
        for name in self.FIELDS:
            store = getattr(self, name)
            if store is not None:
                store[:, i] = getattr(traj, name)[:, 0]  # cast to the storage dtype
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch`` distinct trajectories per member -> tensors shaped (S, batch, T, ...)."""
        if self.size < batch:
            raise ValueError(f"buffer holds {self.size} trajectories, fewer than the batch of {batch}")
        s = self.slates.shape[0]
        idx = torch.rand(s, self.size, generator=generator).argsort(dim=1)[:, :batch]  # per-member permutation

        def take(x: torch.Tensor) -> torch.Tensor:
            index = idx.view(s, batch, *([1] * (x.dim() - 2))).expand(s, batch, *x.shape[2:])
            return torch.gather(x, 1, index)

        out = {}
        for name in self.FIELDS:
            stored = getattr(self, name)
            if stored is not None:
                out[name] = take(stored).to(SAMPLED_DTYPES.get(name, stored.dtype))
        return out

    def state_dict(self) -> dict:
        """The stored trajectories (only the filled part) and the write position."""
        n = self.size
        out = {"size": n, "next": self._next}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value[:, :n].clone()
        return out

    def load_state_dict(self, state: dict) -> None:
        n = state["size"]
        for name in self.FIELDS:
            if name in state:
                getattr(self, name)[:, :n] = state[name]
        self.size, self._next = n, state["next"]

