"""The adaptive controller inside your own gymnasium loop, while a joint breaks mid-episode.

``adaptive_mbrl.make`` returns a plain ``gymnasium.Env``; the controller needs nothing from it but the
observations. The loop is yours::

    ctrl.reset()                             # start of an episode
    action = ctrl.act(obs)                   # plan through the current (adapted) model
    next_obs, reward, terminated, truncated, info = env.step(action)
    ctrl.observe(obs, action, next_obs)      # adapt from the last M transitions

The scenario ``joint_break_midepisode`` disables the half_cheetah's front shin (joint 4) at step 300
(``--break-at`` moves the break); the loop prints the reward per step around it, so you can watch it drop
and, with a trained adaptive controller (e.g. ``--preset mb_de``), recover::

    python examples/gymnasium_loop.py --checkpoint runs/mb_hc/model.pt --preset mb_de --steps 600
    python examples/gymnasium_loop.py --checkpoint shipped:half_cheetah/mb --preset mb_de --steps 600

Without ``--checkpoint`` it uses ``controllers/checkpoints/<robot>/mb.pt`` when that exists, and otherwise
an untrained model (it runs, but the robot will not run forward).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

import adaptive_mbrl as am
from adaptive_mbrl.control import AdaptiveController, Controller
from adaptive_mbrl.envs import ScenarioSpec, get_scenario
from adaptive_mbrl.paths import controllers_dir

UNTRAINED_PRESET = "mb_de"  # preset of the untrained fallback controller


def load_controller(checkpoint: str | None, robot: str, preset: str | None, seed: int, obs_dim: int,
                    backend: str = "mujoco") -> AdaptiveController:
    """The controller in ``checkpoint``, else the shipped ``controllers/checkpoints/<robot>/mb.pt``, else an
    untrained model (with a warning). ``preset`` overrides the adapter and planner (default: the
    checkpoint's own); ``obs_dim`` is only needed to build the untrained model."""
    shipped = controllers_dir() / "checkpoints" / robot / "mb.pt"
    path = checkpoint or (str(shipped) if shipped.is_file() else None)
    if path is not None:
        print(f"controller: {path}" + (f" run as {preset}" if preset else ""))
        return AdaptiveController.from_checkpoint(path, preset=preset, robot=robot, seed=seed, backend=backend)
    from adaptive_mbrl.envs.objectives import robot_objective
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import load_preset

    print(f"WARNING: no --checkpoint and no {shipped}: using an UNTRAINED {preset or UNTRAINED_PRESET} "
          "controller (it runs, but does not control well; train one with `adaptive-mbrl train`)",
          file=sys.stderr)
    config = load_preset(preset or UNTRAINED_PRESET)
    objective = robot_objective(robot, backend)
    model = DynamicsModel(obs_dim, am.load_robot(robot).action_dim, config.model, seed=seed)
    return AdaptiveController(model, config, objective.reward, objective.terminated, seed=seed)


def scenario_breaking_at(robot: str, scenario: str, break_at: int | None) -> ScenarioSpec:
    """The named scenario, with its mid-episode events shifted so that the first one is at ``break_at``."""
    spec = get_scenario(robot, scenario)
    if break_at is None:
        return spec
    if not spec.events:
        raise ValueError(f"scenario {scenario!r} has no mid-episode event to move; pick a *_midepisode one")
    shift = break_at - spec.events[0].at_step
    return dataclasses.replace(spec, events=[dataclasses.replace(e, at_step=e.at_step + shift)
                                             for e in spec.events])


def run(env: am.RobotEnv, ctrl: Controller, steps: int, print_every: int) -> list[float]:
    """Up to ``steps`` control steps of the user's loop; returns the reward of each step."""
    obs, info = env.reset()
    ctrl.reset()
    rewards: list[float] = []
    changes: list[int] = []
    for t in range(steps):
        action = ctrl.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        ctrl.observe(obs, action, next_obs)
        obs = next_obs
        rewards.append(reward)
        if info["perturbation_changed"]:
            changes.append(t)
            print(f"step {t:4d}: the dynamics change -> {info['active_perturbations']}")
        if info["perturbation_changed"] or (print_every and (t + 1) % print_every == 0):
            print(f"step {t:4d}: reward {reward:7.3f}  mean of the last {min(len(rewards), 20)} "
                  f"{np.mean(rewards[-20:]):7.3f}")
        if terminated or truncated:
            break
    if changes:
        before, after = rewards[:changes[0]], rewards[changes[0]:]
        print(f"mean reward per step before the change {np.mean(before) if before else float('nan'):.3f}, "
              f"after {np.mean(after):.3f}")
    return rewards


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained model.pt or shipped:<robot>/<name> (default: the shipped "
                        "<robot>/mb, else untrained)")
    parser.add_argument("--preset", help="run the checkpoint's model with this preset, e.g. mb_de")
    parser.add_argument("--robot", default="half_cheetah")
    parser.add_argument("--scenario", default="joint_break_midepisode")
    parser.add_argument("--break-at", type=int, help="move the scenario's break to this step")
    parser.add_argument("--steps", type=int, default=400, help="control steps (0.05 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[float]:
    """Run the example; returns the reward of each step."""
    args = parse_args(argv)
    env = am.make(args.robot, scenario_breaking_at(args.robot, args.scenario, args.break_at), seed=args.seed)
    ctrl = load_controller(args.checkpoint, args.robot, args.preset, args.seed, env.observation_space.shape[0])
    rewards = run(env, ctrl, args.steps, args.print_every)
    env.close()
    print(f"return over {len(rewards)} steps: {sum(rewards):.2f}")
    return rewards


if __name__ == "__main__":
    main()
