"""SASRec (Kang & McAuley 2018): a causal self-attention encoder over a user's item sequence.

Two losses, because the published tables disagree exactly along this line (spec amazon_and_baselines §3.1):

* ``bce``: one uniformly sampled negative per position, binary cross-entropy (the original paper,
  pmixer's port, and the SASRec rows quoted by TIGER / LC-Rec / P5; Beauty R@10 ~ 0.06);
* ``ce``: softmax over the whole catalogue (RecBole's default; Beauty R@10 ~ 0.08).

Items are dense indexes ``1..N`` (0 pads); the checkpoint stores the original item keys (Amazon item
ids, or SID tuples on mini-RecIF) so a recommender can map back.  This module holds the network, its
inference and its checkpoint format; ``trainers/sasrec.py`` trains it (``recif-train sasrec``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch
from torch import nn

from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic
from recif_bench.recommenders.settings import ConfigError, settings

LOSSES = ("bce", "ce")

@dataclass
class SASRecConfig:
    """Model and optimiser settings; defaults are the SASRec paper's Amazon setup (pmixer port)."""

    loss: str = "bce"
    max_len: int = 50
    hidden: int = 50
    heads: int = 1
    blocks: int = 2
    ffn: int = 0                 # 0: same as hidden (the paper's point-wise FFN); RecBole uses 256
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 200
    eval_every: int = 5          # epochs between validation passes
    patience: int = 5            # validation passes without a better R@10 before stopping
    seed: int = 42

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SASRecConfig":
        config = settings(cls, values)
        if config.loss not in LOSSES:
            raise ConfigError(f"model.loss must be one of {', '.join(LOSSES)}, not {config.loss!r}")
        if config.hidden % config.heads:
            raise ConfigError(f"model.hidden ({config.hidden}) must be divisible by model.heads ({config.heads})")
        return config


class SASRec(nn.Module):
    """Item + learned position embeddings, pre-norm causal transformer blocks, shared output embeddings."""

    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(config.hidden, config.heads, config.ffn or config.hidden, config.dropout,
                                           activation="relu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden)
        causal = torch.triu(torch.ones(config.max_len, config.max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)
        for emb in (self.item_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(batch, length <= max_len) left-padded item indexes -> (batch, length, hidden) states (pads zeroed).

        Positions count back from the last item and pads are masked out of attention, so a batch
        padded to its own longest sequence gives the same states as one padded to ``max_len``.
        """
        length = seqs.shape[1]
        keep = seqs > 0
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden)
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=seqs.device)
        x = self.dropout(x + self.pos_emb(positions)) * keep.unsqueeze(-1)
        mask = self.causal[:length, :length] | ~keep[:, None, :]
        mask = mask & ~torch.eye(length, dtype=torch.bool, device=seqs.device)   # a pad attends to itself
        x = self.encoder(x, mask=mask.repeat_interleave(self.config.heads, 0))
        return self.norm(x) * keep.unsqueeze(-1)

    def scores(self, seqs: torch.Tensor) -> torch.Tensor:
        """Scores of every item (index 0, the pad, is -inf) after each sequence's last position."""
        logits = self.forward(seqs)[:, -1] @ self.item_emb.weight.T
        logits[:, 0] = float("-inf")
        return logits


class ItemIndex:
    """Original item keys <-> dense indexes 1..N."""

    def __init__(self, items: Sequence[Hashable]) -> None:
        self.items = list(items)
        self.index = {item: i for i, item in enumerate(self.items, 1)}

    def encode(self, seq: Sequence[Hashable]) -> list[int]:
        """Known items only (an unknown item in a prompt carries no signal for an ID model)."""
        return [self.index[i] for i in seq if i in self.index]

    def to_json(self) -> list:
        return [list(i) if isinstance(i, tuple) else i for i in self.items]

    @classmethod
    def from_json(cls, items: list) -> "ItemIndex":
        return cls([tuple(i) if isinstance(i, list) else i for i in items])


def pad_left(seqs: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """Left-padded to the longest sequence (at most ``max_len``, keeping the latest items)."""
    max_len = max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = torch.zeros(len(seqs), max_len, dtype=torch.long)
    for row, seq in enumerate(seqs):
        seq = list(seq)[-max_len:]
        if seq:
            out[row, max_len - len(seq):] = torch.tensor(seq)
    return out


def repeat_free(sequences: Sequence[Sequence[int]]) -> bool:
    """Whether no sequence holds an item twice (Amazon 5-core): then a seen item is never the answer."""
    return all(len(set(s)) == len(s) for s in sequences)


def mask_history(scores: torch.Tensor, histories: Sequence[Sequence[int]]) -> torch.Tensor:
    """Seen items set to -inf: the full-ranking protocol of RecBole and the SASRec line on data without repeats."""
    rows = [i for i, h in enumerate(histories) for _ in h]
    cols = [item for h in histories for item in h]
    scores[rows, cols] = float("-inf")
    return scores


@torch.no_grad()
def rank_metrics(model: SASRec, histories: list[list[int]], targets: list[int], ks: Sequence[int] = (5, 10, 20),
                 batch_size: int = 512, exclude_history: bool = False) -> dict[str, float]:
    """Full-catalogue Recall@K / NDCG@K (one target per user; ties broken against the target)."""
    model.eval()
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    for start in range(0, len(histories), batch_size):
        seqs = pad_left(histories[start:start + batch_size], model.config.max_len)
        scores = model.scores(seqs)
        if exclude_history:
            scores = mask_history(scores, histories[start:start + batch_size])
        target = torch.tensor(targets[start:start + batch_size])
        target_score = scores.gather(1, target[:, None])
        rank = (scores >= target_score).sum(1) - 1          # items scored at least as high, minus itself
        for k in ks:
            hit = rank < k
            sums[f"recall@{k}"] += hit.sum().item()
            sums[f"ndcg@{k}"] += (hit / torch.log2(rank.float() + 2)).sum().item()
    model.train()
    return {name: value / max(len(histories), 1) for name, value in sums.items()}


@torch.no_grad()
def recommend(model: SASRec, history: list[int], k: int, exclude_history: bool = False) -> list[int]:
    """Top-k item indexes after a history (indexes 1..N), seen items left out with ``exclude_history``."""
    model.eval()
    scores = model.scores(pad_left([history], model.config.max_len))
    if exclude_history:
        scores = mask_history(scores, [history])
    k = min(k, model.n_items - (len(set(history)) if exclude_history else 0))
    return scores[0].topk(k).indices.tolist()


def save(path: Path, model: SASRec, items: ItemIndex, extra: dict[str, Any]) -> Path:
    """Atomic checkpoint: config, weights, item keys, and whatever the run wants to remember."""
    return save_atomic({"kind": "sasrec", "config": asdict(model.config), "n_items": model.n_items,
                        "items": items.to_json(), "state": model.state_dict(), **extra}, path)


def load(path: str | Path) -> tuple[SASRec, ItemIndex, dict[str, Any]]:
    """(model in eval mode, item index, the whole checkpoint dict); errors name the file."""
    _, ckpt = load_checkpoint(path, "sasrec", "best.pt", "SASRec checkpoint")
    model = SASRec(ckpt["n_items"], SASRecConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state"])
    model.eval()
    return model, ItemIndex.from_json(ckpt["items"]), ckpt



class SASRecModel:
    """A SASRec checkpoint as a ``recif-rec`` item model: item keys in, top-k item keys and sigmoid scores out."""

    def __init__(self, path: str | Path) -> None:
        self.model, self.index, ckpt = load(path)
        self.meta = ckpt.get("meta", {})
        self.max_history = self.model.config.max_len
        self.exclude_history = bool(ckpt.get("exclude_history", False))   # trained on repeat-free sequences

    def top_items(self, history: list[Hashable], k: int) -> list[Hashable]:
        ranked = recommend(self.model, self.index.encode(history), k, exclude_history=self.exclude_history)
        return [self.index.items[i - 1] for i in ranked]

    @torch.no_grad()
    def item_score(self, history: list[Hashable], item: Hashable) -> float:
        if item not in self.index.index:
            return 0.0
        logits = self.model.scores(pad_left([self.index.encode(history)], self.model.config.max_len))
        return float(torch.sigmoid(logits[0, self.index.index[item]]))
