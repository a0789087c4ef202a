"""TIGER (Rajput et al. 2023): generative retrieval of the next item's semantic ID with a T5 encoder-decoder.

* Items: semantic IDs from :mod:`recif_bench.itemic` (MiniLM item-text embeddings -> RQ-KMeans 3 x 256
  + TIGER's dedup level, the same cached codes the Amazon tasks use with ``item_ids=auto``), or the
  SIDs themselves on mini-RecIF.
* Model: ``transformers`` T5 over a vocabulary of one token per (level, code) plus pad / eos; the
  encoder reads the last ``max_history`` items' codes, the decoder writes the next item's codes.
* Training: leave-one-out train split, one example per prefix of each training sequence (the
  TIGER recipe), validation R@10 on the second-to-last items of a fixed user sample.
* Decoding: beam search constrained by a trie of the catalogue's SIDs (:class:`~recif_bench.models.trie.SidTrie`),
  so every returned SID is an item.

    recif-train tiger --config configs/train/tiger_beauty.yaml [--set train.epochs=1]
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Container, Hashable, Sequence

import torch
from tqdm import tqdm

from recif_bench import sid
from recif_bench.models.trie import SidTrie
from trainers.common.config import ConfigError, require
from trainers.common.epochs import NEW_STATE, run_epochs, write_summary
from trainers.sasrec import settings

log = logging.getLogger(__name__)

PAD, EOS, OFFSET = 0, 1, 2      # T5 conventions: pad doubles as the decoder start token


@dataclass
class TigerConfig:
    """Defaults: the TIGER paper's model (4 + 4 layers, d_model 128, 6 heads x 64, FFN 1024, dropout 0.1)."""

    d_model: int = 128
    d_ff: int = 1024
    layers: int = 4
    heads: int = 6
    d_kv: int = 64
    dropout: float = 0.1
    max_history: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    epochs: int = 200
    beams: int = 20
    valid_users: int = 1000      # users sampled for the validation R@10 (beam search is the slow part)
    eval_every: int = 5
    patience: int = 5
    seed: int = 42



class SidRecommender:
    """What the SID recommenders (TIGER, the lazy decoder) share: the item <-> SID tables (one SID per item, every
    code inside the format) and the ``recif-rec`` interface on top of their ``generate`` and ``sid_log_prob``."""

    def __init__(self, codes: dict[Hashable, tuple[int, ...]], fmt: sid.SidFormat, meta: dict[str, Any],
                 max_history: int) -> None:
        self.codes = {item: tuple(c) for item, c in codes.items()}
        self.fmt, self.meta, self.max_history = fmt, meta, max_history
        for item, c in self.codes.items():
            if len(c) != fmt.levels or not all(0 <= x < fmt.codebook_size for x in c):
                raise ValueError(f"item {item!r}: SID {c} does not fit {fmt.levels} levels x {fmt.codebook_size} codes")
        self.items_by_sid = {c: item for item, c in self.codes.items()}
        if len(self.items_by_sid) != len(self.codes):
            raise ValueError("a SID recommender needs one SID per item: the codes have collisions (use the dedup level)")

    def generate(self, histories: Sequence[Sequence[Hashable]], k: int) -> list[list[Hashable]]:
        """Top-k catalogue items per history."""
        raise NotImplementedError

    def sid_log_prob(self, history: list[Hashable], item: Hashable) -> float:
        """log p(a catalogue item's SID | history)."""
        raise NotImplementedError

    def top_items(self, history: list[Hashable], k: int) -> list[Hashable]:
        return self.generate([history], k)[0]

    def item_score(self, history: list[Hashable], item: Hashable) -> float:
        """p(item's SID | history); 0 for an item outside the catalogue."""
        return math.exp(self.sid_log_prob(history, item)) if item in self.codes else 0.0


class TigerModel(SidRecommender):
    """A T5 model, the item <-> SID table and its trie: what training, evaluation and ``recif-rec`` share."""

    def __init__(self, model, codes: dict[Hashable, tuple[int, ...]], fmt: sid.SidFormat, config: TigerConfig,
                 meta: dict[str, Any]) -> None:
        super().__init__(codes, fmt, meta, config.max_history)
        self.model, self.config = model, config
        token_ids = {name: OFFSET + i for i, name in enumerate(fmt.code_tokens())}
        self.trie = SidTrie(list(self.items_by_sid), token_ids, fmt, [EOS])

    @classmethod
    def new(cls, codes: dict[Hashable, tuple[int, ...]], fmt: sid.SidFormat, config: TigerConfig,
            meta: dict[str, Any]) -> "TigerModel":
        from transformers import T5Config, T5ForConditionalGeneration

        t5 = T5Config(vocab_size=OFFSET + fmt.levels * fmt.codebook_size, d_model=config.d_model, d_ff=config.d_ff,
                      d_kv=config.d_kv, num_layers=config.layers, num_decoder_layers=config.layers,
                      num_heads=config.heads, dropout_rate=config.dropout, pad_token_id=PAD, eos_token_id=EOS,
                      decoder_start_token_id=PAD, feed_forward_proj="relu", tie_word_embeddings=True)
        torch.manual_seed(config.seed)
        return cls(T5ForConditionalGeneration(t5), codes, fmt, config, meta)

    def tokens(self, item: Hashable) -> list[int]:
        return [OFFSET + level * self.fmt.codebook_size + c for level, c in enumerate(self.codes[item])]

    def encode_history(self, histories: Sequence[Sequence[Hashable]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded encoder inputs (the last ``max_history`` known items' codes, then eos) and mask."""
        rows = [[t for item in [i for i in h if i in self.codes][-self.max_history:] for t in self.tokens(item)] + [EOS]
                for h in histories]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [PAD] * (width - len(r)) for r in rows])
        return ids, (ids != PAD).long()

    def labels(self, targets: Sequence[Hashable]) -> torch.Tensor:
        return torch.tensor([self.tokens(t) + [EOS] for t in targets])

    @torch.no_grad()
    def generate(self, histories: Sequence[Sequence[Hashable]], k: int) -> list[list[Hashable]]:
        """Top-k items per history by trie-constrained beam search (``max(k, beams)`` beams)."""
        self.model.eval()
        beams = max(k, self.config.beams)
        ids, mask = self.encode_history(histories)

        def allowed(_batch: int, decoded: torch.Tensor) -> list[int]:
            return self.trie.allowed(tuple(decoded.tolist()[1:]))

        out = self.model.generate(input_ids=ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
                                  max_new_tokens=self.fmt.levels + 1, do_sample=False, early_stopping=True,
                                  prefix_allowed_tokens_fn=allowed)
        results = []
        for row in range(len(histories)):
            ranked = []
            for seq in out[row * beams:(row + 1) * beams].tolist():
                codes = tuple(t - OFFSET - level * self.fmt.codebook_size for level, t in enumerate(seq[1:self.fmt.levels + 1]))
                item = self.items_by_sid.get(codes)
                if item is not None and item not in ranked:
                    ranked.append(item)
            results.append(ranked[:k])
        return results

    @torch.no_grad()
    def sid_log_prob(self, history: list[Hashable], item: Hashable) -> float:
        self.model.eval()
        ids, mask = self.encode_history([history])
        labels = self.labels([item])
        logp = self.model(input_ids=ids, attention_mask=mask, labels=labels).logits.log_softmax(-1)
        return float(logp[0, :-1].gather(1, labels[0, :-1, None]).sum())

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        """``model.safetensors`` + ``config.json`` (transformers) and ``tiger.json`` (codes, settings, meta)."""
        tmp = folder.with_name(folder.name + ".tmp")
        self.model.save_pretrained(tmp)
        doc = {"kind": "tiger", "config": asdict(self.config), "levels": self.fmt.levels,
               "codebook_size": self.fmt.codebook_size, "meta": self.meta, **(extra or {}),
               "codes": [[item if not isinstance(item, tuple) else list(item), list(c)] for item, c in self.codes.items()]}
        (tmp / "tiger.json").write_text(json.dumps(doc), encoding="utf-8")
        if folder.exists():
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
        tmp.replace(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TigerModel":
        from transformers import T5ForConditionalGeneration

        folder = Path(folder)
        if (folder / "best").is_dir():
            folder = folder / "best"
        if not (folder / "tiger.json").exists():
            raise FileNotFoundError(f"{folder}: no tiger.json (not a TIGER checkpoint)")
        doc = json.loads((folder / "tiger.json").read_text(encoding="utf-8"))
        codes = {tuple(i) if isinstance(i, list) else i: tuple(c) for i, c in doc["codes"]}
        return cls(T5ForConditionalGeneration.from_pretrained(folder), codes,
                   sid.SidFormat(doc["levels"], doc["codebook_size"]), TigerConfig(**doc["config"]), doc["meta"])


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


def recall_at(tiger: TigerModel, histories: list, targets: list, k: int = 10, batch_size: int = 32,
              progress: bool = False) -> float:
    hits = 0
    for start in tqdm(range(0, len(histories), batch_size), desc="validate", disable=not progress, leave=False):
        ranked = tiger.generate(histories[start:start + batch_size], k)
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
        optimiser.load_state_dict(torch.load(out / "optimiser.pt", weights_only=False))
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
            torch.save(optimiser.state_dict(), out / "optimiser.pt")
        tiger.save(out / which, {"progress": progress_state})

    started = time.time()
    state = run_epochs("tiger", tiger.model, examples, config, state, out, step,
                       lambda: recall_at(tiger, valid_hist, valid_target, progress=progress), save, progress,
                       length=history_length)
    return write_summary(out, "tiger", state, started, config, tiger.model, valid_users=len(valid_hist),
                         train_examples=len(examples), n_items=len(tiger.codes), **tiger.meta)


def amazon_codes(category: str, data_dir: str, item_ids: str = "auto") -> tuple[dict, sid.SidFormat, str]:
    """Item SIDs of an Amazon category: the tasks' cached auto codes (with dedup level) or an item-codes file."""
    from recif_bench import transfer
    from recif_bench.itemic.codes import read_item_codes

    data = transfer.dataset(category, data_dir)
    path = transfer.auto_codes(data) if item_ids == "auto" else Path(item_ids.replace("{category}", category))
    codes, fmt, _ = read_item_codes(path)
    return codes, fmt, str(path)


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
        from trainers.sasrec import recif_sequences

        raw = Path(data.get("raw") or mini.default_data_dir() / "raw")
        sequences, items = recif_sequences(raw, data.get("domain", "video"))
        fmt = sid.SidFormat(int(data.get("sid_levels", 3)), int(data.get("sid_codebook", 8192)))
        return sequences, {item: item for item in items}, fmt, {"data": "recif", "domain": data.get("domain", "video"),
                                                                "raw": str(raw)}
    raise ConfigError(f"data.source must be amazon or recif, not {source!r}")


def main(config: dict[str, Any]) -> Path:
    """``recif-train tiger``: data.source ``amazon`` (data.dir, data.category, data.item_ids) or ``recif``."""
    tiger_config = settings(TigerConfig, config.get("model", {}))
    out = Path(require(config, "output_dir"))
    sequences, codes, fmt, meta = sid_data(config)
    summary = fit(TigerModel.new(codes, fmt, tiger_config, meta), sequences, out)
    log.warning("tiger: best valid R@10 %.4f (epoch %d) -> %s", summary["valid_recall@10"], summary["best_epoch"], out)
    return out / "best"
