"""Leaderboard figures (matplotlib, Agg; each saved as PNG and SVG with its caption as the image's title).

* radar of the 8 RecIF-Bench tasks per model, each task divided by the best value *reported or run* for
  it (every column of the table counts, comparable or not, so a lone run is placed against the paper's
  models instead of against itself); a task a model cannot do or did not run is a gap in its polygon,
  named in the legend, never a 0;
* bars per capability layer and metric (one panel per layer and metric: AUC never shares an axis with
  Recall@32), only panels holding a value; an absent value is written on the axis as the tables write it;
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
from leaderboard.tables import SHOWN, Table, run_cell  # noqa: E402
from recif_bench.benchmark import LAYER_NAMES, TASK_ORDER  # noqa: E402

FORMATS = ("png", "svg")
CAPTION_KEY = "Title"         # PNG / SVG metadata field holding a figure's caption (read by the HTML page)


def plotted_columns(table: Table) -> list[int]:
    """Comparable columns with at least one value."""
    return [c for c, col in enumerate(table.columns)
            if col.comparable and any(table.cells[r][c].status == "ok" for r in range(len(table.rows)))]


def _label(table: Table, c: int) -> str:
    col = table.columns[c]
    return f"{col.label} (reported)" if col.reported else col.label


def _value(table: Table, r: int, c: int) -> float:
    """The cell's value, NaN when it has none (drawn as a gap or a marker, never as 0)."""
    cell = table.cells[r][c]
    return cell.value if cell.status == "ok" and cell.value is not None else float("nan")


def _save(fig: plt.Figure, stem: Path, caption: str) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in FORMATS:
        fig.savefig(stem.with_suffix(f".{fmt}"), dpi=110, bbox_inches="tight", metadata={CAPTION_KEY: caption})
    plt.close(fig)
    return stem.with_suffix(".png")


def _legend_below(fig: plt.Figure, handles: list, labels: list[str], columns: int = 3) -> None:
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(columns, len(labels)),
               fontsize="small", frameon=False)


def task_best(table: Table) -> np.ndarray:
    """Per row, the best value of any column, reported or run, comparable or not (NaN when none has one)."""
    values = np.array([[_value(table, r, c) for c in range(len(table.columns))] for r in range(len(table.rows))])
    best = np.full(len(table.rows), np.nan)
    has = ~np.isnan(values).all(axis=1) if values.size else np.zeros(len(table.rows), bool)
    best[has] = np.nanmax(values[has], axis=1)
    return best


def radar_values(table: Table, columns: Sequence[int]) -> np.ndarray:
    """(rows, columns) values divided by their task's best value reported or run; NaN where the model has none."""
    best = task_best(table)[:, None]
    raw = np.array([[_value(table, r, c) for c in columns] for r in range(len(table.rows))])
    safe = np.where(best > 0, best, 1.0)
    return np.where(best > 0, raw / safe, raw * 0.0)      # a task whose best is 0 stays 0 (NaN stays NaN)


def radar(table: Table, stem: Path) -> Path | None:
    """One polygon per model over the table's tasks; each task divided by its best value reported or run."""
    columns = plotted_columns(table)
    if not columns:
        return None
    norm = radar_values(table, columns)
    angles = np.linspace(0, 2 * np.pi, len(table.rows), endpoint=False)
    fig, ax = plt.subplots(figsize=(7.5, 7.5), subplot_kw={"projection": "polar"})
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    closed_angles = np.append(angles, angles[0])
    for i, c in enumerate(columns):
        closed = np.append(norm[:, i], norm[0, i])
        absent = [table.rows[r].label for r in range(len(table.rows)) if np.isnan(norm[r, i])]
        label = _label(table, c) + (f" (absent: {', '.join(absent)})" if absent else "")
        ax.plot(closed_angles, closed, marker="o", label=label)
        if not absent:
            ax.fill(closed_angles, closed, alpha=0.08)
    ax.set_xticks(angles, [row.label for row in table.rows])
    ax.tick_params(axis="x", pad=14)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize="small", color="grey")
    ax.set_title(f"{table.title}\neach task relative to its best value reported or run (1 = best)", pad=30)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels, columns=2)
    return _save(fig, stem, f"{table.title}: every model's score on each task as a share of the best value "
                            "reported or run for that task; a gap is a task the model cannot do or did not run")


def layer_panels(table: Table, columns: Sequence[int]) -> list[tuple[int, str, list[int]]]:
    """(layer, metric, rows) per capability layer and headline metric, for the rows a plotted column has a value in."""
    panels = []
    for layer in LAYER_NAMES:
        rows = [r for r, row in enumerate(table.rows) if row.layer == layer
                and any(table.cells[r][c].status == "ok" for c in columns)]
        for metric in dict.fromkeys(metric_label(table.rows[r].metric) for r in rows):
            panels.append((layer, metric, [r for r in rows if metric_label(table.rows[r].metric) == metric]))
    return panels


def _bars(ax: plt.Axes, table: Table, rows: Sequence[int], columns: Sequence[int]) -> None:
    """Grouped bars, one group per row; an absent value is written at the axis ("--", "n/a") instead of a bar."""
    x = np.arange(len(rows))
    width = 0.8 / len(columns)
    for i, c in enumerate(columns):
        offsets = x + (i - (len(columns) - 1) / 2) * width
        ax.bar(offsets, [_value(table, r, c) for r in rows], width, label=_label(table, c), color=f"C{i}")
        for offset, r in zip(offsets, rows):
            if table.cells[r][c].status != "ok":
                ax.annotate(SHOWN[table.cells[r][c].status], (offset, 0), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize="small", color=f"C{i}", fontweight="bold")
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_ylim(bottom=0)


def layer_bars(table: Table, stem: Path) -> Path | None:
    """One panel per capability layer and metric: its tasks on x, one bar per model (raw headline values)."""
    columns = plotted_columns(table)
    panels = layer_panels(table, columns)
    if not columns or not panels:
        return None
    widths = [len(rows) + 0.8 for _, _, rows in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 + 1.4 * sum(widths), 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (layer, metric, rows) in zip(axes[0], panels):
        _bars(ax, table, rows, columns)
        ax.set_xticks(np.arange(len(rows)), [table.rows[r].label for r in rows], fontsize="small")
        ax.set_ylabel(metric)
        ax.set_title(LAYER_NAMES[layer], fontsize="medium")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(f"{table.title}: headline metric per task, by capability layer")
    fig.tight_layout()
    _legend_below(fig, handles, labels, columns=4)
    return _save(fig, stem, f"{table.title}: each task's headline metric per model, one panel per capability "
                            "layer and metric; -- = the model cannot do the task, n/a = not run")


def domain_bars(table: Table, stem: Path) -> Path | None:
    """Amazon: domains on x, one bar per model."""
    columns = plotted_columns(table)
    if not columns:
        return None
    rows = list(range(len(table.rows)))
    fig, ax = plt.subplots(figsize=(3 + 1.1 * len(rows), 4.5))
    _bars(ax, table, rows, columns)
    ax.set_xticks(np.arange(len(rows)), [row.label for row in table.rows], rotation=30, ha="right")
    metric = metric_label(table.rows[0].metric) if table.rows else ""
    ax.set_ylabel(metric)
    ax.set_title(table.title)
    ax.legend(fontsize="small")
    return _save(fig, stem, f"{table.title}: {metric} of each model on each Amazon domain")


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
        ax.set_title(f"{task_label(task)}: {metric_label(headline_metric(task))}", fontsize="small")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(f"pipeline {pipeline} on {group.label}: metric vs training stage")
    fig.tight_layout()
    return _save(fig, stem, f"Pipeline {pipeline} on {group.label}: each task's headline metric after every "
                            "training stage")


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
