"""PyBullet backend: one ``p.DIRECT`` client per simulator, physics edits through ``changeDynamics``.

What the engine does not do on its own is done here, so the MJCF robots behave as in MuJoCo:

* Joint stiffness and damping (MJCF attributes pybullet ignores) are applied as torques
  ``-k q - d qdot`` before every engine step, next to the actuator torques ``gear * scale * action``.
* Joint armature (reflected rotor inertia) is modelled by a flywheel link ``rotor_<joint>`` on the parent
  body (in the ``*_bullet.xml`` variants) geared ``1:ROTOR_GEAR`` to the joint with a ``JOINT_GEAR``
  constraint; its inertia ``armature / ROTOR_GEAR^2`` adds ``armature`` to the joint's diagonal inertia.
* Friction: pybullet multiplies the two frictions of a contact (MuJoCo takes the larger), so the ground is
  set to 1 and each robot link keeps its MJCF friction; :meth:`scale_friction` scales the robot's links.
* Payload: an extra collision-free body welded to the payload link by a ``JOINT_FIXED`` constraint.

States follow MuJoCo conventions: free base ``qpos = [x y z, qw qx qy qz, joints]`` of the base *link* frame
(pybullet reports the base's centre-of-mass frame; converted here), ``qvel = [v_world (3), w_body (3),
joints]``; planar or fixed-base robots have only joint coordinates.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

from adaptive_mbrl.envs.actuation import PdTargets
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.simulator import Simulator, slope_gravity

ROTOR_GEAR = 30.0            # flywheel turns per joint turn (matches the *_bullet.xml files)
PAYLOAD_RADIUS_M = 0.05      # payload inertia: a solid sphere of this radius (as in the MuJoCo backend)
CONSTRAINT_FORCE_N = 1e6     # max force of the payload weld and rotor gears
MAX_JOINT_VELOCITY = 1e4     # rad/s or m/s; pybullet's default clamp (100) would cap the geared rotors
MOVABLE = (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)


def _quat_wxyz(q_xyzw) -> np.ndarray:
    return np.array((q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]))


def _quat_xyzw(q_wxyz) -> tuple[float, float, float, float]:
    return float(q_wxyz[1]), float(q_wxyz[2]), float(q_wxyz[3]), float(q_wxyz[0])


class _MjcfInfo:
    """What the MJCF says that pybullet's importer drops: inertias, joint stiffness/damping/armature and
    the body of every geom (pybullet names links after bodies, not geoms)."""

    def __init__(self, path: Path) -> None:
        root = ET.parse(path).getroot()
        self.inertia: dict[str, tuple[float, list[float]]] = {}
        self.joints: dict[str, tuple[float, float, float]] = {}  # name -> (stiffness, damping, armature)
        self.geom_body: dict[str, str] = {}
        for body in root.iter("body"):
            name = body.get("name", "")
            inertial = body.find("inertial")
            if inertial is not None and inertial.get("diaginertia"):
                self.inertia[name] = (float(inertial.get("mass", 0.0)),
                                      [float(v) for v in inertial.get("diaginertia").split()])
            for joint in body.findall("joint"):
                self.joints[joint.get("name", "")] = tuple(float(joint.get(k, 0.0)) for k in
                                                           ("stiffness", "damping", "armature"))
            for geom in body.findall("geom"):
                self.geom_body[geom.get("name", "")] = name
        for geom in root.find("worldbody").findall("geom"):
            self.geom_body[geom.get("name", "")] = geom.get("name", "")


class PybulletSimulator(Simulator):
    """A robot from its MJCF or URDF in PyBullet (see :class:`~adaptive_mbrl.envs.simulator.Simulator`)."""

    def __init__(self, robot: RobotSpec) -> None:
        self.robot = robot
        self.frame_skip = robot.frame_skip
        self.dt = robot.timestep * robot.frame_skip
        self._client: BulletClient | None = BulletClient(connection_mode=p.DIRECT)
        c = self._client
        c.setPhysicsEngineParameter(fixedTimeStep=robot.timestep, numSubSteps=0,
                                    deterministicOverlappingPairs=1)
        self._gravity0 = np.array((0.0, 0.0, -9.81))
        c.setGravity(*self._gravity0)
        self._load(robot)
        self._index_joints(robot)
        self._setup_dynamics()
        self._payloads: list[tuple[int, int]] = []   # (constraint id, body id)
        self._payload_specs: list[tuple[float, tuple[float, float, float]]] = []  # (kg, offset m)
        self._payload_mass = 0.0
        self._nominal = {link: c.getDynamicsInfo(self.body, link) for link in self._links}
        self._gear0 = np.array(robot.actuator_gears or [1.0] * self.nu, dtype=float)
        self._gear = self._gear0.copy()
        self._damping = self._damping0.copy()
        self._qpos0 = self._read_qpos()
        if robot.init_joint_pos:
            self._qpos0[self._act_qpos] = robot.init_joint_pos
        self._pd = (PdTargets(robot.actuation, self._qpos0[self._act_qpos], self._gear0)
                    if robot.actuation.mode == "pd_target" else None)
        self._saved = c.saveState()

    # --- loading -------------------------------------------------------------------------------------
    def _load(self, robot: RobotSpec) -> None:
        c, model = self._client, robot.models["pybullet"]
        path = robot.model_path("pybullet")
        self._mjcf: _MjcfInfo | None = None
        if model.format == "mjcf":
            self._mjcf = _MjcfInfo(path)
            ids = c.loadMJCF(str(path))
            self.body = next(i for i in ids if c.getNumJoints(i) > 0)
            grounds = [i for i in ids if c.getBodyInfo(i)[0].decode() == robot.ground_geom]
            if not grounds:
                raise ValueError(f"{path}: no ground geom named {robot.ground_geom!r}")
            self.ground = grounds[0]
        else:
            self.ground = c.loadURDF(str(Path(pybullet_data.getDataPath()) / "plane.urdf"))
            self.body = c.loadURDF(str(path), (0.0, 0.0, model.base_height),
                                   flags=p.URDF_USE_INERTIA_FROM_FILE)
        self._links = [-1] + list(range(c.getNumJoints(self.body)))
        self._link_names = {c.getBodyInfo(self.body)[0].decode(): -1}
        self._link_names.update({c.getJointInfo(self.body, j)[12].decode(): j for j in self._links[1:]})
        self.free = c.getDynamicsInfo(self.body, -1)[0] > 0.0
        info = c.getDynamicsInfo(self.body, -1)
        self._base_inertial = (info[3], info[4])   # base centre-of-mass frame in the link frame

    def _link(self, name: str, what: str) -> int:
        if name not in self._link_names:
            raise ValueError(f"robot {self.robot.name!r}: pybullet model has no {what} {name!r}")
        return self._link_names[name]

    def _index_joints(self, robot: RobotSpec) -> None:
        c = self._client
        infos = [c.getJointInfo(self.body, j) for j in self._links[1:]]
        by_name = {i[1].decode(): i for i in infos}
        movable = [i for i in infos if i[2] in MOVABLE]
        self._joints = [i[0] for i in movable if not i[1].decode().startswith("rotor_")]
        self._rotors = {i[1].decode()[len("rotor_"):]: i[0] for i in movable if i[1].decode().startswith("rotor_")}
        names = [by_name_key for by_name_key in by_name if by_name[by_name_key][0] in self._joints]
        missing = [j for j in robot.actuated_joints if j not in names]
        if missing:
            raise ValueError(f"robot {robot.name!r}: pybullet model has no joint {missing[0]!r}")
        self._act = np.array([by_name[j][0] for j in robot.actuated_joints])
        base = 7 if self.free else 0
        self._act_qpos = np.array([base + self._joints.index(j) for j in self._act])
        self.nq = base + len(self._joints)
        self.nv = self.nq - 1 if self.free else self.nq
        self.nu = len(self._act)
        mj = self._mjcf.joints if self._mjcf else {}
        spec = np.array([mj.get(n, (0.0, 0.0, 0.0)) for n in names]).reshape(-1, 3)
        self._stiffness, self._damping0 = spec[:, 0], spec[:, 1].copy()
        if robot.joint_damping:  # motor damping from robot.yaml, on top of the model file's
            self._damping0[self._act_qpos - base] += np.asarray(robot.joint_damping, dtype=float)
        self._armature = {n: a for n, (k, d, a) in zip(names, spec)}
        payload = robot.payload_body
        self._payload_link = self._link(payload, "payload body")
        self._rotor_links = set(self._rotors.values()) | {
            link for name, link in self._link_names.items() if name.startswith("rotor_")}
        self._friction_links = [self._link(self._mjcf.geom_body.get(g, g) if self._mjcf else g, "contact link")
                                for g in robot.contact_geoms]
        self._friction_links = sorted(set(self._friction_links))

    def _setup_dynamics(self) -> None:
        c, b = self._client, self.body
        for link in self._links:
            c.changeDynamics(b, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                             maxJointVelocity=MAX_JOINT_VELOCITY)
        if self._mjcf:  # pybullet recomputes inertia from the geoms: write the MJCF's back
            for name, (mass, diag) in self._mjcf.inertia.items():
                if name in self._link_names:
                    c.changeDynamics(b, self._link_names[name], mass=mass, localInertiaDiagonal=diag)
        c.changeDynamics(self.ground, -1, lateralFriction=1.0)
        for name, rotor in self._rotors.items():
            joint = next(j for j in self._joints if c.getJointInfo(b, j)[1].decode() == name)
            armature = self._armature.get(name, 0.0)
            c.changeDynamics(b, rotor, localInertiaDiagonal=[armature / ROTOR_GEAR ** 2] * 3)
            cid = c.createConstraint(b, rotor, b, joint, p.JOINT_GEAR, (0, 0, 1), (0, 0, 0), (0, 0, 0))
            c.changeConstraint(cid, gearRatio=-ROTOR_GEAR, maxForce=CONSTRAINT_FORCE_N)
        self._motor_joints = self._joints + list(self._rotors.values())
        c.setJointMotorControlArray(b, self._motor_joints, p.VELOCITY_CONTROL,
                                    forces=[0.0] * len(self._motor_joints))
        self._rotor_of = [self._rotors.get(c.getJointInfo(b, j)[1].decode(), -1) for j in self._joints]

    # --- state -------------------------------------------------------------------------------------
    def _read_qpos(self) -> np.ndarray:
        return self.state()[0]

    def reference_qpos(self) -> np.ndarray:
        return self._qpos0.copy()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        c, b = self._client, self.body
        self._detach_payloads()       # restoreState needs the bodies that existed when it was saved
        c.restoreState(self._saved)   # clears contacts and solver warm starts; model edits are kept
        qpos, qvel = np.asarray(qpos, dtype=float), np.asarray(qvel, dtype=float)
        base = 0
        if self.free:
            base = 7
            orn = _quat_xyzw(qpos[3:7])
            com_pos, com_orn = c.multiplyTransforms(qpos[:3].tolist(), orn, *self._base_inertial)
            c.resetBasePositionAndOrientation(b, com_pos, com_orn)
            rot = np.array(c.getMatrixFromQuaternion(orn)).reshape(3, 3)
            omega = rot @ qvel[3:6]
            offset = rot @ np.asarray(self._base_inertial[0])
            c.resetBaseVelocity(b, (qvel[:3] + np.cross(omega, offset)).tolist(), omega.tolist())
        vbase = 6 if self.free else 0
        for k, (joint, rotor) in enumerate(zip(self._joints, self._rotor_of)):
            c.resetJointState(b, joint, qpos[base + k], qvel[vbase + k])
            if rotor >= 0:
                c.resetJointState(b, rotor, 0.0, ROTOR_GEAR * qvel[vbase + k])
        self._payloads = [self._attach(*spec) for spec in self._payload_specs]

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        c, b = self._client, self.body
        joints = c.getJointStates(b, self._joints)
        q = np.array([s[0] for s in joints])
        qd = np.array([s[1] for s in joints])
        if not self.free:
            return q, qd
        com_pos, com_orn = c.getBasePositionAndOrientation(b)
        inv_pos, inv_orn = c.invertTransform(*self._base_inertial)
        pos, orn = c.multiplyTransforms(com_pos, com_orn, inv_pos, inv_orn)
        v_com, omega = (np.array(v) for v in c.getBaseVelocity(b))
        rot = np.array(c.getMatrixFromQuaternion(orn)).reshape(3, 3)
        v = v_com - np.cross(omega, rot @ np.asarray(self._base_inertial[0]))
        return (np.concatenate((pos, _quat_wxyz(orn), q)), np.concatenate((v, rot.T @ omega, qd)))

    def step(self, action: np.ndarray) -> None:
        c, b = self._client, self.body
        action = np.asarray(action, dtype=float)
        targets = self._pd.targets(action) if self._pd else None
        torque_act = None if self._pd else self._gear * action
        passive = np.any(self._stiffness) or np.any(self._damping)
        damping = self._stable_damping() if np.any(self._damping > self._damping0) else self._damping
        torque = np.zeros(len(self._joints))
        act_cols = self._act_qpos - (7 if self.free else 0)
        for _ in range(self.frame_skip):
            if passive or self._pd:
                states = c.getJointStates(b, self._joints)
                q = np.array([s[0] for s in states])
                qd = np.array([s[1] for s in states])
            torque[:] = 0.0
            if self._pd:   # PD at the engine rate; damage scales the gear, the motor's strength
                torque[act_cols] = self._gear * self._pd.effort(targets, q[act_cols], qd[act_cols])
            else:
                torque[act_cols] = torque_act
            if passive:
                torque -= self._stiffness * q + damping * qd
            c.setJointMotorControlArray(b, self._joints, p.TORQUE_CONTROL, forces=torque.tolist())
            c.stepSimulation()

    def _stable_damping(self) -> np.ndarray:
        """Joint damping [joints] capped at ``M_jj / timestep`` (M: the mass matrix now), the most an explicit
        damping torque can take before it reverses the joint within one engine step and blows up. Only used
        when a perturbation raised the damping above nominal (e.g. a rusted joint, damping x 20): the cap
        then stops the joint within a step, as the strong damping would."""
        c, b = self._client, self.body
        movable = [j for j in self._links[1:] if c.getJointInfo(b, j)[2] in MOVABLE]
        positions = [s[0] for s in c.getJointStates(b, movable)]
        diag = np.diag(np.asarray(c.calculateMassMatrix(b, positions)))
        offset = 6 if self.free else 0
        inertia = np.array([diag[offset + movable.index(j)] for j in self._joints])
        return np.minimum(self._damping, inertia / self.robot.timestep)

    # --- physics edits -------------------------------------------------------------------------------
    def restore_nominal(self) -> None:
        c, b = self._client, self.body
        self._detach_payloads()
        self._payload_specs, self._payload_mass = [], 0.0
        for link, info in self._nominal.items():
            c.changeDynamics(b, link, mass=info[0], localInertiaDiagonal=info[2], lateralFriction=info[1])
        c.setGravity(*self._gravity0)
        self._gear = self._gear0.copy()
        self._damping = self._damping0.copy()

    def scale_actuators(self, indices: list[int], scale: float) -> None:
        self._gear[indices] *= scale

    def add_payload(self, mass_kg: float, offset_m: tuple[float, float, float]) -> None:
        if mass_kg <= 0:
            return
        self._payload_specs.append((float(mass_kg), tuple(map(float, offset_m))))
        self._payloads.append(self._attach(*self._payload_specs[-1]))
        self._payload_mass += mass_kg

    def _attach(self, mass_kg: float, offset_m: tuple[float, float, float]) -> tuple[int, int]:
        """Weld a point mass (sphere inertia) at ``offset_m`` in the payload link's frame, moving with it."""
        c, b, link = self._client, self.body, self._payload_link
        info = c.getDynamicsInfo(b, link)
        inv_pos, inv_orn = c.invertTransform(info[3], info[4])
        local, _ = c.multiplyTransforms(inv_pos, inv_orn, offset_m, (0, 0, 0, 1))  # in the link's COM frame
        if link == -1:
            com_pos, com_orn = c.getBasePositionAndOrientation(b)
            v, w = c.getBaseVelocity(b)
        else:
            state = c.getLinkState(b, link, computeLinkVelocity=1, computeForwardKinematics=1)
            com_pos, com_orn, v, w = state[0], state[1], state[6], state[7]
        world, _ = c.multiplyTransforms(com_pos, com_orn, local, (0, 0, 0, 1))
        body = c.createMultiBody(baseMass=mass_kg, baseCollisionShapeIndex=-1, basePosition=world,
                                 baseOrientation=com_orn)
        c.changeDynamics(body, -1, localInertiaDiagonal=[0.4 * mass_kg * PAYLOAD_RADIUS_M ** 2] * 3,
                         linearDamping=0.0, angularDamping=0.0)
        lever = np.asarray(world) - np.asarray(com_pos)
        c.resetBaseVelocity(body, (np.asarray(v) + np.cross(w, lever)).tolist(), list(w))
        cid = c.createConstraint(b, link, body, -1, p.JOINT_FIXED, (0, 0, 0), local, (0, 0, 0))
        c.changeConstraint(cid, maxForce=CONSTRAINT_FORCE_N)
        return cid, body

    def _detach_payloads(self) -> None:
        for cid, body in self._payloads:
            self._client.removeConstraint(cid)
            self._client.removeBody(body)
        self._payloads = []

    def scale_friction(self, scale: float) -> None:
        for link in self._friction_links:
            friction = self._client.getDynamicsInfo(self.body, link)[1]
            self._client.changeDynamics(self.body, link, lateralFriction=friction * scale)

    def body_names(self) -> list[str]:
        return [name for name, link in self._link_names.items() if link in self._mass_links()]

    def _mass_links(self) -> list[int]:
        """Links whose mass scale_mass() scales: not the rotors, not massless helper links, and not a payload
        body of its own (payloads are separate bodies here; a robot that carries them on its torso, like the
        A1's trunk, keeps the torso)."""
        own_payload = self.robot.payload_body != self.robot.torso
        return [link for link in self._links if link not in self._rotor_links and self._nominal[link][0] > 0
                and not (own_payload and link == self._payload_link)]

    def scale_mass(self, scale: float, bodies: list[str] | None = None) -> None:
        c, b = self._client, self.body
        links = self._mass_links()
        if bodies is not None:
            self.check_body_names(bodies)
            links = [self._link_names[name] for name in dict.fromkeys(bodies)]
        for link in links:
            info = c.getDynamicsInfo(b, link)
            if info[0] > 0:
                c.changeDynamics(b, link, mass=info[0] * scale,
                                 localInertiaDiagonal=[v * scale for v in info[2]])

    def scale_damping(self, scale: float, joints: list[int] | None = None) -> None:
        if joints is None:
            self._damping *= scale
        else:
            self._damping[self._act_qpos[joints] - (7 if self.free else 0)] *= scale

    def set_slope(self, degrees: float) -> None:
        self._client.setGravity(*slope_gravity(degrees, float(np.linalg.norm(self._gravity0))))

    # --- inspection, rendering, lifetime ---------------------------------------------------------------
    def dynamics_info(self) -> dict[int, tuple]:
        """``getDynamicsInfo`` of every robot link (-1 = base), for tests and debugging."""
        return {link: self._client.getDynamicsInfo(self.body, link) for link in self._links}

    def total_mass(self) -> float:
        c, b = self._client, self.body
        robot = sum(c.getDynamicsInfo(b, link)[0] for link in self._links if link not in self._rotor_links)
        return float(robot + self._payload_mass)

    def render(self, width: int = 480, height: int = 360) -> np.ndarray:
        c = self._client
        target = c.getBasePositionAndOrientation(self.body)[0] if self.free else \
            c.getLinkState(self.body, self._joints[0])[0]
        view = c.computeViewMatrixFromYawPitchRoll(target, 3.0, 0.0, -15.0, 0.0, 2)
        proj = c.computeProjectionMatrixFOV(45.0, width / height, 0.05, 50.0)
        image = c.getCameraImage(width, height, view, proj, renderer=p.ER_TINY_RENDERER)[2]
        return np.asarray(image, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None
