"""Recommendation metrics of one sample, as the reference computes them (spec §3.1).

Candidates keep generation order (``first_k``) and are not de-duplicated, so duplicate beams waste
slots exactly as in the reference (B6); ``dedup=True`` is our named improvement.  Recall uses set
semantics (the reference crashes here at HEAD, B1).  A sample whose generations hold no SID at all
is ``invalid``: it scores 0 everywhere and stays in the denominator (B7).

SID mode compares candidate bodies with the answer's SID bodies as strings; PID mode maps the
first SID of each candidate (:func:`~recif_bench.sid.item_codes`) to an item through
:class:`~recif_bench.sid.SidItemMap` (0 = unknown, never a hit) and compares it with ``answer_pid``,
so a row whose answer holds no SID still has item-level targets.
``ndcg@k`` (binary relevance, ideal DCG over ``min(k, |G|)`` targets) is our addition.
"""

from __future__ import annotations

import math
from typing import Container, Iterable, Sequence

from recif_bench import sid
from recif_bench.benchmark import RECIF_K

DEFAULT_KS = (1, RECIF_K)   # the tasks pass their own K (TaskInfo.k)


def _ranking_metrics(preds: Sequence, truth: Sequence, ks: Iterable[int], prefix: str,
                     miss: object) -> dict[str, float]:
    """pass@k, position1_pass@k, recall@k, ndcg@k of ordered predictions against ordered truth."""
    gold = set(truth)
    first = truth[0] if truth else None
    out: dict[str, float] = {}
    for k in ks:
        top = preds[:k]
        hits = [p != miss and p in gold for p in top]
        found = {p for p, h in zip(top, hits) if h}
        out[f"{prefix}pass@{k}"] = float(any(hits))
        out[f"{prefix}position1_pass@{k}"] = float(first is not None and first in top)
        out[f"{prefix}recall@{k}"] = len(found) / len(gold) if gold else 0.0
        out[f"{prefix}ndcg@{k}"] = _ndcg(top, gold, k)
    return out


def _ndcg(top: Sequence, gold: set, k: int) -> float:
    if not gold:
        return 0.0
    seen: set = set()
    dcg = 0.0
    for rank, p in enumerate(top):
        if p in gold and p not in seen:   # a target earns credit once, at its best rank
            seen.add(p)
            dcg += 1.0 / math.log2(rank + 2)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(gold))))
    return dcg / ideal


class RecScorer:
    """Scores rec samples; caches the parse / lookup of each distinct candidate string.

    ``item_map`` enables the ``pid_`` metrics and defines the catalogue for ``legal_rate``
    (unless ``catalogue`` is given: any container of code tuples).
    """

    def __init__(self, item_map: sid.SidItemMap | None = None, fmt: sid.SidFormat = sid.DEFAULT_FORMAT,
                 strategy: str = "most_popular_after_downsampling", ks: Sequence[int] = DEFAULT_KS,
                 catalogue: Container[tuple[int, ...]] | None = None, dedup: bool = False) -> None:
        self.item_map = item_map
        self.fmt = fmt
        self.strategy = strategy
        self.ks = tuple(ks)
        self.catalogue = catalogue if catalogue is not None else item_map
        self.dedup = dedup
        self._parsed: dict[str, tuple[str, tuple[int, ...] | None, int, bool]] = {}

    def _parse(self, generation: str) -> tuple[str, tuple[int, ...] | None, int, bool]:
        """(body, codes or None, item id, legal) of one generation, computed once per string."""
        cached = self._parsed.get(generation)
        if cached is None:
            body = sid.prediction_body(generation)
            codes = sid.try_parse_body(body, self.fmt) if body else None
            item = (self.item_map.item_for(sid.item_codes(generation, self.fmt), self.strategy)
                    if self.item_map is not None else 0)
            legal = codes is not None and (self.catalogue is None or codes in self.catalogue)
            cached = (body, codes, item, legal)
            if len(self._parsed) < 2_000_000:
                self._parsed[generation] = cached
        return cached

    def __call__(self, candidates: Sequence[str], answer: str,
                 answer_ids: Sequence[int] | None = None) -> dict[str, float]:
        parsed = [self._parse(c) for c in candidates]
        if self.dedup:
            parsed = _first_occurrences(parsed)
        bodies = [p[0] for p in parsed]
        metrics = _ranking_metrics(bodies, sid.extract_bodies(answer), self.ks, "", miss="")
        if self.item_map is not None:
            truth = list(dict.fromkeys(i for i in (answer_ids or []) if i != 0))
            metrics.update(_ranking_metrics([p[2] for p in parsed], truth, self.ks, "pid_", miss=0))
        n_valid = sum(p[1] is not None for p in parsed)
        metrics["legal_rate"] = sum(p[3] for p in parsed) / len(parsed) if parsed else 0.0
        metrics["n_invalid"] = float(n_valid == 0)
        return metrics


def _first_occurrences(parsed: list) -> list:
    seen: set[str] = set()
    out = []
    for p in parsed:
        if p[0] not in seen:
            seen.add(p[0])
            out.append(p)
    return out


def summarise_rec(per_sample: Sequence[dict[str, float]]) -> dict[str, float]:
    """Corpus values outside lm-eval: means over all samples, ``n_invalid`` as a count."""
    if not per_sample:
        return {}
    keys = per_sample[0].keys()
    out = {k: sum(s[k] for s in per_sample) / len(per_sample) for k in keys if k != "n_invalid"}
    out["n_invalid"] = float(sum(s.get("n_invalid", 0.0) for s in per_sample))
    return out
