"""``recif-eval --model demo``: build (once) the demo model, evaluate it and popularity on the same rows.

The demo model is trained from scratch on mini-RecIF (see :mod:`recif_bench.models.demo`).  Unless the
command names tasks or rows, the run covers the recommendation and prediction tasks (layers 1-2;
the two text tasks need a judge and long generations) on a seeded sample of ``DEMO_SAMPLE`` rows
per task, so it finishes in minutes on a CPU; popularity is scored on exactly the same rows and
both are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from copy import copy
from pathlib import Path
from typing import Callable

DEMO = "demo"
DEMO_SAMPLE = 100
DEMO_TASKS = "recif_layer1,recif_layer2"
DEFAULT_TASKS = "recif_bench"


def run_demo(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    from recif_bench.models import demo

    model_dir = demo.ensure()
    args = copy(args)
    if args.tasks == DEFAULT_TASKS:
        args.tasks = DEMO_TASKS
    if args.limit is None and args.sample is None:
        args.sample = DEMO_SAMPLE
        print(f"recif-eval: demo on a seeded sample of {DEMO_SAMPLE} rows per task (--sample N / --limit N to change)",
              file=sys.stderr)
    out = Path(args.output or Path("results") / "demo-mini-recif")
    runs = {"demo": (str(model_dir), out), "popularity": ("popularity", out.with_name(out.name + "-popularity"))}
    for name, (model, run_dir) in runs.items():
        one = copy(args)
        one.model, one.output, one.backend = model, str(run_dir), (args.backend if name == "demo" else None)
        code = run(one)
        if code:
            return code
    print(compare({name: run_dir / "summary.json" for name, (_, run_dir) in runs.items()}))
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
