"""Strict conversion of YAML data into typed dataclasses.

Every config in the project (robots, scenarios, controller presets, suites) is a dataclass. ``from_dict``
walks the dataclass's type hints and rejects unknown keys, missing required keys, wrong types and values
outside the bounds declared with :func:`bounded`. Each error names the file, the dotted field path and
what is allowed, e.g.::

    sim_configs/scenarios/ant.yaml: scenarios.leg3.at_reset[0].scale: 1.7 is above the maximum 1.0
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")

_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""A float in exponent notation that YAML 1.1 reads as a string when it has no dot (``3e-5``, ``1e3``)."""


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range.

    Attributes:
        source: the file (or other origin) of the config.
        field: dotted path of the offending field, e.g. ``scenarios.nominal.events[0].at_step``.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source, self.field, self.problem = source, field, problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


def bounded(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False, hi_open: bool = False) -> Any:
    """A dataclass field whose numeric value (or each number in a list of them) must lie in [lo, hi].

    ``lo_open`` / ``hi_open`` make the bound strict. Use as ``scale: float = bounded(1.0, lo=0.0)``.
    """
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {_describe(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _check_bounds(value: Any, meta: typing.Mapping[str, Any], source: str, path: str) -> None:
    if not meta or isinstance(value, bool):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_bounds(item, meta, source, f"{path}[{i}]")
        return
    if not isinstance(value, (int, float)):
        return
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return
    allowed = " and ".join(
        ([f"{'above' if meta.get('lo_open') else 'at least'} {lo}"] if lo is not None else [])
        + ([f"{'below' if meta.get('hi_open') else 'at most'} {hi}"] if hi is not None else []))
    too_low = lo is not None and (value < lo or (meta.get("lo_open") and value == lo))
    too_high = hi is not None and (value > hi or (meta.get("hi_open") and value == hi))
    if too_low or too_high or value != value:  # NaN compares false with every bound
        raise ConfigError(source, path, f"{value!r} is out of range; allowed: {allowed}")


def _convert(value: Any, tp: Any, source: str, path: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise ConfigError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(source, path, f"expected null, got {value!r}")
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(get_args(tp)):
            return None
        if len(options) == 1:  # Optional[X]: keep X's precise error
            return _convert(value, options[0], source, path)
        for option in options:
            try:
                return _convert(value, option, source, path)
            except ConfigError:
                continue
        raise ConfigError(source, path, f"{value!r} is not valid; allowed: {_describe(tp)}")
    if origin is Literal:
        if any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in get_args(tp)):
            return value
        raise ConfigError(source, path, f"{value!r} is not allowed; allowed: {_describe(tp)}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source=source, path=path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, path, f"expected {_describe(tp)}, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(source, path, f"expected {_describe(tp)}, got {len(value)} items")
            return tuple(_convert(v, a, source, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, source, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected {_describe(tp)}, got {value!r}")
        key_tp, val_tp = get_args(tp) or (str, Any)
        return {_convert(k, key_tp, source, f"{path}.<key>"): _convert(v, val_tp, source, f"{path}.{k}")
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(source, path, f"expected {_describe(tp)}, got {value!r}")


def from_dict(cls: type[T], data: Any, *, source: str = "<config>", path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly.

    Args:
        cls: the dataclass type.
        data: a mapping (e.g. parsed YAML); ``None`` counts as an empty mapping.
        source: where the data came from, used in error messages (usually a file path).
        path: dotted prefix of this mapping inside the file, used in error messages.

    Raises:
        ConfigError: unknown or missing keys, wrong types, out-of-range values, or a ``ValueError`` raised
            by the dataclass's own ``__post_init__`` (re-raised with file and field).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, path, f"expected {_describe(cls)}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    prefix = f"{path}." if path else ""
    if unknown:
        raise ConfigError(source, prefix + str(unknown[0]),
                          f"unknown key; allowed keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        field_path = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(source, field_path, f"required key is missing; expected {_describe(hints[name])}")
            continue
        value = _convert(data[name], hints[name], source, field_path)
        _check_bounds(value, f.metadata, source, field_path)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(source, path or cls.__name__, str(err)) from None


def load_yaml(cls: type[T], file: str | Path) -> T:
    """Read a YAML file into dataclass ``cls`` (see :func:`from_dict`)."""
    file = Path(file)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(str(file), "", "file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(file), "", f"not valid YAML: {err}") from None
    return from_dict(cls, data, source=str(file))


def to_dict(obj: Any) -> Any:
    """Plain-data (YAML/JSON-ready) view of a dataclass tree; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
