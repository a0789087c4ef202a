"""What the recommenders share: the item-model interface ``recif-rec`` calls, and the SID recommender base."""

from __future__ import annotations

import math
from typing import Any, Hashable, Protocol, Sequence

from recif_bench import sid


class ItemModel(Protocol):
    """What a trained checkpoint offers: item keys it knows, and a top-k over them after a history."""

    max_history: int
    meta: dict

    def top_items(self, history: list[Hashable], k: int) -> list[Hashable]: ...

    def item_score(self, history: list[Hashable], item: Hashable) -> float: ...


class SidRecommender:
    """What the SID recommenders (TIGER, the lazy decoder) share: the item <-> SID tables (one SID per item, every
    code inside the format) and the ``recif-rec`` interface on top of their ``generate`` and ``sid_log_prob``."""

    def __init__(self, codes: dict[Hashable, tuple[int, ...]], fmt: sid.SidFormat, meta: dict[str, Any],
                 max_history: int) -> None:
        self.codes = {item: tuple(c) for item, c in codes.items()}
        self.fmt, self.meta, self.max_history = fmt, meta, max_history
        for item, c in self.codes.items():
            if len(c) != fmt.levels or not all(0 <= x < fmt.codebook_size for x in c):
                raise ValueError(f"item {item!r}: SID {c} does not fit {fmt.levels} levels x {fmt.codebook_size} codes")
        self.items_by_sid = {c: item for item, c in self.codes.items()}
        if len(self.items_by_sid) != len(self.codes):
            raise ValueError("a SID recommender needs one SID per item: the codes have collisions (use the dedup level)")

    def generate(self, histories: Sequence[Sequence[Hashable]], k: int) -> list[list[Hashable]]:
        """Top-k catalogue items per history."""
        raise NotImplementedError

    def sid_log_prob(self, history: list[Hashable], item: Hashable) -> float:
        """log p(a catalogue item's SID | history)."""
        raise NotImplementedError

    def top_items(self, history: list[Hashable], k: int) -> list[Hashable]:
        return self.generate([history], k)[0]

    def item_score(self, history: list[Hashable], item: Hashable) -> float:
        """p(item's SID | history); 0 for an item outside the catalogue."""
        return math.exp(self.sid_log_prob(history, item)) if item in self.codes else 0.0

