"""What the SID next-item recipes (TIGER, the lazy decoder) share: the ``data`` section -> sequences and SIDs,
leave-one-out training examples, and the validation R@10 by beam search."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Container, Hashable, Sequence

from tqdm import tqdm

from recif_bench import sid
from recif_bench.recommenders.base import SidRecommender
from recif_bench.recommenders.data import amazon_codes, recif_sequences
from trainers.common.config import ConfigError, require


def training_examples(sequences: Sequence[Sequence[Hashable]], max_history: int) -> list[tuple[list, Hashable]]:
    """(history, next item) for every prefix of every training sequence (sequence minus its last two items)."""
    out = []
    for seq in sequences:
        train = list(seq[:-2])
        out.extend((train[max(0, t - max_history):t], train[t]) for t in range(1, len(train)))
    return out


def history_length(example: tuple[list, Hashable]) -> int:
    """Batching key of a (history, next item) example: encoders pad to the longest history of a batch."""
    return len(example[0])


def recall_at(model: SidRecommender, histories: list, targets: list, k: int = 10, batch_size: int = 32,
              progress: bool = False) -> float:
    """Share of histories whose target is among the model's top ``k`` items."""
    hits = 0
    for start in tqdm(range(0, len(histories), batch_size), desc="validate", disable=not progress, leave=False):
        ranked = model.generate(histories[start:start + batch_size], k)
        hits += sum(t in r for t, r in zip(targets[start:start + batch_size], ranked))
    return hits / max(len(histories), 1)


def training_data(sequences: Sequence[Sequence[Hashable]], known: Container[Hashable], config: Any,
                  out: Path) -> tuple[list[tuple[list, Hashable]], list[list], list[Hashable]]:
    """Training examples of the sequences' known items (:func:`training_examples`) and the validation histories /
    targets (second-to-last items) of a seeded sample of ``config.valid_users`` users."""
    sequences = [s for s in ([i for i in seq if i in known] for seq in sequences) if len(s) >= 3]
    examples = training_examples(sequences, config.max_history)
    if not examples:
        raise ValueError(f"{out}: no training examples (sequences need at least 4 known items)")
    valid = random.Random(config.seed).sample(sequences, min(config.valid_users, len(sequences)))
    return examples, [s[:-2] for s in valid], [s[-2] for s in valid]


def sid_data(config: dict[str, Any]) -> tuple[list[list[Hashable]], dict[Hashable, tuple[int, ...]], sid.SidFormat, dict]:
    """(user sequences, item -> SID codes, SID format, meta) of a config's ``data`` section: source ``amazon``
    (dir, category, item_ids) or ``recif`` (raw, domain, sid_levels, sid_codebook; the items are their SIDs).
    Shared by the SID recommenders (TIGER, the lazy decoder)."""
    data = require(config, "data")
    source = data.get("source", "amazon")
    if source == "amazon":
        from recif_bench import transfer

        category, root = require(config, "data", "category"), str(require(config, "data", "dir"))
        dataset = transfer.dataset(category, root)
        codes, fmt, path = amazon_codes(category, root, str(data.get("item_ids", "auto")))
        sequences = [dataset.sequences[u] for u in sorted(dataset.sequences)]
        return sequences, codes, fmt, {"data": "amazon", "category": dataset.category,
                                       "fingerprint": dataset.fingerprint, "codes": path}
    if source == "recif":
        from recif_bench.data import mini

        raw = Path(data.get("raw") or mini.default_data_dir() / "raw")
        sequences, items = recif_sequences(raw, data.get("domain", "video"))
        fmt = sid.SidFormat(int(data.get("sid_levels", 3)), int(data.get("sid_codebook", 8192)))
        return sequences, {item: item for item in items}, fmt, {"data": "recif", "domain": data.get("domain", "video"),
                                                                "raw": str(raw)}
    raise ConfigError(f"data.source must be amazon or recif, not {source!r}")

