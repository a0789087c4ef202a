"""Judge clients behind one small interface: ``complete(prompt) -> Reply``.

Each call is one user message holding the whole prompt, no system prompt (as the reference
sends it).  Clients never retry on their own (the runner owns the retry policy) and never read
credentials from anywhere but the settings, the environment, or the libraries' own env vars.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from recif_bench.judges.settings import JudgeConfigError, JudgeConfig


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int = 0


class JudgeClient(Protocol):
    identity: str   # what the cache keys on: kind, model and sampling temperature

    def complete(self, prompt: str) -> Reply: ...


def identity(settings: JudgeConfig) -> str:
    return f"{settings.kind}:{settings.model}@T={settings.temperature:g}"


class OpenAIChatClient:
    """Any OpenAI-compatible chat endpoint: ``vllm serve``, OpenAI, DeepSeek, ...

    The key comes from the settings or ``OPENAI_API_KEY``; a local server without auth gets a
    placeholder.  The base URL comes from the spec or ``OPENAI_BASE_URL``.
    """

    def __init__(self, settings: JudgeConfig):
        import os

        from openai import OpenAI

        self.identity = identity(settings)
        self._settings = settings
        key = settings.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = OpenAI(base_url=settings.base_url, api_key=key, max_retries=0, timeout=settings.timeout)

    def complete(self, prompt: str) -> Reply:
        response = self._client.chat.completions.create(
            model=self._settings.model, messages=[{"role": "user", "content": prompt}],
            temperature=self._settings.temperature, max_tokens=self._settings.max_tokens)
        text = response.choices[0].message.content if response.choices else ""
        tokens = response.usage.total_tokens if response.usage else 0
        return Reply(text or "", int(tokens or 0))


class GeminiClient:
    """Gemini through ``google-genai``: API key (``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``) or Vertex AI
    (``GOOGLE_GENAI_USE_VERTEXAI=true`` + ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION``),
    both read by the library itself.  ``GOOGLE_GEMINI_BASE_URL`` or the settings move the endpoint.
    """

    def __init__(self, settings: JudgeConfig):
        from google import genai
        from google.genai import types

        self.identity = identity(settings)
        self._settings = settings
        options = types.HttpOptions(base_url=settings.base_url, timeout=int(settings.timeout * 1000))
        try:
            self._client = genai.Client(api_key=settings.api_key, http_options=options)
        except ValueError as exc:
            raise JudgeConfigError(
                "gemini judge: no credentials; set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
                f"GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION ({exc})") from None
        self._config = types.GenerateContentConfig(temperature=settings.temperature,
                                                   max_output_tokens=settings.max_tokens)

    def complete(self, prompt: str) -> Reply:
        response = self._client.models.generate_content(model=self._settings.model, contents=prompt,
                                                        config=self._config)
        usage = response.usage_metadata
        return Reply(response.text or "", int((usage.total_token_count if usage else 0) or 0))


class LocalClient:
    """A local transformers chat model as judge (greedy decoding).  Its scores are not comparable
    with the paper's, and results say so.  One generation at a time: the model is not thread-safe.
    """

    def __init__(self, settings: JudgeConfig):
        from pathlib import Path

        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(settings.model).is_dir():
            raise JudgeConfigError(f"local judge: {settings.model} is not a model folder")
        self.identity = identity(settings)
        self._max_new_tokens = settings.max_tokens
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=False)
            self._model = AutoModelForCausalLM.from_pretrained(settings.model, trust_remote_code=False).eval()
        except (OSError, ValueError) as exc:
            raise JudgeConfigError(f"local judge: cannot load {settings.model} ({type(exc).__name__}: {exc})") from None
        self._lock = threading.Lock()

    def complete(self, prompt: str) -> Reply:
        import torch

        ids = self._tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                  return_tensors="pt", return_dict=True)
        with self._lock, torch.no_grad():
            out = self._model.generate(**ids, max_new_tokens=self._max_new_tokens, do_sample=False,
                                       pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        return Reply(self._tokenizer.decode(new, skip_special_tokens=True), int(out.shape[1]))


CLIENTS = {"openai": OpenAIChatClient, "gemini": GeminiClient, "local": LocalClient}


def build_client(settings: JudgeConfig) -> JudgeClient:
    return CLIENTS[settings.kind](settings)


_RETRYABLE_WORDS = ("503", "429", "500", "timeout", "timed out", "deadline", "unavailable", "failed to connect",
                    "connection", "rate limit", "overload")
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


def is_retryable(exc: BaseException) -> bool:
    """The reference's rule (spec §6: the words in the message) plus HTTP status and timeout types."""
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if isinstance(status, int) and status in _RETRYABLE_STATUS:
        return True
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in _RETRYABLE_WORDS)


def describe_error(exc: BaseException) -> str:
    """One short line for logs and per-sample records (library messages carry no credentials)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message[:200]}"
