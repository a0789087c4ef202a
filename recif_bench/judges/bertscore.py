"""BERTScore F1 (Zhang et al.), as the ``bert_score`` package computes it with idf off.

The reference weighs each matched information point by
``BERTScorer(model_type="bert-base-chinese", num_layers=9, rescale_with_baseline=False)``.  Here:
the hidden states of layer ``layer`` (``hidden_states[layer]`` = output of the first ``layer``
blocks, what bert_score's truncated model returns), L2-normalised; precision = mean over the
candidate's word tokens of the best cosine with any reference token ([CLS]/[SEP] included, as
bert_score's mask does; they only carry no weight in the mean), recall the other way round;
F1 = 2PR/(P+R), 0 when undefined (e.g. an empty text).  Equal to the ``bert-score`` package's F1
(tests/test_bertscore_package.py); that package is not a dependency because it breaks on empty
texts under transformers 5.
"""

from __future__ import annotations

import threading
from typing import Sequence

DEFAULT_MODEL = "bert-base-chinese"
DEFAULT_LAYER = 9


class BertScorer:
    def __init__(self, model: str = DEFAULT_MODEL, layer: int = DEFAULT_LAYER, batch_size: int = 64,
                 device: str | None = None):
        self.model_name, self.layer, self.batch_size, self.device = model, layer, batch_size, device
        self._loaded = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, object]:
        return {"model": self.model_name, "layer": self.layer, "idf": False, "rescale_with_baseline": False}

    def check(self) -> None:
        """Fail early, with one line, when the BERTScore model cannot be found (e.g. offline)."""
        from transformers import AutoConfig

        try:
            layers = AutoConfig.from_pretrained(self.model_name, trust_remote_code=False).num_hidden_layers
        except (OSError, ValueError) as exc:
            raise OSError(f"BERTScore model {self.model_name} is not available ({type(exc).__name__}); "
                          "set RECIF_BERTSCORE_MODEL to a local BERT folder") from None
        if self.layer > layers:
            raise ValueError(f"BERTScore layer {self.layer}: {self.model_name} has {layers} layers")

    def _load(self):
        with self._lock:
            if self._loaded is None:
                import torch
                from transformers import AutoModel, AutoTokenizer

                device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
                self.check()
                tokenizer = AutoTokenizer.from_pretrained(self.model_name, trust_remote_code=False)
                model = AutoModel.from_pretrained(self.model_name, trust_remote_code=False).eval().to(device)
                self._loaded = (tokenizer, model, device)
        return self._loaded

    def _embed(self, texts: Sequence[str]):
        """Per text: the normalised embeddings of all its tokens and which of them are scored.

        As in bert_score, [CLS]/[SEP] take part in the best-match search but get no weight in the
        averages (bert_score gives them idf 0); padding is dropped.
        """
        import torch

        tokenizer, model, device = self._load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t.strip() for t in texts[start:start + self.batch_size]]
            enc = tokenizer(batch, padding=True, truncation=True, return_tensors="pt",
                            return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask")
            real = enc["attention_mask"] == 1
            with torch.no_grad():
                hidden = model(**enc.to(device), output_hidden_states=True).hidden_states[self.layer]
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
            out.extend((hidden[i][real[i]], (special[i] == 0)[real[i]]) for i in range(len(batch)))
        return out

    def f1(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        if len(candidates) != len(references):
            raise ValueError("BERTScore needs as many candidates as references")
        if not candidates:
            return []
        embedded = self._embed(list(candidates) + list(references))
        scores = []
        for (cand, cand_scored), (ref, ref_scored) in zip(embedded[:len(candidates)], embedded[len(candidates):]):
            if not cand_scored.any() or not ref_scored.any():
                scores.append(0.0)
                continue
            sim = cand @ ref.T
            precision = sim.max(dim=1).values[cand_scored].mean().item()
            recall = sim.max(dim=0).values[ref_scored].mean().item()
            total = precision + recall
            scores.append(2 * precision * recall / total if total else 0.0)
        return scores
