"""Judge a finished run's recorded generations again (``recif-eval --rejudge results/NAME``).

No model is loaded and nothing is generated: the judged tasks' per-sample records
(``samples_recif_<task>.jsonl``) carry the exact ``(task, sample_id, generation, answer)`` items the
aggregation judged, so the scores equal those of a run judged in one go.  ``summary.json``,
``lm_eval_results.json`` and ``judge_<task>.jsonl`` are updated in place.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recif_bench import results as res
from recif_bench.benchmark import judged_tasks, task_info
from recif_bench.data.reader import DataError
from recif_bench.judges import JudgeConfig, JudgeConfigError, JudgeSession
from recif_bench.run_dir import run_lock
from recif_bench.settings import UsageError


def rejudge(run_dir: str | Path, judge: JudgeConfig | None) -> dict[str, Any]:
    """The run's summary with its judged tasks scored by ``judge`` (checked before the run is read)."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"   # first: is it a run at all (before any judge model is checked)
    if not summary_path.exists():
        raise FileNotFoundError(f"--rejudge: {summary_path} does not exist (not a finished recif-eval run)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(summary_path, f"unreadable summary ({exc})") from None
    if not isinstance(summary, dict) or summary.get("schema") != res.SCHEMA:
        raise DataError(summary_path, f"not a summary of schema {res.SCHEMA}")
    if judge is None:
        raise UsageError("--rejudge needs a judge: --judge SPEC or RECIF_JUDGE")
    if judge.cache_dir is None:
        judge = replace(judge, cache_dir=str(run_dir / "judge_cache"))
    session = JudgeSession(judge)
    try:
        session.check(judged_tasks())
    except (JudgeConfigError, OSError, ValueError) as exc:
        raise UsageError(f"--judge: {exc}") from None
    with run_lock(run_dir):
        return _rejudge(run_dir, summary_path, summary, session)


def _rejudge(run_dir: Path, summary_path: Path, summary: dict[str, Any], session: JudgeSession) -> dict[str, Any]:
    """Score the recorded generations and rewrite the run's files (the run folder is locked)."""
    lm_path = run_dir / "lm_eval_results.json"
    lm_results = json.loads(lm_path.read_text(encoding="utf-8")) if lm_path.exists() else {}
    for task in judged_tasks():
        entry = summary["tasks"].get(task)
        if not entry or not entry["supported"]:
            continue
        name = task_info(task).lm_eval_name
        judged = {metric: res.clean_number(value) for metric, value in
                  _judge_recorded(session, task, run_dir / f"samples_{name}.jsonl").items()}
        entry["metrics"].update(judged)
        entry["headline"]["value"] = entry["metrics"].get(entry["headline"]["metric"])
        entry["judge"] = session.stats[task]
        recorded = lm_results.get("results", {}).get(name)
        if recorded is not None:
            recorded.update({f"{metric},none": value for metric, value in judged.items()})
    summary["settings"]["judge"] = session.public()
    summary["run"]["rejudged"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    res.write_judge_samples(run_dir, session.samples)
    for task in session.samples:   # the judged metrics' standard errors, from the new judge records
        entry, name = summary["tasks"][task], task_info(task).lm_eval_name
        samples = res.run_samples(run_dir, task)
        metric = res.JUDGED_PER_SAMPLE.get(task_info(task).name, (None, None))[0]
        if samples is None or metric is None:
            continue
        seed = int(summary["settings"].get("seed") or 0)
        stderr = res.uncertainty_of(samples, seed, [metric])
        entry.setdefault("stderr", {}).update(stderr)
        entry["headline"]["stderr"] = entry["stderr"].get(entry["headline"]["metric"])
        res.with_stderrs(lm_results, name, stderr)
    if lm_results:
        res.write_json(lm_path, lm_results)
    res.write_json(summary_path, summary)
    return summary


def _judge_recorded(session: JudgeSession, task: str, path: Path) -> dict[str, Any]:
    """The judged metrics of ``task`` over the items recorded in ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"--rejudge: {path} does not exist; the run recorded no {task} generations")
    metrics_of_task = task_info(task).judged_metrics
    metric = metrics_of_task[0]
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            item = json.loads(line).get(metric)
        except (json.JSONDecodeError, AttributeError):
            item = None
        if not (isinstance(item, list) and len(item) == 4 and item[0] == task):
            raise DataError(path, f"no recorded {task} generation (field {metric!r})", row=lineno)
        items.append(item[1:])
    metrics = session.judge(task, items)
    return {m: metrics.get(m) for m in metrics_of_task}
