"""Batches: padded, or packed without cross-sample attention.

Packing is padding-free: samples are grouped greedily into packs of at most ``max_length``
tokens and each pack becomes one row of concatenated tokens whose position ids restart at 0 for
every sample.  transformers turns restarting position ids into a block-diagonal causal mask only
when the forward builds no KV cache, so the packed batch itself carries ``use_cache=False`` (the
model's config does not matter), and the first label of every sample is -100, so no token attends
to or predicts across a sample boundary.  No pad token is ever added.
"""

from __future__ import annotations

from typing import Any, Sequence

from trainers.common.samples import IGNORE, Sample


def pack_bounds(lengths: Sequence[int], max_length: int) -> list[tuple[int, int]]:
    """[start, end) of packs of consecutive samples with at most ``max_length`` tokens (order kept)."""
    bounds: list[tuple[int, int]] = []
    start = used = 0
    for index, length in enumerate(lengths):
        if length > max_length:
            raise ValueError(f"sample of {length} tokens does not fit max_length={max_length}")
        if used and used + length > max_length:
            bounds.append((start, index))
            start, used = index, 0
        used += length
    if used:
        bounds.append((start, len(lengths)))
    return bounds


def pack(samples: Sequence[Sample], max_length: int) -> list[list[Sample]]:
    """Consecutive samples grouped into packs of at most ``max_length`` tokens (order kept)."""
    return [list(samples[a:b]) for a, b in pack_bounds([len(s) for s in samples], max_length)]


class PackedCollator:
    """A batch of packs -> one row of flattened samples with restarting position ids."""

    def __init__(self) -> None:
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)

    def __call__(self, packs: Sequence[Sequence[Sample]]) -> dict[str, Any]:
        # with a cache, transformers ignores the restarting position ids and samples attend to each other
        return {**self.flatten([s.as_features() for p in packs for s in p]), "use_cache": False}


class PaddedCollator:
    """A batch of samples padded to its longest sample (right padding, labels -100, attention mask)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        width = max(len(s) for s in samples)
        ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(samples), width), dtype=torch.long)
        for i, s in enumerate(samples):
            ids[i, :len(s)] = torch.tensor(s.input_ids)
            labels[i, :len(s)] = torch.tensor(s.labels)
            mask[i, :len(s)] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """(ids, attention mask) of token rows padded on the left, the layout generation continues from."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(list(r))
            mask[i, width - len(r):] = 1
    return ids, mask


def batches(samples: Sequence[Sample], packing: bool, max_length: int, pad_id: int) -> tuple[list, Any]:
    """The Trainer's dataset (packs or samples) and the matching collator."""
    if packing:
        return pack(samples, max_length), PackedCollator()
    return list(samples), PaddedCollator(pad_id)
