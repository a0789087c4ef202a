"""``recif-train lazy-decoder``: train OneRec-V2's lazy decoder (:mod:`recif_bench.recommenders.lazy_decoder`).

Training follows TIGER's recipe on the same data (:func:`trainers.common.next_item.sid_data`): one example per
prefix of each training sequence (leave-one-out: the last two items are validation / test),
cross-entropy over the SID levels, validation R@10 on the second-to-last items with early stopping.

    recif-train lazy-decoder --config configs/train/lazy_decoder_mini.yaml [--set model.epochs=2]
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch
from torch import nn

from recif_bench.recommenders.lazy_decoder import KIND, LazyDecoderConfig, LazyDecoderModel, read_checkpoint
from trainers.common.config import require
from trainers.common.epochs import NEW_STATE, run_epochs, write_summary
from trainers.common.next_item import history_length, recall_at, sid_data, training_data

log = logging.getLogger(__name__)


def batch_loss(model: LazyDecoderModel, chunk: Sequence[tuple[Sequence[Hashable], Hashable]]) -> torch.Tensor:
    """Mean cross-entropy over the SID levels of a batch of (history, next item) examples."""
    target = model.targets([t for _, t in chunk])
    logits = model.network(*model.encode_histories([h for h, _ in chunk]), target)
    return nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())


def fit(model: LazyDecoderModel, sequences: Sequence[Sequence[Hashable]], output_dir: str | Path,
        progress: bool = True) -> dict[str, Any]:
    """Train; ``best.pt`` holds the best validation R@10, ``last.pt`` (+ optimiser) resumes an interrupted run."""
    config, out, network = model.config, Path(output_dir), model.network
    out.mkdir(parents=True, exist_ok=True)
    examples, valid_hist, valid_target = training_data(sequences, model.codes, config, out)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = dict(NEW_STATE)
    if (out / "last.pt").exists():
        ckpt = read_checkpoint(out / "last.pt")
        ignore = ("epochs", "patience")
        if ({k: v for k, v in ckpt["config"].items() if k not in ignore} != {k: v for k, v in asdict(config).items()
                                                                              if k not in ignore}
                or ckpt["codes"] != model.codes):
            raise ValueError(f"{out / 'last.pt'}: a checkpoint of a different run (config or items differ); "
                             "use another output_dir")
        network.load_state_dict(ckpt["state"])
        optimiser.load_state_dict(ckpt["optimiser"])
        state = ckpt["progress"]
        log.warning("resuming %s from epoch %d", out, state["epoch"])

    def step(chunk: Sequence[tuple[Sequence[Hashable], Hashable]]) -> float:
        loss = batch_loss(model, chunk)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimiser.step()
        return loss.item()

    def save(which: str, progress_state: dict[str, Any]) -> None:
        extra = {"optimiser": optimiser.state_dict()} if which == "last" else {}
        model.save(out / f"{which}.pt", {"progress": progress_state, **extra})

    started = time.time()
    state = run_epochs("lazy-decoder", network, examples, config, state, out, step,
                       lambda: recall_at(model, valid_hist, valid_target, progress=progress), save, progress,
                       length=history_length)
    return write_summary(out, KIND, state, started, config, network, valid_users=len(valid_hist),
                         train_examples=len(examples), n_items=len(model.codes), **model.meta)


def main(config: dict[str, Any]) -> Path:
    """``recif-train lazy-decoder``: the ``data`` section of TIGER (source amazon or recif), ``model`` settings."""
    model_config = LazyDecoderConfig.from_dict(config.get("model", {}))
    out = Path(require(config, "output_dir"))
    sequences, codes, fmt, meta = sid_data(config)
    summary = fit(LazyDecoderModel.new(codes, fmt, model_config, meta), sequences, out)
    log.warning("lazy decoder: best valid R@10 %.4f (epoch %d) -> %s", summary["valid_recall@10"],
                summary["best_epoch"], out)
    return out / "best.pt"

