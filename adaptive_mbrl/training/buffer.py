"""A transition buffer that keeps trajectory boundaries and task labels.

Transitions are stored in float32 numpy arrays that grow as needed. Each transition remembers its
episode and its task, so the meta-learners can sample *segments*: M past + K future consecutive
transitions of one episode, all under one task (never across an episode boundary).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adaptive_mbrl.storage.atomic import atomic_write

FIELDS = ("obs", "action", "next_obs", "reward", "done", "episode", "step", "task")


class TransitionBuffer:
    """Growable store of transitions ``(obs [o], action [a], next_obs [o], reward, done)``.

    Also per transition: ``episode`` (int id), ``step`` (index within the episode) and ``task`` (an int
    label; :attr:`task_names` maps it to the task id string given to :meth:`add`).
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int = 4096) -> None:
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.size = 0
        self.task_names: list[str] = []
        self._next_episode = 0
        self._data = self._allocate(max(capacity, 1))

    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        return {"obs": np.zeros((capacity, self.obs_dim), np.float32),
                "action": np.zeros((capacity, self.action_dim), np.float32),
                "next_obs": np.zeros((capacity, self.obs_dim), np.float32),
                "reward": np.zeros(capacity, np.float32), "done": np.zeros(capacity, bool),
                "episode": np.zeros(capacity, np.int64), "step": np.zeros(capacity, np.int64),
                "task": np.zeros(capacity, np.int64)}

    def __len__(self) -> int:
        return self.size

    def new_episode(self) -> int:
        """Reserve and return a fresh episode id."""
        self._next_episode += 1
        return self._next_episode - 1

    def _grow(self, needed: int) -> None:
        capacity = len(self._data["reward"])
        if needed <= capacity:
            return
        new = self._allocate(max(needed, 2 * capacity))
        for key, array in self._data.items():
            new[key][: self.size] = array[: self.size]
        self._data = new

    def add(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, reward: np.ndarray,
            done: np.ndarray, episode: int, step: np.ndarray | int, task: str = "") -> None:
        """Append transitions of one episode: arrays [n, ...] (or a single transition without the n axis).

        Args:
            episode: id from :meth:`new_episode`.
            step: index within the episode of the first transition (int) or of each one ([n]).
            task: the task id (e.g. ``info["task_id"]``); mid-episode changes may use a new id.
        """
        obs = np.atleast_2d(np.asarray(obs, np.float32))
        n = len(obs)
        arrays = {"obs": obs, "action": np.asarray(action, np.float32).reshape(n, self.action_dim),
                  "next_obs": np.asarray(next_obs, np.float32).reshape(n, self.obs_dim),
                  "reward": np.asarray(reward, np.float32).reshape(n), "done": np.asarray(done, bool).reshape(n)}
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs has {obs.shape[1]} dims; the buffer holds {self.obs_dim}")
        if task not in self.task_names:
            self.task_names.append(task)
        self._grow(self.size + n)
        end = self.size + n
        for key, value in arrays.items():
            self._data[key][self.size:end] = value
        self._data["episode"][self.size:end] = episode
        self._data["step"][self.size:end] = np.arange(n) + step if np.isscalar(step) else step
        self._data["task"][self.size:end] = self.task_names.index(task)
        self.size = end

    def array(self, key: str) -> np.ndarray:
        """View of the stored ``key`` array, [size, ...]."""
        return self._data[key][: self.size]

    def tensors(self, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """All stored transitions as tensors on ``device`` (obs, action, next_obs, reward)."""
        return {k: torch.as_tensor(self.array(k), device=device) for k in ("obs", "action", "next_obs", "reward")}

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch`` transitions drawn uniformly with replacement."""
        index = rng.integers(0, self.size, batch)
        return {k: self._data[k][index] for k in ("obs", "action", "next_obs", "reward", "task")}

    def segment_rows(self, length: int) -> np.ndarray:
        """Row indices of every run of ``length`` consecutive steps of one episode under one task:
        ``[S, length]`` (int64), each row oldest first.

        Rows are matched by (episode, step), not by position: a collector that steps several environments
        in lockstep interleaves their transitions, so an episode's steps are rarely adjacent rows.
        """
        if self.size < length:
            return np.zeros((0, length), np.int64)
        episode, step, task = self.array("episode"), self.array("step"), self.array("task")
        order = np.lexsort((step, episode))
        ep, st, tk = episode[order], step[order], task[order]
        n = self.size - length + 1
        ok = np.ones(n, bool)
        for offset in range(1, length):
            ok &= (ep[offset:offset + n] == ep[:n]) & (st[offset:offset + n] == st[:n] + offset)
            ok &= tk[offset:offset + n] == tk[:n]
        return order[np.flatnonzero(ok)[:, None] + np.arange(length)]

    def segment_starts(self, length: int) -> np.ndarray:
        """First row of every segment of :meth:`segment_rows` (``[S]``)."""
        return self.segment_rows(length)[:, 0]

    def sample_segments(self, batch: int, length: int, rng: np.random.Generator,
                        rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``batch`` segments of ``length`` consecutive transitions: arrays [batch, length, ...].

        ``rows`` (from :meth:`segment_rows`) can be passed to avoid recomputing them.
        """
        rows = self.segment_rows(length) if rows is None else rows
        if len(rows) == 0:
            raise ValueError(f"no episode holds {length} consecutive transitions yet ({self.size} stored)")
        index = rows[rng.integers(0, len(rows), batch)]
        return {k: self._data[k][index] for k in ("obs", "action", "next_obs", "reward", "task")}

    # --- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the buffer to ``path`` (.npz) atomically (a crash leaves the old file intact)."""
        arrays = {k: self.array(k) for k in FIELDS}
        arrays["task_names"] = np.array(self.task_names, dtype=str)
        arrays["meta"] = np.array([self.obs_dim, self.action_dim, self._next_episode])

        def write(tmp: str) -> None:
            with open(tmp, "wb") as file:  # a file object: np.savez would append .npz to a path
                np.savez(file, **arrays)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "TransitionBuffer":
        """Read a buffer written by :meth:`save`."""
        with np.load(path) as data:
            obs_dim, action_dim, next_episode = (int(v) for v in data["meta"])
            buffer = cls(obs_dim, action_dim, capacity=len(data["reward"]))
            buffer.task_names = [str(t) for t in data["task_names"]]
            for key in FIELDS:
                buffer._data[key][: len(data[key])] = data[key]
            buffer.size = len(data["reward"])
            buffer._next_episode = next_episode
        return buffer
