"""Compare methods evaluated in different suite run folders: means and the ratio to a baseline with its interval.

    python benchmarks/compare_runs.py --baseline <folder> PEARL@1000000 \
        --method <folder> PE-TS+gains+DE [--method <folder> <label> ...] [--scenarios crippled_joint_test]

Each ``<folder>`` is a finished suite run folder (``adaptive-mbrl eval``, ``benchmarks/adaptation.py``,
``benchmarks/sample_efficiency.py``: anything with an ``episodes.jsonl``), ``<label>`` a controller label in
it. Per test scenario the table gives each method's mean return over its training seeds and episodes, the
ratio of that mean to the baseline's and a 95 % bootstrap interval of the ratio that draws each method's
training seeds, then their episodes, on their own (``ratio_interval(..., independent=True)``): the seeds of
methods of different families (a model-based method against PEARL or RL²) have nothing in common.

With ``--split K`` (e.g. 300, the step at which ``joint_break_midepisode`` disables the joint) a second table
gives each method's mean reward per step before step K and after it: how much of a ratio on a mid-episode
change comes from the part of the episode before the change, where no adaptation can help.

Comparisons are only fair on the same tasks: the last column says whether a method's episodes ran on the
baseline's environment seeds; a scenario whose episodes do not match is still printed, marked "no".
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from adaptive_mbrl.evaluation.results import read_episodes
from adaptive_mbrl.evaluation.statistics import by_seed, ratio_interval
from adaptive_mbrl.provenance import provenance_line


def label_episodes(folder: Path, label: str) -> dict[str, list[dict]]:
    """``label``'s finished episodes in the run folder ``folder``, by scenario (exits naming the labels there)."""
    episodes = list(read_episodes(folder).values())
    if not episodes:
        raise SystemExit(f"{folder}: no finished episodes (no episodes.jsonl, or it is empty)")
    mine = [e for e in episodes if e["label"] == label]
    if not mine:
        labels = ", ".join(sorted({e["label"] for e in episodes}))
        raise SystemExit(f"{folder}: no episodes of label {label!r}; labels there: {labels}")
    grouped: dict[str, list[dict]] = {}
    for e in mine:
        grouped.setdefault(e["scenario"], []).append(e)
    return grouped


def compare_rows(baseline: dict[str, list[dict]], methods: list[tuple[str, dict[str, list[dict]]]],
                 scenarios: list[str] | None = None) -> list[dict]:
    """One row per scenario and method (the baseline first, ratio 1): returns, ratio, interval, same tasks."""
    rows = []
    for scenario in scenarios or sorted(baseline):
        base = baseline.get(scenario)
        if not base:
            raise SystemExit(f"the baseline has no episodes of scenario {scenario!r}; it has {', '.join(sorted(baseline))}")
        base_mean = float(np.mean([e["return"] for e in base]))
        base_tasks = {e["env_seed"] for e in base}
        for name, grouped in methods:
            episodes = grouped.get(scenario, [])
            if not episodes:
                continue
            returns = [e["return"] for e in episodes]
            mean = float(np.mean(returns))
            is_base = episodes is base
            low, high = (1.0, 1.0) if is_base else ratio_interval(by_seed(episodes), by_seed(base), independent=True)
            rows.append({"scenario": scenario, "method": name, "is_baseline": is_base, "seeds": len({e["seed"] for e in episodes}),
                         "episodes": len(episodes), "mean": mean, "std": float(np.std(returns)),
                         "ratio": mean / base_mean if base_mean > 0 else float("nan"), "low": low, "high": high,
                         "same_tasks": {e["env_seed"] for e in episodes} <= base_tasks})
    return rows


def phase_rows(methods: list[tuple[str, dict[str, list[dict]]]], split: int,
               scenarios: list[str] | None = None) -> list[dict]:
    """Per scenario and method: mean reward per step over steps ``[0, split)`` and ``[split, end)`` of every
    episode (episodes shorter than ``split`` steps count in the first phase only)."""
    rows = []
    for name, grouped in methods:
        for scenario in scenarios or sorted(grouped):
            episodes = grouped.get(scenario, [])
            if not episodes:
                continue
            before = np.concatenate([np.asarray(e["rewards"][:split], dtype=float) for e in episodes])
            after = [np.asarray(e["rewards"][split:], dtype=float) for e in episodes]
            after_all = np.concatenate(after) if any(a.size for a in after) else np.array([np.nan])
            rows.append({"scenario": scenario, "method": name, "before": float(before.mean()),
                         "after": float(after_all.mean()), "kept": float(after_all.mean() / before.mean())})
    return sorted(rows, key=lambda r: r["scenario"])


def print_phases(rows: list[dict], split: int) -> None:
    """The markdown table of :func:`phase_rows`."""
    print(f"| scenario | method | reward per step, steps 0-{split - 1} | reward per step, from step {split} "
          "| after / before |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['method']} | {r['before']:.2f} | {r['after']:.2f} | {r['kept']:.2f} |")


def print_table(rows: list[dict], baseline_name: str) -> None:
    """The markdown table of :func:`compare_rows`."""
    print(f"| scenario | method | training seeds | episodes | return (mean ± std) | ratio to {baseline_name} "
          "| 95 % interval (seeds drawn per method) | baseline's tasks |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        interval = "-" if r["is_baseline"] else f"[{r['low']:.2f}, {r['high']:.2f}]"
        print(f"| {r['scenario']} | {r['method']} | {r['seeds']} | {r['episodes']} | {r['mean']:.1f} ± {r['std']:.1f} "
              f"| {r['ratio']:.2f} | {interval} | {'yes' if r['same_tasks'] else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", nargs=2, required=True, metavar=("FOLDER", "LABEL"),
                        help="the run folder and label of the baseline")
    parser.add_argument("--method", nargs=2, action="append", required=True, metavar=("FOLDER", "LABEL"),
                        help="a run folder and label to compare (repeat for more)")
    parser.add_argument("--scenarios", nargs="+", default=None,
                        help="test scenarios to compare (default: every scenario of the baseline)")
    parser.add_argument("--split", type=int, default=0, metavar="K",
                        help="also print the mean reward per step before and after control step K (0: off)")
    args = parser.parse_args()
    if args.split < 0:
        parser.error(f"--split must be a control step >= 0 (0: off), got {args.split}")
    print(provenance_line())
    base_folder, base_label = Path(args.baseline[0]), args.baseline[1]
    baseline = label_episodes(base_folder, base_label)
    methods = [(base_label, baseline)] + [(label, label_episodes(Path(folder), label)) for folder, label in args.method]
    print(f"baseline: {base_label} in {base_folder}")
    for folder, label in args.method:
        print(f"method: {label} in {folder}")
    print()
    print_table(compare_rows(baseline, methods, args.scenarios), base_label)
    if args.split:
        print()
        print_phases(phase_rows(methods, args.split, args.scenarios), args.split)


if __name__ == "__main__":
    main()
