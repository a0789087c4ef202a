"""The whole training pipeline in one command, evaluated after every stage.

    recif-train pipeline --config configs/train/mini.yaml

build-data -> base model -> the configured stages (stage 1 -> stage 2 -> SFT -> distill -> RL),
each one a recipe of this package run on the previous stage's output.  After each stage the
checkpoint is scored by ``recif_bench.evaluate`` (as ``recif-eval --pipeline NAME --stage STAGE``) into
``<output_dir>/results/<stage>/`` (one run directory per stage: the leaderboard's metric-vs-stage
plot), and the itemic-token leak rate on general prompts is measured, because distillation exists
to lower it.  ``<output_dir>/pipeline.json`` collects the per-stage figures.  Every step is
skipped when its output is complete, so a rerun resumes (an interrupted stage resumes from its
last checkpoint).
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from trainers.common import schema
from trainers.common.config import ConfigError, load, require

log = logging.getLogger(__name__)

DONE = "trainer_done"          # the marker trainers.demo writes too, so its finished stages are reusable
RECIPES = ("pretrain", "sft", "distill", "rl")


def build_data(config: Mapping[str, Any], out: Path) -> Path:
    from recif_bench.data import build, mini

    spec = dict(config.get("build_data") or {})
    if build.is_built(out):
        return out
    raw = mini.default_data_dir() / "raw" if spec.get("raw", "mini") == "mini" else Path(spec["raw"])
    build.build(build.BuildSettings(str(raw), str(out), int(spec.get("seed", 42)), int(config.get("sid_levels", 3)),
                                    int(config.get("sid_codebook", 8192)), num_proc=int(spec.get("num_proc", 0))))
    return out


def base_model(config: Mapping[str, Any], root: Path, data_dir: Path) -> Path:
    """``base: demo`` builds the demo architecture from scratch on the data; otherwise a model folder."""
    base = require(dict(config), "base")
    if base == "demo":
        from trainers import demo

        return demo.build_base(root / "base", data_dir)
    if not Path(base).exists():
        raise FileNotFoundError(f"{base}: base model folder not found")
    return Path(base)


def stage_config(stage: Mapping[str, Any], model: Path, out: Path, data_dir: Path,
                 stages: Mapping[str, Path]) -> dict[str, Any]:
    """The stage's recipe config with model, output and data folders filled in by the pipeline."""
    config = load(require(dict(stage), "config"), stage.get("set") or [])
    schema.check(str(require(dict(stage), "recipe")), config, str(stage["config"]))
    config.update(model=str(model), output_dir=str(out))
    if stage["recipe"] != "distill":   # distillation reads general prompts, not the built data
        config.setdefault("data", {})["dir"] = str(data_dir)
    if "teacher" in stage:
        teacher = str(stage["teacher"])
        config["teacher"] = str(stages.get(teacher, teacher))
    return config


def evaluate(config: Mapping[str, Any], stage: str, model: Path, root: Path) -> dict[str, Any]:
    """The stage's checkpoint evaluated (skipped when its summary exists) + the leak rate.

    ``eval`` of the config: ``tasks`` (default recif_layer1), ``sample``, ``settings`` (any other
    field of :class:`recif_bench.settings.EvalSettings`), ``leak_prompts``, ``leak_rollout``.
    """
    from recif_bench.evaluate import INPUT_ERRORS
    from recif_bench.evaluate import evaluate as evaluate_model

    spec = dict(config.get("eval") or {})
    run_dir = root / "results" / stage
    if not (run_dir / "summary.json").exists():
        try:
            summary = evaluate_model(str(model), str(spec.get("tasks", "recif_layer1")),
                                     eval_settings(config, stage, run_dir, root))
        except INPUT_ERRORS as exc:
            raise ValueError(f"evaluation of stage {stage} ({model}) failed: {exc}") from None
        print(summary.report())
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    figures = {"model": str(model), "results": str(run_dir),
               "pass@1": {t: e["metrics"].get("pass@1") for t, e in summary["tasks"].items()},
               "headline": {t: e["headline"]["value"] for t, e in summary["tasks"].items()}}
    if spec.get("leak_prompts"):
        figures["leak_rate"] = leak_rate(model, spec)
    return figures


def eval_settings(config: Mapping[str, Any], stage: str, run_dir: Path, root: Path):
    """The evaluation settings of one stage: the pipeline's SID format and ``eval`` section, tagged with the stage."""
    from dataclasses import fields

    from recif_bench.settings import EvalSettings

    spec = dict(config.get("eval") or {})
    extra = dict(spec.get("settings") or {})
    known = {f.name for f in fields(EvalSettings)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(f"eval.settings: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
    return EvalSettings(**{"sid_levels": int(config.get("sid_levels", 3)),
                           "sid_codebook": int(config.get("sid_codebook", 8192)),
                           "sample": spec.get("sample") or None, **extra,
                           "output": run_dir, "resume": run_dir.exists(),
                           "pipeline": str(config.get("name", root.name)), "stage": stage})


def leak_rate(model_dir: Path, spec: Mapping[str, Any]) -> float:
    from trainers import distill
    from trainers.common.trainer import load_model

    model, tokenizer = load_model(model_dir)
    tokenizer.padding_side = "left"
    prompts = distill.build_prompts({"prompts": spec["leak_prompts"], "think_mode": "no_think"}, tokenizer)
    settings = distill.DistillSettings(**dict(spec.get("leak_rollout") or {}))
    return distill.leak_rate(model, tokenizer, prompts, settings)


def main(config: dict[str, Any]) -> Path:
    root = Path(require(config, "output_dir"))
    root.mkdir(parents=True, exist_ok=True)
    data_dir = build_data(config, root / "data")
    previous = base_model(config, root, data_dir)
    stages: dict[str, Path] = {"base": previous}
    report: dict[str, Any] = {}
    for stage in require(config, "stages"):
        name, recipe = require(stage, "name"), require(stage, "recipe")
        if recipe not in RECIPES:
            raise ConfigError(f"stage {name}: unknown recipe {recipe!r}; choose one of {RECIPES}")
        out = root / name
        if not (out / DONE).exists():
            log.warning("pipeline stage %s (%s) -> %s", name, recipe, out)
            importlib.import_module(f"trainers.{recipe}").main(stage_config(stage, previous, out, data_dir, stages))
            (out / DONE).write_text("ok", encoding="utf-8")
        stages[name] = previous = out
        report[name] = evaluate(config, name, out, root)
        (root / "pipeline.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return root / "pipeline.json"
