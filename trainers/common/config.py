"""Recipe configs: one YAML file per run, with ``key.sub=value`` overrides from the command line.

A config is named by path or by the name of a shipped one (``tiny_sft`` is ``configs/train/tiny_sft.yaml`` of the
installed configs home, :data:`recif_bench_configs.HOME`), so ``recif-train sft --config tiny_sft`` works from any
folder after ``pip install``.  Paths inside a config (runs, data) stay relative to the working directory; a file a
config ships with (``general_prompts.jsonl``) is found by :func:`shipped_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from recif_bench.recommenders.settings import ConfigError
from recif_bench_configs import HOME

__all__ = ["ConfigError", "apply_override", "find", "load", "require", "shipped_file", "shipped_names"]

TRAIN_CONFIGS = HOME / "train"


def shipped_names() -> list[str]:
    """Names of the shipped recipe configs (``tiny_sft``, ``qwen3_1.7b_sft``, ...)."""
    return sorted(p.stem for p in TRAIN_CONFIGS.glob("*.yaml"))


def shipped_file(path: str | Path) -> Path:
    """``path`` when it exists from the working directory; else the shipped file of that relative path, looked up
    in ``configs/train/`` (``general_prompts.jsonl``) or, for ``configs/...``, in the configs home.  When neither
    exists, ``path`` unchanged (the caller says what is missing, or reads it as a hub name)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    candidates = [HOME.joinpath(*parts[1:])] if parts[0] == "configs" and len(parts) > 1 else []
    candidates.append(TRAIN_CONFIGS / path)
    return next((c for c in candidates if c.exists()), path)


def find(name_or_path: str | Path) -> Path:
    """The config file a ``--config`` value names: a path, or a shipped config's name (with or without ``.yaml``)."""
    text = str(name_or_path)
    path = shipped_file(text)
    if path.is_file():
        return path
    if Path(text).parent != Path("."):
        raise ConfigError(f"{text}: config file not found")
    path = shipped_file(text if text.endswith((".yaml", ".yml")) else f"{text}.yaml")
    if not path.is_file():
        raise ConfigError(f"{text}: config file not found, and no shipped config of that name "
                          f"(shipped: {', '.join(shipped_names())})")
    return path


def load(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The config a path or shipped name points to (:func:`find`), with overrides applied."""
    path = find(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one clause: what is wrong and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem}, line {mark.line + 1} column {mark.column + 1}" if mark is not None else problem
