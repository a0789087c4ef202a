"""Rec-task Recall@32 on mini-RecIF after each OneRec-family RL variant (issue 10), from one SFT model.

    python benchmarks/onerec_rl_variants.py [--model PATH] [--steps 4] [--limit 32] [--seed 0] [--out DIR]

Runs, each from the same SFT checkpoint (default: the demo model shipped with the package):
GRPO with the hit reward (``configs/train/mini_rl.yaml``), GRPO with OneRec-Think's beam-match
reward, ECPO with the P-Score reward and format regularisation (OneRec-V1), GBPO with the feedback
reward (OneRec-V2), ``--steps`` optimiser steps each, and scores the SFT model and every result
with recif-eval (the pipeline's evaluation, ``--limit`` rows per task) on the rec tasks.  The P-Score
model is trained first with ``configs/train/pscore_mini.yaml`` unless ``--pscore-model`` names one.
Prints a Markdown table of Recall@32 with the seeds.  Every trained model and evaluation is kept
under ``--out`` and skipped when rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TASKS = ("recif_video", "recif_ad", "recif_product")
VARIANTS = (   # (stage name, label, RL config)
    ("grpo_hit", "+GRPO(hit)", "mini_rl.yaml"),
    ("grpo_beam_match", "+GRPO(beam_match)", "mini_rl_beam_match.yaml"),
    ("ecpo_pscore", "+ECPO(pscore)", "mini_rl_ecpo_pscore.yaml"),
    ("gbpo_feedback", "+GBPO(feedback)", "mini_rl_gbpo_feedback.yaml"),
)


def pscore_model(out: Path, given: str | None) -> tuple[Path | None, str]:
    """(the P-Score model folder, or None and why it is missing)."""
    if given:
        return Path(given), ""
    try:
        from trainers import pscore
    except ImportError as exc:
        return None, f"trainers.pscore is not available ({exc})"
    from trainers.common.config import load

    folder = out / "pscore"
    if not (folder / "model.pt").exists() or not (folder / "metrics.json").exists():
        pscore.main(load(REPO / "configs/train/pscore_mini.yaml", [f"output_dir={folder}"]))
    return folder, ""


def train_variant(name: str, config: str, sft: Path, data_dir: Path, out: Path, steps: int, seed: int,
                  extra: list[str]) -> Path:
    from trainers import pipeline, rl

    folder = out / name
    if not (folder / pipeline.DONE).exists():
        stage = {"config": str(REPO / "configs/train" / config), "recipe": "rl",
                 "set": [f"train.max_steps={steps}", f"train.seed={seed}", f"train.save_steps={steps}", *extra]}
        rl.main(pipeline.stage_config(stage, sft, folder, data_dir, {}))
        (folder / pipeline.DONE).write_text("ok", encoding="utf-8")
    return folder


def scores(config: dict[str, Any], stage: str, model: Path, out: Path) -> dict[str, float]:
    """Recall@32 per task (the rec tasks' headline) and the mean legal rate of the candidates."""
    import json

    from trainers import pipeline

    figures = pipeline.evaluate(config, stage, model, out)
    summary = json.loads((Path(figures["results"]) / "summary.json").read_text(encoding="utf-8"))
    legal = [e["metrics"]["legal_rate"] for e in summary["tasks"].values() if "legal_rate" in e["metrics"]]
    errors = {f"{task}_stderr": e["headline"].get("stderr") for task, e in summary["tasks"].items()}
    return {**figures["headline"], **errors, "legal": sum(legal) / len(legal) if legal else None}


def cell(value: float | None, digits: int = 4, stderr: float | None = None) -> str:
    """A value with its bootstrap-over-users standard error when the run recorded one."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + ("" if stderr is None else f" ± {stderr:.{digits}f}")


def table(rows: list[dict[str, Any]], tasks: tuple[str, ...]) -> str:
    names = [t.removeprefix("recif_") for t in tasks]
    lines = ["| model | " + " | ".join(f"{n} R@32" for n in names) + " | mean R@32 | legal rate | seeds |",
             "|" + "---|" * (len(tasks) + 4)]
    for row in rows:
        if row.get("missing"):
            lines.append(f"| {row['label']} | " + " | ".join("n/a" for _ in tasks)
                         + f" | n/a | n/a | {row['missing']} |")
            continue
        values = [row["scores"].get(n) for n in names]
        known = [v for v in values if v is not None]
        mean = sum(known) / len(known) if known else None
        lines.append(f"| {row['label']} | " + " | ".join(cell(v, stderr=row["scores"].get(f"{n}_stderr"))
                                                      for v, n in zip(values, names))
                     + f" | {cell(mean)} | {cell(row['scores'].get('legal'), 3)} | {row['seeds']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the SFT checkpoint (default: the demo model)")
    parser.add_argument("--out", default="runs/onerec_rl_variants")
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per RL variant")
    parser.add_argument("--limit", type=int, default=32, help="evaluation rows per task")
    parser.add_argument("--seed", type=int, default=0, help="RL training seed")
    parser.add_argument("--pscore-model", help="a trained trainers.pscore model folder (default: train one)")
    args = parser.parse_args()
    from trainers import pipeline

    out = Path(args.out)
    if args.model:
        sft = Path(args.model)
        if not sft.exists():
            print(f"--model {sft}: model folder not found", file=sys.stderr)
            return 2
    else:
        from recif_bench.models import demo

        sft = demo.checked()
    data_dir = pipeline.build_data({"build_data": {"raw": "mini", "seed": 42}}, out / "data")
    eval_config = {"name": "onerec-rl-variants", "sid_levels": 3, "sid_codebook": 8192,
                   "eval": {"tasks": ",".join(TASKS), "settings": {"limit": args.limit}}}
    seeds = f"train {args.seed}, mixture 0, data 42"
    rows = [{"label": "SFT", "scores": scores(eval_config, "sft", sft, out), "seeds": "--"}]
    for name, label, config in VARIANTS:
        extra: list[str] = []
        if name == "ecpo_pscore":
            folder, why = pscore_model(out, args.pscore_model)
            if folder is None:
                print(f"{label}: skipped: {why}", file=sys.stderr)
                rows.append({"label": label, "missing": why})
                continue
            extra = [f"reward.pscore_model={folder}"]
        model = train_variant(name, config, sft, data_dir, out, args.steps, args.seed, extra)
        rows.append({"label": label, "scores": scores(eval_config, name, model, out),
                     "seeds": seeds + (", P-Score 0" if name == "ecpo_pscore" and not args.pscore_model else "")})
    print(f"\nmini-RecIF, SFT model {sft}, {args.steps} RL steps per variant, recif-eval --limit {args.limit} "
          f"(Recall@32 of the first {args.limit} test rows per task)\n")
    print(table(rows, TASKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
