"""Observation, reward and termination of each robot, written once for numpy and torch.

The environment and the MPC planner must score transitions with exactly the same function. The reward
and termination functions below use only operations that numpy arrays and torch tensors share
(slicing, arithmetic, comparisons, ``.sum(-1)``), so the same code runs on a single numpy transition in
``env.step`` and on a batch of torch tensors ``[..., obs_dim]`` inside the planner. Everything they need is
in the observation (e.g. the root's forward velocity after the step), never in hidden simulator state.
"""
from __future__ import annotations

from typing import Any, Protocol

from xml.etree import ElementTree

import numpy as np

from adaptive_mbrl.envs.robot_spec import ObjectiveSpec, RobotSpec, load_robot

Array = Any  # numpy.ndarray or torch.Tensor with the same trailing layout


class Objective(Protocol):
    """What a robot is asked to do. Arrays are ``[..., dim]``; numpy or torch."""

    def obs_dim(self, nq: int, nv: int) -> int:
        """Length of the observation for a robot with ``nq`` positions and ``nv`` velocities."""

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Observation from generalized positions [nq] and velocities [nv] (MuJoCo conventions)."""

    def initial_qpos(self, qpos0: np.ndarray) -> np.ndarray:
        """Nominal initial positions (before noise) given the model's reference pose."""

    def reward(self, obs: Array, action: Array, next_obs: Array) -> Array:
        """Reward of transitions: obs [..., o], action [..., a], next_obs [..., o] -> [...]."""

    def terminated(self, next_obs: Array) -> Array:
        """Whether each next state ends the episode: [..., o] -> bool [...]."""


class LocomotionObjective:
    """Run forward along +x: ``forward_weight * v_x - ctrl_cost * |a|^2 + healthy_reward * healthy``.

    Observation: ``qpos[qpos_skip:]`` then ``qvel``; ``v_x = qvel[0]`` (m/s, the root's forward velocity,
    measured after the step) sits at index ``nq - qpos_skip``; the root height ``qpos[2]`` (free base) or
    ``qpos[1]`` (planar base) is in the observation too.
    """

    def __init__(self, spec: ObjectiveSpec, nq: int, nv: int) -> None:
        self.spec = spec
        self.skip = spec.qpos_skip
        # Plain floats: the reward runs on every env step, attribute chains cost there.
        self._forward_weight, self._ctrl_cost = float(spec.forward_weight), float(spec.ctrl_cost)
        self._healthy_reward = float(spec.healthy_reward)
        self.vx_index = nq - self.skip
        # Height of the root: qpos[2] for a free joint (x y z quat), qpos[1] for a planar x-z-pitch root.
        self.free_base = nq - nv == 1
        z_qpos_index = 2 if self.free_base else 1
        self.z_index = z_qpos_index - self.skip
        # Base orientation: the quaternion w x y z at qpos[3:7] (free base) or the pitch hinge qpos[2] (planar).
        self.tilt_index = (3 if self.free_base else 2) - self.skip
        if spec.healthy_z is not None and self.z_index < 0:
            raise ValueError("objective.healthy_z needs the root height in the observation; lower qpos_skip")

    def obs_dim(self, nq: int, nv: int) -> int:
        return nq - self.skip + nv

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        return np.concatenate((qpos[self.skip:], qvel))

    def initial_qpos(self, qpos0: np.ndarray) -> np.ndarray:
        return qpos0.copy()

    def healthy(self, obs: Array) -> Array:
        """Boolean [...]: root height inside ``healthy_z`` (all True when no range is set)."""
        z = obs[..., self.z_index]
        if self.spec.healthy_z is None:
            return z == z  # all True, same type as z (NaN heights count as unhealthy)
        lo, hi = self.spec.healthy_z
        return (z >= lo) & (z <= hi)

    def uprightness(self, obs: Array) -> Array:
        """Cosine of the base's tilt from upright, [..., o] -> [...] in [-1, 1] (1 upright, -1 upside down).

        Free base: the z component of the body's up axis, ``1 - 2 (q_x^2 + q_y^2)`` from the quaternion.
        Planar base (root slide x, slide z, hinge pitch): ``cos(pitch)``.

        Raises:
            ValueError: the orientation is not in the observation (``qpos_skip`` drops it).
        """
        if self.tilt_index < 0:
            raise ValueError("uprightness needs the base orientation in the observation; lower objective.qpos_skip")
        if self.free_base:
            qx, qy = obs[..., self.tilt_index + 1], obs[..., self.tilt_index + 2]
            return 1.0 - 2.0 * (qx * qx + qy * qy)
        pitch = obs[..., self.tilt_index]
        return pitch.cos() if hasattr(pitch, "cos") else np.cos(pitch)

    def reward(self, obs: Array, action: Array, next_obs: Array) -> Array:
        value = self._forward_weight * next_obs[..., self.vx_index] - self._ctrl_cost * (action * action).sum(-1)
        if self._healthy_reward:
            value = value + self._healthy_reward * self.healthy(next_obs)
        return value

    def terminated(self, next_obs: Array) -> Array:
        if self.spec.healthy_z is None:
            return next_obs[..., 0] != next_obs[..., 0]  # all False (True only for NaN)
        return ~self.healthy(next_obs)


class CartPoleSwingUpObjective:
    """Swing the pole up and keep the cart near the centre.

    Observation ``[x (m), cos(theta), sin(theta), x_dot (m/s), theta_dot (rad/s)]``, theta = 0 upright.
    Reward ``cos(theta) - 0.01 x^2 - ctrl_cost |a|^2`` (cos from the next observation). No termination.
    """

    def __init__(self, spec: ObjectiveSpec, nq: int, nv: int) -> None:
        if (nq, nv) != (2, 2):
            raise ValueError(f"cartpole_swingup needs a slider and a hinge (nq = nv = 2), got nq={nq}, nv={nv}")
        self.spec = spec

    def obs_dim(self, nq: int, nv: int) -> int:
        return 5

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        return np.array((qpos[0], np.cos(qpos[1]), np.sin(qpos[1]), qvel[0], qvel[1]))

    def initial_qpos(self, qpos0: np.ndarray) -> np.ndarray:
        qpos = qpos0.copy()
        qpos[1] = np.pi  # hanging down
        return qpos

    def reward(self, obs: Array, action: Array, next_obs: Array) -> Array:
        x = next_obs[..., 0]
        return next_obs[..., 1] - 0.01 * x * x - self.spec.ctrl_cost * (action * action).sum(-1)

    def terminated(self, next_obs: Array) -> Array:
        return next_obs[..., 0] != next_obs[..., 0]  # all False (True only for NaN)


def make_objective(spec: ObjectiveSpec, nq: int, nv: int) -> Objective:
    """Build the objective named by ``spec.type`` for a robot with ``nq`` positions, ``nv`` velocities."""
    kinds = {"locomotion": LocomotionObjective, "cartpole_swingup": CartPoleSwingUpObjective}
    return kinds[spec.type](spec, nq, nv)


def robot_objective(robot: str, backend: str | None = None) -> Objective:
    """The objective of a shipped robot, built from its files alone (no simulator is created).

    ``backend`` picks the model file whose sizes (nq, nv) define the observation layout; default: the
    robot's first listed backend.
    """
    spec = load_robot(robot)
    nq, nv = model_sizes(spec, backend or next(iter(spec.models)))
    return make_objective(spec.objective, nq, nv)


# generalized position / velocity sizes of one joint, by MJCF joint type
_MJCF_JOINT_SIZES = {"free": (7, 6), "ball": (4, 3), "slide": (1, 1), "hinge": (1, 1)}
_FREE_BASE = (7, 6)  # x y z + quaternion w x y z; linear + angular velocity


def model_sizes(spec: RobotSpec, backend: str) -> tuple[int, int]:
    """``(nq, nv)`` of the robot on ``backend`` (MuJoCo conventions, as the simulators report them), read from
    the model file's joints without loading it into a physics engine.

    MuJoCo: every joint of the MJCF (free 7/6, ball 4/3, hinge and slide 1/1). PyBullet (how its importers
    build the robot, see :mod:`adaptive_mbrl.envs.pybullet_sim`): its hinge / slide (URDF: revolute,
    continuous, prismatic) joints, without the ``rotor_*`` armature flywheels, plus a free base (7/6)
    when the root body has no joint of its own (MJCF) or mass (URDF).
    """
    root = ElementTree.parse(spec.model_path(backend)).getroot()
    if spec.models[backend].format == "urdf":
        return _urdf_sizes(root)
    if backend == "mujoco":
        default_type = next((j.get("type") for j in root.iterfind("default/joint") if j.get("type")), "hinge")
        sizes = [_MJCF_JOINT_SIZES["free" if j.tag == "freejoint" else j.get("type", default_type)]
                 for j in root.iterfind("worldbody//*") if j.tag in ("joint", "freejoint")]
        return sum(q for q, _ in sizes), sum(v for _, v in sizes)
    joints = [j for j in root.iterfind("worldbody//joint") if j.get("type", "hinge") in ("hinge", "slide")
              and not j.get("name", "").startswith("rotor_")]
    robot = next(b for b in root.iterfind("worldbody/body") if b.find(".//joint") is not None)
    base = _FREE_BASE if robot.find("joint") is None else (0, 0)
    return base[0] + len(joints), base[1] + len(joints)


def _urdf_sizes(root: ElementTree.Element) -> tuple[int, int]:
    joints = [j for j in root.iterfind("joint") if j.get("type") in ("revolute", "continuous", "prismatic")
              and not j.get("name", "").startswith("rotor_")]
    children = {c.get("link") for c in root.iterfind("joint/child")}
    base = next(link for link in root.iterfind("link") if link.get("name") not in children)
    mass = base.find("inertial/mass")
    free = mass is not None and float(mass.get("value", 0.0)) > 0.0
    nq = (_FREE_BASE[0] if free else 0) + len(joints)
    return nq, nq - 1 if free else nq
