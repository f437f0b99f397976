"""Scenarios and task distributions (adaptive_mbrl/envs/scenarios.py, sim_configs/scenarios/*.yaml)."""
from __future__ import annotations

import dataclasses
import itertools
import re
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import adaptive_mbrl as am
from adaptive_mbrl.config import ConfigError, bounded
from adaptive_mbrl.envs.mujoco_sim import MujocoSimulator
from adaptive_mbrl.envs.perturbations import (PERTURBATION_TYPES, JointDamage, Perturbation, apply_all,
                                              register_perturbation)
from adaptive_mbrl.envs.robot_spec import RobotSpec
from adaptive_mbrl.envs.scenarios import (Event, PerturbationTemplate, ScenarioFileError, ScenarioSpec, Task,
                                          get_scenario, load_scenarios, parse_scenario_file, resolve_scenario,
                                          scenario_file, scenario_slug)

ALL_SCENARIOS = [(robot, name) for robot in am.list_robots() for name in am.list_scenarios(robot)]


# --- supports: the set of values each perturbation field can take ------------------------------------------
Support = tuple[str, Any]  # ("set", frozenset of values) or ("range", (lo, hi))


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _field_support(value: Any) -> Support:
    if isinstance(value, dict) and "uniform" in value:
        lo, hi = value["uniform"]
        return "range", (float(lo), float(hi))
    if isinstance(value, dict) and "choice" in value:
        return "set", frozenset(_freeze(v) for v in value["choice"])
    return "set", frozenset([_freeze(value)])


def template_support(data: dict[str, Any], robot: RobotSpec) -> tuple[str, dict[str, Support]]:
    """(type, {field: support}) of a perturbation template; unspecified fields take their defaults.

    Joint damage is described by the set of actuators it hits (joints and legs resolved, names and
    indices alike), so ``joints: [fshin]`` and ``joints: [4]`` count as the same task.
    """
    kind = data["type"]
    cls = PERTURBATION_TYPES[kind]
    fields = {f.name: _field_support(data[f.name]) if f.name in data else ("set", frozenset([_freeze(f.default)]))
              for f in dataclasses.fields(cls)}
    if kind == "joint_damage":
        joints, legs = fields.pop("joints")[1], fields.pop("legs")[1]
        hit = set()
        for js, ls in itertools.product(joints, legs):
            hit.add(frozenset(JointDamage(joints=js, legs=ls).actuator_indices(robot)))
        fields["actuators"] = ("set", frozenset(hit))
    return kind, fields


def supports_overlap(a: Support, b: Support) -> bool:
    (kind_a, va), (kind_b, vb) = a, b
    if kind_a == "set" and kind_b == "set":
        return bool(va & vb)
    if kind_a == "range" and kind_b == "range":
        return max(va[0], vb[0]) <= min(va[1], vb[1])
    values, (lo, hi) = (va, vb) if kind_a == "set" else (vb, va)
    return any(isinstance(v, (int, float)) and lo <= v <= hi for v in values)


def templates_overlap(a: tuple[str, dict[str, Support]], b: tuple[str, dict[str, Support]]) -> bool:
    """Whether two templates can produce the same perturbation (every field's supports intersect)."""
    return a[0] == b[0] and all(supports_overlap(a[1][k], b[1][k]) for k in a[1])


def scenario_templates(scenario: ScenarioSpec) -> list[dict[str, Any]]:
    return list(scenario.at_reset) + [p for e in scenario.events for p in e.perturbations]


def held_out(test: ScenarioSpec, train: ScenarioSpec, robot: RobotSpec) -> bool:
    """True if some perturbation of ``test`` can take no value that ``train`` ever produces."""
    train_supports = [template_support(t, robot) for t in scenario_templates(train)]
    return any(not any(templates_overlap(template_support(t, robot), s) for s in train_supports)
               for t in scenario_templates(test))


def _families(robot: str) -> dict[str, dict[str, list[ScenarioSpec]]]:
    families: dict[str, dict[str, list[ScenarioSpec]]] = {}
    for scenario in load_scenarios(robot).values():
        if scenario.family:
            families.setdefault(scenario.family, {}).setdefault(scenario.split, []).append(scenario)
    return families


# --- shipped scenarios ------------------------------------------------------------------------------------------
def test_every_robot_ships_scenarios_with_nominal() -> None:
    for robot in am.list_robots():
        assert "nominal" in am.list_scenarios(robot), robot
    for robot in ("half_cheetah", "ant", "cartpole"):
        assert scenario_file(robot).is_file(), robot
        assert len(am.list_scenarios(robot)) >= 5, robot


@pytest.mark.parametrize("robot, name", ALL_SCENARIOS)
def test_every_shipped_scenario_loads_and_samples(robot: str, name: str) -> None:
    scenario = am.envs.get_scenario(robot, name)
    assert scenario.name == name and scenario.robot == robot
    spec = am.load_robot(robot)
    rng = np.random.default_rng(0)
    supports = [template_support(t, spec) for t in scenario_templates(scenario)]
    for _ in range(10):
        task = scenario.sample(rng)
        assert isinstance(task, Task)
        assert len(task.at_reset) == len(scenario.at_reset) and len(task.events) == len(scenario.events)
        sampled = list(task.at_reset) + [p for e in task.events for p in e.perturbations]
        for perturbation, support in zip(sampled, supports):
            # each sampled value lies inside its template's support
            values = {"type": perturbation.type, **{k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in dataclasses.asdict(perturbation).items()}}
            assert templates_overlap(template_support(values, spec), support), (name, perturbation)
    if "mujoco" in spec.models:  # and the task applies on the physics
        sim = MujocoSimulator(spec)
        apply_all(sim, spec, list(task.at_reset) + [p for e in task.events for p in e.perturbations])


def test_every_family_has_a_train_and_a_test_split() -> None:
    for robot in ("half_cheetah", "ant", "cartpole"):
        families = _families(robot)
        assert families, robot
        for family, splits in families.items():
            assert "train" in splits and "test" in splits, (robot, family)


@pytest.mark.parametrize("robot", am.list_robots())
def test_test_scenarios_are_held_out_from_training(robot: str) -> None:
    """Held out means held out: no test task of a family can be drawn by any train scenario of it."""
    spec = am.load_robot(robot)
    for family, splits in _families(robot).items():
        for train, test in itertools.product(splits.get("train", []), splits.get("test", [])):
            assert held_out(test, train, spec), f"{robot}: {test.name} overlaps {train.name} ({family})"


def test_held_out_check_detects_overlap() -> None:
    """The disjointness check itself: overlapping ranges, shared choices and joint names vs indices."""
    spec = am.load_robot("half_cheetah")

    def scenario(*at_reset: dict[str, Any]) -> ScenarioSpec:
        return ScenarioSpec(at_reset=list(at_reset))

    train = scenario({"type": "friction", "scale": {"uniform": [0.5, 1.5]}})
    assert not held_out(scenario({"type": "friction", "scale": {"uniform": [1.4, 2.0]}}), train, spec)
    assert not held_out(scenario({"type": "friction", "scale": {"choice": [0.1, 1.0]}}), train, spec)
    assert held_out(scenario({"type": "friction", "scale": {"uniform": [1.6, 2.0]}}), train, spec)
    crippled = scenario({"type": "joint_damage", "joints": {"choice": [[0], [4]]}, "scale": 0.0})
    assert not held_out(scenario({"type": "joint_damage", "joints": ["fshin"], "scale": 0.0}), crippled, spec)
    assert not held_out(scenario({"type": "joint_damage", "legs": ["back"]}),
                        scenario({"type": "joint_damage", "joints": [0, 1, 2]}), spec)
    assert held_out(scenario({"type": "joint_damage", "joints": [5], "scale": 0.0}), crippled, spec)
    # payloads share offsets but not masses: held out
    payload = {"type": "payload", "offset_m": {"choice": [[0, 0, 0], [0.3, 0, 0]]}}
    assert held_out(scenario({**payload, "mass_kg": {"uniform": [6, 9]}}),
                    scenario({**payload, "mass_kg": {"uniform": [0, 4]}}), spec)


# --- bad scenario files ------------------------------------------------------------------------------------------
def _write(tmp_path: Path, body: str, robot: str = "half_cheetah") -> Path:
    file = tmp_path / "user_scenarios.yaml"
    file.write_text(f"robot: {robot}\nscenarios:\n" + textwrap.indent(textwrap.dedent(body), "  "))
    return file


@pytest.mark.parametrize("body, field, allowed", [
    ("x:\n  at_reset: [{type: gravity, scale: 2}]\n",
     "scenarios.x.at_reset[0].type", "joint_damage, payload, friction, mass, damping, slope"),
    ("x:\n  at_reset: [{type: mass, sclae: 2}]\n", "scenarios.x.at_reset[0].sclae", "allowed keys: scale"),
    ("x:\n  at_reset: [{type: mass, scale: {normal: [1, 0.1]}}]\n", "scenarios.x.at_reset[0].scale",
     "{choice: [values]} or {uniform: [lo, hi]}"),
    ("x:\n  at_reset: [{type: mass, scale: {uniform: [1.0]}}]\n", "scenarios.x.at_reset[0].scale.uniform",
     "[lo, hi] numbers with lo <= hi"),
    ("x:\n  at_reset: [{type: mass, scale: {uniform: [1.5, 0.5]}}]\n", "scenarios.x.at_reset[0].scale.uniform",
     "lo <= hi"),
    ("x:\n  at_reset: [{type: mass, scale: {choice: []}}]\n", "scenarios.x.at_reset[0].scale.choice",
     "non-empty list"),
    ("x:\n  at_reset: [{type: joint_damage, joints: [1], scale: {uniform: [0.5, 1.7]}}]\n",
     "scenarios.x.at_reset[0]", "joint_damage.scale: 1.7 is out of range; allowed: [-1, 1]"),
    ("x:\n  at_reset: [{type: joint_damage, joints: [1], scale: -1.5}]\n",
     "scenarios.x.at_reset[0]", "stronger motor than the robot's actuator"),
    ("x:\n  at_reset: [{type: damping, joints: [knee], scale: 2}]\n", "scenarios.x.at_reset[0]",
     "0..5 or names bthigh, bshin"),
    ("x:\n  events: [{at_step: 3, perturbations: [{type: mass, bodies: torso, scale: 2}]}]\n",
     "scenarios.x.events[0].perturbations[0].bodies", "a list of str"),
    ("x:\n  at_reset: [{type: friction, scale: {choice: [0.5, 0.0]}}]\n",
     "scenarios.x.at_reset[0].scale", "above 0.0"),
    ("x:\n  at_reset: [{type: joint_damage, joints: [7], scale: 0.0}]\n",
     "scenarios.x.at_reset[0]", "0..5 or names bthigh"),
    ("x:\n  at_reset: [{type: joint_damage, joints: {choice: [[0], [knee]]}}]\n",
     "scenarios.x.at_reset[0]", "'knee'"),
    ("x:\n  at_reset: [{type: joint_damage, legs: [middle]}]\n", "scenarios.x.at_reset[0]", "back, front"),
    ("x:\n  events:\n    - {at_step: 100, perturbations: [{type: mass, scale: 2}]}\n"
     "    - {at_step: 50, perturbations: [{type: mass, scale: 3}]}\n",
     "scenarios.x", "at_step values must be increasing"),
    ("x:\n  events: [{at_step: -1, perturbations: []}]\n", "scenarios.x.events[0].at_step", "at least 0"),
    ("x:\n  events: [{at_step: 3, perturbations: [{type: slope, degrees: 45}]}]\n",
     "scenarios.x.events[0].perturbations[0].degrees", "at most 30.0"),
    ("x:\n  split: validation\n", "scenarios.x.split", "'train', 'test', 'any'"),
    ("x:\n  familly: mass\n", "scenarios.x.familly", "family"),
    ("x:\n  name: y\n", "scenarios.x", "set by the loader"),
])
def test_bad_scenario_file_names_file_and_field(tmp_path: Path, body: str, field: str, allowed: str) -> None:
    file = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        am.make("half_cheetah", scenario=f"{file}:x")
    err = info.value
    assert err.source == str(file) and str(file) in str(err)
    assert err.field == field, str(err)
    assert allowed in str(err), str(err)


def test_friction_on_a_robot_without_contact_geoms(tmp_path: Path) -> None:
    file = _write(tmp_path, "x:\n  at_reset: [{type: friction, scale: 0.5}]\n", robot="cartpole")
    with pytest.raises(ConfigError, match="no contact_geoms") as info:
        am.make("cartpole", scenario=f"{file}:x")
    assert info.value.field == "scenarios.x.at_reset[0]"


def test_scenario_file_for_another_robot(tmp_path: Path) -> None:
    file = _write(tmp_path, "x: {}\n", robot="ant")
    with pytest.raises(ConfigError) as info:
        am.make("half_cheetah", scenario=f"{file}:x")
    assert info.value.field == "robot" and "'ant'" in str(info.value)


def test_user_scenario_file_errors(tmp_path: Path) -> None:
    file = _write(tmp_path, "x: {}\ny: {}\n")
    with pytest.raises(ValueError) as info:
        am.make("half_cheetah", scenario=f"{file}:z")
    assert str(file) in str(info.value) and "x, y" in str(info.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("robot: half_cheetah\nscenarios: {x: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as yaml_info:
        am.make("half_cheetah", scenario=f"{broken}:x")
    assert str(broken) in str(yaml_info.value)
    with pytest.raises(ConfigError, match="not found") as missing:
        am.make("half_cheetah", scenario=f"{tmp_path / 'absent.yaml'}:x")
    assert "absent.yaml" in str(missing.value)


def test_user_scenario_via_make(tmp_path: Path) -> None:
    file = _write(tmp_path, """\
        heavy_ice:
          description: a payload and an icy floor, then a broken shin
          at_reset:
            - {type: payload, mass_kg: {uniform: [2.0, 3.0]}, offset_m: [0.1, 0.0, 0.0]}
            - {type: friction, scale: 0.2}
          events:
            - at_step: 5
              perturbations: [{type: joint_damage, joints: [fshin], scale: 0.0}]
        """)
    env = am.make("half_cheetah", scenario=f"{file}:heavy_ice", seed=4)
    assert env.scenario.name == "heavy_ice" and env.scenario.robot == "half_cheetah"
    _, info = env.reset()
    payload, friction = info["task"].describe()["at_reset"]
    assert payload["type"] == "payload" and 2.0 <= payload["mass_kg"] <= 3.0
    assert friction == {"type": "friction", "scale": 0.2}
    assert info["task"].events[0].at_step == 5
    nominal_mass = am.make("half_cheetah").sim.total_mass()
    assert env.sim.total_mass() == pytest.approx(nominal_mass + payload["mass_kg"])


def test_scenario_spec_object_via_make() -> None:
    spec = ScenarioSpec(at_reset=[{"type": "mass", "scale": {"choice": [0.5, 2.0]}}])
    env = am.make("cartpole", scenario=spec, seed=0)
    _, info = env.reset()
    assert info["task"].at_reset[0].scale in (0.5, 2.0)
    with pytest.raises(ConfigError, match="no joint 3"):
        am.make("cartpole", scenario=ScenarioSpec(at_reset=[{"type": "joint_damage", "joints": [3]}]))
    with pytest.raises(ValueError, match="for robot 'ant'"):
        am.make("cartpole", scenario=dataclasses.replace(spec, robot="ant"))


# --- sampling -------------------------------------------------------------------------------------------------
def test_task_sampler_is_reproducible_under_a_seed() -> None:
    scenario = am.envs.get_scenario("half_cheetah", "payload_train")
    first = [scenario.sample(np.random.default_rng(11)) for _ in range(3)]
    assert all(task == first[0] for task in first)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert [scenario.sample(rng_a) for _ in range(20)] == [scenario.sample(rng_b) for _ in range(20)]
    other = scenario.sample(np.random.default_rng(12))
    assert other != first[0] and other.task_id != first[0].task_id
    assert first[0].task_id == scenario.sample(np.random.default_rng(11)).task_id


def test_samplers_cover_their_support() -> None:
    scenario = am.envs.get_scenario("half_cheetah", "crippled_joint_train")
    rng = np.random.default_rng(0)
    seen = {scenario.sample(rng).at_reset[0].joints for _ in range(200)}
    assert seen == {(0,), (1,), (2,), (3,)}
    friction = am.envs.get_scenario("half_cheetah", "friction_test")
    scales = np.array([friction.sample(rng).at_reset[0].scale for _ in range(200)])
    assert scales.min() >= 0.1 and scales.max() <= 0.3
    assert scales.min() < 0.12 and scales.max() > 0.28  # spread over the range, not a constant


def test_mass_damping_test_moderate_draws_both_sides_of_training_independently() -> None:
    """CaDM's test-moderate split: mass and damping each in {0.4, 0.5, 1.5, 1.6}, drawn independently
    (a light and under-damped cheetah as well as a light and over-damped one)."""
    scenario = am.envs.get_scenario("half_cheetah", "mass_damping_test_moderate")
    rng = np.random.default_rng(0)
    pairs = {(task.at_reset[0].scale, task.at_reset[1].scale) for task in (scenario.sample(rng) for _ in range(400))}
    assert {mass for mass, _ in pairs} == {0.4, 0.5, 1.5, 1.6}
    assert len(pairs) == 16  # every combination, so mass and damping are independent


def test_task_describe_and_id() -> None:
    task = Task(at_reset=(JointDamage(joints=(4,)),))
    description = task.describe()
    assert description == {"at_reset": [{"type": "joint_damage", "joints": [4], "legs": [], "scale": 0.0}],
                           "events": []}
    assert yaml.safe_load(yaml.safe_dump(description)) == description  # plain data
    assert task.task_id == Task(at_reset=(JointDamage(joints=(4,)),)).task_id
    assert task.task_id != Task(at_reset=(JointDamage(joints=(5,)),)).task_id
    assert len(task.task_id) == 12


def test_template_support_and_validation_direct() -> None:
    spec = am.load_robot("ant")
    template = PerturbationTemplate.parse({"type": "joint_damage", "legs": {"choice": [[0], [1]]}, "scale": 0.0},
                                          spec, "f.yaml", "p")
    assert template.support() == {"legs": [[0], [1]], "scale": [0.0]}
    with pytest.raises(ConfigError) as info:
        parse_scenario_file({"robot": "ant", "scenarios": {"s": {"at_reset": [{"type": "joint_damage",
                                                                                "legs": [4]}]}}},
                            spec, "f.yaml")
    assert "f.yaml: scenarios.s.at_reset[0]" in str(info.value) and "leg_1" in str(info.value)


# --- one resolver, every invalid scenario listed, events inside the episode -----------------------------------
def test_every_invalid_scenario_of_a_file_is_reported_whichever_is_asked_for(tmp_path: Path) -> None:
    file = _write(tmp_path, """\
        bad_one: {at_reset: [{type: mass, scale: -2}]}
        good: {at_reset: [{type: mass, scale: 2}]}
        bad_two: {events: [{at_step: 3, perturbations: [{type: gravity}]}]}
        """)
    for asked in ("good", "bad_one", "bad_two"):
        with pytest.raises(ScenarioFileError) as info:
            am.make("half_cheetah", scenario=f"{file}:{asked}")
        message = str(info.value)
        assert "2 invalid scenarios" in message
        assert "scenarios.bad_one.at_reset[0].scale" in message and "scenarios.bad_two.events[0]" in message
        assert [e.field for e in info.value.errors] == ["scenarios.bad_one.at_reset[0].scale",
                                                        "scenarios.bad_two.events[0].perturbations[0].type"]


def test_get_scenario_and_resolve_scenario_take_user_files(tmp_path: Path) -> None:
    file = _write(tmp_path, "mine: {at_reset: [{type: damping, joints: [fshin], scale: 20}]}\n")
    for spec in (get_scenario("half_cheetah", f"{file}:mine"), resolve_scenario("half_cheetah", f"{file}:mine")):
        assert spec.name == "mine" and spec.at_reset[0]["joints"] == ["fshin"]
    with pytest.raises(ValueError, match="allowed: nominal, .*or path/to/your_file.yaml:name"):
        resolve_scenario("half_cheetah", "lava")


def test_scenario_slug_is_a_safe_file_name() -> None:
    assert scenario_slug("crippled_joint_test") == "crippled_joint_test"
    slug = scenario_slug("/home/me/my scenarios/rust.yaml:rusty knee")
    assert re.fullmatch(r"rust-rusty_knee-[0-9a-f]{6}", slug)
    assert slug != scenario_slug("/elsewhere/rust.yaml:rusty knee")


def test_event_past_the_episode_end_is_refused_when_the_env_is_made() -> None:
    with pytest.raises(ValueError, match=r"events\[0\] at step 300 would never fire: the episode has 100 steps"):
        am.make("half_cheetah", "joint_break_midepisode", episode_steps=100)
    with pytest.raises(ValueError, match=r"step 300 .* 300 steps"):
        am.make("half_cheetah", "joint_break_midepisode", episode_steps=300)
    am.make("half_cheetah", "joint_break_midepisode", episode_steps=301)  # the event fires at the last step
    env = am.make("cartpole", episode_steps=10)
    late = Task(events=(Event(at_step=10, perturbations=(JointDamage(joints=(0,)),)),))
    with pytest.raises(ValueError, match=r"reset\(options=\{'task': ...\}\): events\[0\] at step 10"):
        env.reset(options={"task": late})


@pytest.mark.parametrize("steps", [-5, 0, 2.5, True])
def test_out_of_range_episode_steps_is_refused_naming_the_field(steps) -> None:
    with pytest.raises(ValueError, match=r"episode_steps: .* is out of range; allowed: an integer >= 1"):
        am.make("cartpole", episode_steps=steps)


def test_step_before_reset_raises_reset_needed() -> None:
    env = am.make("cartpole")
    with pytest.raises(gym.error.ResetNeeded, match=r"call env.reset\(\) first"):
        env.step(np.zeros(1))
    with pytest.raises(RuntimeError):
        env.step(np.zeros(1))
    env.reset(seed=0)
    assert np.isfinite(env.step(np.zeros(1))[1])


# --- a perturbation type of the user's own ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rust(Perturbation):
    """A rusted joint: dry friction (MuJoCo's dof_frictionloss, N*m) and 10x its viscous damping."""

    joints: tuple[int | str, ...] = ()
    friction_nm: float = bounded(1.0, lo=0.0, hi=50.0)

    def apply(self, sim, robot) -> None:
        indices = [robot.joint_index(j) for j in self.joints]
        sim.scale_damping(10.0, indices)
        sim.editable("dof_frictionloss")[sim._joint_qvel[indices]] += self.friction_nm


@pytest.fixture()
def rust_type():
    register_perturbation("test_rust", Rust)
    yield Rust
    PERTURBATION_TYPES.pop("test_rust")


def test_registered_perturbation_is_applied_from_yaml_and_restored_exactly(tmp_path: Path, rust_type) -> None:
    assert Rust.type == "test_rust" and register_perturbation("test_rust", Rust) is Rust  # again: allowed
    file = _write(tmp_path, """\
        rusty:
          at_reset: [{type: test_rust, joints: [fshin], friction_nm: 4.0}]
        rusts_later:
          events: [{at_step: 2, perturbations: [{type: test_rust, joints: [bthigh]}]}]
        """)
    env = am.make("half_cheetah", scenario=f"{file}:rusty", seed=0)
    model = env.sim.model
    nominal = {name: getattr(model, name).copy() for name in ("dof_frictionloss", "dof_damping")}
    _, info = env.reset()
    assert info["active_perturbations"] == (Rust(joints=("fshin",), friction_nm=4.0),)
    assert model.dof_frictionloss[7] == 4.0 and model.dof_damping[7] == pytest.approx(10 * nominal["dof_damping"][7])
    env.step(np.zeros(6))
    env.reset(options={"task": Task()})  # another task: the rust is gone, to the last bit
    for name, array in nominal.items():
        assert np.array_equal(getattr(model, name), array), name
    later = am.make("half_cheetah", scenario=f"{file}:rusts_later", seed=0)
    later.reset()
    frictions = []
    for _ in range(3):
        later.step(np.zeros(6))
        frictions.append(later.sim.model.dof_frictionloss[3])
    assert frictions == [0.0, 0.0, 1.0]  # in force from the event's step (the third) on
    later.reset()
    assert later.sim.model.dof_frictionloss[3] == 0.0  # and undone at the next reset
    with pytest.raises(ConfigError, match=r"friction_nm: 99.0 is out of range"):
        am.make("half_cheetah", scenario=ScenarioSpec(at_reset=[{"type": "test_rust", "friction_nm": 99.0}]))


def test_register_perturbation_refuses_bad_classes_and_taken_names(rust_type) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_perturbation("mass", Rust)

    @dataclasses.dataclass(frozen=True)
    class Other(Perturbation):
        def apply(self, sim, robot) -> None:
            pass

    with pytest.raises(ValueError, match="'test_rust' is already registered"):
        register_perturbation("test_rust", Other)
    with pytest.raises(TypeError, match="frozen dataclass subclass"):
        register_perturbation("loose", dataclasses.dataclass(type("Loose", (), {"apply": lambda s, a, b: None})))
    with pytest.raises(ValueError, match="identifier"):
        register_perturbation("my rust", Other)
    assert "loose" not in PERTURBATION_TYPES and "my rust" not in PERTURBATION_TYPES


def test_scenario_file_imports_the_module_that_registers_its_perturbation(tmp_path: Path) -> None:
    (tmp_path / "grit.py").write_text(textwrap.dedent("""\
        from dataclasses import dataclass
        from adaptive_mbrl.envs.perturbations import Perturbation, register_perturbation

        @register_perturbation("test_grit")
        @dataclass(frozen=True)
        class Grit(Perturbation):
            scale: float = 3.0

            def apply(self, sim, robot):
                sim.scale_damping(self.scale)
        """))
    file = tmp_path / "gritty.yaml"
    file.write_text("robot: cartpole\nimports: [grit.py]\nscenarios: {gritty: {at_reset: [{type: test_grit}]}}\n")
    try:
        env = am.make("cartpole", scenario=f"{file}:gritty")
        nominal = env.sim.model.dof_damping.copy()
        env.reset(seed=0)
        assert np.allclose(env.sim.model.dof_damping, 3.0 * nominal)
        am.make("cartpole", scenario=f"{file}:gritty")  # read again: imported once, registered once
    finally:
        PERTURBATION_TYPES.pop("test_grit", None)
    file.write_text("robot: cartpole\nimports: [no_such_module_xyz]\nscenarios: {}\n")
    with pytest.raises(ConfigError, match=r"imports\[0\]: cannot import 'no_such_module_xyz'"):
        am.make("cartpole", scenario=f"{file}:x")
