"""A recipe's ``data:`` section -> the Trainer's dataset and collator.

    data:
      dir: runs/data            # output of `recif-train build-data`
      mixture: {sft_video: 1.0, sft_label_pred: 0.3}   # file -> copies of its rows per epoch
      general: []               # general-text mixer entries (trainers.common.mixer)
      max_length: 1024
      packing: true
      seed: 0
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from trainers.common import collate, mixer, samples
from trainers.common.config import require

log = logging.getLogger(__name__)


def build(data: Mapping[str, Any], tokenizer: Any) -> tuple[list, Any]:
    seed = int(data.get("seed", 0))
    rows = samples.mix(require(dict(data), "mixture"), require(dict(data), "dir"), seed)
    rows += mixer.general_rows(data.get("general") or [], seed)
    max_length = int(data.get("max_length", 2048))
    tokenized = samples.tokenize_all(tokenizer, rows, max_length)
    if not tokenized:
        raise ValueError("no training samples left (empty mixture, or every sample longer than max_length)")
    tokens = sum(len(s) for s in tokenized)
    supervised = sum(sum(label != samples.IGNORE for label in s.labels) for s in tokenized)
    log.warning("training data: %d samples, %d tokens, %d supervised", len(tokenized), tokens, supervised)
    return collate.batches(tokenized, bool(data.get("packing", True)), max_length, tokenizer.pad_token_id)
