"""How often a training run's robot was upside down: the posture of the data its MPC collected.

    python benchmarks/posture.py <run folder> [<run folder> ...] [--block 50000]

Reads each model-based run folder's ``buffer.npz`` (every transition it collected) and ``config.yaml`` (its
robot), and prints per block of ``--block`` transitions (the first block is the run's random-action data,
``training.random_steps``) the share of transitions whose base is tilted past 90 degrees (the robot
objective's ``uprightness`` < 0: on its back) and the mean forward velocity. A locomotion MPC that plans a
short horizon can settle on a gait on the robot's back (half_cheetah: its PE runs did, 64-73 % of their
data); ``planner.upright_cost`` is the setting against it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from adaptive_mbrl.envs.objectives import robot_objective
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.training.buffer import TransitionBuffer


def blocks(n: int, first: int, size: int) -> list[tuple[int, int]]:
    """Transition ranges ``[(start, stop)]``: the first ``first`` rows, then blocks of ``size`` up to ``n``."""
    edges = [0, min(first, n)]
    while edges[-1] < n:
        edges.append(min(edges[-1] + size, n))
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def posture_rows(run: Path, block: int) -> list[dict]:
    """One row per block of ``run``'s buffer: transitions, share upside down, mean forward velocity."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    robot = config["run"]["robot"]
    objective = robot_objective(robot)
    upright_fn = getattr(objective, "uprightness", None)
    if upright_fn is None:
        raise SystemExit(f"{run}: robot {robot!r} has no base orientation (not a locomotion robot)")
    buffer = TransitionBuffer.load(run / "buffer.npz")
    obs = buffer.tensors()["next_obs"].numpy()
    first = int(config["preset"]["training"]["random_steps"])
    rows = []
    for start, stop in blocks(len(obs), first, block):
        part = obs[start:stop]
        rows.append({"run": run.name, "steps": f"{start // 1000}k-{stop // 1000}k",
                     "upside_down": float((upright_fn(part) < 0).mean()),
                     "vx": float(part[:, objective.vx_index].mean()), "upright_cost":
                     config["preset"]["planner"].get("upright_cost", 0.0)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="model-based run folders (buffer.npz, config.yaml)")
    parser.add_argument("--block", type=int, default=50_000, help="transitions per row after the random data")
    args = parser.parse_args(argv)
    if args.block < 1:
        parser.error(f"--block must be >= 1, got {args.block}")
    for run in args.runs:
        if not (run / "buffer.npz").is_file() or not (run / "config.yaml").is_file():
            parser.error(f"{run}: not a model-based run folder (needs buffer.npz and config.yaml)")
    print(provenance_line())
    print("| run | planner.upright_cost | collected steps | base past 90 degrees (share) | mean forward velocity (m/s) |")
    print("|---|---:|---|---:|---:|")
    for run in args.runs:
        for row in posture_rows(run, args.block):
            print(f"| {row['run']} | {row['upright_cost']:g} | {row['steps']} | {row['upside_down']:.2f} | "
                  f"{row['vx']:.2f} |")


if __name__ == "__main__":
    main()
