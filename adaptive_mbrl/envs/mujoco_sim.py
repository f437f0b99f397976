"""MuJoCo backend: physics edits go straight into the compiled ``MjModel`` arrays.

Nominal copies of every editable array are kept at load time; :meth:`MujocoSimulator.restore_nominal`
writes them back, so a reset returns the model exactly to what was loaded (tests compare the arrays).
Mass edits are followed by ``mj_setConst`` on a scratch ``MjData``, so derived quantities (subtree
masses, inertia-dependent constants) follow without touching the running state.
"""
from __future__ import annotations


import mujoco
import numpy as np

from adaptive_mbrl.envs.actuation import PdTargets
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.simulator import Simulator, slope_gravity

# Model arrays the perturbations may edit; restored from copies on every restore_nominal().
EDITABLE_ARRAYS = ("actuator_gear", "body_mass", "body_inertia", "body_ipos", "body_iquat", "dof_damping",
                   "geom_friction", "geom_rgba")
PAYLOAD_RADIUS_M = 0.05  # payload inertia: a solid sphere of this radius


def _ids(model: mujoco.MjModel, kind: mujoco.mjtObj, names: list[str], what: str) -> np.ndarray:
    ids = []
    for name in names:
        index = mujoco.mj_name2id(model, kind, name)
        if index < 0:
            raise ValueError(f"the MJCF has no {what} named {name!r}")
        ids.append(index)
    return np.array(ids, dtype=np.int64)


class MujocoSimulator(Simulator):
    """A robot from its MJCF in MuJoCo (see :class:`~adaptive_mbrl.envs.simulator.Simulator`)."""

    def __init__(self, robot: RobotSpec) -> None:
        self.robot = robot
        self.model = mujoco.MjModel.from_xml_path(str(robot.model_path("mujoco")))
        if abs(self.model.opt.timestep - robot.timestep) > 1e-12:
            raise ValueError(f"robot {robot.name!r}: robot.yaml timestep {robot.timestep} differs from the "
                             f"MJCF's {self.model.opt.timestep}")
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        self.frame_skip = robot.frame_skip
        self.dt = self.model.opt.timestep * self.frame_skip
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self._actuators = self._actuators_of(robot.actuated_joints)
        identity = np.array_equal(self._actuators, np.arange(self.nu))
        self._ctrl_index = slice(None) if identity else self._actuators  # slice writes are faster
        self._payload = int(_ids(self.model, mujoco.mjtObj.mjOBJ_BODY, [robot.payload_body], "body")[0])
        self._payload_geoms = np.flatnonzero(self.model.geom_bodyid == self._payload)
        self._robot_bodies = np.array([b for b in range(1, self.model.nbody) if b != self._payload])
        self._friction_geoms = _ids(self.model, mujoco.mjtObj.mjOBJ_GEOM,
                                    [robot.ground_geom, *robot.contact_geoms], "geom")
        joint_ids = _ids(self.model, mujoco.mjtObj.mjOBJ_JOINT, robot.actuated_joints, "joint")
        if robot.joint_damping:  # motor damping from robot.yaml, on top of the MJCF's
            self.model.dof_damping[self.model.jnt_dofadr[joint_ids]] += robot.joint_damping
        # qpos / qvel addresses of the actuated joints, read by the PD loop of pd_target actuation
        self._joint_qpos, self._joint_qvel = self.model.jnt_qposadr[joint_ids], self.model.jnt_dofadr[joint_ids]
        self._pd = self._pd_loop(robot)
        self._nominal = {name: getattr(self.model, name).copy() for name in EDITABLE_ARRAYS}
        self._nominal_gravity = self.model.opt.gravity.copy()
        self._payload_ipos0 = self.model.body_ipos[self._payload].copy()
        self._renderer: mujoco.Renderer | None = None

    def _actuators_of(self, joints: list[str]) -> np.ndarray:
        """Actuator index driving each joint (action order)."""
        joint_ids = _ids(self.model, mujoco.mjtObj.mjOBJ_JOINT, joints, "joint")
        driven = {int(j): a for a, j in enumerate(self.model.actuator_trnid[:, 0])}
        missing = [name for name, j in zip(joints, joint_ids) if int(j) not in driven]
        if missing:
            raise ValueError(f"the MJCF has no actuator on joint {missing[0]!r}")
        return np.array([driven[int(j)] for j in joint_ids], dtype=np.int64)

    def _pd_loop(self, robot: RobotSpec) -> PdTargets | None:
        """The PD loop of ``pd_target`` actuation (None for torque actuation)."""
        if robot.actuation.mode != "pd_target":
            return None
        reference = np.asarray(robot.init_joint_pos or self.model.qpos0[self._joint_qpos], dtype=float)
        gear = self.model.actuator_gear[self._actuators, 0].copy()
        return PdTargets(robot.actuation, reference, gear)

    # --- state -------------------------------------------------------------------------------------
    def reference_qpos(self) -> np.ndarray:
        return self.model.qpos0.copy()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.qpos, self.data.qvel

    def step(self, action: np.ndarray) -> None:
        if self._pd is None:
            self.data.ctrl[self._ctrl_index] = action
            mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
            return
        targets = self._pd.targets(np.asarray(action, dtype=float))
        for _ in range(self.frame_skip):   # PD at the engine rate; damage scales the gear, not the target
            q, qd = self.data.qpos[self._joint_qpos], self.data.qvel[self._joint_qvel]
            self.data.ctrl[self._ctrl_index] = self._pd.effort(targets, q, qd)
            mujoco.mj_step(self.model, self.data)

    # --- physics edits -------------------------------------------------------------------------------
    def restore_nominal(self) -> None:
        for name, array in self._nominal.items():
            getattr(self.model, name)[:] = array
        self.model.opt.gravity[:] = self._nominal_gravity
        # Derived constants (body_subtreemass, dof_M0, actuator_acc0, ...) must follow the restored arrays too.
        mujoco.mj_setConst(self.model, self._scratch)

    def scale_actuators(self, indices: list[int], scale: float) -> None:
        self.model.actuator_gear[self._actuators[indices], 0] *= scale

    def add_payload(self, mass_kg: float, offset_m: tuple[float, float, float]) -> None:
        # The payload body becomes the rigid union of what it carries now and a solid sphere of mass_kg at
        # offset_m: total mass, common centre of mass and the full inertia tensor about it (parallel-axis
        # terms included, so several payloads far apart resist rotation as much as separate masses would).
        if mass_kg <= 0:
            return
        body = self._payload
        mass0, com0 = float(self.model.body_mass[body]), self.model.body_ipos[body].copy()
        rot0 = np.zeros(9)
        mujoco.mju_quat2Mat(rot0, self.model.body_iquat[body])
        rot0 = rot0.reshape(3, 3)
        inertia0 = rot0 @ np.diag(self.model.body_inertia[body]) @ rot0.T
        com1 = self._payload_ipos0 + np.asarray(offset_m, dtype=float)
        inertia1 = 0.4 * mass_kg * PAYLOAD_RADIUS_M ** 2 * np.eye(3)
        total = mass0 + mass_kg
        com = (mass0 * com0 + mass_kg * com1) / total

        def about_com(mass: float, inertia: np.ndarray, pos: np.ndarray) -> np.ndarray:
            d = pos - com
            return inertia + mass * (d @ d * np.eye(3) - np.outer(d, d))

        principal, axes = np.linalg.eigh(about_com(mass0, inertia0, com0) + about_com(mass_kg, inertia1, com1))
        if np.linalg.det(axes) < 0:
            axes[:, 0] = -axes[:, 0]  # a proper rotation
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, axes.flatten())
        self.model.body_mass[body] = total
        self.model.body_ipos[body] = com
        self.model.body_inertia[body] = principal
        self.model.body_iquat[body] = quat
        self.model.geom_rgba[self._payload_geoms, 3] = 1.0  # show it when rendering

    def scale_friction(self, scale: float) -> None:
        self.model.geom_friction[self._friction_geoms, 0] *= scale

    def body_names(self) -> list[str]:
        return [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, int(b)) for b in self._robot_bodies]

    def scale_mass(self, scale: float, bodies: list[str] | None = None) -> None:
        ids = self._robot_bodies
        if bodies is not None:
            allowed = self.check_body_names(bodies)
            ids = self._robot_bodies[[allowed.index(b) for b in bodies]]
        self.model.body_mass[ids] *= scale
        self.model.body_inertia[ids] *= scale

    def scale_damping(self, scale: float, joints: list[int] | None = None) -> None:
        if joints is None:
            self.model.dof_damping[:] *= scale
        else:
            self.model.dof_damping[self._joint_qvel[joints]] *= scale

    def editable(self, name: str) -> np.ndarray:
        """The live ``MjModel`` array ``name`` (e.g. ``dof_frictionloss``), registered so that
        :meth:`restore_nominal` writes its nominal values back. Call it from a perturbation's ``apply``."""
        if name not in self._nominal:
            array = getattr(self.model, name, None)
            if not isinstance(array, np.ndarray) or name.startswith("_"):
                raise ValueError(f"MjModel has no array {name!r}; allowed: an MjModel array attribute, "
                                 "e.g. dof_frictionloss, jnt_range, geom_size")
            # restore_nominal() ran before this perturbation's apply(), so the array is nominal now
            self._nominal[name] = array.copy()
        return getattr(self.model, name)

    def set_slope(self, degrees: float) -> None:
        self.model.opt.gravity[:] = slope_gravity(degrees, float(np.linalg.norm(self._nominal_gravity)))

    def commit_edits(self) -> None:
        mujoco.mj_setConst(self.model, self._scratch)

    # --- inspection, rendering -------------------------------------------------------------------------
    def total_mass(self) -> float:
        return float(self.model.body_mass[1:].sum())

    def render(self, width: int = 480, height: int = 360) -> np.ndarray:
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        camera = "track" if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0 else -1
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
