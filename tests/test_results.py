"""Suite run folders: durable appends, torn lines after a crash, and refusing a different suite."""
import hashlib
from pathlib import Path

import pytest

from adaptive_mbrl.config import from_dict
from adaptive_mbrl.evaluation.results import RunFolder
from adaptive_mbrl.evaluation.suite import SuiteConfig


def _suite(episodes: int = 1) -> SuiteConfig:
    return from_dict(SuiteConfig, {"name": "t", "episodes": episodes, "robots": [
        {"robot": "cartpole", "scenarios": ["nominal"], "controllers": [{"label": "MB", "checkpoint": "x.pt"}]}]})


def test_appended_episodes_are_read_back_by_key(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, _suite())
    folder.append({"key": "a", "return": 1.0})
    folder.append({"key": "b", "return": 2.0})
    again = RunFolder(tmp_path, _suite())
    assert {k: v["return"] for k, v in again.finished().items()} == {"a": 1.0, "b": 2.0}
    assert (tmp_path / "suite.yaml").exists()


def test_a_torn_last_line_is_ignored_and_the_next_append_still_reads(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, _suite())
    folder.append({"key": "a", "return": 1.0})
    with open(tmp_path / "episodes.jsonl", "a") as f:
        f.write('{"key": "b", "ret')  # a crash in the middle of writing episode b
    assert set(folder.finished()) == {"a"}
    folder.append({"key": "c", "return": 3.0})
    assert set(RunFolder(tmp_path, _suite()).finished()) == {"a", "c"}


def test_results_of_another_suite_configuration_are_refused(tmp_path: Path) -> None:
    RunFolder(tmp_path, _suite(1)).append({"key": "a"})
    with pytest.raises(ValueError, match="different suite") as refused:
        RunFolder(tmp_path, _suite(2))
    assert "--out" in str(refused.value) and f"delete {tmp_path}" in str(refused.value)
    assert "episodes: run 1, now 2" in str(refused.value)


def test_a_refusal_names_the_differing_fields_inside_lists_and_caps_the_list(tmp_path: Path) -> None:
    """The changed field is named by its path through the suite's lists (robot 0, controller 0), and a
    suite changed everywhere lists the first few fields and counts the rest."""
    from adaptive_mbrl.evaluation.results import LISTED_DIFFERENCES, describe_differences
    from adaptive_mbrl.config import to_dict
    RunFolder(tmp_path, _suite()).append({"key": "a"})
    moved = from_dict(SuiteConfig, {"name": "t", "episodes": 1, "robots": [
        {"robot": "cartpole", "scenarios": ["nominal"], "controllers": [{"label": "MB", "checkpoint": "y.pt"}]}]})
    with pytest.raises(ValueError, match="robots.0.controllers.0.checkpoint: run 'x.pt', now 'y.pt'"):
        RunFolder(tmp_path, moved)
    many = {f"k{i}": i for i in range(LISTED_DIFFERENCES + 3)}
    text = describe_differences({k: -1 for k in many}, many)
    assert text.count(": run -1, now ") == LISTED_DIFFERENCES and text.endswith("and 3 more")
    assert "missing or unreadable" in describe_differences(None, to_dict(moved))


def test_no_resume_refuses_a_folder_with_results(tmp_path: Path) -> None:
    RunFolder(tmp_path, _suite()).append({"key": "a"})
    with pytest.raises(FileExistsError, match="another --out"):
        RunFolder(tmp_path, _suite(), resume=False)


def test_episode_keys_hold_the_checkpoints_content(tmp_path: Path) -> None:
    from adaptive_mbrl.evaluation.results import checkpoint_digests, content_key, file_sha256
    from adaptive_mbrl.evaluation.suite import EpisodeJob

    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"model one")
    second.write_bytes(b"model one")
    assert file_sha256(first) == hashlib.sha256(b"model one").hexdigest() == file_sha256(second)
    jobs = [EpisodeJob("cartpole", "mujoco", "nominal", "MB", str(first), None, 0, e, e, None) for e in range(3)]
    digests = checkpoint_digests(jobs)
    assert digests == {str(first): file_sha256(first)}
    key = content_key(jobs[0].key, digests[str(first)])
    assert key == f"{jobs[0].key}/{digests[str(first)][:16]}"
    first.write_bytes(b"model two")
    assert content_key(jobs[0].key, file_sha256(first)) != key
