"""``recif-hf``: any transformers causal LM, batched, K candidates by beam search or sampling.

model_args: ``pretrained`` (folder or hub id), ``dtype`` (auto | float32 | bfloat16 ...),
``device`` (default cuda when available), ``batch_size``, ``thinking``, ``constrained`` with
``data_dir`` (trie over the catalogue's SIDs), ``sid_levels``, ``sid_codebook``, ``seed``,
``trust_remote_code``, ``max_length`` (context window; default the model's
``max_position_embeddings``).  Stock lm-eval tasks work too (``recif-eval --general``):
``loglikelihood`` of multi-token continuations, ``loglikelihood_rolling`` in lm-eval's disjoint
windows, prompts longer than the window cut from the left as lm-eval's ``hf`` does.  A loaded ``model`` / ``tokenizer`` can be passed instead (trainers
evaluate in process this way).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval.api.registry import register_model

from recif_bench import sid
from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec

log = logging.getLogger(__name__)


@register_model("recif-hf")
class HFRecLM(KCandidateLM):
    def __init__(self, pretrained: str | None = None, model: Any = None, tokenizer: Any = None,
                 dtype: str = "auto", device: str | None = None, batch_size: Any = 8, thinking: Any = False,
                 constrained: Any = False, data_dir: str | None = None, sid_levels: Any = 3,
                 sid_codebook: Any = 8192, seed: Any = 0, trust_remote_code: Any = True, max_length: Any = None,
                 **_ignored: Any) -> None:
        super().__init__(thinking=thinking, batch_size=batch_size)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        if model is None and not pretrained:
            raise ValueError("recif-hf needs pretrained=<folder or hub id>")
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s requested but CUDA is not available: running on cpu", device)
            device = "cpu"   # the stock lm_eval CLI passes cuda:0 by default
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(pretrained, trust_remote_code=bool(trust_remote_code))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            torch_dtype = dtype if dtype == "auto" else getattr(torch, str(dtype))
            model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=torch_dtype,
                                                         trust_remote_code=bool(trust_remote_code))
        self.model = model.to(self._device).eval()
        self.seed = int(seed)
        self.fmt = sid.SidFormat(int(sid_levels), int(sid_codebook))
        self.constrained = str(constrained).lower() in ("1", "true", "yes")
        self.data_dir = Path(data_dir) if data_dir else None
        if self.constrained and self.data_dir is None:
            raise ValueError("constrained=true needs data_dir=<benchmark data root> to read the catalogue")
        self.forward_calls = 0   # model forwards spent on scoring: one per unique label_pred prompt
        self.max_length = int(max_length or getattr(self.model.config, "max_position_embeddings", None) or 2048)
        # what an empty context is scored after (lm-eval's convention: BOS, else EOS)
        self.prefix_token_id = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None \
            else self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return getattr(self.tokenizer, "name_or_path", "tokenizer").replace("/", "__")

    def _encode(self, prompts: list[str], max_new_tokens: int = 0):
        self.tokenizer.truncation_side = "left"   # a prompt too long for the window loses its oldest tokens
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                               truncation=True, max_length=max(1, self.max_length - max_new_tokens))
        return batch["input_ids"].to(self._device), batch["attention_mask"].to(self._device)

    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        torch = self.torch
        input_ids, attention = self._encode(prompts, spec.sampling.max_new_tokens)
        k = spec.num_return_sequences
        kwargs: dict[str, Any] = {"max_new_tokens": spec.sampling.max_new_tokens, "num_return_sequences": k,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if spec.beam_search:
            kwargs.update(num_beams=spec.beam_width, do_sample=False, early_stopping=True, length_penalty=1.0)
        else:
            s = spec.sampling
            kwargs.update(do_sample=s.do_sample, repetition_penalty=s.repetition_penalty)
            if s.do_sample:
                kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k > 0 else 0)
            elif k > 1:
                kwargs.update(num_beams=k)
        if self.constrained and catalogue and spec.answer_prefix:
            kwargs["prefix_allowed_tokens_fn"] = self._constraint(catalogue, input_ids.shape[1])
        if spec.sampling.do_sample or not spec.beam_search:
            torch.manual_seed(self.seed)
        with torch.no_grad():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new_tokens = output[:, input_ids.shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [texts[i * k:(i + 1) * k] for i in range(len(prompts))]

    def _constraint(self, catalogue: str, prompt_length: int):
        from recif_bench.models.trie import build_trie

        trie = build_trie(self.tokenizer, self.data_dir / catalogue, self.fmt)
        return lambda _batch, ids: trie.allowed(tuple(ids[prompt_length:].tolist()))

    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        context_ids = self.tokenizer(context, add_special_tokens=False)["input_ids"] or [self.prefix_token_id]
        # the continuation is tokenized on its own, as the reference scores 是/否 at the first answer position
        pieces = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        return self._token_scores(context_ids, pieces)

    def _token_scores(self, context_ids: list[int], pieces: list[list[int]]) -> list[tuple[float, bool]]:
        """(log p(piece | context), is_greedy) per piece, in one batched forward.

        The model reads ``(context + piece)[:-1]`` (its last ``max_length`` tokens); single-token
        pieces share one input, the context alone.
        """
        torch = self.torch
        if all(len(p) == 1 for p in pieces):
            logprobs = self._logprobs([context_ids[-self.max_length:]], keep=1)[0, -1]
            best = int(logprobs.argmax())
            return [(float(logprobs[p[0]]), p[0] == best) for p in pieces]
        inputs = [(context_ids + piece)[-(self.max_length + 1):-1] for piece in pieces]
        logprobs = self._logprobs(inputs, keep=max(map(len, pieces)))
        out = []
        for rows, piece in zip(logprobs, pieces):
            rows = rows[-len(piece):]   # a piece longer than the window is scored on its last max_length tokens
            target = torch.tensor(piece[-rows.shape[0]:], device=rows.device)
            out.append((float(rows.gather(1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all())))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts (perplexity tasks) over lm-eval's disjoint rolling windows."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
        from tqdm import tqdm

        results = []
        for request in tqdm(requests, desc="HFRecLM: rolling score", disable=disable_tqdm):
            tokens = self.tokenizer(request.args[0], add_special_tokens=False)["input_ids"]
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=tokens, prefix_token=self.prefix_token_id, max_seq_len=self.max_length, context_len=1))
            total = sum(self._token_scores(list(context), [list(piece)])[0][0] for context, piece in windows)
            results.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return results

    def _logprobs(self, sequences: list[list[int]], keep: int | None = None):
        """Log-softmax over the vocabulary, left-padded batch; only the last ``keep`` positions if given."""
        torch = self.torch
        self.forward_calls += 1
        width = max(map(len, sequences))
        ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, device=self._device)
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(sequences):
            if sequence:
                ids[row, width - len(sequence):] = torch.tensor(sequence, device=self._device)
                mask[row, width - len(sequence):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=keep or 0).logits.float()
        return torch.log_softmax(logits, dim=-1)
