"""Strict YAML -> dataclass conversion (adaptive_mbrl/config/schema.py).

Every rejected config must raise ConfigError whose message names the file, the dotted field path and
what would have been allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml

from adaptive_mbrl.config import ConfigError, bounded, from_dict, load_yaml, to_dict

SRC = "configs/example.yaml"


@dataclass(frozen=True)
class Inner:
    """A nested mapping with a bounded float and a Literal."""

    gain: float = bounded(1.0, lo=0.0, hi=10.0)
    mode: Literal["fast", "slow"] = "fast"


@dataclass(frozen=True)
class Outer:
    """Exercises every kind of annotation the project's configs use."""

    name: str
    steps: int = bounded(10, lo=1)
    enabled: bool = True
    rate: float = 0.5
    tags: list[str] = field(default_factory=list)
    pair: tuple[float, float] = (0.0, 1.0)
    ids: tuple[int | str, ...] = ()
    limit: Optional[tuple[float, float]] = None
    inner: Inner = field(default_factory=Inner)
    table: dict[str, Inner] = field(default_factory=dict)
    weights: list[float] = bounded([0.5], lo=0.0, hi=1.0)
    anything: Any = None


@dataclass(frozen=True)
class Bounds:
    """Closed and open bounds on both sides."""

    closed: float = bounded(0.5, lo=0.0, hi=1.0)
    open_lo: float = bounded(1.0, lo=0.0, lo_open=True)
    open_hi: float = bounded(0.0, hi=1.0, hi_open=True)
    only_hi: int = bounded(0, hi=5)


@dataclass(frozen=True)
class Checked:
    """A dataclass whose own __post_init__ rejects a combination."""

    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"lo must not exceed hi, got {self.lo} > {self.hi}")


def _error(cls: type, data: Any) -> ConfigError:
    """The ConfigError that ``from_dict`` raises for ``data`` (fails the test if none is raised)."""
    with pytest.raises(ConfigError) as info:
        from_dict(cls, data, source=SRC)
    return info.value


def _assert_names(err: ConfigError, field_path: str, *allowed: str) -> None:
    """The message names the file, the dotted field path and every allowed value given."""
    message = str(err)
    assert SRC in message and err.source == SRC
    assert err.field == field_path, message
    assert field_path in message
    for text in allowed:
        assert text in message, f"{text!r} missing from {message!r}"


def test_valid_mapping_converts_types() -> None:
    cfg = from_dict(Outer, {"name": "a", "rate": 2, "pair": [1, 2], "ids": [0, "fshin"], "limit": [0.2, 1.0],
                            "inner": {"gain": 3, "mode": "slow"}, "table": {"x": {"gain": 0.5}}},
                    source=SRC)
    assert cfg.rate == 2.0 and isinstance(cfg.rate, float)  # int accepted for float, converted
    assert cfg.pair == (1.0, 2.0) and isinstance(cfg.pair, tuple)
    assert cfg.ids == (0, "fshin")
    assert cfg.limit == (0.2, 1.0)
    assert cfg.inner == Inner(gain=3.0, mode="slow")
    assert cfg.table == {"x": Inner(gain=0.5)}
    assert cfg.steps == 10 and cfg.weights == [0.5]


def test_none_is_an_empty_mapping_and_list_defaults_are_not_shared() -> None:
    assert from_dict(Bounds, None) == Bounds()
    first, second = from_dict(Outer, {"name": "x"}), from_dict(Outer, {"name": "y"})
    first.weights.append(0.9)
    assert second.weights == [0.5]


def test_unknown_key_names_the_allowed_keys() -> None:
    err = _error(Outer, {"name": "a", "stpes": 3})
    _assert_names(err, "stpes", "unknown key", "steps", "enabled", "inner")


def test_unknown_key_in_nested_dataclass_has_dotted_path() -> None:
    err = _error(Outer, {"name": "a", "inner": {"gian": 1.0}})
    _assert_names(err, "inner.gian", "gain", "mode")


def test_missing_required_key() -> None:
    err = _error(Outer, {"steps": 3})
    _assert_names(err, "name", "missing", "str")


@pytest.mark.parametrize("key, value, expected", [
    ("steps", 2.0, "int"),       # float for int
    ("steps", True, "int"),      # bool is not an int
    ("enabled", 1, "bool"),      # int is not a bool
    ("enabled", "yes", "bool"),  # a string is not a bool
    ("rate", True, "float"),     # bool is not a float
    ("rate", "0.5", "float"),    # string is not a float
    ("name", 3, "str"),          # int is not a string
    ("tags", "a", "list"),       # scalar for a list
    ("pair", 1.0, "list of 2 items"),
    ("inner", [1, 2], "a mapping with keys gain, mode"),
    ("table", [1], "a mapping of"),
])
def test_wrong_types_are_rejected(key: str, value: Any, expected: str) -> None:
    err = _error(Outer, {"name": "a", key: value})
    _assert_names(err, key, expected)


def test_list_items_name_their_index() -> None:
    err = _error(Outer, {"name": "a", "tags": ["ok", 5]})
    _assert_names(err, "tags[1]", "str")


def test_fixed_length_tuple() -> None:
    _assert_names(_error(Outer, {"name": "a", "pair": [1.0]}), "pair", "a list of 2 items", "got 1 items")
    _assert_names(_error(Outer, {"name": "a", "pair": [1.0, 2.0, 3.0]}), "pair", "got 3 items")
    _assert_names(_error(Outer, {"name": "a", "pair": [1.0, "x"]}), "pair[1]", "float")


def test_union_items_list_every_option() -> None:
    err = _error(Outer, {"name": "a", "ids": [0, 1.5]})
    _assert_names(err, "ids[1]", "int or str")


def test_literal_names_allowed_values() -> None:
    err = _error(Outer, {"name": "a", "inner": {"mode": "medium"}})
    _assert_names(err, "inner.mode", "'fast'", "'slow'")


def test_optional_accepts_null_and_keeps_inner_error() -> None:
    assert from_dict(Outer, {"name": "a", "limit": None}).limit is None
    _assert_names(_error(Outer, {"name": "a", "limit": [0.2]}), "limit", "a list of 2 items")


def test_dict_values_are_checked_with_their_key_in_the_path() -> None:
    err = _error(Outer, {"name": "a", "table": {"fast": {"gain": 1.0}, "bad": {"gain": 50.0}}})
    _assert_names(err, "table.bad.gain", "at most 10.0")
    err = _error(Outer, {"name": "a", "table": {"bad": {"mode": 3}}})
    _assert_names(err, "table.bad.mode", "'fast'")
    err = _error(Outer, {"name": "a", "table": {1: {"gain": 1.0}}})
    _assert_names(err, "table.<key>", "str")


def test_any_accepts_anything() -> None:
    assert from_dict(Outer, {"name": "a", "anything": {"x": [1, None]}}).anything == {"x": [1, None]}


@pytest.mark.parametrize("key, value, allowed", [
    ("closed", -0.1, "at least 0.0 and at most 1.0"),
    ("closed", 1.0001, "at least 0.0 and at most 1.0"),
    ("open_lo", 0.0, "above 0.0"),
    ("open_lo", -2.0, "above 0.0"),
    ("open_hi", 1.0, "below 1.0"),
    ("open_hi", 7.0, "below 1.0"),
    ("only_hi", 6, "at most 5"),
    ("closed", math.nan, "at least 0.0 and at most 1.0"),
])
def test_out_of_range_values(key: str, value: float, allowed: str) -> None:
    err = _error(Bounds, {key: value})
    _assert_names(err, key, "out of range", allowed)


def test_bound_ends_are_inclusive_or_exclusive_as_declared() -> None:
    assert from_dict(Bounds, {"closed": 0.0}).closed == 0.0
    assert from_dict(Bounds, {"closed": 1.0}).closed == 1.0
    assert from_dict(Bounds, {"open_lo": 1e-9}).open_lo == 1e-9
    assert from_dict(Bounds, {"open_hi": 0.999}).open_hi == 0.999
    assert from_dict(Bounds, {"only_hi": -100}).only_hi == -100


def test_open_lower_bound_message_does_not_claim_the_bound_is_allowed() -> None:
    """A value above an open-bounded range must not say 'at least <lo>' when lo itself is rejected."""
    @dataclass(frozen=True)
    class OpenBoth:
        x: float = bounded(1.0, lo=0.0, lo_open=True, hi=2.0)

    message = str(_error(OpenBoth, {"x": 3.0}))
    assert "above 0.0" in message and "at most 2.0" in message and "at least 0.0" not in message


def test_bounds_apply_to_each_list_item() -> None:
    assert from_dict(Outer, {"name": "a", "weights": [0.0, 1.0]}).weights == [0.0, 1.0]
    _assert_names(_error(Outer, {"name": "a", "weights": [0.2, 1.5]}), "weights[1]", "at most 1.0")


def test_post_init_value_error_becomes_config_error() -> None:
    err = _error(Checked, {"lo": 2.0, "hi": 1.0})
    assert SRC in str(err) and "lo must not exceed hi" in str(err)


def test_non_mapping_top_level() -> None:
    err = _error(Outer, [1, 2])
    assert SRC in str(err) and "a mapping with keys name" in str(err)


def test_load_yaml_good_file(tmp_path: Path) -> None:
    file = tmp_path / "good.yaml"
    file.write_text("name: demo\nsteps: 4\ninner: {mode: slow}\n")
    assert load_yaml(Outer, file) == Outer(name="demo", steps=4, inner=Inner(mode="slow"))


def test_exponent_floats_without_a_dot_are_floats(tmp_path: Path) -> None:
    """YAML 1.1 reads ``3e-5`` (no dot) as a string; a float field takes it as the number it is, bounds still
    apply, and an int field still refuses it."""
    file = tmp_path / "exp.yaml"
    file.write_text("name: demo\nrate: 3e-5\nweights: [1e-1, 5E-1]\ninner: {gain: -2e0}\n")
    err = _error(Outer, yaml.safe_load(file.read_text()))
    _assert_names(err, "inner.gain", "-2.0 is out of range", "at least 0.0")
    file.write_text("name: demo\nrate: 3e-5\nweights: [1e-1, 5E-1]\ninner: {gain: +2e0}\n")
    cfg = load_yaml(Outer, file)
    assert cfg.rate == pytest.approx(3e-5) and isinstance(cfg.rate, float)
    assert cfg.weights == [0.1, 0.5] and cfg.inner.gain == 2.0
    _assert_names(_error(Outer, {"name": "a", "steps": "1e3"}), "steps", "int")
    _assert_names(_error(Outer, {"name": "a", "rate": "3e"}), "rate", "float")


def test_load_yaml_error_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bad_value.yaml"
    file.write_text("name: demo\ninner: {gain: -1}\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(Outer, file)
    assert str(file) in str(info.value) and "inner.gain" in str(info.value) and "at least 0.0" in str(info.value)


def test_load_yaml_invalid_yaml(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: [unclosed\n  steps: 3\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(Outer, file)
    assert str(file) in str(info.value) and "not valid YAML" in str(info.value)


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    file = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as info:
        load_yaml(Outer, file)
    assert str(file) in str(info.value) and "not found" in str(info.value)


def test_to_dict_round_trip() -> None:
    cfg = Outer(name="r", steps=3, enabled=False, rate=0.25, tags=["a"], pair=(0.5, 2.0), ids=(1, "x"),
                limit=(0.1, 0.9), inner=Inner(gain=2.0, mode="slow"), table={"k": Inner(gain=0.1)},
                weights=[0.1, 0.2], anything={"free": [1, 2]})
    plain = to_dict(cfg)
    assert plain["pair"] == [0.5, 2.0] and plain["inner"] == {"gain": 2.0, "mode": "slow"}
    assert plain["table"] == {"k": {"gain": 0.1, "mode": "fast"}}
    assert from_dict(Outer, plain) == cfg


def test_config_error_is_a_value_error_with_attributes() -> None:
    err = ConfigError("f.yaml", "a.b[0]", "bad")
    assert isinstance(err, ValueError)
    assert (err.source, err.field, err.problem) == ("f.yaml", "a.b[0]", "bad")
    assert str(err) == "f.yaml: a.b[0]: bad"
    assert str(ConfigError("f.yaml", "", "bad")) == "f.yaml: bad"
