"""Dynamics perturbations: damaged, reversed or rusted joints, payloads, friction, mass, damping, slope.

Each perturbation is a small frozen dataclass, a subclass of :class:`Perturbation`, with an
``apply(sim, robot)`` that edits the physics through the backend-neutral
:class:`~adaptive_mbrl.envs.simulator.Simulator` interface, so the same perturbation works on MuJoCo and
PyBullet. Every edit is undone by ``sim.restore_nominal()`` at each reset and before each mid-episode event
re-applies the perturbations in force. In YAML a perturbation is a mapping with a ``type`` key::

    - {type: joint_damage, joints: [4], scale: 0.0}       # joint 4 disabled
    - {type: joint_damage, legs: [front], scale: 0.5}     # front leg at half torque
    - {type: joint_damage, joints: [bthigh], scale: -1}   # motor wired backwards
    - {type: payload, mass_kg: 3.0, offset_m: [0.2, 0, 0]}
    - {type: friction, scale: 0.3}
    - {type: mass, scale: 1.5}                            # every body
    - {type: mass, bodies: [torso], scale: 1.5}           # some bodies (names from the model file)
    - {type: damping, scale: 0.5}                         # every joint
    - {type: damping, joints: [fshin], scale: 20}         # a rusted joint
    - {type: slope, degrees: 5}

A perturbation of your own: subclass :class:`Perturbation` as a frozen dataclass, edit the physics in
``apply`` through the simulator's methods (``scale_actuators``, ``scale_damping``, ``scale_mass``, ...; on
MuJoCo also any model array through ``sim.editable(name)``), and register it by name. Its fields are
validated like the built-in ones (``bounded`` gives a range), and it is applied and restored like them.
Never write ``env.unwrapped.sim.model`` directly: such edits are not restored, and are lost at the next
reset or event::

    from dataclasses import dataclass
    from adaptive_mbrl.config import bounded
    from adaptive_mbrl.envs.perturbations import Perturbation, register_perturbation

    @register_perturbation("rust")
    @dataclass(frozen=True)
    class Rust(Perturbation):                 # a rusted joint: more viscous damping, a weaker motor
        joints: tuple[int | str, ...] = ()
        severity: float = bounded(0.5, lo=0.0, hi=1.0)

        def apply(self, sim, robot):
            indices = [robot.joint_index(j) for j in self.joints]
            sim.scale_damping(1.0 + 9.0 * self.severity, indices)
            sim.scale_actuators(indices, 1.0 - 0.5 * self.severity)

    # sim_configs or your own file:  - {type: rust, joints: [fshin], severity: 0.8}

Register it before the scenario that uses it is loaded (import your module first). A scenario file can
also name the modules that register its perturbations (``imports: [my_package.perturbations]``, see
:mod:`adaptive_mbrl.envs.scenarios`), so that the CLI and worker processes find them.
"""
from __future__ import annotations

import dataclasses
import keyword
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from adaptive_mbrl.config import ConfigError, bounded, from_dict, to_dict
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.simulator import Simulator

GEAR_SCALE_RANGE = (-1.0, 1.0)
"""Allowed ``joint_damage.scale``: 0 disables a motor, 0.3 weakens it, -1 reverses it (miswired). Beyond
magnitude 1 the motor would be stronger than the robot's actuator (the gear is its torque limit): an
upgrade, not damage, and torques the model was never rated for."""


@dataclass(frozen=True)
class Perturbation:
    """Base class of every perturbation (see the module docstring for writing one of your own).

    Subclasses are frozen dataclasses with a class-level ``type`` (their YAML name, set by
    :func:`register_perturbation`) and implement :meth:`apply`.
    """

    type: ClassVar[str] = ""

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        """Edit ``sim``'s physics (through the Simulator interface; the nominal model is restored first)."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(sim, robot)")

    def check(self, robot: RobotSpec) -> None:
        """Raise ValueError if this perturbation cannot act on ``robot`` (called when a scenario loads)."""

    def check_sim(self, sim: Simulator, robot: RobotSpec) -> None:
        """Raise ValueError if this perturbation cannot act on ``sim`` (called when an env is made)."""


@dataclass(frozen=True)
class JointDamage(Perturbation):
    """Scale the torque of some joints, or of every joint of some legs.

    ``scale`` 0 disables them, 0.3 leaves 30 % of their torque, -1 reverses them (a motor wired backwards:
    the joint moves the opposite way to the one commanded). Allowed: [-1, 1] (see ``GEAR_SCALE_RANGE``).
    Joints and legs are given by index (action order / leg order in the robot YAML) or by name.
    """

    type: ClassVar[str] = "joint_damage"
    joints: tuple[int | str, ...] = ()
    legs: tuple[int | str, ...] = ()
    scale: float = 0.0

    def __post_init__(self) -> None:
        if not self.joints and not self.legs:
            raise ValueError("joint_damage needs at least one entry in 'joints' or 'legs'")
        lo, hi = GEAR_SCALE_RANGE
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not lo <= self.scale <= hi:
            raise ValueError(f"joint_damage.scale: {self.scale!r} is out of range; allowed: [{lo:g}, {hi:g}] "
                             "(1 intact, 0 disabled, -1 reversed; a magnitude above 1 would be a stronger motor "
                             "than the robot's actuator, not damage)")

    def actuator_indices(self, robot: RobotSpec) -> list[int]:
        indices = [robot.joint_index(j) for j in self.joints]
        for leg in self.legs:
            indices += robot.leg_joint_indices(leg)
        return sorted(set(indices))

    def check(self, robot: RobotSpec) -> None:
        self.actuator_indices(robot)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_actuators(self.actuator_indices(robot), self.scale)


@dataclass(frozen=True)
class Payload(Perturbation):
    """Extra mass ``mass_kg`` (kg) at ``offset_m`` (m, payload-body frame; the payload body sits on the
    torso of legged robots and at the pole tip of the cart-pole)."""

    type: ClassVar[str] = "payload"
    mass_kg: float = bounded(1.0, lo=0.0, hi=1000.0)
    offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.add_payload(self.mass_kg, self.offset_m)


@dataclass(frozen=True)
class Friction(Perturbation):
    """Scale the sliding friction between the ground and the robot's contact geoms."""

    type: ClassVar[str] = "friction"
    scale: float = bounded(1.0, lo=0.0, lo_open=True, hi=100.0)

    def check(self, robot: RobotSpec) -> None:
        if not robot.contact_geoms:
            raise ValueError(f"robot {robot.name!r} lists no contact_geoms, so friction cannot be scaled")

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        self.check(robot)
        sim.scale_friction(self.scale)


@dataclass(frozen=True)
class MassScale(Perturbation):
    """Scale the mass and inertia of some robot bodies (``bodies``: names in the robot's model file, e.g.
    ``torso``), or of every robot body (``bodies`` empty, the default). The payload is never scaled."""

    type: ClassVar[str] = "mass"
    scale: float = bounded(1.0, lo=0.0, lo_open=True, hi=100.0)
    bodies: tuple[str, ...] = ()

    def check_sim(self, sim: Simulator, robot: RobotSpec) -> None:
        allowed = sim.body_names()
        unknown = [b for b in self.bodies if b not in allowed]
        if unknown:
            raise ValueError(f"mass.bodies: robot {robot.name!r} has no body {unknown[0]!r}; "
                             f"allowed: {', '.join(allowed)}")

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_mass(self.scale, list(self.bodies) or None)


@dataclass(frozen=True)
class DampingScale(Perturbation):
    """Scale the viscous damping of some actuated joints (``joints``: indices in action order or names;
    e.g. ``scale: 20`` on one joint is a rusted joint), or of every joint (``joints`` empty, the default).

    A scale multiplies the joint's nominal damping (from the model file plus the robot YAML's
    ``joint_damping``), so it has no effect on a joint whose nominal damping is 0.
    """

    type: ClassVar[str] = "damping"
    scale: float = bounded(1.0, lo=0.0, hi=100.0)
    joints: tuple[int | str, ...] = ()

    def joint_indices(self, robot: RobotSpec) -> list[int] | None:
        """Action indices of ``joints`` (None: every joint)."""
        return sorted({robot.joint_index(j) for j in self.joints}) if self.joints else None

    def check(self, robot: RobotSpec) -> None:
        self.joint_indices(robot)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.scale_damping(self.scale, self.joint_indices(robot))


@dataclass(frozen=True)
class Slope(Perturbation):
    """Make the ground a slope rising along +x by ``degrees`` (done by tilting gravity)."""

    type: ClassVar[str] = "slope"
    degrees: float = bounded(0.0, lo=-30.0, hi=30.0)

    def apply(self, sim: Simulator, robot: RobotSpec) -> None:
        sim.set_slope(self.degrees)


PERTURBATION_TYPES: dict[str, type[Perturbation]] = {
    cls.type: cls for cls in (JointDamage, Payload, Friction, MassScale, DampingScale, Slope)}
"""Every perturbation type by YAML name: the built-in ones and those added by register_perturbation."""
BUILTIN_TYPES = tuple(PERTURBATION_TYPES)

P = TypeVar("P", bound=type)


def register_perturbation(name: str, cls: type[Perturbation] | None = None) -> Any:
    """Make a :class:`Perturbation` subclass usable in scenarios as ``{type: <name>, ...}``.

    Use as a decorator (``@register_perturbation("rust")`` above ``@dataclass(frozen=True)``) or as a call
    ``register_perturbation("rust", Rust)``. Sets ``cls.type = name`` and returns the class. Registering
    the same class again is allowed; another class under a taken name, a built-in name, or a class that is
    not a frozen dataclass subclass of Perturbation raises ValueError / TypeError.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"perturbation name {name!r} must be an identifier, e.g. 'rust'")

    def register(klass: P) -> P:
        if not (isinstance(klass, type) and issubclass(klass, Perturbation) and dataclasses.is_dataclass(klass)
                and klass.__dataclass_params__.frozen):
            raise TypeError(f"register_perturbation({name!r}): {klass!r} must be a frozen dataclass subclass of "
                            "adaptive_mbrl.envs.perturbations.Perturbation (@dataclass(frozen=True))")
        if "apply" not in {k for c in klass.__mro__ if c is not Perturbation for k in vars(c)}:
            raise TypeError(f"register_perturbation({name!r}): {klass.__name__} must implement apply(sim, robot)")
        taken = PERTURBATION_TYPES.get(name)
        if name in BUILTIN_TYPES or (taken is not None and taken is not klass):
            raise ValueError(f"perturbation type {name!r} is already registered (by {taken.__qualname__}); "
                             f"taken: {', '.join(PERTURBATION_TYPES)}")
        klass.type = name
        PERTURBATION_TYPES[name] = klass
        return klass

    return register if cls is None else register(cls)


def perturbation_from_dict(data: Any, source: str = "<config>", path: str = "") -> Perturbation:
    """Build a perturbation from ``{type: ..., <fields>}``; errors name the field and allowed values."""
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(source, path, f"expected a mapping with a 'type' key; allowed types: "
                          f"{', '.join(PERTURBATION_TYPES)}")
    kind = data["type"]
    if kind not in PERTURBATION_TYPES:
        raise ConfigError(source, f"{path}.type" if path else "type",
                          f"unknown perturbation {kind!r}; allowed: {', '.join(PERTURBATION_TYPES)} "
                          "(add your own with register_perturbation)")
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


def check_for_robot(perturbation: Perturbation, robot: RobotSpec) -> None:
    """Raise ValueError if ``perturbation`` names joints or legs the robot lacks, or needs contact geoms."""
    perturbation.check(robot)


__all__ = ["Perturbation", "JointDamage", "Payload", "Friction", "MassScale", "DampingScale", "Slope",
           "GEAR_SCALE_RANGE", "PERTURBATION_TYPES", "register_perturbation", "perturbation_from_dict",
           "describe", "apply_all", "check_for_robot"]
