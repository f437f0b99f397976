"""How fast the actuator-gain adapter finds a motor fault: its estimated gains, step by step.

    python benchmarks/gain_trace.py --checkpoint shipped:half_cheetah/pets --scenario joint_break_midepisode \
        --steps 400 --every 10 [--seed 10000] [--controller-seed 1] [--set adapter.learning_rate=0.1]

The checkpoint's model runs with the ``pets_gains`` preset's adapter and planner (``--preset``; a model
without a context input) for one episode of ``--scenario`` (environment seed ``--seed``; the controller's
planner seed ``--controller-seed``, default ``--seed``: a suite episode is replayed exactly with its
``env_seed`` and its training ``seed``). The table gives every ``--every``-th step's gains, one per motor
(1 = intact, 0 = disabled), the reward of that step and, for a robot with a base orientation, the base's
uprightness after it (cosine of its tilt: 1 upright, below 0 on its back); then, for each motor whose gain
fell below ``--threshold``, the first step it did, and the share of steps the robot spent on its back.
"""
from __future__ import annotations

import argparse

from adaptive_mbrl.envs.objectives import robot_objective
from adaptive_mbrl.evaluation import load_controller, run_episode
from adaptive_mbrl.paths import existing_checkpoint
from adaptive_mbrl.provenance import provenance_line
from adaptive_mbrl.storage.checkpoint import load_checkpoint

# the benchmarks' shared helpers (benchmarks/_common.py: this script's folder is first on sys.path)
from _common import live_uprightness


def trace(checkpoint: str, preset: str, scenario: str, steps: int, seed: int, overrides: list[str],
          controller_seed: int) -> tuple[list[list[float]], list[float], list[int], list[float] | None]:
    """Gains ``[steps + 1][a]`` (row ``k``: after the controller observed step ``k``; row 0: after the
    reset), rewards ``[steps]``, the steps whose transition first had the changed dynamics (1-based, as the
    rows) and the base's uprightness ``[steps + 1]`` (as the gains; None for a robot without a base
    orientation). ``seed``: the environment's; ``controller_seed``: the planner's."""
    path = existing_checkpoint(checkpoint)
    robot = load_checkpoint(path)["robot"]
    controller = load_controller(path, preset, seed=controller_seed, overrides=overrides or None)
    if controller.preset.adapter.kind != "actuator_gains":
        raise SystemExit(f"--preset {preset!r} runs adapter {controller.preset.adapter.kind!r}; the trace needs "
                         "an actuator_gains adapter (e.g. pets_gains)")
    gains: list[list[float]] = []
    uprights: list[float] | None = [] if hasattr(robot_objective(robot), "uprightness") else None

    def after_step(env, step: int) -> None:
        gains.append([round(float(g), 4) for g in controller.adapter.gains])
        if uprights is not None:
            uprights.append(live_uprightness(env))

    record = run_episode(controller, robot, scenario, seed, episode_steps=steps, on_step=after_step)
    return gains, list(record.rewards), [step + 1 for step in record.change_steps], uprights


def first_below(gains: list[list[float]], threshold: float) -> dict[int, int]:
    """Motor -> the first step at which its gain was below ``threshold`` (motors that never were: absent)."""
    found: dict[int, int] = {}
    for step, row in enumerate(gains):
        for motor, gain in enumerate(row):
            if gain < threshold and motor not in found:
                found[motor] = step
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="shipped:half_cheetah/pets", help="model.pt or shipped:<robot>/<name>")
    parser.add_argument("--preset", default="pets_gains", help="a preset with adapter.kind actuator_gains")
    parser.add_argument("--scenario", default="joint_break_midepisode")
    parser.add_argument("--steps", type=int, default=400, help="control steps of the episode")
    parser.add_argument("--every", type=int, default=10, help="print every N-th step")
    parser.add_argument("--seed", type=int, default=10_000, help="environment seed (and planner seed unless "
                        "--controller-seed)")
    parser.add_argument("--controller-seed", type=int, default=None,
                        help="the controller's planner seed (a suite episode: its training seed)")
    parser.add_argument("--threshold", type=float, default=0.5, help="report when a gain first falls below this")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="adapter / planner settings, e.g. adapter.learning_rate=0.1")
    args = parser.parse_args(argv)
    for name, value in (("--steps", args.steps), ("--every", args.every)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    controller_seed = args.seed if args.controller_seed is None else args.controller_seed
    gains, rewards, changes, uprights = trace(args.checkpoint, args.preset, args.scenario, args.steps, args.seed,
                                              args.set, controller_seed)
    print(provenance_line())
    print(f"\n{args.checkpoint} with {args.preset} on {args.scenario}, environment seed {args.seed}, controller "
          f"seed {controller_seed}; dynamics changed at step "
          f"{', '.join(map(str, changes)) or 'none (changed at reset, if at all)'}; return {sum(rewards):.1f}\n")
    motors = len(gains[0])
    upright_header = " upright |" if uprights is not None else ""
    print("| step | " + " | ".join(f"gain {m}" for m in range(motors)) + " | reward |" + upright_header)
    print("|---:|" + "---:|" * (motors + 1) + ("---:|" if uprights is not None else ""))
    for step in range(0, len(gains), args.every):
        reward = f"{rewards[step - 1]:.2f}" if step else "-"
        upright = f" {uprights[step]:.2f} |" if uprights is not None else ""
        print(f"| {step} | " + " | ".join(f"{g:.2f}" for g in gains[step]) + f" | {reward} |" + upright)
    print(f"\n| motor | first step with its gain below {args.threshold:g} | steps after the change |\n|---:|---:|---:|")
    for motor, step in sorted(first_below(gains, args.threshold).items()):
        after = [step - c for c in changes if c <= step]
        print(f"| {motor} | {step} | {min(after) if after else '-'} |")
    if uprights is not None:
        on_back = [step for step, u in enumerate(uprights) if u < 0]
        print(f"\non its back (uprightness below 0): {len(on_back) / len(uprights):.1%} of the steps, first at step "
              f"{on_back[0] if on_back else 'never'}")


if __name__ == "__main__":
    main()
