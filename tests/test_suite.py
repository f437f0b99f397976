"""Suite configs: strict validation with named fields, and the expansion into seeded episode jobs."""
import json
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.config import ConfigError
from adaptive_mbrl.evaluation import expand_jobs, list_suites, load_suite, resolve_checkpoint


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _suite(checkpoint: str, **extra) -> dict:
    return {"name": "t", "seeds": [0, 1], "episodes": 3, "robots": [{
        "robot": "cartpole", "scenarios": ["weak_motor_test", "motor_fault_midepisode"],
        "controllers": [{"label": "MB", "checkpoint": checkpoint},
                        {"label": "MB+DE", "checkpoint": checkpoint, "preset": "mb_de"}]}], **extra}


def test_every_shipped_suite_loads_and_its_required_checkpoints_exist() -> None:
    assert "quickstart" in list_suites()
    for name in list_suites():
        jobs, _ = expand_jobs(load_suite(name))
        assert jobs and all(Path(j.checkpoint).is_file() for j in jobs)


def test_jobs_cover_robots_scenarios_controllers_seeds_episodes(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    jobs, skipped = expand_jobs(load_suite(_write(tmp_path, _suite(str(tiny_cartpole_checkpoint)))))
    assert len(jobs) == 2 * 2 * 2 * 3 and not skipped
    assert len({j.key for j in jobs}) == len(jobs)
    # every method meets the same tasks: episode i has environment seed 10000 + i for every label and seed
    assert {(j.episode, j.env_seed) for j in jobs} == {(i, 10_000 + i) for i in range(3)}
    assert {j.preset for j in jobs if j.label == "MB+DE"} == {"mb_de"}


def test_seed_placeholder_and_shipped_prefix_resolve(tmp_path: Path) -> None:
    assert resolve_checkpoint("runs/x_s{seed}/model.pt", 3) == Path("runs/x_s3/model.pt")
    shipped = resolve_checkpoint("shipped:half_cheetah/mb", 0)
    assert shipped.parts[-3:] == ("checkpoints", "half_cheetah", "mb.pt")


def test_missing_required_checkpoint_is_an_error_naming_the_controller(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cartpole/MB seed 0.*optional: true"):
        expand_jobs(load_suite(_write(tmp_path, _suite(str(tmp_path / "missing.pt")))))


def test_missing_optional_checkpoint_is_skipped_with_a_note(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"].append({"label": "PEARL", "checkpoint": "nope_{seed}.pt", "optional": True})
    jobs, skipped = expand_jobs(load_suite(_write(tmp_path, data)))
    assert {j.label for j in jobs} == {"MB", "MB+DE"}
    assert len(skipped) == 2 and "nope_1.pt" in skipped[1]


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d["robots"][0].update(robot="walker"), "robots[0].robot", "allowed: a1, ant, cartpole"),
    (lambda d: d["robots"][0]["scenarios"].append("lava"), "robots[0].scenarios[2]", "weak_motor_test"),
    (lambda d: d["robots"][0]["controllers"][1].update(preset="fast"), "robots[0].controllers[1].preset", "mb_de"),
    (lambda d: d["robots"][0].update(backend="gazebo"), "robots[0].backend", "'mujoco', 'pybullet'"),
    (lambda d: d.update(episodes=0), "t", "episodes must be >= 1"),
    (lambda d: d.update(colour="red"), "colour", "allowed keys"),
    (lambda d: d["robots"][0]["controllers"][1].update(label="MB"), "robots[0]", "labels must be unique"),
])
def test_bad_suites_name_the_field_and_the_allowed_values(tmp_path: Path, edit, field: str, words: str) -> None:
    data = _suite("x.pt")
    edit(data)
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    assert field in str(err.value) and words in str(err.value)


def test_unknown_suite_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="allowed: .*quickstart"):
        load_suite("no_such_suite")


# --- scenarios of the user's own ------------------------------------------------------------------------------
def _user_scenarios(tmp_path: Path) -> Path:
    file = tmp_path / "my_scenarios.yaml"
    file.write_text("robot: cartpole\nscenarios:\n  reversed_late:\n    events:\n      - at_step: 5\n"
                    "        perturbations: [{type: joint_damage, joints: [slider], scale: -1}]\n")
    return file


def test_suite_accepts_a_user_scenario_file_and_checks_its_events(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["scenarios"] = [f"{_user_scenarios(tmp_path)}:reversed_late"]
    jobs, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    assert {j.scenario for j in jobs} == {f"{tmp_path / 'my_scenarios.yaml'}:reversed_late"}
    data["robots"][0]["scenarios"] = [f"{tmp_path / 'my_scenarios.yaml'}:nope"]
    with pytest.raises(ConfigError, match=r"robots\[0\].scenarios\[0\]: .*no scenario 'nope'; allowed: reversed_late"):
        load_suite(_write(tmp_path, data))
    data["robots"][0]["scenarios"] = ["motor_fault_midepisode"]  # its event at step 100, past 50-step episodes
    with pytest.raises(ConfigError, match=r"scenarios\[0\]: .*at step 100 would never fire: the episode has 50"):
        load_suite(_write(tmp_path, {**data, "episode_steps": 50}))


def test_run_suite_with_an_absolute_scenario_path_writes_its_damage_plot(tmp_path: Path,
                                                                         tiny_cartpole_checkpoint) -> None:
    from adaptive_mbrl.evaluation import run_suite
    scenario = f"{_user_scenarios(tmp_path).resolve()}:reversed_late"
    suite = load_suite(_write(tmp_path, {"name": "mine", "episodes": 1, "episode_steps": 12, "robots": [
        {"robot": "cartpole", "scenarios": [scenario],
         "controllers": [{"label": "MB", "checkpoint": str(tiny_cartpole_checkpoint)}]}]}))
    rows = run_suite(suite, tmp_path / "run", progress=False)
    assert [r["scenario"] for r in rows] == [scenario]
    plots = list((tmp_path / "run").glob("damage_*.png"))
    assert len(plots) == 1 and plots[0].name.startswith("damage_cartpole_my_scenarios-reversed_late-")


def test_quickstart_runs_the_shipped_upright_probabilistic_ensembles_against_pe() -> None:
    from adaptive_mbrl.storage.checkpoint import load_checkpoint

    suite = load_suite("quickstart")
    assert suite.baseline == "PE"
    for block in suite.robots:
        entries = [e for e in block.controllers if not e.optional]
        payloads = {e.label: load_checkpoint(resolve_checkpoint(e.checkpoint, 0)) for e in entries}
        assert list(payloads) == ["PE", "PE+gains", "PE-ReBAL", "PE-GrBAL+gains+DE"]
        # PE+gains runs PE's own checkpoint with the actuator-gain adapter of the pets_gains preset
        assert [(e.checkpoint, e.preset) for e in entries[:2]] == [("shipped:half_cheetah/pets", None),
                                                                    ("shipped:half_cheetah/pets", "pets_gains")]
        for label, payload in payloads.items():
            model = payload["preset"]["model"]
            assert model["probabilistic"] and model["ensemble_size"] == 5, label
            assert payload["preset"]["planner"]["upright_cost"] == 3.0, label  # trained and run off its back
            assert payload["meta"]["env_steps"] == 200_000 and payload["meta"]["scenario"] == "crippled_joint_train"
        assert payloads["PE-ReBAL"]["preset"]["adapter"]["kind"] == "rebal"
        # the motor-fault row: the PE-GrBAL-trained ensemble with pets_gains_de's adapter at a third of its rate
        assert payloads["PE-GrBAL+gains+DE"]["preset"]["adapter"]["kind"] == "grbal"
        motor = entries[3]
        assert (motor.preset, list(motor.set)) == ("pets_gains_de", ["adapter.finetune_learning_rate=3e-5"])


def test_a_jobs_key_changes_with_its_set_only(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    plain, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    data["robots"][0]["controllers"][1]["set"] = ["planner.horizon=3"]
    changed, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    differ = {a.label for a, b in zip(plain, changed) if a.key != b.key}
    assert differ == {"MB+DE"}
    assert plain[0].key == "cartpole/mujoco/weak_motor_test/MB/s0/e0"  # keys without set: as before (resume)


def test_set_reaches_the_controller_each_job_loads(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    from adaptive_mbrl.evaluation import load_controller

    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"][1]["set"] = ["planner.samples=8", "planner.elites=2"]
    jobs, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    job = next(j for j in jobs if j.label == "MB+DE")
    controller = load_controller(job.checkpoint, job.preset, overrides=job.overrides)
    assert controller.preset.adapter.kind == "finetune"  # mb_de's adapter, with the planner changed
    assert (controller.preset.planner.samples, controller.preset.planner.elites) == (8, 2)
    assert load_controller(job.checkpoint, job.preset).preset.planner.samples != 8


def test_eval_overrides_join_every_model_based_entrys_set(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"][1]["set"] = ["adapter.steps=2"]
    suite = load_suite(_write(tmp_path, data), overrides=["planner.horizon=3"])
    assert [e.set for e in suite.robots[0].controllers] == [["planner.horizon=3"], ["adapter.steps=2", "planner.horizon=3"]]


@pytest.mark.parametrize("item, words", [
    ("planner.sample=8", "'MB+DE': planner.sample: unknown key; allowed keys: kind, horizon, samples"),
    ("planner.elites=500", "elites"),
    ("training.iterations=3", "training.iterations: a trained controller can change only adapter and planner"),
    ("adapter.context_gate", "expected SECTION.KEY=VALUE"),
])
def test_a_bad_set_is_refused_at_suite_load(tmp_path: Path, tiny_cartpole_checkpoint, item: str, words: str) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"][1]["set"] = [item]
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    assert err.value.field == "robots[0].controllers[1].set" and words in str(err.value)


def test_set_on_a_baseline_checkpoint_is_refused(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    pearl = tmp_path / "pearl.pt"  # only the metadata is read: the .yaml twin save_checkpoint writes
    pearl.write_bytes(b"")
    pearl.with_suffix(".yaml").write_text(yaml.safe_dump({"robot": "cartpole", "preset": {"kind": "pearl"}}))
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"].append({"label": "PEARL", "checkpoint": str(pearl), "set": ["planner.samples=8"]})
    with pytest.raises(ConfigError, match="'PEARL' is a model-free baseline"):
        load_suite(_write(tmp_path, data))
    data["robots"][0]["controllers"][-1]["set"] = []  # eval --set leaves it out
    suite = load_suite(_write(tmp_path, data), overrides=["planner.horizon=3"])
    assert [e.set for e in suite.robots[0].controllers] == [["planner.horizon=3"], ["planner.horizon=3"], []]


def test_pearl_entries_set_only_its_adaptation_mode(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    """One PEARL checkpoint as two entries, between-episode and within-episode; RL² takes no setting."""
    for kind in ("pearl", "rl2"):
        twin = tmp_path / f"{kind}.yaml"
        twin.write_text(yaml.safe_dump({"robot": "cartpole", "preset": {"kind": kind}}))
        twin.with_suffix(".pt").write_bytes(b"")
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"] += [
        {"label": "PEARL", "checkpoint": str(tmp_path / "pearl.pt"), "set": ["adapt_within_episode=false"]},
        {"label": "PEARL-within", "checkpoint": str(tmp_path / "pearl.pt"), "set": ["adapt_within_episode=true"]}]
    suite = load_suite(_write(tmp_path, data))
    jobs, _ = expand_jobs(suite)
    modes = {j.label: j.overrides for j in jobs if j.label.startswith("PEARL")}
    assert modes == {"PEARL": ("adapt_within_episode=false",), "PEARL-within": ("adapt_within_episode=true",)}
    data["robots"][0]["controllers"][-1]["set"] = ["adapt_within_episode=yes please"]
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    assert err.value.field == "robots[0].controllers[3].set" and "adapt_within_episode=true|false" in str(err.value)
    data["robots"][0]["controllers"][-1] = {"label": "RL2", "checkpoint": str(tmp_path / "rl2.pt"),
                                            "set": ["adapt_within_episode=true"]}
    with pytest.raises(ConfigError, match="'RL2' is a model-free baseline .*rl2 policy has no settings to change"):
        load_suite(_write(tmp_path, data))


def test_a_baseline_that_is_no_label_is_refused_listing_the_labels(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, _suite(str(tiny_cartpole_checkpoint), baseline="MBX")))
    assert err.value.field == "baseline" and "'MBX' is not a controller label of this suite; allowed: MB, MB+DE" \
        in str(err.value)


def test_a_checkpoint_of_another_robot_is_refused_at_suite_load(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0].update(robot="half_cheetah", scenarios=["nominal"])
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    message = str(err.value)
    assert err.value.field == "robots[0].controllers[0].checkpoint"
    for words in ("'MB'", str(tiny_cartpole_checkpoint), "trained on robot 'cartpole'", "robot is 'half_cheetah'"):
        assert words in message


def test_a_checkpoint_without_its_yaml_twin_is_read_from_the_pt(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    """A copied ``.pt`` (e.g. benchmarks/sample_efficiency.py's model_at_<budget>.pt) has no ``.yaml`` twin."""
    import shutil
    alone = tmp_path / "alone.pt"
    shutil.copyfile(tiny_cartpole_checkpoint, alone)
    data = _suite(str(alone))
    data["robots"][0]["controllers"][1]["set"] = ["planner.samples=16"]
    jobs, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    assert {job.checkpoint for job in jobs} == {str(alone)}


def test_a_block_can_run_more_episodes_than_the_suite(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint), episodes=2)
    block = data["robots"][0]
    data["robots"] = [block, {**block, "scenarios": ["nominal"], "episodes": 4}]
    jobs, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    per_scenario = {s: {j.episode for j in jobs if j.scenario == s} for s in {j.scenario for j in jobs}}
    assert per_scenario == {"nominal": {0, 1, 2, 3}, "weak_motor_test": {0, 1}, "motor_fault_midepisode": {0, 1}}
    data["robots"][1]["episodes"] = 0
    with pytest.raises(ConfigError, match="episodes must be >= 1 or null"):
        load_suite(_write(tmp_path, data))


# --- warm-up episodes (PEARL's between-episode protocol, RL²'s trials) ----------------------------------------

def _with_pearl(data: dict, checkpoint: Path, **entry) -> dict:
    data["robots"][0]["controllers"].append({"label": "PEARL", "checkpoint": str(checkpoint),
                                             "set": ["adapt_within_episode=false"], **entry})
    return data


def test_a_warmup_entry_gets_its_own_episode_keys(tmp_path: Path, tiny_cartpole_checkpoint,
                                                  tiny_pearl_checkpoint) -> None:
    data = _with_pearl(_suite(str(tiny_cartpole_checkpoint)), tiny_pearl_checkpoint)
    plain, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    data["robots"][0]["controllers"][-1]["warmup_episodes"] = 1
    warm, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    data["robots"][0]["controllers"][-1]["warmup_episodes"] = 2
    warmer, _ = expand_jobs(load_suite(_write(tmp_path, data)))
    assert {j.warmup_episodes for j in warm if j.label == "PEARL"} == {1}
    assert {a.label for a, b in zip(plain, warm) if a.key != b.key} == {"PEARL"}
    assert all(a.key != b.key for a, b in zip(warm, warmer) if a.label == "PEARL")
    assert warm[-1].key == "cartpole/mujoco/motor_fault_midepisode/PEARL/s1/e2|set=adapt_within_episode=false|warmup=1"
    assert plain[-1].key == "cartpole/mujoco/motor_fault_midepisode/PEARL/s1/e2|set=adapt_within_episode=false"


@pytest.mark.parametrize("value, words", [
    (-1, "warmup_episodes: -1 is out of range; allowed: an integer >= 0"),
    (True, "warmup_episodes"),
    ("one", "warmup_episodes"),
])
def test_a_bad_warmup_value_names_the_field(tmp_path: Path, tiny_pearl_checkpoint, value, words: str) -> None:
    data = _with_pearl(_suite("x.pt"), tiny_pearl_checkpoint, warmup_episodes=value)
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    assert "robots[0].controllers[2]" in str(err.value) and words in str(err.value)


def test_warmup_on_a_model_based_checkpoint_is_refused_at_suite_load(tmp_path: Path, tiny_cartpole_checkpoint) -> None:
    data = _suite(str(tiny_cartpole_checkpoint))
    data["robots"][0]["controllers"][1]["warmup_episodes"] = 1
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, data))
    assert err.value.field == "robots[0].controllers[1].warmup_episodes"
    assert "'MB+DE' is a model-based controller: warm-up episodes apply only to PEARL / RL²" in str(err.value)


def test_warmup_episodes_are_keyed_apart_and_older_run_folders_resume(tmp_path: Path, tiny_pearl_checkpoint) -> None:
    """The same label with another warm-up is another experiment: its episodes are never reused (the folder
    refuses the changed suite, and the keys differ); a folder written before the field existed resumes."""
    from adaptive_mbrl.evaluation import run_suite
    from adaptive_mbrl.config import to_dict

    data = {"name": "t", "episodes": 1, "episode_steps": 10, "baseline": "PEARL", "robots": [{
        "robot": "cartpole", "scenarios": ["weak_motor_test"],
        "controllers": [{"label": "PEARL", "checkpoint": str(tiny_pearl_checkpoint),
                         "set": ["adapt_within_episode=false"]}]}]}
    out = tmp_path / "run"
    run_suite(load_suite(_write(tmp_path, data)), out, progress=False)
    old = yaml.safe_load((out / "suite.yaml").read_text())  # as written before warmup_episodes existed
    del old["robots"][0]["controllers"][0]["warmup_episodes"]
    (out / "suite.yaml").write_text(yaml.safe_dump(old))
    run_suite(load_suite(_write(tmp_path, data)), out, progress=False)  # resumed: nothing played
    data["robots"][0]["controllers"][0]["warmup_episodes"] = 1
    with pytest.raises(ValueError, match="different suite configuration"):
        run_suite(load_suite(_write(tmp_path, data)), out, progress=False)
    warm = load_suite(_write(tmp_path, data))
    (out / "suite.yaml").write_text(yaml.safe_dump(to_dict(warm)))  # even past that check, the earlier
    run_suite(warm, out, progress=False)                               # episodes do not count for it
    played = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert [(r["warmup_episodes"], r["warmup_steps"]) for r in played] == [(0, 0), (1, 10)]
    reported = json.loads((out / "episodes.json").read_text())
    assert [(r["warmup_episodes"], r["steps"]) for r in reported] == [(1, 10)]
