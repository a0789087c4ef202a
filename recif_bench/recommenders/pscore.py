"""P-Score (OneRec-V1's reward model): a multi-tower engagement predictor fused into one personalised score.

For a user and a candidate video it predicts one engagement rate per feedback flag of the raw RecIF
user table (``longview``, ``like``, ``follow``, ``forward``, ``not_interested``: one *tower* each)
and fuses the towers into a single score in [0, 1], the reward of the ECPO policy loss.

* Item: an embedding of its pid (items seen fewer than ``min_item_count`` times in the training
  users share an "unknown" embedding) plus one embedding per SID level from ``video_ad_pid2sid``
  (the SID is what generalises to rare items: the first code is a coarse cluster).
* User: the last ``max_history`` items of ``hist_video_pid`` and their feedback flags, pooled
  (sum / sqrt(count)) over the whole history and over the items carrying each flag ("what the user
  long-viewed, liked, ... marked not-interested"), plus a target attention over the history (the
  candidate asks which history items resemble it, DIN-style).
* Towers: a shared layer over each user vector x candidate (elementwise and its dot product) and the
  candidate, then one small MLP per flag giving that flag's logit.
* Fusion: an MLP over the tower logits and the user's whole-history pool (so the mix of rates is
  personalised) gives the fused logit; ``score()`` is its sigmoid.

This module holds the network, the scoring API and the model folder (``model.pt``, which stores every
user's history, so it scores by uid alone); ``trainers/pscore.py`` trains it (``recif-train pscore``):

    >>> from recif_bench.recommenders.pscore import PScoreModel
    >>> PScoreModel.load("runs/pscore_mini").score(uid=7, pids=[12, 345])   # two floats in [0, 1]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic
from recif_bench.recommenders.settings import ConfigError, settings

FLAGS = ("longview", "like", "follow", "forward", "not_interested")   # the raw table's video feedback flags
FUSED = "fused"
PAD, UNKNOWN = 0, 1           # pid-embedding indexes shared by every padded / rare item


@dataclass
class PScoreConfig:
    """The model: which towers, how the fused label is made, the item / user encoders' sizes."""

    towers: list[str] = field(default_factory=lambda: list(FLAGS))
    positive: list[str] = field(default_factory=lambda: ["longview", "like", "follow", "forward"])
    negative: list[str] = field(default_factory=lambda: ["not_interested"])
    hidden: int = 32
    tower_hidden: int = 16
    max_history: int = 50
    min_item_count: int = 2      # rarer train items share the "unknown" pid embedding (their SID still counts)
    use_pid: bool = True
    use_sid: bool = True
    history_flags: bool = True   # pool the history by its hist_video_<tower> flags too
    dropout: float = 0.1

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PScoreConfig":
        config = settings(cls, values)
        for name in ("towers", "positive", "negative"):
            value = getattr(config, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"model.{name} must be a list of flag names, not {value!r}")
        if not config.towers or len(set(config.towers)) != len(config.towers):
            raise ConfigError(f"model.towers must name each flag once, got {config.towers}")
        stray = [f for f in config.positive + config.negative if f not in config.towers]
        if stray:
            raise ConfigError(f"model.positive / model.negative name {', '.join(stray)}, which are not towers "
                              f"({', '.join(config.towers)})")
        if not config.positive:
            raise ConfigError("model.positive must name at least one tower (the fused label needs a positive flag)")
        if min(config.hidden, config.tower_hidden, config.max_history) < 1:
            raise ConfigError("model.hidden, model.tower_hidden and model.max_history must be >= 1")
        if not (config.use_pid or config.use_sid):
            raise ConfigError("model.use_pid and model.use_sid are both false: items would have no features")
        return config


@dataclass
class Catalogue:
    """The items the model knows: sorted pids with their pid-embedding index and SID codes.

    Rows are what the network reads: row 0 is padding, rows 1..N the items, row N+1 any pid the
    catalogue lacks (unknown pid embedding, no SID).  Codes are stored +1 so 0 means "no code".
    """

    pids: np.ndarray        # (N,) int64, sorted
    pid_index: np.ndarray   # (N,) int64: PAD / UNKNOWN / 2.. own embedding
    codes: np.ndarray       # (N, levels) int64, code + 1, 0 when the item has no SID

    @property
    def unknown_row(self) -> int:
        return len(self.pids) + 1

    def rows(self, pids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row of each pid; pids outside the catalogue get the unknown row."""
        pids = np.asarray(pids, dtype=np.int64).reshape(-1)
        at = np.searchsorted(self.pids, pids).clip(max=max(len(self.pids) - 1, 0))
        found = self.pids[at] == pids if len(self.pids) else np.zeros(len(pids), dtype=bool)
        return np.where(found, at + 1, self.unknown_row)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(pid index, codes) per row, pad and unknown rows included."""
        levels = self.codes.shape[1]
        pid_index = np.concatenate([[PAD], self.pid_index, [UNKNOWN]])
        codes = np.concatenate([np.zeros((1, levels), np.int64), self.codes, np.zeros((1, levels), np.int64)])
        return torch.from_numpy(pid_index).long(), torch.from_numpy(codes).long()

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"pids": torch.tensor(self.pids), "pid_index": torch.tensor(self.pid_index),
                "codes": torch.tensor(self.codes)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, torch.Tensor]) -> "Catalogue":
        return cls(saved["pids"].numpy(), saved["pid_index"].numpy(), saved["codes"].numpy())


@dataclass
class Histories:
    """Every user's last ``max_history`` videos (catalogue rows, 0-padded on the right) and their flags."""

    uids: np.ndarray        # (U,) int64
    rows: np.ndarray        # (U, H) int64
    flags: np.ndarray       # (U, H, F) uint8, F = number of towers (all 0 without history flags)

    def __post_init__(self) -> None:
        self.index = {int(u): i for i, u in enumerate(self.uids)}

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"uids": torch.tensor(self.uids), "rows": torch.tensor(self.rows), "flags": torch.tensor(self.flags)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, torch.Tensor]) -> "Histories":
        return cls(saved["uids"].numpy(), saved["rows"].numpy(), saved["flags"].numpy())


class PScoreNet(nn.Module):
    """Item encoder, user encoder (history pools + target attention), one tower per flag, fusion MLP."""

    def __init__(self, config: PScoreConfig, catalogue: Catalogue) -> None:
        super().__init__()
        self.config = config
        d, n_flags = config.hidden, len(config.towers)
        pid_index, codes = catalogue.tables()
        self.register_buffer("row_pid", pid_index, persistent=False)
        self.register_buffer("row_codes", codes, persistent=False)
        self.pid_emb = nn.Embedding(int(pid_index.max()) + 1, d, padding_idx=PAD)
        codebook = int(codes.max()) + 1 if codes.numel() else 1
        self.sid_emb = nn.ModuleList(nn.Embedding(codebook, d, padding_idx=0) for _ in range(codes.shape[1]))
        self.query = nn.Linear(d, d, bias=False)
        n_user = 2 + n_flags            # attended history, whole-history pool, one pool per flag
        self.shared = nn.Sequential(nn.Linear(n_user * (d + 1) + d, d), nn.ReLU(), nn.Dropout(config.dropout))
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(d, config.tower_hidden), nn.ReLU(),
                                                  nn.Linear(config.tower_hidden, 1)) for _ in config.towers)
        self.fusion = nn.Sequential(nn.Linear(n_flags + d, config.tower_hidden), nn.ReLU(),
                                    nn.Linear(config.tower_hidden, 1))
        for emb in (self.pid_emb, *self.sid_emb):
            nn.init.normal_(emb.weight, std=0.1)
            with torch.no_grad():
                emb.weight[0].zero_()

    def items(self, rows: torch.Tensor) -> torch.Tensor:
        """Item vectors of catalogue rows (any shape) -> (..., hidden); the pad row is all zeros."""
        vec = self.pid_emb(self.row_pid[rows])
        if self.config.use_sid:
            codes = self.row_codes[rows]
            for level, emb in enumerate(self.sid_emb):
                vec = vec + emb(codes[..., level])
        return vec

    def forward(self, hist_rows: torch.Tensor, hist_flags: torch.Tensor,
                target_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H) history rows, (B, H, F) flags, (B,) candidates -> (B, F) tower logits, (B,) fused logit."""
        mask = hist_rows > 0
        tokens = self.items(hist_rows)
        target = self.items(target_rows)
        # pools: sum / sqrt(count) over the whole history and over the items carrying each flag, so a
        # history that agrees on a direction stands out of the noise of unrelated items from the start
        member = torch.cat([mask.unsqueeze(-1), hist_flags.bool() & mask.unsqueeze(-1)], dim=-1).float()
        pools = torch.einsum("bhk,bhd->bkd", member, tokens) / member.sum(1).clamp(min=1).sqrt().unsqueeze(-1)
        logits = (tokens @ self.query(target).unsqueeze(-1)).squeeze(-1) / math.sqrt(self.config.hidden)
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1).nan_to_num(0.0)  # empty history
        user = torch.cat([(weights.unsqueeze(-1) * tokens).sum(1, keepdim=True), pools], dim=1)   # (B, 2 + F, d)
        match = user * target.unsqueeze(1)
        shared = self.shared(torch.cat([match.flatten(1), match.sum(-1), target], dim=-1))
        towers = torch.cat([tower(shared) for tower in self.towers], dim=-1)
        fused = self.fusion(torch.cat([towers, pools[:, 0]], dim=-1)).squeeze(-1)
        return towers, fused


def fused_label(labels: torch.Tensor, config: PScoreConfig) -> torch.Tensor:
    """1 where any ``positive`` flag is set and no ``negative`` flag is (the fused score's target)."""
    index = {t: i for i, t in enumerate(config.towers)}
    positive = labels[:, [index[t] for t in config.positive]].amax(1)
    if not config.negative:
        return positive
    return positive * (1 - labels[:, [index[t] for t in config.negative]].amax(1))


class PScoreModel:
    """A trained P-Score model with every user's history: the reward API for the RL recipes."""

    def __init__(self, net: PScoreNet, catalogue: Catalogue, histories: Histories) -> None:
        self.net, self.catalogue, self.histories = net.eval(), catalogue, histories

    @property
    def towers(self) -> list[str]:
        return list(self.net.config.towers)

    @torch.no_grad()
    def rates(self, uid: int, pids: Sequence[int]) -> dict[str, list[float]]:
        """Every tower's predicted rate and the fused score of each candidate video for one user."""
        if int(uid) not in self.histories.index:
            raise KeyError(f"uid {uid} is not among the {len(self.histories.uids)} users the P-Score model stores")
        if not len(pids):
            return {name: [] for name in [*self.towers, FUSED]}
        user = self.histories.index[int(uid)]
        n = len(pids)
        rows = torch.from_numpy(self.histories.rows[user]).expand(n, -1)
        flags = torch.from_numpy(self.histories.flags[user]).expand(n, -1, -1)
        towers, fused = self.net(rows, flags, torch.from_numpy(self.catalogue.rows(pids)))
        out = {t: torch.sigmoid(towers[:, i]).tolist() for i, t in enumerate(self.towers)}
        out[FUSED] = torch.sigmoid(fused).tolist()
        return out

    def score(self, uid: int, pids: Sequence[int]) -> list[float]:
        """The fused P-Score in [0, 1] of each candidate video (pids outside the catalogue score as unknown items)."""
        return self.rates(uid, pids)[FUSED]

    def save(self, folder: Path, extra: Mapping[str, Any]) -> Path:
        """``model.pt`` written atomically: config, weights, catalogue, histories and ``extra``."""
        return save_atomic({"kind": "pscore", "config": asdict(self.net.config), "state": self.net.state_dict(),
                            "catalogue": self.catalogue.to_dict(), "histories": self.histories.to_dict(), **extra},
                           folder / "model.pt")

    @classmethod
    def load(cls, path: str | Path) -> "PScoreModel":
        """From a model folder (or its ``model.pt``); errors name the file."""
        _, ckpt = load_checkpoint(path, "pscore", "model.pt", "P-Score model")
        catalogue = Catalogue.from_dict(ckpt["catalogue"])
        net = PScoreNet(PScoreConfig(**ckpt["config"]), catalogue)
        net.load_state_dict(ckpt["state"])
        return cls(net, catalogue, Histories.from_dict(ckpt["histories"]))

