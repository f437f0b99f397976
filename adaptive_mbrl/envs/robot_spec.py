"""Robot descriptions: ``robots/<name>/robot.yaml`` loaded into a typed :class:`RobotSpec`.

A robot YAML names the model file per backend, the actuated joints in action order, the legs (for damage),
the torso and payload bodies, the ground-contact geoms (for friction), the initial-state noise and the
objective (observation, reward, termination). See ``robots/half_cheetah/robot.yaml`` for a commented one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adaptive_mbrl.config import ConfigError, bounded, load_yaml
from adaptive_mbrl.envs.actuation import ActuationSpec
from adaptive_mbrl.paths import robots_dir

BACKENDS = ("mujoco", "pybullet")


@dataclass(frozen=True)
class BackendModel:
    """The robot's model file for one backend.

    Attributes:
        file: path relative to the robot's folder, or to ``pybullet_data`` when ``source`` says so.
        format: ``mjcf`` (MuJoCo XML) or ``urdf``.
        source: ``robot`` (our ``robots/<name>/`` folder) or ``pybullet_data`` (shipped with pybullet).
        base_height: initial height of the base in m (URDF robots; MJCF carries it in the file).
    """

    file: str
    format: Literal["mjcf", "urdf"] = "mjcf"
    source: Literal["robot", "pybullet_data"] = "robot"
    base_height: float = bounded(0.0, lo=0.0)


@dataclass(frozen=True)
class InitNoise:
    """Initial-state noise: qpos += U(-qpos_uniform, qpos_uniform), qvel += qvel_normal * N(0, 1)."""

    qpos_uniform: float = bounded(0.1, lo=0.0)
    qvel_normal: float = bounded(0.1, lo=0.0)


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the robot is asked to do; see :mod:`adaptive_mbrl.envs.objectives`.

    Attributes:
        type: ``locomotion`` (run forward along +x) or ``cartpole_swingup``.
        qpos_skip: leading generalized coordinates left out of the observation (the root's x, and y for
            free-floating robots), so that the observation does not leak absolute position.
        forward_weight: reward per m/s of forward velocity of the root.
        ctrl_cost: weight of the squared-action cost.
        healthy_reward: reward per step while healthy (survive bonus).
        healthy_z: allowed root height range in m; leaving it terminates the episode. ``None``: never.
    """

    type: Literal["locomotion", "cartpole_swingup"] = "locomotion"
    qpos_skip: int = bounded(0, lo=0)
    forward_weight: float = 1.0
    ctrl_cost: float = bounded(0.1, lo=0.0)
    healthy_reward: float = 0.0
    healthy_z: tuple[float, float] | None = None


@dataclass(frozen=True)
class RobotSpec:
    """One robot, backend-independent. Loaded with :func:`load_robot`.

    ``init_joint_pos`` (optional, rad or m, action order): the actuated joints' angles in the reference
    pose, for robots whose model file has no standing pose (URDF quadrupeds); used by the PyBullet backend's
    ``reference_qpos()``. Empty: the pose written in the model file.

    ``joint_damping`` (optional, N*m*s/rad or N*s/m, action order): viscous damping added to the actuated
    joints on every backend, on top of any in the model file. URDFs carry no motor model; an electric
    motor's torque falls roughly linearly with speed, which this term stands for (stall torque / no-load
    speed). Without it a torque-driven URDF leg spins its light links at hundreds of rad/s.

    ``actuation`` (optional): ``torque`` (default) or ``pd_target`` joint-position targets held by a PD loop
    at the engine rate; see :mod:`adaptive_mbrl.envs.actuation`.
    """

    name: str
    description: str
    models: dict[str, BackendModel]
    actuated_joints: list[str]
    frame_skip: int = bounded(5, lo=1)
    timestep: float = bounded(0.01, lo=1e-4, hi=0.1)
    episode_steps: int = bounded(1000, lo=1)
    legs: dict[str, list[str]] = field(default_factory=dict)
    torso: str = "torso"
    payload_body: str = "payload"
    contact_geoms: list[str] = field(default_factory=list)
    ground_geom: str = "floor"
    actuator_gears: list[float] = field(default_factory=list)
    init_noise: InitNoise = field(default_factory=InitNoise)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    init_joint_pos: list[float] = field(default_factory=list)
    joint_damping: list[float] = field(default_factory=list)
    actuation: ActuationSpec = field(default_factory=ActuationSpec)
    folder: str = ""

    def __post_init__(self) -> None:
        bad = sorted(set(self.models) - set(BACKENDS))
        if bad:
            raise ValueError(f"models: unknown backend {bad[0]!r}; allowed: {', '.join(BACKENDS)}")
        for leg, joints in self.legs.items():
            missing = [j for j in joints if j not in self.actuated_joints]
            if missing:
                raise ValueError(f"legs.{leg}: joint {missing[0]!r} is not an actuated joint; "
                                 f"allowed: {', '.join(self.actuated_joints)}")
        if self.init_joint_pos and len(self.init_joint_pos) != len(self.actuated_joints):
            raise ValueError("init_joint_pos: needs one angle per actuated joint "
                             f"({len(self.actuated_joints)}), got {len(self.init_joint_pos)}")
        if self.joint_damping and len(self.joint_damping) != len(self.actuated_joints):
            raise ValueError("joint_damping: needs one value per actuated joint "
                             f"({len(self.actuated_joints)}), got {len(self.joint_damping)}")
        if any(d < 0 for d in self.joint_damping):
            raise ValueError(f"joint_damping: values must be >= 0 (N*m*s/rad), got {self.joint_damping}")
        if self.actuator_gears and len(self.actuator_gears) != len(self.actuated_joints):
            raise ValueError("actuator_gears: needs one gear per actuated joint "
                             f"({len(self.actuated_joints)}), got {len(self.actuator_gears)}")
        self.actuation.validate(len(self.actuated_joints))

    @property
    def dt(self) -> float:
        """Control step in seconds (timestep x frame_skip)."""
        return self.timestep * self.frame_skip

    @property
    def action_dim(self) -> int:
        return len(self.actuated_joints)

    def model_path(self, backend: str) -> Path:
        """Absolute path of the model file for ``backend``; raises ValueError if the robot lacks one."""
        if backend not in self.models:
            raise ValueError(f"robot {self.name!r} has no {backend!r} model; "
                             f"available backends: {', '.join(self.models)}")
        model = self.models[backend]
        if model.source == "pybullet_data":
            import pybullet_data
            return Path(pybullet_data.getDataPath()) / model.file
        return Path(self.folder) / model.file

    def joint_index(self, joint: int | str) -> int:
        """Action index of an actuated joint given by index or name."""
        return _resolve(joint, self.actuated_joints, "joint", self.name)

    def leg_joint_indices(self, leg: int | str) -> list[int]:
        """Action indices of the joints of one leg, given by index (YAML order) or name."""
        names = list(self.legs)
        return [self.joint_index(j) for j in self.legs[names[_resolve(leg, names, "leg", self.name)]]]


def _resolve(key: int | str, names: list[str], what: str, robot: str) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < len(names):
            return key
    elif key in names:
        return names.index(key)
    raise ValueError(f"robot {robot!r} has no {what} {key!r}; allowed: indices 0..{len(names) - 1} "
                     f"or names {', '.join(names)}")


def list_robots() -> list[str]:
    """Names of the shipped robots (folders of ``robots/`` that hold a ``robot.yaml``)."""
    return sorted(p.parent.name for p in robots_dir().glob("*/robot.yaml"))


@functools.lru_cache(maxsize=None)
def load_robot(name: str) -> RobotSpec:
    """Load ``robots/<name>/robot.yaml``. Raises ValueError naming the allowed robots if unknown."""
    robots = list_robots()
    if name not in robots:
        raise ValueError(f"unknown robot {name!r}; allowed: {', '.join(robots)}")
    file = robots_dir() / name / "robot.yaml"
    spec = load_yaml(RobotSpec, file)
    if spec.name != name:
        raise ConfigError(str(file), "name", f"{spec.name!r} does not match the folder name {name!r}")
    object.__setattr__(spec, "folder", str(file.parent))
    return spec
