"""The adaptive-mbrl command line: eval writes a run folder, errors name the bad value and the allowed ones."""
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.cli import main


def test_list_shows_suites_and_benchmarks(capsys) -> None:
    assert main(["list", "suites"]) == 0
    assert "quickstart" in capsys.readouterr().out
    assert main(["list", "benchmarks"]) == 0
    assert "control_rate" in capsys.readouterr().out


def test_eval_runs_a_suite_file_and_prints_the_summary(tmp_path: Path, tiny_cartpole_checkpoint, capsys) -> None:
    suite = tmp_path / "mine.yaml"
    suite.write_text(yaml.safe_dump({"name": "mine", "episode_steps": 15, "robots": [
        {"robot": "cartpole", "scenarios": ["nominal"],
         "controllers": [{"label": "MB", "checkpoint": str(tiny_cartpole_checkpoint)}]}]}))
    assert main(["eval", "--suite", str(suite), "--out", str(tmp_path / "run"), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| nominal | MB | 1 |" in out and (tmp_path / "run" / "summary.csv").exists()


def test_errors_name_the_bad_value_and_the_allowed_ones(capsys) -> None:
    assert main(["eval", "--suite", "nope"]) == 2
    assert "unknown suite 'nope'; allowed: " in capsys.readouterr().err
    assert main(["bench", "fastest"]) == 2
    assert "unknown benchmark 'fastest'; allowed: adaptation" in capsys.readouterr().err
    assert main(["run", "--checkpoint", "shipped:cartpole/nothing"]) == 2
    assert "no shipped checkpoint 'shipped:cartpole/nothing'; allowed: " in capsys.readouterr().err


def test_train_applies_set_overrides_to_the_trained_preset(tmp_path: Path, capsys) -> None:
    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--controller", "mb", "--robot", "cartpole", "--out", str(out), "--quiet",
                 "--iterations", "0", "--random-steps", "200", "--set", "model.hidden_sizes=[8]",
                 "training.first_epochs=1", "planner.samples=16"]) == 0
    saved = load_checkpoint(out / "model.pt")["preset"]
    assert saved["model"]["hidden_sizes"] == [8] and saved["training"]["first_epochs"] == 1
    assert saved["planner"]["samples"] == 16
    assert main(["train", "--controller", "mb", "--robot", "cartpole", "--out", str(out), "--set",
                 "model.hiden_sizes=[8]"]) == 2
    assert "model.hiden_sizes: unknown key; allowed keys: hidden_sizes" in capsys.readouterr().err
    assert main(["train", "--controller", "mb", "--robot", "cartpole", "--out", str(out), "--iterations", "-1"]) == 2
    assert "training.iterations: -1 is out of range" in capsys.readouterr().err


TINY_MB = ["train", "--controller", "mb", "--robot", "cartpole", "--quiet", "--iterations", "0",
           "--random-steps", "200", "--set", "model.hidden_sizes=[8]", "training.first_epochs=1"]


def test_train_refuses_an_existing_run_and_names_the_ways_on(tmp_path: Path, capsys) -> None:
    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    out = tmp_path / "run"
    assert main([*TINY_MB, "--out", str(out)]) == 0
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([*TINY_MB, "--out", str(out), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "another --out" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished, "the refused run changed the folder"

    assert main([*TINY_MB, "--out", str(out), "--resume"]) == 0  # nothing left to do: the run stays
    assert load_checkpoint(out / "model.pt")["meta"]["seed"] == 0

    (out / "stale.txt").write_text("from the old run")
    assert main([*TINY_MB, "--out", str(out), "--seed", "3", "--overwrite"]) == 0
    assert load_checkpoint(out / "model.pt")["meta"]["seed"] == 3
    assert not (out / "stale.txt").exists()


def test_train_progress_json_is_strict_json(tmp_path: Path) -> None:
    """200 random steps finish no 500-step cart-pole episode: the mean return is NaN in memory, null on disk."""
    import json

    out = tmp_path / "run"
    assert main([*TINY_MB, "--out", str(out)]) == 0

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    progress = json.loads((out / "progress.json").read_text(), parse_constant=refuse)
    assert progress["history"][0]["mean_return"] is None


def test_train_refuses_a_negative_seed_before_creating_the_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*TINY_MB, "--out", str(out), "--seed", "-1"]) == 2
    assert "seed: must be an integer >= 0" in capsys.readouterr().err
    assert not out.exists()


def test_train_resume_and_overwrite_exclude_each_other(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*TINY_MB, "--out", str(tmp_path / "run"), "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
