"""record_episode: mp4 / GIF videos of a controller's episode, one frame per control step, robot in view."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

import adaptive_mbrl as am
from adaptive_mbrl.config import from_dict
from adaptive_mbrl.control import AdaptiveController, RandomController
from adaptive_mbrl.envs.objectives import robot_objective
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.presets import ControllerPreset
from adaptive_mbrl.rendering import record_episode

imageio = pytest.importorskip("imageio")
pytest.importorskip("imageio_ffmpeg")

STEPS = 20


@pytest.fixture(scope="module", autouse=True)
def gl_available() -> None:
    """Skip (with the reason) where no offscreen OpenGL context can be made, e.g. no EGL on a headless box."""
    model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
    try:
        mujoco.Renderer(model, height=8, width=8).close()
    except Exception as err:  # any GL failure means: rendering cannot be tested on this machine
        pytest.skip(f"no offscreen OpenGL (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {err}")


def untrained_controller(robot: str = "half_cheetah") -> AdaptiveController:
    """An untrained 1x32 model with a small CEM planner: cheap, no training needed."""
    preset = from_dict(ControllerPreset, {
        "name": "tiny_mb", "model": {"hidden_sizes": [32]}, "adapter": {"kind": "none", "window": 4},
        "planner": {"kind": "cem", "samples": 16, "horizon": 4, "iterations": 2, "elites": 4}}, source="test")
    spec = am.load_robot(robot)
    objective = robot_objective(robot)
    env = am.make(robot)
    obs_dim = env.observation_space.shape[0]
    env.close()
    model = DynamicsModel(obs_dim, spec.action_dim, preset.model, seed=0)
    return AdaptiveController(model, preset, objective.reward, objective.terminated, seed=0)


def read_frames(path: Path) -> np.ndarray:
    """All frames of a video [T, H, W, 3] uint8."""
    return np.stack([np.asarray(f)[..., :3] for f in imageio.v2.mimread(path, memtest=False)])


def test_mp4_has_a_frame_per_step_and_the_robot_moves(tmp_path: Path) -> None:
    path = tmp_path / "out" / "cheetah.mp4"  # the folder is created
    total, rewards = record_episode(untrained_controller(), "half_cheetah", "nominal", path, seed=0,
                                    width=64, height=64, max_steps=STEPS)
    assert len(rewards) == STEPS and np.isfinite(rewards).all() and total == pytest.approx(sum(rewards))
    frames = read_frames(path)
    assert frames.shape == (STEPS + 1, 64, 64, 3)  # the reset state, then one frame per control step
    assert all(frame.std() > 5.0 for frame in frames)  # not blank
    moved = np.abs(frames[0].astype(float) - frames[-1].astype(float)).mean()
    assert moved > 2.0, f"first and last frames are nearly identical (mean abs difference {moved:.2f})"
    assert not list(tmp_path.glob("out/.*partial*"))  # the temporary file was renamed


def test_rewards_match_a_plain_env_loop_and_gif_plays_at_the_control_rate(tmp_path: Path) -> None:
    path = tmp_path / "cheetah.gif"
    total, rewards = record_episode(RandomController(6, seed=3), "half_cheetah", "crippled_joint_test", path,
                                    seed=5, width=32, height=24, max_steps=6, camera="track")
    env = am.make("half_cheetah", "crippled_joint_test", seed=5)
    obs, _ = env.reset()
    ctrl = RandomController(6, seed=3)
    expected = [env.step(ctrl.act(obs))[1] for _ in range(6)]
    assert rewards == expected and total == pytest.approx(sum(expected))
    frames = imageio.v3.imread(path)
    assert frames.shape[:3] == (7, 24, 32)
    assert imageio.v3.immeta(path, index=0)["duration"] == pytest.approx(1000 * env.dt)  # ms per frame
    env.close()


def test_bad_requests_fail_before_simulating(tmp_path: Path) -> None:
    ctrl = RandomController(6, seed=0)
    with pytest.raises(ValueError, match=r"unsupported suffix '\.avi'; allowed: \.mp4, \.gif"):
        record_episode(ctrl, "half_cheetah", "nominal", tmp_path / "x.avi", max_steps=2)
    with pytest.raises(ValueError, match="backend 'pybullet' is not supported"):
        record_episode(ctrl, "half_cheetah", "nominal", tmp_path / "x.mp4", max_steps=2, backend="pybullet")
    with pytest.raises(ValueError, match="no camera 'nope'; allowed: None \\(tracking\\), 'track'"):
        record_episode(ctrl, "half_cheetah", "nominal", tmp_path / "x.mp4", max_steps=2, camera="nope")
    assert list(tmp_path.iterdir()) == []


def test_missing_imageio_names_the_video_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)  # makes `import imageio` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "adaptive_mbrl\[video\]"'):
        record_episode(RandomController(6), "half_cheetah", "nominal", tmp_path / "x.mp4", max_steps=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the headless default is for Linux")
def test_headless_default_and_the_error_when_mujoco_came_first(tmp_path: Path) -> None:
    """Without a display or MUJOCO_GL: importing the module first picks EGL; importing mujoco first (its
    default GL needs a display) ends in an error that says to set MUJOCO_GL=egl."""
    code = """if True:
        import sys
        {first}
        from adaptive_mbrl.control import RandomController
        from adaptive_mbrl.rendering import record_episode
        try:
            record_episode(RandomController(1), "cartpole", "nominal", sys.argv[1], width=16, height=16, max_steps=1)
            print("OK", os.environ.get("MUJOCO_GL"))
        except RuntimeError as err:
            print("ERROR", err)
    """
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY",
                                                            "WAYLAND_DISPLAY")}
    outputs = {}
    for first in ("import os", "import os, mujoco"):
        result = subprocess.run([sys.executable, "-c", code.format(first=first), str(tmp_path / "x.mp4")],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        outputs[first] = result.stdout
    assert "OK egl" in outputs["import os"]
    assert "ERROR" in outputs["import os, mujoco"] and "set MUJOCO_GL=egl" in outputs["import os, mujoco"]
