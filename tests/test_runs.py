"""storage.runs: opening a run folder (fresh, resume, overwrite, refuse), strict progress.json, RunSettings."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.storage.runs import (RunSettings, config_differences, open_run_folder, read_progress, run_config,
                                        write_progress)

PRESET = {"name": "p", "training": {"iterations": 2, "random_steps": 10}}


def _config(**training) -> dict:
    return run_config({**PRESET, "training": {**PRESET["training"], **training}}, RunSettings("cartpole"))


def _finished_run(run_dir: Path) -> None:
    open_run_folder(run_dir, _config())
    write_progress(run_dir, {"iteration": 2, "env_steps": 30, "history": [{"iteration": 1, "mean_return": 1.5}]})
    (run_dir / "model.pt").write_bytes(b"weights")


def test_a_fresh_folder_is_created_with_its_config(tmp_path: Path) -> None:
    assert open_run_folder(tmp_path / "new" / "run", _config()) is None
    assert yaml.safe_load((tmp_path / "new" / "run" / "config.yaml").read_text()) == _config()
    assert open_run_folder(tmp_path / "empty_ok", _config()) is None  # an empty existing folder is fresh too


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _finished_run(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(FileExistsError, match="already holds a run") as info:
        open_run_folder(run, _config(random_steps=99))
    for way in ("--resume", "another --out", "--overwrite"):
        assert way in str(info.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused open changed files"


def test_overwrite_replaces_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _finished_run(run)
    (run / "sub").mkdir()
    (run / "sub" / "x").write_text("x")
    assert open_run_folder(run, _config(random_steps=99), overwrite=True) is None
    assert [p.name for p in run.iterdir()] == ["config.yaml"]
    assert yaml.safe_load((run / "config.yaml").read_text())["preset"]["training"]["random_steps"] == 99


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a run folder"):
        open_run_folder(tmp_path, _config(), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_returns_the_progress_and_may_only_change_the_round_count(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _finished_run(run)
    assert open_run_folder(run, _config(iterations=5), resume=True)["env_steps"] == 30
    with pytest.raises(ValueError, match="resume needs the same preset and run settings"):
        open_run_folder(run, _config(random_steps=99), resume=True)
    with pytest.raises(ValueError, match="exclude each other"):
        open_run_folder(run, _config(), resume=True, overwrite=True)


def test_a_refused_resume_names_what_differs_and_the_set_that_restores_it(tmp_path: Path) -> None:
    """After a preset's default changed (e.g. pets_rebal's context gate), the refusal says which field and how
    to continue the run as it was started."""
    run = tmp_path / "run"
    _finished_run(run)
    with pytest.raises(ValueError) as info:
        open_run_folder(run, _config(random_steps=99), resume=True)
    message = str(info.value)
    assert "preset.training.random_steps: run 10, now 99" in message
    assert message.endswith("add: --set training.random_steps=10")
    # a run setting (not a preset field) is named, without a --set hint
    other_seed = run_config({**PRESET}, RunSettings("cartpole", seed=3))
    with pytest.raises(ValueError, match="run.seed: run 0, now 3") as info:
        open_run_folder(run, other_seed, resume=True)
    assert "--set" not in str(info.value)


def test_resume_ignores_a_reworded_preset_description(tmp_path: Path) -> None:
    """The description is free text: rewording it (as when a preset's default changes) must not block a run
    that keeps its settings, while the changed setting itself still does."""
    run = tmp_path / "run"
    _finished_run(run)
    reworded = run_config({**PRESET, "description": "reworded"}, RunSettings("cartpole"))
    assert open_run_folder(run, reworded, resume=True)["env_steps"] == 30
    with pytest.raises(ValueError, match="random_steps"):
        open_run_folder(run, run_config({**PRESET, "description": "reworded",
                                         "training": {**PRESET["training"], "random_steps": 99}},
                                        RunSettings("cartpole")), resume=True)


def test_config_differences_walks_nested_dicts() -> None:
    saved = {"preset": {"adapter": {"context_gate": False, "window": 16}, "model": {"sizes": [8]}}}
    now = {"preset": {"adapter": {"context_gate": True, "window": 16}, "model": {"sizes": [8], "new": 1}}}
    assert config_differences(saved, now) == [("preset.adapter.context_gate", False, True),
                                              ("preset.model.new", None, 1)]
    assert config_differences(saved, saved) == []


def test_resume_normalises_the_saved_preset(tmp_path: Path) -> None:
    """A field added to the preset since the run started compares at its default."""
    run = tmp_path / "run"
    _finished_run(run)
    with_default = {**PRESET, "new_field": 0}
    normalize = lambda data: {**data, "new_field": data.get("new_field", 0)}  # noqa: E731
    config = run_config(with_default, RunSettings("cartpole"))
    assert open_run_folder(run, config, resume=True, normalize_preset=normalize) is not None


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_progress_json_is_strict_json(tmp_path: Path) -> None:
    doc = {"iteration": 0, "env_steps": 5, "wall_clock_s": 1.0,
           "history": [{"iteration": 0, "mean_return": float("nan"), "val_loss": float("inf"), "episodes": 0}]}
    write_progress(tmp_path, doc)
    strict = _strict((tmp_path / "progress.json").read_text())
    assert strict["history"][0] == {"iteration": 0, "mean_return": None, "val_loss": None, "episodes": 0}
    assert read_progress(tmp_path) == strict
    assert math.isnan(doc["history"][0]["mean_return"]), "the caller's document was changed"
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "iteration,mean_return,val_loss,episodes"


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_run_settings_refuse_a_seed_that_is_not_a_non_negative_integer(seed) -> None:
    with pytest.raises(ValueError, match="seed: must be an integer >= 0"):
        RunSettings("cartpole", seed=seed)


def test_round_line_names_round_steps_time_returns_and_losses() -> None:
    from adaptive_mbrl.storage.runs import round_line

    doc = {"iteration": 3, "env_steps": 20000, "wall_clock_s": 246.0,
           "history": [{"iteration": 3, "env_steps": 20000, "mean_return": 812.25, "val_loss": 0.0123, "episodes": 5}]}
    assert round_line(doc) == "round 3, 20000 env steps, 4.1 min, mean_return 812.2, val_loss 0.0123"
    assert round_line({"iteration": 0, "env_steps": 0, "history": []}) == "round 0, 0 env steps, 0.0 min"


def test_round_line_gives_the_rounds_split_into_collection_and_fit() -> None:
    from adaptive_mbrl.storage.runs import round_line

    row = {"iteration": 3, "mean_return": 812.25, "collect_s": 150.4, "fit_s": 51.6, "collect_steps_per_s": 9.8e3}
    line = round_line({"iteration": 3, "env_steps": 20000, "wall_clock_s": 246.0, "history": [row]})
    assert line == "round 3, 20000 env steps, 4.1 min, mean_return 812.2, round: collect 150 s + fit 52 s"


def test_round_line_estimates_the_time_left_from_the_latest_rounds() -> None:
    """Round 0 (random data and the long first fit: 600 s) is left out; rounds 2-4 took 300 s each, round 1
    took 900 s and is older than the last three, so 35 rounds left take 35 x 300 s = 175 min, written as
    the suites' episode lines write their ETA."""
    from adaptive_mbrl.storage.runs import round_line, seconds_left

    stamps = [600.0, 1500.0, 1800.0, 2100.0, 2400.0]
    doc = {"iteration": 4, "env_steps": 25000, "wall_clock_s": 2400.0,
           "history": [{"iteration": i, "mean_return": 1.0, "wall_clock_s": s} for i, s in enumerate(stamps)]}
    assert seconds_left(doc, 39) == pytest.approx(175.0 * 60)
    assert round_line(doc, 39) == "round 4/39, 25000 env steps, 40.0 min, mean_return 1, ETA 2 h 55 min"
    assert round_line(doc) == "round 4, 25000 env steps, 40.0 min, mean_return 1"  # no final round: as before
    assert seconds_left(doc, 4) == 0.0
    # one round only: its duration includes the random data, so no estimate yet
    first = {"iteration": 0, "env_steps": 5000, "wall_clock_s": 600.0, "history": doc["history"][:1]}
    assert seconds_left(first, 39) is None and round_line(first, 39).endswith("0 min, mean_return 1")
    # two rounds: round 1's duration alone
    second = {"iteration": 1, "env_steps": 10000, "wall_clock_s": 1500.0, "history": doc["history"][:2]}
    assert seconds_left(second, 3) == pytest.approx(2 * 900.0)


def test_metrics_csv_takes_columns_that_later_rows_add(tmp_path: Path) -> None:
    """A run resumed by a version that records more per round (here its wall-clock split) keeps one table."""
    doc = {"iteration": 2, "env_steps": 30, "history": [{"iteration": 1, "mean_return": 1.5},
                                                        {"iteration": 2, "mean_return": 2.5, "fit_s": 3.0}]}
    write_progress(tmp_path, doc)
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"iteration": "1", "mean_return": "1.5", "fit_s": ""},
                    {"iteration": "2", "mean_return": "2.5", "fit_s": "3.0"}]


def test_phase_seconds_splits_a_round_into_its_named_phases() -> None:
    from adaptive_mbrl.storage.runs import ROUND_PHASES, phase_seconds

    assert phase_seconds(10.0, 14.5, 16.0) == {"collect_s": 4.5, "fit_s": 1.5}
    split = phase_seconds(10.0, 14.5, 16.0, "update_s")
    assert split == {"collect_s": 4.5, "update_s": 1.5} and set(split) <= set(ROUND_PHASES)
    with pytest.raises(ValueError, match="second: 'train_s'; allowed: fit_s, update_s"):
        phase_seconds(0.0, 1.0, 2.0, "train_s")
