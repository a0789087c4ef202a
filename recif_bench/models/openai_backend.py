"""``recif-openai``: any OpenAI-compatible completions server (``vllm serve``, OpenAI, ...).

Our prompts are fully rendered chat strings, so the plain completions endpoint is used: K
candidates through ``n`` (or the server's beam search, ``beam_search=true``, for ``vllm serve``),
label_pred through the returned top logprobs.  ``base_url`` defaults to ``$OPENAI_BASE_URL`` and
the key comes only from ``$OPENAI_API_KEY``; neither is logged or written into results.
"""

from __future__ import annotations

import math
import os
from typing import Any

from lm_eval.api.registry import register_model

from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec
from recif_bench.options import as_bool

FLOOR = math.log(1e-10)


class ServerError(RuntimeError):
    """The server failed after the client's retries; the message names the server, not the key."""


@register_model("recif-openai")
class OpenAIRecLM(KCandidateLM):
    def __init__(self, model: str | None = None, pretrained: str | None = None, base_url: str | None = None,
                 batch_size: Any = 1, thinking: Any = False, beam_search: Any = False, max_retries: Any = 3,
                 timeout: Any = 120, top_logprobs: Any = 20, seed: Any = 0, **_ignored: Any) -> None:
        super().__init__(thinking=thinking, batch_size=1)
        from openai import OpenAI

        self.model_name = model or pretrained
        if not self.model_name:
            raise ValueError("recif-openai needs model=<served model name>")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.client = OpenAI(base_url=self.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             max_retries=int(max_retries), timeout=float(timeout))
        self.beam_search = as_bool(beam_search, "beam_search")
        self.top_logprobs = int(top_logprobs)
        self.seed = int(seed)

    def _complete(self, **kwargs: Any):
        import openai

        try:
            return self.client.completions.create(model=self.model_name, **kwargs)
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            raise ServerError(f"{self.base_url}: request failed ({type(exc).__name__}"
                              f"{f', HTTP {status}' if status else ''})") from None

    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        s, k = spec.sampling, spec.num_return_sequences
        kwargs: dict[str, Any] = {"n": k, "max_tokens": s.max_new_tokens, "stop": list(spec.until) or None}
        if spec.beam_search and self.beam_search:
            kwargs["extra_body"] = {"use_beam_search": True, "best_of": spec.beam_width}
            kwargs["temperature"] = 0.0
        else:
            kwargs.update(temperature=s.temperature if s.do_sample else 0.0, top_p=s.top_p, seed=self.seed)
            if s.top_k > 0 or s.repetition_penalty != 1.0:
                kwargs["extra_body"] = {"top_k": s.top_k, "repetition_penalty": s.repetition_penalty}
        out = []
        for prompt in prompts:
            response = self._complete(prompt=prompt, **kwargs)
            choices = sorted(response.choices, key=lambda c: c.index)
            out.append([c.text or "" for c in choices])
        return out

    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        response = self._complete(prompt=context, max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        top = (response.choices[0].logprobs.top_logprobs or [{}])[0] or {}
        if all(c in top for c in continuations) or all(len(c) == 1 for c in continuations):
            best = max(top, key=top.get) if top else None
            return [(float(top.get(c, FLOOR)), c == best) for c in continuations]
        return [self._echo_logprob(context, c) for c in continuations]

    def _echo_logprob(self, context: str, continuation: str) -> tuple[float, bool]:
        """Multi-token continuation: the server scores the prompt itself (``echo``, no new tokens)."""
        response = self._complete(prompt=context + continuation, max_tokens=0, echo=True, logprobs=1)
        lp = response.choices[0].logprobs
        total, greedy = 0.0, True
        for offset, token, value, top in zip(lp.text_offset, lp.tokens, lp.token_logprobs, lp.top_logprobs or []):
            if offset >= len(context) and value is not None:
                total += value
                greedy &= bool(top) and max(top, key=top.get) == token
        return total, greedy
