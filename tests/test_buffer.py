"""TransitionBuffer: segments respect episode and task boundaries, sampling, persistence, growth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaptive_mbrl.training.buffer import TransitionBuffer

OBS, ACT = 3, 2


def _episode(buffer: TransitionBuffer, n: int, start_value: float, task: str = "t", step: int = 0,
             episode: int | None = None) -> int:
    """Add ``n`` transitions whose obs[:, 0] counts up from ``start_value``; returns the episode id."""
    episode = buffer.new_episode() if episode is None else episode
    values = start_value + np.arange(n, dtype=np.float32)
    obs = np.repeat(values[:, None], OBS, axis=1)
    buffer.add(obs, np.tile(values[:, None], (1, ACT)), obs + 1.0, values, np.zeros(n, bool), episode, step,
               task=task)
    return episode


def _known_buffer() -> TransitionBuffer:
    """Episodes of lengths 5, 3 and 7; the third changes task after its 4th step (still one episode)."""
    buffer = TransitionBuffer(OBS, ACT, capacity=2)
    _episode(buffer, 5, 0.0, task="a")
    _episode(buffer, 3, 100.0, task="a")
    ep = _episode(buffer, 4, 200.0, task="b")
    _episode(buffer, 3, 204.0, task="b/changed", step=4, episode=ep)
    return buffer


def test_segment_starts_never_cross_episode_or_task_boundaries() -> None:
    buffer = _known_buffer()
    assert len(buffer) == 15
    # Rows: ep0 = 0..4, ep1 = 5..7, ep2 task b = 8..11, ep2 task b/changed = 12..14.
    expected = {1: list(range(15)),
                3: [0, 1, 2, 5, 8, 9, 12],
                4: [0, 1, 8],
                5: [0]}
    for length, starts in expected.items():
        assert buffer.segment_starts(length).tolist() == starts, length
    assert buffer.segment_starts(6).tolist() == []
    assert buffer.segment_starts(100).tolist() == []
    with pytest.raises(ValueError, match="consecutive"):
        buffer.sample_segments(2, 6, np.random.default_rng(0))


def test_segment_starts_reject_gaps_in_steps() -> None:
    buffer = TransitionBuffer(OBS, ACT)
    ep = buffer.new_episode()
    obs = np.zeros((4, OBS), np.float32)
    buffer.add(obs, np.zeros((4, ACT)), obs, np.zeros(4), np.zeros(4, bool), ep, np.array([0, 1, 3, 4]))
    assert buffer.segment_starts(2).tolist() == [0, 2]


def test_sample_segments_shapes_and_consecutive_steps() -> None:
    buffer = _known_buffer()
    rng = np.random.default_rng(0)
    batch, length = 64, 3
    seg = buffer.sample_segments(batch, length, rng)
    assert seg["obs"].shape == (batch, length, OBS)
    assert seg["action"].shape == (batch, length, ACT)
    assert seg["next_obs"].shape == (batch, length, OBS)
    assert seg["reward"].shape == (batch, length)
    assert seg["task"].shape == (batch, length)
    # obs[:, 0] counts up by one within an episode: consecutive steps, and one task per segment.
    assert np.all(np.diff(seg["obs"][:, :, 0], axis=1) == 1.0)
    assert np.all(seg["task"] == seg["task"][:, :1])
    np.testing.assert_array_equal(seg["next_obs"], seg["obs"] + 1.0)
    # Every admissible start gets drawn (uniform over starts), and no other.
    firsts = set(seg["obs"][:, 0, 0].astype(int).tolist())
    assert firsts == {0, 1, 2, 100, 200, 201, 204}


def test_single_transition_add_and_sample() -> None:
    buffer = TransitionBuffer(OBS, ACT)
    ep = buffer.new_episode()
    buffer.add(np.ones(OBS), np.zeros(ACT), np.full(OBS, 2.0), 1.5, True, ep, 7, task="x")
    assert len(buffer) == 1
    assert buffer.array("step").tolist() == [7]
    assert buffer.array("done").tolist() == [True]
    out = buffer.sample(5, np.random.default_rng(0))
    assert out["obs"].shape == (5, OBS) and np.all(out["reward"] == 1.5)
    with pytest.raises(ValueError, match="4 dims"):
        buffer.add(np.ones((1, 4)), np.zeros((1, ACT)), np.ones((1, OBS)), 0.0, False, ep, 8)


def test_growth_beyond_capacity_keeps_data() -> None:
    buffer = TransitionBuffer(OBS, ACT, capacity=3)
    chunks = []
    for i in range(6):
        _episode(buffer, 7, 1000.0 * i, task=f"task{i % 2}")
        chunks.append(1000.0 * i + np.arange(7))
    assert len(buffer) == 42
    np.testing.assert_array_equal(buffer.array("obs")[:, 0], np.concatenate(chunks))
    np.testing.assert_array_equal(buffer.array("episode"), np.repeat(np.arange(6), 7))
    np.testing.assert_array_equal(buffer.array("step"), np.tile(np.arange(7), 6))
    assert buffer.task_names == ["task0", "task1"]
    np.testing.assert_array_equal(buffer.array("task"), np.tile(np.repeat([0, 1], 7), 3))
    tensors = buffer.tensors()
    assert tuple(tensors["obs"].shape) == (42, OBS)


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    buffer = _known_buffer()
    rng = np.random.default_rng(1)
    buffer._data["obs"][: len(buffer)] = rng.standard_normal((len(buffer), OBS)).astype(np.float32)
    buffer._data["done"][4] = True
    path = tmp_path / "sub" / "buffer.npz"
    buffer.save(path)
    loaded = TransitionBuffer.load(path)
    assert len(loaded) == len(buffer)
    assert (loaded.obs_dim, loaded.action_dim) == (OBS, ACT)
    assert loaded.task_names == buffer.task_names
    for key in ("obs", "action", "next_obs", "reward", "done", "episode", "step", "task"):
        assert loaded.array(key).dtype == buffer.array(key).dtype, key
        np.testing.assert_array_equal(loaded.array(key), buffer.array(key), err_msg=key)
    # Episode ids continue after the loaded ones; segments are the same; the loaded buffer still grows.
    assert loaded.new_episode() == buffer.new_episode() == 3
    assert loaded.segment_starts(3).tolist() == buffer.segment_starts(3).tolist()
    _episode(loaded, 20, 5000.0, task="a")
    assert len(loaded) == len(buffer) + 20
    np.testing.assert_array_equal(loaded.array("obs")[: len(buffer)], buffer.array("obs"))
    assert not list(path.parent.glob("*.tmp*")), "temporary files left behind"


def test_save_load_empty_buffer(tmp_path: Path) -> None:
    TransitionBuffer(OBS, ACT).save(tmp_path / "empty.npz")
    loaded = TransitionBuffer.load(tmp_path / "empty.npz")
    assert len(loaded) == 0 and loaded.task_names == []
    _episode(loaded, 2, 0.0)
    assert len(loaded) == 2


def test_failing_save_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "buffer.npz"
    old = _known_buffer()
    old.save(path)
    before = path.read_bytes()

    newer = _known_buffer()
    _episode(newer, 10, 9000.0)
    real_savez = np.savez

    def half_written_savez(file, **arrays):
        """Write part of the archive, then crash (like a full disk or a kill mid-write)."""
        real_savez(file, obs=arrays["obs"])
        file.truncate(50)  # the buffer writes through an open file object
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_written_savez)
    with pytest.raises(OSError, match="disk full"):
        newer.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert len(TransitionBuffer.load(path)) == len(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buffer.npz"], "temporary file left behind"


def test_segment_rows_follow_episodes_of_interleaved_envs() -> None:
    buffer = TransitionBuffer(1, 1)
    for step in range(6):  # two envs in lockstep: rows alternate between episodes 0 and 1
        for episode in (0, 1):
            buffer.add([[episode * 100 + step]], [[0]], [[0]], [0], [False], episode, step, task=f"t{episode}")
    rows = buffer.segment_rows(4)
    obs = buffer.array("obs")[rows][..., 0]
    assert len(rows) == 6
    for segment in obs:
        assert np.all(np.diff(segment) == 1)  # consecutive steps of one episode
    assert len(buffer.segment_rows(7)) == 0
    assert np.array_equal(buffer.segment_starts(4), rows[:, 0])
    sample = buffer.sample_segments(32, 4, np.random.default_rng(0))
    assert np.all(np.diff(sample["obs"][..., 0], axis=1) == 1)
