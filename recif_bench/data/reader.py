"""Read and validate RecIF-Bench task files: ``<data_dir>/<task>/<task>_test.parquet`` (spec §1).

Validation happens here, before any model is loaded.  Problems with a whole file (missing, not
parquet, missing column, no rows) raise :class:`DataError` naming the file.  Problems with one row
are the ones the reference skips; we skip them too, but count every skip by reason in a
:class:`LoadReport` that ends up in the results — never a silent drop.  Rec answers without a
well-formed SID are kept, as the reference keeps them: they stay in every denominator (their SID
metrics are 0; item-level metrics still use ``answer_pid``) and are counted as ``flagged``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from recif_bench import chat, sid
from recif_bench.benchmark import TaskInfo, task_info

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("messages", "metadata")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class DataError(Exception):
    """Bad input data; the message names the file (and row) so the user can fix it."""

    def __init__(self, path: str | Path, reason: str, row: int | None = None) -> None:
        where = f"{path}" + (f": row {row}" if row is not None else "")
        super().__init__(f"{where}: {reason}")
        self.path, self.row, self.reason = str(path), row, reason


class RowSkip(Exception):
    """One row the reference would skip; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Sample:
    sample_id: str               # str(row index) as the reference
    messages: list[dict[str, str]]
    answer: str                  # str(metadata["answer"]).strip()
    answer_ids: list[int]        # answer_pid / answer_iid (rec tasks), zeros dropped
    uid: str | None
    metadata: dict[str, Any]     # every metadata key except "answer", plus row_index


@dataclass
class LoadReport:
    task: str
    path: str
    fingerprint: str
    n_rows: int
    n_selected: int
    skipped: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)   # kept rows whose answer holds no valid SID

    @property
    def n_loaded(self) -> int:
        return self.n_selected - sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "fingerprint": self.fingerprint, "n_rows": self.n_rows,
                "n_selected": self.n_selected, "n_loaded": self.n_loaded, "n_skipped": dict(self.skipped),
                "n_flagged": dict(self.flagged)}


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """A local data root: the given folder, a Hugging Face dataset id (downloaded), or the mini default."""
    if data_dir is None or str(data_dir) in ("", "mini", "mini-recif"):
        from recif_bench.data.mini import default_data_dir

        return default_data_dir()
    path = Path(data_dir).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(path, "data directory is a file, expected a folder with <task>/<task>_test.parquet")
        return _benchmark_root(path)
    if _HUB_ID.match(str(data_dir)):
        return _benchmark_root(_download(str(data_dir)))
    raise DataError(path, "data directory not found (give a folder, a Hugging Face dataset id, or omit for mini-RecIF)")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type="dataset",
                                      allow_patterns=["*.parquet", "*.json", "**/*.parquet", "**/*.json"]))
    except Exception as exc:  # hub errors come in many types; all mean "could not get it"
        raise DataError(repo_id, f"could not fetch the dataset from the Hugging Face hub ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None


def _benchmark_root(path: Path) -> Path:
    """The official release nests the task folders under ``benchmark_data/``; accept both."""
    nested = path / "benchmark_data"
    if not any((path / t).is_dir() for t in ("video", "label_pred", "item_understand")) and nested.is_dir():
        return nested
    return path


def task_file(data_dir: Path, task: str) -> Path:
    return Path(data_dir) / task / f"{task}_test.parquet"


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_task(data_dir: str | Path | None, task: str, limit: int | None = None, sample: int | None = None,
              seed: int = 0, fmt: sid.SidFormat = sid.DEFAULT_FORMAT) -> tuple[list[Sample], LoadReport]:
    """Validated samples of one task and the report of what was read and skipped.

    ``limit`` keeps the first N rows (the reference's ``--sample_size``); ``sample`` draws N rows
    at random with ``seed`` (kept in file order).  Selection happens before validation, as in the
    reference, so skipped rows are counted within the selection.
    """
    path = task_file(resolve_data_dir(data_dir), task_info(task).name)
    stat = path.stat() if path.exists() else None
    key = (str(path), stat and (stat.st_mtime_ns, stat.st_size), limit, sample, seed, fmt)
    samples, report = _load_cached(*key)
    return list(samples), report


@lru_cache(maxsize=16)
def _load_cached(path_str: str, _stamp: Any, limit: int | None, sample: int | None, seed: int,
                 fmt: sid.SidFormat) -> tuple[tuple[Sample, ...], LoadReport]:
    """Validation runs before the model loads and again inside lm-eval: read each file once."""
    path = Path(path_str)
    info = task_info(path.parent.name)
    frame = _read_parquet(path)
    rows = list(range(len(frame)))
    if sample is not None:
        rows = sorted(random.Random(seed).sample(rows, min(sample, len(rows))))
    if limit is not None:
        rows = rows[:limit]
    report = LoadReport(info.name, str(path), fingerprint_file(path), len(frame), len(rows))
    messages_col, metadata_col = frame["messages"].tolist(), frame["metadata"].tolist()
    samples = []
    for i in rows:
        try:
            samples.append(_parse_row(i, messages_col[i], metadata_col[i], info))
        except RowSkip as skip:
            report.skipped[skip.reason] += 1
            log.debug("%s: row %d skipped: %s", path, i, skip)
            continue
        flag = answer_sid_problem(samples[-1].answer, fmt) if info.kind == "rec" else None
        if flag:
            report.flagged[flag] += 1
    if report.skipped:
        log.warning("%s: skipped %d of %d rows (%s)", path, sum(report.skipped.values()), len(rows),
                    ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())))
    if not samples and rows:
        raise DataError(path, f"no usable rows: all {len(rows)} selected rows were skipped "
                              f"({', '.join(f'{k}: {v}' for k, v in report.skipped.items())})")
    if report.flagged:
        log.warning("%s: %d rows kept whose answer has no valid SID; they score 0 on SID metrics (%s)", path,
                    sum(report.flagged.values()), ", ".join(f"{k}: {v}" for k, v in sorted(report.flagged.items())))
    return tuple(samples), report


def _read_parquet(path: Path):
    import pandas as pd
    import pyarrow

    if not path.exists():
        raise DataError(path, "file not found (expected the layout <data_dir>/<task>/<task>_test.parquet)")
    if not path.is_file():
        raise DataError(path, "a folder, not a parquet file (expected <data_dir>/<task>/<task>_test.parquet)")
    try:
        frame = pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise DataError(path, f"not a readable parquet file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column {missing[0]!r} (columns present: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise DataError(path, "the file has no rows")
    return frame


def _parse_row(index: int, raw_messages: Any, raw_metadata: Any, info: TaskInfo) -> Sample:
    messages = _decode(raw_messages, "messages")
    try:
        messages = chat.normalise_messages(_plain(messages))
    except chat.ChatError as exc:
        raise RowSkip("bad_messages", str(exc)) from None
    metadata = _decode(raw_metadata, "metadata")
    if not isinstance(metadata, dict):
        raise RowSkip("unparsable_metadata", f"metadata is a {type(metadata).__name__}, not an object")
    metadata = _plain(metadata)
    answer = metadata.pop("answer", None)
    if answer is None or _is_nan(answer) or not str(answer).strip():
        raise RowSkip("empty_answer")
    answer = str(answer).strip()
    answer_ids = _answer_ids(metadata) if info.kind == "rec" else []
    if info.kind == "label_pred" and "是" not in answer and "否" not in answer:
        raise RowSkip("answer_not_yes_no")   # the reference drops it from the AUC (invalid sample)
    uid = metadata.get("uid")
    metadata["row_index"] = index
    return Sample(str(index), messages, answer, answer_ids, None if uid is None else str(uid), metadata)


def _decode(value: Any, column: str) -> Any:
    if value is None or _is_nan(value):
        raise RowSkip(f"empty_{column}")
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        if not value.strip():
            raise RowSkip(f"empty_{column}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowSkip(f"unparsable_{column}", exc.msg) from None
    if hasattr(value, "tolist"):   # numpy arrays from pyarrow list columns
        value = value.tolist()
    if isinstance(value, (list, dict)) and len(value) == 0:
        raise RowSkip(f"empty_{column}")
    if not isinstance(value, (list, dict)):
        raise RowSkip(f"unparsable_{column}", f"{column} is a {type(value).__name__}")
    return value


def _plain(value: Any) -> Any:
    """Native python containers: pyarrow gives numpy arrays inside struct/list columns."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _answer_ids(metadata: dict[str, Any]) -> list[int]:
    raw = metadata.get("answer_pid")
    if raw is None:   # as the reference: a missing or null answer_pid falls back to answer_iid
        raw = metadata.get("answer_iid")
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise RowSkip("bad_answer_ids", "answer_pid is not a JSON list") from None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list):
        raise RowSkip("bad_answer_ids", f"answer_pid is a {type(raw).__name__}")
    try:
        ids = [int(x) for x in raw]
    except (TypeError, ValueError):
        raise RowSkip("bad_answer_ids", "answer_pid holds non-integers") from None
    return list(dict.fromkeys(x for x in ids if x != 0))


def answer_sid_problem(answer: str, fmt: sid.SidFormat) -> str | None:
    """Why a rec answer cannot be matched by a well-formed SID (``answer_without_sid`` /
    ``malformed_answer_sid``), or None.  Such rows are kept and counted, never skipped."""
    bodies = sid.extract_bodies(answer)
    if not bodies:
        return "answer_without_sid"
    if any(sid.try_parse_body(body, fmt) is None for body in bodies):
        return "malformed_answer_sid"
    return None
