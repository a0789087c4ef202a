"""Recommendation metrics, as the reference computes them per sample (spec §3.1), for a whole corpus at once.

Candidates keep generation order (``first_k``) and are not de-duplicated, so duplicate beams waste
slots exactly as in the reference (B6); ``dedup=True`` is our named improvement.  Recall uses set
semantics (the reference crashes here at HEAD, B1).  A sample whose generations hold no SID at all
is ``invalid``: it scores 0 everywhere and stays in the denominator (B7).

SID mode compares candidate bodies with the answer's SID bodies as strings; PID mode maps the
first SID of each candidate (:func:`~recif_bench.sid.item_codes`) to an item through
:class:`~recif_bench.sid.SidItemMap` (0 = unknown, never a hit) and compares it with ``answer_pid``,
so a row whose answer holds no SID still has item-level targets.
``ndcg@k`` (binary relevance, ideal DCG over ``min(k, |G|)`` targets) is our addition.

Why a corpus at once: every metric of a sample follows from one number per target, the rank of
the first candidate equal to it (:func:`first_hit_ranks`, numpy over a samples x candidates x
targets block).  Each distinct candidate string is parsed once per corpus and the SID -> item map
is looked up once for all of them, so the 130k rec samples x 32 candidates of the full benchmark
score in seconds (``benchmarks/scoring_speed.py``).  lm-eval reaches this through the rec tasks'
filter (:func:`recif_bench.harness.score_rec_corpus`), which sees every document of a task.
"""

from __future__ import annotations

import itertools
import math
from typing import Container, Iterable, Sequence

import numpy as np
import pandas as pd

from recif_bench import sid, sid_arrays
from recif_bench.benchmark import RECIF_K

DEFAULT_KS = (1, RECIF_K)   # the tasks pass their own K (TaskInfo.k)
MISS = -1        # id of "no prediction": never equal to a target
PAD = -2         # padding of the target matrix: never equal to a prediction
NOT_FOUND = 2 ** 62   # rank of a target no candidate equals: beyond every cut-off k
_BLOCK = 4096    # samples per numpy block (bounds the samples x candidates x targets temporary)


def first_hit_ranks(preds: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(n, G)``: the rank of the first prediction equal to each target, ``NOT_FOUND`` where none is.

    ``preds`` ``(n, K)`` and ``truth`` ``(n, G)`` hold integer ids; ``MISS`` / ``PAD`` never match.
    A target's first rank decides all our metrics: a target counts once, at its best rank.
    """
    out = np.full(truth.shape, NOT_FOUND, dtype=np.int64)
    if truth.shape[1] == 0 or preds.shape[1] == 0:
        return out
    for lo in range(0, len(preds), _BLOCK):
        equal = truth[lo:lo + _BLOCK, :, None] == preds[lo:lo + _BLOCK, None, :]     # (block, G, K)
        first = equal.argmax(2)
        hit = np.take_along_axis(equal, first[:, :, None], 2)[:, :, 0]
        out[lo:lo + _BLOCK] = np.where(hit, first, NOT_FOUND)
    return out


def ranking_metrics(preds: np.ndarray, truth: np.ndarray, n_truth: np.ndarray, ks: Iterable[int],
                    prefix: str = "") -> dict[str, np.ndarray]:
    """pass@k, position1_pass@k, recall@k, ndcg@k of every sample (one row each).

    ``truth`` rows are de-duplicated targets in answer order, padded with ``PAD``; ``n_truth`` counts them.
    """
    ranks = first_hit_ranks(preds, truth)
    width = preds.shape[1]
    gain = [1.0 / math.log2(r + 2) for r in range(max(width, 1))]   # rank -> DCG gain
    n_truth = np.asarray(n_truth, dtype=np.int64)
    has_truth = n_truth > 0
    out: dict[str, np.ndarray] = {}
    for k in ks:
        within = ranks < k
        found = within.sum(1)
        # ideal DCG of m targets at cut-off k, summed in rank order as the per-sample definition does
        ideal = np.array([sum(1.0 / math.log2(r + 2) for r in range(min(k, m))) or 1.0
                          for m in range(n_truth.max(initial=0) + 1)])
        out[f"{prefix}pass@{k}"] = (found > 0).astype(np.float64)
        first_target = within[:, 0] if truth.shape[1] else np.zeros(len(truth), dtype=bool)
        out[f"{prefix}position1_pass@{k}"] = first_target.astype(np.float64)
        out[f"{prefix}recall@{k}"] = np.where(has_truth, found / np.maximum(n_truth, 1), 0.0)
        dcg = np.where(within, np.asarray(gain)[np.minimum(ranks, len(gain) - 1)], 0.0).sum(1)
        out[f"{prefix}ndcg@{k}"] = np.where(has_truth, dcg / ideal[n_truth], 0.0)
    return out


def ranking_metrics_of(preds: Sequence, truth: Sequence, ks: Iterable[int], prefix: str = "",
                       miss: object = None) -> dict[str, float]:
    """:func:`ranking_metrics` of one sample given as hashable ids (``miss`` = no prediction)."""
    ids: dict = {}
    for t in truth:
        if t != miss:
            ids.setdefault(t, len(ids))
    pred_row = np.array([[ids.get(p, MISS) if p != miss else MISS for p in preds]], dtype=np.int64).reshape(1, -1)
    truth_row = np.arange(len(ids), dtype=np.int64).reshape(1, -1)
    metrics = ranking_metrics(pred_row, truth_row, np.array([len(ids)]), ks, prefix)
    return {name: float(values[0]) for name, values in metrics.items()}


class RecScorer:
    """Scores rec samples: :meth:`score_corpus` for many at once, ``scorer(candidates, answer)`` for one.

    ``item_map`` enables the ``pid_`` metrics and defines the catalogue for ``legal_rate``
    (unless ``catalogue`` is given: any container of code tuples).
    """

    def __init__(self, item_map: sid.SidItemMap | None = None, fmt: sid.SidFormat = sid.DEFAULT_FORMAT,
                 strategy: str = "most_popular_after_downsampling", ks: Sequence[int] = DEFAULT_KS,
                 catalogue: Container[tuple[int, ...]] | None = None, dedup: bool = False) -> None:
        if strategy not in sid.STRATEGIES:
            raise ValueError(f"unknown SID->item strategy {strategy!r}; choose one of {sid.STRATEGIES}")
        self.item_map = item_map
        self.fmt = fmt
        self.strategy = strategy
        self.ks = tuple(ks)
        self.catalogue = catalogue
        self.dedup = dedup
        self._plain = fmt.body_pattern()
        self._pieces = fmt.body_pieces()
        self._marked_pieces = [sid.SID_BEGIN + self._pieces[0], *self._pieces[1:-1], self._pieces[-1] + sid.SID_END]
        self._packable = fmt.codebook_size ** fmt.levels < 2 ** 62    # packed codes fit the int64 ids
        self._others: dict[str, int] = {}                              # non-canonical body -> its id

    def __call__(self, candidates: Sequence[str], answer: str,
                 answer_ids: Sequence[int] | None = None) -> dict[str, float]:
        return self.score_rows([candidates], [answer], [answer_ids])[0]

    def score_rows(self, candidates: Sequence[Sequence[str]], answers: Sequence[str],
                   answer_ids: Sequence[Sequence[int] | None] | None = None) -> list[dict[str, float]]:
        """:meth:`score_corpus` as one ``{metric: value}`` dict per sample (what lm-eval records)."""
        metrics = self.score_corpus(candidates, answers, answer_ids)
        names = list(metrics)
        return [dict(zip(names, values)) for values in zip(*(metrics[name].tolist() for name in names))]

    def score_corpus(self, candidates: Sequence[Sequence[str]], answers: Sequence[str],
                     answer_ids: Sequence[Sequence[int] | None] | None = None) -> dict[str, np.ndarray]:
        """Every metric of every sample: ``{metric: float64 array (n,)}``, in sample order."""
        if len(candidates) != len(answers) or (answer_ids is not None and len(answer_ids) != len(answers)):
            raise ValueError(f"{len(candidates)} candidate lists, {len(answers)} answers"
                             + (f", {len(answer_ids)} answer id lists" if answer_ids is not None else ""))
        lengths = np.fromiter(map(len, candidates), dtype=np.int64, count=len(candidates))
        columns = self._parse(list(itertools.chain.from_iterable(candidates)))
        placed = np.arange(lengths.max(initial=0)) < lengths[:, None]     # (n, K) real candidate slots
        if self.dedup:
            placed, columns = _first_occurrences(placed, columns)
        grid = {name: _padded(values, placed, MISS if values.dtype != bool else False)
                for name, values in columns.items()}
        truth, n_truth = _padded_rows(*_first_in_row(*self._answer_body_ids(answers)))
        metrics = ranking_metrics(grid["body"], truth, n_truth, self.ks)
        if self.item_map is not None:
            given = answer_ids if answer_ids is not None else [None] * len(answers)
            rows = [() if row is None else row for row in given]
            lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
            nonzero = flat != 0
            lengths = np.bincount(np.repeat(np.arange(len(rows)), lengths)[nonzero], minlength=len(rows))
            truth, n_truth = _padded_rows(*_first_in_row(flat[nonzero], lengths))
            metrics.update(ranking_metrics(np.where(grid["item"] == 0, MISS, grid["item"]), truth, n_truth,
                                           self.ks, "pid_"))
        n_kept = placed.sum(1)
        metrics["legal_rate"] = np.where(n_kept > 0, grid["legal"].sum(1) / np.maximum(n_kept, 1), 0.0)
        metrics["n_invalid"] = (grid["valid"].sum(1) == 0).astype(np.float64)
        return metrics

    # Ids of SID bodies: a canonical body (render_body's spelling) is its packed code, so equal ids are
    # equal strings; any other non-empty body gets a negative id of its own; "" (no prediction) is MISS.

    def _answer_body_ids(self, answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of every answer's SID bodies (``sid.extract_bodies`` before de-duplication), flat,
        and their number per answer.  Answers made only of marked canonical SIDs are read at once."""
        counts = np.full(len(answers), -1, dtype=np.int64)
        packed = np.zeros(0, dtype=np.int64)
        if self._packable:
            counts, packed = sid_arrays.packed_units(answers, self._marked_pieces, self.fmt.codebook_size)
        others = np.flatnonzero(counts < 0)
        bodies = [sid.extract_bodies(answers[i]) for i in others.tolist()]
        lengths = counts.copy()
        lengths[others] = [len(b) for b in bodies]
        read_at_once = np.repeat(counts >= 0, lengths)
        flat = np.empty(int(lengths.sum()), dtype=np.int64)
        flat[read_at_once] = packed
        flat[~read_at_once] = self._body_ids([b for row in bodies for b in row])
        return flat, lengths

    def _body_ids(self, bodies: list[str]) -> np.ndarray:
        ids = (sid_arrays.plain_packed(bodies, self._pieces, self.fmt.codebook_size) if self._packable
               else np.full(len(bodies), -1))
        for i in np.flatnonzero(ids < 0).tolist():
            ids[i] = self._body_id(bodies[i])
        return ids

    def _body_id(self, body: str) -> int:
        if not body:
            return MISS
        match = self._plain.fullmatch(body)
        if self._packable and match and all(g.isascii() and g == str(int(g)) for g in match.groups()):
            codes = tuple(map(int, match.groups()))
            if all(c < self.fmt.codebook_size for c in codes):
                return sid.pack(codes, self.fmt)
        return self._others.setdefault(body, -3 - len(self._others))

    def _parse(self, generations: list[str]) -> dict[str, np.ndarray]:
        """Per generation: body id, has a valid SID, legal, item id (0 = none).

        The common cases are read for all generations at once: a generation that is exactly a
        canonical SID body (what beam search writes), or whose answer after the thought is one,
        marked or not (what the thinking flow writes); the others one distinct string at a time.
        """
        n = len(generations)
        packed = np.full(n, -1, dtype=np.int64)
        if self._packable:
            thinking = n > 0 and sid.THINK_END in str(generations[0])   # a route for speed; both are exact
            if not thinking:
                packed = sid_arrays.plain_packed(generations, self._pieces, self.fmt.codebook_size)
            retry = np.flatnonzero(packed < 0)
            if len(retry):
                answers = [_marked_body(str(generations[i])) for i in retry.tolist()]
                packed[retry] = sid_arrays.plain_packed(answers, self._pieces, self.fmt.codebook_size)
        body, valid, sid_packed = packed.copy(), packed >= 0, packed.copy()
        others = np.flatnonzero(packed < 0)
        legal_other = np.zeros(len(others), dtype=bool)
        seen: dict[str, tuple[int, bool, int, bool]] = {}
        for j, i in enumerate(others.tolist()):
            text = str(generations[i])
            parsed = seen.get(text)
            if parsed is None:
                parsed = seen[text] = self._parse_one(text)
            body[i], valid[i], sid_packed[i], legal_other[j] = parsed
        # each distinct packed SID looked up once, in sorted order (a hash table finds them: sorting
        # 4.2M ids would cost more than the lookups)
        where, distinct = pd.factorize(sid_packed)
        order = np.argsort(distinct)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        where, distinct = rank[where], distinct[order]
        legal = self._legal_packed(distinct)[where]
        legal[others] = legal_other
        item = (self.item_map.items_for_packed(distinct, self.strategy)[where] if self.item_map is not None
                else np.zeros(n, dtype=np.int64))
        return {"body": body, "valid": valid, "legal": legal, "item": item}

    def _parse_one(self, generation: str) -> tuple[int, bool, int, bool]:
        """(body id, valid, packed SID for the item lookup or -1, legal) of one generation.

        The body (SID mode, validity, legality) and the item (``sid.item_codes``: the first SID
        anywhere after the thought) are read as the reference reads them, differently."""
        body = sid.prediction_body(generation)
        codes = sid.try_parse_body(body, self.fmt) if body else None
        item_codes = sid.item_codes(generation, self.fmt) if self.item_map is not None else None
        item_packed = sid.pack(item_codes, self.fmt) if item_codes is not None else -1
        if codes is None:
            legal = False
        elif self.catalogue is not None:
            legal = codes in self.catalogue
        else:
            legal = self.item_map is None or codes in self.item_map
        return self._body_id(body), codes is not None, item_packed, legal

    def _legal_packed(self, packed: np.ndarray) -> np.ndarray:
        """``legal`` of canonical bodies given by their distinct packed codes (-1 = not one: False)."""
        if self.catalogue is not None:
            return np.array([p >= 0 and sid.unpack(p, self.fmt) in self.catalogue for p in packed.tolist()],
                            dtype=bool)
        if self.item_map is not None:
            return self.item_map.contains_packed(packed)
        return packed >= 0


def _marked_body(generation: str) -> str:
    """The answer after the thought without its ``<|sid_begin|>`` (and then ``<|sid_end|>``): when
    that is a canonical body, it is the generation's body and item SID as :func:`sid.prediction_body`
    and :func:`sid.item_codes` read them."""
    answer = generation.rpartition(sid.THINK_END)[2].strip()
    if answer.startswith(sid.SID_BEGIN):
        answer = answer[len(sid.SID_BEGIN):]
        if answer.endswith(sid.SID_END):
            answer = answer[:-len(sid.SID_END)]
    return answer


def _padded(values: np.ndarray, placed: np.ndarray, fill: object) -> np.ndarray:
    """Flat per-candidate values laid out as ``(n, K)`` rows, ``fill`` beyond each row's length."""
    out = np.full(placed.shape, fill, dtype=values.dtype)
    out[placed] = values
    return out


def _padded_rows(flat_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample target lists (the ids of all their items, row after row, ``lengths`` per row) as a
    ``PAD``-filled matrix, and the number of targets of each sample."""
    placed = np.arange(lengths.max(initial=0)) < lengths[:, None]
    return _padded(flat_ids, placed, PAD), lengths


def _first_in_row(flat_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ids with repeats dropped, first occurrences kept in order (``dict.fromkeys`` per row)."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    width = int(lengths.max(initial=0))
    if width <= 64:                                   # short rows: compare each id with those before it
        placed = np.arange(width) < lengths[:, None]
        grid = _padded(flat_ids, placed, PAD)
        repeat = np.zeros(placed.shape, dtype=bool)
        for j in range(1, width):
            repeat[:, j] = (grid[:, :j] == grid[:, j:j + 1]).any(1)
        keep = ~repeat[placed]
    else:                                             # long rows: sort (stable, so row order is kept)
        order = np.lexsort((flat_ids, owner))
        sorted_owner, sorted_ids = owner[order], flat_ids[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (sorted_owner[1:] != sorted_owner[:-1]) | (sorted_ids[1:] != sorted_ids[:-1])
        keep = np.zeros(len(order), dtype=bool)
        keep[order[first]] = True
    return flat_ids[keep], np.bincount(owner[keep], minlength=len(lengths)).astype(np.int64)


def _first_occurrences(placed: np.ndarray, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Keep each sample's first candidate of every body (``dedup``), closing the gaps."""
    body = _padded(columns["body"], placed, MISS)
    keep = placed.copy()
    earlier = np.tril(np.ones((body.shape[1],) * 2, dtype=bool), k=-1)
    for lo in range(0, len(body), _BLOCK):
        block = body[lo:lo + _BLOCK]
        keep[lo:lo + _BLOCK] &= ~((block[:, :, None] == block[:, None, :]) & earlier).any(2)
    kept_flat = keep[placed]
    lengths = keep.sum(1)
    return (np.arange(lengths.max(initial=0)) < lengths[:, None],
            {name: values[kept_flat] for name, values in columns.items()})


def summarise_rec(per_sample: Sequence[dict[str, float]]) -> dict[str, float]:
    """Corpus values outside lm-eval: means over all samples, ``n_invalid`` as a count."""
    if not per_sample:
        return {}
    keys = per_sample[0].keys()
    out = {k: sum(s[k] for s in per_sample) / len(per_sample) for k in keys if k != "n_invalid"}
    out["n_invalid"] = float(sum(s.get("n_invalid", 0.0) for s in per_sample))
    return out
