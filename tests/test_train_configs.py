"""Every shipped HF-trainer recipe's ``train:`` section builds its TrainingArguments (or trl config): a key that
transformers no longer accepts (e.g. ``warmup_ratio`` in transformers 5) fails here, not minutes into a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainers.common.trainer import training_arguments

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
# recipes that go through transformers' Trainer (pscore, sasrec, tiger and the lazy decoder have their own loops)
HF_RECIPES = sorted(p for p in CONFIGS.glob("*.yaml")
                    if any(tag in p.stem for tag in ("sft", "stage", "lcrec", "distill", "_rl")))


def test_the_hf_recipes_are_found():
    names = {p.stem for p in HF_RECIPES}
    assert {"lcrec_mini", "tiny_sft", "tiny_stage1", "qwen3_8b_stage2", "mini_distill", "mini_rl"} <= names


@pytest.mark.parametrize("path", HF_RECIPES, ids=lambda p: p.stem)
def test_train_section_builds_training_arguments(path: Path, tmp_path: Path):
    train = yaml.safe_load(path.read_text("utf-8")).get("train") or {}
    if "_rl" in path.stem:
        from trl import GRPOConfig

        from trainers.rl import RL_DEFAULTS
        args = training_arguments(tmp_path, train, RL_DEFAULTS, GRPOConfig)
    else:
        args = training_arguments(tmp_path, train)
    assert args.learning_rate == pytest.approx(float(train["learning_rate"]))
