"""Suite reports: recovery time, summary statistics, and the files (tables and plots) they write."""
import json
import math
from pathlib import Path

import numpy as np

from adaptive_mbrl.evaluation import recovery_steps, summarize, write_report


def _result(label: str, total: float, scenario: str = "s", seed: int = 0, episode: int = 0,
            rewards: list[float] | None = None, change: list[int] | None = None) -> dict:
    rewards = rewards if rewards is not None else [total / 10] * 10
    return {"key": f"r/mujoco/{scenario}/{label}/s{seed}/e{episode}", "robot": "r", "backend": "mujoco",
            "scenario": scenario, "label": label, "seed": seed, "episode": episode, "env_seed": 10_000 + episode,
            "checkpoint": "c.pt", "preset": None, "episode_steps": None, "return": total, "steps": len(rewards),
            "rewards": rewards, "change_steps": change or [], "wall_s": 0.5}


def test_recovery_counts_steps_until_the_smoothed_reward_is_back_to_80_percent() -> None:
    rewards = np.ones(400)
    rewards[100:110] = 0.0  # ten dead steps after the damage at step 100
    # the 5-step average holds at most one zero from step 100 + 11 on: 4/5 = 0.8 of the steady level 1
    assert recovery_steps(rewards, 100) == 11.0
    assert recovery_steps(np.ones(400), 100) == 0.0


def test_recovery_is_nan_without_a_positive_post_damage_level() -> None:
    assert math.isnan(recovery_steps(-np.ones(400), 100))  # the robot never earns reward after the damage
    assert math.isnan(recovery_steps(np.ones(120), 100))  # the episode ends before a steady level exists


def test_summary_mean_std_and_ratio_to_the_baseline() -> None:
    results = [_result("MB", 100, episode=0), _result("MB", 200, episode=1),
               _result("GrBAL", 300, episode=0), _result("GrBAL", 300, episode=1)]
    rows = {r["label"]: r for r in summarize(results, "MB")}
    assert rows["MB"]["mean"] == 150 and rows["MB"]["std"] == 50 and rows["MB"]["episodes"] == 2
    assert rows["GrBAL"]["ratio_to_baseline"] == 2.0 and rows["MB"]["ratio_to_baseline"] == 1.0
    # bootstrap over the baseline's two episodes: 300 / 100, 300 / 150 or 300 / 200
    assert 1.5 <= rows["GrBAL"]["ratio_low"] < rows["GrBAL"]["ratio_high"] <= 3.0
    assert rows["GrBAL"]["recovery_steps"] is None  # no mid-episode change in this scenario
    assert rows["MB"]["control_hz"] == 20 / 1.0


def test_ratio_is_nan_when_the_baseline_return_is_not_positive() -> None:
    rows = {r["label"]: r for r in summarize([_result("MB", -10), _result("X", 5)], "MB")}
    assert math.isnan(rows["X"]["ratio_to_baseline"])


def test_report_writes_tables_and_plots_in_the_suite_order(tmp_path: Path) -> None:
    curve = [1.0] * 100 + [0.0] * 5 + [1.0] * 195
    results = [_result(label, total, scenario="break", rewards=curve, change=[100])
               for label, total in (("ReBAL", 290.0), ("MB", 280.0))]
    results += [_result("MB", 50.0, scenario="calm"), _result("ReBAL", 75.0, scenario="calm")]
    rows = write_report(tmp_path, results, "demo", "MB", skipped=["PEARL: no checkpoint"],
                        method_order=["MB", "ReBAL"])
    assert [(r["scenario"], r["label"]) for r in rows] == [("break", "MB"), ("break", "ReBAL"),
                                                           ("calm", "MB"), ("calm", "ReBAL")]
    md = (tmp_path / "summary.md").read_text()
    assert "| calm | ReBAL | 1 | 75.0 ± 0.0 | 1.50 |" in md and "PEARL: no checkpoint" in md
    assert rows[0]["recovery_steps"] == 6.0  # five dead steps: back to 4/5 once the window holds one zero
    episodes = (tmp_path / "episodes.csv").read_text().splitlines()
    assert len(episodes) == 5 and episodes[0].startswith("robot,backend,scenario,label")
    assert json.loads((tmp_path / "summary.json").read_text())["baseline"] == "MB"
    for png in ("returns.png", "damage_r_break.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "damage_r_calm.png").exists()  # no mid-episode change there
