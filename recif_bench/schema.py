"""Settings checked against their dataclass before anything loads: unknown keys and wrong types are refused.

Every config a user writes (a trainer YAML section, a judge JSON file, ``--model-args``) is read
into a dataclass through :func:`build`.  A misspelled key names the nearest valid one
(``train.max_stepz: unknown setting; did you mean max_steps?``) and a value of the wrong type names
the key and the expected type, so a typo never silently falls back to a default and a bad value
never fails hours later inside the trainer.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

from recif_bench.options import as_bool

T = TypeVar("T")


class SchemaError(ValueError):
    """A setting that does not fit its schema; the message names the setting."""


def nearest(name: str, choices: Iterable[str]) -> str:
    """``; did you mean X?`` for the closest valid name, or the list of valid names."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; valid: {', '.join(choices)}"


def check_keys(values: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Refuse the first key of ``values`` that is not in ``known``, naming the nearest valid one."""
    known = set(known)
    for key in values:
        if key not in known:
            raise SchemaError(f"{where}{key}: unknown setting{nearest(str(key), known)}")


def build(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """``cls(**values)`` with every key known and every value of its field's type (ints for floats are fine).

    ``where`` prefixes the messages (``"config.yaml: model."``) so they name the file and the section.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise SchemaError(f"{where.rstrip('.')}: expected a mapping of settings, got {_kind(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(values, fields, where)
    hints = typing.get_type_hints(cls)
    converted = {key: coerce(value, hints[key], f"{where}{key}") for key, value in values.items()}
    return cls(**converted)


def coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against the type hint ``hint``; the error names ``name`` and the expected type."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(value, option, name)
            except SchemaError:
                continue
        raise SchemaError(f"{name}: expected {_type_name(hint)}, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise SchemaError(f"{name}: expected one of {', '.join(map(repr, typing.get_args(hint)))}, got {value!r}")
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{name}: expected a list, got {_kind(value)} {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
        return (origin or hint)(items)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{name}: expected a mapping, got {_kind(value)} {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{name}.")
    return _scalar(value, hint, name)


def _scalar(value: Any, hint: Any, name: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip():
            try:
                return as_bool(value, name)
            except ValueError:
                pass
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise SchemaError(f"{name}: expected {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _kind(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)
