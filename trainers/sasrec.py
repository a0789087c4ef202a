"""SASRec (Kang & McAuley 2018): a causal self-attention encoder over a user's item sequence.

Two losses, because the published tables disagree exactly along this line (spec amazon_and_baselines §3.1):

* ``bce``: one uniformly sampled negative per position, binary cross-entropy (the original paper,
  pmixer's port, and the SASRec rows quoted by TIGER / LC-Rec / P5; Beauty R@10 ~ 0.06);
* ``ce``: softmax over the whole catalogue (RecBole's default; Beauty R@10 ~ 0.08).

Training follows the leave-one-out protocol: each user's sequence minus the last two items is the
training sequence (every position predicts the next item), the second-to-last item is the
validation target (early stopping), and the test prediction reads everything before the last item.
Items are dense indexes ``1..N`` (0 pads); the checkpoint stores the original item keys (Amazon item
ids, or SID tuples on mini-RecIF) so a recommender can map back.

    recif-train sasrec --config configs/train/sasrec_beauty_bce.yaml [--set train.epochs=5]
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from trainers.common.checkpoint import load_checkpoint, save_atomic
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)

LOSSES = ("bce", "ce")


def settings(cls, values: dict[str, Any]):
    """A settings dataclass from a config's ``model`` section; an unknown key is a :class:`ConfigError`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown model setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


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


def training_batches(train: list[list[int]], config: SASRecConfig, n_items: int,
                     rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(inputs, next-item targets, sampled negatives) batches in shuffled order; one row per user with >= 2 items.

    Rows are shuffled, then grouped by length so a batch pads only to its own longest row (Amazon
    sequences average ~9 items against a max length of 50: most of a fully padded batch is padding).
    """
    rows = [s[-config.max_len - 1:] for s in train if len(s) >= 2]
    rng.shuffle(rows)
    rows.sort(key=len)
    batches = []
    for start in range(0, len(rows), config.batch_size):
        chunk = rows[start:start + config.batch_size]
        inputs = pad_left([s[:-1] for s in chunk], config.max_len)
        targets = pad_left([s[1:] for s in chunk], config.max_len)
        negatives = sample_negatives(torch.cat([inputs, targets[:, -1:]], 1), targets > 0, n_items, rng)
        batches.append((inputs, targets, negatives))
    rng.shuffle(batches)
    return batches


def sample_negatives(seqs: torch.Tensor, real: torch.Tensor, n_items: int, rng: random.Random,
                     tries: int = 10) -> torch.Tensor:
    """One uniform negative per real position, redrawn (up to ``tries`` times) while it is in the user's sequence."""
    generator = torch.Generator().manual_seed(rng.randrange(2**62))
    negatives = torch.randint(1, n_items + 1, real.shape, generator=generator)
    for _ in range(tries):
        clash = (negatives[:, :, None] == seqs[:, None, :]).any(-1) & real
        if not clash.any():
            break
        negatives[clash] = torch.randint(1, n_items + 1, (int(clash.sum()),), generator=generator)
    return negatives * real


def batch_loss(model: SASRec, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean loss over the real (non-pad) positions of a batch."""
    states = model(inputs)
    real = targets > 0
    if model.config.loss == "ce":
        logits = states[real] @ model.item_emb.weight.T
        logits[:, 0] = float("-inf")
        return nn.functional.cross_entropy(logits, targets[real])
    pos = (states * model.item_emb(targets)).sum(-1)[real]
    neg = (states * model.item_emb(negatives)).sum(-1)[real]
    bce = nn.functional.binary_cross_entropy_with_logits
    return bce(pos, torch.ones_like(pos)) + bce(neg, torch.zeros_like(neg))


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


def fit(sequences: Sequence[Sequence[Hashable]], items: Sequence[Hashable], config: SASRecConfig,
        output_dir: str | Path, progress: bool = True, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on every sequence minus its last two items, early-stop on the second-to-last.

    Writes ``last.pt`` after each validation pass (resumed from when present) and ``best.pt`` for the
    best validation R@10, plus ``log.jsonl``; returns the summary also written to ``summary.json``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = ItemIndex(items)
    encoded = [index.encode(s) for s in sequences]
    encoded = [s for s in encoded if len(s) >= 3]
    if not encoded:
        raise ValueError(f"{out}: no sequence has 3 known items (train + validation + test)")
    train = [s[:-2] for s in encoded]
    valid_hist, valid_target = [s[:-2] for s in encoded], [s[-2] for s in encoded]
    exclude = repeat_free(encoded)   # recorded in the checkpoint: evaluation then masks seen items too
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = SASRec(len(index.items), config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad": 0}
    last = out / "last.pt"
    if last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        same = {k: v for k, v in ckpt["config"].items() if k != "epochs"} == {k: v for k, v in asdict(config).items() if k != "epochs"}
        if not same or ckpt["items"] != index.to_json():
            raise ValueError(f"{last}: a checkpoint of a different run (config or items differ); use another output_dir")
        model.load_state_dict(ckpt["state"])
        optimiser.load_state_dict(ckpt["optimiser"])
        state = ckpt["progress"]
        rng.setstate(ckpt["rng"])
        log.warning("resuming %s from epoch %d", out, state["epoch"])
    started = time.time()
    with (out / "log.jsonl").open("a", encoding="utf-8") as log_file:
        bar = tqdm(range(state["epoch"], config.epochs), desc=f"sasrec-{config.loss}", disable=not progress,
                   initial=state["epoch"], total=config.epochs)
        model.train()
        for epoch in bar:
            total, n = 0.0, 0
            for inputs, targets, negatives in training_batches(train, config, len(index.items), rng):
                loss = batch_loss(model, inputs, targets, negatives)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total, n = total + loss.item(), n + 1
            state["epoch"] = epoch + 1
            record = {"epoch": epoch + 1, "loss": total / n}
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                record.update({f"valid_{k}": v for k, v in rank_metrics(
                    model, valid_hist, valid_target, exclude_history=exclude).items()})
                if record["valid_recall@10"] > state["best"]:
                    state.update(best=record["valid_recall@10"], best_epoch=epoch + 1, bad=0)
                    save(out / "best.pt", model, index, {"meta": meta or {}, "progress": dict(state),
                                                          "exclude_history": exclude})
                else:
                    state["bad"] += 1
                save(last, model, index, {"optimiser": optimiser.state_dict(), "progress": dict(state),
                                          "rng": rng.getstate(), "meta": meta or {}, "exclude_history": exclude})
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{record['loss']:.4f}", best_r10=f"{state['best']:.4f}")
            if state["bad"] >= config.patience:
                log.warning("early stop at epoch %d (best valid R@10 %.4f at epoch %d)", epoch + 1,
                            state["best"], state["best_epoch"])
                break
    summary = {"model": "sasrec", "loss": config.loss, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
               "valid_recall@10": state["best"], "exclude_history": exclude, "n_items": len(index.items), "n_users": len(encoded),
               "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(time.time() - started, 1),
               "config": asdict(config), **(meta or {})}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def recif_sequences(raw_dir: Path, domain: str) -> tuple[list[list[tuple[int, ...]]], list[tuple[int, ...]]]:
    """mini-RecIF: each train user's history + target of one domain, as SID tuples (the items of the tasks)."""
    import pandas as pd

    from recif_bench.models.rec import DOMAIN_COLUMNS, _as_list

    if domain not in DOMAIN_COLUMNS:
        raise ConfigError(f"data.domain must be one of {', '.join(DOMAIN_COLUMNS)}, not {domain!r}")
    (hist_col, target_col), mapping_file = DOMAIN_COLUMNS[domain]
    users = pd.read_parquet(raw_dir / "onerec_bench_release.parquet")
    pid2sid = pd.read_parquet(raw_dir / mapping_file)
    to_sid = {int(p): tuple(int(c) for c in s) for p, s in zip(pid2sid["pid"], pid2sid["sid"])}
    train = users[users["split"] == 0]
    sequences = []
    for hist, target in zip(train[hist_col], train[target_col]):
        pids = _as_list(hist) + _as_list(target)
        sequences.append([to_sid[int(p)] for p in pids if int(p) in to_sid])
    return sequences, sorted({s for seq in sequences for s in seq})


def main(config: dict[str, Any]) -> Path:
    """``recif-train sasrec``: data.source ``amazon`` (data.dir, data.category) or ``recif`` (data.raw, data.domain)."""
    data = require(config, "data")
    model_config = SASRecConfig.from_dict(config.get("model", {}))
    out = Path(require(config, "output_dir"))
    source = data.get("source", "amazon")
    if source == "amazon":
        from recif_bench.data.amazon import load_amazon

        dataset = load_amazon(require(config, "data", "category"), require(config, "data", "dir"))
        sequences, items = [dataset.sequences[u] for u in sorted(dataset.sequences)], dataset.items
        meta = {"data": "amazon", "category": dataset.category, "fingerprint": dataset.fingerprint}
    elif source == "recif":
        from recif_bench.data import mini

        raw = Path(data.get("raw") or mini.default_data_dir() / "raw")
        sequences, items = recif_sequences(raw, data.get("domain", "video"))
        meta = {"data": "recif", "domain": data.get("domain", "video"), "raw": str(raw)}
    else:
        raise ConfigError(f"data.source must be amazon or recif, not {source!r}")
    summary = fit(sequences, items, model_config, out, meta=meta)
    log.warning("sasrec: best valid R@10 %.4f (epoch %d) -> %s", summary["valid_recall@10"], summary["best_epoch"], out)
    return out / "best.pt"
