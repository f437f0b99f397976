"""How often a robot is upside down: in the data a training run collected, or under a trained controller.

    python benchmarks/posture.py <run folder> [<run folder> ...] [--block 50000]
    python benchmarks/posture.py --checkpoints shipped:half_cheetah/pets <model.pt> ... \
        --scenario crippled_joint_test --episodes 1 --steps 200 [--set planner.upright_cost=3]

Reads each model-based run folder's ``buffer.npz`` (every transition it collected) and ``config.yaml`` (its
robot), and prints per block of ``--block`` transitions (the first block is the run's random-action data,
``training.random_steps``) the share of transitions whose base is tilted past 90 degrees (the robot
objective's ``uprightness`` < 0: on its back) and the mean forward velocity. A locomotion MPC that plans a
short horizon can settle on a gait on the robot's back (half_cheetah: its PE runs did, 64-73 % of their
data); ``planner.upright_cost`` is the setting against it.

With ``--checkpoints``, each controller (``load_controller``, its trained preset plus ``--set``) plays
``--episodes`` episodes of ``--scenario`` (episode i: environment and planner seed ``--seed`` + i, a
controller loaded afresh), ``--steps`` steps each (``run_episode``), and the table gives the share of steps with the base past
90 degrees, the step at which it first got there, and the return.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from adaptive_mbrl.envs.objectives import robot_objective
from adaptive_mbrl.evaluation import load_controller, run_episode
from adaptive_mbrl.paths import existing_checkpoint
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.checkpoint import load_checkpoint
from adaptive_mbrl.training.buffer import TransitionBuffer

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import live_uprightness


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


def controller_rows(checkpoint: str, scenario: str, episodes: int, steps: int, seed: int,
                    overrides: list[str]) -> list[dict]:
    """One row per episode of ``checkpoint``'s controller on ``scenario``: share of steps upside down, the
    first such step (None: never) and the return over ``steps`` steps.

    Episode ``i`` plays environment seed ``seed + i`` with a controller loaded with planner seed ``seed + i``.
    """
    path = existing_checkpoint(checkpoint)
    robot = load_checkpoint(path)["robot"]
    if not hasattr(robot_objective(robot), "uprightness"):
        raise SystemExit(f"{checkpoint}: robot {robot!r} has no base orientation (not a locomotion robot)")
    rows = []
    for episode in range(episodes):
        controller = load_controller(path, seed=seed + episode, overrides=overrides or None)
        upside_down: list[bool] = []

        def after_step(env, step: int) -> None:
            if step:  # step 0 is the reset
                upside_down.append(live_uprightness(env) < 0)

        record = run_episode(controller, robot, scenario, seed + episode, episode_steps=steps, on_step=after_step)
        first = next((i + 1 for i, flag in enumerate(upside_down) if flag), None)
        rows.append({"checkpoint": checkpoint, "episode": episode, "share": float(np.mean(upside_down)),
                     "first": first, "return": record.total, "steps": len(upside_down)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="model-based run folders (buffer.npz, config.yaml)")
    parser.add_argument("--block", type=int, default=50_000, help="transitions per row after the random data")
    parser.add_argument("--checkpoints", nargs="+", default=[], help="model.pt files or shipped:<robot>/<name>")
    parser.add_argument("--scenario", default="nominal", help="scenario the controllers play (--checkpoints)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per controller (--checkpoints)")
    parser.add_argument("--steps", type=int, default=200, help="control steps per episode (--checkpoints)")
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the first episode (--checkpoints)")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="planner / adapter settings for every controller, e.g. planner.upright_cost=3")
    args = parser.parse_args(argv)
    if not args.runs and not args.checkpoints:
        parser.error("give run folders, or --checkpoints")
    for name, value in (("--block", args.block), ("--episodes", args.episodes), ("--steps", args.steps)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    if args.checkpoints:
        print(provenance_line())
        print("| controller | episode | steps | steps past 90 degrees (share) | first step past 90 degrees | return |")
        print("|---|---:|---:|---:|---:|---:|")
        for checkpoint in args.checkpoints:
            for row in controller_rows(checkpoint, args.scenario, args.episodes, args.steps, args.seed, args.set):
                first = "never" if row["first"] is None else row["first"]
                print(f"| {checkpoint} | {row['episode']} | {row['steps']} | {row['share']:.2f} | {first} | "
                      f"{row['return']:.1f} |")
        return
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
