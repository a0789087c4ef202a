"""``recif-train pscore``: train the P-Score reward model (:mod:`recif_bench.recommenders.pscore`).

* Loss: Σ_towers w_t · BCE(tower t, flag t) + w_fused · BCE(fused, composite label), ``loss.weights``
  in the config.  The fused score is supervised by a composite label, "engaged positively": any of
  ``model.positive`` (default long-view, like, follow, forward) and none of ``model.negative``
  (default not-interested); the towers stay supervised by their own flags.

Training reads the raw tables (the user table and the video pid -> SID table, ``data.training.RAW_FILES``) of
mini-RecIF or the official release, train users (split 0) only: one sample per target video, and
with ``train.history_samples`` (default) one per stored history video too, that video hidden from
its own user encoder.  A seeded share of the train users is held out (target videos only) to pick
the best epoch by mean AUC; the test users (split 1) give the AUC and user-weighted AUC of every
tower (and of the fused score against the composite label), printed and written to ``metrics.json``
next to ``model.pt``.  ``last.pt`` after every epoch makes a killed run resumable.

    recif-train pscore --config configs/train/pscore_mini.yaml
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from recif_bench.data.builders import _list
from recif_bench.data.training import RAW_FILES
from recif_bench.metrics.classification import auc, wuauc
from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic
from recif_bench.recommenders.pscore import (FUSED, PAD, UNKNOWN, Catalogue, Histories, PScoreConfig,
                                             PScoreModel, PScoreNet, fused_label)
from recif_bench.recommenders.settings import settings
from trainers.common.config import ConfigError, require
from trainers.common.epochs import NEW_STATE, run_epochs

log = logging.getLogger(__name__)

USERS_FILE, SID_FILE = RAW_FILES["users"], RAW_FILES["video"]


@dataclass
class TrainConfig:
    """Optimiser and schedule; a resumed run may change ``epochs`` only."""

    epochs: int = 8
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-4
    valid_fraction: float = 0.1  # share of the train users held out to pick the best epoch
    history_samples: bool = True # also learn from the train users' history videos and their flags
    eval_every: int = 1          # epochs between validations (and checkpoints)
    patience: int = 2            # validations without a better mean validation AUC before stopping
    seed: int = 0
    threads: int = 1             # torch CPU threads while training; a model this small is fastest on one

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        config = settings(cls, values, "train")
        if min(config.epochs, config.batch_size, config.eval_every, config.patience, config.threads) < 1:
            raise ConfigError("train.epochs, batch_size, eval_every, patience and threads must be >= 1")
        if not 0 <= config.valid_fraction < 1:
            raise ConfigError(f"train.valid_fraction must be in [0, 1), not {config.valid_fraction}")
        return config


def loss_weights(values: Mapping[str, Any] | None, towers: Sequence[str]) -> dict[str, float]:
    """``loss.weights``: one weight per tower and ``fused``; unnamed ones are 1.0, unknown names an error."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(towers) - {FUSED})
    if unknown:
        raise ConfigError(f"loss.weights names {', '.join(unknown)}; known: {', '.join([*towers, FUSED])}")
    weights = {name: float(values.get(name, 1.0)) for name in [*towers, FUSED]}
    if any(w < 0 for w in weights.values()) or not any(weights.values()):
        raise ConfigError(f"loss.weights must be >= 0 and not all 0, got {weights}")
    return weights



# ----------------------------------------------------------------------------------------------- data

@dataclass
class Samples:
    """(user, video, flags) samples; ``exclude`` is the video's own position in a history sample (else -1)."""

    users: torch.Tensor     # (M,) index into Histories
    items: torch.Tensor     # (M,) catalogue rows
    labels: torch.Tensor    # (M, F) float 0/1
    exclude: torch.Tensor   # (M,) history position hidden from the user encoder, -1 for a target video

    def __len__(self) -> int:
        return len(self.users)

    def take(self, index: torch.Tensor | slice) -> "Samples":
        return Samples(self.users[index], self.items[index], self.labels[index], self.exclude[index])


@dataclass
class RecifData:
    catalogue: Catalogue
    histories: Histories
    train: Samples
    valid: Samples
    test: Samples
    fingerprint: str


def _read(path: Path, columns: Sequence[str]):
    """A parquet table with the given columns, or one error line naming the file and the missing column."""
    import pandas as pd
    import pyarrow
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(f"{path}: raw RecIF table not found")
    try:
        schema = pq.read_schema(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (needed by the P-Score model)")
    return pd.read_parquet(path, columns=list(columns))


def load_recif(raw_dir: str | Path, config: PScoreConfig, train: TrainConfig) -> RecifData:
    """The raw user table as samples and histories; pids and SIDs from ``video_ad_pid2sid`` when ``use_sid``.

    Samples are the target videos of every user (split 0: train / held-out validation, split 1:
    test); with ``train.history_samples`` the training users' stored history videos are samples too,
    each with itself hidden from the user encoder.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: raw RecIF folder not found (expected {USERS_FILE} and {SID_FILE})")
    towers = config.towers
    read_hist_flags = config.history_flags or train.history_samples
    columns = ["uid", "split", "hist_video_pid", "target_video_pid", *(f"target_video_{t}" for t in towers)]
    columns += [f"hist_video_{t}" for t in towers] if read_hist_flags else []
    users = _read(raw_dir / USERS_FILE, columns)
    sid_table = _read(raw_dir / SID_FILE, ["pid", "sid"]) if config.use_sid else None

    hists = [[int(p) for p in _list(h)] for h in users["hist_video_pid"]]
    targets = [[int(p) for p in _list(t)] for t in users["target_video_pid"]]
    hist_flags = {t: users[f"hist_video_{t}"].tolist() for t in towers} if read_hist_flags else {}
    target_flags = {t: users[f"target_video_{t}"].tolist() for t in towers}
    splits = users["split"].astype(int).to_numpy()
    catalogue = _catalogue(hists, targets, splits, sid_table, config)
    train_users = [u for u in range(len(users)) if splits[u] == 0 and targets[u]]
    held_out = set(random.Random(train.seed).sample(train_users, int(len(train_users) * train.valid_fraction)))

    n_users, skipped = len(users), {"history_flags": 0, "target_flags": 0}
    rows = np.zeros((n_users, config.max_history), np.int64)
    flags = np.zeros((n_users, config.max_history, len(towers)), np.uint8)
    groups: dict[str, list[tuple[np.ndarray, ...]]] = {"train": [], "valid": [], "test": []}
    for u, (hist, target) in enumerate(zip(hists, targets)):
        recent = hist[-config.max_history:]
        rows[u, :len(recent)] = catalogue.rows(recent)
        group = "test" if splits[u] else "valid" if u in held_out else "train"
        if hist_flags and recent:
            labels = _aligned([hist_flags[t][u] for t in towers], len(hist))
            skipped["history_flags"] += labels is None
            if labels is not None:
                labels = labels[-len(recent):]
                if config.history_flags:
                    flags[u, :len(recent)] = labels
                if train.history_samples and group == "train":
                    groups[group].append((np.full(len(recent), u), rows[u, :len(recent)], labels,
                                          np.arange(len(recent))))
        labels = _aligned([target_flags[t][u] for t in towers], len(target))
        skipped["target_flags"] += labels is None and bool(target)
        if labels is not None and target:
            groups[group].append((np.full(len(target), u), catalogue.rows(target), labels, np.full(len(target), -1)))
    if any(skipped.values()):
        log.warning("%s: users whose flag lists do not match their pid lists (history flags zeroed / targets "
                    "skipped): %s", raw_dir / USERS_FILE, skipped)
    samples = {name: _samples(group, len(towers)) for name, group in groups.items()}
    if not len(samples["train"]) or not len(samples["test"]):
        raise ValueError(f"{raw_dir / USERS_FILE}: needs flagged videos of train users (split 0) and target videos "
                         f"of test users (split 1); found {len(samples['train'])} and {len(samples['test'])}")
    fingerprint = f"{(raw_dir / USERS_FILE).stat().st_size}:{len(users)}:{sum(len(t) for t in targets)}"
    return RecifData(catalogue, Histories(users["uid"].astype(np.int64).to_numpy(), rows, flags),
                     samples["train"], samples["valid"], samples["test"], fingerprint)


def _aligned(per_flag: list[Any], length: int) -> np.ndarray | None:
    """(length, F) 0/1 flags from one list per flag, or None when any list is absent or misaligned."""
    lists = [_list(value) for value in per_flag]
    if any(len(values) != length for values in lists):
        return None
    return np.array(lists, dtype=np.uint8).reshape(len(lists), length).T


def _samples(parts: list[tuple[np.ndarray, ...]], n_flags: int) -> Samples:
    """One :class:`Samples` from per-user (users, rows, labels, exclude) arrays."""
    if not parts:
        empty = torch.zeros(0, dtype=torch.long)
        return Samples(empty, empty, torch.zeros(0, n_flags), empty)
    users, rows, labels, exclude = (np.concatenate(column) for column in zip(*parts))
    return Samples(torch.from_numpy(users).long(), torch.from_numpy(rows).long(),
                   torch.from_numpy(labels).float(), torch.from_numpy(exclude).long())


def _catalogue(hists: list[list[int]], targets: list[list[int]], splits: np.ndarray, sid_table,
               config: PScoreConfig) -> Catalogue:
    """Every pid of the user table and the SID table; own pid embeddings for items frequent in train users."""
    counts: dict[int, int] = {}
    for hist, target, split in zip(hists, targets, splits):
        if split == 0:
            for pid in hist + target:
                counts[pid] = counts.get(pid, 0) + 1
    sids: dict[int, list[int]] = {}
    if sid_table is not None:
        sids = {int(p): [int(c) for c in _list(s)] for p, s in zip(sid_table["pid"], sid_table["sid"])}
    pids = np.array(sorted(set(sids) | {p for seq in hists + targets for p in seq}), dtype=np.int64)
    frequent = sorted(p for p, n in counts.items() if n >= config.min_item_count) if config.use_pid else []
    own = {p: i for i, p in enumerate(frequent, UNKNOWN + 1)}
    pid_index = np.array([own.get(int(p), UNKNOWN) for p in pids], dtype=np.int64)
    levels = max((len(c) for c in sids.values()), default=0)
    codes = np.zeros((len(pids), levels), np.int64)
    for row, pid in enumerate(pids):
        code = sids.get(int(pid), [])
        codes[row, :len(code)] = np.asarray(code, dtype=np.int64) + 1
    return Catalogue(pids, pid_index, codes)



# ------------------------------------------------------------------------------------------- training

def pscore_loss(tower_logits: torch.Tensor, fused_logit: torch.Tensor, labels: torch.Tensor,
                config: PScoreConfig, weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ_t w_t · BCE(tower t, flag t) + w_fused · BCE(fused, composite label), and each BCE (batch means)."""
    bce = nn.functional.binary_cross_entropy_with_logits
    parts = {t: bce(tower_logits[:, i], labels[:, i]) for i, t in enumerate(config.towers)}
    parts[FUSED] = bce(fused_logit, fused_label(labels, config))
    total = sum(weights[name] * value for name, value in parts.items())
    return total, {name: value.item() for name, value in parts.items()}


def _batch(net: PScoreNet, histories: Histories, samples: Samples) -> tuple[torch.Tensor, torch.Tensor]:
    """The network on a batch; a history sample's own position is blanked out of its user's history."""
    users = samples.users.numpy()
    rows, flags = torch.from_numpy(histories.rows[users]), torch.from_numpy(histories.flags[users])
    own = (samples.exclude >= 0).nonzero().squeeze(1)
    rows[own, samples.exclude[own]] = PAD
    flags[own, samples.exclude[own]] = 0
    return net(rows, flags, samples.items)


@torch.no_grad()
def evaluate(net: PScoreNet, histories: Histories, samples: Samples, batch_size: int = 4096) -> dict[str, Any]:
    """AUC and user-weighted AUC of each tower against its flag, and of the fused score against the composite label."""
    if not len(samples):
        return {}
    was_training = net.training
    net.eval()
    towers, fused = zip(*(_batch(net, histories, samples.take(slice(s, s + batch_size)))
                          for s in range(0, len(samples), batch_size)))
    net.train(was_training)
    towers, fused = torch.cat(towers).numpy(), torch.cat(fused).numpy()
    uids = histories.uids[samples.users.numpy()]
    labels = samples.labels.numpy()
    columns = {t: (towers[:, i], labels[:, i]) for i, t in enumerate(net.config.towers)}
    columns[FUSED] = (fused, fused_label(samples.labels, net.config).numpy())
    return {name: {"auc": auc(score, label), "wuauc": wuauc(score, label, uids),
                   "positive_rate": float(label.mean()), "n": len(label)}
            for name, (score, label) in columns.items()}


def mean_auc(metrics: Mapping[str, Mapping[str, float]]) -> float:
    return float(np.mean([m["auc"] for m in metrics.values()])) if metrics else 0.0


def fit(data: RecifData, config: PScoreConfig, train: TrainConfig, weights: Mapping[str, float],
        out: Path, progress: bool = True, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train, keep the epoch with the best mean validation AUC in ``model.pt``, evaluate it on the test users.

    ``last.pt`` (weights, optimiser, progress) is written after every validation and resumed from; the
    test metrics go to ``metrics.json`` and the per-epoch log (weighted loss, validation mean AUC) to
    ``log.jsonl``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(train.threads)
    try:
        return _fit(data, config, train, weights, out, progress, meta)
    finally:
        torch.set_num_threads(threads)


def _fit(data: RecifData, config: PScoreConfig, train: TrainConfig, weights: Mapping[str, float],
         out: Path, progress: bool, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(train.seed)
    net = PScoreNet(config, data.catalogue)
    optimiser = torch.optim.Adam(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    run = {"config": asdict(config), "train": {k: v for k, v in asdict(train).items() if k != "epochs"},
           "weights": dict(weights), "data": data.fingerprint}
    state = dict(NEW_STATE)
    if (out / "last.pt").exists():
        last, ckpt = load_checkpoint(out / "last.pt", "pscore-last", "last.pt", "P-Score training state")
        if ckpt["run"] != run:
            raise ValueError(f"{last}: a checkpoint of a different run (config or data differ); use another output_dir")
        net.load_state_dict(ckpt["state"])
        optimiser.load_state_dict(ckpt["optimiser"])
        state = ckpt["progress"]
        log.warning("resuming %s from epoch %d", out, state["epoch"])
    model = PScoreModel(net, data.catalogue, data.histories)
    selector = data.valid if len(data.valid) else data.train
    valid: dict[str, Any] = {}

    def step(batch: Sequence[int]) -> float:
        samples = data.train.take(torch.tensor(batch))
        loss, _ = pscore_loss(*_batch(net, data.histories, samples), samples.labels, config, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    def validate() -> float:
        valid.update(evaluate(net, data.histories, selector))
        return mean_auc(valid)

    def save(which: str, progress_state: dict[str, Any]) -> None:
        if which == "best":
            model.save(out, {"meta": dict(meta or {}), "valid": dict(valid)})
        else:
            save_atomic({"kind": "pscore-last", "run": run, "state": net.state_dict(),
                         "optimiser": optimiser.state_dict(), "progress": progress_state}, out / "last.pt")

    state = run_epochs("pscore", net, list(range(len(data.train))), train, state, out, step, validate, save,
                       progress, metric="valid_mean_auc")
    best = PScoreModel.load(out)
    test = evaluate(best.net, best.histories, data.test)
    metrics = {"model": "pscore", "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "valid_mean_auc": state["best"], "test": test, "n_train": len(data.train), "n_valid": len(data.valid),
               "parameters": sum(p.numel() for p in net.parameters()), "loss_weights": dict(weights),
               "config": asdict(config), "train": asdict(train), **(meta or {})}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def format_metrics(test: Mapping[str, Mapping[str, float]]) -> str:
    """One line per tower: AUC, user-weighted AUC, positive rate, samples."""
    lines = [f"{'tower':<16}{'auc':>8}{'wuauc':>8}{'pos_rate':>10}{'n':>9}"]
    lines += [f"{name:<16}{m['auc']:>8.4f}{m['wuauc']:>8.4f}{m['positive_rate']:>10.4f}{m['n']:>9}"
              for name, m in test.items()]
    return "\n".join(lines)


def main(config: dict[str, Any]) -> Path:
    """``recif-train pscore``: data.raw (default: mini-RecIF's raw/), model, loss.weights, train -> model folder."""
    data_section = config.get("data") or {}
    model_config = PScoreConfig.from_dict(config.get("model") or {})
    train_config = TrainConfig.from_dict(config.get("train") or {})
    weights = loss_weights((config.get("loss") or {}).get("weights"), model_config.towers)
    out = Path(require(config, "output_dir"))
    raw = data_section.get("raw")
    if raw is None:
        from recif_bench.data import mini

        raw = mini.default_data_dir() / "raw"
    data = load_recif(raw, model_config, train_config)
    metrics = fit(data, model_config, train_config, weights, out, meta={"raw": str(raw)})
    print(format_metrics(metrics["test"]))
    log.warning("pscore: test AUC per tower written to %s", out / "metrics.json")
    return out

