"""The physics backend interface that the environment drives.

A :class:`Simulator` speaks MuJoCo conventions whatever the engine: generalized positions ``qpos [nq]``
(free base: x y z, quaternion w x y z, joints) and velocities ``qvel [nv]`` (free base: linear velocity in
the world frame, angular velocity in the body frame, joints), actions in [-1, 1] scaled by each actuator's
gear (N or N*m per unit). Physics edits are applied on top of the nominal model, between
:meth:`restore_nominal` and :meth:`commit_edits`; perturbations (:mod:`adaptive_mbrl.envs.perturbations`)
call them and never touch engine internals.
"""
from __future__ import annotations

import abc

import numpy as np


class Simulator(abc.ABC):
    """One robot in one physics engine.

    Attributes:
        dt: control step in seconds (engine timestep x frame skip).
        nq, nv, nu: sizes of qpos, qvel and the action.
    """

    dt: float
    nq: int
    nv: int
    nu: int

    # --- state -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def reference_qpos(self) -> np.ndarray:
        """The model's reference pose [nq] (the pose written in the robot file)."""

    @abc.abstractmethod
    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Teleport to ``qpos`` [nq], ``qvel`` [nv] and clear contact / warm-start history."""

    @abc.abstractmethod
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Current ``(qpos [nq], qvel [nv])``; the arrays may be views, copy them to keep them."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> None:
        """Hold ``action`` [nu] (in [-1, 1]) for one control step (frame-skip engine steps)."""

    # --- physics edits -------------------------------------------------------------------------------
    @abc.abstractmethod
    def restore_nominal(self) -> None:
        """Undo every edit: the model is exactly as loaded."""

    @abc.abstractmethod
    def scale_actuators(self, indices: list[int], scale: float) -> None:
        """Multiply the torque of actuators ``indices`` (action order) by ``scale`` (0 disables)."""

    @abc.abstractmethod
    def add_payload(self, mass_kg: float, offset_m: tuple[float, float, float]) -> None:
        """Put ``mass_kg`` at ``offset_m`` (m, in the payload body's frame, from its nominal position)."""

    @abc.abstractmethod
    def scale_friction(self, scale: float) -> None:
        """Multiply the sliding friction of the ground and the robot's contact geoms by ``scale``."""

    @abc.abstractmethod
    def scale_mass(self, scale: float, bodies: list[str] | None = None) -> None:
        """Multiply the mass and inertia of robot bodies ``bodies`` (names from :meth:`body_names`; None:
        every robot body, never the payload) by ``scale``. Unknown names raise ValueError listing the allowed."""

    @abc.abstractmethod
    def scale_damping(self, scale: float, joints: list[int] | None = None) -> None:
        """Multiply the viscous damping of actuated joints ``joints`` (action indices; None: every joint)
        by ``scale``."""

    @abc.abstractmethod
    def body_names(self) -> list[str]:
        """Names of the robot bodies whose mass can be scaled (the payload excluded)."""

    def check_body_names(self, bodies: list[str]) -> list[str]:
        """:meth:`body_names`, after checking that every name in ``bodies`` is one of them.

        Raises:
            ValueError: a name that is not a robot body whose mass can be scaled (lists the allowed ones).
        """
        allowed = self.body_names()
        unknown = [b for b in bodies if b not in allowed]
        if unknown:
            raise ValueError(f"robot {self.robot.name!r} has no body {unknown[0]!r} whose mass can be "
                             f"scaled; allowed: {', '.join(allowed)}")
        return allowed

    def editable(self, name: str) -> np.ndarray:
        """A live engine array that a perturbation may edit and that :meth:`restore_nominal` restores.

        Only engines with model arrays have them (MuJoCo: any ``MjModel`` array, e.g. ``dof_frictionloss``).
        """
        raise NotImplementedError(f"{type(self).__name__} has no editable model arrays; edit the physics "
                                  "through the Simulator methods (scale_actuators, scale_damping, ...)")

    @abc.abstractmethod
    def set_slope(self, degrees: float) -> None:
        """Tilt gravity so the ground acts as a slope rising along +x by ``degrees``."""

    def commit_edits(self) -> None:
        """Recompute quantities derived from edited parameters (a no-op where the engine needs none)."""

    # --- inspection, rendering, lifetime --------------------------------------------------------------
    @abc.abstractmethod
    def total_mass(self) -> float:
        """Total mass of the robot and its payload in kg."""

    def render(self, width: int = 480, height: int = 360) -> np.ndarray:
        """RGB image [height, width, 3] uint8 of the robot."""
        raise NotImplementedError(f"{type(self).__name__} does not render")

    def close(self) -> None:
        """Release engine resources."""


def slope_gravity(degrees: float, g: float = 9.81) -> np.ndarray:
    """Gravity vector [3] (m/s^2) that makes flat ground behave as a slope rising along +x."""
    theta = np.deg2rad(degrees)
    return np.array([-g * np.sin(theta), 0.0, -g * np.cos(theta)])
