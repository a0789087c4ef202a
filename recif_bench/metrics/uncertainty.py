"""Standard errors and paired comparisons by bootstrap over users.

A user contributes several samples to a task (label_pred: up to 10 videos of one user; the rec
tasks: one or more rows per user), and those samples are correlated, so we resample *users* with
replacement and recompute each metric on the drawn users' samples (a cluster bootstrap).  The
replicates give the standard error (their standard deviation).  For two runs on the same data the
same draws are applied to both (paired), so the interval of the difference excludes most of the
between-user variance that the two runs share.

Metrics are recomputed from per-sample values the run already recorded (lm-eval's sample records):
nothing is re-scored.  Each metric is one of three kinds: a mean over samples (rec metrics, judge
scores), AUC over (score, label) pairs, or wuAUC (per-user AUC averaged with sample-count weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

ITERATIONS = 1000
SEED = 0
_CHUNK_CELLS = 4_000_000   # replicate rows x samples per weight chunk (memory bound)


@dataclass
class TaskSamples:
    """Per-sample inputs of one task's metrics, in a fixed sample order.

    ``means``: metric -> value per sample (a NaN leaves the sample out of that metric, e.g. a
    sample the judge could not score); ``scores``/``labels``: label_pred's p(是) and 1/0.
    """

    sample_ids: list[str]
    users: list[str]
    means: dict[str, np.ndarray] = field(default_factory=dict)
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)

    def metrics(self) -> list[str]:
        return list(self.means) + (["auc", "wuauc"] if self.scores is not None else [])

    def subset(self, order: Sequence[int]) -> "TaskSamples":
        idx = np.asarray(order, dtype=int)
        return TaskSamples([self.sample_ids[i] for i in idx], [self.users[i] for i in idx],
                           {k: v[idx] for k, v in self.means.items()},
                           None if self.scores is None else self.scores[idx],
                           None if self.labels is None else self.labels[idx])


def from_records(records: Sequence[Mapping[str, Any]], judged: Mapping[str, float] | None = None,
                 judged_metric: str | None = None) -> TaskSamples:
    """:class:`TaskSamples` from lm-eval sample records (``samples_<task>.jsonl`` lines).

    Numeric per-sample metric fields become means; label_pred's ``auc`` item ``[score, label]``
    becomes scores and labels.  ``judged`` (sample id -> judge score) adds the judge's metric.
    """
    ids = [str(r.get("doc", {}).get("sample_id", r.get("doc_id"))) for r in records]
    users = [str(r.get("doc", {}).get("uid") or sid) for r, sid in zip(records, ids)]
    out = TaskSamples(ids, users)
    if not records:
        return out
    first = records[0]
    names = first.get("metrics") or [k for k in first if k not in ("doc_id", "target")]   # lm-eval lists them
    for key in names:
        value = first.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "n_invalid":
            out.means[key] = np.array([float(r.get(key, np.nan)) for r in records])
    if isinstance(first.get("auc"), (list, tuple)):
        out.scores = np.array([float(r["auc"][0]) for r in records])
        out.labels = np.array([int(r["auc"][1]) for r in records])
    if judged is not None and judged_metric:
        out.means[judged_metric] = np.array([float(judged.get(sid, np.nan)) for sid in ids])
    return out


def _user_codes(users: Sequence[str]) -> tuple[np.ndarray, int]:
    uniques, codes = np.unique(np.asarray(users, dtype=object).astype(str), return_inverse=True)
    return codes.astype(int), len(uniques)


def _draws(n_users: int, n_samples: int, iterations: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of user multiplicities, shape (chunk, n_users): each row one bootstrap draw of users."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(iterations, _CHUNK_CELLS // max(1, n_samples, n_users)))
    done = 0
    while done < iterations:
        size = min(chunk, iterations - done)
        yield rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=size).astype(float)
        done += size


def _weighted_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (NaN = absent) under sample weights, one per replicate row."""
    present = ~np.isnan(values)
    total = weights[:, present].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weights[:, present] @ values[present] / total, np.nan)


class _AucPlan:
    """Weighted AUC for many weight vectors at once: scores sorted and tie groups found once."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.order = np.argsort(scores, kind="stable")
        sorted_scores = scores[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        self.pos = labels[self.order].astype(float)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = weights[:, self.order]
        pos = np.add.reduceat(w * self.pos, self.starts, axis=1)
        neg = np.add.reduceat(w * (1.0 - self.pos), self.starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        total_pos, total_neg = pos.sum(1), neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (pos * (below + 0.5 * neg)).sum(1) / (total_pos * total_neg)
        # the reference's conventions: one class present -> 0.5, no sample -> 0.0
        return np.where((total_pos > 0) & (total_neg > 0), value, np.where(total_pos + total_neg > 0, 0.5, 0.0))


def _user_aucs(scores: np.ndarray, labels: np.ndarray, codes: np.ndarray, n_users: int):
    """Per-user AUC (rank-sum, ties averaged), sample count, and which users have both classes (wuAUC's terms)."""
    import pandas as pd

    ranks = pd.DataFrame({"user": codes, "score": scores}).groupby("user")["score"].rank(method="average").to_numpy()
    counts = np.bincount(codes, minlength=n_users).astype(float)
    pos = np.bincount(codes, weights=labels.astype(float), minlength=n_users)
    pos_ranks = np.bincount(codes, weights=ranks * labels, minlength=n_users)
    neg = counts - pos
    eligible = (pos > 0) & (neg > 0)
    aucs = np.zeros(n_users)
    aucs[eligible] = (pos_ranks[eligible] - pos[eligible] * (pos[eligible] + 1) / 2) / (pos[eligible] * neg[eligible])
    return aucs, counts, eligible


def replicates(samples: TaskSamples, iterations: int = ITERATIONS, seed: int = SEED,
               metrics: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Bootstrap replicates (one value per draw of users) of each metric of ``samples``."""
    return paired_replicates([samples], iterations, seed, metrics)[0]


def paired_replicates(runs: Sequence[TaskSamples], iterations: int = ITERATIONS, seed: int = SEED,
                      metrics: Sequence[str] | None = None) -> list[dict[str, np.ndarray]]:
    """Replicates of several runs over the SAME samples (same order), under the same user draws."""
    codes, n_users = _user_codes(runs[0].users)
    names = list(metrics) if metrics is not None else runs[0].metrics()
    out: list[dict[str, list[np.ndarray]]] = [{m: [] for m in names} for _ in runs]
    plans = [_AucPlan(r.scores, r.labels) if r.scores is not None and "auc" in names else None for r in runs]
    user_terms = [_user_aucs(r.scores, r.labels, codes, n_users) if r.scores is not None and "wuauc" in names
                  else None for r in runs]
    if n_users == 0:
        return [{m: np.full(iterations, np.nan) for m in names} for _ in runs]
    for draw in _draws(n_users, len(codes), iterations, seed):
        weights = draw[:, codes]
        for run, plan, terms, acc in zip(runs, plans, user_terms, out):
            for metric in names:
                if metric in run.means:
                    acc[metric].append(_weighted_means(weights, run.means[metric]))
                elif metric == "auc" and plan is not None:
                    acc[metric].append(plan(weights))
                elif metric == "wuauc" and terms is not None:
                    aucs, counts, eligible = terms
                    mass = draw[:, eligible] * counts[eligible]
                    total = mass.sum(1)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        acc[metric].append(np.where(total > 0, mass @ aucs[eligible] / total, 0.0))
    return [{m: np.concatenate(v) for m, v in acc.items() if v} for acc in out]


def standard_errors(samples: TaskSamples, iterations: int = ITERATIONS, seed: int = SEED,
                    metrics: Sequence[str] | None = None) -> dict[str, float | None]:
    """Bootstrap standard error of each metric (None when it cannot vary: fewer than 2 users)."""
    if len(set(samples.users)) < 2:
        return {m: None for m in (metrics or samples.metrics())}
    return {m: _finite(np.nanstd(r, ddof=1)) for m, r in replicates(samples, iterations, seed, metrics).items()}


@dataclass(frozen=True)
class Difference:
    """``a - b`` on the shared samples with its paired-bootstrap 95% interval."""

    metric: str
    delta: float
    low: float
    high: float
    n_samples: int
    n_users: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "delta": self.delta, "ci95": [self.low, self.high],
                "significant": self.significant, "n_samples": self.n_samples, "n_users": self.n_users}


def compare(a: TaskSamples, b: TaskSamples, metrics: Sequence[str], iterations: int = ITERATIONS,
            seed: int = SEED) -> list[Difference]:
    """Paired bootstrap of ``a - b`` over the users the two runs share (samples matched by id)."""
    index_b = {sid: i for i, sid in enumerate(b.sample_ids)}
    shared = [(i, index_b[sid]) for i, sid in enumerate(a.sample_ids) if sid in index_b]
    if not shared:
        return []
    left, right = a.subset([i for i, _ in shared]), b.subset([j for _, j in shared])
    metrics = [m for m in metrics if m in left.metrics() and m in right.metrics()]
    point_a, point_b = point_values(left, metrics), point_values(right, metrics)
    rep_a, rep_b = paired_replicates([left, right], iterations, seed, metrics)
    out = []
    for metric in metrics:
        diff = rep_a[metric] - rep_b[metric]
        diff = diff[~np.isnan(diff)]
        low, high = (np.percentile(diff, [2.5, 97.5]) if len(diff) else (np.nan, np.nan))
        out.append(Difference(metric, point_a[metric] - point_b[metric], float(low), float(high),
                              len(shared), len(set(left.users))))
    return out


def point_values(samples: TaskSamples, metrics: Sequence[str]) -> dict[str, float]:
    """The metrics on all samples once (weights 1): the estimates the replicates spread around."""
    codes, n_users = _user_codes(samples.users)
    ones = np.ones((1, len(codes)))
    out = {}
    for metric in metrics:
        if metric in samples.means:
            out[metric] = float(_weighted_means(ones, samples.means[metric])[0])
        elif metric == "auc":
            out[metric] = float(_AucPlan(samples.scores, samples.labels)(ones)[0])
        elif metric == "wuauc":
            aucs, counts, eligible = _user_aucs(samples.scores, samples.labels, codes, n_users)
            total = counts[eligible].sum()
            out[metric] = float(counts[eligible] @ aucs[eligible] / total) if total else 0.0
    return out


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
