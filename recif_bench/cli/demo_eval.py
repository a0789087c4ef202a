"""``recif-eval --model demo``: evaluate the shipped demo model and popularity on the same rows.

The demo model is a small Qwen3 trained from scratch on mini-RecIF and installed with the package
(:mod:`recif_bench.models.demo`), so this needs the base install only.  Unless the command names
tasks or rows, the run covers the recommendation and prediction tasks (layers 1-2; the two text
tasks need a judge and long generations) on a seeded sample of ``DEMO_SAMPLE`` rows per task, so it
finishes in minutes on a CPU; popularity is scored on exactly the same rows and both are printed
side by side.
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

    try:
        model_dir = demo.checked()
    except demo.DemoModelError as exc:
        print(f"recif-eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"recif-eval: demo model {model_dir}", file=sys.stderr)
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
    """Headline metric ± its bootstrap standard error per task, one column per run; with two runs, their
    difference and its 95% interval from a paired bootstrap over the users both scored (* = significant)."""
    from recif_bench.metrics.uncertainty import compare as paired
    from recif_bench.results import run_samples

    loaded = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in summaries.items()}
    names, first = list(loaded), next(iter(loaded.values()))
    pair = len(names) == 2
    head = f"{'task':<16} {'metric':<12}" + "".join(f" {name:>17}" for name in names)
    lines = [head + (f"  {names[0]} - {names[1]} [95%]" if pair else "")]
    for task, entry in first["tasks"].items():
        values = []
        for summary in loaded.values():
            headline = summary["tasks"].get(task, {}).get("headline", {})
            value, stderr = headline.get("value"), headline.get("stderr")
            values.append("--" if value is None else f"{value:.4f}" + ("" if stderr is None else f" ±{stderr:.4f}"))
        line = f"{task:<16} {entry['headline']['metric']:<12}" + "".join(f" {v:>17}" for v in values)
        if pair and all(v != "--" for v in values):
            a, b = (run_samples(summaries[n].parent, task) for n in names)
            diffs = paired(a, b, [entry["headline"]["metric"]]) if a is not None and b is not None else []
            if diffs:
                d = diffs[0]
                line += f"  {d.delta:+.4f} [{d.low:+.4f}, {d.high:+.4f}]{'*' if d.significant else ''}"
        lines.append(line)
    if pair:
        lines.append("(± = standard error, bootstrap over users; * = the 95% interval excludes 0)")
    return "\n".join(lines)
