"""What each recipe's YAML may hold, checked when the file is loaded: before any model or data loads.

A misspelled key (``train.max_stepz``, ``data.domian``) used to be ignored, so a run trained with a
default (on video instead of ads); a value of the wrong type (``train.max_steps: "ten"``) failed only
after the model and data had loaded.  :func:`check` refuses both with one line naming the key and,
for a typo, the nearest valid name.

What is checked: the top-level keys of every recipe (and the pipeline's); the ``model`` section of the recommender
recipes against their settings dataclass; the ``train`` section of the LLM recipes against the
fields of transformers' ``TrainingArguments`` (trl's ``GRPOConfig`` for ``rl``); the ``data``
section of the next-item recipes (keys and the known sources / domains).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Mapping

from recif_bench.recommenders.settings import ConfigError, settings
from recif_bench.schema import SchemaError, check_keys, coerce

_LLM_TOP = {"model", "output_dir", "data", "train", "stage", "teacher", "rollout", "loss", "reward",
            "sid_levels", "sid_codebook"}
_NEXT_ITEM_TOP = {"output_dir", "data", "model"}
_NEXT_ITEM_DATA = {"source", "dir", "category", "item_ids", "raw", "domain", "sid_levels", "sid_codebook"}
SOURCES = ("amazon", "recif")
DOMAINS = ("video", "ad", "product")


def check(recipe: str, config: Mapping[str, Any], path: str) -> None:
    """Refuse the first unknown key or badly typed value of ``config`` (recipe ``recipe``, file ``path``)."""
    checker = _CHECKERS.get(recipe)
    if checker is None:
        return
    try:
        checker(config, f"{path}: ")
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _llm(training_config: Callable[[], type]) -> Callable[[Mapping[str, Any], str], None]:
    def check_llm(config: Mapping[str, Any], where: str) -> None:
        check_keys(config, _LLM_TOP, where)
        _check_section_type(config, ("data", "train", "rollout", "loss", "reward"), where)
        _check_fields(training_config(), config.get("train") or {}, f"{where}train.", skip={"output_dir"})
    return check_llm


def _next_item(model_config: Callable[[], type]) -> Callable[[Mapping[str, Any], str], None]:
    def check_next_item(config: Mapping[str, Any], where: str) -> None:
        check_keys(config, _NEXT_ITEM_TOP, where)
        _check_section_type(config, ("data", "model"), where)
        data = config.get("data") or {}
        check_keys(data, _NEXT_ITEM_DATA, f"{where}data.")
        for key, choices in (("source", SOURCES), ("domain", DOMAINS)):
            if key in data and data[key] not in choices:
                raise SchemaError(f"{where}data.{key}: {data[key]!r} is not one of {', '.join(choices)}")
        settings(model_config(), dict(config.get("model") or {}))
    return check_next_item


def _pscore(config: Mapping[str, Any], where: str) -> None:
    from recif_bench.recommenders.pscore import PScoreConfig
    from trainers.pscore import TrainConfig

    check_keys(config, {"output_dir", "data", "model", "train", "loss"}, where)
    _check_section_type(config, ("data", "model", "train", "loss"), where)
    check_keys(config.get("data") or {}, {"raw"}, f"{where}data.")
    check_keys(config.get("loss") or {}, {"weights"}, f"{where}loss.")
    settings(PScoreConfig, dict(config.get("model") or {}))
    settings(TrainConfig, dict(config.get("train") or {}), "train")


def _pipeline(config: Mapping[str, Any], where: str) -> None:
    check_keys(config, {"name", "output_dir", "sid_levels", "sid_codebook", "build_data", "base", "stages", "eval"},
               where)
    _check_section_type(config, ("build_data", "eval"), where)
    check_keys(config.get("build_data") or {}, {"raw", "seed"}, f"{where}build_data.")


def _think_data(config: Mapping[str, Any], where: str) -> None:
    from trainers.think_data import Settings

    values = {k: v for k, v in config.items() if k != "sid"}
    _check_fields(Settings, values, where, skip={"fmt"})
    check_keys(config.get("sid") or {}, {"levels", "codebook"}, f"{where}sid.")


def _check_section_type(config: Mapping[str, Any], sections: tuple[str, ...], where: str) -> None:
    for name in sections:
        if config.get(name) is not None and not isinstance(config[name], Mapping):
            raise SchemaError(f"{where}{name}: expected a section of key: value settings, got {config[name]!r}")


def _check_fields(cls: type, values: Mapping[str, Any], where: str, skip: set[str]) -> None:
    """Keys are fields of ``cls``; values of plain int / float / bool / str fields have that type."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in skip}
    check_keys(values, fields, where)
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key)
        if _plain(hint):
            coerce(value, hint, f"{where}{key}")


def _plain(hint: Any) -> bool:
    """int, float, bool, str or Optional of one of them (TrainingArguments' other fields take many forms)."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] \
        if typing.get_origin(hint) in (typing.Union, types.UnionType) else [hint]
    return len(options) == 1 and options[0] in (int, float, bool, str)


def _training_arguments() -> type:
    from transformers import TrainingArguments

    return TrainingArguments


def _grpo_config() -> type:
    from trl import GRPOConfig

    return GRPOConfig


def _sasrec() -> type:
    from recif_bench.recommenders.sasrec import SASRecConfig

    return SASRecConfig


def _tiger() -> type:
    from recif_bench.recommenders.tiger import TigerConfig

    return TigerConfig


def _lazy_decoder() -> type:
    from recif_bench.recommenders.lazy_decoder import LazyDecoderConfig

    return LazyDecoderConfig


_CHECKERS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "pretrain": _llm(_training_arguments), "sft": _llm(_training_arguments),
    "distill": _llm(_training_arguments), "rl": _llm(_grpo_config),
    "sasrec": _next_item(_sasrec), "tiger": _next_item(_tiger), "lazy-decoder": _next_item(_lazy_decoder),
    "pscore": _pscore, "pipeline": _pipeline, "think-data": _think_data,
}
