"""The adaptive-mbrl command line: eval writes a run folder, errors name the bad value and the allowed ones."""
import argparse
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.cli import ACTUATION_TEXT, TimedController, build_parser, main


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


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_command_has_help() -> None:
    commands = _subparsers(build_parser())
    assert {"list", "train", "eval", "run", "bench", "demo"} <= set(commands)
    for name, parser in commands.items():
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}: no help"


@pytest.mark.parametrize("argv, words", [
    (["--episodes", "0"], "argument --episodes: must be an integer >= 1, got '0'"),
    (["--steps", "-5"], "argument --steps: must be an integer >= 1"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1"),
    (["--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
    (["--print-every", "-1"], "argument --print-every: must be an integer >= 0"),
])
def test_run_refuses_out_of_range_numbers_up_front(argv: list[str], words: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--checkpoint", "shipped:half_cheetah/mb", *argv])
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_eval_refuses_zero_workers(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--suite", "quickstart", "--workers", "0"])
    assert info.value.code == 2 and "argument --workers: must be an integer >= 1" in capsys.readouterr().err


def test_run_prints_the_return_and_the_measured_control_rate(tiny_cartpole_checkpoint, capsys) -> None:
    assert main(["run", "--checkpoint", str(tiny_cartpole_checkpoint), "--steps", "6", "--print-every", "0",
                 "--episodes", "2", "--set", "planner.samples=8", "planner.elites=2"]) == 0
    out = capsys.readouterr().out
    assert out.count("return") == 3 and "mean return" in out
    rate = re.search(r"control rate ([0-9.]+) Hz \(act \+ observe, measured over 12 steps\)", out)
    assert rate and float(rate.group(1)) > 0


def test_run_set_names_a_bad_or_non_run_time_setting(tiny_cartpole_checkpoint, capsys) -> None:
    base = ["run", "--checkpoint", str(tiny_cartpole_checkpoint), "--steps", "2", "--set"]
    assert main(base + ["planner.sample=8"]) == 2
    assert "planner.sample: unknown key; allowed keys: kind, horizon, samples" in capsys.readouterr().err
    assert main(base + ["model.hidden_sizes=[8]"]) == 2
    assert "model.hidden_sizes: a trained controller can change only adapter and planner" in capsys.readouterr().err


def test_timed_controller_measures_act_and_observe() -> None:
    class Slow:
        def reset(self) -> None:
            pass

        def act(self, obs):
            time.sleep(0.01)
            return obs

        def observe(self, obs, action, next_obs) -> None:
            time.sleep(0.01)

    timed = TimedController(Slow())
    for _ in range(3):
        timed.observe(None, timed.act(None), None)
    assert timed.steps == 3 and timed.seconds >= 0.06 and timed.rate_hz() <= 3 / 0.06


def test_list_robots_takes_the_actuation_from_the_robot_file(capsys) -> None:
    import adaptive_mbrl as am

    assert main(["list", "robots"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for name in am.list_robots():
        spec = am.load_robot(name)
        assert ACTUATION_TEXT[spec.actuation.mode] in lines[name]
        if spec.actuation.mode != "torque":
            assert "torque" not in lines[name]
    assert "PD joint targets" in lines["a1"]


def test_list_controllers_shows_the_baselines_and_the_reference_presets(capsys) -> None:
    assert main(["list", "controllers"]) == 0
    out = capsys.readouterr().out
    assert "\nbaselines" in out and "\n  pearl " in out and "\n  rl2 " in out
    assert "\nreference" in out and "\n  reference/grbal_paper " in out
    assert "rebal_gated" not in out and "grbal_guarded" not in out


def _suite_file(tmp_path: Path, checkpoint: Path, **extra) -> Path:
    suite = tmp_path / "mine.yaml"
    suite.write_text(yaml.safe_dump({"name": "mine", "episode_steps": 5, "robots": [
        {"robot": "cartpole", "scenarios": ["nominal"],
         "controllers": [{"label": "MB", "checkpoint": str(checkpoint)},
                         {"label": "PEARL", "checkpoint": str(tmp_path / "pearl.pt"), "optional": True}]}],
        **extra}))
    return suite


def test_eval_notes_skipped_optional_controllers_and_refuses_results_of_other_settings(
        tmp_path: Path, tiny_cartpole_checkpoint, capsys) -> None:
    suite, out = _suite_file(tmp_path, tiny_cartpole_checkpoint), str(tmp_path / "run")
    assert main(["eval", "--suite", str(suite), "--out", out, "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "note: skipped optional PEARL seed 0 (cartpole): no checkpoint at" in captured.out
    assert "warning" not in captured.out.lower() and "error" not in captured.err.lower()
    # the same folder with changed run-time settings: its results are of other settings, refused
    assert main(["eval", "--suite", str(suite), "--out", out, "--workers", "1", "--quiet",
                 "--set", "planner.samples=8", "planner.elites=2"]) == 2
    assert "different suite configuration" in capsys.readouterr().err
    assert main(["eval", "--suite", str(suite), "--out", str(tmp_path / "run_small"), "--workers", "1", "--quiet",
                 "--set", "planner.samples=8", "planner.elites=2"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run_small" / "episodes.jsonl").read_text().splitlines()]
    assert [r["overrides"] for r in rows] == [["planner.samples=8", "planner.elites=2"]]


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


def test_train_sets_its_torch_thread_count_and_refuses_a_bad_one(tmp_path: Path, capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n))
    seen: list[int] = []
    with pytest.raises(SystemExit):
        main([*TINY_MB, "--out", str(tmp_path / "bad"), "--threads", "0"])
    assert "--threads: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and seen == []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert main([*TINY_MB, "--out", str(tmp_path / "run"), "--threads", "2", "--quiet"]) == 0
    assert seen == [2]


def test_train_resume_and_overwrite_exclude_each_other(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*TINY_MB, "--out", str(tmp_path / "run"), "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_demo_prints_a_line_per_episode_and_takes_a_smaller_budget(tmp_path: Path, capsys) -> None:
    tiny = ["training.random_steps=200", "training.iterations=0", "training.first_epochs=1", "model.hidden_sizes=[8]",
            "planner.samples=8", "planner.elites=2", "planner.iterations=1", "planner.horizon=3"]
    assert main(["demo", "--out", str(tmp_path / "demo"), "--episodes", "2", "--set", *tiny]) == 0
    out = capsys.readouterr().out
    for method in ("MB", "MB+DE"):
        assert f"  {method} episode 1/2: return" in out and f"  {method} episode 2/2: return" in out
    assert (tmp_path / "demo" / "model.pt").is_file()
    assert main(["demo", "--out", str(tmp_path / "demo2"), "--set", "planner.nope=1"]) == 2
    assert "planner.nope: unknown key" in capsys.readouterr().err


def test_train_prints_a_line_per_round_when_its_output_is_not_a_terminal(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-m", "adaptive_mbrl", "train", "--controller", "mb", "--robot", "cartpole",
            "--iterations", "1", "--random-steps", "200", "--steps-per-iteration", "200", "--out", str(tmp_path / "run"),
            "--set", "model.hidden_sizes=[8]", "training.first_epochs=1", "training.epochs=1",
            "planner.samples=8", "planner.elites=2", "planner.iterations=1", "planner.horizon=3"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^round 0/1, 200 env steps, ", done.stdout, flags=re.M)
    # the last round: its returns, then the time left (none: it was the last one)
    assert re.search(r"^round 1/1, 400 env steps, [0-9.]+ min, mean_return.*, ETA 0 s$", done.stdout,
                     flags=re.M)
