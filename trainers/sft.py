"""Multi-task SFT recipe (spec training §4.3-4.4): all parameters, assistant tokens only.

    recif-train sft --config configs/train/qwen3_1.7b_sft.yaml

Conversations are rendered with the soft-switch convention of
:func:`recif_bench.chat.render_conversation` (``/no_think`` + empty think block for plain
answers, ``/think`` for answers with reasoning), the same prompt evaluation uses; the loss covers
every assistant token and its ``<|im_end|>``.  The task mixture is the config's
``data.mixture`` (file -> copies of its rows), general-domain chat data comes through
``data.general``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers.common import dataset, trainer
from trainers.common.config import require


def main(config: dict[str, Any]) -> Path:
    model, tokenizer = trainer.load_model(require(config, "model"))
    data, collator = dataset.build(require(config, "data"), tokenizer,
                                     Path(require(config, "output_dir")) / dataset.CACHE_DIR)
    return trainer.run(model, tokenizer, data, collator, require(config, "output_dir"),
                       dict(config.get("train") or {}))
