"""Data folders (adaptive_mbrl/paths.py) resolve wherever the process runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_mbrl import paths

REPO = Path(__file__).resolve().parents[1]


def test_data_dirs_exist_and_hold_the_data() -> None:
    assert (paths.robots_dir() / "half_cheetah" / "robot.yaml").is_file()
    assert (paths.sim_configs_dir() / "scenarios" / "half_cheetah.yaml").is_file()
    assert paths.robots_dir().is_absolute()


def test_unknown_data_folder_names_where_it_looked() -> None:
    with pytest.raises(FileNotFoundError) as info:
        paths.data_dir("no_such_folder")
    assert "no_such_folder" in str(info.value) and "_data" in str(info.value)


def test_data_resolves_from_another_working_directory(tmp_path: Path) -> None:
    """A process started elsewhere (cwd = a temp dir) finds the robots and scenarios and builds an env."""
    code = (
        "import json, adaptive_mbrl as am\n"
        "spec = am.load_robot('half_cheetah')\n"
        "env = am.make('half_cheetah', scenario='crippled_joint_test', seed=0)\n"
        "obs, info = env.reset()\n"
        "print(json.dumps({'robots': am.list_robots(), 'folder': spec.folder, 'obs': len(obs),"
        " 'scenarios': am.list_scenarios('ant')}))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"half_cheetah", "ant", "cartpole"} <= set(out["robots"])
    assert Path(out["folder"]) == REPO / "robots" / "half_cheetah"
    assert out["obs"] == 17 and "crippled_leg_test" in out["scenarios"]
    assert not any(tmp_path.iterdir())  # nothing was written to the working directory


def test_a_wheel_ships_the_data_folders(tmp_path) -> None:
    """A non-editable install carries robots/, controllers/ and sim_configs/ inside the package."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True, capture_output=True, cwd=tmp_path)
    wheel, = tmp_path.glob("adaptive_mbrl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("adaptive_mbrl/_data/robots/half_cheetah/robot.yaml",
                     "adaptive_mbrl/_data/robots/half_cheetah/half_cheetah.xml",
                     "adaptive_mbrl/_data/robots/ant/ant_bullet.xml",
                     "adaptive_mbrl/_data/controllers/mb.yaml",
                     "adaptive_mbrl/_data/sim_configs/scenarios/half_cheetah.yaml",
                     "adaptive_mbrl/paths.py"):
        assert required in names, required


def test_shipped_references_resolve_to_the_checkpoint_files() -> None:
    assert "half_cheetah/mb" in paths.shipped_checkpoints()
    shipped = paths.resolve_checkpoint("shipped:half_cheetah/mb")
    assert shipped == paths.controllers_dir() / "checkpoints" / "half_cheetah" / "mb.pt" and shipped.is_file()
    assert paths.existing_checkpoint("shipped:half_cheetah/mb") == shipped
    assert paths.resolve_checkpoint("runs/x_s{seed}/model.pt", 2) == Path("runs/x_s2/model.pt")
    assert paths.resolve_checkpoint("runs/x_s{seed}/model.pt") == Path("runs/x_s{seed}/model.pt")


def test_a_missing_checkpoint_names_the_shipped_ones_or_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint 'shipped:half_cheetah/nope'; allowed: .*"
                                                "shipped:half_cheetah/mb"):
        paths.existing_checkpoint("shipped:half_cheetah/nope")
    with pytest.raises(FileNotFoundError, match="missing.pt' does not exist"):
        paths.existing_checkpoint(tmp_path / "missing.pt")
