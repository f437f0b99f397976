"""Perturbations change the PHYSICS on MuJoCo (adaptive_mbrl/envs/perturbations.py + mujoco_sim.py).

Each test measures the simulated motion or MuJoCo's own derived quantities (qacc, qfrc_*, subtree_com,
contact friction), not only the edited model field.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

import mujoco
import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.envs.mujoco_sim import PAYLOAD_RADIUS_M, MujocoSimulator
from adaptive_mbrl.envs.perturbations import (DampingScale, Friction, JointDamage, MassScale, Payload, Slope,
                                              apply_all, check_for_robot, describe,
                                              perturbation_from_dict)
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.scenarios import ScenarioSpec, Task
from adaptive_mbrl.envs.simulator import slope_gravity


def make_sim(robot: str, perturbations: Sequence[object] = ()) -> tuple[MujocoSimulator, RobotSpec]:
    """A fresh MuJoCo simulator of ``robot`` with ``perturbations`` applied (and committed)."""
    spec = am.load_robot(robot)
    sim = MujocoSimulator(spec)
    apply_all(sim, spec, list(perturbations))
    return sim, spec


def rest_state(sim: MujocoSimulator, robot: str, lift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The reference pose at rest, raised by ``lift`` m (in the air: no contacts); cart-pole hanging down."""
    qpos = sim.reference_qpos()
    if robot == "half_cheetah":
        qpos[1] += lift  # rootz
    elif robot == "ant":
        qpos[2] += lift  # free joint z
    elif robot == "cartpole":
        qpos[1] = np.pi
    return qpos, np.zeros(sim.nv)


def rollout(sim: MujocoSimulator, qpos: np.ndarray, qvel: np.ndarray,
            actions: Iterable[np.ndarray]) -> np.ndarray:
    """qpos after each control step, [T, nq]."""
    sim.set_state(qpos, qvel)
    out = []
    for action in actions:
        sim.step(np.asarray(action, dtype=float))
        out.append(sim.state()[0].copy())
    return np.array(out)


def qacc(sim: MujocoSimulator, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> np.ndarray:
    """MuJoCo's forward-dynamics acceleration for a state and an action (action order)."""
    sim.set_state(qpos, qvel)
    sim.data.ctrl[sim._actuators] = action
    mujoco.mj_forward(sim.model, sim.data)
    return sim.data.qacc.copy()


def dof_of(sim: MujocoSimulator, joint: str) -> int:
    return int(sim.model.jnt_dofadr[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_JOINT, joint)])


def body_id(sim: MujocoSimulator, body: str) -> int:
    return mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, body)


# --- joint and leg damage -----------------------------------------------------------------------------
def test_disabled_joint_does_not_respond_to_its_action() -> None:
    push = np.zeros(6)
    push[4] = 1.0  # fshin
    zero = np.zeros(6)
    for key in (4, "fshin"):
        sim, _ = make_sim("half_cheetah", [JointDamage(joints=(key,), scale=0.0)])
        q0, v0 = rest_state(sim, "half_cheetah")
        pushed = rollout(sim, q0, v0, [push] * 20)
        idle = rollout(sim, q0, v0, [zero] * 20)
        assert np.array_equal(pushed, idle)  # the action on a disabled motor changes nothing at all
        qacc(sim, q0, v0, push)
        assert sim.data.qfrc_actuator[dof_of(sim, "fshin")] == 0.0
    nominal, _ = make_sim("half_cheetah")
    pushed = rollout(nominal, q0, v0, [push] * 20)
    idle = rollout(nominal, q0, v0, [zero] * 20)
    assert np.abs(pushed[:, 7] - idle[:, 7]).max() > 0.05  # qpos[7] = fshin angle moves under the action
    assert qacc(nominal, q0, v0, push)[dof_of(nominal, "fshin")] != pytest.approx(
        qacc(nominal, q0, v0, zero)[dof_of(nominal, "fshin")], abs=1.0)


@pytest.mark.parametrize("joint", [0, 3, "ffoot"])
def test_half_torque_halves_the_initial_acceleration(joint: int | str) -> None:
    nominal, spec = make_sim("half_cheetah")
    half, _ = make_sim("half_cheetah", [JointDamage(joints=(joint,), scale=0.5)])
    index = spec.joint_index(joint)
    action = np.zeros(6)
    action[index] = 0.8
    q0, v0 = rest_state(nominal, "half_cheetah", lift=1.5)
    dof = dof_of(nominal, spec.actuated_joints[index])
    d_nominal = qacc(nominal, q0, v0, action) - qacc(nominal, q0, v0, np.zeros(6))
    assert nominal.data.ncon == 0  # in the air: the dynamics are linear in the torque
    d_half = qacc(half, q0, v0, action) - qacc(half, q0, v0, np.zeros(6))
    assert abs(d_nominal[dof]) > 1.0
    np.testing.assert_allclose(d_half, 0.5 * d_nominal, rtol=1e-9, atol=1e-9)
    qacc(half, q0, v0, action)
    # and the torque MuJoCo applies at that joint is exactly half
    assert half.data.qfrc_actuator[dof] == pytest.approx(0.5 * 0.8 * spec.actuator_gears[index], rel=1e-12)


@pytest.mark.parametrize("robot, leg, joints", [
    ("ant", "leg_2", ["hip_2", "ankle_2"]),
    ("ant", 3, ["hip_4", "ankle_4"]),
    ("half_cheetah", "back", ["bthigh", "bshin", "bfoot"]),
])
def test_leg_damage_disables_every_joint_of_the_leg(robot: str, leg: int | str, joints: list[str]) -> None:
    sim, spec = make_sim(robot, [JointDamage(legs=(leg,), scale=0.0)])
    q0, v0 = rest_state(sim, robot, lift=1.0)
    ones = np.ones(spec.action_dim)
    qacc(sim, q0, v0, ones)
    for joint in spec.actuated_joints:
        force = sim.data.qfrc_actuator[dof_of(sim, joint)]
        if joint in joints:
            assert force == 0.0, joint
        else:
            assert abs(force) > 1.0, joint  # the other motors still work
    # an action on the broken leg alone moves nothing; on the intact robot it does
    leg_only = np.zeros(spec.action_dim)
    leg_only[[spec.joint_index(j) for j in joints]] = 1.0
    zero = np.zeros(spec.action_dim)
    assert np.array_equal(rollout(sim, q0, v0, [leg_only] * 10), rollout(sim, q0, v0, [zero] * 10))
    nominal, _ = make_sim(robot)
    assert not np.allclose(rollout(nominal, q0, v0, [leg_only] * 10), rollout(nominal, q0, v0, [zero] * 10))


# --- payload -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("robot, offset", [
    ("half_cheetah", (0.3, 0.0, 0.05)),
    ("ant", (0.15, -0.1, 0.0)),
    ("cartpole", (0.0, 0.0, 0.0)),
])
def test_payload_adds_mass_and_shifts_the_centre_of_mass(robot: str, offset: tuple[float, float, float]) -> None:
    mass = 2.5
    nominal, spec = make_sim(robot)
    loaded, _ = make_sim(robot, [Payload(mass_kg=mass, offset_m=offset)])
    assert loaded.total_mass() == pytest.approx(nominal.total_mass() + mass, abs=1e-12)
    root = body_id(nominal, spec.torso)
    q0, v0 = rest_state(nominal, robot, lift=1.0)
    for sim in (nominal, loaded):
        sim.set_state(q0, v0)
        mujoco.mj_forward(sim.model, sim.data)
    # MuJoCo's own subtree mass (derived by mj_setConst) follows the edit
    assert loaded.model.body_subtreemass[root] == pytest.approx(nominal.model.body_subtreemass[root] + mass)
    m0, com0 = nominal.model.body_subtreemass[root], nominal.data.subtree_com[root].copy()
    payload = body_id(nominal, spec.payload_body)
    where = nominal.data.xpos[payload] + nominal.data.xmat[payload].reshape(3, 3) @ np.asarray(offset)
    expected = (m0 * com0 + mass * where) / (m0 + mass)
    np.testing.assert_allclose(loaded.data.subtree_com[root], expected, atol=1e-9)
    assert np.linalg.norm(loaded.data.subtree_com[root] - com0) > 1e-3


def test_payload_makes_the_cheetah_sink_lower() -> None:
    zero = [np.zeros(6)] * 60
    nominal, _ = make_sim("half_cheetah")
    loaded, _ = make_sim("half_cheetah", [Payload(mass_kg=8.0)])
    q0, v0 = rest_state(nominal, "half_cheetah")
    z_nominal = rollout(nominal, q0, v0, zero)[-1, 1]
    z_loaded = rollout(loaded, q0, v0, zero)[-1, 1]
    assert z_loaded < z_nominal - 0.01


def test_tip_payload_changes_how_the_pole_swings() -> None:
    nominal, _ = make_sim("cartpole")
    loaded, _ = make_sim("cartpole", [Payload(mass_kg=0.3)])
    q0, v0 = rest_state(nominal, "cartpole")
    q0[1] = np.pi - 0.6  # released from 0.6 rad off hanging
    zero = [np.zeros(1)] * 20
    swing_nominal = rollout(nominal, q0, v0, zero)[:, 1]
    swing_loaded = rollout(loaded, q0, v0, zero)[:, 1]
    assert np.abs(swing_nominal - swing_loaded).max() > 0.05


def _reference_with_point_masses(robot: str, masses: list[tuple[float, tuple[float, float, float]]]
                                 ) -> mujoco.MjModel:
    """The robot's MJCF with each payload as its own child body (a solid sphere) of the payload body."""
    spec = am.load_robot(robot)
    xml = spec.model_path("mujoco").read_text()
    children = "".join(
        f'<body pos="{x} {y} {z}"><inertial pos="0 0 0" mass="{m}" '
        f'diaginertia="{0.4 * m * PAYLOAD_RADIUS_M ** 2} {0.4 * m * PAYLOAD_RADIUS_M ** 2} '
        f'{0.4 * m * PAYLOAD_RADIUS_M ** 2}"/></body>' for m, (x, y, z) in masses)
    pattern = re.compile(r'(<body name="payload"[^>]*>)')
    assert len(pattern.findall(xml)) == 1
    return mujoco.MjModel.from_xml_string(pattern.sub(lambda match: match.group(1) + children, xml))


@pytest.mark.parametrize("robot, payloads", [
    ("half_cheetah", [(3.0, (0.3, 0.0, 0.0)), (1.0, (-0.3, 0.0, 0.05))]),
    ("ant", [(0.4, (0.1, 0.15, 0.0)), (0.3, (-0.1, 0.05, 0.02)), (0.2, (0.0, -0.12, 0.0))]),
])
def test_several_payloads_act_like_separate_masses(robot: str, payloads: list) -> None:
    """Two or more payloads: same mass, centre of mass AND rotational inertia as separate point masses.

    Compared through the dynamics: qacc of a moving, spinning robot in the air equals that of a reference
    model where every payload is its own body.
    """
    perturbations = [Payload(mass_kg=m, offset_m=o) for m, o in payloads]
    sim, spec = make_sim(robot, perturbations)
    reverse, _ = make_sim(robot, perturbations[::-1])
    reference = _reference_with_point_masses(robot, payloads)
    ref_data = mujoco.MjData(reference)
    rng = np.random.default_rng(3)
    q0, _ = rest_state(sim, robot, lift=2.0)
    v0 = rng.normal(0.0, 1.0, sim.nv)
    action = rng.uniform(-1, 1, spec.action_dim)
    got = qacc(sim, q0, v0, action)
    assert sim.data.ncon == 0
    ref_data.qpos[:], ref_data.qvel[:] = q0, v0
    ref_data.ctrl[sim._actuators] = action
    mujoco.mj_forward(reference, ref_data)
    np.testing.assert_allclose(got, ref_data.qacc, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(qacc(reverse, q0, v0, action), got, rtol=1e-9, atol=1e-9)
    assert sim.total_mass() == pytest.approx(float(reference.body_mass[1:].sum()))
    # ... and differs from a single payload of the same total mass at the common centre of mass
    total = sum(m for m, _ in payloads)
    centre = tuple(sum(m * np.asarray(o) for m, o in payloads) / total)
    lumped, _ = make_sim(robot, [Payload(mass_kg=total, offset_m=centre)])
    assert not np.allclose(qacc(lumped, q0, v0, action), got, rtol=1e-4, atol=1e-4)


# --- friction ------------------------------------------------------------------------------------------
def test_ice_changes_how_a_pushed_cheetah_slides() -> None:
    actions = list(np.random.default_rng(0).uniform(-1, 1, (40, 6)))
    nominal, _ = make_sim("half_cheetah")
    ice, _ = make_sim("half_cheetah", [Friction(scale=0.1)])
    q0, v0 = rest_state(nominal, "half_cheetah")
    x_nominal = rollout(nominal, q0, v0, actions)[:, 0]
    x_ice = rollout(ice, q0, v0, actions)[:, 0]
    assert abs(x_nominal[-1] - x_ice[-1]) > 0.2


@pytest.mark.parametrize("robot, scale", [("half_cheetah", 0.1), ("ant", 0.3), ("half_cheetah", 2.0)])
def test_contact_friction_reported_by_mujoco_scales(robot: str, scale: float) -> None:
    nominal, spec = make_sim(robot)
    q0, v0 = rest_state(nominal, robot)
    rollout(nominal, q0, v0, [np.zeros(spec.action_dim)] * 30)  # settle onto the floor
    qpos, qvel = (a.copy() for a in nominal.state())
    scaled, _ = make_sim(robot, [Friction(scale=scale)])
    for sim in (nominal, scaled):
        sim.set_state(qpos, qvel)
    assert nominal.data.ncon > 0 and nominal.data.ncon == scaled.data.ncon
    floor = mujoco.mj_name2id(nominal.model, mujoco.mjtObj.mjOBJ_GEOM, spec.ground_geom)
    for i in range(nominal.data.ncon):
        c_nom, c_new = nominal.data.contact[i], scaled.data.contact[i]
        assert floor in (c_nom.geom1, c_nom.geom2)
        # friction = [slide, slide, torsion, roll, roll]: both sliding coefficients scale, the rest does not
        np.testing.assert_allclose(c_new.friction[:2], scale * c_nom.friction[:2], rtol=1e-12)
        np.testing.assert_array_equal(c_new.friction[2:], c_nom.friction[2:])


def test_friction_needs_contact_geoms() -> None:
    with pytest.raises(ValueError, match="no contact_geoms"):
        make_sim("cartpole", [Friction(scale=0.5)])


# --- mass ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_mass_scale_divides_the_acceleration_under_the_same_force(scale: float) -> None:
    nominal, _ = make_sim("cartpole")
    heavy, _ = make_sim("cartpole", [MassScale(scale=scale)])
    q0, v0 = rest_state(nominal, "cartpole")
    q0[1] = np.pi - 0.3
    push, zero = np.array([0.7]), np.zeros(1)
    d_nominal = qacc(nominal, q0, v0, push) - qacc(nominal, q0, v0, zero)
    d_scaled = qacc(heavy, q0, v0, push) - qacc(heavy, q0, v0, zero)
    assert abs(d_nominal[0]) > 1.0
    np.testing.assert_allclose(d_scaled, d_nominal / scale, rtol=1e-5)  # the payload body's 1e-6 kg is unscaled
    assert heavy.total_mass() == pytest.approx(scale * nominal.total_mass(), rel=1e-5)


def test_mass_scale_leaves_free_fall_unchanged() -> None:
    """A cheetah at rest in its spring-neutral pose falls as a rigid body: the same motion at any mass."""
    nominal, _ = make_sim("half_cheetah")
    heavy, _ = make_sim("half_cheetah", [MassScale(scale=2.5)])
    q0, v0 = rest_state(nominal, "half_cheetah", lift=3.0)
    zero = [np.zeros(6)] * 10
    fall_nominal = rollout(nominal, q0, v0, zero)
    fall_heavy = rollout(heavy, q0, v0, zero)
    assert fall_nominal[-1, 1] < q0[1] - 0.5  # it really fell
    np.testing.assert_allclose(fall_heavy, fall_nominal, atol=1e-9)
    assert heavy.data.qacc[1] == pytest.approx(-9.81, rel=1e-9)


def test_mass_scale_leaves_the_centre_of_mass_fall_unchanged() -> None:
    """The ant's legs move under their joint limits (armature is not scaled), but its centre of mass falls
    at g whatever the mass."""
    falls = []
    for scale in (1.0, 0.5, 2.5):
        sim, spec = make_sim("ant", [MassScale(scale=scale)])
        q0, v0 = rest_state(sim, "ant", lift=3.0)
        sim.set_state(q0, v0)
        com = []
        for _ in range(10):
            sim.step(np.zeros(8))
            com.append(sim.data.subtree_com[body_id(sim, spec.torso)].copy())
        assert sim.data.ncon == 0
        falls.append(np.array(com))
    t = 0.05 * np.arange(1, 11)
    np.testing.assert_allclose(falls[0][:, 2], falls[0][0, 2] - 0.5 * 9.81 * (t ** 2 - t[0] ** 2), atol=1e-3)
    for fall in falls[1:]:
        np.testing.assert_allclose(fall, falls[0], atol=1e-6)


# --- damping -------------------------------------------------------------------------------------------
def test_damping_scale_changes_the_decay_of_a_joint_velocity() -> None:
    speeds = {}
    for scale in (0.25, 1.0, 4.0):
        sim, _ = make_sim("cartpole", [DampingScale(scale=scale)])
        q0, v0 = rest_state(sim, "cartpole")
        v0[0] = 1.0  # the cart slides at 1 m/s
        sim.set_state(q0, v0)
        assert sim.data.qfrc_passive[0] == pytest.approx(-0.5 * scale * 1.0, rel=1e-12)  # slider damping 0.5
        rollout(sim, q0, v0, [np.zeros(1)] * 20)
        speeds[scale] = abs(sim.state()[1][0])
    assert speeds[4.0] < speeds[1.0] - 0.1 and speeds[1.0] < speeds[0.25] - 0.1


# --- slope ---------------------------------------------------------------------------------------------
def test_slope_makes_a_passive_cartpole_drift_downhill() -> None:
    final_x = {}
    for degrees in (-5.0, 0.0, 5.0):
        sim, _ = make_sim("cartpole", [Slope(degrees=degrees)])
        np.testing.assert_allclose(sim.model.opt.gravity, slope_gravity(degrees), atol=1e-12)
        assert np.linalg.norm(sim.model.opt.gravity) == pytest.approx(9.81)
        q0, v0 = rest_state(sim, "cartpole")
        final_x[degrees] = rollout(sim, q0, v0, [np.zeros(1)] * 20)[-1, 0]
    assert abs(final_x[0.0]) < 1e-9
    assert final_x[5.0] < -0.1  # the ground rises along +x, so the cart rolls back
    assert final_x[-5.0] == pytest.approx(-final_x[5.0], rel=1e-6)


def test_slope_makes_a_passive_cheetah_slide_back() -> None:
    zero = [np.zeros(6)] * 40
    nominal, _ = make_sim("half_cheetah")
    slope, _ = make_sim("half_cheetah", [Slope(degrees=10.0)])
    q0, v0 = rest_state(nominal, "half_cheetah")
    x_flat = rollout(nominal, q0, v0, zero)[-1, 0]
    x_slope = rollout(slope, q0, v0, zero)[-1, 0]
    assert x_slope < x_flat - 0.1


# --- restoring the nominal model -----------------------------------------------------------------------
def _model_values(model: mujoco.MjModel) -> dict[str, object]:
    """Every numpy-array attribute of an MjModel, plus its opt and stat fields."""
    values: dict[str, object] = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name)
        if isinstance(value, np.ndarray):
            values[name] = value.copy()
    for struct in ("opt", "stat"):
        obj = getattr(model, struct)
        for name in dir(obj):
            if name.startswith("_"):
                continue
            value = getattr(obj, name)
            if isinstance(value, (np.ndarray, int, float)):
                values[f"{struct}.{name}"] = np.array(value, copy=True)
    return values


def _differences(model: mujoco.MjModel, fresh: dict[str, object]) -> list[str]:
    now = _model_values(model)
    assert now.keys() == fresh.keys()
    return [name for name, value in fresh.items() if not np.array_equal(now[name], value, equal_nan=True)]


def _all_perturbations(robot: str) -> list[object]:
    perturbations: list[object] = [JointDamage(joints=(0,), scale=0.3), Payload(mass_kg=2.0, offset_m=(0.1, 0.05, 0)),
                                   Payload(mass_kg=1.0, offset_m=(-0.2, 0, 0.03)), MassScale(scale=1.7),
                                   DampingScale(scale=3.0), Slope(degrees=7.0)]
    spec = am.load_robot(robot)
    if spec.legs:
        perturbations.append(JointDamage(legs=(0,), scale=0.0))
    if spec.contact_geoms:
        perturbations.append(Friction(scale=0.2))
    return perturbations


@pytest.mark.parametrize("robot", ["half_cheetah", "ant", "cartpole"])
def test_restore_nominal_returns_every_model_array_exactly(robot: str) -> None:
    sim, spec = make_sim(robot)
    fresh = _model_values(mujoco.MjModel.from_xml_path(str(spec.model_path("mujoco"))))
    assert len(fresh) > 100
    assert _differences(sim.model, fresh) == []
    apply_all(sim, spec, _all_perturbations(robot))
    changed = _differences(sim.model, fresh)
    for name in ("actuator_gear", "body_mass", "body_inertia", "dof_damping", "opt.gravity", "body_subtreemass"):
        assert name in changed  # the perturbations did edit the model (and its derived constants)
    sim.restore_nominal()
    assert _differences(sim.model, fresh) == []


@pytest.mark.parametrize("robot", ["half_cheetah", "ant", "cartpole"])
def test_env_reset_returns_every_model_array_exactly(robot: str) -> None:
    spec = am.load_robot(robot)
    scenario = ScenarioSpec(at_reset=[describe(p) for p in _all_perturbations(robot)])  # YAML form
    env = am.make(robot, scenario=scenario, seed=0)
    fresh = _model_values(mujoco.MjModel.from_xml_path(str(spec.model_path("mujoco"))))
    env.reset()
    assert "body_mass" in _differences(env.sim.model, fresh)
    for _ in range(3):
        env.step(env.action_space.sample())
    env.reset(options={"task": Task()})
    assert _differences(env.sim.model, fresh) == []
    # and the physics is the fresh physics: the same trajectory as a never-perturbed environment
    clean = am.make(robot, seed=0)
    actions = np.random.default_rng(1).uniform(-1, 1, (15, spec.action_dim))
    obs_a, _ = env.reset(seed=5, options={"task": Task()})
    obs_b, _ = clean.reset(seed=5)
    assert np.array_equal(obs_a, obs_b)
    for action in actions:
        assert np.array_equal(env.step(action)[0], clean.step(action)[0])


def test_apply_all_starts_from_nominal_each_time() -> None:
    """Applying a task twice does not compound (e.g. half torque twice is still half torque)."""
    sim, spec = make_sim("half_cheetah", [JointDamage(joints=(1,), scale=0.5), MassScale(scale=2.0)])
    gear, mass = sim.model.actuator_gear.copy(), sim.model.body_mass.copy()
    apply_all(sim, spec, [JointDamage(joints=(1,), scale=0.5), MassScale(scale=2.0)])
    assert np.array_equal(sim.model.actuator_gear, gear) and np.array_equal(sim.model.body_mass, mass)


# --- errors --------------------------------------------------------------------------------------------
def test_unknown_joint_names_the_allowed_joints() -> None:
    spec = am.load_robot("half_cheetah")
    with pytest.raises(ValueError) as info:
        check_for_robot(JointDamage(joints=("knee",)), spec)
    assert "knee" in str(info.value) and all(j in str(info.value) for j in spec.actuated_joints)
    with pytest.raises(ValueError, match="0..5"):
        make_sim("half_cheetah", [JointDamage(joints=(6,))])


def test_unknown_leg_names_the_allowed_legs() -> None:
    spec = am.load_robot("ant")
    with pytest.raises(ValueError) as info:
        check_for_robot(JointDamage(legs=("leg_5",)), spec)
    assert "leg_5" in str(info.value) and all(leg in str(info.value) for leg in spec.legs)


def test_perturbation_from_dict_errors() -> None:
    with pytest.raises(ConfigError) as info:
        perturbation_from_dict({"type": "gravity", "scale": 2}, "s.yaml", "at_reset[0]")
    assert "s.yaml: at_reset[0].type" in str(info.value)
    for kind in ("joint_damage", "payload", "friction", "mass", "damping", "slope"):
        assert kind in str(info.value)
    with pytest.raises(ConfigError, match=r"s.yaml: at_reset\[0\].sclae: unknown key; allowed keys: scale"):
        perturbation_from_dict({"type": "mass", "sclae": 2}, "s.yaml", "at_reset[0]")
    with pytest.raises(ConfigError, match="needs at least one entry"):
        perturbation_from_dict({"type": "joint_damage", "scale": 0.0}, "s.yaml", "p")
    with pytest.raises(ConfigError, match=r"p.offset_m.*a list of 3 items"):
        perturbation_from_dict({"type": "payload", "offset_m": [0, 0]}, "s.yaml", "p")
    assert perturbation_from_dict({"type": "joint_damage", "legs": ["front"]}) == JointDamage(legs=("front",))


# --- per-joint damping, per-body mass, reversed motors: both backends -----------------------------------------
BACKENDS = ["mujoco", pytest.param("pybullet", marks=pytest.mark.pybullet)]
FSHIN, BTHIGH, FFOOT, BFOOT = 3 + 4, 3 + 0, 3 + 5, 3 + 2  # qvel indices of the cheetah's joints (after the root)


def airborne_speeds(backend: str, perturbations: Sequence[object], qvel0: dict[int, float],
                    action: np.ndarray | None = None, steps: int = 3) -> np.ndarray:
    """The half_cheetah 1 m up in the air (no contact), joints at rest except ``qvel0`` (index -> rad/s),
    under ``perturbations``: qvel [nv] after ``steps`` control steps of ``action`` (default zero)."""
    env = am.make("half_cheetah", backend=backend)
    env.reset(seed=0, options={"task": Task(at_reset=tuple(perturbations))})
    sim = env.sim
    qpos, qvel = sim.reference_qpos(), np.zeros(sim.nv)
    qpos[1] += 1.0
    for index, speed in qvel0.items():
        qvel[index] = speed
    sim.set_state(qpos, qvel)
    for _ in range(steps):
        env.step(np.zeros(6) if action is None else action)
    out = sim.state()[1].copy()
    env.close()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("joint", ["fshin", 4])
def test_damping_on_one_joint_slows_that_joint_only(backend: str, joint: int | str) -> None:
    spin = {FSHIN: 5.0, BTHIGH: 5.0}
    nominal = airborne_speeds(backend, [], spin)
    rusted = airborne_speeds(backend, [DampingScale(joints=(joint,), scale=20.0)], spin)
    assert abs(rusted[FSHIN]) < 0.5 * abs(nominal[FSHIN])  # the rusted shin decelerates much faster
    assert rusted[BTHIGH] == pytest.approx(nominal[BTHIGH], abs=0.15 * abs(nominal[BTHIGH]))
    everywhere = airborne_speeds(backend, [DampingScale(scale=20.0)], spin)
    assert abs(everywhere[BTHIGH]) < 0.5 * abs(nominal[BTHIGH])  # default: every joint, as before


@pytest.mark.parametrize("backend", BACKENDS)
def test_mass_of_some_bodies_only(backend: str) -> None:
    env = am.make("half_cheetah", backend=backend)
    env.reset(seed=0, options={"task": Task()})
    nominal = env.sim.total_mass()
    env.reset(seed=0, options={"task": Task(at_reset=(MassScale(bodies=("ffoot",), scale=5.0),))})
    heavy_foot = env.sim.total_mass() - nominal
    env.reset(seed=0, options={"task": Task(at_reset=(MassScale(scale=5.0),))})
    assert 0 < heavy_foot < 0.2 * (env.sim.total_mass() - nominal)  # the foot is a small part of the robot
    push = np.zeros(6)
    push[5] = push[2] = 1.0  # both feet driven
    light = airborne_speeds(backend, [], {}, push, steps=1)
    heavy = airborne_speeds(backend, [MassScale(bodies=("ffoot",), scale=20.0)], {}, push, steps=1)
    # the same torque swings a 20x heavier front foot slower (the rotor's armature carries part of the
    # inertia, so not 20x slower), and the back foot as before
    assert heavy[FFOOT] < 0.9 * light[FFOOT]
    assert heavy[BFOOT] == pytest.approx(light[BFOOT], rel=0.01)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_body_is_refused_at_make_naming_the_allowed(backend: str) -> None:
    spec = ScenarioSpec(at_reset=[{"type": "mass", "bodies": {"choice": [["torso"], ["tail"]]}, "scale": 2.0}])
    with pytest.raises(ValueError, match=r"no body 'tail'.*allowed: torso, bthigh, bshin, bfoot, fthigh"):
        am.make("half_cheetah", scenario=spec, backend=backend)


def test_unknown_damping_joint_names_the_allowed_joints() -> None:
    with pytest.raises(ValueError, match="no joint 'knee'; allowed: indices 0..5 or names bthigh"):
        check_for_robot(DampingScale(joints=("knee",), scale=2.0), am.load_robot("half_cheetah"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_reversed_motor_turns_the_joint_the_other_way(backend: str) -> None:
    push = np.zeros(6)
    push[0] = 0.3  # bthigh, positive torque (one step: the joint stays clear of its limits)
    forward = airborne_speeds(backend, [], {}, push, steps=1)
    reversed_ = airborne_speeds(backend, [JointDamage(joints=("bthigh",), scale=-1.0)], {}, push, steps=1)
    assert forward[BTHIGH] > 1.0 and reversed_[BTHIGH] < -1.0
    assert reversed_[BTHIGH] == pytest.approx(-forward[BTHIGH], rel=0.05)  # mirror image (gravity aside)


@pytest.mark.parametrize("scale", [-1.5, 1.01, float("nan")])
def test_gear_scale_outside_minus_one_one_is_refused_saying_why(scale: float) -> None:
    with pytest.raises(ValueError, match=r"joint_damage.scale: .* allowed: \[-1, 1\].*stronger motor"):
        JointDamage(joints=(0,), scale=scale)
    with pytest.raises(ConfigError, match=r"allowed: \[-1, 1\]"):
        perturbation_from_dict({"type": "joint_damage", "joints": [0], "scale": scale}, "f.yaml", "p")
