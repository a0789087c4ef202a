"""Trained sequential baselines (SASRec, TIGER, the lazy decoder) as ``recif-rec`` recommenders.

``recif-eval --model sasrec --model-args checkpoint=runs/sasrec/{category}_bce`` (``{category}`` is
replaced by the Amazon task's category; the same for ``--model tiger``).  On mini-RecIF tasks the
history is read from the prompt's SIDs; on the Amazon tasks the user's whole history before the
test item is used (up to the model's own maximum length, as in the published SASRec / TIGER
protocols), found by the exact prompt the task rendered.
"""

from __future__ import annotations

import math
from functools import lru_cache

from recif_bench import sid
from recif_bench.recommenders import LOADERS, ItemModel


@lru_cache(maxsize=8)
def load_model(kind: str, path: str) -> ItemModel:
    return LOADERS[kind](path)


class SequentialRecommender:
    """A checkpoint per Amazon category (``{category}`` in the path) or one for the mini-RecIF SIDs."""

    def __init__(self, kind: str, checkpoint: str | None, fmt: sid.SidFormat) -> None:
        if not checkpoint:
            raise ValueError(f"--model {kind} needs --model-args checkpoint=<folder or .pt> "
                             "('{category}' in it is replaced by the Amazon category)")
        self.kind, self.checkpoint, self.fmt = kind, checkpoint, fmt

    def model_for(self, category: str | None = None) -> ItemModel:
        path = self.checkpoint.replace("{category}", category or "")
        model = load_model(self.kind, path)
        trained_on = model.meta.get("category")
        if category and trained_on != category:
            from recif_bench.data.reader import DataError

            raise DataError(path, f"a {self.kind} checkpoint of {trained_on or 'mini-RecIF'}, "
                                  f"not of the Amazon category {category!r}")
        return model

    def recommend(self, prompt: str, domain: str, k: int) -> list[tuple[int, ...]]:
        return [tuple(c) for c in self.model_for().top_items(sid.extract_codes(prompt, self.fmt), k)]

    def score(self, prompt: str, candidate: tuple[int, ...] | None, domain: str) -> float:
        """label_pred: the model's sigmoid score of the candidate after the prompt's other SIDs, in (0, 1)."""
        history = sid.extract_codes(prompt, self.fmt)[:-1]
        value = self.model_for().item_score(history, candidate) if candidate else 0.5
        return min(max(value, 1e-6), 1 - 1e-6) if not math.isnan(value) else 0.5

    def recommend_items(self, category: str, history: list[int], k: int) -> list[int]:
        model = self.model_for(category)
        return list(model.top_items(history[-model.max_history:], k))
