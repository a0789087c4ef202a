"""What every LLM backend shares: request grouping, the thinking two-stage flow, stop strings.

A backend implements three primitives on already-rendered prompt strings —
``_generate(prompts, spec)`` (K texts per prompt: beam search or sampling),
``_next_token_logprobs`` / ``_continuation_logprob`` (scoring) — and this class turns lm-eval
requests into calls of them, exactly as the reference harness sequences its stages (spec §2.2):

* non-thinking: generate from ``prompt + answer_prefix``;
* thinking: sample ``n`` thoughts until ``</think>`` (force-closed when unfinished), then run the
  answer stage from ``prompt + thought + "</think>\\n" + answer_prefix`` for every thought; the
  candidates are ``thought + "</think>\\n" + answer_prefix + answer``, thought by thought.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from dataclasses import replace
from typing import Any, Sequence

from lm_eval.api.model import LM
from tqdm import tqdm

from recif_bench.models.genspec import GenSpec, SamplingSpec
from recif_bench.options import as_bool
from recif_bench.sid import THINK_END, THOUGHT_CLOSE

log = logging.getLogger(__name__)

EMPTY_THINK = "</think>\n\n"
# label_pred's thinking stage in the reference: T=1, top_p 1, no top_k, at most 1000 tokens
LABEL_THOUGHT = SamplingSpec(do_sample=True, temperature=1.0, top_p=1.0, top_k=-1, max_new_tokens=1000)


def follows_recif_contract(request: Any) -> bool:
    """Whether a request gets our contract (K candidates as a list, the thinking stage).

    Requests of our tasks (RecIF-Bench, Amazon transfer), of any task that asks for
    ``num_return_sequences``, and direct calls without a task do.  Requests of lm-eval's stock
    tasks (``recif-eval --general mmlu_pro,gsm8k``) get lm-eval's own: one string per
    ``generate_until``, plain-text prompts scored without a thought.
    """
    task = getattr(request, "task_name", None)
    if task is None:
        return True
    from recif_bench.benchmark import task_info

    try:
        task_info(task)
        return True
    except KeyError:
        return isinstance(request.args[1], dict) and "num_return_sequences" in request.args[1]


def apply_stops(text: str, stops: Sequence[str]) -> str:
    """Cut at the earliest stop string (the stop itself is not kept)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


class KCandidateLM(LM):
    """An lm-eval ``LM`` that answers ``generate_until`` with a list of K candidates per request."""

    def __init__(self, thinking: Any = False, batch_size: Any = 8) -> None:
        super().__init__()
        self.thinking = as_bool(thinking, "thinking")
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8

    # ---- backend primitives ------------------------------------------------------------------
    @abstractmethod
    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        """K decoded continuations per prompt (best first for beam search)."""

    @abstractmethod
    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), is_greedy) for each continuation, one pass when possible."""

    # ---- lm-eval API --------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[list[str] | str]:
        results: list[list[str] | str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            key = json.dumps([getattr(request, "task_name", None), request.args[1]], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
        bar = tqdm(total=len(requests), desc=f"{type(self).__name__}: generate", disable=disable_tqdm)
        for indices in groups.values():
            # longest prompts first, so a batch pads its prompts to similar lengths (results keep request order)
            indices.sort(key=lambda i: len(requests[i].args[0]), reverse=True)
            spec = GenSpec.for_request(requests[indices[0]])
            ours = follows_recif_contract(requests[indices[0]])   # one task per group
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                contexts = [requests[i].args[0] for i in batch]
                for i, candidates in zip(batch, self._answer(contexts, spec, self.thinking and ours)):
                    results[i] = candidates if ours else candidates[0]
                    self.cache_hook.add_partial("generate_until", requests[i].args, results[i])
                bar.update(len(batch))
        bar.close()
        return results  # type: ignore[return-value]

    def _answer(self, contexts: list[str], spec: GenSpec, thinking: bool) -> list[list[str]]:
        if not thinking:
            texts = self._generate([c + spec.answer_prefix for c in contexts], spec, spec.catalogue)
            return [[apply_stops(t, spec.until) for t in cands] for cands in texts]
        self._check_thinking_prompts(contexts)
        thoughts = self._thoughts(contexts, replace(spec.thinking, n=max(1, spec.thinking.n)))
        bridges = [[t + THOUGHT_CLOSE + spec.answer_prefix for t in per] for per in thoughts]
        flat = [c + b for c, per in zip(contexts, bridges) for b in per]
        per_thought = replace(spec, num_return_sequences=max(1, spec.num_return_sequences // len(bridges[0])),
                              num_beams=spec.num_beams and max(1, spec.num_beams // len(bridges[0])))
        answers = iter(self._generate(flat, per_thought, spec.catalogue))
        return [[b + apply_stops(a, spec.until) for b in per for a in next(answers)] for per in bridges]

    def _thoughts(self, contexts: list[str], sampling: SamplingSpec) -> list[list[str]]:
        spec = GenSpec(until=(THINK_END,), num_return_sequences=sampling.n, sampling=sampling)
        texts = [t for start in range(0, len(contexts), self.batch_size)
                 for t in self._generate(contexts[start:start + self.batch_size], spec, None)]
        return [[apply_stops(t, (THINK_END,)) for t in cands] for cands in texts]

    def _check_thinking_prompts(self, contexts: list[str]) -> None:
        if any(c.endswith(EMPTY_THINK) for c in contexts):
            raise ValueError("the model runs with thinking=True but the prompts end with an empty think block: "
                             "they were rendered without thinking (pass thinking=true in the task metadata too; "
                             "lm-eval copies model_args into it)")

    # contexts scored per ``_score_many`` call (and per resume record); None = all in one call
    scoring_chunk: int | None = 1

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        by_context: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_context.setdefault(request.args[0], []).append(i)
        thinking = {c: self.thinking and follows_recif_contract(requests[i[0]]) for c, i in by_context.items()}
        self._check_thinking_prompts([c for c, on in thinking.items() if on])
        # longest first, so the backends that batch prompts pad them to similar lengths
        contexts = sorted(by_context, key=len, reverse=True)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        chunk = self.scoring_chunk or max(1, len(contexts))
        bar = tqdm(total=len(requests), desc=f"{type(self).__name__}: score", disable=disable_tqdm)
        for start in range(0, len(contexts), chunk):
            part = contexts[start:start + chunk]
            thinkers = [c for c in part if thinking[c]]
            thoughts = dict(zip(thinkers, self._thoughts(thinkers, LABEL_THOUGHT))) if thinkers else {}
            prefixes = [c + thoughts[c][0] + THOUGHT_CLOSE if c in thoughts else c for c in part]
            scores = self._score_many(prefixes, [[requests[i].args[1] for i in by_context[c]] for c in part])
            for context, per_context in zip(part, scores):
                for i, score in zip(by_context[context], per_context):
                    results[i] = score
                    self.cache_hook.add_partial("loglikelihood", requests[i].args, score)
                bar.update(len(by_context[context]))
        bar.close()
        return results  # type: ignore[return-value]

    def _score_many(self, prefixes: list[str], continuations: list[list[str]]) -> list[list[tuple[float, bool]]]:
        """:meth:`_continuation_logprobs` of every prefix; backends that batch across prompts override it."""
        return [self._continuation_logprobs(p, c) for p, c in zip(prefixes, continuations)]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(f"{type(self).__name__} does not score rolling loglikelihoods "
                                  "(perplexity tasks); use the hf backend")
