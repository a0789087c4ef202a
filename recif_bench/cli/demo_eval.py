"""``recif-eval --model demo``: build (once) the demo model, evaluate it and popularity on the same rows.

The demo model is trained from scratch on mini-RecIF (see :mod:`recif_bench.models.demo`).  Unless the
command names tasks or rows, the run covers the recommendation and prediction tasks (layers 1-2;
the two text tasks need a judge and long generations) on a seeded sample of ``DEMO_SAMPLE`` rows
per task, so it finishes in minutes on a CPU; popularity is scored on exactly the same rows and
both are printed side by side.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from recif_bench.evaluate import evaluate
from recif_bench.settings import EvalSettings, Model

DEMO = "demo"
DEMO_SAMPLE = 100
DEMO_TASKS = "recif_layer1,recif_layer2"
DEFAULT_TASKS = "recif_bench"


def run_demo(model: Model, tasks: str, settings: EvalSettings) -> int:
    """``model`` is the command line's (name ``demo``): its backend and args go to the demo model."""
    from recif_bench.models import demo

    model_dir = demo.ensure()
    if tasks == DEFAULT_TASKS:
        tasks = DEMO_TASKS
    if settings.limit is None and settings.sample is None:
        settings = replace(settings, sample=DEMO_SAMPLE)
        print(f"recif-eval: demo on a seeded sample of {DEMO_SAMPLE} rows per task (--sample N / --limit N to change)",
              file=sys.stderr)
    out = Path(settings.output or Path("results") / "demo-mini-recif")
    runs = {"demo": replace(model, name=str(model_dir)), "popularity": Model("popularity", args=model.args)}
    summaries = {}
    for name, one in runs.items():
        run_dir = out if name == "demo" else out.with_name(out.name + "-popularity")
        summary = evaluate(one, tasks, replace(settings, output=run_dir))
        print(summary.report())
        summaries[name] = summary.run_dir / "summary.json"
    print(compare(summaries))
    return 0


def compare(summaries: dict[str, Path]) -> str:
    """Headline metric per task, one column per run."""
    loaded = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in summaries.items()}
    first = next(iter(loaded.values()))
    lines = [f"{'task':<16} {'metric':<12}" + "".join(f" {name:>11}" for name in loaded)]
    for task, entry in first["tasks"].items():
        values = []
        for summary in loaded.values():
            value = summary["tasks"].get(task, {}).get("headline", {}).get("value")
            values.append("--" if value is None else f"{value:.4f}")
        lines.append(f"{task:<16} {entry['headline']['metric']:<12}" + "".join(f" {v:>11}" for v in values))
    return "\n".join(lines)
