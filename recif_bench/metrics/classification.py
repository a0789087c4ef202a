"""label_pred metrics (spec §3.2): the yes-probability of a sample, AUC and user-weighted AUC.

``wuauc`` is not in the reference (its docstrings promise it, B9).  Ours is the usual definition:
the AUC of every user who has both positive and negative samples, averaged with the user's
sample count as weight; users with a single class are excluded.  It is computed for all users at
once from average ranks (the Mann–Whitney form, which treats ties exactly as sklearn does), so
346k samples over tens of thousands of users take about a tenth of a second.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def label_from_answer(answer: str) -> int | None:
    """1 for 是, 0 for 否, None otherwise; 是 is checked first, as the reference (B10)."""
    if "是" in answer:
        return 1
    if "否" in answer:
        return 0
    return None


def yes_probability(ll_yes: float, ll_no: float) -> float:
    """p(是) / (p(是) + p(否)) from log-likelihoods, without overflow: sigmoid(ll_yes - ll_no)."""
    diff = ll_yes - ll_no
    if diff >= 0:
        return 1.0 / (1.0 + math.exp(-diff))
    e = math.exp(diff)
    return e / (1.0 + e)


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """sklearn ROC AUC; the reference's conventions: 0.5 with one class present, 0.0 with no sample."""
    if len(scores) == 0:
        return 0.0
    y = np.asarray(labels)
    if y.min() == y.max():
        return 0.5
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def wuauc(scores: Sequence[float], labels: Sequence[int], users: Sequence) -> float:
    """Sample-count-weighted mean of per-user AUCs over users with both classes; 0.0 if none has."""
    if len(scores) == 0:
        return 0.0
    import pandas as pd

    user, _ = pd.factorize(np.asarray(users, dtype=object))
    user_auc, size = _group_aucs(np.asarray(scores, dtype=float), np.asarray(labels, dtype=int), user)
    return float(np.average(user_auc, weights=size)) if len(size) else 0.0


def _group_aucs(score: np.ndarray, label: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC and sample count of every group holding both classes, from average ranks within the group."""
    order = np.lexsort((score, group))                  # by group, then score
    group, score, label = group[order], score[order], label[order]
    index = np.arange(len(group))
    new_group = np.r_[True, group[1:] != group[:-1]]
    tie_start = np.maximum.accumulate(np.where(new_group | np.r_[True, score[1:] != score[:-1]], index, 0))
    tie_last = np.flatnonzero(np.r_[tie_start[1:] != tie_start[:-1], True])
    last_of_tie = np.repeat(tie_last, np.diff(np.r_[-1, tie_last]))
    group_start = np.maximum.accumulate(np.where(new_group, index, 0))
    rank = (tie_start + last_of_tie) / 2 - group_start + 1
    size = np.bincount(group)
    pos = np.bincount(group, weights=label)
    pos_rank_sum = np.bincount(group, weights=rank * label)
    neg = size - pos
    mixed = (pos > 0) & (neg > 0)
    aucs = (pos_rank_sum[mixed] - pos[mixed] * (pos[mixed] + 1) / 2) / (pos[mixed] * neg[mixed])
    return aucs, size[mixed]
