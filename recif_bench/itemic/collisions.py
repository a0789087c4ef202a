"""Collisions: several items with one identifier, and mapping generated text back to items.

Two ways to make identifiers distinct, each selectable and reported:

* :func:`add_dedup_level` — TIGER: one more code level that numbers the items sharing a SID
  (``(..., 0)``, ``(..., 1)``, ...), so every item gets a unique SID;
* text-augmented itemic tokens (OpenOneRec Strategy 3, spec amazon_and_baselines §1.8): the SID
  followed by a few item keywords, ``<|sid_begin|>...<|sid_end|> [w1, w2, w3, w4, w5]``.  The
  keywords are GRLM's term IDs when the data ships them, else :func:`text_keywords` of the title.

:class:`ItemCatalogue` renders every item's identifier and maps a generation back to items:

1. exact match of the whole identifier -> its **collision group**: every item sharing it, in item-id
   order (``mode="group"``, GRLM's behaviour: siblings take rank slots) or only the first
   (``mode="first"``);
2. otherwise the fallback (``fallback="grlm"``), GRLM's Elastic Identifier Grounding (spec §1.4)
   extended to SIDs: an exact SID with unknown keywords -> the SID group's best member by keyword
   score; keywords alone -> the top-1 item by position-weighted keyword overlap (1.0 for an equal
   word, 0.8 for a substring, times 1/(i+1) for the i-th generated word, summed per identifier);
   a SID that is no item's -> the first item sharing its longest known code prefix.
   ``fallback="none"`` maps only exact identifiers.

Ties always go to the lowest item id, so results are reproducible.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

import numpy as np

from recif_bench import sid

SCHEMES = ("sid", "sid+keywords", "keywords")
MODES = ("group", "first")
FALLBACKS = ("grlm", "none")
_CODES = re.compile(f"(?:{sid.code_token_regex()})+")
_KEYWORDS = re.compile(r"\[([^\[\]]*)\]")
_STOPWORDS = frozenset("a an and the of for with to in on by or from is".split())


class CatalogueError(ValueError):
    """Identifiers that cannot serve as a catalogue (missing items, bad codes, oversized groups)."""


def add_dedup_level(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """Append TIGER's de-duplication code: the item's index among earlier items with the same SID."""
    codes = np.asarray(codes)
    seen: dict[tuple[int, ...], int] = defaultdict(int)
    suffix = np.empty(len(codes), dtype=codes.dtype)
    for row, key in enumerate(map(tuple, codes.tolist())):
        suffix[row] = seen[key]
        seen[key] += 1
    largest = max(seen.values(), default=0)
    if largest > codebook_size:
        raise CatalogueError(f"a SID is shared by {largest} items, more than the codebook size {codebook_size}: "
                             "the dedup level cannot number them; add an RQ level or a larger codebook")
    return np.column_stack([codes, suffix])


def text_keywords(text: str, n: int = 5) -> tuple[str, ...]:
    """The first ``n`` distinct content words of an item text (a keyword ID when no TIDs are shipped)."""
    words = [w for w in re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower()) if w not in _STOPWORDS]
    return tuple(dict.fromkeys(words))[:n]


@dataclass(frozen=True)
class ItemId:
    """The identifier of one item: SID codes, keywords, or both (Strategy 3)."""

    codes: tuple[int, ...] | None = None
    keywords: tuple[str, ...] | None = None


def parse_generation(text: str, fmt: sid.SidFormat | None) -> ItemId:
    """The first SID (loosely: any run of code tokens) and the first ``[...]`` keyword list of a text."""
    text = sid.answer_text(text)
    codes = None
    if fmt is not None and (match := _CODES.search(text)):
        codes = tuple(int(code) for _, code in sid.CODE_TOKEN.findall(match.group(0)))
    keywords = None
    if match := _KEYWORDS.search(text):
        keywords = tuple(w for w in (_clean(w) for w in match.group(1).split(",")) if w)
    return ItemId(codes, keywords)


def _clean(word: str) -> str:
    return word.strip().strip("'\"").strip().lower()


class ItemCatalogue:
    """Identifiers of a catalogue and the way back from generations to items (see module docstring)."""

    def __init__(self, ids: Mapping[int, ItemId], fmt: sid.SidFormat | None = None, mode: str = "group",
                 fallback: str = "grlm") -> None:
        if not ids:
            raise CatalogueError("empty catalogue: no item identifiers")
        if mode not in MODES or fallback not in FALLBACKS:
            raise CatalogueError(f"collision mode must be one of {MODES} and fallback one of {FALLBACKS}")
        first = next(iter(ids.values()))
        self.uses_codes, self.uses_keywords = first.codes is not None, first.keywords is not None
        if self.uses_codes and fmt is None:
            raise CatalogueError("SID identifiers need a SidFormat")
        self.fmt = fmt if self.uses_codes else None
        self.mode, self.fallback = mode, fallback
        self.ids = dict(sorted(ids.items()))
        self.groups: dict[ItemId, list[int]] = defaultdict(list)
        self.by_codes: dict[tuple[int, ...], list[int]] = defaultdict(list)
        self.by_prefix: dict[tuple[int, ...], int] = {}
        self.by_word: dict[str, set[ItemId]] = defaultdict(set)
        for item, key in self.ids.items():
            self._check(item, key)
            self.groups[key].append(item)
            if key.codes is not None:
                self.by_codes[key.codes].append(item)
                for depth in range(1, len(key.codes) + 1):
                    self.by_prefix.setdefault(key.codes[:depth], item)
            for word in key.keywords or ():
                self.by_word[word].add(key)
        self._word_matches = lru_cache(maxsize=200_000)(self._matches)

    @property
    def scheme(self) -> str:
        return "sid+keywords" if self.uses_codes and self.uses_keywords else "sid" if self.uses_codes else "keywords"

    def _check(self, item: int, key: ItemId) -> None:
        if (key.codes is not None) != self.uses_codes or (key.keywords is not None) != self.uses_keywords:
            raise CatalogueError(f"item {item}: identifier {key} does not follow the catalogue's scheme")
        if key.codes is not None:
            sid.render_body(key.codes, self.fmt)          # raises SidError naming the codes

    # ---- rendering

    @property
    def answer_prefix(self) -> str:
        """What the prompt ends with, so the model writes the rest of the identifier."""
        return sid.SID_BEGIN if self.uses_codes else ""

    def render(self, item: int) -> str:
        key = self.ids[item]
        parts = [sid.render(key.codes, self.fmt)] if key.codes is not None else []
        if key.keywords is not None:
            parts.append("[" + ", ".join(key.keywords) + "]")
        return " ".join(parts)

    def render_answer(self, item: int) -> str:
        return self.render(item)[len(self.answer_prefix):]

    # ---- statistics

    def collision_report(self) -> dict[str, float]:
        sizes = np.array([len(g) for g in self.groups.values()])
        n = int(sizes.sum())
        return {"scheme": self.scheme, "items": n, "unique_ids": int(len(sizes)),
                "collision_rate": 1.0 - len(sizes) / n, "colliding_items": float(sizes[sizes > 1].sum()) / n,
                "max_group": int(sizes.max()), "mode": self.mode, "fallback": self.fallback}

    # ---- generations -> items

    def resolve(self, generation: str) -> list[int]:
        """Items one generated identifier stands for (empty when nothing matches)."""
        key = parse_generation(generation, self.fmt)
        group = self.groups.get(key)
        if group:
            return list(group) if self.mode == "group" else [group[0]]
        if self.fallback == "none":
            return []
        if self.uses_codes and key.codes is not None and key.codes in self.by_codes:
            members = self.by_codes[key.codes]
            return [self._best_by_keywords(key.keywords, members) if key.keywords else members[0]]
        if self.uses_keywords and key.keywords:
            best = self._fuzzy(key.keywords)
            if best is not None:
                return [best]
        if self.uses_codes and key.codes:
            for depth in range(min(len(key.codes), self.fmt.levels) - 1, 0, -1):
                if key.codes[:depth] in self.by_prefix:
                    return [self.by_prefix[key.codes[:depth]]]
        return []

    def is_exact(self, generation: str) -> bool:
        """Whether a generation is exactly some item's identifier (the catalogue's ``legal_rate``)."""
        return parse_generation(generation, self.fmt) in self.groups

    def rank(self, generations: Iterable[str]) -> list[int]:
        """Candidates in order -> the ranked list of distinct items they resolve to."""
        ranked: dict[int, None] = {}
        for generation in generations:
            for item in self.resolve(generation):
                ranked.setdefault(item, None)
        return list(ranked)

    def _matches(self, word: str) -> tuple[tuple[str, float], ...]:
        return tuple((kw, 1.0 if kw == word else 0.8) for kw in self.by_word if kw == word or word in kw or kw in word)

    def _scores(self, words: Sequence[str]) -> dict[ItemId, float]:
        scores: dict[ItemId, float] = defaultdict(float)
        for i, word in enumerate(words):
            for kw, value in self._word_matches(word):
                for key in self.by_word[kw]:
                    scores[key] += value / (i + 1)
        return scores

    def _fuzzy(self, words: Sequence[str]) -> int | None:
        scores = self._scores(words)
        if not scores:
            return None
        return min((-score, self.groups[key][0]) for key, score in scores.items())[1]

    def _best_by_keywords(self, words: Sequence[str], members: Sequence[int]) -> int:
        scores = self._scores(words)
        return min(members, key=lambda item: (-scores.get(self.ids[item], 0.0), item))
