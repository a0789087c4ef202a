"""``recif-openai``: OpenAI-compatible completions servers (``vllm serve``, ...) at the official settings.

Our prompts are fully rendered chat strings, so the plain completions endpoint is used.

* rec tasks: the server's beam search (vLLM's ``use_beam_search`` extension, width = ``n`` = 32,
  3 new tokens).  A server that refuses it, or answers with copies of one greedy completion,
  stops the run with one line saying why: ``n=32`` greedy samples are not 32 candidates.
* label_pred: the exact log-probs of 是 and 否 (vLLM's ``logprob_token_ids``, their ids read once
  from the server's ``/tokenize``), so the AUC equals the hf backend's on the same model; a server
  without these extensions gets the top ``top_logprobs`` (floored at 1e-10, as the reference).
* scale out: ``base_url`` may list several replicas (``url1;url2``), served round-robin with at
  most ``max_concurrency`` requests in flight in all.

``base_url`` defaults to ``$OPENAI_BASE_URL`` and the key comes only from ``$OPENAI_API_KEY``;
neither is logged or written into results.  Server errors show the server's own message.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from lm_eval.api.registry import register_model

from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec
from recif_bench.options import as_bool

FLOOR = math.log(1e-10)   # the reference's probability for a token outside the returned top logprobs


class ServerError(RuntimeError):
    """The server failed after the client's retries; the message names the server, not the key."""


@register_model("recif-openai")
class OpenAIRecLM(KCandidateLM):
    scoring_chunk = None   # label_pred prompts go out concurrently, all at once

    def __init__(self, model: str | None = None, pretrained: str | None = None, base_url: str | None = None,
                 batch_size: Any = 256, thinking: Any = False, beam_search: Any = True, max_retries: Any = 3,
                 timeout: Any = 120, top_logprobs: Any = 20, seed: Any = 0, max_concurrency: Any = 32,
                 **_ignored: Any) -> None:
        super().__init__(thinking=thinking, batch_size=batch_size)
        from openai import OpenAI

        self.model_name = model or pretrained
        if not self.model_name:
            raise ValueError("recif-openai needs model=<served model name>")
        urls = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.base_urls = [u.strip() for u in str(urls).split(";") if u.strip()]
        self.base_url = self.base_urls[0]
        key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.clients = [OpenAI(base_url=u, api_key=key, max_retries=int(max_retries), timeout=float(timeout))
                        for u in self.base_urls]
        self.beam_search = as_bool(beam_search, "beam_search")
        self.top_logprobs = int(top_logprobs)
        self.seed = int(seed)
        self.max_concurrency = max(1, int(max_concurrency))
        self._token_ids: dict[str, list[int]] = {}   # continuation -> the server's token ids
        self._server_tokenizes: bool | None = None     # None: not asked yet

    # ---- transport ----------------------------------------------------------------------------
    def _map(self, call: Callable[[Any, Any], Any], items: Sequence[Any]) -> list[Any]:
        """``call(client, item)`` for every item, replicas round-robin, ``max_concurrency`` at a time."""
        jobs = [(self.clients[i % len(self.clients)], item) for i, item in enumerate(items)]
        if self.max_concurrency == 1 or len(jobs) <= 1:
            return [call(client, item) for client, item in jobs]
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda job: call(*job), jobs))

    def _complete(self, client: Any, **kwargs: Any):
        import openai

        try:
            return client.completions.create(model=self.model_name, **kwargs)
        except openai.APIStatusError as exc:
            raise ServerError(f"{client.base_url}: HTTP {exc.status_code}: {_server_message(exc)}") from None
        except openai.APIError as exc:
            raise ServerError(f"{client.base_url}: request failed ({type(exc).__name__}: {exc.message})") from None

    # ---- generation ---------------------------------------------------------------------------
    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        s, k = spec.sampling, spec.num_return_sequences
        if spec.beam_search:
            return self._beams(prompts, spec)
        if k > 1 and not s.do_sample:
            raise ServerError(f"{self.base_url}: {k} greedy completions would be {k} copies of one; the task asks "
                              "for sampling or beam search")
        kwargs: dict[str, Any] = {"n": k, "max_tokens": s.max_new_tokens, "stop": list(spec.until) or None,
                                  "temperature": s.temperature if s.do_sample else 0.0, "top_p": s.top_p,
                                  "seed": self.seed}
        if s.top_k > 0 or s.repetition_penalty != 1.0:
            kwargs["extra_body"] = {"top_k": s.top_k, "repetition_penalty": s.repetition_penalty}
        return self._map(lambda client, prompt: _texts(self._complete(client, prompt=prompt, **kwargs)), prompts)

    def _beams(self, prompts: list[str], spec: GenSpec) -> list[list[str]]:
        """The server's beam search, width ``spec.beam_width``; refused or ignored -> one line, the run stops."""
        width, k = spec.beam_width, spec.num_return_sequences
        if not self.beam_search:
            raise ServerError(f"beam_search=false, but the task asks for beam search {width} -> {k} "
                              "(sampling n candidates at temperature 0 would give copies of one)")
        kwargs = {"n": width, "max_tokens": spec.sampling.max_new_tokens, "temperature": 0.0,
                  "stop": list(spec.until) or None,
                  "extra_body": {"use_beam_search": True, "add_special_tokens": False}}   # prompts are rendered

        def one(client: Any, prompt: str) -> list[str]:
            try:
                texts = _texts(self._complete(client, prompt=prompt, **kwargs))
            except ServerError as exc:
                raise ServerError(f"{exc}; the rec tasks need the server's beam search (use_beam_search, as "
                                  "`vllm serve` offers)") from None
            if width > 1 and len(set(texts)) == 1:
                raise ServerError(f"{client.base_url}: the server ignored use_beam_search ({len(texts)} identical "
                                  "completions); the rec tasks need its beam search (`vllm serve`)")
            return texts[:k]

        return self._map(one, prompts)

    # ---- scoring ------------------------------------------------------------------------------
    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        return self._score_many([context], [continuations])[0]

    def _score_many(self, prefixes: list[str], continuations: list[list[str]]) -> list[list[tuple[float, bool]]]:
        return self._map(lambda client, job: self._score(client, *job), list(zip(prefixes, continuations)))

    def _score(self, client: Any, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        ids = self._single_token_ids(continuations)
        if ids is not None:
            return self._exact_next_token(client, context, continuations, ids)
        response = self._complete(client, prompt=context, max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        top = (response.choices[0].logprobs.top_logprobs or [{}])[0] or {}
        if all(c in top for c in continuations) or all(len(c) == 1 for c in continuations):
            best = max(top, key=top.get) if top else None
            return [(float(top.get(c, FLOOR)), c == best) for c in continuations]
        return [self._echo_logprob(client, context, c) for c in continuations]

    def _exact_next_token(self, client: Any, context: str, continuations: list[str],
                          ids: list[int]) -> list[tuple[float, bool]]:
        """vLLM's ``logprob_token_ids``: the raw log-probs of exactly these tokens at the next position."""
        tokens = sorted(set(ids))
        response = self._complete(client, prompt=context, max_tokens=1, temperature=0.0, logprobs=len(tokens),
                                  extra_body={"logprob_token_ids": tokens, "return_tokens_as_token_ids": True,
                                              "add_special_tokens": False})
        lp = response.choices[0].logprobs
        step = {_token_id(key): value for key, value in (lp.top_logprobs or [{}])[0].items()}
        sampled = _token_id(lp.tokens[0])
        return [(float(step[t]), t == sampled) for t in ids]

    def _single_token_ids(self, continuations: list[str]) -> list[int] | None:
        """The token id of each continuation if all are single tokens and the server tokenizes
        (vLLM's ``/tokenize``); None otherwise (then the top log-probs are read)."""
        for c in continuations:
            if self._server_tokenizes is False:
                return None
            if c not in self._token_ids:
                ids = self._tokenize(c)
                self._server_tokenizes = ids is not None
                if ids is None:
                    return None
                self._token_ids[c] = ids
        pieces = [self._token_ids[c] for c in continuations]
        return [p[0] for p in pieces] if all(len(p) == 1 for p in pieces) else None

    def _tokenize(self, text: str) -> list[int] | None:
        import json
        import urllib.error
        import urllib.request

        root = self.base_url.rstrip("/").removesuffix("/v1")
        request = urllib.request.Request(
            f"{root}/tokenize", method="POST",
            data=json.dumps({"model": self.model_name, "prompt": text, "add_special_tokens": False}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.clients[0].api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read()).get("tokens")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _echo_logprob(self, client: Any, context: str, continuation: str) -> tuple[float, bool]:
        """Multi-token continuation: the server scores the prompt itself (``echo``, no new tokens)."""
        response = self._complete(client, prompt=context + continuation, max_tokens=0, echo=True, logprobs=1)
        lp = response.choices[0].logprobs
        total, greedy = 0.0, True
        for offset, token, value, top in zip(lp.text_offset, lp.tokens, lp.token_logprobs, lp.top_logprobs or []):
            if offset >= len(context) and value is not None:
                total += value
                greedy &= bool(top) and max(top, key=top.get) == token
        return total, greedy


def _texts(response: Any) -> list[str]:
    return [c.text or "" for c in sorted(response.choices, key=lambda c: c.index)]


def _token_id(key: str) -> int:
    """``token_id:123`` (vLLM's ``return_tokens_as_token_ids``) -> 123."""
    return int(str(key).rsplit(":", 1)[1])


def _server_message(exc: Any) -> str:
    """The server's own error text (``{"error": {"message": ...}}`` or ``{"message": ...}``), one line."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    else:
        message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message or "no message").split())[:500]
