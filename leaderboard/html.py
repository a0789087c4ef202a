"""The static leaderboard page: one self-contained HTML file (inline CSS and JS, plots as data URIs).

It opens from the file system with no server and fetches nothing: tables sort on a header click,
a run's column header links to its details (model, data fingerprint, settings, versions, per-task
counts), which open on click.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import jinja2

from leaderboard.collect import Run, slug
from leaderboard.tables import Table, grid

TEMPLATE = "board.html.jinja"


@dataclass(frozen=True)
class Figure:
    title: str
    uri: str


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def caption(png: Path) -> str:
    """The caption the figure carries in its PNG metadata (``plots.CAPTION_KEY``), else its file name in words."""
    from PIL import Image

    from leaderboard.plots import CAPTION_KEY

    with Image.open(png) as image:
        text = getattr(image, "text", {}).get(CAPTION_KEY)
    return text or Path(png).stem.replace("-", " ").replace("_", " ")


def run_anchor(run: Run) -> str:
    return "run-" + slug(str(run.path))


def _table_view(table: Table, figures: Sequence[Figure]) -> dict[str, Any]:
    columns = [{"label": col.label, "reported": col.reported, "comparable": col.comparable,
                "anchor": run_anchor(col.run) if col.run is not None else None, "source": col.source}
               for col in table.columns]
    rows = []
    for i, (label, metric, shown, bold) in enumerate(grid(table)):
        if i < len(table.rows):
            values = table.row_values(i)
            notes = [cell.note for cell in table.cells[i]]
        else:
            values = table.average_values(table.averages[i - len(table.rows)])
            notes = [None] * len(values)
        rows.append({"label": label, "metric": metric, "average": i >= len(table.rows),
                     "cells": [{"shown": s, "sort": "" if v is None else repr(v), "bold": c in bold, "note": n}
                               for c, (s, v, n) in enumerate(zip(shown, values, notes))]})
    return {"key": table.key, "title": table.title, "columns": columns, "rows": rows,
            "notes": [*table.notes, *table.column_footnotes()], "figures": figures}


def _run_view(run: Run) -> dict[str, Any]:
    tasks = [{"task": name, "n": entry.get("n"), "skipped": sum((entry.get("n_skipped") or {}).values()),
              "invalid": entry.get("n_invalid"), "supported": entry.get("supported", True),
              "headline": entry.get("headline") or {}, "judge": json.dumps(entry["judge"]) if entry.get("judge") else ""}
             for name, entry in run.tasks.items()]
    return {"anchor": run_anchor(run), "label": run.label(), "name": run.name, "path": str(run.path),
            "created": run.created, "model": run.summary.get("model") or {},
            "data": {k: v for k, v in run.data.items() if k != "files"},
            "settings": json.dumps(run.settings, indent=1, ensure_ascii=False),
            "versions": (run.summary.get("run") or {}).get("versions") or {},
            "command": (run.summary.get("run") or {}).get("command"),
            "elapsed": (run.summary.get("run") or {}).get("elapsed_seconds"), "tasks": tasks}


def render(tables: Sequence[Table], runs: Sequence[Run], figures: dict[str, list[Figure]],
           refused: Sequence[str] = (), extra_figures: Sequence[Figure] = ()) -> str:
    """The page as a string; ``figures`` maps a table key to the plots shown under that table."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "jinja"]),
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE).render(
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tables=[_table_view(t, figures.get(t.key, [])) for t in tables],
        runs=[_run_view(r) for r in runs], refused=list(refused), extra_figures=list(extra_figures))


def write_html(path: Path, tables: Sequence[Table], runs: Sequence[Run], plots: Sequence[Path],
               refused: Sequence[str] = ()) -> Path:
    """Write the page; each PNG goes under the table whose key starts its file name, others at the end."""
    figures: dict[str, list[Figure]] = {}
    extra: list[Figure] = []
    keys = sorted((t.key for t in tables), key=len, reverse=True)
    for png in plots:
        owner = next((k for k in keys if Path(png).stem.startswith(k + "-")), None)
        figure = Figure(caption(png), data_uri(png))
        if owner:
            figures.setdefault(owner, []).append(figure)
        else:
            extra.append(figure)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(tables, runs, figures, refused, extra), encoding="utf-8")
    return path
