"""Row facts of the leaderboard tables: which tasks exist, their labels, layers and headline metrics.

RecIF-Bench tasks come from ``recif_bench.benchmark``; Amazon transfer tasks are recognised by their
name alone (``amazon_<category>``, headline ``recall@10``), so a new category needs no code here.
"""

from __future__ import annotations

from recif_bench.benchmark import TASKS

AMAZON_PREFIX = "amazon_"
AMAZON_HEADLINE = "recall@10"

_METRIC_LABELS = {"auc": "AUC", "wuauc": "wuAUC", "llm_score": "LLM Score",
                  "macro_wip_double_weighted_f1": "LLM Score (WIP F1)"}

def is_recif(task: str) -> bool:
    return task in TASKS


def is_amazon(task: str) -> bool:
    return task.startswith(AMAZON_PREFIX)


def headline_metric(task: str) -> str | None:
    """The metric of the paper's table for ``task``; None for a task we have no table for."""
    if is_recif(task):
        return TASKS[task].headline
    if is_amazon(task):
        return AMAZON_HEADLINE
    return None


def layer_of(task: str) -> int | None:
    return TASKS[task].layer if is_recif(task) else None


def task_label(task: str) -> str:
    """Row label as the paper writes it: "Short Video Rec", "Cell Phones"."""
    if is_recif(task):
        return TASKS[task].title
    if is_amazon(task):
        return task.removeprefix(AMAZON_PREFIX).replace("_", " ").title()
    return task


def metric_label(metric: str) -> str:
    """"recall@32" -> "Recall@32", "ndcg@10" -> "NDCG@10", "auc" -> "AUC"."""
    if metric in _METRIC_LABELS:
        return _METRIC_LABELS[metric]
    name, _, k = metric.partition("@")
    pretty = {"recall": "Recall", "ndcg": "NDCG", "pass": "Pass"}.get(name, name)
    return f"{pretty}@{k}" if k else pretty
