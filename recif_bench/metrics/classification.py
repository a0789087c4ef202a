"""label_pred metrics (spec §3.2): the yes-probability of a sample, AUC and user-weighted AUC.

``wuauc`` is not in the reference (its docstrings promise it, B9).  Ours is the usual definition:
the AUC of every user who has both positive and negative samples, averaged with the user's
sample count as weight; users with a single class are excluded.  It is computed for all users at
once from average ranks (the Mann–Whitney form, which treats ties exactly as sklearn does), so
346k samples over tens of thousands of users take well under a second.
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
    if len(np.unique(y)) < 2:
        return 0.5
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores, dtype=float)))


def wuauc(scores: Sequence[float], labels: Sequence[int], users: Sequence) -> float:
    """Sample-count-weighted mean of per-user AUCs over users with both classes; 0.0 if none has."""
    if len(scores) == 0:
        return 0.0
    import pandas as pd

    user, _ = pd.factorize(np.asarray(users, dtype=object))
    score, label = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    order = np.lexsort((score, user))                 # by user, then score
    user, score, label = user[order], score[order], label[order]
    n = len(user)
    new_user = np.r_[True, user[1:] != user[:-1]]
    new_value = new_user | np.r_[True, score[1:] != score[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    tie_start = np.maximum.accumulate(np.where(new_value, np.arange(n), 0))
    tie_end = np.r_[tie_start[1:] != tie_start[:-1], True].nonzero()[0]     # last index of each tie group
    last_of_tie = np.repeat(tie_end, np.diff(np.r_[-1, tie_end]))
    rank = (tie_start + last_of_tie) / 2 - user_start + 1                # average rank within the user
    size = np.bincount(user)
    pos = np.bincount(user, weights=label)
    pos_rank_sum = np.bincount(user, weights=rank * label)
    neg = size - pos
    mixed = (pos > 0) & (neg > 0)
    if not mixed.any():
        return 0.0
    user_auc = (pos_rank_sum[mixed] - pos[mixed] * (pos[mixed] + 1) / 2) / (pos[mixed] * neg[mixed])
    return float(np.average(user_auc, weights=size[mixed]))
