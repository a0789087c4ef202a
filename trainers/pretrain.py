"""Pretraining recipe: stage 1 itemic-text alignment and stage 2 co-pretraining (spec training §4.6).

    recif-train pretrain --config configs/train/qwen3_1.7b_stage1.yaml

Stage 1 trains only the itemic rows of the embedding matrix (and of the head when untied), with
no weight decay, so every text row and every other weight stays bit-identical; text still flows
through the loss (mix general text in: it stabilises the alignment).  Stage 2 trains all
parameters on packed rec + general data.  Both use the recipe defaults of
:mod:`trainers.common.trainer` (AdamW 0.9/0.95, wd 0.1, cosine to min LR, clip 1.0).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recif_bench.itemic.vocab import find_itemic_ids
from trainers.common import dataset, trainer
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)


def main(config: dict[str, Any]) -> Path:
    stage = int(require(config, "stage"))
    if stage not in (1, 2):
        raise ConfigError(f"stage must be 1 or 2, got {stage}")
    model, tokenizer = trainer.load_model(require(config, "model"))
    train = dict(config.get("train") or {})
    if stage == 1:
        ids = find_itemic_ids(tokenizer)
        trainer.train_only_itemic_rows(model, ids)
        train["weight_decay"] = 0.0   # decay would move the frozen text rows
        log.warning("stage 1: training %d itemic rows only", len(ids))
    data, collator = dataset.build(require(config, "data"), tokenizer,
                                     Path(require(config, "output_dir")) / dataset.CACHE_DIR)
    return trainer.run(model, tokenizer, data, collator, require(config, "output_dir"), train)
