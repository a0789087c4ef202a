"""Unified rows -> token ids and labels, the one place that decides which tokens are supervised.

* ``segments`` rows (pretraining): every token is a target, and the text ends with the pad token
  ``<|endoftext|>`` so the model learns where a document stops (as the reference).
* ``messages`` rows (SFT): rendered by :func:`recif_bench.chat.render_conversation`; the targets
  are exactly the assistant tokens of every assistant turn — from the first token after
  ``<|im_start|>assistant\\n`` up to and including its ``<|im_end|>`` — and nothing else.  The
  reference drops the first assistant token (spec training §4.4); we do not.

Labels use the transformers convention: ``labels[t]`` is the target *at* position ``t`` (the model
shifts), ``-100`` = not supervised.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from recif_bench import chat

log = logging.getLogger(__name__)

IGNORE = -100
ASSISTANT_OPEN = "<|im_start|>assistant\n"
TURN_CLOSE = "<|im_end|>"


@dataclass(frozen=True)
class Sample:
    input_ids: list[int]
    labels: list[int]
    source: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    def as_features(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels}


def tokenize_segments(tokenizer: Any, segments: Iterable[Mapping[str, Any]], source: str = "") -> Sample:
    text = "".join(str(s.get("text", "")) for s in segments if s.get("type", "text") == "text")
    ids = tokenizer(text + tokenizer.pad_token, add_special_tokens=False)["input_ids"]
    return Sample(ids, list(ids), source)


def assistant_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of every assistant turn's content plus its closing ``<|im_end|>``."""
    spans, start = [], text.find(ASSISTANT_OPEN)
    while start >= 0:
        begin = start + len(ASSISTANT_OPEN)
        close = text.find(TURN_CLOSE, begin)
        end = len(text) if close < 0 else close + len(TURN_CLOSE)
        spans.append((begin, end))
        start = text.find(ASSISTANT_OPEN, end)
    return spans


def tokenize_chat(tokenizer: Any, messages: Any, source: str = "") -> Sample:
    text = chat.render_conversation(messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = assistant_spans(text)
    labels = [tid if any(b <= start < e for b, e in spans) else IGNORE
              for tid, (start, _end) in zip(encoded["input_ids"], encoded["offset_mapping"])]
    return Sample(list(encoded["input_ids"]), labels, source)


def tokenize_row(tokenizer: Any, row: Mapping[str, Any]) -> Sample:
    """A unified row (``messages`` or ``segments``, JSON strings or lists) -> :class:`Sample`."""
    source = str(row.get("source", ""))
    for key, fn in (("messages", tokenize_chat), ("segments", tokenize_segments)):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and value != value):
            return fn(tokenizer, json.loads(value) if isinstance(value, str) else value, source)
    if isinstance(row.get("text"), str):
        return tokenize_segments(tokenizer, [{"type": "text", "text": row["text"]}], source)
    raise ValueError(f"row {row.get('uuid', '?')} of {source or 'unknown source'} has no messages, segments or text")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a parquet / jsonl file in the unified schema."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: training data file not found (run `recif-train build-data` first?)")
    frame = pd.read_json(path, lines=True) if path.suffix in (".jsonl", ".json") else pd.read_parquet(path)
    return frame.to_dict("records")


def data_files(data_dir: str | Path, name: str) -> list[Path]:
    """The files of a mixture entry: a file name with its suffix, or an output of `recif-train build-data`
    (its shards ``<name>-00000-of-000NN.parquet`` or a single ``<name>.parquet``)."""
    from recif_bench.data.build import output_files

    path = Path(data_dir) / name
    files = [path] if path.suffix else output_files(data_dir, name)
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{path if path.suffix else path.with_suffix('.parquet')}: training data file not "
                                "found (run `recif-train build-data` first?)")
    return files


def mixture_order(sizes: Mapping[str, int], files: Mapping[str, float], seed: int) -> list[tuple[str, int]]:
    """(entry, row) pairs of a mixture: each entry's rows ``weight`` times (a fraction drawn seeded),
    shuffled together.  Only positions are drawn, so the rows themselves never need to be in memory."""
    rng = random.Random(seed)
    order: list[tuple[str, int]] = []
    for name, weight in files.items():
        if weight < 0:
            raise ValueError(f"mixture weight of {name} is negative ({weight})")
        positions = range(sizes[name])
        whole, fraction = divmod(float(weight), 1.0)
        order += [(name, i) for i in positions] * int(whole)
        order += [(name, i) for i in rng.sample(positions, round(fraction * len(positions)))]
    rng.shuffle(order)
    return order


def mix(files: Mapping[str, float], data_dir: str | Path, seed: int) -> list[dict[str, Any]]:
    """Rows of each mixture entry repeated ``weight`` times (fractions drawn seeded), shuffled together:
    the task mixture of a recipe, in memory (the prompt sets of distillation and RL)."""
    rows = {name: [r for f in data_files(data_dir, name) for r in read_rows(f)] for name in files}
    return [rows[name][i] for name, i in mixture_order({n: len(r) for n, r in rows.items()}, files, seed)]


def tokenize_all(tokenizer: Any, rows: Iterable[Mapping[str, Any]], max_length: int) -> list[Sample]:
    """Tokenised rows; samples longer than ``max_length`` are dropped and counted (as the reference),
    never cut, so no sample loses its answer."""
    from tqdm import tqdm

    kept, too_long = [], 0
    for row in tqdm(list(rows), desc="tokenize", mininterval=2):
        sample = tokenize_row(tokenizer, row)
        if len(sample) > max_length:
            too_long += 1
        elif any(label != IGNORE for label in sample.labels):
            kept.append(sample)
    if too_long:
        log.warning("dropped %d samples longer than max_length=%d", too_long, max_length)
    return kept
