"""A recipe's ``data:`` section -> the Trainer's dataset and collator, without the corpus in memory.

    data:
      dir: runs/data            # output of `recif-train build-data` (sharded or single parquet files)
      mixture: {sft_video: 1.0, sft_label_pred: 0.3}   # file -> copies of its rows per epoch
      general: []               # general-text mixer entries (trainers.common.mixer)
      max_length: 1024
      packing: true
      seed: 0
      num_proc: 1               # tokenizer processes

Each mixture file is read as a memory-mapped Arrow dataset and tokenised batch by batch (``datasets``
``map``, on ``num_proc`` processes, cached beside the run); what stays in memory is one length and one
position per sample.  The order is the one the in-memory mixture had (the same seeded draws over
positions), so a run sees the same packs as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from trainers.common import collate, mixer, samples
from trainers.common.config import require

log = logging.getLogger(__name__)
GENERAL = "general"          # the mixture entry of the general-text rows (appended after the shuffle)
CACHE_DIR = "data-cache"     # the tokenised Arrow files, inside the run's output folder


def build(data: Mapping[str, Any], tokenizer: Any, cache_dir: str | Path | None = None) -> tuple[Any, Any]:
    seed = int(data.get("seed", 0))
    max_length = int(data.get("max_length", 2048))
    mixture = dict(require(dict(data), "mixture"))
    tables = {name: tokenized(samples.data_files(require(dict(data), "dir"), name), tokenizer,
                              int(data.get("num_proc", 1)), cache_dir) for name in mixture}
    order = samples.mixture_order({name: len(t) for name, t in tables.items()}, mixture, seed)
    general = mixer.general_rows(data.get("general") or [], seed)
    if general:
        import datasets

        tables[GENERAL] = _tokenize(datasets.Dataset.from_list(general), tokenizer, 1, "general")
        order += [(GENERAL, i) for i in range(len(general))]
    view = TokenizedRows(tables, order, max_length)
    if not len(view):
        raise ValueError("no training samples left (empty mixture, or every sample longer than max_length)")
    log.warning("training data: %d samples, %d tokens, %d supervised", len(view), view.tokens, view.supervised)
    if bool(data.get("packing", True)):
        return PackedRows(view, max_length), collate.PackedCollator()
    return view, collate.PaddedCollator(tokenizer.pad_token_id)


def tokenized(files: Sequence[Path], tokenizer: Any, num_proc: int, cache_dir: str | Path | None) -> Any:
    """One mixture file's rows as a memory-mapped Arrow dataset of token ids, labels and lengths."""
    import datasets

    kind = "json" if files[0].suffix in (".json", ".jsonl") else "parquet"
    reader = datasets.Dataset.from_json if kind == "json" else datasets.Dataset.from_parquet
    rows = reader([str(f) for f in files], cache_dir=None if cache_dir is None else str(cache_dir))
    return _tokenize(rows, tokenizer, num_proc, files[0].name)


def _tokenize(rows: Any, tokenizer: Any, num_proc: int, name: str) -> Any:
    return rows.map(_tokenize_batch, batched=True, batch_size=512, num_proc=num_proc if num_proc > 1 else None,
                    fn_kwargs={"tokenizer": tokenizer}, remove_columns=rows.column_names, desc=f"tokenize {name}")


def _tokenize_batch(batch: Mapping[str, list], tokenizer: Any) -> dict[str, list]:
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    out = [samples.tokenize_row(tokenizer, row) for row in rows]
    return {"input_ids": [s.input_ids for s in out], "labels": [s.labels for s in out],
            "source": [s.source for s in out], "length": [len(s) for s in out],
            "supervised": [sum(label != samples.IGNORE for label in s.labels) for s in out]}


class TokenizedRows:
    """The mixture's kept samples in training order, read from the Arrow tables on demand.

    Samples longer than ``max_length`` are dropped and counted (as the reference), never cut, so no
    sample loses its answer; samples without a supervised token are dropped too.
    """

    def __init__(self, tables: Mapping[str, Any], order: Sequence[tuple[str, int]], max_length: int) -> None:
        self.tables = dict(tables)
        names = list(self.tables)
        lengths = {n: np.asarray(self.tables[n]["length"], dtype=np.int64) for n in names}
        supervised = {n: np.asarray(self.tables[n]["supervised"], dtype=np.int64) for n in names}
        entry = np.asarray([names.index(n) for n, _ in order], dtype=np.int16)
        position = np.asarray([i for _, i in order], dtype=np.int64)
        length = np.zeros(len(order), dtype=np.int64)
        labelled = np.zeros(len(order), dtype=np.int64)
        for code, name in enumerate(names):
            rows = entry == code
            length[rows], labelled[rows] = lengths[name][position[rows]], supervised[name][position[rows]]
        too_long = length > max_length
        if too_long.any():
            log.warning("dropped %d samples longer than max_length=%d", int(too_long.sum()), max_length)
        keep = ~too_long & (labelled > 0)
        self.names = names
        self.entry, self.position, self.lengths = entry[keep], position[keep], length[keep]
        self.tokens, self.supervised = int(self.lengths.sum()), int(labelled[keep].sum())

    def __len__(self) -> int:
        return len(self.position)

    def __getitem__(self, index: int) -> samples.Sample:
        row = self.tables[self.names[self.entry[index]]][int(self.position[index])]
        return samples.Sample(list(row["input_ids"]), list(row["labels"]), row["source"])


class PackedRows:
    """Consecutive kept samples grouped greedily into packs of at most ``max_length`` tokens (order kept)."""

    def __init__(self, rows: TokenizedRows, max_length: int) -> None:
        self.rows = rows
        self.bounds = collate.pack_bounds(rows.lengths.tolist(), max_length)

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, index: int) -> list[samples.Sample]:
        start, end = self.bounds[index]
        return [self.rows[i] for i in range(start, end)]
