"""``adaptive-mbrl``: list robots / scenarios / controllers, train a model, run a controller.

    adaptive-mbrl list
    adaptive-mbrl train --controller mb --robot half_cheetah --scenario crippled_joint_train --out runs/mb_hc
    adaptive-mbrl run --checkpoint runs/mb_hc/model.pt --controller mb_de --scenario joint_break_midepisode
    adaptive-mbrl demo          # the README's main job: train on the cart-pole, run MB and MB+DE under a motor fault
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _cmd_list(args: argparse.Namespace) -> int:
    import adaptive_mbrl as am
    from adaptive_mbrl.envs.scenarios import load_scenarios
    from adaptive_mbrl.presets import list_presets, load_preset

    if args.what in ("robots", "all"):
        print("robots:")
        for name in am.list_robots():
            spec = am.load_robot(name)
            print(f"  {name:14s} backends: {', '.join(spec.models):17s} {spec.description}")
    if args.what in ("scenarios", "all"):
        for name in am.list_robots():
            print(f"scenarios of {name}:")
            for scenario in load_scenarios(name).values():
                tag = f"[{scenario.split}]" if scenario.split != "any" else ""
                print(f"  {scenario.name:32s} {tag:8s} {scenario.description}")
    if args.what in ("controllers", "all"):
        print("controllers:")
        for name in list_presets():
            print(f"  {name:14s} {load_preset(name).description}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from adaptive_mbrl.baselines import is_baseline_preset
    from adaptive_mbrl.presets import load_preset
    from adaptive_mbrl.training.train_model import RunSettings, train_model

    if is_baseline_preset(args.controller):  # PEARL / RL² (controllers/baselines/)
        return _train_baseline(args)
    preset = load_preset(args.controller)
    for key in ("iterations", "random_steps", "steps_per_iteration", "parallel_envs"):
        if getattr(args, key) is not None:
            setattr(preset.training, key, getattr(args, key))
    out = Path(args.out or f"runs/{preset.name}_{args.robot}_{args.scenario}_s{args.seed}")
    start = time.perf_counter()
    trainer = train_model
    if preset.adapter.kind in ("grbal", "rebal"):  # meta-learned adapters: meta-training instead of fitting
        from adaptive_mbrl.training.meta_train import meta_train as trainer
    checkpoint = trainer(preset, RunSettings(args.robot, args.scenario, args.backend, args.seed, args.device),
                         out, resume=args.resume, progress=None if not args.quiet else False)
    print(f"trained {preset.name} on {args.robot}/{args.scenario} in {time.perf_counter() - start:.0f} s: {checkpoint}")
    return 0


def _train_baseline(args: argparse.Namespace) -> int:
    from adaptive_mbrl.baselines import load_baseline_preset, train_baseline
    from adaptive_mbrl.training.train_model import RunSettings

    preset = load_baseline_preset(args.controller)
    if args.iterations is not None:
        preset.training.iterations = args.iterations
    out = Path(args.out or f"runs/{preset.name}_{args.robot}_{args.scenario}_s{args.seed}")
    start = time.perf_counter()
    checkpoint = train_baseline(preset, RunSettings(args.robot, args.scenario, args.backend, args.seed, args.device),
                                out, resume=args.resume, progress=None if not args.quiet else False)
    print(f"trained {preset.name} on {args.robot}/{args.scenario} in {time.perf_counter() - start:.0f} s: {checkpoint}")
    return 0


def run_episode(controller, robot: str, scenario: str, seed: int, backend: str = "mujoco",
                print_every: int = 0) -> tuple[float, list[float]]:
    """One episode of ``controller`` on ``robot`` / ``scenario``; returns (return, reward per step)."""
    import adaptive_mbrl as am

    env = am.make(robot, scenario, backend=backend, seed=seed)
    obs, info = env.reset()
    controller.reset()
    rewards: list[float] = []
    done = False
    while not done:
        action = controller.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        controller.observe(obs, action, next_obs)
        obs, done = next_obs, terminated or truncated
        rewards.append(reward)
        if info["perturbation_changed"] and print_every:
            print(f"  step {len(rewards) - 1}: dynamics changed -> {info['active_perturbations']}")
        if print_every and len(rewards) % print_every == 0:
            print(f"  step {len(rewards):4d}  reward {reward:7.3f}  return so far {sum(rewards):9.2f}")
    env.close()
    return float(sum(rewards)), rewards


def _cmd_run(args: argparse.Namespace) -> int:
    from adaptive_mbrl.control import AdaptiveController
    from adaptive_mbrl.training.checkpoint import load_checkpoint

    if load_checkpoint(args.checkpoint)["preset"].get("kind") in ("pearl", "rl2"):  # a model-free baseline
        from adaptive_mbrl.baselines import PolicyController
        controller = PolicyController.from_checkpoint(args.checkpoint, device=args.device, seed=args.seed,
                                                      backend=args.backend)
    else:
        controller = AdaptiveController.from_checkpoint(args.checkpoint, preset=args.controller, device=args.device,
                                                        seed=args.seed, backend=args.backend)
    robot = _checkpoint_robot(args.checkpoint)
    returns = []
    for episode in range(args.episodes):
        total, _ = run_episode(controller, robot, args.scenario, args.seed + episode, args.backend, args.print_every)
        returns.append(total)
        print(f"episode {episode}: return {total:.2f}")
    print(f"{controller.preset.name} on {robot}/{args.scenario}: mean return {np.mean(returns):.2f} "
          f"over {len(returns)} episode(s)")
    return 0


def _checkpoint_robot(path: str) -> str:
    from adaptive_mbrl.training.checkpoint import load_checkpoint
    return load_checkpoint(path)["robot"]


def _cmd_demo(args: argparse.Namespace) -> int:
    """Train the quickstart preset on the cart-pole, then run MB and MB+DE under a mid-episode motor fault."""
    from adaptive_mbrl.control import AdaptiveController
    from adaptive_mbrl.presets import load_preset
    from adaptive_mbrl.training.train_model import RunSettings, train_model

    out = Path(args.out)
    print(f"training the quickstart model on cartpole (nominal) in {out} ...")
    start = time.perf_counter()
    checkpoint = train_model(load_preset("quickstart"), RunSettings("cartpole", "nominal", seed=args.seed), out,
                             resume=(out / "progress.json").exists())
    print(f"trained in {time.perf_counter() - start:.0f} s")
    print("scenario motor_fault_midepisode: the cart motor drops to 50% force at step 100")
    for adapter in ("none", "finetune"):
        preset = load_preset("quickstart")
        preset.adapter.kind = adapter
        preset.name = {"none": "MB", "finetune": "MB+DE"}[adapter]
        controller = AdaptiveController.from_checkpoint(checkpoint, preset=preset, seed=args.seed)
        totals = [run_episode(controller, "cartpole", "motor_fault_midepisode", args.seed + i)[0]
                  for i in range(args.episodes)]
        print(f"{preset.name:6s} return {np.mean(totals):8.2f} +- {np.std(totals):.2f} over {len(totals)} episodes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptive-mbrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="robots, scenarios and controller presets")
    p.add_argument("what", nargs="?", default="all", choices=["all", "robots", "scenarios", "controllers"])
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("train", help="train a dynamics model (MB / MB+DE) or meta-train one (GrBAL / ReBAL)")
    p.add_argument("--controller", required=True, help="preset name (adaptive-mbrl list controllers) or .yaml path")
    p.add_argument("--robot", required=True, help="robot name (adaptive-mbrl list robots)")
    p.add_argument("--scenario", default="nominal", help="training scenario, e.g. crippled_joint_train")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--out", help="run folder (default runs/<preset>_<robot>_<scenario>_s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished round")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    for key in ("iterations", "random_steps", "steps_per_iteration", "parallel_envs"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"override the preset's training.{key}")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("run", help="run a trained controller on a scenario, with per-step output")
    p.add_argument("--checkpoint", required=True, help="model.pt written by adaptive-mbrl train")
    p.add_argument("--controller", help="preset whose adapter/planner to use (default: the trained one)")
    p.add_argument("--scenario", default="nominal")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "pybullet"])
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--print-every", type=int, default=50, help="print a progress line every N steps (0 = off)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="the quick start: train on the cart-pole, compare MB and MB+DE under a fault")
    p.add_argument("--out", default="runs/quickstart_cartpole")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"adaptive-mbrl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
