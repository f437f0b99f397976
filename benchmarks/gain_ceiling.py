"""The actuator-gain adapter against its ceiling: the same model fed the true motor gains.

    python benchmarks/gain_ceiling.py --checkpoint shipped:half_cheetah/pets \
        --scenarios crippled_joint_test joint_break_midepisode --episodes 10 --workers 2

On the same episodes (environment seeds ``--episode-seed + i``, planner seed ``--seed``, by default the
checkpoint's training seed, as ``adaptation.py`` uses), three controllers run the checkpoint's model:

- ``none``: ``--baseline-preset`` (default ``pets``): the model, no adaptation;
- ``estimated``: ``--preset`` (default ``pets_gains``): the gains estimated online from the last transitions;
- ``true``: the same preset with ``adapter.steps=0`` and the gains set, at the reset and after every step,
  to the ``joint_damage`` scales the simulator is running (1 for an intact motor). This is the best any
  estimate of per-motor gains can do with this model and planner: the adapter's ceiling.

The table gives each controller's mean return, its ratio to ``none`` with a paired 95 % bootstrap interval,
and the returns per episode. ``estimated`` close to ``true`` means the estimate is not what limits the
return; the model and the planner are.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import torch

from adaptive_mbrl.envs.perturbations import JointDamage
from adaptive_mbrl.evaluation import load_controller, run_episode
from adaptive_mbrl.evaluation.statistics import ratio_interval
from adaptive_mbrl.paths import existing_checkpoint
from adaptive_mbrl.presets import load_preset
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.checkpoint import load_checkpoint

CONTROLLERS = ("none", "estimated", "true")


def true_gains(env, act_dim: int) -> torch.Tensor:
    """``[a]`` the gear scale each motor runs at now: the product of the active ``joint_damage`` scales."""
    gains = torch.ones(act_dim)
    for perturbation in env.active_perturbations:
        if isinstance(perturbation, JointDamage):
            for motor in perturbation.actuator_indices(env.robot):
                gains[motor] *= perturbation.scale
    return gains


class Job(NamedTuple):
    """One episode of the table."""

    kind: str                    # controller: none, estimated or true
    path: str                    # checkpoint
    robot: str                   # the checkpoint's robot
    preset: str
    scenario: str
    seed: int                    # planner seed
    env_seed: int
    overrides: tuple[str, ...]
    steps: int | None            # control steps (None: the robot's episode length)


def play(job: Job) -> float:
    """Run one episode; returns its return."""
    torch.set_num_threads(1)
    overrides = (*job.overrides, "adapter.steps=0") if job.kind == "true" else job.overrides
    controller = load_controller(job.path, job.preset, seed=job.seed, overrides=list(overrides) or None, threads=1)
    on_step = None
    if job.kind == "true":
        def on_step(env, step: int) -> None:
            controller.adapter.gains = true_gains(env, controller.adapter.model.act_dim)
    return run_episode(controller, job.robot, job.scenario, job.env_seed, episode_steps=job.steps,
                       on_step=on_step).total


def check_preset(preset: str) -> None:
    """Exit with a clear message unless ``preset`` runs the actuator-gain adapter."""
    kind = load_preset(preset).adapter.kind
    if kind != "actuator_gains":
        raise SystemExit(f"--preset {preset!r} runs adapter {kind!r}; the ceiling needs an actuator_gains "
                         "adapter (e.g. pets_gains)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="shipped:half_cheetah/pets", help="model.pt or shipped:<robot>/<name>")
    parser.add_argument("--preset", default="pets_gains", help="a preset with adapter.kind actuator_gains")
    parser.add_argument("--baseline-preset", default="pets", help="the same model without adaptation")
    parser.add_argument("--scenarios", nargs="+", default=["crippled_joint_test", "joint_break_midepisode"])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per scenario")
    parser.add_argument("--steps", type=int, default=None, help="control steps per episode (default: the robot's)")
    parser.add_argument("--episode-seed", type=int, default=10_000, help="environment seed of episode 0")
    parser.add_argument("--seed", type=int, default=None, help="planner seed (default: the checkpoint's training seed)")
    parser.add_argument("--controllers", nargs="+", choices=CONTROLLERS, default=list(CONTROLLERS))
    parser.add_argument("--workers", type=int, default=1, help="episodes in parallel (one torch thread each)")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="settings for all three, e.g. planner.samples=300")
    args = parser.parse_args(argv)
    for name, value in (("--episodes", args.episodes), ("--workers", args.workers)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    path = str(existing_checkpoint(args.checkpoint))
    check_preset(args.preset)
    checkpoint = load_checkpoint(path)
    seed = args.seed if args.seed is not None else int(checkpoint["meta"].get("seed", 0))
    presets = {"none": args.baseline_preset, "estimated": args.preset, "true": args.preset}
    jobs = [Job(kind, path, checkpoint["robot"], presets[kind], scenario, seed, args.episode_seed + i,
                tuple(args.set), args.steps)
            for scenario in args.scenarios for kind in args.controllers for i in range(args.episodes)]
    with ProcessPoolExecutor(args.workers) as pool:
        returns = list(pool.map(play, jobs))
    results: dict[tuple[str, str], list[float]] = {}
    for job, value in zip(jobs, returns):
        results.setdefault((job.scenario, job.kind), []).append(value)
    print(provenance_line())
    print(f"\n{args.checkpoint}, planner seed {seed}, environment seeds {args.episode_seed}-"
          f"{args.episode_seed + args.episodes - 1}\n")
    print("| scenario | controller | mean return | ratio to none, 95 % interval | per episode |")
    print("|---|---|---:|---:|---|")
    for scenario in args.scenarios:
        base = results.get((scenario, "none"))
        for kind in args.controllers:
            mine = results[scenario, kind]
            mean = sum(mine) / len(mine)
            ratio = "-"
            if base and kind != "none":
                low, high = ratio_interval({seed: mine}, {seed: base}, paired=True)
                ratio = f"{mean / (sum(base) / len(base)):.2f} [{low:.2f}, {high:.2f}]"
            print(f"| {scenario} | {kind} | {mean:.1f} | {ratio} | {', '.join(f'{r:.1f}' for r in mine)} |")


if __name__ == "__main__":
    main()
