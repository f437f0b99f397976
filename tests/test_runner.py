"""run_suite: the run folder it writes, and resuming an interrupted suite without re-running episodes."""
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.evaluation import LocalExecutor, load_suite, run_suite


@pytest.fixture()
def suite(tmp_path: Path, tiny_cartpole_checkpoint):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "seeds": [0], "episodes": 2, "episode_steps": 20, "robots": [
        {"robot": "cartpole", "scenarios": ["weak_motor_test", "tip_payload_test"],
         "controllers": [{"label": "MB", "checkpoint": str(tiny_cartpole_checkpoint)},
                         {"label": "PEARL", "checkpoint": "missing.pt", "optional": True}]}]}))
    return load_suite(path)


class Crashing(LocalExecutor):
    """Runs ``limit`` episodes, then dies as a killed process would."""

    def __init__(self, limit: int) -> None:
        super().__init__(1)
        self.limit, self.ran = limit, []

    def run(self, jobs):
        for i, result in enumerate(super().run(jobs)):
            if i == self.limit:
                raise KeyboardInterrupt
            self.ran.append(result["key"])
            yield result


def test_run_folder_holds_config_episodes_tables_and_plots(tmp_path: Path, suite) -> None:
    rows = run_suite(suite, tmp_path / "run", progress=False)
    assert [(r["scenario"], r["episodes"]) for r in rows] == [("tip_payload_test", 2), ("weak_motor_test", 2)]
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"suite.yaml", "episodes.jsonl", "episodes.csv", "episodes.json", "summary.md", "summary.csv",
            "summary.json", "returns.png"} <= files
    assert "PEARL seed 0" in (tmp_path / "run" / "summary.md").read_text()  # skipped, and said so


def test_an_interrupted_suite_resumes_without_rerunning_finished_episodes(tmp_path: Path, suite) -> None:
    out = tmp_path / "run"
    crashing = Crashing(limit=3)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, crashing, progress=False)
    assert len(crashing.ran) == 3
    second = Crashing(limit=100)
    resumed = run_suite(suite, out, second, progress=False)
    assert len(second.ran) == 1 and not set(second.ran) & set(crashing.ran)
    fresh = run_suite(suite, tmp_path / "fresh", progress=False)
    def numbers(rows):  # everything but the control rate (wall-clock)
        return [{k: v for k, v in r.items() if k != "control_hz"} for r in rows]

    assert repr(numbers(resumed)) == repr(numbers(fresh))  # the same numbers as an uninterrupted run
