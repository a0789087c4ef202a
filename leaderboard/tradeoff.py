"""The recommendation / general-ability trade-off: mean RecIF-Bench headline against mean general
score (``recif-eval --general``), one point per run, and one path per training pipeline (a model
before and after each stage), as the technical report discusses catastrophic forgetting.

Axes:
* x: mean of the RecIF-Bench headline values a run has, each on a 0-1 scale (the judge's 1-5
  ``llm_score`` of rec_reason is mapped by (s - 1) / 4), so every task weighs the same;
* y: mean headline of the run's higher-is-better general tasks (``recif_bench.general.mean_score``).

Runs are compared only within one data group of the collector, so every point of a figure was
scored on the same RecIF-Bench rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Sequence

from leaderboard.collect import DataGroup, Run
from leaderboard.layout import headline_metric
from leaderboard.tables import run_cell
from recif_bench.benchmark import TASK_ORDER
from recif_bench.general import mean_score

ONE_TO_FIVE = {"llm_score"}   # headline metrics on the judge's 1-5 scale


@dataclass(frozen=True)
class Point:
    run: Run
    recif: float       # mean RecIF-Bench headline (0-1)
    general: float     # mean general score (0-1)
    n_recif: int       # RecIF-Bench tasks behind ``recif``


def recif_score(run: Run) -> tuple[float | None, int]:
    """(mean 0-1 headline over the RecIF-Bench tasks the run has values for, how many)."""
    values = []
    for task in TASK_ORDER:
        metric = headline_metric(task)
        cell = run_cell(run, task, metric)
        if cell.status == "ok":
            values.append((cell.value - 1) / 4 if metric in ONE_TO_FIVE else cell.value)
    return (mean(values) if values else None), len(values)


def points(runs: Sequence[Run]) -> list[Point]:
    """Runs that have both a RecIF-Bench score and a general score."""
    out = []
    for run in runs:
        recif, n = recif_score(run)
        general = mean_score(run.summary.get("general"))
        if recif is not None and general is not None:
            out.append(Point(run, recif, general, n))
    return out


def tradeoff_plot(group: DataGroup, stem: Path) -> Path | None:
    """Scatter of the group's runs; each pipeline's stages joined by arrows in stage order."""
    from leaderboard.plots import _save, pipelines, plt

    found = points(group.runs)
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    in_pipeline = {id(r) for _, _, runs in pipelines([group]) for r in runs}
    for p in found:
        if id(p.run) not in in_pipeline:
            ax.scatter(p.recif, p.general, s=40, zorder=3)
            ax.annotate(p.run.label(), (p.recif, p.general), fontsize="x-small", xytext=(4, 4),
                        textcoords="offset points")
    by_run = {id(p.run): p for p in found}
    for name, _, runs in pipelines([group]):
        path = [by_run[id(r)] for r in runs if id(r) in by_run]
        if not path:
            continue
        line = ax.plot([p.recif for p in path], [p.general for p in path], marker="o", label=f"pipeline {name}")[0]
        for a, b in zip(path, path[1:]):
            ax.annotate("", (b.recif, b.general), (a.recif, a.general),
                        arrowprops={"arrowstyle": "->", "color": line.get_color()})
        for p in path:
            ax.annotate(p.run.stage or p.run.name, (p.recif, p.general), fontsize="x-small", xytext=(4, -10),
                        textcoords="offset points", color=line.get_color())
    if pipelines([group]):
        ax.legend(fontsize="small")
    ax.set(xlabel="mean RecIF-Bench headline (0-1)", ylabel="mean general score",
           title=f"recommendation vs general ability on {group.label}")
    ax.grid(alpha=0.3)
    return _save(fig, stem, f"Recommendation vs general ability on {group.label}: mean RecIF-Bench headline "
                            "against mean general score, each pipeline's stages joined in order")


def write_tradeoff(groups: Sequence[DataGroup], out_dir: Path) -> list[Path]:
    """One trade-off figure per data group with runs that carry general scores (PNG paths; SVG beside)."""
    made = [tradeoff_plot(group, Path(out_dir) / f"tradeoff-{group.key}") for group in groups]
    return [path for path in made if path is not None]
