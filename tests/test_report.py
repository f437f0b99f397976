"""Suite reports: recovery time, summary statistics, and the files (tables and plots) they write."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from adaptive_mbrl.evaluation import recovery_steps, summarize, write_report
from adaptive_mbrl.evaluation.report import (WINDOW_AFTER, WINDOW_BEFORE, damage_curves, damage_plot_name,
                                             moving_average, plot_damage)


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


# --- the damage plot ------------------------------------------------------------------------------------------
def _reference_trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """The mean of x[max(0, t - window + 1) .. t] by a plain loop."""
    return np.array([x[max(0, t - window + 1): t + 1].mean() for t in range(len(x))])


def test_moving_average_is_the_trailing_mean_and_skips_nan() -> None:
    x = np.random.default_rng(0).normal(size=300)
    for window in (1, 5, 20):
        assert np.allclose(moving_average(x, window), _reference_trailing_mean(x, window))
    # 2-D: row by row; NaN (past an episode's end) stays NaN and is not averaged into later steps
    y = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, np.nan, 6.0, 8.0]])
    out = moving_average(y, 2)
    assert np.allclose(out[0], [1.0, 1.5, 2.5, 3.5])
    assert out[1, 0] == 2.0 and np.isnan(out[1, 1]) and out[1, 2] == 6.0 and out[1, 3] == 7.0
    with pytest.raises(ValueError, match="window"):
        moving_average(x, 0)


def test_damage_curve_is_the_moving_average_of_the_mean_over_episodes_with_a_95_band() -> None:
    rng = np.random.default_rng(1)
    episodes = [np.concatenate([np.ones(200), np.zeros(200)]) + 0.3 * rng.normal(size=400) for _ in range(4)]
    results = [_result("MB", float(e.sum()), scenario="break", episode=i, rewards=list(e), change=[200])
               for i, e in enumerate(episodes)]
    mean, low, high, n = damage_curves(results, window=20)["MB"]
    reference = _reference_trailing_mean(np.mean(episodes, axis=0), 20)[200 - WINDOW_BEFORE: 200 + WINDOW_AFTER]
    assert n == 4 and mean.shape == (WINDOW_BEFORE + WINDOW_AFTER,)
    assert np.allclose(mean, reference)
    smoothed = np.array([_reference_trailing_mean(e, 20)[150:350] for e in episodes])
    half_width = 1.959964 * smoothed.std(0, ddof=1) / 2.0  # 95 % interval of the mean of 4 episodes
    assert np.allclose(high - mean, half_width) and np.allclose(mean - low, half_width)
    # trailing: the steps before the change are not pulled down by what follows it
    assert mean[WINDOW_BEFORE - 1] > 0.8 and mean[-1] < 0.2
    one = damage_curves(results[:1])["MB"]
    assert np.isnan(one[1]).all() and one[3] == 1  # one episode: no band


def test_damage_plot_file_name_is_safe_for_a_scenario_file_path(tmp_path: Path) -> None:
    scenario = str(tmp_path / "my dir" / "mine.yaml") + ":rusty"
    curve = [1.0] * 100 + [0.0] * 5 + [1.0] * 195
    results = [_result(label, 290.0, scenario=scenario, rewards=curve, change=[100]) for label in ("MB", "X")]
    (tmp_path / "out").mkdir()
    write_report(tmp_path / "out", results, "demo", "MB")
    pngs = sorted(p.name for p in (tmp_path / "out").glob("damage_*.png"))
    assert len(pngs) == 1 and pngs[0].startswith("damage_r_mine-rusty-") and "/" not in pngs[0]
    assert (tmp_path / "out" / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert damage_plot_name("r", "pybullet", "break") == "damage_r_pybullet_break.png"
    other = damage_plot_name("r", "mujoco", str(tmp_path / "other" / "mine.yaml") + ":rusty")
    assert other != pngs[0]  # same file name and scenario in another folder: another plot


def test_plot_damage_draws_the_smoothed_mean_a_band_and_the_change(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.axes
    drawn: dict[str, list] = {"plot": [], "band": [], "vline": []}
    real_plot, real_fill, real_vline = (matplotlib.axes.Axes.plot, matplotlib.axes.Axes.fill_between,
                                        matplotlib.axes.Axes.axvline)
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, *a, **k: drawn["plot"].append((a, k)) or real_plot(self, *a, **k))
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between",
                        lambda self, *a, **k: drawn["band"].append(a) or real_fill(self, *a, **k))
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, *a, **k: drawn["vline"].append((a, k)) or real_vline(self, *a, **k))
    rewards = [list(np.r_[np.ones(100), np.zeros(100)] + 0.1 * i) for i in range(3)]
    results = [_result("MB", 0.0, scenario="b", episode=i, rewards=r, change=[100]) for i, r in enumerate(rewards)]
    assert plot_damage(results, tmp_path / "d.png", "t", window=10)
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (x, y), kwargs = drawn["plot"][0]
    reference = _reference_trailing_mean(np.mean(rewards, axis=0), 10)
    expected = np.full(WINDOW_BEFORE + WINDOW_AFTER, np.nan)
    expected[:WINDOW_BEFORE + 100] = reference[100 - WINDOW_BEFORE:]
    assert np.array_equal(x, np.arange(-WINDOW_BEFORE, WINDOW_AFTER))
    assert np.allclose(y, expected, equal_nan=True) and "MB (n=3 episodes)" == kwargs["label"]
    assert len(drawn["band"]) == 1 and drawn["vline"][0][0] == (0,)
    assert not plot_damage([_result("MB", 1.0)], tmp_path / "none.png", "t")


def test_summary_records_where_and_on_what_code_it_was_written(tmp_path) -> None:
    import json
    import subprocess

    from adaptive_mbrl.evaluation import write_report

    results = [{"robot": "cartpole", "backend": "mujoco", "scenario": "nominal", "label": "MB", "seed": 0, "episode": 0,
                "env_seed": 10000, "return": 1.0, "rewards": [0.5, 0.5], "steps": 2, "change_step": None,
                "recovery_steps": None, "wall_s": 0.1, "checkpoint": "x.pt", "preset": None, "control_hz": 20.0}]
    write_report(tmp_path, results, "demo", "MB")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    written = json.loads((tmp_path / "summary.json").read_text())["provenance"]
    assert written["git"].split("+")[0] == head and written["versions"]["torch"] != "absent"
    last = (tmp_path / "summary.md").read_text().strip().splitlines()[-1]
    assert last.startswith("Written ") and f"git {written['git']}" in last and "cores" in last
