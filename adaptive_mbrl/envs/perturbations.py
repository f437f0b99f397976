"""Dynamics perturbations: damaged joints and legs, payloads, friction, mass, damping, slope.

Each perturbation is a small frozen dataclass with an ``apply(sim, robot)`` that edits the physics
through the backend-neutral :class:`~adaptive_mbrl.envs.simulator.Simulator` interface, so the same
perturbation works on MuJoCo and PyBullet. In YAML a perturbation is a mapping with a ``type`` key::

    - {type: joint_damage, joints: [4], scale: 0.0}       # joint 4 disabled
    - {type: joint_damage, legs: [front], scale: 0.5}     # front leg at half torque
    - {type: payload, mass_kg: 3.0, offset_m: [0.2, 0, 0]}
    - {type: friction, scale: 0.3}
    - {type: mass, scale: 1.5}
    - {type: damping, scale: 0.5}
    - {type: slope, degrees: 5}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from adaptive_mbrl.config import ConfigError, bounded, from_dict, to_dict
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.simulator import Simulator


@dataclass(frozen=True)
class JointDamage:
    """Scale the torque of some joints, or of every joint of some legs (``scale`` 0 disables them).

    Joints and legs are given by index (action order / leg order in the robot YAML) or by name.
    """

    type: ClassVar[str] = "joint_damage"
    joints: tuple[int | str, ...] = ()
    legs: tuple[int | str, ...] = ()
    scale: float = bounded(0.0, lo=0.0, hi=1.0)

    def __post_init__(self) -> None:
        if not self.joints and not self.legs:
            raise ValueError("joint_damage needs at least one entry in 'joints' or 'legs'")

    def actuator_indices(self, robot: RobotSpec) -> list[int]:
        indices = [robot.joint_index(j) for j in self.joints]
        for leg in self.legs:
            indices += robot.leg_joint_indices(leg)
        return sorted(set(indices))

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_actuators(self.actuator_indices(robot), self.scale)


@dataclass(frozen=True)
class Payload:
    """Extra mass ``mass_kg`` (kg) at ``offset_m`` (m, payload-body frame; the payload body sits on the
    torso of legged robots and at the pole tip of the cart-pole)."""

    type: ClassVar[str] = "payload"
    mass_kg: float = bounded(1.0, lo=0.0, hi=1000.0)
    offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.add_payload(self.mass_kg, self.offset_m)


@dataclass(frozen=True)
class Friction:
    """Scale the sliding friction between the ground and the robot's contact geoms."""

    type: ClassVar[str] = "friction"
    scale: float = bounded(1.0, lo=0.0, lo_open=True, hi=100.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        if not robot.contact_geoms:
            raise ValueError(f"robot {robot.name!r} lists no contact_geoms, so friction cannot be scaled")
        sim.scale_friction(self.scale)


@dataclass(frozen=True)
class MassScale:
    """Scale the mass and inertia of every robot body."""

    type: ClassVar[str] = "mass"
    scale: float = bounded(1.0, lo=0.0, lo_open=True, hi=100.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_mass(self.scale)


@dataclass(frozen=True)
class DampingScale:
    """Scale the viscous damping of every joint."""

    type: ClassVar[str] = "damping"
    scale: float = bounded(1.0, lo=0.0, hi=100.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_damping(self.scale)


@dataclass(frozen=True)
class Slope:
    """Make the ground a slope rising along +x by ``degrees`` (done by tilting gravity)."""

    type: ClassVar[str] = "slope"
    degrees: float = bounded(0.0, lo=-30.0, hi=30.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.set_slope(self.degrees)


Perturbation = JointDamage | Payload | Friction | MassScale | DampingScale | Slope
PERTURBATION_TYPES: dict[str, type] = {
    cls.type: cls for cls in (JointDamage, Payload, Friction, MassScale, DampingScale, Slope)}


def perturbation_from_dict(data: Any, source: str = "<config>", path: str = "") -> Perturbation:
    """Build a perturbation from ``{type: ..., <fields>}``; errors name the field and allowed values."""
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(source, path, f"expected a mapping with a 'type' key; allowed types: "
                          f"{', '.join(PERTURBATION_TYPES)}")
    kind = data["type"]
    if kind not in PERTURBATION_TYPES:
        raise ConfigError(source, f"{path}.type" if path else "type",
                          f"unknown perturbation {kind!r}; allowed: {', '.join(PERTURBATION_TYPES)}")
    fields = {k: v for k, v in data.items() if k != "type"}
    return from_dict(PERTURBATION_TYPES[kind], fields, source=source, path=path)


def describe(perturbation: Perturbation) -> dict[str, Any]:
    """Plain-data description ``{type: ..., <fields>}`` (for ``info`` and logs)."""
    return {"type": perturbation.type, **to_dict(perturbation)}


def apply_all(sim: Simulator, robot: RobotSpec, perturbations: list[Perturbation]) -> None:
    """Reset ``sim`` to the nominal model, apply ``perturbations`` in order, and commit the edits.

    ``restore_nominal`` alone leaves the model exact, so with no perturbations there is nothing to commit.
    """
    sim.restore_nominal()
    for perturbation in perturbations:
        perturbation.apply(sim, robot)
    if perturbations:
        sim.commit_edits()


__all__ = ["JointDamage", "Payload", "Friction", "MassScale", "DampingScale", "Slope", "Perturbation",
           "PERTURBATION_TYPES", "perturbation_from_dict", "describe", "apply_all", "check_for_robot"]


def check_for_robot(perturbation: Perturbation, robot: RobotSpec) -> None:
    """Raise ValueError if ``perturbation`` names joints or legs the robot lacks, or needs contact geoms."""
    if isinstance(perturbation, JointDamage):
        perturbation.actuator_indices(robot)
    elif isinstance(perturbation, Friction) and not robot.contact_geoms:
        raise ValueError(f"robot {robot.name!r} lists no contact_geoms, so friction cannot be scaled")
