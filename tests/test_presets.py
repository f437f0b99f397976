"""Controller presets: shipped YAMLs load; bad names and bad files give errors naming file and field."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from adaptive_mbrl.adaptation import make_adapter
from adaptive_mbrl.config import ConfigError, from_dict
from adaptive_mbrl.models.dynamics import DynamicsModel
from adaptive_mbrl.paths import controllers_dir
from adaptive_mbrl.planning import PLANNERS
from adaptive_mbrl.presets import ControllerPreset, list_presets, load_preset, save_preset, with_overrides

SHIPPED = sorted(p.stem for p in controllers_dir().glob("*.yaml"))
# every shipped preset's values as they were before presets could inherit (see the file's header)
BEFORE = yaml.safe_load((Path(__file__).parent / "data" / "shipped_presets_before_inheritance.yaml").read_text())
# presets that became a run-time override of another: name -> (preset, overrides)
RUNTIME_VARIANTS = {"grbal_guarded": ("grbal", ["adapter.backtracking=6"]),
                    "rebal_gated": ("rebal", ["adapter.context_gate=true"])}
REFERENCE = {"grbal_paper", "mb_paper"}  # moved to controllers/reference/


def test_list_presets_matches_the_folder() -> None:
    assert SHIPPED, "no controller presets shipped"
    assert list_presets() == SHIPPED
    assert {"mb", "mb_de"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_loads_and_builds(name: str) -> None:
    preset = load_preset(name)
    assert isinstance(preset, ControllerPreset)
    assert preset.name == name
    assert preset.planner.kind in PLANNERS
    assert preset.planner.elites <= preset.planner.samples
    # The same file by path gives the same preset.
    assert load_preset(controllers_dir() / f"{name}.yaml") == preset
    # Its adapter builds around a model of its config (small sizes: shapes only).
    model = DynamicsModel(5, 1, preset.model)
    assert make_adapter(model, preset.adapter) is not None


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_shipped_presets_keep_their_values(name: str) -> None:
    expected = from_dict(ControllerPreset, BEFORE[name], source="before")
    if name in RUNTIME_VARIANTS:
        base, overrides = RUNTIME_VARIANTS[name]
        got = with_overrides(load_preset(base), overrides)
        assert got != load_preset(base)
        expected = dataclasses.replace(expected, name=got.name, description=got.description)
    elif name in REFERENCE:
        got = load_preset(f"reference/{name}")
        assert load_preset(controllers_dir() / "reference" / f"{name}.yaml") == got
    else:
        got = load_preset(name)
    assert got == expected


def test_shipped_variants_write_the_shared_blocks_once() -> None:
    for name in ("mb_de", "grbal", "rebal"):
        data = yaml.safe_load((controllers_dir() / f"{name}.yaml").read_text())
        assert data["base"] == "mb" and "planner" not in data and "training" not in data


def test_reference_and_baseline_presets_are_listed_by_group() -> None:
    assert list_presets("reference") == ["reference/grbal_paper", "reference/mb_paper"]
    assert list_presets("baselines") == ["pearl", "rl2"]
    assert not set(list_presets()) & {"grbal_paper", "mb_paper", "pearl", "rl2", "rebal_gated", "grbal_guarded"}


def test_baseline_presets_load_through_load_preset() -> None:
    from adaptive_mbrl.baselines import load_baseline_preset
    from adaptive_mbrl.baseline_presets import PEARLPreset, RL2Preset

    pearl, rl2 = load_preset("pearl"), load_preset("rl2")
    assert isinstance(pearl, PEARLPreset) and isinstance(rl2, RL2Preset)
    assert pearl == load_baseline_preset("pearl") and rl2 == load_baseline_preset("rl2")
    assert with_overrides(pearl, ["training.iterations=2"]).training.iterations == 2


def _preset_file(folder: Path, name: str, data: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_preset_inherits_its_base_section_by_section(tmp_path: Path) -> None:
    path = _preset_file(tmp_path, "fast_grbal", {"base": "grbal", "planner": {"samples": 60, "elites": 6},
                                                 "meta": {"prior_weight": 0.0}})
    preset, grbal = load_preset(path), load_preset("grbal")
    assert preset.name == "fast_grbal" and preset.description == ""  # neither is inherited
    assert (preset.planner.samples, preset.planner.elites) == (60, 6)
    assert dataclasses.replace(preset.planner, samples=120, elites=12) == grbal.planner  # rest merged
    assert preset.meta.prior_weight == 0.0 and preset.meta.updates_per_iteration == 2000
    assert (preset.adapter, preset.model, preset.training) == (grbal.adapter, grbal.model, grbal.training)
    # a base given by path (relative to the file), two levels deep
    child = _preset_file(tmp_path, "child", {"base": "fast_grbal.yaml", "name": "child", "training": {"iterations": 2}})
    assert load_preset(child) == dataclasses.replace(preset, name="child", training=dataclasses.replace(
        grbal.training, iterations=2))


def test_an_inherited_preset_saves_flat_and_loads_back_equal(tmp_path: Path) -> None:
    mb_de = load_preset("mb_de")
    path = save_preset(mb_de, tmp_path / "flat.yaml")
    data = yaml.safe_load(path.read_text())
    assert "base" not in data and data["planner"]["kind"] == "icem" and data["training"]["iterations"] == 19
    assert load_preset(path) == mb_de


def test_inherited_presets_are_validated_after_merging(tmp_path: Path) -> None:
    path = _preset_file(tmp_path, "bad", {"base": "mb", "planner": {"elites": 500}})
    with pytest.raises(ConfigError, match="elites") as info:
        load_preset(path)
    assert info.value.source == str(path)
    typo = _preset_file(tmp_path, "typo", {"base": "mb", "planer": {"samples": 10}})
    with pytest.raises(ConfigError, match="planer: unknown key"):
        load_preset(typo)


@pytest.mark.parametrize("base, words", [("mb_typo", "unknown controller preset 'mb_typo'; allowed: grbal"),
                                         ("missing.yaml", "file not found"), (3, "expected a preset name")])
def test_a_bad_base_is_refused_naming_the_file(tmp_path: Path, base, words: str) -> None:
    path = _preset_file(tmp_path, "child", {"base": base, "name": "child"})
    with pytest.raises(ConfigError, match=words):
        load_preset(path)


def test_an_inheritance_cycle_is_refused_with_the_chain(tmp_path: Path) -> None:
    a = _preset_file(tmp_path, "a", {"base": "b.yaml"})
    _preset_file(tmp_path, "b", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml") as info:
        load_preset(a)
    assert info.value.field == "base"
    own = _preset_file(tmp_path, "own", {"base": "own.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_preset(own)


def test_shipped_methods_differ_where_they_should() -> None:
    assert load_preset("mb").adapter.kind == "none"
    de = load_preset("mb_de").adapter
    assert de.kind == "finetune" and de.window >= 1 and de.steps >= 1


def test_unknown_preset_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown controller preset 'mb_typo'") as info:
        load_preset("mb_typo")
    for name in SHIPPED:
        assert name in str(info.value)


def _write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((controllers_dir() / "mb.yaml").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(section: str, key: str, value):
    def edit(data: dict) -> None:
        data[section][key] = value
    return edit


@pytest.mark.parametrize("edit, field, words", [
    (_set("model", "hiden_sizes", [32]), "model.hiden_sizes", "unknown key"),
    (_set("planner", "kind", "gradient_descent"), "planner.kind", "random_shooting"),
    (_set("planner", "elites", 500), "planner", "elites"),
    (_set("adapter", "kind", "magic"), "adapter.kind", "finetune"),
    (_set("training", "iterations", -1), "training.iterations", "out of range"),
    (lambda d: d.pop("planner"), "planner", "required"),
    (lambda d: d.update(extra=1), "extra", "unknown key"),
])
def test_bad_preset_yaml_names_file_and_field(tmp_path: Path, edit, field: str, words: str) -> None:
    path = _write(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_preset(path)
    err = info.value
    assert err.source == str(path)
    assert err.field == field
    assert str(path) in str(err) and field in str(err) and words in str(err)


def test_missing_preset_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_preset(tmp_path / "missing.yaml")


def test_an_exponent_float_override_is_a_float() -> None:
    """``adapter.finetune_learning_rate=3e-5`` (YAML 1.1 reads it as a string) sets the float."""
    tuned = with_overrides(load_preset("pets_gains_de"), ["adapter.finetune_learning_rate=3e-5",
                                                          "adapter.learning_rate=1e-1"])
    assert tuned.adapter.finetune_learning_rate == pytest.approx(3e-5)
    assert tuned.adapter.learning_rate == pytest.approx(0.1)


def test_overrides_change_only_the_named_settings_and_leave_the_preset_alone() -> None:
    grbal = load_preset("grbal")
    small = with_overrides(grbal, ["training.iterations=3", "meta.updates_per_iteration=500",
                                   "model.hidden_sizes=[64, 64]", "meta.first_order=true"])
    assert (small.training.iterations, small.meta.updates_per_iteration) == (3, 500)
    assert list(small.model.hidden_sizes) == [64, 64] and small.meta.first_order is True
    assert small.planner == grbal.planner and small.adapter == grbal.adapter
    assert small.training.steps_per_iteration == grbal.training.steps_per_iteration
    assert grbal.training.iterations != 3  # the original is not modified
    for name in SHIPPED:  # no overrides: the same preset
        assert with_overrides(load_preset(name), []) == load_preset(name)


def test_a_saved_changed_preset_loads_back_equal_and_overwrites_in_place(tmp_path: Path) -> None:
    bigger = with_overrides(load_preset("rebal"), ["planner.samples=300", "planner.elites=30"])
    path = save_preset(bigger, tmp_path / "presets" / "rebal_big.yaml")
    loaded = load_preset(path)
    assert loaded == bigger and loaded != load_preset("rebal")
    assert (loaded.planner.samples, loaded.planner.elites) == (300, 30)
    save_preset(load_preset("rebal"), path)  # overwritten in place, not appended
    assert load_preset(path) == load_preset("rebal")


@pytest.mark.parametrize("item, field, words", [
    ("training.iterations=-1", "training.iterations", "out of range"),
    ("trainin.iterations=3", "trainin", "allowed: planner, model, adapter, training, meta"),
    ("training.iteration=3", "training.iteration", "allowed keys: random_steps, iterations"),
    ("training.iterations", "training.iterations", "SECTION.KEY=VALUE"),
    ("meta.first_order=maybe", "meta.first_order", "expected bool"),
    ("planner.kind=gradient_descent", "planner.kind", "random_shooting"),
])
def test_bad_override_names_the_field_and_the_allowed_values(item: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(load_preset("grbal"), [item])
    assert info.value.field == field and words in str(info.value)


def test_the_pets_presets_are_a_probabilistic_ensemble_planned_through_the_members_mean() -> None:
    pets, mb = load_preset("pets"), load_preset("mb")
    m, p = pets.model, pets.planner
    assert (list(m.hidden_sizes), m.ensemble_size, m.probabilistic, m.bootstrap, m.elites) == (
        [200, 200, 200, 200], 5, True, True, 0)
    assert (p.kind, p.particles, p.propagation) == ("icem", 1, "mean")
    assert (p.horizon, p.samples, p.iterations, p.elites) == (10, 60, 3, 6)
    assert (p.upright_cost, mb.planner.upright_cost) == (3.0, 0.0)  # the posture term: PE presets only so far
    for name in ("pets_de", "pets_grbal", "pets_rebal", "pets_gains", "pets_gains_de"):  # all plan like pets
        assert load_preset(name).planner == p
    assert pets.adapter == mb.adapter and pets.training == mb.training
    assert m.activation == mb.model.activation and m.learning_rate == mb.model.learning_rate
    data = yaml.safe_load((controllers_dir() / "pets.yaml").read_text())
    assert data["base"] == "mb" and "training" not in data and "adapter" not in data
    # pets_de: the pets ensemble and planner with mb_de's online fine-tuning.
    pets_de = load_preset("pets_de")
    assert pets_de.adapter == load_preset("mb_de").adapter
    assert dataclasses.replace(pets_de, name="pets", description=pets.description, adapter=pets.adapter) == pets
    assert yaml.safe_load((controllers_dir() / "pets_de.yaml").read_text())["base"] == "pets"
    # pets_grbal: the squared-error inner step (its NLL step diverged on held-out data); grbal's deterministic
    # model has only the squared error, which "model" already is
    assert (load_preset("pets_grbal").adapter.inner_loss, load_preset("grbal").adapter.inner_loss) == ("mse", "model")
    # pets_gains: the pets model and planner, fed per-motor gains estimated online (no training of its own).
    gains = load_preset("pets_gains")
    assert (gains.adapter.kind, gains.adapter.window, gains.adapter.steps) == ("actuator_gains", 16, 5)
    assert dataclasses.replace(gains, name="pets", description=pets.description, adapter=pets.adapter) == pets
    assert gains.adapter.finetune_steps == 0
    # pets_gains_de: the same gains, then pets_de's fine-tuning step (1 Adam step, lr 1e-4) on the weights.
    gains_de = load_preset("pets_gains_de")
    assert dataclasses.replace(gains_de.adapter, finetune_steps=0) == gains.adapter
    assert (gains_de.adapter.finetune_steps, gains_de.adapter.finetune_learning_rate) == (
        pets_de.adapter.steps, pets_de.adapter.learning_rate)
    assert dataclasses.replace(gains_de, name="pets", description=pets.description, adapter=pets.adapter) == pets
