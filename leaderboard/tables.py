"""The paper's tables: rows = tasks with their headline metric, columns = our runs and reported models.

One table per data group (``collect.group_by_data``), so runs on different data never share a table;
published columns sit beside ours but only compete for the bold "best" when they were scored on the
same data (``PublishedTable.comparable_with``). Every table renders to Markdown, CSV and LaTeX.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from statistics import mean
from typing import Iterable, Literal, Sequence

from recif_bench.benchmark import LAYER_NAMES, TASK_ORDER
from leaderboard.collect import DataGroup, Run
from leaderboard.layout import AMAZON_HEADLINE, headline_metric, is_amazon, is_recif, layer_of, metric_label, task_label
from leaderboard.published import PublishedModel, PublishedTable
from leaderboard.significance import LEGEND as SIGNIFICANCE_LEGEND
from leaderboard.significance import mark_table

Status = Literal["ok", "unsupported", "missing", "failed", "no_judge"]
SHOWN = {"unsupported": "--", "missing": "n/a", "failed": "failed", "no_judge": "no judge"}
LEGEND = ("-- = the model cannot do the task (as in the paper); n/a = not run or not computed; "
          "failed = every judge call failed; no judge = text generated but no judge configured; "
          "* = see the notes; bold = best among comparable columns; ± = standard error (bootstrap over users).")
MAIN_TABLES = ("recif_bench", "amazon")


@dataclass(frozen=True)
class Row:
    task: str
    metric: str
    label: str
    layer: int | None = None


@dataclass(frozen=True)
class Column:
    label: str
    reported: bool
    comparable: bool                  # may be bold: scored on the same data as the table's runs
    run: Run | None = None
    source: str | None = None


@dataclass(frozen=True)
class Cell:
    value: float | None
    status: Status = "ok"
    note: str | None = None
    stderr: float | None = None       # bootstrap over users, from the run's summary.json
    mark: str = ""                    # significance mark (leaderboard.significance)


@dataclass(frozen=True)
class Average:
    label: str
    rows: tuple[int, ...]


@dataclass
class Table:
    key: str                          # file name stem
    kind: str                         # recif_bench | amazon | a reference table's name
    title: str
    rows: list[Row]
    columns: list[Column]
    cells: list[list[Cell]]           # [row][column]
    averages: list[Average] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group: DataGroup | None = None

    def best(self, values: Sequence[float | None]) -> set[int]:
        """Columns holding the highest value among the comparable ones (ties all win)."""
        scored = [(v, c) for c, v in enumerate(values) if v is not None and self.columns[c].comparable]
        if len(scored) < 2:
            return set()
        top = max(v for v, _ in scored)
        return {c for v, c in scored if v == top}

    def row_values(self, r: int) -> list[float | None]:
        return [cell.value if cell.status == "ok" else None for cell in self.cells[r]]

    def average_values(self, avg: Average) -> list[float | None]:
        """Mean over the average's rows, only for a column that has every one of them."""
        out: list[float | None] = []
        for c in range(len(self.columns)):
            values = [self.cells[r][c].value for r in avg.rows if self.cells[r][c].status == "ok"]
            out.append(mean(values) if values and len(values) == len(avg.rows) else None)
        return out

    def column_footnotes(self) -> list[str]:
        return [f"{self.columns[c].label} / {row.label}: {self.cells[r][c].note}"
                for r, row in enumerate(self.rows) for c in range(len(self.columns)) if self.cells[r][c].note]


# ---------------------------------------------------------------- cells


def run_cell(run: Run, task: str, metric: str) -> Cell:
    """Our run's value for (task, metric), with why it is absent when it is."""
    entry = run.tasks.get(task)
    if entry is None:
        return Cell(None, "missing")
    if entry.get("supported") is False:
        return Cell(None, "unsupported")
    value = (entry.get("metrics") or {}).get(metric)
    headline = entry.get("headline") or {}
    if value is None and headline.get("metric") == metric:
        value = headline.get("value")
    judge = entry.get("judge") or {}
    failed, calls = int(judge.get("failed") or 0), judge.get("calls")
    judge_note = f"judge failed on {failed} of {calls} calls" if failed else None
    if value is None:
        if failed:
            return Cell(None, "failed", judge_note)
        if judge.get("kind") == "none":
            return Cell(None, "no_judge")
        return Cell(None, "missing")
    stderr = (entry.get("stderr") or {}).get(metric)
    if stderr is None and headline.get("metric") == metric:
        stderr = headline.get("stderr")
    return Cell(float(value), "ok", judge_note, None if stderr is None else float(stderr))


def published_cell(model: PublishedModel, task: str, metric: str) -> Cell:
    metrics = model.values.get(task)
    if metrics is None or metric not in metrics:
        return Cell(None, "missing")
    value = metrics[metric]
    return Cell(None, "unsupported") if value is None else Cell(value)


# ---------------------------------------------------------------- building


def build_tables(groups: Sequence[DataGroup], published: Sequence[PublishedTable]) -> list[Table]:
    """The RecIF-Bench and Amazon tables per data group, then each reference table of the published files."""
    tables: list[Table] = []
    for kind in MAIN_TABLES:
        joined = [p for p in published if p.table == kind]
        relevant = [g for g in groups if any(_in_table(kind, t) for t in g.tasks())]
        for group in relevant:
            tables.append(_main_table(kind, group, joined))
        if joined and not any(p.comparable_with(g.data_names) for p in joined for g in relevant):
            tables.append(_main_table(kind, None, joined))   # the paper's own table, its bold, its radar
    for pub in (p for p in published if p.table not in MAIN_TABLES):
        tasks = {task for task, _ in pub.rows()}
        relevant = [g for g in groups if tasks & g.tasks()]
        for group in relevant or [None]:
            rows = [Row(t, m, task_label(t), layer_of(t)) for t, m in pub.rows()]
            tables.append(_table(pub.table, pub.title, rows, group, [pub]))
    _note_separated_groups(tables)
    for table in tables:
        mark_table(table)
    return tables


def _in_table(kind: str, task: str) -> bool:
    return is_recif(task) if kind == "recif_bench" else is_amazon(task)


def _main_table(kind: str, group: DataGroup | None, published: list[PublishedTable]) -> Table:
    if kind == "recif_bench":
        rows = [Row(t, headline_metric(t), task_label(t), layer_of(t)) for t in TASK_ORDER]
        table = _table(kind, "RecIF-Bench", rows, group, published)
        for layer in LAYER_NAMES:
            members = tuple(r for r, row in enumerate(rows) if row.layer == layer)
            if len(members) > 1:
                metrics = ", ".join(f"{metric_label(m)} x{n}" for m, n in _counts(rows[r].metric for r in members))
                table.averages.append(Average(f"L{layer} average ({metrics})", members))
        return table
    tasks = {t for p in published for m in p.models for t in m.values if is_amazon(t)}
    tasks |= {t for t in (group.tasks() if group else ()) if is_amazon(t)}
    rows = [Row(t, headline_metric(t), task_label(t)) for t in sorted(tasks, key=task_label)]
    table = _table(kind, f"Amazon {metric_label(AMAZON_HEADLINE)}", rows, group, published)
    table.averages.append(Average(f"Average ({len(rows)} domains)", tuple(range(len(rows)))))
    return table


def _counts(items: Iterable[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return list(counts.items())


def _table(kind: str, title: str, rows: list[Row], group: DataGroup | None,
           published: list[PublishedTable]) -> Table:
    runs = [r for r in (group.runs if group else []) if any(row.task in r.tasks for row in rows)]
    columns = [Column(label, False, True, run=run) for label, run in zip(_unique([r.label() for r in runs],
                                                                             [r.name for r in runs]), runs)]
    models = [(pub, model) for pub in published for model in pub.models]
    labels = _unique([m.name for _, m in models], [f"{m.name} [{p.key}]" for p, m in models])
    columns += [Column(label, True, group is None or pub.comparable_with(group.data_names), source=model.source)
                for label, (pub, model) in zip(labels, models)]
    cells = [[run_cell(run, row.task, row.metric) for run in runs]
             + [published_cell(model, row.task, row.metric) for _, model in models] for row in rows]
    key = f"{kind}-{group.key if group else 'reported'}"
    table = Table(key, kind, f"{title} — {group.label if group else 'reported'}", rows, columns, cells,
                  group=group)
    table.notes = _notes(group, published)
    return table


def _unique(labels: list[str], fallbacks: list[str]) -> list[str]:
    """Keep a label unless another column has it too; then use the fallback (the run's name)."""
    return [fallback if labels.count(label) > 1 else label for label, fallback in zip(labels, fallbacks)]


def _notes(group: DataGroup | None, published: list[PublishedTable]) -> list[str]:
    notes = []
    if group is not None:
        notes.append(f"Our runs: scored on {group.label}, data fingerprint {', '.join(group.fingerprints)}.")
    for pub in published:
        if group is None or pub.comparable_with(group.data_names):
            notes.append(f"Reported columns: {pub.title}; source: {pub.source}.")
        else:
            notes.append(f"Reported columns: {pub.title}, on {pub.data} data while our runs here are on "
                         f"{group.data_name}: shown for reference, not comparable, never bold; source: {pub.source}.")
        notes += [f"{m.name} (reported): {m.note}." for m in pub.models if m.note]
    return notes


def _note_separated_groups(tables: list[Table]) -> None:
    """Say so wherever runs on the same data name but different data were kept apart."""
    for table in tables:
        if table.group is None:
            continue
        others = [t.key for t in tables if t.kind == table.kind and t.group is not None
                  and t.group is not table.group and t.group.data_name == table.group.data_name]
        if others:
            table.notes.append(f"Not merged: other runs on {table.group.data_name} were scored on different data "
                               f"or a different selection; they are in {', '.join(others)}.")


# ---------------------------------------------------------------- rendering


def format_value(value: float | None, cell: Cell | None = None, plus_minus: str = " ± ") -> str:
    if cell is not None and cell.status != "ok":
        return SHOWN[cell.status]
    if value is None:
        return "n/a"
    error = f"{plus_minus}{cell.stderr:.4f}" if cell is not None and cell.stderr is not None else ""
    return f"{value:.4f}{error}" + (cell.mark if cell is not None else "") + ("*" if cell is not None and cell.note else "")


def header_labels(table: Table) -> list[str]:
    return [f"{col.label} (reported)" if col.reported else col.label for col in table.columns]


def grid(table: Table, plus_minus: str = " ± ") -> list[tuple[str, str, list[str], set[int]]]:
    """(row label, metric label, shown values, bold columns) for every row, then the averages."""
    out = []
    for r, row in enumerate(table.rows):
        cells = table.cells[r]
        out.append((row.label, metric_label(row.metric), [format_value(c.value, c, plus_minus) for c in cells],
                    table.best(table.row_values(r))))
    for avg in table.averages:
        values = table.average_values(avg)
        out.append((avg.label, "", [format_value(v) if v is not None else "n/a" for v in values],
                    table.best(values)))
    return out


def to_markdown(table: Table) -> str:
    head = ["Task", "Metric", *header_labels(table)]
    lines = [f"### {table.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * len(table.columns)]
    for label, metric, shown, bold in grid(table):
        values = [f"**{v}**" if c in bold else v for c, v in enumerate(shown)]
        lines.append("| " + " | ".join([label, metric, *values]) + " |")
    lines += [""] + [f"- {note}" for note in [*table.notes, *table.column_footnotes(), LEGEND, SIGNIFICANCE_LEGEND]]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Numbers as numbers (no bold, no asterisk); absent values as their marker."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    errors = [c for c in range(len(table.columns)) if any(row[c].stderr is not None for row in table.cells)]
    writer.writerow(["task", "row", "metric", *header_labels(table),
                     *[f"stderr {header_labels(table)[c]}" for c in errors]])
    for r, row in enumerate(table.rows):
        cells = table.cells[r]
        writer.writerow([row.task, row.label, row.metric,
                         *[c.value if c.status == "ok" else SHOWN[c.status] for c in cells],
                         *["" if cells[c].stderr is None else cells[c].stderr for c in errors]])
    for avg in table.averages:
        writer.writerow(["average", avg.label, "", *["" if v is None else v for v in table.average_values(avg)]])
    return buffer.getvalue()


def to_latex(table: Table) -> str:
    """A booktabs tabular; the notes follow as LaTeX comments, so the file can be \\input as it is."""
    head = ["Task", "Metric", *header_labels(table)]
    lines = [f"% {latex_escape(table.title)}", "\\begin{tabular}{ll" + "r" * len(table.columns) + "}",
             "\\toprule", " & ".join(latex_escape(h) for h in head) + " \\\\", "\\midrule"]
    n_rows = len(table.rows)
    for i, (label, metric, shown, bold) in enumerate(grid(table)):
        if i == n_rows and table.averages:
            lines.append("\\midrule")
        shown = [latex_escape(v).replace("±", "$\\pm$").replace("†", "$^\\dagger$") for v in shown]
        values = [f"\\textbf{{{v}}}" if c in bold else v for c, v in enumerate(shown)]
        lines.append(" & ".join([latex_escape(label), latex_escape(metric), *values]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    lines += [f"% {latex_escape(note)}" for note in [*table.notes, *table.column_footnotes()]]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    replace = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "---"}
    return "".join(replace.get(ch, ch) for ch in text)
