"""``recif-train tiger``: train TIGER (:mod:`recif_bench.recommenders.tiger`) on user sequences.

Training: leave-one-out train split, one example per prefix of each training sequence (the TIGER
recipe), validation R@10 on the second-to-last items of a fixed user sample.

    recif-train tiger --config configs/train/tiger_beauty.yaml [--set train.epochs=1]
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch

from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic
from recif_bench.recommenders.settings import settings
from recif_bench.recommenders.tiger import TigerConfig, TigerModel
from trainers.common.config import require
from trainers.common.epochs import NEW_STATE, run_epochs, write_summary
from trainers.common.next_item import history_length, recall_at, sid_data, training_data

log = logging.getLogger(__name__)


def fit(tiger: TigerModel, sequences: Sequence[Sequence[Hashable]], output_dir: str | Path,
        progress: bool = True) -> dict[str, Any]:
    """Train; ``best/`` holds the best validation R@10 (``last/`` resumes an interrupted run)."""
    config, out = tiger.config, Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples, valid_hist, valid_target = training_data(sequences, tiger.codes, config, out)
    optimiser = torch.optim.AdamW(tiger.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = dict(NEW_STATE)
    if (out / "last" / "tiger.json").exists():
        resumed = TigerModel.load(out / "last")
        tiger.model.load_state_dict(resumed.model.state_dict())
        doc = json.loads((out / "last" / "tiger.json").read_text(encoding="utf-8"))
        state = doc["progress"]
        optimiser.load_state_dict(load_checkpoint(out / "optimiser.pt", "tiger-optimiser", "optimiser.pt",
                                                  "TIGER optimiser state")[1]["state"])
        log.warning("resuming %s from epoch %d", out, state["epoch"])

    def step(chunk: Sequence[tuple[list, Hashable]]) -> float:
        ids, mask = tiger.encode_history([h for h, _ in chunk])
        loss = tiger.model(input_ids=ids, attention_mask=mask, labels=tiger.labels([t for _, t in chunk])).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    def save(which: str, progress_state: dict[str, Any]) -> None:
        if which == "last":
            save_atomic({"kind": "tiger-optimiser", "state": optimiser.state_dict()}, out / "optimiser.pt")
        tiger.save(out / which, {"progress": progress_state})

    started = time.time()
    state = run_epochs("tiger", tiger.model, examples, config, state, out, step,
                       lambda: recall_at(tiger, valid_hist, valid_target, progress=progress), save, progress,
                       length=history_length)
    return write_summary(out, "tiger", state, started, config, tiger.model, valid_users=len(valid_hist),
                         train_examples=len(examples), n_items=len(tiger.codes), **tiger.meta)


def main(config: dict[str, Any]) -> Path:
    """``recif-train tiger``: data.source ``amazon`` (data.dir, data.category, data.item_ids) or ``recif``."""
    tiger_config = settings(TigerConfig, config.get("model", {}))
    out = Path(require(config, "output_dir"))
    sequences, codes, fmt, meta = sid_data(config)
    summary = fit(TigerModel.new(codes, fmt, tiger_config, meta), sequences, out)
    log.warning("tiger: best valid R@10 %.4f (epoch %d) -> %s", summary["valid_recall@10"], summary["best_epoch"], out)
    return out / "best"

