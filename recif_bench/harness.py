"""The lm-eval side of the eight tasks: documents, per-sample scoring, corpus aggregations.

The task YAMLs in ``tasks/`` point here through ``tasks/utils.py``.  Run-time settings arrive as
lm-eval task metadata (``--metadata`` or, with the stock CLI, the model_args, which lm-eval merges
into the metadata): ``data_dir``, ``thinking``, ``chat_template``, ``limit``, ``sample``, ``seed``,
``sid_levels``, ``sid_codebook``, ``sid_strategy``.  Every document carries what its scorer needs,
so the scoring functions are plain functions of ``(doc, results)``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from operator import itemgetter
from typing import Any, Sequence

import numpy as np
from recif_bench import chat, sid, stock_guard
from recif_bench.benchmark import task_info
from recif_bench.data.reader import load_task, resolve_data_dir
from recif_bench.metrics.classification import auc, label_from_answer, wuauc, yes_probability
from recif_bench.options import as_bool

log = logging.getLogger(__name__)

def _opt_int(value: Any) -> int | None:
    return None if value in (None, "", "None") else int(value)


def load_docs(recif_task: str, data_dir: str | None = None, thinking: Any = False,
              chat_template: str = chat.SOFT_SWITCH, limit: Any = None, sample: Any = None, seed: Any = 0,
              sid_levels: Any = 3, sid_codebook: Any = 8192, sid_strategy: str = "most_popular_after_downsampling",
              pretrained: str | None = None, **_other_metadata: Any):
    """lm-eval ``custom_dataset``: the validated task file as a ``DatasetDict({"test": ...})``."""
    import datasets

    fmt = sid.SidFormat(int(sid_levels), int(sid_codebook))
    info = task_info(recif_task)
    root = resolve_data_dir(data_dir)
    samples, report = load_task(root, info.name, limit=_opt_int(limit), sample=_opt_int(sample),
                                seed=int(seed), fmt=fmt)
    tokenizer = _tokenizer(pretrained) if chat_template == chat.MODEL_TEMPLATE else None
    mapping = root / info.mapping_file if info.mapping_file else None
    think = as_bool(thinking, "thinking")
    prompts = [chat.render(s.messages, think, chat_template, tokenizer) for s in samples]
    if stock_guard.is_stock_run(pretrained is not None):
        stock_guard.check(info.name, info.kind, prompts, pretrained, think, _tokenizer)
    rows = {
        "task": [info.name] * len(samples),
        "sample_id": [s.sample_id for s in samples],
        "prompt": prompts,
        "answer": [s.answer for s in samples],
        "answer_ids": [s.answer_ids for s in samples],
        "uid": [s.uid or "" for s in samples],
        "label": [_label(s.answer) if info.kind == "label_pred" else -1 for s in samples],
    }
    n = len(samples)
    settings = {"mapping": str(mapping) if mapping and mapping.exists() else "", "seed": int(seed),
                "sid_levels": fmt.levels, "sid_codebook": fmt.codebook_size, "sid_strategy": sid_strategy}
    rows.update({key: [value] * n for key, value in settings.items()})
    if info.kind == "rec" and mapping is not None and not mapping.exists():
        log.warning("%s: %s not found; item-level (pid_) metrics are not computed", info.name, mapping)
    elif info.kind == "rec" and mapping is not None:
        sid.load_item_map(mapping, fmt, seed=int(seed))   # now, before generation: a broken file stops the run here
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


@lru_cache(maxsize=4)
def _tokenizer(pretrained: str | None):
    if not pretrained:
        raise ValueError("chat_template=model needs the model path (pretrained=...) to read its template")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pretrained, trust_remote_code=False)   # never a folder's own code


def _label(answer: str) -> int:
    label = label_from_answer(answer)
    assert label is not None, "the reader skips answers without 是/否"
    return label


def _candidates(results: Sequence[Any]) -> list[str]:
    """Our backends return a list of K candidates; a stock backend returns one string."""
    first = results[0] if results else []
    if isinstance(first, str):
        return [first]
    return first if isinstance(first, list) else list(first)   # the scorer reads non-strings as str() writes them


@lru_cache(maxsize=16)
def _rec_scorer(mapping: str, seed: int, levels: int, codebook: int, strategy: str, k: int):
    from recif_bench.metrics.ranking import RecScorer

    fmt = sid.SidFormat(levels, codebook)
    item_map = sid.load_item_map(mapping, fmt, seed=seed) if mapping else None
    return RecScorer(item_map=item_map, fmt=fmt, strategy=strategy, ks=(1, k))


_settings_of = itemgetter("task", "mapping", "seed", "sid_levels", "sid_codebook", "sid_strategy")


def _scorer_settings(doc: dict) -> tuple:
    """What a rec document's scorer depends on; metrics are at 1 and at the task's K (its beam width)."""
    task, *settings = _settings_of(doc)
    return (*settings, task_info(task).k)


def score_rec_corpus(resps: Sequence[Sequence[Any]], docs: Sequence[dict]) -> list[dict[str, float]]:
    """The rec tasks' lm-eval filter: every document's metrics, in one vectorised pass per task.

    lm-eval shows a filter all responses of a task at once, while ``process_results`` sees one
    document at a time; scoring here parses each distinct candidate once and looks the SID ->
    item map up once for the corpus.  Each document's filtered response is its metrics row.
    """
    rows: list[dict[str, float]] = [{}] * len(docs)
    groups: dict[tuple, list[int]] = {}
    for i, doc in enumerate(docs):
        groups.setdefault(_settings_of(doc), []).append(i)
    for members in groups.values():
        candidates = [resps[i][0] if resps[i] and type(resps[i][0]) is list else _candidates(resps[i])
                      for i in members]            # our backends' K candidates, without a call per document
        scored = _rec_scorer(*_scorer_settings(docs[members[0]])).score_rows(
            candidates, [docs[i]["answer"] for i in members], [docs[i]["answer_ids"] or None for i in members])
        for i, row in zip(members, scored):
            rows[i] = row
    return rows


def process_rec(doc: dict, results: Sequence[Any]) -> dict[str, float]:
    """The row :func:`score_rec_corpus` computed; a document reaching here unfiltered is scored alone."""
    if results and isinstance(results[0], dict):
        return results[0]
    return _rec_scorer(*_scorer_settings(doc))(_candidates(results), doc["answer"], doc["answer_ids"] or None)


def process_label_pred(doc: dict, results: Sequence[Any]) -> dict[str, Any]:
    """``results`` = [(ll_是, greedy), (ll_否, greedy)] from one forward pass."""
    (ll_yes, _), (ll_no, _) = results[0], results[1]
    item = (yes_probability(float(ll_yes), float(ll_no)), doc["label"], doc["uid"])
    return {"auc": item, "wuauc": item}        # one tuple for both: 346k documents, every allocation counts


def _column(items: Sequence[tuple], index: int, dtype: type) -> np.ndarray:
    return np.fromiter(map(itemgetter(index), items), dtype=dtype, count=len(items))


def agg_auc(items: Sequence[tuple[float, int, str]]) -> float:
    return auc(_column(items, 0, float), _column(items, 1, int))


def agg_wuauc(items: Sequence[tuple[float, int, str]]) -> float:
    if not items:
        return 0.0
    return wuauc(_column(items, 0, float), _column(items, 1, int), list(map(itemgetter(2), items)))


def agg_count(items: Sequence[float]) -> float:
    """``n_invalid``: a count over the corpus, not a mean."""
    return float(sum(items))


def process_text(doc: dict, results: Sequence[Any]) -> dict[str, Any]:
    """Text tasks: the generation is recorded; the judge scores the corpus in the aggregation."""
    candidates = _candidates(results)
    generation = str(candidates[0]) if candidates else ""
    item = (doc["task"], doc["sample_id"], generation, doc["answer"])
    return {"empty_rate": float(not sid.answer_text(generation)),
            **{metric: item for metric in task_info(doc["task"]).judged_metrics}}


# --------------------------------------------------------------------------------------------
# LLM judge of the judged text tasks, run once over the corpus inside lm-eval's aggregation step
# by the run's judge session (recif_bench.judges.session: evaluate() opens it; stock lm_eval reads
# the environment).


def _judged(metric: str):
    def aggregate(items: Sequence[tuple[str, str, str, str]]) -> float:
        if not items:
            return float("nan")
        from recif_bench.judges import session

        task = items[0][0]
        value = session.current().judge(task, [tuple(i[1:]) for i in items]).get(metric)
        return float("nan") if value is None else float(value)

    aggregate.__name__ = f"judged_{metric}"
    return aggregate


agg_wip_macro = _judged("macro_wip_double_weighted_f1")
agg_wip_micro = _judged("micro_wip_double_weighted_f1")
agg_wip_macro_strict = _judged("macro_wip_double_weighted_f1_strict")
agg_llm_score = _judged("llm_score")
agg_llm_score_strict = _judged("llm_score_strict")
agg_judge_failed = _judged("n_judge_failed")

