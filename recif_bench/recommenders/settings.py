"""Settings dataclasses of the recommenders, read from a config's ``model`` section.

:class:`ConfigError` lives here, below both the library and the recipes, so a model's settings can
refuse a bad value with the same error the recipe configs raise (``trainers.common.config`` re-exports it).
"""

from __future__ import annotations

from typing import Any, TypeVar

from recif_bench.schema import SchemaError, build

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that cannot be used (missing key, bad value)."""


def settings(cls: type[T], values: dict[str, Any], section: str = "model") -> T:
    """A settings dataclass from a config section: an unknown key (with the nearest valid name) or a
    value of the wrong type (``hidden: "sixty-four"``) is a :class:`ConfigError` naming ``section.key``."""
    try:
        return build(cls, values, f"{section}.")
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
