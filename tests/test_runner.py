"""run_suite: the run folder it writes, and resuming an interrupted suite without re-running episodes."""
import json
import re
import shutil
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


def test_a_progress_line_per_episode_with_an_eta_also_without_a_terminal(tmp_path: Path, suite, capsys) -> None:
    run_suite(suite, tmp_path / "run")  # the default; pytest's captured stdout is not a terminal
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 4
    assert re.fullmatch(r"\[1/4\] cartpole/weak_motor_test MB seed 0 ep 0: return -?\d+\.\d \(\d+\.\d s\) "
                        r"ETA \d+ (s|min \d+ s)", lines[0]), lines[0]
    assert lines[-1].startswith("[4/4] cartpole/tip_payload_test MB seed 0 ep 1: ") and lines[-1].endswith("ETA 0 s")
    run_suite(suite, tmp_path / "run", progress=False)
    assert "[" not in capsys.readouterr().out


def test_a_checkpoint_replaced_at_the_same_path_is_evaluated_again(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    """Episodes used to be keyed by the checkpoint's path: a retrained model copied over the old file was
    reported with the old model's episodes."""
    from adaptive_mbrl.config import from_dict, to_dict
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import ControllerPreset
    from adaptive_mbrl.storage.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "model.pt"
    shutil.copyfile(tiny_cartpole_checkpoint, path)
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(yaml.safe_dump({"name": "t", "seeds": [0], "episodes": 2, "episode_steps": 15, "robots": [
        {"robot": "cartpole", "scenarios": ["weak_motor_test"],
         "controllers": [{"label": "MB", "checkpoint": str(path)}]}]}))
    suite = load_suite(suite_path)
    first = run_suite(suite, tmp_path / "run", progress=False)
    payload = load_checkpoint(path)
    preset = from_dict(ControllerPreset, payload["preset"], source="test")
    other = DynamicsModel(5, 1, preset.model, seed=1)  # another model of the same shape
    save_checkpoint(tmp_path / "other.pt", robot="cartpole", obs_dim=5, action_dim=1, preset=to_dict(preset),
                    model_state=other.state_dict())
    shutil.copyfile(tmp_path / "other.pt", path)
    second = run_suite(suite, tmp_path / "run", progress=False)
    assert second[0]["mean"] != first[0]["mean"]
    assert second[0]["mean"] == run_suite(suite, tmp_path / "fresh", progress=False)[0]["mean"]
    records = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 4 and len({r["checkpoint_sha256"] for r in records}) == 2
    assert all(r["key"].endswith("/" + r["checkpoint_sha256"][:16]) for r in records)


def test_an_interrupt_while_a_result_is_written_closes_the_executor_at_once(tmp_path: Path, suite,
                                                                            monkeypatch) -> None:
    """Ctrl-C landing in run_suite's own code (not inside the executor) used to leave the executor's
    generator open until interpreter exit, where the process pool waited for its whole queue."""
    import pytest

    from adaptive_mbrl.evaluation import LocalExecutor
    from adaptive_mbrl.evaluation.results import RunFolder

    closed: list[bool] = []

    class Recording(LocalExecutor):
        def run(self, jobs):
            try:
                yield from super().run(jobs)
            finally:
                closed.append(True)

    def interrupted(self, result) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(RunFolder, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "run", Recording(1), progress=False)
    assert closed == [True]  # closed before the exception left run_suite, while its traceback still lives


def test_a_suite_takes_over_the_episodes_another_folder_played(tmp_path: Path, suite) -> None:
    """``reuse``: a suite with one more episode than an earlier one plays only the new episodes, and reports
    the same numbers as a fresh run; episodes of a changed checkpoint are not taken over."""
    import dataclasses

    from adaptive_mbrl.evaluation.suite import expand_jobs
    small = dataclasses.replace(suite, episodes=1)
    run_suite(small, tmp_path / "small", progress=False)
    larger = Crashing(limit=100)
    rows = run_suite(suite, tmp_path / "larger", larger, progress=False, reuse=[tmp_path / "small"])
    assert sorted(larger.ran) == [f"cartpole/mujoco/{s}/MB/s0/e1" for s in ("tip_payload_test", "weak_motor_test")]
    fresh = run_suite(suite, tmp_path / "fresh", progress=False)
    numbers = lambda rs: [{k: v for k, v in r.items() if k != "control_hz"} for r in rs]  # noqa: E731
    assert repr(numbers(rows)) == repr(numbers(fresh))
    assert len(expand_jobs(suite)[0]) == 4 and len((tmp_path / "larger" / "episodes.jsonl").read_text().splitlines()) == 4

    retrained = tmp_path / "retrained.pt"  # same job keys, other bytes: nothing may be taken over
    shutil.copy(suite.robots[0].controllers[0].checkpoint, retrained)
    with open(retrained, "ab") as f:
        f.write(b"\0")
    other = dataclasses.replace(suite, robots=[dataclasses.replace(suite.robots[0], controllers=[
        dataclasses.replace(suite.robots[0].controllers[0], checkpoint=str(retrained))])])
    again = Crashing(limit=100)
    run_suite(other, tmp_path / "other", again, progress=False, reuse=[tmp_path / "fresh"])
    assert len(again.ran) == 4
