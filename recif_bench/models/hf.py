"""``recif-hf``: any transformers causal LM, batched, K candidates by beam search or sampling.

Beam search prefills each prompt once and runs its K beams on the cache (:mod:`recif_bench.models.beam`).

model_args: ``pretrained`` (folder or hub id), ``dtype`` (auto | float32 | bfloat16 ...),
``device`` (default cuda when available), ``batch_size``, ``thinking``, ``constrained`` with
``data_dir`` (trie over the catalogue's SIDs), ``sid_levels``, ``sid_codebook``, ``seed``,
``trust_remote_code`` (default false: a folder's own code runs only when asked), ``max_length`` (context window; default the model's
``max_position_embeddings``), ``think_ahead`` (``"T,m"``: OneRec-Think's think-ahead inference on the
rec tasks, :mod:`recif_bench.models.think_ahead`) with ``fast_model`` (its answering model; default
this one).  Stock lm-eval tasks work too (``recif-eval --general``):
``loglikelihood`` of multi-token continuations, ``loglikelihood_rolling`` in lm-eval's disjoint
windows, prompts longer than the window cut from the left as lm-eval's ``hf`` does.  A loaded ``model`` / ``tokenizer`` can be passed instead (trainers
evaluate in process this way).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval.api.registry import register_model

from recif_bench import sid
from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec
from recif_bench.options import as_bool

if TYPE_CHECKING:
    from recif_bench.models.beam import BeamSettings

log = logging.getLogger(__name__)


@register_model("recif-hf")
class HFRecLM(KCandidateLM):
    scoring_chunk = 256   # label_pred prompts per scoring call (and per resume record): 32 forwards at batch 8

    def __init__(self, pretrained: str | None = None, model: Any = None, tokenizer: Any = None,
                 dtype: str = "auto", device: str | None = None, batch_size: Any = 8, thinking: Any = False,
                 constrained: Any = False, data_dir: str | None = None, sid_levels: Any = 3,
                 sid_codebook: Any = 8192, seed: Any = 0, trust_remote_code: Any = False, max_length: Any = None,
                 think_ahead: Any = None, fast_model: str | None = None, **_ignored: Any) -> None:
        from recif_bench.models.think_ahead import ThinkAhead

        trust_remote_code = as_bool(trust_remote_code, "trust_remote_code")

        self.think_ahead = ThinkAhead.parse(think_ahead) if think_ahead not in (None, "") else None
        super().__init__(thinking=thinking if self.think_ahead is None else True, batch_size=batch_size)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        if model is None and not pretrained:
            raise ValueError("recif-hf needs pretrained=<folder or hub id>")
        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            log.warning("device %s requested but CUDA is not available: running on cpu", device)
            device = "cpu"   # the stock lm_eval CLI passes cuda:0 by default
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(pretrained, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            torch_dtype = dtype if dtype == "auto" else getattr(torch, str(dtype))
            model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=torch_dtype,
                                                         trust_remote_code=trust_remote_code)
        self.model = model.to(self._device).eval()
        self.fast_model = self.model if not fast_model or fast_model == pretrained else \
            self._load_fast_model(fast_model, dtype, trust_remote_code)
        self.seed = int(seed)
        self.fmt = sid.SidFormat(int(sid_levels), int(sid_codebook))
        self.constrained = as_bool(constrained, "constrained")
        self.data_dir = Path(data_dir) if data_dir else None
        if (self.constrained or self.think_ahead) and self.data_dir is None:
            raise ValueError("constrained=true and think_ahead need data_dir=<benchmark data root> to read the catalogue")
        self._warned_generate: set[int] = set()   # models that fall back to generate, told once
        self.forward_calls = 0   # model forwards spent on scoring: one per batch of label_pred prompts
        self.max_length = int(max_length or getattr(self.model.config, "max_position_embeddings", None) or 2048)
        # what an empty context is scored after (lm-eval's convention: BOS, else EOS)
        self.prefix_token_id = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None \
            else self.tokenizer.eos_token_id

    def _load_fast_model(self, path: str, dtype: str, trust_remote_code: bool) -> Any:
        """Think-ahead's second model; it must write the same itemic tokens, so it must share the tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code).get_vocab() != self.tokenizer.get_vocab():
            raise ValueError(f"fast_model={path}: its tokenizer differs from the main model's (think-ahead needs one vocabulary)")
        torch_dtype = dtype if dtype == "auto" else getattr(self.torch, str(dtype))
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        return model.to(self._device).eval()

    @property
    def tokenizer_name(self) -> str:
        return getattr(self.tokenizer, "name_or_path", "tokenizer").replace("/", "__")

    def _encode(self, prompts: list[str], max_new_tokens: int = 0):
        self.tokenizer.truncation_side = "left"   # a prompt too long for the window loses its oldest tokens
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                               truncation=True, max_length=max(1, self.max_length - max_new_tokens))
        return batch["input_ids"].to(self._device), batch["attention_mask"].to(self._device)

    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        tries = None
        if self.constrained and catalogue and spec.answer_prefix:
            tries = [self.trie(catalogue)] * len(prompts)
        texts = self.tokenizer.batch_decode(self._generate_ids(self.model, prompts, spec, tries),
                                            skip_special_tokens=True)
        k = spec.num_return_sequences
        return [texts[i * k:(i + 1) * k] for i in range(len(prompts))]

    def _answer(self, contexts: list[str], spec: GenSpec, thinking: bool) -> list[list[str]]:
        if self.think_ahead is not None and thinking and spec.answer_prefix and spec.catalogue:
            from recif_bench.models import think_ahead

            return think_ahead.answer(self, contexts, spec)
        return super()._answer(contexts, spec, thinking)

    def _generate_ids(self, model: Any, prompts: list[str], spec: GenSpec, tries: list[Any] | None = None):
        """The new token ids (``len(prompts) * K`` rows, prompt by prompt) of ``model``'s generation.

        ``tries`` (one :class:`~recif_bench.models.trie.SidTrie` per prompt) constrains every
        generated token to a path of the prompt's trie.
        """
        torch = self.torch
        input_ids, attention = self._encode(prompts, spec.sampling.max_new_tokens)
        settings = self._beam_settings(model, spec)
        if settings is not None:
            from recif_bench.models.beam import beam_search

            allowed = None if tries is None else (lambda prompt, prefix: tries[prompt].allowed(prefix))
            return beam_search(model, input_ids, attention, settings, allowed)
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
        if tries is not None:
            start = input_ids.shape[1]
            rows = k if kwargs.get("do_sample") else 1   # sampling numbers the expanded rows, beams the prompts
            kwargs["prefix_allowed_tokens_fn"] = \
                lambda row, ids: tries[row // rows].allowed(tuple(ids[start:].tolist()))
        if spec.sampling.do_sample or not spec.beam_search:
            torch.manual_seed(self.seed)
        with torch.no_grad():
            output = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        return output[:, input_ids.shape[1]:]

    def _beam_settings(self, model: Any, spec: GenSpec) -> BeamSettings | None:
        """The settings of ``spec``'s beam search, or None where ``generate`` must run it.

        ``generate`` runs sampling and greedy decoding, and beam search for a model whose generation
        config changes scores in ways only ``generate`` applies (:func:`~recif_bench.models.beam.unsupported_settings`).
        """
        from recif_bench.models.beam import BeamSettings, unsupported_settings

        if not spec.beam_search:
            return None
        unsupported = unsupported_settings(model.generation_config)
        if unsupported:
            if id(model) not in self._warned_generate:
                self._warned_generate.add(id(model))
                log.warning("beam search through model.generate (one prefill per beam): the model's generation "
                            "config sets %s", ", ".join(unsupported))
            return None
        eos = model.generation_config.eos_token_id
        eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else () if eos is None else (eos,)
        return BeamSettings(num_beams=spec.beam_width, num_return_sequences=spec.num_return_sequences,
                            max_new_tokens=spec.sampling.max_new_tokens, eos_token_ids=eos_ids,
                            pad_token_id=self.tokenizer.pad_token_id, length_penalty=1.0, early_stopping=True)

    def trie(self, catalogue: str):
        """The trie of the catalogue file ``catalogue`` (in the data root) in this tokenizer's ids."""
        from recif_bench.models.trie import build_trie

        return build_trie(self.tokenizer, self.data_dir / catalogue, self.fmt)

    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        return self._score_many([context], [continuations])[0]

    def _score_many(self, prefixes: list[str], continuations: list[list[str]]) -> list[list[tuple[float, bool]]]:
        """(log p(continuation | prefix), is_greedy) per continuation of each prefix.

        Prefixes whose continuations are all single tokens (label_pred's 是/否) are scored in
        length-sorted batches of ``batch_size``: one forward per batch, logits of the last position
        only.  The others take one forward per prefix (:meth:`_token_scores`).
        """
        contexts = [self.tokenizer(p, add_special_tokens=False)["input_ids"] or [self.prefix_token_id]
                    for p in prefixes]
        # a continuation is tokenized on its own, as the reference scores 是/否 at the first answer position
        pieces = [[self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in per] for per in continuations]
        results: list[list[tuple[float, bool]] | None] = [None] * len(prefixes)
        single = sorted((i for i, per in enumerate(pieces) if all(len(p) == 1 for p in per)),
                        key=lambda i: len(contexts[i]), reverse=True)
        for start in range(0, len(single), self.batch_size):
            rows = single[start:start + self.batch_size]
            for i, scores in zip(rows, self._next_token_scores([contexts[i] for i in rows], [pieces[i] for i in rows])):
                results[i] = scores
        for i, scores in enumerate(results):
            if scores is None:
                results[i] = self._token_scores(contexts[i], pieces[i])
        return results  # type: ignore[return-value]

    def _next_token_scores(self, contexts: list[list[int]],
                           pieces: list[list[list[int]]]) -> list[list[tuple[float, bool]]]:
        """Single-token pieces after each context (its last ``max_length`` tokens), in one forward."""
        logprobs = self._logprobs([c[-self.max_length:] for c in contexts], keep=1)[:, -1]
        out = []
        for row, per in zip(logprobs, pieces):
            best = int(row.argmax())
            out.append([(float(row[p[0]]), p[0] == best) for p in per])
        return out

    def _token_scores(self, context_ids: list[int], pieces: list[list[int]]) -> list[tuple[float, bool]]:
        """(log p(piece | context), is_greedy) per piece, in one batched forward.

        The model reads ``(context + piece)[:-1]`` (its last ``max_length`` tokens); single-token
        pieces share one input, the context alone.
        """
        torch = self.torch
        if all(len(p) == 1 for p in pieces):
            return self._next_token_scores([context_ids], [pieces])[0]
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
