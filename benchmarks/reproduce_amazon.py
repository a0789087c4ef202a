"""Reproduction report: our baselines on the Amazon transfer tasks next to the published numbers.

    python benchmarks/reproduce_amazon.py --run sasrec-bce=runs/eval/sasrec_beauty_bce \\
        --run sasrec-ce=runs/eval/sasrec_beauty_ce --run tiger=runs/eval/tiger_beauty \\
        --checkpoint sasrec-bce=runs/sasrec/beauty_bce ... --out benchmarks/reproduce_amazon.md

Each ``--run NAME=DIR`` is a ``recif-eval`` run folder (its ``summary.json``; the same NAME again for another
category); ``--checkpoint NAME=DIR`` adds the training summary (size, epochs run, best epoch, validation curve,
wall time).  ``NAME:VARIANT`` (e.g. ``tiger:last``) is compared with NAME's published rows.  Every published row
comes from ``configs/published/*.yaml`` plus the few rows below that only the spec records
(spec amazon_and_baselines §3.1), each with its source; the ratio is ours / published.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
TASKS = ("amazon_beauty", "amazon_sports")

# Published rows not in configs/published (spec amazon_and_baselines §3.1), keyed by our baseline name.
EXTRA = {
    "sasrec-ce": [("RecBole SASRec (CE), LETTER issue #20 / RecBole issue #1290",
                   {"amazon_beauty": {"recall@5": 0.0543, "recall@10": 0.0821, "ndcg@5": 0.0315, "ndcg@10": 0.0405},
                    "amazon_sports": {"recall@10": 0.048, "ndcg@10": 0.0227}}),
                  ("phonism/genrec README, SASRec-CE",
                   {"amazon_beauty": {"recall@5": 0.0538, "recall@10": 0.0851, "ndcg@5": 0.0320, "ndcg@10": 0.0421},
                    "amazon_sports": {"recall@5": 0.0321, "recall@10": 0.0495, "ndcg@5": 0.0191, "ndcg@10": 0.0248}})],
}
# which published model names a baseline of ours is compared with
MATCH = {"sasrec-bce": ("SASRec",), "sasrec-ce": (), "tiger": ("TIGER",)}


def published() -> list[tuple[str, str, str, dict]]:
    """(our baseline, published model, source, values by task) for every matching published row."""
    rows = []
    for path in sorted((ROOT / "configs" / "published").glob("amazon_*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for model in doc.get("models", []):
            for ours, names in MATCH.items():
                if model["name"] in names:
                    metric = doc.get("metric", "recall@10")   # single-metric tables give one number per task
                    values = {task: v if isinstance(v, dict) else {metric: v} for task, v in model["values"].items()}
                    rows.append((ours, model["name"], model.get("source") or doc.get("source", path.name), values))
    for ours, entries in EXTRA.items():
        rows.extend((ours, "SASRec (CE)", source, values) for source, values in entries)
    return rows


def ours(run_dir: Path) -> dict[str, dict[str, float]]:
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return {task: entry["metrics"] for task, entry in summary["tasks"].items() if task in TASKS}


def fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


CURVE_POINTS = 8
SIZE_FIELDS = (("layers", "layers"), ("blocks", "blocks"), ("d_model", "d_model"), ("hidden", "hidden"),
               ("heads", "heads"), ("d_ff", "FFN"), ("ffn", "FFN"), ("max_len", "max length"),
               ("max_history", "history"), ("loss", "loss"))


def model_size(config: dict) -> str:
    """The size settings of a training summary's config, so the report states what was trained."""
    return ", ".join(f"{label} {config[key]}" for key, label in SIZE_FIELDS if config.get(key)) or "—"


def validation_curve(folder: Path) -> str:
    """``epoch: R@10`` of every validation in the run's ``log.jsonl``: shows whether it was still improving."""
    log_file = folder / "log.jsonl"
    if not log_file.exists():
        return "—"
    by_epoch = {}                   # a resumed run logs the epochs after its last checkpoint again: keep the last
    for line in log_file.read_text(encoding="utf-8").splitlines():
        point = json.loads(line) if line.strip() else {}
        if "valid_recall@10" in point:
            by_epoch[point["epoch"]] = point["valid_recall@10"]
    points = sorted(by_epoch.items())
    if len(points) > CURVE_POINTS:          # evenly spaced, always with the last
        step = len(points) / CURVE_POINTS
        points = [points[int(len(points) - 1 - i * step)] for i in reversed(range(CURVE_POINTS))]
    return ", ".join(f"{epoch}: {value:.4f}" for epoch, value in points) or "—"


def report(runs: list[tuple[str, Path]], checkpoints: list[tuple[str, Path]]) -> str:
    """``runs`` / ``checkpoints``: (baseline name, folder); the name before a ``:`` picks the published rows."""
    lines = ["# Amazon reproduction report", "",
             "Our numbers come from `recif-eval` on the `amazon_<category>` tasks (leave-one-out, full catalogue, "
             "all users); published numbers from `configs/published/*.yaml` and spec amazon_and_baselines §3.1. "
             "Ratio = ours / published R@10.", ""]
    references = published()
    measured: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in runs:                     # one name may come once per category
        measured.setdefault(name, {}).update(ours(path))
    for task in TASKS:
        lines += [f"## {task.removeprefix('amazon_').capitalize()}", "",
                  "| baseline | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in METRICS)
                  + " | published (source) R@5 / R@10 / N@5 / N@10 | ratio R@10 |", "|---" * 7 + "|"]
        for name, by_task in measured.items():
            if task not in by_task:
                continue
            values = by_task[task]
            family = name.split(":")[0]         # "tiger:last" is compared with TIGER's rows too
            refs = [(model, source, v[task]) for o, model, source, v in references if o == family and task in v]
            if not refs:
                lines.append(f"| {name} | " + " | ".join(fmt(values.get(m)) for m in METRICS) + " | — | — |")
            for model, source, ref in refs:
                ratio = values["recall@10"] / ref["recall@10"] if ref.get("recall@10") else None
                pub = " / ".join(fmt(ref.get(m)) for m in METRICS)
                lines.append(f"| {name} | " + " | ".join(fmt(values.get(m)) for m in METRICS)
                             + f" | {pub} ({model}: {source}) | {fmt(ratio) if ratio else '—'} |")
        lines.append("")
    lines += ["## Models and training", "",
              "| baseline | folder | model | parameters | epochs run | best epoch | valid R@10 | valid R@10 by epoch | "
              "train time (s) |", "|---" * 9 + "|"]
    for name, path in checkpoints:
        summary_file = Path(path) / "summary.json"
        if not summary_file.exists():
            lines.append(f"| {name} | {path} | (no summary.json: training still running or stopped early) "
                         "| | | | | | |")
            continue
        s = json.loads(summary_file.read_text(encoding="utf-8"))
        lines.append(f"| {name} | {path} | {model_size(s.get('config', {}))} | {s['parameters']:,} | {s['epochs_run']} | "
                     f"{s['best_epoch']} | {s['valid_recall@10']:.4f} | {validation_curve(Path(path))} | "
                     f"{s['train_seconds']} |")
    return "\n".join(lines) + "\n"


def pairs(values: list[str], flag: str) -> list[tuple[str, Path]]:
    out = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not Path(path).exists():
            raise SystemExit(f"reproduce_amazon: {flag} {value!r}: expected NAME=EXISTING_FOLDER")
        out.append((name, Path(path)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", default=[], help="NAME=recif-eval run folder (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], help="NAME=training output folder (repeatable)")
    p.add_argument("--notes", default=None, help="a Markdown file appended as the 'Gaps' section")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "reproduce_amazon.md"))
    args = p.parse_args(argv)
    text = report(pairs(args.run, "--run"), pairs(args.checkpoint, "--checkpoint"))
    if args.notes:
        text += "\n" + Path(args.notes).read_text(encoding="utf-8")
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
