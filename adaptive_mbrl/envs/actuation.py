"""How an action becomes joint torques: direct torque, or joint-position targets held by a PD loop.

``torque`` (the default): action ``a`` in [-1, 1] is a fraction of each actuator's gear (N*m per unit),
held for the whole control step.

``pd_target``: action ``a`` in [-1, 1] sets each actuated joint's target angle
``q_target = q_ref + target_range * a`` (rad) about the reference pose ``q_ref``; a PD loop recomputed at
every engine step turns it into the torque ``kp (q_target - q) - kd qdot`` (N*m), clipped to the gear
(the motor's torque limit). This is the usual action space for learned legged control: the stance holds
itself at ``a = 0``, where torque control has to learn to hold the body up first.

Both backends call :meth:`PdTargets.effort` once per engine step and scale the result by the actuator's
current gear, so damage (``scale_actuators``) weakens the motor, not the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ACTUATION_MODES = ("torque", "pd_target")


@dataclass(frozen=True)
class ActuationSpec:
    """The ``actuation:`` block of a robot YAML (lists in action order, one value per actuated joint).

    Attributes:
        mode: ``torque`` or ``pd_target`` (see the module docstring).
        kp: PD stiffness in N*m/rad (``pd_target`` only).
        kd: PD damping in N*m*s/rad (``pd_target`` only), on top of the robot's ``joint_damping``.
        target_range: rad of target offset per unit action (``pd_target`` only).
    """

    mode: Literal["torque", "pd_target"] = "torque"
    kp: list[float] = field(default_factory=list)
    kd: list[float] = field(default_factory=list)
    target_range: list[float] = field(default_factory=list)

    def validate(self, n_joints: int) -> None:
        """Raise ValueError naming the field if the block does not fit a robot with ``n_joints`` joints."""
        if self.mode not in ACTUATION_MODES:
            raise ValueError(f"actuation.mode: {self.mode!r} is not allowed; allowed: {', '.join(ACTUATION_MODES)}")
        gains = {"kp": self.kp, "kd": self.kd, "target_range": self.target_range}
        if self.mode == "torque":
            given = [name for name, values in gains.items() if values]
            if given:
                raise ValueError(f"actuation.{given[0]}: only used with mode pd_target, got mode torque")
            return
        for name, values in gains.items():
            if len(values) != n_joints:
                raise ValueError(f"actuation.{name}: needs one value per actuated joint ({n_joints}), "
                                 f"got {len(values)}")
            if any(v < 0 for v in values):
                raise ValueError(f"actuation.{name}: values must be >= 0, got {values}")
        if not any(self.kp):
            raise ValueError("actuation.kp: mode pd_target needs a positive stiffness on some joint")


class PdTargets:
    """The PD loop of ``pd_target`` actuation for one robot.

    Args:
        spec: the robot's validated ``actuation`` block (mode ``pd_target``).
        reference_pos: [nu] the actuated joints' angles in the reference pose (rad), the target at ``a = 0``.
        gear: [nu] each actuator's nominal torque per unit action (N*m), the PD torque's limit.
    """

    def __init__(self, spec: ActuationSpec, reference_pos: np.ndarray, gear: np.ndarray) -> None:
        gear = np.asarray(gear, dtype=float)
        if np.any(gear <= 0):
            raise ValueError(f"actuation: pd_target needs a positive gear (torque limit) on every joint, got {gear}")
        self.kp = np.asarray(spec.kp, dtype=float)
        self.kd = np.asarray(spec.kd, dtype=float)
        self.target_range = np.asarray(spec.target_range, dtype=float)
        self.reference_pos = np.asarray(reference_pos, dtype=float).copy()
        self.gear = gear

    def targets(self, action: np.ndarray) -> np.ndarray:
        """Target joint angles [nu] (rad) for ``action`` [nu] in [-1, 1]."""
        return self.reference_pos + self.target_range * np.clip(action, -1.0, 1.0)

    def effort(self, targets: np.ndarray, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """PD torque as a fraction of the nominal gear, clipped to [-1, 1] ([nu]).

        Args:
            targets: [nu] target angles (rad), from :meth:`targets`.
            q: [nu] joint angles (rad). qd: [nu] joint speeds (rad/s).
        """
        torque = self.kp * (targets - q) - self.kd * qd
        return np.clip(torque / self.gear, -1.0, 1.0)
