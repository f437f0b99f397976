"""Videos of a controller's episode on the MuJoCo backend.

::

    from adaptive_mbrl.rendering import record_episode
    total, rewards = record_episode(ctrl, "half_cheetah", "joint_break_midepisode", "cheetah.mp4", seed=0)

One frame per control step (frame 0 is the reset state, frame k the state after step k), played at
``1 / dt`` frames per second (20 fps for the shipped robots), so the video runs in real time. By default the
camera tracks the robot's torso from the side (an ``mjCAMERA_TRACKING`` camera whose look-at point follows
the torso's subtree centre of mass), so a running half_cheetah stays in frame; ``camera=`` picks a camera
of the MJCF instead (e.g. ``"track"``). ``.mp4`` needs imageio and imageio-ffmpeg, ``.gif`` imageio
(``pip install "adaptive_mbrl[video]"``).

Headless machines (no X display): MuJoCo picks its OpenGL backend once, when ``mujoco`` is first
imported, from the ``MUJOCO_GL`` environment variable. Set ``MUJOCO_GL=egl`` (GPU or Mesa EGL; osmesa is
the slow software fallback where EGL is missing) before Python starts::

    MUJOCO_GL=egl adaptive-mbrl run ... --video run.mp4

As a convenience, importing this module on Linux with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` nor
``MUJOCO_GL`` set, *before* anything has imported ``mujoco``, sets ``MUJOCO_GL=egl`` (``import
adaptive_mbrl`` does not import mujoco; building an environment does). If mujoco was imported first with
no usable backend, :func:`record_episode` raises a ``RuntimeError`` that says to set ``MUJOCO_GL=egl``.
"""
from __future__ import annotations

import contextlib
import os
import sys


def _default_headless_gl() -> None:
    """``MUJOCO_GL=egl`` on a display-less Linux when nobody chose a backend and mujoco is not loaded yet."""
    if ("mujoco" not in sys.modules and sys.platform.startswith("linux") and not os.environ.get("MUJOCO_GL")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        os.environ["MUJOCO_GL"] = "egl"


_default_headless_gl()  # before mujoco is imported below

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

VIDEO_SUFFIXES = (".mp4", ".gif")
CAMERA_AZIMUTH_DEG = 90.0     # look along +y: a side view of robots that run along +x
CAMERA_ELEVATION_DEG = -15.0  # slightly from above
CAMERA_DISTANCE_SCALE = 4.0   # camera distance = this x the robot's radius around its torso (m)
MIN_CAMERA_DISTANCE_M = 1.5

if TYPE_CHECKING:  # the contract (adaptive_mbrl.contract imports torch; not needed at run time here)
    from adaptive_mbrl.contract import Controller


def record_episode(controller: Controller, robot: str, scenario: str, path: str | Path, seed: int = 0,
                   width: int = 640, height: int = 480, max_steps: int | None = None,
                   camera: str | int | None = None, backend: str = "mujoco",
                   print_every: int = 0) -> tuple[float, list[float]]:
    """Run one episode of ``controller`` on ``robot`` / ``scenario`` and write it as a video to ``path``.

    Args:
        controller: a :class:`~adaptive_mbrl.control.Controller` (``reset`` / ``act(obs) -> action`` /
            ``observe(obs, action, next_obs)``): an AdaptiveController, a RandomController, a baseline's.
        robot, scenario, seed: as for :func:`adaptive_mbrl.make` (the same seed gives the same episode as
            ``adaptive-mbrl run`` / :func:`adaptive_mbrl.evaluation.run_episode`).
        path: output file; ``.mp4`` (H.264, via imageio-ffmpeg) or ``.gif``. Written to a temporary
            name beside it and renamed when complete.
        width, height: frame size in pixels (mp4: rounded up to even sizes by the encoder).
        max_steps: stop after this many control steps (default: the whole episode).
        camera: ``None``: a camera tracking the torso from the side; a name or index of a camera in the
            robot's MJCF (``-1``: MuJoCo's default free camera).
        backend: must be ``"mujoco"`` (the PyBullet backend has no MuJoCo scene to render).
        print_every: print the reward every this many steps, and dynamics changes (0: silent).

    Returns:
        ``(return, rewards)``: the sum of rewards and the reward of each step, as ``run_episode`` does.

    Raises:
        ValueError: an unsupported suffix, backend, size, or an unknown camera.
        ImportError: imageio (or imageio-ffmpeg for mp4) is not installed.
        RuntimeError: MuJoCo cannot create an offscreen OpenGL context (set ``MUJOCO_GL=egl``).
    """
    import adaptive_mbrl as am
    from adaptive_mbrl.evaluation.episode import run_episode

    path = Path(path)
    _check_request(path, backend, width, height)
    default_steps = am.load_robot(robot).episode_steps
    with contextlib.ExitStack() as stack:
        parts: dict[str, Any] = {}

        def on_step(env: Any, step: int) -> None:
            if step == 0:  # after the reset: set up the camera, the renderer and the file
                model, data = env.sim.model, env.sim.data  # the MujocoSimulator's live MjModel / MjData
                parts["camera"] = _camera(model, data, env.robot.torso, camera)
                parts["renderer"] = _renderer(model, width, height)
                stack.callback(parts["renderer"].close)
                parts["writer"] = stack.enter_context(_VideoWriter(path, fps=1.0 / env.dt))
            parts["writer"].append(_frame(parts["renderer"], env.sim.data, parts["camera"]))

        record = run_episode(controller, robot, scenario, seed, backend, print_every,
                             episode_steps=None if max_steps is None else min(max_steps, default_steps),
                             on_step=on_step)
    return record.total, record.rewards


def _check_request(path: Path, backend: str, width: int, height: int) -> None:
    """Fail before simulating anything: suffix, backend, frame size, and the video libraries."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"video path {str(path)!r}: unsupported suffix {path.suffix!r}; "
                         f"allowed: {', '.join(VIDEO_SUFFIXES)}")
    if backend != "mujoco":
        raise ValueError(f"videos are rendered with MuJoCo; backend {backend!r} is not supported "
                         "(allowed: 'mujoco')")
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got width={width}, height={height}")
    _imageio(path.suffix.lower())


def _imageio(suffix: str) -> Any:
    """The imageio module, after checking that the writer for ``suffix`` is installed."""
    hint = 'install the video extra: pip install "adaptive_mbrl[video]"'
    try:
        import imageio
    except ImportError as err:
        raise ImportError(f"writing videos needs imageio; {hint}") from err
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as err:
            raise ImportError(f"writing .mp4 videos needs imageio-ffmpeg; {hint}") from err
    return imageio


def _camera(model: mujoco.MjModel, data: mujoco.MjData, torso: str,
            camera: str | int | None) -> mujoco.MjvCamera | str | int:
    """What ``Renderer.update_scene`` takes as ``camera``: a validated MJCF camera, or a tracking camera."""
    if camera is None:
        return tracking_camera(model, data, torso)
    if isinstance(camera, str):
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"the MJCF has no camera {camera!r}; allowed: None (tracking), "
                             f"{', '.join(repr(n) for n in names) or 'no named cameras'}")
    elif not -1 <= camera < model.ncam:
        raise ValueError(f"camera index {camera} is out of range; allowed: -1..{model.ncam - 1}")
    return camera


def tracking_camera(model: mujoco.MjModel, data: mujoco.MjData, body: str) -> mujoco.MjvCamera:
    """A side-view camera whose look-at point follows ``body``'s subtree centre of mass.

    Its distance (m) is ``CAMERA_DISTANCE_SCALE`` times the robot's radius around that point in the
    current state of ``data`` (so the whole robot fits in the frame).
    """
    body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    if body_id < 0:
        raise ValueError(f"the MJCF has no body {body!r}")
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    cam.trackbodyid = body_id
    cam.azimuth, cam.elevation = CAMERA_AZIMUTH_DEG, CAMERA_ELEVATION_DEG
    cam.distance = max(MIN_CAMERA_DISTANCE_M, CAMERA_DISTANCE_SCALE * _robot_radius(model, data, body_id))
    cam.lookat[:] = data.subtree_com[body_id]
    return cam


def _robot_radius(model: mujoco.MjModel, data: mujoco.MjData, body_id: int) -> float:
    """Largest distance (m) from ``body_id``'s subtree COM to the surface of a geom of the robot."""
    robot_geoms = np.flatnonzero(model.geom_bodyid > 0)  # world geoms (floor) excluded
    if robot_geoms.size == 0:
        return 0.0
    offsets = np.linalg.norm(data.geom_xpos[robot_geoms] - data.subtree_com[body_id], axis=1)
    return float(np.max(offsets + model.geom_rbound[robot_geoms]))


def _renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    """An offscreen renderer of ``width`` x ``height`` pixels (grows the model's offscreen buffer if needed)."""
    visual = model.vis.global_
    visual.offwidth, visual.offheight = max(visual.offwidth, width), max(visual.offheight, height)
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # GL failures surface as mujoco.FatalError, RuntimeError or ImportError
        chosen = os.environ.get("MUJOCO_GL")
        backend = f"MUJOCO_GL={chosen}" if chosen else "MUJOCO_GL unset: glfw, which needs a display"
        raise RuntimeError(
            f"MuJoCo could not create an offscreen OpenGL context ({backend}): {err}. "
            "On a machine without a display, set MUJOCO_GL=egl in the environment before Python starts "
            "(it is read once, when mujoco is first imported).") from err


def _frame(renderer: mujoco.Renderer, data: mujoco.MjData, camera: mujoco.MjvCamera | str | int) -> np.ndarray:
    """RGB image [height, width, 3] uint8 of the current state."""
    renderer.update_scene(data, camera=camera)
    return renderer.render()


class _VideoWriter:
    """Frames [H, W, 3] uint8 in, a video file out; written to a temporary file and renamed on success.

    mp4 frames stream to ffmpeg as they come; GIF frames are kept and written at the end.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.suffix = path.suffix.lower()
        self._imageio = _imageio(self.suffix)
        self._partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        self._frames: list[np.ndarray] = []
        self._stream: Any = None

    def __enter__(self) -> "_VideoWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.suffix == ".mp4":
            # macro_block_size=2: H.264 (yuv420p) only needs even sizes; 16 would rescale 480x360 frames.
            self._stream = self._imageio.get_writer(self._partial, format="FFMPEG", mode="I", fps=self.fps,
                                                    codec="libx264", macro_block_size=2)
        return self

    def append(self, frame: np.ndarray) -> None:
        if self._stream is not None:
            self._stream.append_data(frame)
        else:
            self._frames.append(frame.copy())

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self._stream is not None:
            self._stream.close()
        elif exc_type is None:
            # pillow's GIF writer takes the frame duration in ms; loop=0 repeats forever.
            self._imageio.v3.imwrite(self._partial, np.stack(self._frames), duration=1000.0 / self.fps,
                                     loop=0)
        if exc_type is None:
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)
