"""The epoch loop of the small next-item recipes (TIGER, the lazy decoder): shuffled mini-batches with a
progress bar, validation R@10 every ``eval_every`` epochs, best / last checkpoints, early stopping after
``patience`` validations without progress, one ``log.jsonl`` line per epoch and a ``summary.json``.

The recipe supplies what differs: the training step, the validation, and how it saves a checkpoint.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn
from tqdm import tqdm

NEW_STATE = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad": 0}
BUCKET_POOL = 50        # batches whose examples are sorted together when batching by length


def epoch_batches(examples: list, batch_size: int, rng: random.Random,
                  length: Callable[[Any], int] | None = None) -> list[list]:
    """One epoch's mini-batches: ``examples`` shuffled in place by ``rng`` and cut into batches.

    With ``length``, each pool of ``BUCKET_POOL`` batches is sorted by it before cutting and the batch order
    shuffled again, so a padded model pays for the longest input of similar examples, not of a random batch
    (on Amazon Beauty the mean TIGER history is 6.7 items, the widest in a random batch of 256 is 20).
    """
    rng.shuffle(examples)
    if length is None:
        return [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    batches = []
    for start in range(0, len(examples), batch_size * BUCKET_POOL):
        pool = sorted(examples[start:start + batch_size * BUCKET_POOL], key=length)
        batches.extend(pool[i:i + batch_size] for i in range(0, len(pool), batch_size))
    rng.shuffle(batches)
    return batches


def run_epochs(name: str, module: nn.Module, examples: list, config: Any, state: dict[str, Any], out: Path,
               step: Callable[[Sequence], float], validate: Callable[[], float],
               save: Callable[[str, dict[str, Any]], None], progress: bool = True,
               metric: str = "valid_recall@10", length: Callable[[Any], int] | None = None) -> dict[str, Any]:
    """Train from ``state["epoch"]`` to ``config.epochs``; returns the final state.

    ``step(batch)`` does one optimiser step and returns the loss; ``validate()`` returns the validation
    figure to maximise (R@10 unless ``metric`` names another in the log);
    ``length(example)``, when given, batches examples of similar length together (:func:`epoch_batches`);
    ``save(which, state)`` writes the ``"best"`` or ``"last"`` checkpoint with that progress state.
    ``config`` needs epochs, batch_size, eval_every, patience and seed (the shuffle of epoch e is seeded
    by ``seed + e``, so a resumed run sees the same batches).
    """
    with (out / "log.jsonl").open("a", encoding="utf-8") as log_file:
        for epoch in range(state["epoch"], config.epochs):
            if state["bad"] >= config.patience:
                break
            module.train()
            batches = epoch_batches(examples, config.batch_size, random.Random(config.seed + epoch), length)
            total, n = 0.0, 0
            bar = tqdm(batches, desc=f"{name} epoch {epoch + 1}/{config.epochs}", disable=not progress)
            for batch in bar:
                total, n = total + step(batch), n + 1
                bar.set_postfix(loss=f"{total / n:.4f}")
            state["epoch"] = epoch + 1
            record = {"epoch": epoch + 1, "loss": total / n}
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                record[metric] = validate()
                if record[metric] > state["best"]:
                    state.update(best=record[metric], best_epoch=epoch + 1, bad=0)
                    save("best", dict(state))
                else:
                    state["bad"] += 1
                save("last", dict(state))
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
    return state


def write_summary(out: Path, name: str, state: dict[str, Any], started: float, config: Any, module: nn.Module,
                  **fields: Any) -> dict[str, Any]:
    """``summary.json``: epochs, the best validation R@10 and its epoch, size, time, settings, plus ``fields``."""
    summary = {"model": name, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
               "valid_recall@10": state["best"], **fields,
               "parameters": sum(p.numel() for p in module.parameters()),
               "train_seconds": round(time.time() - started, 1), "config": asdict(config)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
