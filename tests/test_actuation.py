"""Actuation modes: torque actions and PD joint-position targets, on both backends."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.envs import load_robot, make_simulator
from adaptive_mbrl.envs.actuation import ActuationSpec, PdTargets


def _pd_spec(n: int, kp: float = 200.0, kd: float = 5.0, target_range: float = 0.3) -> ActuationSpec:
    return ActuationSpec(mode="pd_target", kp=[kp] * n, kd=[kd] * n, target_range=[target_range] * n)


def test_pd_effort_is_the_clipped_pd_torque_over_the_gear() -> None:
    pd = PdTargets(_pd_spec(2, kp=10.0, kd=1.0, target_range=0.5), reference_pos=np.array([0.0, 1.0]),
                   gear=np.array([2.0, 100.0]))
    targets = pd.targets(np.array([1.0, -3.0]))            # actions beyond [-1, 1] are clipped
    np.testing.assert_allclose(targets, [0.5, 0.5])
    effort = pd.effort(targets, q=np.array([0.0, 0.0]), qd=np.array([0.0, 2.0]))
    # joint 0: 10 * 0.5 = 5 N*m > 2 N*m limit -> 1; joint 1: (10 * 0.5 - 1 * 2) / 100 = 0.03
    np.testing.assert_allclose(effort, [1.0, 0.03])


@pytest.mark.parametrize("field, values, message", [
    ("kp", [1.0], "actuation.kp: needs one value per actuated joint"),
    ("kd", [-1.0] * 6, "actuation.kd: values must be >= 0"),
    ("kp", [0.0] * 6, "actuation.kp: mode pd_target needs a positive stiffness"),
])
def test_pd_settings_are_validated_against_the_robot(field: str, values: list, message: str) -> None:
    spec = load_robot("half_cheetah")
    actuation = dataclasses.replace(_pd_spec(6), **{field: values})
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(spec, actuation=actuation)
    with pytest.raises(ValueError, match="actuation.kp: only used with mode pd_target"):
        dataclasses.replace(spec, actuation=ActuationSpec(kp=[1.0] * 6))


def test_unknown_mode_in_robot_yaml_names_the_allowed_ones(tmp_path) -> None:
    from adaptive_mbrl.config import load_yaml
    from adaptive_mbrl.envs.robot_spec import RobotSpec
    file = tmp_path / "robot.yaml"
    file.write_text("name: r\ndescription: d\nmodels: {mujoco: {file: x.xml}}\nactuated_joints: [j]\n"
                    "actuation: {mode: position}\n")
    with pytest.raises(ValueError, match=r"actuation.mode.*'torque', 'pd_target'"):
        load_yaml(RobotSpec, file)


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_pd_target_settles_where_the_pd_and_the_joint_spring_balance(backend: str) -> None:
    # half_cheetah's back thigh has a passive spring k = 240 N*m/rad at 0; a PD target t with stiffness kp
    # settles at kp t / (kp + k) (gravity and contacts move it by a few hundredths of a rad).
    spec = load_robot("half_cheetah")
    kp, k, target = 200.0, 240.0, 0.3
    pd = dataclasses.replace(spec, actuation=_pd_spec(6, kp=kp, target_range=target))
    sim = make_simulator(pd, backend)
    settled = []
    for sign in (1.0, -1.0):
        sim.set_state(sim.reference_qpos(), np.zeros(sim.nv))
        action = np.zeros(6)
        action[0] = sign
        for _ in range(50):
            sim.step(action)
        settled.append(float(sim.state()[0][3]))       # qpos[3] = bthigh
    expected = kp * target / (kp + k)
    np.testing.assert_allclose(settled, [expected, -expected], atol=0.05)


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_a_disabled_motor_ignores_its_pd_target(backend: str) -> None:
    spec = load_robot("half_cheetah")
    sim = make_simulator(dataclasses.replace(spec, actuation=_pd_spec(6)), backend)
    sim.scale_actuators([0], 0.0)                       # damage weakens the motor, not the target
    angles = []
    for sign in (1.0, -1.0):
        sim.set_state(sim.reference_qpos(), np.zeros(sim.nv))
        for _ in range(50):
            sim.step(np.array([sign, 0, 0, 0, 0, 0]))
        angles.append(float(sim.state()[0][3]))
    assert abs(angles[0] - angles[1]) < 1e-3


def test_a1_holds_its_stance_with_pd_targets_and_sags_with_torques() -> None:
    env = am.make("a1", backend="pybullet")
    torque_spec = dataclasses.replace(load_robot("a1"), actuation=ActuationSpec())
    heights = {}
    for name, sim in (("pd_target", env.sim), ("torque", make_simulator(torque_spec, "pybullet"))):
        sim.set_state(sim.reference_qpos(), np.zeros(sim.nv))
        for _ in range(100):                            # 2 s of zero action
            sim.step(np.zeros(12))
        qpos = sim.state()[0]
        heights[name] = float(qpos[2])
        if name == "pd_target":                          # joints stay near the standing pose
            np.testing.assert_allclose(qpos[7:], load_robot("a1").init_joint_pos, atol=0.15)
    assert heights["pd_target"] > 0.22                   # standing trunk height ~0.25 m
    assert heights["torque"] < heights["pd_target"] - 0.05
