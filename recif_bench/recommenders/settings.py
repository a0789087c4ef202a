"""Settings dataclasses of the recommenders, read from a config's ``model`` section.

:class:`ConfigError` lives here, below both the library and the recipes, so a model's settings can
refuse a bad value with the same error the recipe configs raise (``trainers.common.config`` re-exports it).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that cannot be used (missing key, bad value)."""


def settings(cls: type[T], values: dict[str, Any]) -> T:
    """A settings dataclass from a config's ``model`` section; an unknown key is a :class:`ConfigError`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)
