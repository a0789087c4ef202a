"""Does a rebuild of the demo model reproduce the shipped one?  Files first, then scores on the demo's rows.

    python benchmarks/demo_rebuild.py                  # rebuild from scratch in an empty cache (~7 min CPU)
    python benchmarks/demo_rebuild.py --rebuilt DIR    # compare an existing `recif-train demo --export DIR`

The rebuild runs ``recif-train demo --rebuild --export`` in a temporary cache (needs the ``train``
extra).  Identical files mean identical scores (the evaluation is deterministic).  Otherwise both
checkpoints are scored on the rows ``recif-eval --model demo`` uses, and each task's headline
difference is set against its noise: the 95% interval of a paired bootstrap over the users both runs
scored (:func:`recif_bench.metrics.uncertainty.compare`, as in the demo table).  "Within noise" means
every interval contains 0.  Exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def max_tensor_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between same-named tensors (inf if the tensor sets differ)."""
    from safetensors.torch import load_file

    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    if left.keys() != right.keys() or any(left[k].shape != right[k].shape for k in left):
        return float("inf")
    return max(float((left[k].double() - right[k].double()).abs().max()) for k in left)


def score_demo_rows(model: Path, out: Path) -> Path:
    """The run folder of ``model`` on the tasks and rows ``recif-eval --model demo`` uses."""
    from recif_bench.cli.demo_eval import DEMO_SAMPLE, DEMO_TASKS
    from recif_bench.evaluate import evaluate
    from recif_bench.settings import EvalSettings, Model

    return evaluate(Model(str(model)), DEMO_TASKS, EvalSettings(sample=DEMO_SAMPLE, output=out)).run_dir


def within_noise(shipped_run: Path, rebuilt_run: Path) -> bool:
    from recif_bench.metrics.uncertainty import compare
    from recif_bench.results import run_samples

    tasks = json.loads((shipped_run / "summary.json").read_text(encoding="utf-8"))["tasks"]
    print(f"{'task':<14} {'metric':<10} {'rebuilt - shipped':>17} {'95% interval':>20}  within")
    within_all = True
    for task, entry in tasks.items():
        metric = entry["headline"]["metric"]
        diff = compare(run_samples(rebuilt_run, task), run_samples(shipped_run, task), [metric])[0]
        within = diff.low <= 0 <= diff.high
        within_all &= within
        print(f"{task:<14} {metric:<10} {diff.delta:>+17.4f} {f'[{diff.low:+.4f}, {diff.high:+.4f}]':>20}  {within}")
    return within_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuilt", type=Path, help="an exported rebuild to compare (default: rebuild now)")
    parser.add_argument("--work", type=Path, help="folder for the rebuild's cache and the runs (default: temporary)")
    args = parser.parse_args()
    from recif_bench.models import demo

    work = args.work or Path(tempfile.mkdtemp(prefix="demo-rebuild-"))
    rebuilt = args.rebuilt
    if rebuilt is None:
        os.environ["RECIF_BENCH_CACHE"] = str(work / "cache")
        from trainers import demo as recipe

        rebuilt = recipe.export(work / "rebuilt", rebuild=True)
    shipped = demo.checked()
    same = {name: demo.sha256(shipped / name) == demo.sha256(rebuilt / name) for name in demo.FILES}
    print(f"shipped {shipped}\nrebuilt {rebuilt}\nidentical files: {sum(same.values())}/{len(same)} "
          f"(differ: {', '.join(n for n, s in same.items() if not s) or 'none'}); "
          f"largest tensor difference: {max_tensor_difference(shipped, rebuilt):.3g}")
    if all(same.values()):
        print("identical checkpoints: identical scores (the evaluation is deterministic)")
        return 0
    runs = score_demo_rows(shipped, work / "run-shipped"), score_demo_rows(rebuilt, work / "run-rebuilt")
    within = within_noise(*runs)
    print(f"rebuild within noise of the shipped model: {within}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
