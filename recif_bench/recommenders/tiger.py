"""TIGER (Rajput et al. 2023): generative retrieval of the next item's semantic ID with a T5 encoder-decoder.

* Items: semantic IDs from :mod:`recif_bench.itemic` (MiniLM item-text embeddings -> RQ-KMeans 3 x 256
  + TIGER's dedup level, the same cached codes the Amazon tasks use with ``item_ids=auto``), or the
  SIDs themselves on mini-RecIF.
* Model: ``transformers`` T5 over a vocabulary of one token per (level, code) plus pad / eos; the
  encoder reads the last ``max_history`` items' codes, the decoder writes the next item's codes.
* Decoding: beam search constrained by a trie of the catalogue's SIDs (:class:`~recif_bench.models.trie.SidTrie`),
  so every returned SID is an item.

This module holds the model, its decoding and its checkpoint folder; ``trainers/tiger.py`` trains it
(``recif-train tiger``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Hashable, Sequence

import torch

from recif_bench import sid
from recif_bench.models.trie import SidTrie
from recif_bench.recommenders.base import SidRecommender

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

