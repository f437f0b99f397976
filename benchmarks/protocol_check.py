"""Does a cheaper evaluation protocol rank the methods as the full one does? Shorter episodes, from episodes
already played.

    python benchmarks/protocol_check.py <suite run folder> [--lengths 200 300 500] [--baseline MB]

Reads a finished suite's ``episodes.jsonl`` (every episode keeps its per-step rewards) and, for each
scenario and each truncation length T, scores every method by the mean return of the first T steps of its
episodes. Printed per scenario and T: the methods from best to worst, each method's ratio to the baseline,
and whether the order equals the full episodes' order (Kendall's tau against it: 1 = the same order).
A protocol whose order agrees with the full one at every scenario can replace it for a sweep; the check
costs no simulation, only a suite that was played at full length once.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from adaptive_mbrl.provenance import provenance_line


def load_episodes(folder: Path) -> list[dict]:
    """The episodes of a suite run folder (``episodes.jsonl``, one JSON object per line)."""
    path = folder / "episodes.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: give the run folder of a finished suite (it holds episodes.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncated_means(episodes: list[dict], length: int | None) -> dict[str, dict[str, float]]:
    """``{scenario: {method: mean return of the first length steps}}`` (``None``: the whole episode)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for episode in episodes:
        rewards = episode["rewards"] if length is None else episode["rewards"][:length]
        sums[episode["scenario"]][episode["label"]].append(float(np.sum(rewards)))
    return {s: {m: float(np.mean(v)) for m, v in methods.items()} for s, methods in sums.items()}


def rank_agreement(short: dict[str, float], full: dict[str, float]) -> float:
    """Kendall's tau between two scorings of the same methods (1: the same order, -1: reversed)."""
    methods = sorted(full)
    if len(methods) < 2:
        return 1.0
    tau = kendalltau([short[m] for m in methods], [full[m] for m in methods]).statistic
    return 1.0 if np.isnan(tau) else float(tau)


def main() -> None:
    print(provenance_line(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a suite's run folder (with episodes.jsonl)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[200, 300, 500],
                        help="truncation lengths in control steps")
    parser.add_argument("--baseline", default=None, help="method of the ratios (default: the first in the file)")
    args = parser.parse_args()
    if any(length < 1 for length in args.lengths):
        parser.error("--lengths must be positive")
    episodes = load_episodes(args.folder)
    labels = list(dict.fromkeys(e["label"] for e in episodes))
    baseline = args.baseline or labels[0]
    if baseline not in labels:
        parser.error(f"--baseline {baseline} is not a method of this suite ({', '.join(labels)})")
    full = truncated_means(episodes, None)
    print(f"\n{len(episodes)} episodes of {', '.join(labels)}; ratios to {baseline}\n")
    print(f"| scenario | steps | order (best first) | {' | '.join(labels)} | tau vs full |")
    print("|---|---:|---|" + "---:|" * (len(labels) + 1))
    for length in [*sorted(args.lengths), None]:
        for scenario, means in sorted(truncated_means(episodes, length).items()):
            order = " > ".join(sorted(means, key=lambda m: -means[m]))
            ratios = " | ".join(f"{means[m] / means[baseline]:.2f}" if m in means else "-" for m in labels)
            steps = "full" if length is None else str(length)
            tau = rank_agreement(means, full[scenario])
            print(f"| {scenario} | {steps} | {order} | {ratios} | {tau:.2f} |")


if __name__ == "__main__":
    main()
