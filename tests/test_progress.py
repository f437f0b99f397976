"""Progress lines of a suite run: one per episode, with an ETA from this run's pace."""
from __future__ import annotations

import io

import pytest

from adaptive_mbrl.evaluation.progress import ProgressLog, format_duration


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (45.2, "45 s"), (70, "1 min 10 s"), (3599.6, "1 h 0 min"),
                                           (7500, "2 h 5 min"), (-3, "0 s")])
def test_durations_read_as_seconds_minutes_hours(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_eta_is_this_runs_pace_times_the_episodes_left() -> None:
    now = [100.0]
    stream = io.StringIO()
    log = ProgressLog(40, already=10, stream=stream, clock=lambda: now[0])
    result = {"robot": "half_cheetah", "scenario": "crippled_joint_test", "label": "MB", "seed": 0, "episode": 1,
              "return": 812.34, "wall_s": 2.1}
    now[0] = 104.0
    log.episode(result)  # 1 episode in 4 s, 29 left
    now[0] = 106.0
    line = log.episode(result)  # 2 in 6 s: 3 s each, 28 left
    assert stream.getvalue().splitlines() == [
        "[11/40] half_cheetah/crippled_joint_test MB seed 0 ep 1: return 812.3 (2.1 s) ETA 1 min 56 s", line]
    assert line == "[12/40] half_cheetah/crippled_joint_test MB seed 0 ep 1: return 812.3 (2.1 s) ETA 1 min 24 s"
