"""Turn a suite's finished episodes into tables and plots.

Writes into the run folder:

- ``episodes.csv`` / ``episodes.json``: one row per episode (the JSON keeps the reward per step).
- ``summary.csv`` / ``summary.json`` / ``summary.md``: per robot, scenario and method the mean and
  standard deviation of the return over seeds x episodes, the ratio to the suite's baseline method
  (mean return / baseline's mean return, only where the baseline's mean is positive) with its 95 %
  bootstrap interval over seeds and episodes, paired by episode since every method plays the same
  environment seeds (see :mod:`adaptive_mbrl.evaluation.statistics`), and for
  scenarios with a mid-episode change the recovery time (see :func:`recovery_steps`).
- ``returns.png``: mean return per method per scenario (error bars: one standard deviation).
- ``damage_<robot>_<scenario>.png``: reward per step around the mid-episode change, per method: the
  ``SMOOTH_STEPS``-step trailing moving average of the mean over episodes, with the 95 % interval of that
  mean over episodes as a band (``<scenario>`` is a file-name-safe form of the scenario, see
  :func:`~adaptive_mbrl.envs.scenarios.scenario_slug`; backends other than MuJoCo add ``_<backend>``).
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from adaptive_mbrl.evaluation.statistics import by_seed, ratio_interval
from adaptive_mbrl.provenance import provenance, provenance_line

EPISODE_COLUMNS = ("robot", "backend", "scenario", "label", "seed", "episode", "env_seed", "return", "steps",
                   "change_step", "recovery_steps", "wall_s", "checkpoint", "preset")
SUMMARY_COLUMNS = ("robot", "backend", "scenario", "label", "episodes", "mean", "std", "ratio_to_baseline",
                   "ratio_low", "ratio_high", "recovery_steps", "control_hz")
WINDOW_BEFORE, WINDOW_AFTER = 50, 150
"""Steps shown before / after a mid-episode change in the damage plots."""
SMOOTH_STEPS = 20
"""Window (control steps) of the trailing moving average in the damage plots."""
Z_95 = 1.959964
"""Normal quantile of a two-sided 95 % interval."""


def recovery_steps(rewards: Iterable[float], change_step: int, window: int = 5, level: float = 0.8) -> float:
    """Control steps after ``change_step`` until the ``window``-step moving average of the reward is back
    to ``level`` x its post-change steady level (the mean reward over steps change+50 .. change+200, or
    to the episode end if shorter). NaN when that level is not positive or is never reached."""
    rewards = np.asarray(list(rewards), dtype=float)
    steady_part = rewards[change_step + 50: change_step + 200]
    if steady_part.size == 0 or not steady_part.mean() > 0:
        return float("nan")
    smooth = np.convolve(rewards, np.ones(window) / window, mode="same")
    reached = np.nonzero(smooth[change_step:] >= level * steady_part.mean())[0]
    return float(reached[0]) if reached.size else float("nan")


def episode_row(result: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of one episode (first mid-episode change and its recovery time, if any)."""
    change = result["change_steps"][0] if result.get("change_steps") else None
    row = {k: result.get(k) for k in EPISODE_COLUMNS}
    row["change_step"] = change
    row["recovery_steps"] = recovery_steps(result["rewards"], change) if change is not None else None
    return row


def _group(results: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["robot"], r["backend"], r["scenario"], r["label"])].append(r)
    return groups


def summarize(results: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """One summary row per (robot, backend, scenario, method), in the order the methods first appear."""
    groups = _group(results)
    rows = []
    for (robot, backend, scenario, label), episodes in groups.items():
        returns = np.array([e["return"] for e in episodes])
        recoveries = [episode_row(e)["recovery_steps"] for e in episodes if e.get("change_steps")]
        base = groups.get((robot, backend, scenario, baseline))
        base_mean = float(np.mean([e["return"] for e in base])) if base else float("nan")
        steps, wall = sum(e["steps"] for e in episodes), sum(e["wall_s"] for e in episodes)
        low, high = (ratio_interval(by_seed(episodes), by_seed(base), paired=True) if base
                     else (float("nan"), float("nan")))
        rows.append({"robot": robot, "backend": backend, "scenario": scenario, "label": label,
                     "episodes": len(episodes), "mean": float(returns.mean()), "std": float(returns.std()),
                     "ratio_to_baseline": float(returns.mean() / base_mean) if base_mean > 0 else float("nan"),
                     "ratio_low": low, "ratio_high": high,
                     "recovery_steps": float(np.nanmean(recoveries)) if recoveries and not all(
                         math.isnan(x) for x in recoveries) else (float("nan") if recoveries else None),
                     "control_hz": steps / wall if wall > 0 else float("nan")})
    return rows


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def markdown_summary(rows: list[dict[str, Any]], suite_name: str, baseline: str, skipped: list[str]) -> str:
    """The Markdown summary: one table per robot (and backend)."""
    lines = [f"# Suite `{suite_name}`", "",
             f"Return per episode: mean ± std over seeds × episodes; ratio = mean / mean of `{baseline}` "
             "(n/a where that mean is not positive), with its 95 % bootstrap interval over seeds and episodes. "
             "Recovery: control steps after a mid-episode change until "
             "the 5-step average reward is back to 80 % of its post-change level (n/a: never, or that level "
             "is not positive).", ""]
    for (robot, backend) in dict.fromkeys((r["robot"], r["backend"]) for r in rows):
        lines += [f"## {robot} ({backend})", "",
                  "| scenario | method | episodes | return | ratio to " + baseline + " | 95 % interval | recovery (steps) "
                  "| control Hz |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if (r["robot"], r["backend"]) == (robot, backend):
                lines.append(f"| {r['scenario']} | {r['label']} | {r['episodes']} | {r['mean']:.1f} ± {r['std']:.1f} "
                             f"| {_fmt(r['ratio_to_baseline'], 2)} "
                             f"| {'-' if r['label'] == baseline else _interval(r['ratio_low'], r['ratio_high'])} "
                             f"| {_fmt(r['recovery_steps'])} "
                             f"| {_fmt(r['control_hz'])} |")
        lines.append("")
    if skipped:
        lines += ["Skipped (optional controllers without a checkpoint):", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_returns(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: mean return per method for each scenario, one panel per robot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    robots = list(dict.fromkeys((r["robot"], r["backend"]) for r in rows))
    fig, axes = plt.subplots(len(robots), 1, figsize=(10, 3.8 * len(robots)), squeeze=False)
    for ax, (robot, backend) in zip(axes[:, 0], robots):
        mine = [r for r in rows if (r["robot"], r["backend"]) == (robot, backend)]
        scenarios, labels = list(dict.fromkeys(r["scenario"] for r in mine)), list(dict.fromkeys(r["label"] for r in mine))
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            by_scenario = {r["scenario"]: r for r in mine if r["label"] == label}
            x = [j + (i - (len(labels) - 1) / 2) * width for j, s in enumerate(scenarios) if s in by_scenario]
            ax.bar(x, [by_scenario[s]["mean"] for s in scenarios if s in by_scenario], width,
                   yerr=[by_scenario[s]["std"] for s in scenarios if s in by_scenario], capsize=3, label=label)
        ax.set_xticks(range(len(scenarios)), scenarios, rotation=15)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("return")
        ax.set_title(f"{robot} ({backend})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis, ignoring NaN: ``out[..., t]`` is the mean of the finite
    values among ``values[..., t - window + 1 .. t]`` (fewer at the start). NaN where ``values`` is NaN
    (past an episode's end) or the window holds no finite value. Trailing, so nothing after a change
    leaks into the steps before it.

    Args:
        values: ``[..., T]`` floats. window: steps averaged (>= 1).
    Returns:
        ``[..., T]`` floats.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    padding = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    sums = np.cumsum(np.pad(np.where(finite, values, 0.0), padding), axis=-1)
    counts = np.cumsum(np.pad(finite.astype(float), padding), axis=-1)
    t = values.shape[-1]
    lo = np.maximum(np.arange(1, t + 1) - window, 0)
    total = sums[..., 1:] - sums[..., lo]
    n = counts[..., 1:] - counts[..., lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / n
    out[~finite] = np.nan
    return out


def damage_curves(results: list[dict[str, Any]], window: int = SMOOTH_STEPS
                  ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Per method, the curves the damage plot draws on ``x = -WINDOW_BEFORE .. WINDOW_AFTER - 1`` steps
    since the first mid-episode change: ``(mean, low, high, episodes)``, each curve ``[WINDOW_BEFORE +
    WINDOW_AFTER]``. ``mean``: the ``window``-step moving average of each episode's reward, averaged over
    episodes; ``low`` / ``high``: its 95 % interval over episodes (mean -/+ 1.96 standard errors; NaN with
    one episode). Episodes without a change are left out."""
    per_label: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in results:
        if r.get("change_steps"):
            c = r["change_steps"][0]
            rewards = np.asarray(r["rewards"], dtype=float)
            smooth = moving_average(rewards, window)  # over the whole episode: the first plotted steps see history
            lo, hi = max(0, c - WINDOW_BEFORE), min(len(rewards), c + WINDOW_AFTER)
            curve = np.full(WINDOW_BEFORE + WINDOW_AFTER, np.nan)
            curve[lo - c + WINDOW_BEFORE: hi - c + WINDOW_BEFORE] = smooth[lo:hi]
            per_label[r["label"]].append(curve)
    out = {}
    for label, curves in per_label.items():
        stacked = np.stack(curves)
        seen = np.isfinite(stacked).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(stacked, axis=0) / seen
            deviation = np.where(np.isfinite(stacked), stacked - mean, 0.0)
            sem = np.sqrt((deviation ** 2).sum(0) / (seen - 1)) / np.sqrt(seen)
        mean[seen == 0] = np.nan
        sem[seen < 2] = np.nan
        out[label] = (mean, mean - Z_95 * sem, mean + Z_95 * sem, len(curves))
    return out


def _step_seconds(robot: str) -> float | None:
    try:
        from adaptive_mbrl.envs.robot_spec import load_robot
        return load_robot(robot).dt
    except ValueError:
        return None


def plot_damage(results: list[dict[str, Any]], path: Path, title: str, window: int = SMOOTH_STEPS) -> bool:
    """Reward per step around the first mid-episode change (x = control steps since the change), per
    method the curves of :func:`damage_curves` (a line and a 95 % band), the change as a vertical line;
    False (nothing written) when no episode has a change."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = damage_curves(results, window)
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(-WINDOW_BEFORE, WINDOW_AFTER)
    for label, (mean, low, high, n) in curves.items():
        line, = ax.plot(x, mean, linewidth=1.8, label=f"{label} (n={n} episodes)")
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axvline(0, color="black", linestyle="--", linewidth=1.2, label="dynamics change")
    dt = _step_seconds(results[0]["robot"]) if results else None
    ax.set_xlabel("control steps since the change" + (f" (1 step = {dt:g} s)" if dt else ""))
    ax.set_ylabel(f"reward per step ({window}-step moving average)")
    ax.set_title(f"{title}\nmean over episodes, band: 95 % interval of the mean", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def damage_plot_name(robot: str, backend: str, scenario: str) -> str:
    """``damage_<robot>[_<backend>]_<scenario slug>.png``: safe for any scenario reference (file paths too)."""
    from adaptive_mbrl.envs.scenarios import scenario_slug
    middle = robot if backend == "mujoco" else f"{robot}_{backend}"
    return f"damage_{middle}_{scenario_slug(scenario)}.png"


def write_report(folder: str | Path, results: list[dict[str, Any]], suite_name: str, baseline: str,
                 skipped: Iterable[str] = (), method_order: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Write every table and plot of the module docstring into ``folder``; returns the summary rows.

    Rows are sorted by robot, scenario and then ``method_order`` (the suite's order of controllers), so
    the files do not depend on the order in which episodes finished.
    """
    folder = Path(folder)
    order = {label: i for i, label in enumerate(method_order)}
    results = sorted(results, key=lambda r: (r["robot"], r["backend"], r["scenario"], order.get(r["label"], len(order)),
                                             r["label"], r["seed"], r["episode"]))
    rows = summarize(results, baseline)
    _write_csv(folder / "episodes.csv", [episode_row(r) for r in results], EPISODE_COLUMNS)
    (folder / "episodes.json").write_text(json.dumps(results))
    _write_csv(folder / "summary.csv", rows, SUMMARY_COLUMNS)
    written = provenance()  # where and on what code these tables were written
    (folder / "summary.json").write_text(json.dumps({"suite": suite_name, "baseline": baseline, "rows": rows,
                                                     "skipped": list(skipped), "provenance": written}, indent=1))
    (folder / "summary.md").write_text(markdown_summary(rows, suite_name, baseline, list(skipped))
                                       + f"\nWritten {provenance_line(written)}\n")
    if rows:
        plot_returns(rows, folder / "returns.png")
    for (robot, backend, scenario) in dict.fromkeys((r["robot"], r["backend"], r["scenario"]) for r in results):
        mine = [r for r in results if (r["robot"], r["backend"], r["scenario"]) == (robot, backend, scenario)]
        plot_damage(mine, folder / damage_plot_name(robot, backend, scenario), f"{robot} ({backend}): {scenario}")
    return rows
