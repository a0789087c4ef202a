"""Fixture run directories in the results contract (shared/design/RESULTS.md), written by hand.

Hand-written rather than produced by recif-eval so every value in the tests is known in advance,
and so Amazon tasks (``amazon_<category>``) can be written without the Amazon task code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recif_bench.results import SCHEMA

HEADLINES = {"item_understand": "macro_wip_double_weighted_f1", "label_pred": "auc", "rec_reason": "llm_score"}
LAYERS = {"item_understand": 0, "video": 1, "ad": 1, "product": 1, "label_pred": 1, "label_cond": 2,
          "interactive": 2, "rec_reason": 3}


def headline(task: str) -> str:
    return HEADLINES.get(task, "recall@10" if task.startswith("amazon_") else "recall@32")


def task_entry(task: str, value: float | None, *, supported: bool = True,
               judge: dict[str, Any] | None = None) -> dict[str, Any]:
    metric = headline(task)
    entry = {"layer": LAYERS.get(task), "n": 10, "n_skipped": {}, "n_invalid": 0,
             "metrics": {} if value is None else {metric: value},
             "headline": {"metric": metric, "value": value}, "supported": supported}
    if judge is not None:
        entry["judge"] = judge
    return entry


def write_run(root: Path, name: str, tasks: dict[str, dict[str, Any]], *, model: str | None = None,
              data_name: str = "mini-recif", fingerprints: dict[str, str] | None = None,
              settings: dict[str, Any] | None = None, created: str = "2026-01-01T00:00:00+00:00",
              run_extra: dict[str, Any] | None = None, model_extra: dict[str, Any] | None = None) -> Path:
    """A run directory whose ``data.files.<task>.fingerprint`` is ``fingerprints[task]`` (default "fp-<task>")."""
    fingerprints = {t: (fingerprints or {}).get(t, f"fp-{t}") for t in tasks}
    summary = {
        "schema": SCHEMA,
        "run": {"name": name, "created": created, "command": "recif-eval", "versions": {"recif_bench": "0.1.0"},
                "elapsed_seconds": 1.0, **(run_extra or {})},
        "model": {"name": model or name, "backend": "hf", "source": model or name, "fingerprint": "m",
                  **(model_extra or {})},
        "data": {"name": data_name, "location": "/data", "fingerprint": "sha256:" + "".join(sorted(fingerprints.values())),
                 "files": {t: {"fingerprint": fp} for t, fp in fingerprints.items()}, "limit": None, "sample": None},
        "settings": {"thinking": False, "constrained": False, "seed": 0, "judge": None, **(settings or {})},
        "tasks": tasks,
    }
    run_dir = Path(root) / name
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir
