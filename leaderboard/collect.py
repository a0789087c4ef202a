"""Read ``results/*/summary.json`` run directories and group the runs by the data they were scored on.

The reader speaks exactly one schema (``recif-bench/summary/1``, shared/design/RESULTS.md) and refuses
any other with a message naming the file, rather than guessing at fields. Grouping is the guard the
contract asks for: two runs only share a table when every task they both ran was read from the same
file (per-task fingerprint), with the same limit / sample; anything else lands in its own group,
and the tables say so.

Pipeline convention (for the metric-vs-stage plot): a run that belongs to a training pipeline sets
``run.pipeline`` (a name shared by the pipeline's runs) and ``model.stage`` (this checkpoint's stage,
e.g. ``stage1``, ``sft``); ``model.stage_index`` orders the stages, else ``run.created`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from recif_bench.redact import scrub_tree
from recif_bench.results import SCHEMA

SUMMARY = "summary.json"


class CollectError(ValueError):
    """A run directory that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Run:
    """One ``results/<run>/`` directory, read through ``summary.json``."""

    path: Path
    summary: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.summary.get("run", {}).get("name") or self.path.name)

    @property
    def model(self) -> str:
        return str(self.summary.get("model", {}).get("name") or self.name)

    @property
    def data(self) -> Mapping[str, Any]:
        return self.summary.get("data") or {}

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.summary.get("settings") or {}

    @property
    def tasks(self) -> Mapping[str, Mapping[str, Any]]:
        return self.summary.get("tasks") or {}

    @property
    def created(self) -> str:
        return str(self.summary.get("run", {}).get("created") or "")

    @property
    def pipeline(self) -> str | None:
        return self.summary.get("run", {}).get("pipeline")

    @property
    def stage(self) -> str | None:
        return self.summary.get("model", {}).get("stage")

    @property
    def stage_order(self) -> tuple[float, str]:
        index = self.summary.get("model", {}).get("stage_index")
        return (float(index) if isinstance(index, (int, float)) else float("inf"), self.created)

    def task_fingerprint(self, task: str) -> str | None:
        """Hash of the file this task was read from (``data.files.<task>.fingerprint``), if recorded."""
        return ((self.data.get("files") or {}).get(task) or {}).get("fingerprint")

    @property
    def selection(self) -> tuple[Any, ...]:
        """What picks rows out of the files: two runs with different ones scored different samples."""
        sample = self.data.get("sample")
        return self.data.get("limit"), sample, self.settings.get("seed") if sample else None

    def tags(self) -> list[str]:
        """Non-default settings, shown next to the model name so different settings never look alike."""
        tags = [name for name in ("thinking", "constrained") if self.settings.get(name)]
        ahead = self.settings.get("think_ahead")
        if ahead:
            tags.append(f"think-ahead {ahead['paths']},{ahead['beams']}")
        judge = self.settings.get("judge")
        if judge:
            tags.append(f"judge {judge.get('kind')}:{judge.get('model')}" if judge.get("model")
                        else f"judge {judge.get('kind')}")
        if self.data.get("limit"):
            tags.append(f"limit {self.data['limit']}")
        if self.data.get("sample"):
            tags.append(f"sample {self.data['sample']}")
        if self.stage:
            tags.append(str(self.stage))
        return tags

    def label(self) -> str:
        tags = self.tags()
        return f"{self.model} ({', '.join(tags)})" if tags else self.model


def read_run(run_dir: Path) -> Run:
    """Read one run directory; a missing, unreadable or foreign ``summary.json`` is a CollectError."""
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollectError(f"{path}: no summary.json (not a recif-eval run directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CollectError(f"{path}: unreadable summary ({exc})") from None
    if not isinstance(summary, dict):
        raise CollectError(f"{path}: summary is not a JSON object")
    if summary.get("schema") != SCHEMA:
        raise CollectError(f"{path}: unknown schema {summary.get('schema')!r} (this reader knows {SCHEMA!r})")
    if not isinstance(summary.get("tasks"), dict):
        raise CollectError(f"{path}: no 'tasks' object")
    for task, entry in summary["tasks"].items():
        _check_task_entry(path, task, entry)
    for section in ("run", "model", "data", "settings"):
        if not isinstance(summary.get(section, {}), dict):
            raise CollectError(f"{path}: '{section}' is not an object")
    return Run(Path(run_dir), scrub_tree(summary))   # summaries written before scrubbing may hold keys


def _check_task_entry(path: Path, task: str, entry: Any) -> None:
    """A task entry the tables can read: an object whose metrics and headline value are numbers or null."""
    if not isinstance(entry, dict):
        raise CollectError(f"{path}: tasks.{task} is {type(entry).__name__}, not an object")
    metrics = entry.get("metrics", {})
    if not isinstance(metrics, dict):
        raise CollectError(f"{path}: tasks.{task}.metrics is not an object")
    headline = entry.get("headline", {})
    if not isinstance(headline, dict):
        raise CollectError(f"{path}: tasks.{task}.headline is not an object")
    values = {**{f"metrics.{k}": v for k, v in metrics.items()}, "headline.value": headline.get("value")}
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise CollectError(f"{path}: tasks.{task}.{name} is {value!r}, not a number")
    for name in ("n", "n_invalid"):
        value = entry.get(name, 0)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise CollectError(f"{path}: tasks.{task}.{name} is {value!r}, not a number")


@dataclass
class Collection:
    runs: list[Run] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)   # one message per directory that was not read


def collect(results_dirs: Iterable[Path]) -> Collection:
    """Every run below the given folders (a folder may itself be a run directory).

    Folders without a ``summary.json`` anywhere are simply not runs; a ``summary.json`` that cannot be
    read is refused with its message, and the other runs are still collected.
    """
    out = Collection()
    for root in results_dirs:
        root = Path(root)
        if not root.is_dir():
            raise CollectError(f"{root}: no such results folder")
        candidates = [root] if (root / SUMMARY).exists() else sorted(p.parent for p in root.glob(f"*/{SUMMARY}"))
        out.refused += [f"{d}: lm-eval results without a summary.json (run it through recif-eval to compare it)"
                        for d in sorted(root.iterdir()) if d.is_dir() and d not in candidates and _lm_eval_output(d)]
        for run_dir in candidates:
            try:
                out.runs.append(read_run(run_dir))
            except CollectError as exc:
                out.refused.append(str(exc))
    out.runs.sort(key=lambda r: (r.created, r.name))
    return out


def _lm_eval_output(folder: Path) -> bool:
    """lm-eval's own output (``results_<date>.json`` under a model folder), which the tables cannot read."""
    return any(folder.glob("results_*.json")) or any(folder.glob("*/results_*.json"))


@dataclass
class DataGroup:
    """Runs that may share a comparison column set: same data, same row selection."""

    runs: list[Run]
    key: str = ""        # short unique id for file names and anchors
    label: str = ""      # what the tables print

    @property
    def data_names(self) -> list[str]:
        """The runs' data names (several when Amazon runs name different task subsets)."""
        return sorted({str(r.data.get("name") or "unknown") for r in self.runs})

    @property
    def data_name(self) -> str:
        return " / ".join(self.data_names)

    @property
    def fingerprints(self) -> list[str]:
        return sorted({str(r.data.get("fingerprint")) for r in self.runs})

    def tasks(self) -> set[str]:
        return {t for r in self.runs for t in r.tasks}


def same_data(a: Run, b: Run) -> bool:
    """True when every task both runs scored was read from the same file with the same selection.

    The data *name* only decides when per-task fingerprints are missing: Amazon runs name their
    task subset ("amazon-beauty+sports") yet read the same files for the tasks they share.
    """
    if a.selection != b.selection:
        return False
    common = set(a.tasks) & set(b.tasks)
    per_task = [(a.task_fingerprint(t), b.task_fingerprint(t)) for t in common]
    if not common or any(None in pair for pair in per_task):
        return (a.data.get("name"), a.data.get("fingerprint")) == (b.data.get("name"), b.data.get("fingerprint"))
    return all(fa == fb for fa, fb in per_task)


def group_by_data(runs: Iterable[Run]) -> list[DataGroup]:
    """Greedy grouping: a run joins the first group whose every member ran on the same data."""
    groups: list[DataGroup] = []
    for run in runs:
        home = next((g for g in groups if all(same_data(run, other) for other in g.runs)), None)
        if home is None:
            groups.append(DataGroup([run]))
        else:
            home.runs.append(run)
    _name_groups(groups)
    return groups


def _name_groups(groups: list[DataGroup]) -> None:
    by_name: dict[str, list[DataGroup]] = {}
    for group in groups:
        by_name.setdefault(group.data_name, []).append(group)
    for name, same_name in by_name.items():
        for i, group in enumerate(same_name, start=1):
            limit, sample, seed = group.runs[0].selection
            extra = [f"limit {limit}"] if limit else []
            extra += [f"sample {sample} seed {seed}"] if sample else []
            if len(same_name) > 1:
                extra.append(f"data #{i} {_short(group.fingerprints[0])}")
            group.label = f"{name} ({', '.join(extra)})" if extra else name
            group.key = slug(name) + (f"-{i}" if len(same_name) > 1 else "")


def _short(fingerprint: str) -> str:
    return fingerprint.removeprefix("sha256:")[:8]


def slug(text: str) -> str:
    """A file-name and HTML-id safe form of ``text``."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower()).strip("-") or "data"
