"""Published numbers (``configs/published/*.yaml``): the paper's tables and its peers', each with a source.

A file is one published table::

    title:  what the table is             table: recif_bench | amazon | <own table name>
    data:   data-name prefix our runs need to be comparable (recif-bench, amazon)
    source: where the numbers were printed
    models:
      - name: SASRec
        source: ... (optional, overrides the file's)   note: ... (optional caveat)
        values: {video: 0.0119, interactive: null}            # bare number = the task's headline metric
        values: {amazon_beauty: {recall@5: 0.04, recall@10: 0.06}}   # or metric -> number

``null`` is the paper's "--" (the model cannot do the task). Files joining ``recif_bench`` or
``amazon`` sit beside our runs in those tables; any other ``table`` name is a reference table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from leaderboard.layout import headline_metric
from recif_bench_configs import HOME


class PublishedError(ValueError):
    """A published-numbers file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class PublishedModel:
    name: str
    source: str
    note: str | None
    values: Mapping[str, Mapping[str, float | None]]   # task -> metric -> value (None = "--")


@dataclass(frozen=True)
class PublishedTable:
    key: str            # file stem
    title: str
    table: str
    data: str
    source: str
    models: tuple[PublishedModel, ...]

    def rows(self) -> list[tuple[str, str]]:
        """(task, metric) pairs: tasks in the order the file first names them, then recall@1, @5, ..., ndcg@5, ..."""
        tasks: dict[str, dict[str, None]] = {}     # insertion-ordered sets
        for model in self.models:
            for task, metrics in model.values.items():
                tasks.setdefault(task, {}).update(dict.fromkeys(metrics))
        families = list(dict.fromkeys(m.partition("@")[0] for metrics in tasks.values() for m in metrics))

        def order(metric: str) -> tuple[int, int]:
            family, _, k = metric.partition("@")
            return families.index(family), int(k) if k.isdigit() else 0

        return [(task, metric) for task, metrics in tasks.items() for metric in sorted(metrics, key=order)]

    def comparable_with(self, data_names: Sequence[str]) -> bool:
        """Runs on ``data_names`` were scored on the data these numbers were (by data-name prefix)."""
        return bool(data_names) and all(name.startswith(self.data) for name in data_names)


def default_dir() -> Path:
    """``configs/published`` of the installed configs home (the checkout's own folder in an editable install)."""
    return HOME / "published"


def load_published(directory: Path | None = None) -> list[PublishedTable]:
    directory = Path(directory) if directory is not None else default_dir()
    if not directory.is_dir():
        raise PublishedError(f"{directory}: no such folder of published numbers")
    return [load_file(path) for path in sorted(directory.glob("*.yaml"))]


def load_file(path: Path) -> PublishedTable:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PublishedError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict):
        raise PublishedError(f"{path}: expected a mapping with title, table, data, source, models")
    missing = [k for k in ("title", "table", "data", "source", "models") if not doc.get(k)]
    if missing:
        raise PublishedError(f"{path}: missing {', '.join(missing)}")
    if not isinstance(doc["models"], list):
        raise PublishedError(f"{path}: 'models' must be a list")
    models = tuple(_model(path, entry, str(doc["source"])) for entry in doc["models"])
    return PublishedTable(Path(path).stem, str(doc["title"]), str(doc["table"]), str(doc["data"]),
                          str(doc["source"]), models)


def _model(path: Path, entry: Any, source: str) -> PublishedModel:
    if not isinstance(entry, dict) or not entry.get("name") or not isinstance(entry.get("values"), dict):
        raise PublishedError(f"{path}: every model needs a name and a 'values' mapping (got {entry!r:.80})")
    values: dict[str, dict[str, float | None]] = {}
    for task, value in entry["values"].items():
        if isinstance(value, dict):
            values[task] = {str(m): _number(path, entry["name"], task, v) for m, v in value.items()}
            continue
        metric = headline_metric(task)
        if metric is None:
            raise PublishedError(f"{path}: {entry['name']}/{task}: a bare number needs a known task "
                                 "(RecIF-Bench or amazon_*); write {metric: value}")
        values[task] = {metric: _number(path, entry["name"], task, value)}
    return PublishedModel(str(entry["name"]), str(entry.get("source") or source), entry.get("note"), values)


def _number(path: Path, model: str, task: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PublishedError(f"{path}: {model}/{task}: {value!r} is not a number or null")
    return float(value)
