"""Build hook: ship the top-level data folders inside the wheel.

The user fixed the repository layout (``robots/``, ``controllers/``, ``sim_configs/`` at the top level).
A non-editable install must still find them from any working directory, so ``build_py`` copies them into
``adaptive_mbrl/_data/``; :mod:`adaptive_mbrl.paths` looks there first and falls back to the source tree.
``benchmarks/`` is not shipped: the scripts measure a source checkout (they print its git revision) and
``adaptive-mbrl bench`` runs them from one.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("robots", "controllers", "sim_configs")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "adaptive_mbrl" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # a folder dropped from DATA_FOLDERS leaves no stale copy
        for folder in DATA_FOLDERS:
            source = root / folder
            if source.is_dir():
                shutil.copytree(source, target / folder, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
