"""The adaptive controller inside your own PyBullet loop (the same controller as on MuJoCo).

What is yours here: the loop, the timing, the observation, the damage. What comes from the library: the
robot loaded into PyBullet (:class:`~adaptive_mbrl.envs.pybullet_sim.PybulletSimulator`, one ``p.DIRECT``
client per robot). That is the honest level for a PyBullet loop: a bare ``p.loadMJCF`` of the robot is
*not* the robot the model was trained on. PyBullet ignores MJCF joint stiffness, damping and armature and
reports the floating base at its centre of mass with quaternions in x y z w order; the simulator adds the
passive joint torques and armature flywheels and reports ``(qpos, qvel)`` in MuJoCo conventions, so the
observation ``qpos[qpos_skip:] + qvel`` means what it meant in training. Your loop only calls
``sim.state()``, ``sim.step(action)`` (action in [-1, 1], held for ``frame_skip`` PyBullet steps of
``timestep`` s) and the physics edits of the :class:`~adaptive_mbrl.envs.simulator.Simulator` interface
(here ``scale_actuators([joint], 0.0)`` breaks a joint mid-run).

If you would rather have the gymnasium API on PyBullet, ``adaptive_mbrl.make(robot, scenario,
backend="pybullet")`` wraps the same simulator (see ``examples/gymnasium_loop.py``)::

    python examples/pybullet_loop.py --checkpoint runs/mb_hc/model.pt --preset mb_de --break-at 200

Without ``--checkpoint`` it uses ``controllers/checkpoints/<robot>/mb.pt`` when that exists, and otherwise
an untrained model (it runs, but the robot will not run forward).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import adaptive_mbrl as am
from adaptive_mbrl.control import AdaptiveController, Controller
from adaptive_mbrl.envs.factory import make_simulator
from adaptive_mbrl.envs.objectives import Objective, make_objective
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.simulator import Simulator
from adaptive_mbrl.paths import controllers_dir

UNTRAINED_PRESET = "mb_de"  # preset of the untrained fallback controller
BACKEND = "pybullet"


def load_controller(checkpoint: str | None, robot: str, preset: str | None, seed: int, obs_dim: int,
                    backend: str = BACKEND) -> AdaptiveController:
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


def reset_state(spec: RobotSpec, sim: Simulator, objective: Objective, rng: np.random.Generator) -> np.ndarray:
    """Start from the robot's reference pose plus the env's initial noise; returns the observation [o]."""
    noise = spec.init_noise
    qpos = objective.initial_qpos(sim.reference_qpos())
    sim.set_state(qpos + rng.uniform(-noise.qpos_uniform, noise.qpos_uniform, sim.nq),
                  noise.qvel_normal * rng.standard_normal(sim.nv))
    return objective.observe(*sim.state())


def run(spec: RobotSpec, sim: Simulator, ctrl: Controller, steps: int, break_at: int, joint: int | str,
        seed: int, print_every: int) -> list[float]:
    """``steps`` control steps; the joint breaks before the action of step ``break_at``. Returns rewards."""
    objective = make_objective(spec.objective, sim.nq, sim.nv)  # observation layout and reward
    obs = reset_state(spec, sim, objective, np.random.default_rng(seed))
    ctrl.reset()
    rewards: list[float] = []
    for t in range(steps):
        if t == break_at:
            index = spec.joint_index(joint)
            sim.scale_actuators([index], 0.0)   # this joint's torque is now 0
            sim.commit_edits()
            print(f"step {t:4d}: joint {spec.actuated_joints[index]!r} (action {index}) breaks: torque 0")
        action = ctrl.act(obs)
        sim.step(np.clip(action, -1.0, 1.0))
        next_obs = objective.observe(*sim.state())
        ctrl.observe(obs, action, next_obs)
        rewards.append(float(objective.reward(obs, action, next_obs)))
        obs = next_obs
        if t == break_at or (print_every and (t + 1) % print_every == 0):
            print(f"step {t:4d}: reward {rewards[-1]:7.3f}  x {sim.state()[0][0]:7.2f} m")
        if bool(objective.terminated(obs)):
            break
    return rewards


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained model.pt or shipped:<robot>/<name> (default: the shipped "
                        "<robot>/mb, else untrained)")
    parser.add_argument("--preset", help="run the checkpoint's model with this preset, e.g. mb_de")
    parser.add_argument("--robot", default="half_cheetah", choices=["half_cheetah", "ant", "a1"])
    parser.add_argument("--break-at", type=int, default=300, help="step at which the joint breaks")
    parser.add_argument("--joint", help="joint to break: action index or name (default: joint 4, the "
                        "half_cheetah's front shin)")
    parser.add_argument("--steps", type=int, default=400, help="control steps (0.05 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[float]:
    """Run the example; returns the reward of each step."""
    args = parse_args(argv)
    spec = am.load_robot(args.robot)
    sim = make_simulator(spec, BACKEND)
    try:
        obs_dim = make_objective(spec.objective, sim.nq, sim.nv).obs_dim(sim.nq, sim.nv)
        ctrl = load_controller(args.checkpoint, args.robot, args.preset, args.seed, obs_dim)
        joint = 4 if args.joint is None else int(args.joint) if args.joint.isdigit() else args.joint
        rewards = run(spec, sim, ctrl, args.steps, args.break_at, joint, args.seed, args.print_every)
    finally:
        sim.close()
    print(f"return over {len(rewards)} steps: {sum(rewards):.2f}")
    return rewards


if __name__ == "__main__":
    main()
