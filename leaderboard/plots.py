"""Leaderboard figures (matplotlib, Agg; each saved as PNG and SVG).

* radar of the 8 RecIF-Bench tasks per model, normalised per task (best plotted model = 1), the
  paper's holistic overview;
* grouped bars per capability layer (raw headline values, one panel per layer);
* Amazon Recall@10 bars per domain;
* metric vs training stage for the runs of one pipeline (``run.pipeline`` / ``model.stage``, see
  ``collect``), one panel per task.

Only columns that may be compared are drawn: our runs, plus reported models when they were scored on
the same data (or when a table has no runs of ours, the reported models alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from leaderboard.collect import DataGroup, Run, slug  # noqa: E402
from leaderboard.layout import headline_metric, is_recif, metric_label, task_label  # noqa: E402
from leaderboard.tables import Table, run_cell  # noqa: E402
from recif_bench.benchmark import LAYER_NAMES, TASK_ORDER  # noqa: E402

FORMATS = ("png", "svg")


def plotted_columns(table: Table) -> list[int]:
    """Comparable columns with at least one value."""
    return [c for c, col in enumerate(table.columns)
            if col.comparable and any(table.cells[r][c].status == "ok" for r in range(len(table.rows)))]


def _label(table: Table, c: int) -> str:
    col = table.columns[c]
    return f"{col.label} (reported)" if col.reported else col.label


def _value(table: Table, r: int, c: int) -> float:
    cell = table.cells[r][c]
    return cell.value if cell.status == "ok" and cell.value is not None else 0.0


def _save(fig: plt.Figure, stem: Path) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in FORMATS:
        fig.savefig(stem.with_suffix(f".{fmt}"), dpi=110, bbox_inches="tight")
    plt.close(fig)
    return stem.with_suffix(".png")


def radar(table: Table, stem: Path) -> Path | None:
    """One polygon per model over the table's tasks; each task divided by its best plotted value."""
    columns = plotted_columns(table)
    if not columns:
        return None
    raw = np.array([[_value(table, r, c) for c in columns] for r in range(len(table.rows))])
    best = raw.max(axis=1, keepdims=True)
    norm = np.divide(raw, best, out=np.zeros_like(raw), where=best > 0)
    angles = np.linspace(0, 2 * np.pi, len(table.rows), endpoint=False)
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"projection": "polar"})
    for i, c in enumerate(columns):
        closed = np.append(norm[:, i], norm[0, i])
        ax.plot(np.append(angles, angles[0]), closed, marker="o", label=_label(table, c))
        ax.fill(np.append(angles, angles[0]), closed, alpha=0.08)
    ax.set_xticks(angles, [row.label for row in table.rows])
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{table.title}\nper task, relative to the best model shown (absent = 0)", pad=24)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.12), fontsize="small")
    return _save(fig, stem)


def layer_bars(table: Table, stem: Path) -> Path | None:
    """One panel per capability layer: its tasks on x, one bar per model (raw headline values)."""
    columns = plotted_columns(table)
    layers = [layer for layer in LAYER_NAMES if any(row.layer == layer for row in table.rows)]
    if not columns or not layers:
        return None
    widths = [sum(row.layer == layer for row in table.rows) + 0.6 for layer in layers]
    fig, axes = plt.subplots(1, len(layers), figsize=(2 + 1.3 * sum(widths), 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    width = 0.8 / len(columns)
    for ax, layer in zip(axes[0], layers):
        rows = [r for r, row in enumerate(table.rows) if row.layer == layer]
        x = np.arange(len(rows))
        for i, c in enumerate(columns):
            ax.bar(x + (i - (len(columns) - 1) / 2) * width, [_value(table, r, c) for r in rows], width,
                   label=_label(table, c))
        ax.set_xticks(x, [f"{table.rows[r].label}\n{metric_label(table.rows[r].metric)}" for r in rows],
                      fontsize="small")
        ax.set_title(LAYER_NAMES[layer], fontsize="medium")
        ax.set_ylim(bottom=0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(columns)), fontsize="small",
               bbox_to_anchor=(0.5, -0.02 - 0.05 * ((len(columns) - 1) // 4)))
    fig.suptitle(table.title)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(columns) - 1) // 4), 1, 1))
    return _save(fig, stem)


def domain_bars(table: Table, stem: Path) -> Path | None:
    """Amazon: domains on x, one bar per model."""
    columns = plotted_columns(table)
    if not columns:
        return None
    x = np.arange(len(table.rows))
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(3 + 1.1 * len(table.rows), 4.5))
    for i, c in enumerate(columns):
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, [_value(table, r, c) for r in range(len(table.rows))],
               width, label=_label(table, c))
    ax.set_xticks(x, [row.label for row in table.rows], rotation=30, ha="right")
    ax.set_ylabel(metric_label(table.rows[0].metric) if table.rows else "")
    ax.set_title(table.title)
    ax.legend(fontsize="small")
    return _save(fig, stem)


def pipelines(groups: Sequence[DataGroup]) -> list[tuple[str, DataGroup, list[Run]]]:
    """(pipeline, group, runs in stage order) for every pipeline with runs in a data group."""
    out = []
    for group in groups:
        names = sorted({r.pipeline for r in group.runs if r.pipeline})
        for name in names:
            out.append((name, group, sorted((r for r in group.runs if r.pipeline == name),
                                            key=lambda r: r.stage_order)))
    return out


def stage_plot(pipeline: str, group: DataGroup, runs: list[Run], stem: Path) -> Path | None:
    """Headline metric of each RecIF-Bench task the pipeline scored, per training stage."""
    tasks = [t for t in TASK_ORDER if any(run_cell(r, t, headline_metric(t)).status == "ok" for r in runs)]
    tasks += sorted({t for r in runs for t in r.tasks if not is_recif(t) and headline_metric(t)
                     and run_cell(r, t, headline_metric(t)).status == "ok"})
    if not tasks:
        return None
    cols = min(4, len(tasks))
    nrows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.8 * nrows), squeeze=False)
    stages = [r.stage or r.name for r in runs]
    for ax, task in zip(axes.flat, tasks):
        cells = [run_cell(r, task, headline_metric(task)) for r in runs]
        ax.plot(range(len(runs)), [c.value if c.status == "ok" else np.nan for c in cells], marker="o")
        ax.set_xticks(range(len(runs)), stages, rotation=30, ha="right", fontsize="small")
        ax.set_title(f"{task_label(task)} ({metric_label(headline_metric(task))})", fontsize="small")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(f"pipeline {pipeline} on {group.label}: metric vs training stage")
    fig.tight_layout()
    return _save(fig, stem)


def write_plots(tables: Sequence[Table], groups: Sequence[DataGroup], out_dir: Path) -> list[Path]:
    """Every figure the tables and pipelines call for; returns the PNG paths (SVGs lie beside them)."""
    out_dir = Path(out_dir)
    jobs: list[tuple[Callable[..., Path | None], tuple]] = []
    for table in tables:
        if table.kind == "recif_bench":
            jobs += [(radar, (table, out_dir / f"{table.key}-radar")),
                     (layer_bars, (table, out_dir / f"{table.key}-layers"))]
        elif table.kind == "amazon":
            jobs.append((domain_bars, (table, out_dir / f"{table.key}-domains")))
    for name, group, runs in pipelines(groups):
        jobs.append((stage_plot, (name, group, runs, out_dir / f"stages-{slug(name)}-{group.key}")))
    made = [plot(*args) for plot, args in tqdm(jobs, desc="recif-leaderboard: plots", unit="figure")]
    return [path for path in made if path is not None]
