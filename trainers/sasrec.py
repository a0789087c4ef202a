"""``recif-train sasrec``: train SASRec (:mod:`recif_bench.recommenders.sasrec`) with the BCE or CE loss.

Training follows the leave-one-out protocol: each user's sequence minus the last two items is the
training sequence (every position predicts the next item), the second-to-last item is the
validation target (early stopping), and the test prediction reads everything before the last item.

    recif-train sasrec --config configs/train/sasrec_beauty_bce.yaml [--set train.epochs=5]
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from recif_bench.recommenders.checkpoint import load_checkpoint
from recif_bench.recommenders.data import recif_sequences
from recif_bench.recommenders.sasrec import (ItemIndex, SASRec, SASRecConfig, pad_left, rank_metrics, repeat_free,
                                             save)
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)


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
        _, ckpt = load_checkpoint(last, "sasrec", "last.pt", "SASRec training state")
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

