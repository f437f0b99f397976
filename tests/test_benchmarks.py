"""The scripts of benchmarks/ at tiny budgets: each runs as ``python benchmarks/<name>.py`` (its own process,
cwd = the repository root), prints the provenance line first, then the table the results pages quote,
with finite numbers; ``adaptive-mbrl bench`` runs them from a source checkout only.

Training budgets: cart-pole, 200 random steps, 16-unit models, a handful of (meta-)updates, a 16-sample
planner, 20-40-step evaluation episodes.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl import paths
from adaptive_mbrl.cli import list_benchmarks, main

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
PROVENANCE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \| .+, \d+ cores, load [\d.]+ \| python [\d.]+, torch .+ \| "
                        r"git \S+")
TINY_TRAINING = ["training.random_steps=200", "training.first_epochs=2", "training.epochs=2",
                 "training.parallel_envs=1", "model.hidden_sizes=[16]", "meta.first_updates=5",
                 "meta.updates_per_iteration=5", "meta.meta_batch=4"]
TINY_PLANNER = ["planner.samples=16", "planner.horizon=5", "planner.iterations=1", "planner.elites=4"]
SMOKE_TESTED = {"adaptation", "adaptation_gain", "collection_speed", "compare_runs", "control_rate", "env_speed", "gain_ceiling", "gain_trace",
                "mb_learning", "planning_speed", "posture", "protocol_check", "sample_efficiency", "update_cost"}
"""Every script with a smoke test below: a new script fails ``test_every_benchmark_has_a_smoke_test``."""


def start_script(name: str, *args: str, runs_dir: Path | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/<name>.py ARGS`` from the repository root, finished."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if runs_dir is not None:
        env["ADAPTIVE_MBRL_RUNS"] = str(runs_dir)
    return subprocess.run([sys.executable, str(Path("benchmarks") / f"{name}.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_script(name: str, *args: str, runs_dir: Path | None = None, timeout: float = 300) -> list[str]:
    """Run ``benchmarks/<name>.py ARGS`` like a user does; its stdout lines (the provenance line first)."""
    result = start_script(name, *args, runs_dir=runs_dir, timeout=timeout)
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    assert PROVENANCE.fullmatch(lines[0]), f"first line is not the provenance line: {lines[0]!r}"
    return lines


def table(lines: list[str], header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header line starts with ``header``, as column -> cell."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def number(cell: str) -> float:
    """A table cell's leading number (``-12.3 ± 0.4`` -> -12.3, ``1,234`` -> 1234, ``17%`` -> 17), finite."""
    value = float(re.match(r"-?[\d,]+(\.\d+)?", cell).group(0).replace(",", ""))
    assert math.isfinite(value), cell
    return value


def test_every_benchmark_has_a_smoke_test() -> None:
    assert set(list_benchmarks()) == SMOKE_TESTED
    assert "_common" not in list_benchmarks()  # shared helpers are not benchmarks


def test_no_benchmark_edits_sys_path() -> None:
    """Shared code is imported from the script's own folder (first on sys.path), never by editing it."""
    for script in BENCHMARKS.glob("*.py"):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                pytest.fail(f"{script.name}:{node.lineno} uses sys.path")


# --- adaptation.py and adaptation_gain.py: one tiny training of MB, GrBAL, ReBAL, PE and PE-ReBAL for both

ADAPT = ["--robot", "cartpole", "--train-scenario", "weak_motor_train", "--tag", "smoke", "--threads", "1"]


@pytest.fixture(scope="module")
def adaptation_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with adaptation.py's tiny MB, GrBAL, ReBAL, PE-TS and PE-ReBAL runs (seed 0)."""
    runs = tmp_path_factory.mktemp("runs")
    lines = run_script("adaptation", *ADAPT, "--methods", "MB", "GrBAL", "ReBAL", "PE-TS", "PE-ReBAL",
                       "--iterations", "0", "--train-only", "--set", *TINY_TRAINING, runs_dir=runs)
    rows = table(lines, "| run | methods |")
    assert [r["methods"] for r in rows] == ["MB", "GrBAL", "ReBAL", "PE-TS", "PE-ReBAL"]
    assert all(number(r["env steps"]) == 200 and r["rounds"] == "0" for r in rows)
    return runs


@pytest.mark.parametrize("script, scenario_flag", [("adaptation", "--test-scenarios"),
                                                   ("sample_efficiency", "--test-scenario")])
def test_a_bad_test_scenario_fails_before_any_training(tmp_path: Path, script: str, scenario_flag: str) -> None:
    result = start_script(script, "--robot", "cartpole", "--train-scenario", "weak_motor_train", scenario_flag,
                          "weak_motor_tset", runs_dir=tmp_path)
    assert result.returncode != 0
    assert "test scenario 'weak_motor_tset'" in result.stderr and "weak_motor_test" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing trained


@pytest.mark.slow
def test_adaptation_evaluates_through_a_suite_and_resumes_it(adaptation_runs: Path) -> None:
    args = [*ADAPT, "--eval-only", "--methods", "MB", "MB+DE", "GrBAL-guarded", "ReBAL-gated",
            "--test-scenarios", "weak_motor_test", "tip_payload_test", "--episodes", "1",
            "--episode-steps", "20", "--run-set", *TINY_PLANNER]
    lines = run_script("adaptation", *args, runs_dir=adaptation_runs)
    rows = table(lines, "| scenario | method | episodes | return | ratio to MB |")
    assert [(r["scenario"], r["method"]) for r in rows] == [
        (s, m) for s in ("tip_payload_test", "weak_motor_test")
        for m in ("MB", "MB+DE", "GrBAL-guarded", "ReBAL-gated")]
    assert all(math.isfinite(number(r["return"])) and number(r["control Hz"]) > 0 for r in rows)
    survival = table(lines, "| scenario | method | steps survived")
    assert {r["episodes to the end"] for r in survival} == {"1 / 1"} and len(survival) == 8
    folder = Path(next(line for line in lines if "evaluation in " in line).rsplit("evaluation in ", 1)[1])
    assert folder.parent == adaptation_runs and (folder / "suite.yaml").is_file()
    entries = {e["label"]: e for e in yaml.safe_load((folder / "suite.yaml").read_text())["robots"][0]["controllers"]}
    assert entries["GrBAL-guarded"]["preset"] == "grbal" and "adapter.backtracking=6" in entries["GrBAL-guarded"]["set"]
    assert entries["ReBAL-gated"]["preset"] == "rebal" and "adapter.context_gate=true" in entries["ReBAL-gated"]["set"]
    assert all("planner.samples=16" in e["set"] for e in entries.values())  # --run-set reached every method
    assert not (adaptation_runs / "adapt_eval_cache_cartpole.jsonl").exists()  # no private cache
    played = (folder / "episodes.jsonl").read_text()
    assert len(played.splitlines()) == 8

    again = run_script("adaptation", *args, runs_dir=adaptation_runs)  # resumed: nothing is played again
    assert (folder / "episodes.jsonl").read_text() == played
    assert table(again, "| scenario | method | episodes | return |") == rows


@pytest.mark.slow
def test_adding_a_training_seed_plays_only_its_episodes(adaptation_runs: Path) -> None:
    """``--seeds 0 1`` after ``--seeds 0``: seed 0's episodes come from the one-seed folder; the pooled table
    has both seeds, and a later ``--seeds 1`` alone plays nothing."""
    run_script("adaptation", *ADAPT, "--methods", "MB", "--seeds", "1", "--iterations", "0", "--train-only",
               "--set", *TINY_TRAINING, runs_dir=adaptation_runs)
    args = [*ADAPT, "--eval-only", "--methods", "MB", "--test-scenarios", "weak_motor_test", "--episodes", "2",
            "--episode-steps", "20", "--run-set", *TINY_PLANNER]
    played = lambda lines: [line for line in lines if line.startswith("[")]  # noqa: E731  (progress lines)
    one = run_script("adaptation", *args, "--seeds", "0", runs_dir=adaptation_runs)
    assert len(played(one)) == 2
    both = run_script("adaptation", *args, "--seeds", "0", "1", runs_dir=adaptation_runs)
    assert len(played(both)) == 2 and all(" seed 1 " in line for line in played(both))
    [row] = table(both, "| scenario | method | episodes | return |")
    assert number(row["episodes"]) == 4
    assert not played(run_script("adaptation", *args, "--seeds", "1", runs_dir=adaptation_runs))


@pytest.mark.slow
def test_adaptation_gain_scores_every_method_on_the_same_windows(adaptation_runs: Path) -> None:
    lines = run_script("adaptation_gain", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                       "--test-scenarios", "weak_motor_test", "--tag", "smoke", "--episodes", "1",
                       "--episode-steps", "40", runs_dir=adaptation_runs)
    rows = table(lines, "| scenario | method | windows | loss before adapting | loss after |")
    assert [r["method"] for r in rows] == ["MB+DE", "GrBAL", "GrBAL-guarded", "ReBAL", "ReBAL-gated"]
    # a 40-step episode: 40 - (16 + 16) + 1 = 9 windows of M + K transitions; MB+DE scores the 16 steps after
    # every step from the 16th on that has 16 after it: the same 9
    assert [number(r["windows"]) for r in rows] == [9, 9, 9, 9, 9]
    assert all(number(r["loss before adapting"]) > 0 and number(r["loss after"]) > 0 for r in rows)
    assert rows[1]["loss before adapting"] == rows[2]["loss before adapting"]  # the same GrBAL prior
    assert rows[3]["loss before adapting"] == rows[4]["loss before adapting"]  # the same ReBAL prior
    assert all(0 < number(r["state-change error before"]) < 100 and number(r["after"]) > 0 for r in rows)
    assert rows[1]["state-change error before"] == rows[2]["state-change error before"]
    # --run-set reaches the scored methods: ReBAL with the gate set at run time scores as ReBAL-gated
    gated = run_script("adaptation_gain", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                       "--test-scenarios", "weak_motor_test", "--tag", "smoke", "--episodes", "1",
                       "--episode-steps", "40", "--methods", "ReBAL", "--run-set", "adapter.context_gate=true",
                       runs_dir=adaptation_runs)
    [row] = table(gated, "| scenario | method | windows | loss before adapting | loss after |")
    assert {k: v for k, v in row.items() if k != "method"} == {k: v for k, v in rows[4].items() if k != "method"}

    # the probabilistic ensembles, on transitions of PE's own MPC: PE-TS is the reference (nothing adapts)
    pe = run_script("adaptation_gain", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                    "--test-scenarios", "weak_motor_test", "--tag", "smoke", "--episodes", "1",
                    "--episode-steps", "40", "--driver", "PE-TS", "--methods", "PE-TS", "PE-ReBAL", "PE-TS+gains",
                    runs_dir=adaptation_runs)
    assert "transitions of PE-TS's MPC" in "\n".join(pe)
    ts, rebal, gains = table(pe, "| scenario | method | windows | loss before adapting | loss after |")
    assert (ts["method"], rebal["method"], gains["method"]) == ("PE-TS", "PE-ReBAL", "PE-TS+gains")
    assert number(ts["windows"]) == number(gains["windows"]) == 9
    # the actuator gains run PE-TS's own model: the same prior on the same windows (whether a smoke-sized
    # model's gradient moves the gains is its own business; tests/test_actuator_gains.py checks that they do)
    assert gains["loss before adapting"] == ts["loss before adapting"]
    assert gains["state-change error before"] == ts["state-change error before"]
    assert math.isfinite(number(gains["loss after"])) and number(gains["after"]) > 0
    assert ts["loss before adapting"] == ts["loss after"] and ts["change"] == "+0.0 %"
    assert ts["state-change error before"] == ts["after"]
    assert rebal["loss before adapting"] != rebal["loss after"]  # the context changed the prediction


# --- sample_efficiency.py, mb_learning.py: their own tiny trainings ------------------------------------

TINY_PEARL_YAML = {"name": "tiny_pearl", "kind": "pearl", "encoder_hidden": [16], "context_window": 8,
                   "sac": {"hidden_sizes": [16]},
                   "training": {"train_tasks": 3, "initial_episodes": 1, "iterations": 1, "tasks_per_iteration": 1,
                                "grad_steps": 3, "meta_batch": 2, "batch_size": 8, "context_batch": 4,
                                "episode_steps": 20}}
"""PEARL at smoke size: 3 tasks x 1 initial episode of 20 steps, then 2 episodes (40 steps) and 3 gradient
steps per round."""


def test_sample_efficiency_keeps_a_checkpoint_per_budget_and_evaluates_them(tmp_path: Path) -> None:
    """Per-method budgets, PE among the model-based methods, PE+gains+DE playing PE's checkpoints with its
    own preset, PEARL (a tiny preset file) evaluated in both modes on two held-out scenarios, the
    gradient-step column, the plot; a rerun resumes everything."""
    pearl = tmp_path / "tiny_pearl.yaml"
    pearl.write_text(yaml.safe_dump(TINY_PEARL_YAML))
    runs = tmp_path / "runs"
    args = ["--robot", "cartpole", "--train-scenario", "weak_motor_train", "--test-scenarios", "weak_motor_test",
            "tip_payload_test", "--methods", "MB", "GrBAL", "PE", "PE+gains+DE", "PEARL", "--budgets", "200", "300",
            "--method-budgets", "PEARL=100,140", "PE=200", "PE+gains+DE=200", "--method-presets", f"PEARL={pearl}",
            "--episodes", "1",
            "--episode-steps", "20", "--tag", "smoke", "--threads", "1",
            "--set", *TINY_TRAINING, "training.steps_per_iteration=100", *TINY_PLANNER]
    lines = run_script("sample_efficiency", *args, runs_dir=runs)
    labels = ["MB@200", "MB@300", "GrBAL@200", "GrBAL@300", "PE@200", "PE+gains+DE@200", "PEARL@100",
              "PEARL-within@100", "PEARL@140", "PEARL-within@140"]
    rows = table(lines, "| scenario | method | episodes | return |")
    assert [(r["scenario"], r["method"]) for r in rows] == [(s, m) for s in ("tip_payload_test", "weak_motor_test")
                                                            for m in labels]
    assert all(math.isfinite(number(r["return"])) for r in rows)
    for scenario in ("weak_motor_test", "tip_payload_test"):
        curve = table(lines[lines.index(f"Held-out {scenario}:"):], "| method | budget (env steps) | env steps used "
                      "| seeds | return")
        assert [(r["method"], r["budget (env steps)"], r["env steps used"]) for r in curve] == [
            ("MB", "200", "200"), ("MB", "300", "300"), ("GrBAL", "200", "200"), ("GrBAL", "300", "300"),
            ("PE", "200", "200"), ("PE+gains+DE", "200", "200"), ("PEARL", "100", "100"), ("PEARL", "140", "140"),
            ("PEARL-within", "100", "100"),
            ("PEARL-within", "140", "140")]
    budgets = table(lines, "| method | budget (env steps) | env steps used | gradient steps |")
    # GrBAL: meta.first_updates=5 + 5 per round; PEARL: 3 per round; MB / PE count none
    assert [(r["method"], r["budget (env steps)"], r["env steps used"], r["gradient steps"], r["seeds reached"])
            for r in budgets] == [("MB", "200", "200", "-", "1 / 1"), ("MB", "300", "300", "-", "1 / 1"),
                                  ("GrBAL", "200", "200", "5", "1 / 1"), ("GrBAL", "300", "300", "10", "1 / 1"),
                                  ("PE", "200", "200", "-", "1 / 1"), ("PE+gains+DE", "200", "200", "-", "1 / 1"),
                                  ("PEARL", "100", "100", "3", "1 / 1"),
                                  ("PEARL", "140", "140", "6", "1 / 1")]
    plot = Path(next(line for line in lines if line.startswith("plot: "))[len("plot: "):])
    assert plot.name == "sample_efficiency.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    episodes = json.loads((plot.parent / "episodes.json").read_text())
    # between-episode PEARL after one warm-up episode of the same task (its original protocol), within: none
    modes = {(e["label"], tuple(e["overrides"]), e["warmup_episodes"], e["warmup_steps"])
             for e in episodes if e["label"].startswith("PEARL")}
    assert modes == {(f"PEARL@{b}", ("adapt_within_episode=false",), 1, 20) for b in (100, 140)} | {
        (f"PEARL-within@{b}", ("adapt_within_episode=true",), 0, 0) for b in (100, 140)}
    for method, budgets_kept in (("mb", (200, 300)), ("pe", (200,)), ("pearl", (100, 140))):
        run = runs / f"sample_cartpole_weak_motor_train_{method}_smoke_s0"
        assert all((run / f"model_at_{b}.{ext}").is_file() for b in budgets_kept for ext in ("pt", "yaml"))
    # PE+gains+DE trained nothing of its own: it played PE's checkpoint with the pets_gains_de preset
    assert not list(runs.glob("sample_*gains*"))
    plays = {(e["label"], e["checkpoint"], e["preset"]) for e in episodes if e["label"].startswith("PE@")
             or e["label"].startswith("PE+")}
    pe_200 = str(runs / "sample_cartpole_weak_motor_train_pe_smoke_s0" / "model_at_200.pt")
    assert plays == {("PE@200", pe_200, None), ("PE+gains+DE@200", pe_200, "pets_gains_de")}
    # ... with the planner PE was trained with (--set planner.*), not the shipped preset's
    assert {tuple(e["overrides"]) for e in episodes if e["label"] == "PE+gains+DE@200"} == {tuple(TINY_PLANNER)}
    # budgets.json written before the gradient steps were kept get them from the progress history
    record_path = runs / "sample_cartpole_weak_motor_train_pearl_smoke_s0" / "budgets.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({b: {k: v for k, v in e.items() if k != "grad_steps"}
                                       for b, e in record.items()}))
    again = run_script("sample_efficiency", *args, "--eval-only", runs_dir=runs)
    assert not any(line.startswith("[") for line in again)  # every episode resumed, none played again
    assert table(again, "| method | budget (env steps) | env steps used | gradient steps |") == budgets


def test_sample_efficiency_plays_each_training_seed_in_its_own_folder(tmp_path: Path) -> None:
    """Two seeds: each seed's episodes in the folder a one-seed command keys for it, pooled into the
    all-seed folder; a one-seed command then plays nothing, and a larger budget reached by seed 1 only plays
    seed 1's episodes again (seed 0's folder is unchanged)."""
    runs = tmp_path / "runs"
    args = ["--robot", "cartpole", "--train-scenario", "weak_motor_train", "--test-scenarios", "weak_motor_test",
            "--methods", "MB", "--episodes", "1", "--episode-steps", "20", "--tag", "smoke", "--threads", "1",
            "--set", *TINY_TRAINING, "training.steps_per_iteration=100", *TINY_PLANNER]
    lines = run_script("sample_efficiency", *args, "--budgets", "200", "--seeds", "0", "1", runs_dir=runs)
    seed_folders = {line.split(": ")[0]: Path(line.split(": ")[1]) for line in lines if line.startswith("seed ")}
    assert set(seed_folders) == {"seed 0", "seed 1"}
    pooled = json.loads(next(p for p in runs.glob("sample_eval_*")
                             if p not in seed_folders.values()).joinpath("episodes.json").read_text())
    assert sorted(e["seed"] for e in pooled) == [0, 1]
    for seed, folder in seed_folders.items():
        assert [e["seed"] for e in json.loads((folder / "episodes.json").read_text())] == [int(seed[-1])]
    alone = run_script("sample_efficiency", *args, "--budgets", "200", "--seeds", "0", "--eval-only", runs_dir=runs)
    assert not any(line.startswith("[") for line in alone)
    assert next(line for line in alone if "evaluation in" in line).endswith(str(seed_folders["seed 0"]))
    run_script("sample_efficiency", *args, "--budgets", "200", "300", "--seeds", "1", "--train-only", runs_dir=runs)
    grown = run_script("sample_efficiency", *args, "--budgets", "200", "300", "--seeds", "0", "1", "--eval-only",
                       runs_dir=runs)
    played = [line for line in grown if line.startswith("[")]
    assert played and all(" seed 1 ep " in line for line in played)  # seed 0 (200 only) not played again
    assert {line.split(": ")[1] for line in grown if line.startswith("seed 0: ")} == {str(seed_folders["seed 0"])}


def test_sample_efficiency_finds_the_checkpoints_of_a_moved_run_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """budgets.json records where each checkpoint was written; a run folder moved since (another
    --runs-dir) is read from where it is now."""
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("sample_efficiency")
    folder = tmp_path / "elsewhere" / "sample_cartpole_weak_motor_train_rl2_s0"
    folder.mkdir(parents=True)
    (folder / "budgets.json").write_text(json.dumps({"100": {
        "env_steps": 128, "grad_steps": 3, "wall_clock_s": 1.0,
        "checkpoint": "runs/sample_cartpole_weak_motor_train_rl2_s0/model_at_100.pt"}}))
    record = module.reached_budgets(folder)
    assert record["100"]["checkpoint"] == str(folder / "model_at_100.pt") and record["100"]["env_steps"] == 128


def test_sample_efficiency_gives_an_adopted_run_folder_checkpoint_its_training_cost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint adopted from another run folder's final model.pt at the same environment steps takes
    that run's wall-clock and gradient steps; a file outside a run folder (shipped) or a run that went on
    past the adopted steps gives none, and the budget table marks the seeds whose wall-clock is known."""
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("sample_efficiency")
    source = tmp_path / "adapt_run_s1"
    source.mkdir()
    (source / "progress.json").write_text(json.dumps({"env_steps": 200, "iteration": 3, "grad_steps": 77,
                                                      "wall_clock_s": 600.0, "history": []}))
    folder = tmp_path / "sample_run_s1"
    folder.mkdir()

    def adopted(path: Path, steps: int) -> dict:
        (folder / "budgets.json").write_text(json.dumps({"200": {
            "env_steps": steps, "grad_steps": None, "wall_clock_s": None, "checkpoint": "x",
            "adopted_from": str(path)}}))
        return module.reached_budgets(folder)["200"]

    entry = adopted(source / "model.pt", 200)
    assert (entry["wall_clock_s"], entry["grad_steps"]) == (600.0, 77)
    assert adopted(source / "model.pt", 150)["wall_clock_s"] is None  # the run went on past these steps
    assert adopted(tmp_path / "pets.pt", 200)["wall_clock_s"] is None  # a shipped file: no run to read
    assert module._mean_minutes([60.0, None, 120.0]) == "1.5 (2 of 3 seeds)"
    assert module._mean_minutes([60.0, 120.0]) == "1.5"
    assert module._mean_minutes([None, None]) == "-"


def test_sample_efficiency_refuses_to_resume_episodes_played_with_another_preset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation folder keeps the contents of the presets that PE+gains+DE-like methods play; a later
    run whose preset differs is refused with a message naming it, an unchanged one passes, and methods that
    play their checkpoints' own presets record nothing."""
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("sample_efficiency")
    presets = module.played_presets(["MB", "PE+gains+DE", "PE-GrBAL-prior+gains+DE-slow", "PEARL"])
    assert list(presets) == ["pets_gains_de"] and presets["pets_gains_de"]["name"] == "pets_gains_de"
    assert module.played_presets(["MB", "PEARL", "RL2"]) == {}
    folder = tmp_path / "sample_eval_x"
    module.guard_played_presets(folder, presets)
    module.guard_played_presets(folder, presets)  # unchanged: passes
    edited = json.loads(json.dumps(presets))
    edited["pets_gains_de"]["planner"]["horizon"] += 1
    with pytest.raises(SystemExit, match="preset\\(s\\) pets_gains_de changed since the episodes in"):
        module.guard_played_presets(folder, edited)
    module.guard_played_presets(tmp_path / "other", {})
    assert not (tmp_path / "other").exists()


SHIPPED_PEARL = REPO / "controllers" / "checkpoints" / "half_cheetah" / "pearl.pt"


def test_sample_efficiency_adopts_a_checkpoint_trained_elsewhere_and_plays_it(tmp_path: Path) -> None:
    """--adopt: the shipped PEARL (seed 0, 1M steps) becomes the seed-0 run at the 1M budget, with its
    gradient steps from its metadata and no wall-clock; nothing trains; the same command again plays
    nothing new and keeps the record."""
    args = ["--robot", "half_cheetah", "--train-scenario", "crippled_joint_train", "--test-scenarios",
            "crippled_joint_test", "--methods", "PEARL", "--method-budgets", "PEARL=1000000", "--episodes", "1",
            "--episode-steps", "20", "--adopt", f"PEARL:0={SHIPPED_PEARL}"]
    lines = run_script("sample_efficiency", *args, runs_dir=tmp_path)
    assert f"PEARL seed 0: adopted {SHIPPED_PEARL} (1000000 steps) as budget 1000000" in lines
    folder = tmp_path / "sample_half_cheetah_crippled_joint_train_pearl_s0"
    assert not (folder / "progress.json").exists()  # nothing trained
    record = json.loads((folder / "budgets.json").read_text())["1000000"]
    assert (record["env_steps"], record["grad_steps"], record["wall_clock_s"], record["adopted_from"]) == (
        1_000_000, 46_000, None, str(SHIPPED_PEARL))
    assert (folder / "model_at_1000000.pt").read_bytes() == SHIPPED_PEARL.read_bytes()
    assert (folder / "model_at_1000000.yaml").is_file()
    rows = table(lines, "| scenario | method | episodes | return |")
    assert [r["method"] for r in rows] == ["PEARL@1000000", "PEARL-within@1000000"]
    assert all(math.isfinite(number(r["return"])) for r in rows)
    budgets = table(lines, "| method | budget (env steps) | env steps used | gradient steps |")
    assert [(r["env steps used"], r["gradient steps"], r["seeds reached"], r["training wall-clock (min)"])
            for r in budgets] == [("1000000", "46000", "1 / 1", "-")]
    again = run_script("sample_efficiency", *args, runs_dir=tmp_path)
    assert not any(line.startswith("[") for line in again)  # the episodes resumed, none played again
    assert json.loads((folder / "budgets.json").read_text())["1000000"] == record
    # without --adopt the run would train a new PEARL beside the adopted checkpoint: refused, nothing written
    train = start_script("sample_efficiency", *args[:-2], runs_dir=tmp_path)
    assert train.returncode != 0 and "holds an adopted checkpoint" in train.stderr
    assert not (folder / "progress.json").exists()
    assert len(list(tmp_path.glob("sample_eval_*"))) == 1
    # --episode-seed: fresh episodes (environment seeds 20000 + i) in a folder of their own, the first kept
    default = next(tmp_path.glob("sample_eval_*"))
    run_script("sample_efficiency", *args, "--episode-seed", "20000", runs_dir=tmp_path)
    fresh = [f for f in tmp_path.glob("sample_eval_*") if f != default]
    assert len(fresh) == 1 and {e["env_seed"] for e in json.loads((fresh[0] / "episodes.json").read_text())} == {20000}
    assert {e["env_seed"] for e in json.loads((default / "episodes.json").read_text())} == {10000}
    refused = start_script("sample_efficiency", *args, "--episode-seed", "-1", runs_dir=tmp_path)
    assert refused.returncode != 0 and "--episode-seed -1: allowed: an integer >= 0" in refused.stderr


SHIPPED_PE = REPO / "controllers" / "checkpoints" / "half_cheetah" / "pets.pt"


def test_sample_efficiency_adopts_the_run_a_played_method_plays(tmp_path: Path) -> None:
    """--adopt PE:1 with only PE+gains among --methods: the shipped PE (seed 1, 200k) becomes PE's seed-1
    run, at PE+gains's own budget (not the --budgets default PE would have), and is played with the gains
    preset alone; PE itself is not played."""
    lines = run_script("sample_efficiency", "--robot", "half_cheetah", "--train-scenario", "crippled_joint_train",
                       "--test-scenarios", "crippled_joint_test", "--methods", "PE+gains",
                       "--method-budgets", "PE+gains=200000",
                       "--seeds", "1", "--episodes", "1", "--episode-steps", "5", "--adopt", f"PE:1={SHIPPED_PE}",
                       runs_dir=tmp_path)
    folder = tmp_path / "sample_half_cheetah_crippled_joint_train_pe_s1"
    assert (folder / "model_at_200000.pt").read_bytes() == SHIPPED_PE.read_bytes()
    assert [r["method"] for r in table(lines, "| scenario | method | episodes | return |")] == ["PE+gains@200000"]
    episodes = json.loads(next(tmp_path.glob("sample_eval_*/episodes.json")).read_text())
    assert {(e["label"], e["preset"], e["checkpoint"]) for e in episodes} == {
        ("PE+gains@200000", "pets_gains", str(folder / "model_at_200000.pt"))}


def test_sample_efficiency_plays_the_meta_trained_ensemble_with_the_gains(sample_efficiency_module) -> None:
    """PE-GrBAL-prior+gains (+DE) play PE-GrBAL's runs (its folder, --adopt PE-GrBAL:SEED) with the gains
    presets."""
    module = sample_efficiency_module
    assert module.run_dir("half_cheetah", "crippled_joint_train", "PE-GrBAL-prior+gains+DE", 2, "up3",
                          Path("runs")) == Path("runs/sample_half_cheetah_crippled_joint_train_pe_grbal_up3_s2")
    assert [module.RUN_AS[m] for m in ("PE-GrBAL-prior+gains", "PE-GrBAL-prior+gains+DE")] == [
        ("PE-GrBAL", "pets_gains", ()), ("PE-GrBAL", "pets_gains_de", ())]
    # -slow: pets_gains_de's fine-tuning at a third of its rate, after --set's planner settings
    args = module.parse_args(["--methods", "PE-GrBAL-prior+gains+DE-slow", "--set", "planner.upright_cost=3",
                              "--tag", "up3"])
    settings = module.run_as_settings(args, "PE-GrBAL-prior+gains+DE-slow")
    assert settings == ["planner.upright_cost=3", "adapter.finetune_learning_rate=3e-5"]
    from adaptive_mbrl.presets import load_preset, with_run_overrides
    slow = with_run_overrides(load_preset("pets_gains_de"), settings)
    assert (slow.adapter.finetune_learning_rate, slow.planner.upright_cost) == (pytest.approx(3e-5), 3.0)
    assert module.trained_as("PE-GrBAL-prior+gains+DE-slow") == "PE-GrBAL"
    args = module.parse_args(["--methods", "PE-GrBAL-prior+gains", "--seeds", "0",
                              "--adopt", f"PE-GrBAL:0={SHIPPED_PE}"])
    assert args.adopt == {("PE-GrBAL", 0): SHIPPED_PE}


@pytest.fixture()
def sample_efficiency_module(monkeypatch: pytest.MonkeyPatch):
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("sample_efficiency")


@pytest.mark.parametrize("method, seed, scenario, budgets, words", [
    ("PEARL", 1, "crippled_joint_train", [1_000_000], "meta.seed 0 (needed: 1)"),
    ("PEARL", 0, "crippled_joint_test", [1_000_000], "meta.scenario 'crippled_joint_train' (needed: "
                                                     "'crippled_joint_test')"),
    ("RL2", 0, "crippled_joint_train", [1_000_000], "preset family 'pearl' (needed: 'rl2')"),
    ("MB", 0, "crippled_joint_train", [1_000_000], "preset family 'pearl' (needed: 'model-based')"),
    ("PEARL", 0, "crippled_joint_train", [2_000_000, 5_000_000], "meta.env_steps 1000000 reaches none of PEARL's "
                                                                 "budgets [2000000, 5000000]"),
])
def test_sample_efficiency_adopt_refuses_a_checkpoint_that_does_not_match(
        sample_efficiency_module, tmp_path: Path, method: str, seed: int, scenario: str, budgets: list[int],
        words: str) -> None:
    folder = tmp_path / "run"
    with pytest.raises(ValueError, match=re.escape(words)):
        sample_efficiency_module.adopt_checkpoint(method, seed, SHIPPED_PEARL, "half_cheetah", scenario, budgets,
                                                  folder)
    assert not folder.exists()


def test_sample_efficiency_adopt_refuses_a_training_run_or_another_checkpoint(sample_efficiency_module,
                                                                             tmp_path: Path) -> None:
    adopt = sample_efficiency_module.adopt_checkpoint
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "progress.json").write_text(json.dumps({"env_steps": 10, "iteration": 1}))
    with pytest.raises(ValueError, match="holds a training run"):
        adopt("PEARL", 0, SHIPPED_PEARL, "half_cheetah", "crippled_joint_train", [1_000_000], trained)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_at_1000000.pt").write_bytes(b"another checkpoint")
    (other / "budgets.json").write_text(json.dumps({"1000000": {"env_steps": 1_000_000, "wall_clock_s": 1.0}}))
    with pytest.raises(ValueError, match="already holds another checkpoint at budget 1000000"):
        adopt("PEARL", 0, SHIPPED_PEARL, "half_cheetah", "crippled_joint_train", [1_000_000], other)


@pytest.mark.parametrize("item, words", [
    ("PEARL=x.pt", "expected METHOD:SEED=PATH with METHOD one of MB, PEARL, PE"),
    ("PE+gains+DE:0=x.pt", "expected METHOD:SEED=PATH with METHOD one of MB, PEARL, PE"),
    (f"PEARL:3={SHIPPED_PEARL}", "seed 3 is not among --seeds (0)"),
    ("PEARL:0=missing.pt", "'missing.pt' is no existing .pt checkpoint"),
])
def test_sample_efficiency_adopt_refuses_bad_items(sample_efficiency_module, capsys: pytest.CaptureFixture,
                                                   item: str, words: str) -> None:
    with pytest.raises(SystemExit):
        sample_efficiency_module.parse_args(["--methods", "MB", "PEARL", "PE+gains+DE", "--adopt", item])
    assert words in capsys.readouterr().err


def test_sample_efficiency_plot_legend_says_how_many_seeds_each_line_averages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("sample_efficiency")
    assert module._seed_count([{"seeds": 1}, {"seeds": 1}]) == "1 seed"
    assert module._seed_count([{"seeds": 3}, {"seeds": 3}]) == "3 seeds"
    assert module._seed_count([{"seeds": 3}, {"seeds": 1}]) == "1-3 seeds"


def test_sample_efficiency_stops_a_method_at_its_own_time_limit(tmp_path: Path) -> None:
    lines = run_script("sample_efficiency", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                       "--methods", "MB", "--budgets", "200", "300", "--method-max-minutes", "MB=0.000001",
                       "--max-minutes", "60", "--train-only", "--tag", "smoke", "--threads", "1",
                       "--set", *TINY_TRAINING, "training.steps_per_iteration=100", runs_dir=tmp_path)
    assert "MB seed 0: stopped at 200 steps after 1e-06 min (budget 300 not reached)" in lines
    rows = table(lines, "| method | budget (env steps) |")
    assert [(r["budget (env steps)"], r["env steps used"]) for r in rows] == [("200", "200"), ("300", "not reached")]


@pytest.mark.parametrize("extra, words", [
    (["--method-budgets", "RL3=5"], "expected METHOD=VALUE with METHOD one of MB, GrBAL"),
    (["--method-budgets", "RL2=5"], "RL2 is not among --methods (MB)"),
    (["--method-budgets", "MB=5,x"], "budgets must be comma-separated integers"),
    (["--method-budgets", "MB=5", "MB=6"], "MB given twice"),
    (["--method-max-minutes", "MB=0"], "--method-max-minutes 'MB=0': minutes must be positive"),
    (["--method-presets", "MB=nope.yaml", "--tag", "t"], "'nope.yaml' is no existing .yaml preset file"),
    (["--pearl-warmup", "-1"], "--pearl-warmup -1: allowed: an integer >= 0"),
    (["--method-presets", "MB=controllers/baselines/pearl.yaml", "--tag", "t"],
     "a pearl preset, but MB needs a model-based one"),
])
def test_sample_efficiency_refuses_bad_method_settings_before_training(tmp_path: Path, extra: list[str],
                                                                       words: str) -> None:
    result = start_script("sample_efficiency", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                          "--methods", "MB", *extra, runs_dir=tmp_path)
    assert result.returncode != 0 and words in result.stderr
    assert not any(tmp_path.iterdir())  # nothing trained


def test_sample_efficiency_refuses_a_preset_file_for_a_method_without_training(tmp_path: Path) -> None:
    result = start_script("sample_efficiency", "--robot", "cartpole", "--train-scenario", "weak_motor_train",
                          "--methods", "PE", "PE+gains+DE", "--method-presets", "PE+gains+DE=controllers/pets.yaml",
                          "--tag", "t", runs_dir=tmp_path)
    assert result.returncode != 0
    assert "PE+gains+DE plays the runs of PE and has no training of its own" in result.stderr
    assert not any(tmp_path.iterdir())


def test_mb_learning_prints_the_learning_curve_and_the_evaluation(tmp_path: Path) -> None:
    lines = run_script("mb_learning", "--robot", "cartpole", "--train-scenario", "nominal", "--eval-scenarios",
                       "weak_motor_test", "--controllers", "mb", "--episodes", "1", "--episode-steps", "20",
                       "--run-dir", str(tmp_path / "run"), "--iterations", "1", "--threads", "1", "--set",
                       *TINY_TRAINING, "training.steps_per_iteration=100", "training.episode_steps=50",
                       *TINY_PLANNER)
    curve = table(lines, "| round | env steps |")
    assert [(r["round"], r["env steps"]) for r in curve] == [("0", "200"), ("1", "300")]
    assert all(math.isfinite(number(r["val loss"])) for r in curve)
    assert number(curve[1]["mean return of the round's MPC episodes"]) < 0
    evaluation = table(lines, "| controller | scenario | mean return |")
    assert [(r["controller"], r["scenario"]) for r in evaluation] == [("mb", "weak_motor_test")]
    assert number(evaluation[0]["control Hz"]) > 0


# --- timing benchmarks ------------------------------------------------------------------------------

def test_env_speed_prints_rates_and_overheads() -> None:
    lines = run_script("env_speed", "--robots", "cartpole", "--backends", "mujoco", "--steps", "50",
                       "--repeats", "1", "--rl2-envs", "1", "2")
    rows = table(lines, "| robot | backend | frame skip | env steps/s |")
    assert [(r["robot"], r["backend"], r["frame skip"]) for r in rows] == [("cartpole", "mujoco", "5")]
    assert number(rows[0]["env steps/s"]) > 0 and number(rows[0]["overhead"]) > 0
    rl2 = table(lines, "| robot | backend | RL² envs |")
    assert [(r["robot"], r["RL² envs"]) for r in rl2] == [("cartpole", "1"), ("cartpole", "2")]
    for r in rl2:
        assert number(r["env steps/s"]) == number(rows[0]["env steps/s"])
        assert number(r["share of env speed"]) == pytest.approx(
            number(r["RL² collection steps/s"]) / number(r["env steps/s"]), abs=0.01)


@pytest.mark.parametrize("preset", ["pets", "pets_rebal"])
def test_collection_speed_prints_rates_costs_and_the_projected_run(preset: str) -> None:
    lines = run_script("collection_speed", "--preset", preset, "--envs", "1", "2", "--threads", "1",
                       "--steps", "4", "--fit-rows", "300", "--budget", "15000")
    rows = table(lines, "| envs | threads | collection env steps/s |")
    assert [(r["envs"], r["threads"]) for r in rows] == [("1", "1"), ("2", "1")]
    fit_cost = [number(r[next(k for k in r if k.startswith("fit"))]) for r in rows]
    assert fit_cost[0] > 0 and fit_cost[0] == fit_cost[1]  # the fit does not depend on the env count
    for r in rows:
        rate = number(r["collection env steps/s"])
        # pets / pets_rebal: 5000 random steps, then 2 rounds of 5000 collected steps make 15000
        # both numbers are printed to 0.1: the minutes carry 0.05 of rounding, and the rate's 0.05 moves
        # 10000 / rate / 60 by up to 10000 / 60 * 0.05 / rate**2
        rounding = 0.05 + 10_000 / 60 * 0.05 / (rate - 0.05) ** 2 + 1e-9
        assert number(r["projected collect min"]) == pytest.approx(10_000 / rate / 60, abs=rounding)
        assert number(r["projected total min"]) == pytest.approx(
            number(r["projected collect min"]) + number(r["projected fit min"]), abs=0.11)


def test_planning_speed_prints_milliseconds_per_plan() -> None:
    lines = run_script("planning_speed", "--threads", "1", "--hidden", "16", "--activations", "silu",
                       "--repeats", "2", "--samples", "32", "--horizon", "3")
    assert lines[1].split() == ["planner", "model", "act", "thr", "envs", "median", "ms", "best", "ms", "GFLOP/s"]
    assert lines[2].split()[:5] == ["random_shooting", "3x16", "silu", "1", "1"]
    median, best, gflops = (float(x) for x in lines[2].split()[5:])
    assert 0 < best <= median and gflops > 0


def test_update_cost_prints_milliseconds_flops_and_peak_fraction_per_update() -> None:
    lines = run_script("update_cost", "--robot", "cartpole", "--repeats", "1")
    rows = table(lines, "| method | one update uses | ms per update | GFLOP per update | floor GFLOP |")
    assert [r["method"].split(" (")[0] for r in rows] == ["MB", "GrBAL", "ReBAL", "PEARL"]
    assert all(number(r["ms per update"]) > 0 and number(r["GFLOP per update"]) > 0 for r in rows)
    assert all(0 < number(r["% of fp32 peak"]) and r["% of fp32 peak"].endswith("%") for r in rows)
    mb, pearl = rows[0], rows[3]
    # cartpole (obs 5, action 1), MB's 3x200 model on 256 rows: forward 2 * 256 * (6*200 + 2*200*200 + 200*5),
    # backward 2x forward less the first layer's input gradient
    forward = 2 * 256 * (6 * 200 + 2 * 200 * 200 + 200 * 5)
    assert number(mb["floor GFLOP"]) == pytest.approx((3 * forward - 2 * 256 * 6 * 200) / 1e9, abs=1e-3)
    # the updates run exactly the matmuls their losses need (PEARL: no critic weight gradients from the
    # policy loss, the target V forward only)
    for row in (mb, pearl):
        assert row["GFLOP per update"] == row["floor GFLOP"]
        ratio = number(row["x floor"])
        assert ratio == pytest.approx(number(row["ms per update"]) * 1e-3 * peak(lines) / number(row["floor GFLOP"]),
                                      rel=0.05)
    assert rows[1]["floor GFLOP"] == "-" and rows[1]["x floor"] == "-"


def peak(lines: list[str]) -> float:
    """The fp32 matmul peak (GFLOP/s) a benchmark's heading line states."""
    return float(re.search(r"fp32 matmul peak ([\d.]+) GFLOP/s", "\n".join(lines)).group(1))


@pytest.mark.slow
def test_control_rate_prints_the_rate_of_every_configuration() -> None:
    lines = run_script("control_rate", "--robot", "cartpole", "--steps", "1", "--threads", "1", "--busy", "0")
    rows = table(lines, "| model | planner | adapter | threads | idle Hz |")
    assert len(rows) == 2 * 6 * 2 + 6  # models x planners x adapters, then the six pets presets
    assert all(number(r["idle Hz"]) > 0 and number(r["model evals/step"]) > 0 for r in rows)
    assert [r["model"].split(":")[0] for r in rows[-6:]] == ["pets", "pets_de", "pets_grbal", "pets_rebal",
                                                             "pets_gains", "pets_gains_de"]
    assert rows[-6]["planner"] == "icem 3x60 H10, mean" and rows[-5]["adapter"] == "finetune"
    assert rows[-2]["adapter"] == rows[-1]["adapter"] == "actuator_gains"
    # iCEM 60 + 48 + 38 candidates (+ the elites it keeps and the mean) x H10, each through the 5 members
    assert 7000 <= number(rows[-6]["model evals/step"]) <= 8000


# --- adaptive-mbrl bench ----------------------------------------------------------------------------

def test_bench_runs_a_script_in_its_own_process_and_returns_its_status(capfd) -> None:
    assert main(["bench", "env_speed", "--", "--robots", "cartpole", "--backends", "mujoco", "--steps", "20",
                 "--repeats", "1"]) == 0
    out = capfd.readouterr().out
    assert PROVENANCE.match(out) and "| cartpole | mujoco | 5 |" in out
    assert main(["bench", "env_speed", "--", "--steps", "0"]) == 2  # the script's own argument error
    assert "--steps and --repeats must be at least 1" in capfd.readouterr().err


def test_bench_without_a_source_checkout_names_where_it_looked(monkeypatch, tmp_path: Path, capsys) -> None:
    package = tmp_path / "site-packages" / "adaptive_mbrl"  # an installed wheel: no benchmarks/ beside it
    monkeypatch.setattr(paths, "_PACKAGE_DIR", package)
    assert list_benchmarks() == []
    assert main(["bench", "adaptation"]) == 2
    err = capsys.readouterr().err
    assert "ship with the source checkout only" in err
    assert str(package / "_data" / "benchmarks") in err and str(package.parent / "benchmarks") in err


@pytest.mark.slow
def test_the_wheel_leaves_the_benchmarks_out(tmp_path: Path) -> None:
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    wheel, = tmp_path.glob("adaptive_mbrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "adaptive_mbrl/_data/controllers/mb.yaml" in names
    assert not [n for n in names if "benchmarks" in n]


@pytest.mark.slow
def test_adaptation_episode_seed_plays_fresh_episodes_in_their_own_folder(adaptation_runs: Path) -> None:
    """``--episode-seed 20000`` plays environment seeds 20000 + i in a folder of its own; the default keeps
    the folder (and episodes) of an evaluation without the option."""
    args = [*ADAPT, "--eval-only", "--methods", "MB", "--test-scenarios", "weak_motor_test", "--episodes", "2",
            "--episode-steps", "20", "--run-set", *TINY_PLANNER]

    def folder(lines: list[str]) -> Path:
        return Path(next(line for line in lines if "evaluation in " in line).rsplit(" ", 1)[1])

    default = folder(run_script("adaptation", *args, runs_dir=adaptation_runs))
    fresh = folder(run_script("adaptation", *args, "--episode-seed", "20000", runs_dir=adaptation_runs))
    assert fresh != default
    assert folder(run_script("adaptation", *args, "--episode-seed", "10000", runs_dir=adaptation_runs)) == default
    played = [json.loads(line) for line in (fresh / "episodes.jsonl").read_text().splitlines()]
    assert sorted(e["env_seed"] for e in played) == [20000, 20001]
    refused = start_script("adaptation", *args, "--episode-seed", "-1", runs_dir=adaptation_runs)
    assert refused.returncode != 0 and "--episode-seed -1: allowed: an integer >= 0" in refused.stderr


def test_adaptation_baseline_must_be_one_of_the_methods(tmp_path: Path) -> None:
    result = start_script("adaptation", *ADAPT, "--methods", "PE-TS", "PE-ReBAL", "--baseline", "MB",
                          runs_dir=tmp_path)
    assert result.returncode != 0 and "--baseline MB is not one of --methods (PE-TS, PE-ReBAL)" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing trained


def test_adaptation_training_table_reads_a_copied_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A run folder holding only a checkpoint (a shipped one copied in) shows the budget its twin records;
    an empty one is 'not trained'; a trained one its progress."""
    import importlib

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("adaptation")
    copied, empty, trained = (tmp_path / name for name in ("copied_s1", "empty_s0", "trained_s0"))
    for folder in (copied, empty, trained):
        folder.mkdir()
    (copied / "model.pt").write_bytes(b"weights")
    (copied / "model.yaml").write_text(yaml.safe_dump({"robot": "half_cheetah", "preset": {"name": "pets"},
                                                       "meta": {"env_steps": 200000, "iteration": 39}}))
    (trained / "model.pt").write_bytes(b"weights")
    (trained / "progress.json").write_text(json.dumps({"env_steps": 50000, "iteration": 9, "wall_clock_s": 600}))
    module.print_training_table({("PE-TS", 1): copied / "model.pt", ("MB", 0): empty / "model.pt",
                                 ("MB+DE", 0): empty / "model.pt", ("PE-TS", 0): trained / "model.pt"})
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and "_s" in line}
    assert rows["copied_s1"] == "| copied_s1 | PE-TS | 200000 | 39 | - (checkpoint only, no progress.json) |"
    assert rows["empty_s0"] == "| empty_s0 | MB, MB+DE | not trained | - | - |"
    assert rows["trained_s0"] == "| trained_s0 | PE-TS | 50000 | 9 | 10.0 |"


def test_adaptation_runs_the_probabilistic_ensemble_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from adaptive_mbrl.presets import load_preset
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when the script runs: its folder first on sys.path
    module = importlib.import_module("adaptation")
    for label in ("PE-TS", "PE-TS+DE", "PE-GrBAL", "PE-GrBAL-prior", "PE-GrBAL-prior+gains",
                  "PE-GrBAL-prior+gains+DE", "PE-ReBAL", "PE-TS+gains"):
        method = module.METHODS[label]
        trained, run = load_preset(method.trained), load_preset(method.run)
        assert trained.model.probabilistic and run.model == trained.model and run.planner.propagation == "mean"
    # the PE-GrBAL ablation plays the meta-trained ensemble without any adaptation
    assert load_preset(module.METHODS["PE-GrBAL-prior"].run).adapter.kind == "none"
    # ... and with the motor-fault adapter: the PE-TS+gains(+DE) adapters on the PE-GrBAL-trained ensemble
    for suffix in ("+gains", "+gains+DE"):
        on_grbal, on_pe = module.METHODS[f"PE-GrBAL-prior{suffix}"], module.METHODS[f"PE-TS{suffix}"]
        assert on_grbal.trained == "pets_grbal" and on_grbal.run == on_pe.run
    assert load_preset(module.METHODS["PE-GrBAL-prior+gains+DE"].run).adapter.finetune_steps >= 1
    # -slow: the same adapter at 3e-5, a third of the preset's fine-tuning rate
    from adaptive_mbrl.presets import with_run_overrides
    slow = module.METHODS["PE-GrBAL-prior+gains+DE-slow"]
    assert (slow.trained, slow.run) == ("pets_grbal", "pets_gains_de")
    assert with_run_overrides(load_preset(slow.run), list(slow.overrides)).adapter.finetune_learning_rate == \
        pytest.approx(3e-5)
    # PE-ReBAL / PE-ReBAL-gated name the context gate explicitly, so a recorded command keeps its meaning
    # whatever pets_rebal's default (on since the three-seed comparison)
    pets_rebal = load_preset("pets_rebal")
    gates = {label: with_run_overrides(pets_rebal, list(module.METHODS[label].overrides)).adapter.context_gate
             for label in ("PE-ReBAL", "PE-ReBAL-gated")}
    assert gates == {"PE-ReBAL": False, "PE-ReBAL-gated": True} and pets_rebal.adapter.context_gate


# --- protocol_check.py: rankings of truncated episodes from a suite's episodes.jsonl -------------------

def test_protocol_check_ranks_truncated_episodes_against_the_full_ones(tmp_path: Path) -> None:
    """A late bloomer: B is behind A over the first 2 steps and ahead over the whole episode."""
    import json
    episodes = [{"scenario": "s", "label": "A", "rewards": [2.0, 2.0, 0.0, 0.0]},
                {"scenario": "s", "label": "B", "rewards": [0.0, 1.0, 3.0, 3.0]},
                {"scenario": "s", "label": "B", "rewards": [0.0, 1.0, 5.0, 5.0]}]
    (tmp_path / "episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
    lines = run_script("protocol_check", str(tmp_path), "--lengths", "2")
    rows = {r["steps"]: r for r in table(lines, "| scenario | steps | order")}
    assert rows["2"]["order (best first)"] == "A > B" and number(rows["2"]["B"]) == 0.25
    assert number(rows["2"]["tau vs full"]) == -1.0
    assert rows["full"]["order (best first)"] == "B > A" and number(rows["full"]["B"]) == 2.25
    assert number(rows["full"]["tau vs full"]) == 1.0
    bad = start_script("protocol_check", str(tmp_path), "--baseline", "C")
    assert bad.returncode != 0 and "--baseline C is not a method of this suite (A, B)" in bad.stderr


def test_control_rate_profiles_a_preset_by_operator() -> None:
    lines = run_script("control_rate", "--robot", "cartpole", "--preset", "pets", "--steps", "1", "--threads", "1",
                       "--busy", "0", "--profile", "2")
    rows = table(lines, "| operator | % of time |")
    assert "aten::baddbmm" in [r["operator"] for r in rows]  # the members' batched matmuls
    shares = [number(r["% of time"]) for r in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.5
    refused = start_script("control_rate", "--profile", "2")
    assert refused.returncode != 0 and "--profile needs --preset" in refused.stderr


def _posture_run(folder: Path, pitches: list[float], vx: float, random_steps: int) -> Path:
    """A half_cheetah run folder by hand: its config and a buffer whose next states have these pitches."""
    import numpy as np
    from adaptive_mbrl.training.buffer import TransitionBuffer
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "preset": {"training": {"random_steps": random_steps}, "planner": {"upright_cost": 3.0}},
        "run": {"robot": "half_cheetah", "scenario": "crippled_joint_train"}}))
    buffer = TransitionBuffer(17, 6)
    next_obs = np.zeros((len(pitches), 17))
    next_obs[:, 1], next_obs[:, 8] = pitches, vx  # obs[1]: the pitch hinge; obs[8]: forward velocity
    buffer.add(next_obs, np.zeros((len(pitches), 6)), next_obs, np.zeros(len(pitches)), np.zeros(len(pitches)),
               buffer.new_episode(), 0)
    buffer.save(folder / "buffer.npz")
    return folder


def test_posture_prints_the_upside_down_share_per_block(tmp_path: Path) -> None:
    # 4 random-data steps (1 on its back), then blocks of 3: (2 of 3 on its back), (none)
    run = _posture_run(tmp_path / "run", [0.0, 3.0, 0.2, -0.1, 3.1, -2.9, 0.5, 0.0, 1.0, 1.2], 1.5, 4)
    rows = table(run_script("posture", str(run), "--block", "3"), "| run |")
    assert len(rows) == 3
    assert [number(r["base past 90 degrees (share)"]) for r in rows] == [0.25, 0.67, 0.0]
    assert all(number(r["mean forward velocity (m/s)"]) == 1.5 for r in rows)
    assert all(number(r["planner.upright_cost"]) == 3 for r in rows)
    bad = start_script("posture", str(tmp_path / "nothing"))
    assert bad.returncode != 0 and "not a model-based run folder" in bad.stderr


def tiny_half_cheetah_checkpoint(path: Path) -> Path:
    """An untrained 16-unit half_cheetah model with a CEM 8 x H2 planner, saved as a checkpoint at ``path``."""
    from adaptive_mbrl.config import from_dict, to_dict
    from adaptive_mbrl.models.dynamics import DynamicsModel
    from adaptive_mbrl.presets import ControllerPreset
    from adaptive_mbrl.storage.checkpoint import save_checkpoint
    preset = from_dict(ControllerPreset, {"name": "tiny", "model": {"hidden_sizes": [16]}, "planner": {
        "kind": "cem", "samples": 8, "horizon": 2, "iterations": 1, "elites": 2}}, source="test")
    save_checkpoint(path, robot="half_cheetah", obs_dim=17, action_dim=6, preset=to_dict(preset),
                    model_state=DynamicsModel(17, 6, preset.model, seed=0).state_dict(), actuation="torque")
    return path


def test_posture_plays_controllers_and_reports_when_they_tip_over(tmp_path: Path) -> None:
    path = tiny_half_cheetah_checkpoint(tmp_path / "model.pt")
    lines = run_script("posture", "--checkpoints", str(path), "--scenario", "crippled_joint_test", "--episodes", "2",
                       "--steps", "6", "--set", "planner.upright_cost=3")
    rows = table(lines, "| controller |")
    assert [r["episode"] for r in rows] == ["0", "1"] and all(r["steps"] == "6" for r in rows)
    assert all(0 <= number(r["steps past 90 degrees (share)"]) <= 1 for r in rows)
    assert all(r["first step past 90 degrees"] == "never" for r in rows)  # 6 steps from an upright start


# --- gain_trace.py: the actuator gains step by step around a mid-episode break ---------------------------

def test_gain_trace_prints_the_gains_around_the_break(tmp_path: Path) -> None:
    path = tiny_half_cheetah_checkpoint(tmp_path / "model.pt")
    lines = run_script("gain_trace", "--checkpoint", str(path), "--steps", "304", "--every", "100",
                       "--set", *TINY_PLANNER)
    assert any("dynamics changed at step 301" in line for line in lines)  # joint 4 breaks at step 300 (0-based)
    rows = table(lines, "| step |")
    assert [r["step"] for r in rows] == ["0", "100", "200", "300"]
    assert all(-1 <= number(r[f"gain {m}"]) <= 1 for r in rows for m in range(6))
    assert rows[0]["reward"] == "-" and all(rows[0][f"gain {m}"] == "1.00" for m in range(6))  # after the reset
    assert all(-1 <= number(r["upright"]) <= 1 for r in rows) and number(rows[0]["upright"]) > 0.9  # starts upright
    assert any(line.startswith("on its back (uprightness below 0): ") for line in lines)
    # a suite episode's controller seed (its training seed): the same environment, another planner draw
    def rewards(*extra: str) -> list[str]:
        out = run_script("gain_trace", "--checkpoint", str(path), "--scenario", "crippled_joint_test", "--steps",
                         "4", "--every", "1", *extra, "--set", *TINY_PLANNER)
        assert any(f"environment seed 10000, controller seed {extra[-1] if extra else 10000}" in line for line in out)
        return [r["reward"] for r in table(out, "| step |")]
    assert rewards() == rewards("--controller-seed", "10000") != rewards("--controller-seed", "3")
    refused = start_script("gain_trace", "--checkpoint", str(path), "--preset", "mb", "--steps", "2")
    assert refused.returncode != 0 and "needs an actuator_gains adapter" in refused.stderr


# --- gain_ceiling.py: estimated actuator gains against the true ones --------------------------------------

def test_gain_ceiling_reads_the_true_gains_from_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import adaptive_mbrl as am
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("gain_ceiling")
    for scenario, expected in (("crippled_joint_test_hard", [1, 1, 1, 1, 0, 0]), ("nominal", [1] * 6)):
        env = am.make("half_cheetah", scenario, seed=0)
        env.reset()
        assert module.true_gains(env, 6).tolist() == expected, scenario
        env.close()


def test_gain_ceiling_compares_the_three_controllers_on_the_same_episodes(tmp_path: Path) -> None:
    path = tiny_half_cheetah_checkpoint(tmp_path / "model.pt")
    lines = run_script("gain_ceiling", "--checkpoint", str(path), "--scenarios", "crippled_joint_test_hard",
                       "--episodes", "2", "--steps", "5", "--workers", "2", "--set", *TINY_PLANNER)
    rows = table(lines, "| scenario |")
    assert [r["controller"] for r in rows] == ["none", "estimated", "true"]
    assert rows[0]["ratio to none, 95 % interval"] == "-"
    for row in rows:
        per_episode = [float(x) for x in row["per episode"].split(", ")]
        assert len(per_episode) == 2 and math.isclose(number(row["mean return"]), sum(per_episode) / 2, abs_tol=0.06)
    refused = start_script("gain_ceiling", "--checkpoint", str(path), "--preset", "mb", "--episodes", "1")
    assert refused.returncode != 0 and "needs an actuator_gains adapter" in refused.stderr


def test_adaptation_set_planner_trains_and_runs_every_method_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--set planner.upright_cost=3`` reaches the training preset and the preset the episodes play with
    (MB+DE too, whose run preset is mb_de); ``--run-set`` still wins; an adapter setting is refused."""
    import importlib

    from adaptive_mbrl.trainer import load_training_preset
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("adaptation")
    args = module.parse_args(["--methods", "MB", "MB+DE", "--set", "planner.upright_cost=3", "training.epochs=2",
                              "--tag", "up3", "--run-set", "planner.samples=16"])
    assert args.run_overrides == ["planner.upright_cost=3", "planner.samples=16"]
    assert load_training_preset("mb", None, args.overrides).planner.upright_cost == 3.0
    for label in ("MB", "MB+DE"):
        preset = module.run_preset(label, args.run_overrides)
        assert preset.planner.upright_cost == 3.0 and preset.planner.samples == 16
    assert module.run_preset("MB", []).planner.upright_cost == 0.0  # the shipped preset is unchanged
    wins = module.parse_args(["--set", "planner.upright_cost=3", "--tag", "t", "--run-set", "planner.upright_cost=1"])
    assert module.run_preset("MB", wins.run_overrides).planner.upright_cost == 1.0
    with pytest.raises(SystemExit):
        module.parse_args(["--set", "adapter.window=8", "--tag", "t"])


def test_sample_efficiency_tags_only_the_runs_its_settings_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--set`` marks the model-based runs (PE+gains+DE shares PE's), not PEARL's or RL²'s, whose training
    it does not change; ``--method-presets`` marks its method; a tag alone marks every run."""
    import importlib
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("sample_efficiency")
    methods = ["--methods", "MB", "PE", "PE+gains+DE", "PEARL", "RL2"]
    tags = lambda argv: {m: module.run_tag(module.parse_args(methods + argv), m) for m in methods[1:]}  # noqa: E731
    assert tags(["--set", "planner.upright_cost=3", "--tag", "up3"]) == {
        "MB": "up3", "PE": "up3", "PE+gains+DE": "up3", "PEARL": "", "RL2": ""}
    assert tags(["--method-presets", "PEARL=controllers/baselines/pearl.yaml", "--tag", "p"]) == {
        "MB": "", "PE": "", "PE+gains+DE": "", "PEARL": "p", "RL2": ""}
    assert set(tags(["--tag", "again"]).values()) == {"again"}
    preset = module.method_preset("MB", 3, ["planner.upright_cost=3"])
    assert preset.planner.upright_cost == 3.0 and preset.training.iterations == 3


def test_a_later_setting_at_its_neutral_value_keeps_the_evaluation_folder_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """adapter.inner_loss and a suite entry's warmup_episodes came after folders were keyed: at 'model' / 0
    they are left out of the key (at any depth), at 'mse' / 1 not."""
    import importlib

    from adaptive_mbrl.config import to_dict
    from adaptive_mbrl.presets import load_preset, with_run_overrides
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("_common")
    grbal = load_preset("grbal")
    assert grbal.adapter.inner_loss == "model"
    data = to_dict(grbal)
    without = {**data, "adapter": {k: v for k, v in data["adapter"].items() if k != "inner_loss"}}
    key = lambda identity: common.keyed_folder(tmp_path, "p", identity)  # noqa: E731
    assert key({"presets": {"GrBAL": data}}) == key({"presets": {"GrBAL": without}})
    mse = to_dict(with_run_overrides(grbal, ["adapter.inner_loss=mse"]))
    assert key({"presets": {"GrBAL": mse}}) != key({"presets": {"GrBAL": without}})
    changed = to_dict(with_run_overrides(grbal, ["adapter.learning_rate=0.5"]))
    assert key({"presets": {"GrBAL": changed}}) != key({"presets": {"GrBAL": data}})
    entry = {"label": "PEARL", "checkpoint": "p.pt"}
    assert key({"suite": [{**entry, "warmup_episodes": 0}]}) == key({"suite": [entry]})
    assert key({"suite": [{**entry, "warmup_episodes": 1}]}) != key({"suite": [entry]})


def _episodes_folder(folder: Path, label: str, returns: dict[int, list[float]], scenario: str = "crippled_joint_test",
                     first_env_seed: int = 10000, steps: int = 4) -> Path:
    """A run folder whose ``episodes.jsonl`` holds ``label``'s episodes: training seed -> returns in order,
    each spread evenly over ``steps`` rewards."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "episodes.jsonl").open("a") as out:
        for seed, values in returns.items():
            for i, value in enumerate(values):
                out.write(json.dumps({"key": f"{label}/{scenario}/s{seed}/e{i}", "label": label, "scenario": scenario,
                                      "seed": seed, "episode": i, "env_seed": first_env_seed + i,
                                      "return": value, "rewards": [value / steps] * steps}) + "\n")
    return folder


def test_compare_runs_gives_ratios_across_folders_with_seeds_drawn_per_method(tmp_path: Path) -> None:
    pearl = _episodes_folder(tmp_path / "pearl", "PEARL", {0: [100.0, 110.0, 90.0, 105.0, 95.0]})
    mine = _episodes_folder(tmp_path / "mine", "PE", {0: [290.0, 310.0, 300.0, 305.0, 295.0],
                                                      1: [280.0, 320.0, 300.0, 290.0, 310.0]})
    _episodes_folder(mine, "other_tasks", {0: [200.0, 200.0]}, first_env_seed=20000)
    rows = table(run_script("compare_runs", "--baseline", str(pearl), "PEARL", "--method", str(mine), "PE",
                            "--method", str(mine), "other_tasks"), "| scenario |")
    by_method = {r["method"]: r for r in rows}
    assert number(by_method["PEARL"]["ratio to PEARL"]) == 1.0
    pe = by_method["PE"]
    assert (number(pe["training seeds"]), number(pe["episodes"])) == (2, 10)
    assert number(pe["return (mean ± std)"]) == 300.0 and number(pe["ratio to PEARL"]) == 3.0
    low, high = (float(x) for x in pe["95 % interval (seeds drawn per method)"].strip("[]").split(","))
    assert 2.5 < low < 3.0 < high < 3.5
    assert pe["baseline's tasks"] == "yes" and by_method["other_tasks"]["baseline's tasks"] == "no"
    bad = start_script("compare_runs", "--baseline", str(pearl), "RL2", "--method", str(mine), "PE")
    assert bad.returncode != 0 and "no episodes of label 'RL2'; labels there: PEARL" in bad.stderr


def test_compare_runs_splits_the_reward_rate_at_a_mid_episode_change(tmp_path: Path) -> None:
    folder = tmp_path / "break"
    folder.mkdir()
    with (folder / "episodes.jsonl").open("w") as out:
        for label, rewards in (("PE", [4.0, 4.0, 2.0, 2.0]), ("PE+gains", [4.0, 4.0, 3.0, 3.0])):
            out.write(json.dumps({"key": label, "label": label, "scenario": "joint_break_midepisode", "seed": 0,
                                  "episode": 0, "env_seed": 10000, "return": sum(rewards), "rewards": rewards}) + "\n")
    lines = run_script("compare_runs", "--baseline", str(folder), "PE", "--method", str(folder), "PE+gains",
                       "--split", "2")
    rows = {r["method"]: r for r in table(lines, "| scenario | method | reward per step")}
    assert number(rows["PE"]["reward per step, steps 0-1"]) == 4.0
    assert number(rows["PE"]["reward per step, from step 2"]) == 2.0
    assert number(rows["PE+gains"]["after / before"]) == 0.75
    bad = start_script("compare_runs", "--baseline", str(folder), "PE", "--method", str(folder), "PE", "--split", "-1")
    assert bad.returncode != 0 and "--split must be a control step >= 0" in bad.stderr
