"""The adaptive controller inside a raw MuJoCo loop that you own: your MjModel, your MjData, your damage.

No gymnasium environment: the script loads the robot's MJCF with ``mujoco.MjModel.from_xml_path``, steps
it with ``mujoco.mj_step`` and breaks a joint mid-run by zeroing its actuator gear in the ``MjModel``.
The controller only needs three things to match what it was trained on (``adaptive_mbrl.make``'s env):

* the observation layout: for running robots ``qpos[qpos_skip:]`` then ``qvel`` (``qpos_skip`` from
  ``robots/<robot>/robot.yaml``, 1 for half_cheetah: the root's x is left out), for the cart-pole
  ``[x, cos(theta), sin(theta), x_dot, theta_dot]``; see :func:`build_observation`;
* the action: one value in [-1, 1] per joint of ``actuated_joints`` (action order, which need not be the
  MJCF's actuator order), written to ``data.ctrl`` (the MJCF's motors multiply it by their gear);
* the control step: each action is held for ``frame_skip`` physics steps (5 x 0.01 s = 0.05 s).

``tests/test_examples.py`` checks that this loop reproduces the env's observations exactly.
(``adaptive_mbrl.envs.objectives.robot_objective(robot).observe(qpos, qvel)`` builds the same observation
if you would rather not write it yourself.)

    python examples/mujoco_loop.py --checkpoint runs/mb_hc/model.pt --preset mb_de --break-at 200

Without ``--checkpoint`` it uses ``controllers/checkpoints/<robot>/mb.pt`` when that exists, and otherwise
an untrained model (it runs, but the robot will not run forward).
"""
from __future__ import annotations

import argparse
import sys

import mujoco
import numpy as np

import adaptive_mbrl as am
from adaptive_mbrl.control import AdaptiveController, Controller
from adaptive_mbrl.envs.objectives import make_objective
from adaptive_mbrl.envs.robot_spec import InitNoise, ObjectiveSpec, RobotSpec
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


# --- the user's MuJoCo side --------------------------------------------------------------------------
def load_model(robot: str) -> tuple[RobotSpec, mujoco.MjModel, mujoco.MjData]:
    """The robot's description (``robots/<robot>/robot.yaml``) and its MJCF compiled by MuJoCo."""
    spec = am.load_robot(robot)
    model = mujoco.MjModel.from_xml_path(str(spec.model_path("mujoco")))
    return spec, model, mujoco.MjData(model)


def actuator_indices(model: mujoco.MjModel, joints: list[str]) -> np.ndarray:
    """For each joint of ``joints`` (action order): the index of the MJCF actuator driving it [len(joints)]."""
    driven = {int(joint): a for a, joint in enumerate(model.actuator_trnid[:, 0])}
    indices = []
    for name in joints:
        joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint not in driven:
            raise ValueError(f"the MJCF has no actuator on joint {name!r}")
        indices.append(driven[joint])
    return np.array(indices)


def build_observation(objective: ObjectiveSpec, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """The observation the controller expects [obs_dim] from ``data.qpos`` [nq] and ``data.qvel`` [nv]."""
    if objective.type == "cartpole_swingup":  # slider x (m), hinge theta (rad, 0 = upright)
        return np.array([qpos[0], np.cos(qpos[1]), np.sin(qpos[1]), qvel[0], qvel[1]])
    return np.concatenate([qpos[objective.qpos_skip:], qvel])  # locomotion: no absolute x (and y)


def reset_state(spec: RobotSpec, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
    """The env's initial-state distribution: the MJCF's pose (cart-pole: pole hanging down) plus
    ``qpos += U(-a, a)``, ``qvel = b * N(0, 1)`` with ``a, b`` from the robot's ``init_noise``."""
    noise: InitNoise = spec.init_noise
    mujoco.mj_resetData(model, data)
    qpos = model.qpos0.copy()
    if spec.objective.type == "cartpole_swingup":
        qpos[1] = np.pi
    data.qpos[:] = qpos + rng.uniform(-noise.qpos_uniform, noise.qpos_uniform, model.nq)
    data.qvel[:] = noise.qvel_normal * rng.standard_normal(model.nv)
    mujoco.mj_forward(model, data)


def step(model: mujoco.MjModel, data: mujoco.MjData, actuators: np.ndarray, action: np.ndarray,
         frame_skip: int) -> None:
    """Hold ``action`` [nu] (clipped to [-1, 1], action order) for one control step of ``frame_skip`` steps."""
    data.ctrl[actuators] = np.clip(action, -1.0, 1.0)
    mujoco.mj_step(model, data, nstep=frame_skip)


def break_joint(model: mujoco.MjModel, actuators: np.ndarray, spec: RobotSpec, joint: int | str) -> int:
    """Disable a joint's motor by zeroing its gear in the MjModel (takes effect at the next mj_step);
    returns the joint's action index."""
    index = spec.joint_index(joint)
    model.actuator_gear[actuators[index], 0] = 0.0
    return index


# --- the loop ----------------------------------------------------------------------------------------
def run(spec: RobotSpec, model: mujoco.MjModel, data: mujoco.MjData, ctrl: Controller, steps: int,
        break_at: int, joint: int | str, seed: int, print_every: int) -> list[float]:
    """``steps`` control steps; the joint breaks before the action of step ``break_at``. Returns rewards."""
    actuators = actuator_indices(model, spec.actuated_joints)
    objective = make_objective(spec.objective, model.nq, model.nv)  # the reward the planner maximises
    reset_state(spec, model, data, np.random.default_rng(seed))
    obs = build_observation(spec.objective, data.qpos, data.qvel)
    ctrl.reset()
    rewards: list[float] = []
    for t in range(steps):
        if t == break_at:
            index = break_joint(model, actuators, spec, joint)
            print(f"step {t:4d}: joint {spec.actuated_joints[index]!r} (action {index}) breaks: gear set to 0")
        action = ctrl.act(obs)
        step(model, data, actuators, action, spec.frame_skip)
        next_obs = build_observation(spec.objective, data.qpos, data.qvel)
        ctrl.observe(obs, action, next_obs)
        rewards.append(float(objective.reward(obs, action, next_obs)))
        obs = next_obs
        if t == break_at or (print_every and (t + 1) % print_every == 0):
            print(f"step {t:4d}: reward {rewards[-1]:7.3f}  x {data.qpos[0]:7.2f} m")
        if bool(objective.terminated(obs)):
            break
    return rewards


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained model.pt or shipped:<robot>/<name> (default: the shipped "
                        "<robot>/mb, else untrained)")
    parser.add_argument("--preset", help="run the checkpoint's model with this preset, e.g. mb_de")
    parser.add_argument("--robot", default="half_cheetah", choices=["half_cheetah", "ant", "cartpole"])
    parser.add_argument("--break-at", type=int, default=300, help="step at which the joint breaks")
    parser.add_argument("--joint", help="joint to break: action index or name (default: joint 4, the "
                        "half_cheetah's front shin; the last joint of robots with fewer)")
    parser.add_argument("--steps", type=int, default=400, help="control steps (0.05 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[float]:
    """Run the example; returns the reward of each step."""
    args = parse_args(argv)
    spec, model, data = load_model(args.robot)
    obs_dim = build_observation(spec.objective, data.qpos, data.qvel).size
    ctrl = load_controller(args.checkpoint, args.robot, args.preset, args.seed, obs_dim)
    joint = min(4, spec.action_dim - 1) if args.joint is None else \
        int(args.joint) if args.joint.isdigit() else args.joint
    rewards = run(spec, model, data, ctrl, args.steps, args.break_at, joint, args.seed, args.print_every)
    print(f"return over {len(rewards)} steps: {sum(rewards):.2f}")
    return rewards


if __name__ == "__main__":
    main()
