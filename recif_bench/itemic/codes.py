"""Item -> SID tables: the file ``recif-items encode`` writes and the Amazon tasks read, and the
pipeline that makes one from item text (embed -> RQ-KMeans -> optional dedup level).

Item-codes file (JSON)::

    {"format": "recif-bench/item-codes/1", "levels": 4, "codebook_size": 256, "dedup": true,
     "source": {...how it was made...}, "items": {"<item id>": [a, b, c, d], ...}}

``levels`` counts the dedup level when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from recif_bench import sid
from recif_bench.itemic.collisions import CatalogueError, add_dedup_level
from recif_bench.itemic.embed import Embedder, cached_embed
from recif_bench.itemic.rqkmeans import RQKMeans

FORMAT = "recif-bench/item-codes/1"


def write_item_codes(path: str | Path, items: Sequence[int], codes: np.ndarray, fmt: sid.SidFormat,
                     dedup: bool, source: Mapping[str, Any] | None = None) -> Path:
    codes = np.asarray(codes)
    if len(items) != len(codes):
        raise CatalogueError(f"{path}: {len(items)} items but {len(codes)} code rows (mismatched maps)")
    for row in codes[:1]:
        sid.render_body(row.tolist(), fmt)
    doc = {"format": FORMAT, "levels": fmt.levels, "codebook_size": fmt.codebook_size, "dedup": dedup,
           "source": dict(source or {}), "items": {str(i): row.tolist() for i, row in zip(items, codes)}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(path)
    return path


def read_item_codes(path: str | Path) -> tuple[dict[int, tuple[int, ...]], sid.SidFormat, dict[str, Any]]:
    """(item -> codes, format, header) of an item-codes file; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: item-codes file not found (make one with `recif-items encode`)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise CatalogueError(f"{path}: not an item-codes file (format {doc.get('format')!r}, expected {FORMAT})")
        fmt = sid.SidFormat(int(doc["levels"]), int(doc["codebook_size"]))
        items = {int(k): tuple(int(c) for c in v) for k, v in doc["items"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CatalogueError):
            raise
        raise CatalogueError(f"{path}: malformed item-codes file ({exc})") from None
    for item, codes in items.items():
        try:
            sid.render_body(codes, fmt)
        except sid.SidError as exc:
            raise CatalogueError(f"{path}: item {item}: {exc}") from None
    header = {k: v for k, v in doc.items() if k != "items"}
    return items, fmt, header


def encode_catalogue(model: RQKMeans, x: np.ndarray, dedup: bool) -> tuple[np.ndarray, sid.SidFormat]:
    """Codes of every item (+ the TIGER dedup level) and the SID format that writes them."""
    codes = model.encode(x)
    if dedup:
        codes = add_dedup_level(codes, model.codebook_size)
    return codes, sid.SidFormat(codes.shape[1], model.codebook_size)


def build_item_codes(texts: Sequence[str], embedder: Embedder, levels: int = 3, codebook_size: int = 256,
                     dedup: bool = True, backend: str = "auto", seed: int = 0, progress: bool = True,
                     precision: str = "auto") -> tuple[RQKMeans, np.ndarray, sid.SidFormat]:
    """Item text -> (fitted tokenizer, codes, format): embed (cached), fit RQ-KMeans, encode, dedup."""
    x = cached_embed(texts, embedder, progress=progress)
    model = RQKMeans(levels, codebook_size, backend=backend, seed=seed, precision=precision).fit(x, progress=progress)
    codes, fmt = encode_catalogue(model, x, dedup)
    return model, codes, fmt
