"""Recipe configs: one YAML file per run, with ``key.sub=value`` overrides from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from recif_bench.recommenders.settings import ConfigError

__all__ = ["ConfigError", "apply_override", "load", "require"]


def load(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The config at ``path`` with overrides applied; relative paths in it stay relative to the cwd."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides:
        apply_override(config, item)
    return config


def apply_override(config: dict[str, Any], item: str) -> None:
    """``train.max_steps=10`` sets ``config["train"]["max_steps"] = 10`` (the value is parsed as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not key=value")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)


def require(config: dict[str, Any], *keys: str) -> Any:
    """``config[k1][k2]...``, or a :class:`ConfigError` naming the missing key."""
    node: Any = config
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(f"config lacks {'.'.join(keys[:depth + 1])}")
        node = node[key]
    return node
