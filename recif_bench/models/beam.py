"""Beam search at the forward-pass limit: one prefill per prompt, then K beams on its KV cache.

Why not ``model.generate(num_beams=K)``: it copies every prompt K times *before* the prefill, so a
rec prompt (often 1-3k tokens of history) is prefilled K = 32 times for an answer of 3 tokens.
Here each prompt is prefilled once (the batch left-padded), its cache is repeated to K beams with
the cache's own ``batch_repeat_interleave``, and every decode step is one forward of the
``batch x K`` last tokens, the beams reordered with the cache's ``reorder_cache``.

The search itself is transformers' beam search, step for step, so the candidates and their order
are those of ``generate(num_beams=K, num_return_sequences=R, max_new_tokens=N, length_penalty,
early_stopping)`` (ties aside): beams 1..K-1 start at -1e9 so the first step expands beam 0 only;
each step keeps the top ``max(2, 1 + #eos) * K`` continuations; a continuation that ends in an EOS
token or reaches N tokens becomes a finished hypothesis scored ``sum log p / length ** length_penalty``
(only among the top K of the step, only while the prompt can still improve); the K best unfinished
ones run on.  With K = 1 this is greedy decoding, as ``generate`` does then (early stopping is
implied: one finished hypothesis fills the beam).  ``allowed`` constrains
each beam's next token the way ``prefix_allowed_tokens_fn`` does (log-softmax first, then -inf
outside the allowed ids: scores are not renormalised).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

IMPOSSIBLE = -1.0e9   # transformers' score for a beam that must not be chosen (finite, so sums stay ordered)

# (prompt index, ids generated so far) -> ids that may come next
AllowedTokens = Callable[[int, tuple[int, ...]], Sequence[int]]


@dataclass(frozen=True)
class BeamSettings:
    num_beams: int
    num_return_sequences: int
    max_new_tokens: int
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    length_penalty: float = 1.0
    early_stopping: bool | str = True   # True | False | "never", as transformers

    @property
    def fill_token_id(self) -> int:
        """What pads a hypothesis after its end: the pad token, else the first EOS (generate's choice)."""
        return self.pad_token_id or (self.eos_token_ids[0] if self.eos_token_ids else 0)


def unsupported_settings(generation_config: Any) -> list[str]:
    """The settings of a model's ``generation_config`` that would make ``generate`` score or stop otherwise.

    ``generate`` turns them into logits processors or stopping criteria this search does not apply;
    a model that sets one keeps ``generate`` (its callers fall back), so the answers never differ.
    """
    def get(name: str) -> Any:
        return getattr(generation_config, name, None)

    changed = [name for name in ("sequence_bias", "bad_words_ids", "forced_bos_token_id", "forced_eos_token_id",
                                 "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
                                 "watermarking_config", "stop_strings", "max_time") if get(name) is not None]
    changed += [name for name in ("repetition_penalty", "encoder_repetition_penalty", "guidance_scale")
                if get(name) not in (None, 1.0)]
    changed += [name for name in ("no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "min_length",
                                  "min_new_tokens") if (get(name) or 0) > 0]
    changed += [name for name in ("remove_invalid_values", "renormalize_logits") if get(name) is True]
    return changed


def beam_search(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, settings: BeamSettings,
                allowed: AllowedTokens | None = None) -> torch.Tensor:
    """The new token ids, ``batch * num_return_sequences`` rows (prompt by prompt, best first).

    ``input_ids`` / ``attention_mask``: the prompts, left-padded.  Rows are cut to the longest
    returned hypothesis; a shorter one (it ended with an EOS) is filled with ``settings.fill_token_id``.
    """
    batch, _ = input_ids.shape
    k, steps, device = settings.num_beams, settings.max_new_tokens, input_ids.device
    if settings.num_return_sequences > k:
        raise ValueError(f"num_return_sequences={settings.num_return_sequences} > num_beams={k}")
    if k == 1:   # generate decodes greedily: the first hypothesis that ends is the answer
        settings = replace(settings, early_stopping=True)
    eos = torch.tensor(settings.eos_token_ids, dtype=torch.long, device=device)
    keep = max(2, 1 + len(settings.eos_token_ids)) * k
    in_top_k = torch.arange(keep, device=device) < k
    rows = torch.arange(batch, device=device)[:, None]

    forward = _Forward(model, input_ids, attention_mask)
    logprobs = forward.prefill(k)                           # (batch * k, vocab)
    vocab = logprobs.shape[-1]

    running_scores = torch.full((batch, k), IMPOSSIBLE, device=device)
    running_scores[:, 0] = 0.0
    running = torch.full((batch, k, steps), settings.fill_token_id, dtype=torch.long, device=device)
    done = running.clone()
    done_scores = torch.full((batch, k), IMPOSSIBLE, device=device)
    done_lengths = torch.zeros((batch, k), dtype=torch.long, device=device)
    is_done = torch.zeros((batch, k), dtype=torch.bool, device=device)
    may_improve = torch.ones((batch, 1), dtype=torch.bool, device=device)
    for step in range(steps):
        if step:
            logprobs = forward.decode(running[:, :, step - 1].reshape(-1), beam_rows)
        if allowed is not None:
            logprobs = _constrain(logprobs, running[:, :, :step], allowed)
        scores = (logprobs.view(batch, k, vocab) + running_scores[:, :, None]).view(batch, k * vocab)
        top_scores, top = torch.topk(scores, keep)
        source, token = top // vocab, top % vocab
        candidates = running[rows, source]
        candidates[:, :, step] = token
        ends = torch.isin(token, eos) | (step + 1 >= steps)

        # the K best continuations that did not end run on
        live_scores = top_scores + ends.to(torch.float32) * IMPOSSIBLE
        chosen = torch.topk(live_scores, k)[1]
        running, running_scores = candidates[rows, chosen], live_scores[rows, chosen]
        beam_rows = (source[rows, chosen] + rows * k).reshape(-1)   # the cache row each running beam continues

        # the ones that ended (among the top K) join the finished hypotheses if they beat them
        ended = ends & in_top_k[None, :]
        new_scores = top_scores / ((step + 1) ** settings.length_penalty)
        full = is_done.all(-1, keepdim=True) & (settings.early_stopping is True)
        new_scores = new_scores + full.to(torch.float32) * IMPOSSIBLE
        new_scores = new_scores + (~may_improve).to(torch.float32) * IMPOSSIBLE
        new_scores = new_scores + (~ended) * IMPOSSIBLE
        merged_scores = torch.cat((done_scores, new_scores), 1)
        best = torch.topk(merged_scores, k)[1]
        done = torch.cat((done, candidates), 1)[rows, best]
        done_scores = merged_scores[rows, best]
        done_lengths = torch.cat((done_lengths, torch.full_like(ends, step + 1, dtype=torch.long)), 1)[rows, best]
        is_done = torch.cat((is_done, ended), 1)[rows, best]

        may_improve = may_improve & _may_improve(running_scores, done_scores, is_done, step + 1, settings)
        if not (may_improve.any() and not (is_done.all() and settings.early_stopping is True) and not ends.all()):
            break
    returned = settings.num_return_sequences
    length = int(done_lengths[:, :returned].max())
    return done[:, :returned, :length].reshape(batch * returned, length)


def _may_improve(running_scores: torch.Tensor, done_scores: torch.Tensor, is_done: torch.Tensor, generated: int,
                 settings: BeamSettings) -> torch.Tensor:
    """Per prompt: could the best running beam still beat the worst finished hypothesis? (transformers' heuristic)"""
    length = settings.max_new_tokens if settings.early_stopping == "never" and settings.length_penalty > 0 \
        else generated
    best_possible = running_scores[:, :1] / (length ** settings.length_penalty)
    worst_done = torch.where(is_done, done_scores.min(1, keepdim=True)[0], IMPOSSIBLE)
    return (best_possible > worst_done).any(-1, keepdim=True)


def _constrain(logprobs: torch.Tensor, generated: torch.Tensor, allowed: AllowedTokens) -> torch.Tensor:
    """-inf outside each beam's allowed ids; beams on one (prompt, prefix) are masked together."""
    batch, k, _ = generated.shape
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for row, prefix in enumerate(map(tuple, generated.reshape(batch * k, -1).tolist())):
        groups.setdefault((row // k, prefix), []).append(row)
    mask = torch.full_like(logprobs, -torch.inf)
    for (prompt, prefix), beam_rows in groups.items():
        ids = list(allowed(prompt, prefix))
        if not ids:
            raise ValueError(f"constrained decoding: no token may follow {prefix} for prompt {prompt}")
        mask[torch.tensor(beam_rows, device=mask.device)[:, None], torch.tensor(ids, device=mask.device)[None, :]] = 0
    constrained = logprobs + mask
    # a prompt whose every allowed token has probability 0 still follows the constraint (as transformers does)
    hopeless = constrained.amax(-1).isneginf().view(batch, k).all(-1).repeat_interleave(k)
    return torch.where(hopeless[:, None], mask, constrained)


def cache_keyword(model: Any) -> str:
    """The name under which ``model``'s forward takes and returns its KV cache (transformers 5 / 4)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _Forward:
    """The model's forward on a growing cache: positions and padding mask kept as ``generate`` keeps them."""

    def __init__(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        self.model, self.input_ids = model, input_ids
        self.cache_arg = cache_keyword(model)
        self.keep_arg = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        self.positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        self.mask = None if bool((attention_mask == 1).all()) else attention_mask   # no padding: causal only
        self.cache = None

    def _logprobs(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        kwargs = {self.cache_arg: self.cache} if self.cache is not None else {}
        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=self.mask, position_ids=positions, use_cache=True,
                             **kwargs, **self.keep_arg)
        self.cache = getattr(out, self.cache_arg)
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    def prefill(self, beams: int) -> torch.Tensor:
        """Log-probs of the first new token, one row per beam; the cache repeated to ``beams`` per prompt."""
        logprobs = self._logprobs(self.input_ids, self.positions)
        self.cache.batch_repeat_interleave(beams)
        self.positions = self.positions[:, -1:].repeat_interleave(beams, 0)
        if self.mask is not None:
            self.mask = self.mask.repeat_interleave(beams, 0)
        return logprobs.repeat_interleave(beams, 0)

    def decode(self, tokens: torch.Tensor, beam_rows: torch.Tensor) -> torch.Tensor:
        """Log-probs after ``tokens``, the beam in row i continuing the cache of row ``beam_rows[i]``."""
        self._reorder(beam_rows)
        self.positions = self.positions + 1
        if self.mask is not None:
            self.mask = torch.cat((self.mask, self.mask.new_ones((self.mask.shape[0], 1))), 1)
        return self._logprobs(tokens[:, None], self.positions)

    def _reorder(self, beam_rows: torch.Tensor) -> None:
        """Beams move within their prompt, whose keys and values are the same in all its beams: in plain
        dynamic layers only the generated positions are gathered (``reorder_cache`` copies the whole cache)."""
        try:
            from transformers.cache_utils import DynamicLayer
        except ImportError:
            DynamicLayer = None
        layers = getattr(self.cache, "layers", None)
        if DynamicLayer is None or not layers or any(type(layer) is not DynamicLayer for layer in layers):
            self.cache.reorder_cache(beam_rows)
            return
        start = self.input_ids.shape[1]
        for layer in layers:
            for states in (layer.keys, layer.values):
                states[:, :, start:] = states[beam_rows, :, start:]
