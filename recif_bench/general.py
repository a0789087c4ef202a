"""General-ability retention: lm-eval's own tasks (MMLU-Pro, GSM8K, ...) run on the model that was
just scored on RecIF-Bench, so one invocation (one model load) measures both sides of the trade-off
the technical report studies (recommendation training vs. general knowledge).

Tasks are lm-eval task or group names, found by lm-eval's ``TaskManager`` among its built-in tasks
and any ``include_path`` folders.  They run through lm-eval unchanged (their prompts, few-shot
settings, filters and metrics); our backends answer their requests with lm-eval's plain contract
(see ``models.base.follows_recif_contract``).  The summary gets a ``general`` section:

``{"settings": {...}, "tasks": {name: {"n", "metrics" {"<metric>,<filter>": value},
"headline" {"metric", "value", "higher_is_better"}, "subtasks"?}}}``

Metric keys stay lm-eval's own ``metric,filter`` (GSM8K reports ``exact_match`` under two filters).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

DEFAULT_TASKS = ("mmlu_pro", "gsm8k")

# lm-eval's headline metric of well-known tasks (the number leaderboards quote); others: the first
# higher-is-better metric lm-eval reports, else the first metric.
HEADLINES = {
    "mmlu_pro": "exact_match,custom-extract",
    "gsm8k": "exact_match,strict-match",
    "gsm8k_cot": "exact_match,strict-match",
    "mmlu": "acc,none",
    "hellaswag": "acc_norm,none",
    "arc_challenge": "acc_norm,none",
    "arc_easy": "acc_norm,none",
    "winogrande": "acc,none",
    "ifeval": "prompt_level_strict_acc,none",
    "wikitext": "word_perplexity,none",
}


class GeneralTaskError(ValueError):
    """An unknown general task name (the message lists them)."""


def parse_tasks(spec: str) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))


def task_manager(names: Sequence[str], include_paths: Sequence[str] = ()):
    """lm-eval's TaskManager that knows ``names``: the ``include_paths`` alone when they hold them all
    (instant), else with lm-eval's built-in tasks too (indexing those takes 8-30 s)."""
    from lm_eval.tasks import TaskManager

    if include_paths:
        local = TaskManager(include_path=list(include_paths), include_defaults=False)
        if all(n in local.all_tasks for n in names):
            return local
    return TaskManager(include_path=list(include_paths) or None, include_defaults=True)


def check_tasks(manager: Any, names: Sequence[str]) -> None:
    """Refuse unknown names before any model is loaded."""
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise GeneralTaskError(f"unknown lm-eval task(s): {', '.join(unknown)} "
                               "(list them with `lm-eval ls tasks`; local task folders with --general-include)")


def evaluate(lm: Any, names: Sequence[str], manager: Any, *, limit: int | None, num_fewshot: int | None,
             seed: int) -> dict:
    """lm-eval's own evaluation of the general tasks on an already-built model."""
    import lm_eval

    return lm_eval.simple_evaluate(model=lm, tasks=list(names), task_manager=manager, limit=limit,
                                   num_fewshot=num_fewshot, bootstrap_iters=0, log_samples=True,
                                   random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                   fewshot_random_seed=seed) or {}


def summarize(lm_results: Mapping[str, Any], names: Sequence[str], settings: Mapping[str, Any]) -> dict:
    """The summary's ``general`` section: one entry per requested task or group."""
    return {"settings": dict(settings), "tasks": {name: _entry(lm_results, name) for name in names}}


def _entry(lm_results: Mapping[str, Any], name: str) -> dict[str, Any]:
    from recif_bench.results import clean_number

    raw = {**lm_results.get("results", {}).get(name, {}), **lm_results.get("groups", {}).get(name, {})}
    metrics = {k: clean_number(v) for k, v in raw.items()
               if "," in k and not k.split(",", 1)[0].endswith("_stderr")}
    leaves = _leaves(lm_results, name)
    n_samples = lm_results.get("n-samples", {})
    entry: dict[str, Any] = {"n": sum(int(n_samples.get(t, {}).get("effective", 0)) for t in leaves),
                             "metrics": metrics}
    if not metrics and leaves != [name]:   # a group without an aggregate score: its members carry them
        entry["subtasks"] = {t: _entry(lm_results, t) for t in lm_results.get("group_subtasks", {}).get(name, [])}
    entry["headline"] = headline(name, metrics, lm_results.get("higher_is_better", {}).get(name, {}))
    return entry


def _leaves(lm_results: Mapping[str, Any], name: str) -> list[str]:
    members = lm_results.get("group_subtasks", {}).get(name)
    return [leaf for m in members for leaf in _leaves(lm_results, m)] if members else [name]


def headline(task: str, metrics: Mapping[str, Any], higher_is_better: Mapping[str, bool]) -> dict[str, Any]:
    """The task's headline metric, value and direction (``higher_is_better`` keyed by bare metric name)."""
    chosen = HEADLINES.get(task) if HEADLINES.get(task) in metrics else None
    if chosen is None:
        better = [k for k in metrics if higher_is_better.get(k.split(",", 1)[0]) is True]
        chosen = (better or list(metrics) or [None])[0]
    if chosen is None:
        return {"metric": None, "value": None, "higher_is_better": None}
    return {"metric": chosen, "value": metrics[chosen],
            "higher_is_better": higher_is_better.get(chosen.split(",", 1)[0], True)}


def mean_score(section: Mapping[str, Any] | None) -> float | None:
    """Mean headline of the higher-is-better general tasks (perplexities are left out): the
    "general ability" axis of the trade-off plot.  None when there is none."""
    values = [e["headline"]["value"] for e in ((section or {}).get("tasks") or {}).values()
              if e.get("headline", {}).get("higher_is_better") and e["headline"].get("value") is not None]
    return sum(values) / len(values) if values else None


def merge_lm_results(recif: Mapping[str, Any], general: Mapping[str, Any]) -> dict[str, Any]:
    """One lm-eval results document for both evaluations: the per-task maps (results, configs,
    versions, n-shot, ...) are united; run-level fields (config, date, ...) stay the first run's."""
    merged = dict(recif)
    for key, value in general.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "config":
            merged[key] = {**merged[key], **value}
        else:
            merged.setdefault(key, value)
    return merged


def format_table(section: Mapping[str, Any]) -> str:
    """The general tasks' headline scores, printed after the RecIF-Bench table."""
    lines = [f"{'general task':<34} {'metric':<47} {'value':>8} {'n':>7}"]
    for task, entry in section.get("tasks", {}).items():
        value = entry["headline"]["value"]
        shown = "n/a" if value is None else f"{value:.4f}"
        lines.append(f"{task:<34} {str(entry['headline']['metric']):<47} {shown:>8} {entry['n']:>7}")
    mean = mean_score(section)
    if mean is not None:
        lines.append(f"{'mean (higher-is-better headlines)':<82} {mean:>8.4f}")
    return "\n".join(lines)
