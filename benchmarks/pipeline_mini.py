"""The mini-RecIF training pipeline's figures: rec Pass@1 and general-prompt leak rate per stage.

    python benchmarks/pipeline_mini.py [--out runs/mini] [--reuse-demo]

Runs ``recif-train pipeline --config configs/train/mini.yaml`` (resumable; every finished stage is
skipped) and prints, per stage, Pass@1 of the evaluated rec tasks and the share of sampled answers
to general prompts that contain an itemic token.  The two claims of issue 6 are checked at the end:
Pass@1 after RL is not lower than after SFT, and the leak rate after distillation is lower than
before it.  ``--reuse-demo`` links the finished stages of ``recif-train demo`` (same configs) into
the output folder instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def link_demo_stages(out: Path) -> None:
    from recif_bench.models import demo

    cache = demo.cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("data", "base", "stage1", "stage2", "sft"):
        source = cache / name
        if source.exists() and not (out / name).exists():
            (out / name).symlink_to(source.resolve(), target_is_directory=True)


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/mini")
    parser.add_argument("--reuse-demo", action="store_true")
    args = parser.parse_args()
    from trainers import pipeline
    from trainers.common.config import load

    out = Path(args.out)
    if args.reuse_demo:
        link_demo_stages(out)
    report = json.loads(pipeline.main(load(REPO / "configs/train/mini.yaml", [f"output_dir={out}"])).read_text())
    tasks = sorted({t for figures in report.values() for t in figures["pass@1"]})
    print(f"{'stage':<8}" + "".join(f" {t + ' p@1':>16}" for t in tasks) + f" {'mean p@1':>9} {'leak rate':>9}")
    for stage, figures in report.items():
        cells = "".join(f" {figures['pass@1'].get(t) or 0:>16.4f}" for t in tasks)
        leak = figures.get("leak_rate")
        print(f"{stage:<8}{cells} {mean(list(figures['pass@1'].values())) or 0:>9.4f} "
              f"{'--' if leak is None else f'{leak:.3f}':>9}")
    sft_p, rl_p = (mean(list(report[s]["pass@1"].values())) or 0 for s in ("sft", "rl"))
    print(f"Pass@1 after RL ({rl_p:.4f}) not lower than after SFT ({sft_p:.4f}): {rl_p >= sft_p}")
    before, after = report["sft"].get("leak_rate"), report["distill"].get("leak_rate")
    print(f"leak rate after distillation ({after:.3f}) lower than before ({before:.3f}): {after < before}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
