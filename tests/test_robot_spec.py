"""Robot descriptions (adaptive_mbrl/envs/robot_spec.py) and their agreement with the MJCF files."""
from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.config import ConfigError, from_dict, to_dict
from adaptive_mbrl.envs.robot_spec import RobotSpec

MUJOCO_ROBOTS = ("half_cheetah", "ant", "cartpole")


def _mjcf(robot: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(am.load_robot(robot).model_path("mujoco")))


def test_list_robots_has_the_mujoco_robots() -> None:
    robots = am.list_robots()
    assert set(MUJOCO_ROBOTS) <= set(robots)
    assert robots == sorted(robots)


def test_load_robot_unknown_lists_allowed() -> None:
    with pytest.raises(ValueError) as info:
        am.load_robot("half_cheeta")
    message = str(info.value)
    assert "half_cheeta" in message
    for robot in MUJOCO_ROBOTS:
        assert robot in message


@pytest.mark.parametrize("robot", MUJOCO_ROBOTS)
def test_every_robot_loads_with_consistent_fields(robot: str) -> None:
    spec = am.load_robot(robot)
    assert spec.name == robot
    assert spec.model_path("mujoco").is_file()
    assert spec.action_dim == len(spec.actuated_joints) == len(spec.actuator_gears)
    assert spec.dt == pytest.approx(0.05)
    for leg in spec.legs.values():
        assert set(leg) <= set(spec.actuated_joints)


def test_half_cheetah_dt_and_sizes() -> None:
    spec = am.load_robot("half_cheetah")
    assert spec.timestep == 0.01 and spec.frame_skip == 5
    assert spec.dt == pytest.approx(0.05, abs=1e-15)
    assert spec.action_dim == 6


def test_joint_index_by_index_and_name() -> None:
    spec = am.load_robot("half_cheetah")
    assert spec.joint_index(0) == 0
    assert spec.joint_index(5) == 5
    assert spec.joint_index("fshin") == 4
    assert [spec.joint_index(j) for j in spec.actuated_joints] == list(range(6))


@pytest.mark.parametrize("bad", [6, -1, "knee", True, 1.0])
def test_bad_joint_names_the_allowed(bad: object) -> None:
    spec = am.load_robot("half_cheetah")
    with pytest.raises(ValueError) as info:
        spec.joint_index(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) in message and "0..5" in message and "bthigh" in message and "ffoot" in message


def test_leg_resolution_by_index_and_name() -> None:
    cheetah = am.load_robot("half_cheetah")
    assert cheetah.leg_joint_indices(0) == cheetah.leg_joint_indices("back") == [0, 1, 2]
    assert cheetah.leg_joint_indices(1) == cheetah.leg_joint_indices("front") == [3, 4, 5]
    ant = am.load_robot("ant")
    # action order is hip_4, ankle_4, hip_1, ankle_1, ...; leg 0 is leg_1
    assert ant.leg_joint_indices(0) == ant.leg_joint_indices("leg_1") == [2, 3]
    assert ant.leg_joint_indices("leg_4") == ant.leg_joint_indices(3) == [0, 1]


@pytest.mark.parametrize("bad", [2, -1, "middle"])
def test_bad_leg_names_the_allowed(bad: object) -> None:
    spec = am.load_robot("half_cheetah")
    with pytest.raises(ValueError) as info:
        spec.leg_joint_indices(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert "leg" in message and "0..1" in message and "back" in message and "front" in message


def test_robot_without_legs_rejects_any_leg() -> None:
    with pytest.raises(ValueError, match="leg"):
        am.load_robot("cartpole").leg_joint_indices(0)


def test_model_path_for_missing_backend() -> None:
    spec = am.load_robot("cartpole")
    assert "pybullet" not in spec.models
    with pytest.raises(ValueError) as info:
        spec.model_path("pybullet")
    message = str(info.value)
    assert "cartpole" in message and "pybullet" in message and "mujoco" in message
    with pytest.raises(ValueError, match="available backends: mujoco"):
        spec.model_path("gazebo")


@pytest.mark.parametrize("robot", MUJOCO_ROBOTS)
def test_actuator_gears_match_the_mjcf(robot: str) -> None:
    spec = am.load_robot(robot)
    model = _mjcf(robot)
    assert model.nu == spec.action_dim
    for joint, gear in zip(spec.actuated_joints, spec.actuator_gears):
        joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
        assert joint_id >= 0, joint
        actuators = np.flatnonzero(model.actuator_trnid[:, 0] == joint_id)
        assert len(actuators) == 1, joint
        assert model.actuator_gear[actuators[0], 0] == pytest.approx(gear), joint


@pytest.mark.parametrize("robot", MUJOCO_ROBOTS)
def test_named_bodies_and_geoms_exist_in_the_mjcf(robot: str) -> None:
    spec = am.load_robot(robot)
    model = _mjcf(robot)
    assert model.opt.timestep == pytest.approx(spec.timestep)
    for body in (spec.torso, spec.payload_body):
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body) >= 0, body
    for geom in (spec.ground_geom, *spec.contact_geoms):
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom) >= 0, geom
    # the payload body is (nearly) massless until a payload perturbation gives it mass
    payload = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.payload_body)
    assert model.body_mass[payload] < 1e-3


def test_spec_validation_rejects_inconsistent_robots() -> None:
    base = to_dict(am.load_robot("half_cheetah"))
    with pytest.raises(ConfigError, match="legs.front: joint 'knee' is not an actuated joint"):
        from_dict(RobotSpec, {**base, "legs": {"front": ["knee"]}}, source="robot.yaml")
    with pytest.raises(ConfigError, match="one gear per actuated joint"):
        from_dict(RobotSpec, {**base, "actuator_gears": [1.0]}, source="robot.yaml")
    with pytest.raises(ConfigError, match="unknown backend 'gazebo'; allowed: mujoco, pybullet"):
        from_dict(RobotSpec, {**base, "models": {"gazebo": {"file": "x.sdf"}}}, source="robot.yaml")
    with pytest.raises(ConfigError) as info:
        from_dict(RobotSpec, {**base, "timestep": 0.5}, source="robot.yaml")
    assert "robot.yaml: timestep" in str(info.value) and "at most 0.1" in str(info.value)


def test_spec_round_trips_through_plain_data() -> None:
    spec = am.load_robot("ant")
    assert from_dict(RobotSpec, to_dict(spec)) == spec
    assert dataclasses.replace(spec, frame_skip=2).dt == pytest.approx(0.02)
