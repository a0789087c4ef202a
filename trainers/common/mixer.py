"""General-domain text mixed into recommendation data (spec training §1.3).

A mixer entry names a dataset and how many rows to draw from it::

    general:
      - {name: OpenMathReasoning, path: nvidia/OpenMathReasoning, split: train, rows: 477179}
      - {name: local-faq, path: data/faq.jsonl, rows: 2000}

``path`` is a local file or folder (json/jsonl/parquet/csv, read offline; a file shipped beside the
recipe configs, such as ``general_prompts.jsonl``, is found from any folder) or a Hugging Face
dataset id (needs the network).  Rows keep ``messages``/``segments`` when the dataset has them;
otherwise ``field`` (default ``text``) becomes one text segment.  Draws are seeded.
"""

from __future__ import annotations

import json
import random
from typing import Any, Mapping, Sequence

from trainers.common.config import shipped_file

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def load_entry(entry: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    import datasets

    name, path = entry.get("name") or entry.get("path"), str(entry["path"])
    local = shipped_file(path)
    if local.exists():
        files = sorted(local.rglob("*")) if local.is_dir() else [local]
        files = [f for f in files if f.suffix in LOCAL_FORMATS]
        if not files:
            raise FileNotFoundError(f"{path}: no json/jsonl/parquet/csv files for general dataset {name}")
        data = datasets.load_dataset(LOCAL_FORMATS[files[0].suffix], data_files=[str(f) for f in files],
                                     split="train")
    else:
        data = datasets.load_dataset(path, entry.get("subset"), split=entry.get("split", "train"))
    count = min(int(entry.get("rows", len(data))), len(data))
    picked = random.Random(f"{seed}:{name}").sample(range(len(data)), count)
    return [_unified(data[i], name, entry.get("field", "text")) for i in sorted(picked)]


def _unified(record: Mapping[str, Any], name: str, field: str) -> dict[str, Any]:
    out: dict[str, Any] = {"source": f"general:{name}", "metadata": "{}"}
    for key in ("messages", "segments"):
        if record.get(key) is not None:
            value = record[key]
            out[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return out
    if field not in record:
        raise KeyError(f"general dataset {name}: rows have neither messages, segments nor {field!r}")
    out["segments"] = json.dumps([{"type": "text", "text": str(record[field])}], ensure_ascii=False)
    return out


def general_rows(entries: Sequence[Mapping[str, Any]], seed: int) -> list[dict[str, Any]]:
    return [row for entry in entries for row in load_entry(entry, seed)]
