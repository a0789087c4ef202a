"""Run judge calls: concurrently, rate-limited, cached, retried, re-asked, and counted.

``JudgeRunner.ask_many(prompts, parse)`` returns one ``Outcome`` per prompt, in order.  Per prompt:
cache hit -> done (no call); else call with the retry policy of the reference (retryable errors:
timeouts, 429, 5xx, connection; sleep ``retry_delay * 2**(i-1)`` + up to 30% jitter before attempt
i), then ``parse`` the answer; a malformed answer is asked again up to ``max_reasks`` times.
Only answers that parse are cached, so a failure is retried by the next run instead of frozen.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from recif_bench.judges.cache import JudgeCache
from recif_bench.judges.clients import JudgeClient, describe_error, is_retryable

log = logging.getLogger(__name__)


class MalformedAnswer(ValueError):
    """A judge answer that does not fit the expected format.

    ``salvage`` is what the reference would still make of it (e.g. an out-of-range score read as 3),
    used by the paper-compatible score only.
    """

    def __init__(self, message: str, salvage: Any = None):
        super().__init__(message)
        self.salvage = salvage


@dataclass
class Outcome:
    value: Any = None           # the parsed answer; None when the prompt failed
    error: str | None = None    # why it failed (transport error or last malformed answer)
    salvage: Any = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class CallStats:
    calls: int = 0          # requests sent (every attempt counts)
    cached: int = 0         # prompts answered from the cache
    retries: int = 0        # attempts after a retryable error
    reasks: int = 0         # prompts asked again after a malformed answer
    failed_calls: int = 0   # prompts that ended without a usable answer
    tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class RateLimiter:
    """At most ``rpm`` call starts per minute, spread evenly (no bursts)."""

    def __init__(self, rpm: float | None):
        self._interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        time.sleep(max(0.0, start - now))


class JudgeRunner:
    def __init__(self, client: JudgeClient, cache: JudgeCache | None, *, workers: int = 8, rpm: float | None = None,
                 max_attempts: int = 3, retry_delay: float = 2.0, max_reasks: int = 2, progress: bool = True,
                 sleep: Callable[[float], None] = time.sleep):
        self.client, self.cache = client, cache
        self.workers, self.max_attempts, self.retry_delay, self.max_reasks = workers, max_attempts, retry_delay, max_reasks
        self.progress = progress
        self.stats = CallStats()
        self._limiter = RateLimiter(rpm)
        self._lock = threading.Lock()
        self._sleep = sleep

    def ask_many(self, prompts: Sequence[str], parse: Callable[[str], Any], desc: str = "judge") -> list[Outcome]:
        """One outcome per prompt, in order; identical prompts are asked once."""
        unique = list(dict.fromkeys(prompts))
        done: dict[str, Outcome] = {}
        if unique:
            from tqdm.auto import tqdm

            with ThreadPoolExecutor(max_workers=min(self.workers, len(unique))) as pool, \
                    tqdm(total=len(unique), desc=desc, file=sys.stderr, disable=not self.progress,
                         dynamic_ncols=True) as bar:
                futures = {pool.submit(self.ask, prompt, parse): prompt for prompt in unique}
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    bar.update()
        return [done[prompt] for prompt in prompts]

    def ask(self, prompt: str, parse: Callable[[str], Any]) -> Outcome:
        key = self.cache.key(self.client.identity, prompt) if self.cache else ""
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            try:
                value = parse(cached)
                self._count(cached=1)
                return Outcome(value, cached=True)
            except MalformedAnswer:
                pass   # parsing rules changed since it was stored: ask again
        last: MalformedAnswer | None = None
        for asked in range(self.max_reasks + 1):
            if asked:
                self._count(reasks=1)
            try:
                text = self._call(prompt)
            except Exception as exc:   # noqa: BLE001 — any client error ends this prompt, never the run
                self._count(failed_calls=1)
                return Outcome(error=describe_error(exc))
            try:
                value = parse(text)
            except MalformedAnswer as exc:
                last = exc
                continue
            if self.cache:
                self.cache.put(key, self.client.identity, text)
            return Outcome(value)
        self._count(failed_calls=1)
        return Outcome(error=f"malformed answer ({self.max_reasks + 1} tries): {last}", salvage=last.salvage)

    def _call(self, prompt: str) -> str:
        attempt = 0
        while True:
            self._limiter.wait()
            self._count(calls=1)
            try:
                reply = self.client.complete(prompt)
            except Exception as exc:   # noqa: BLE001 — classified here
                attempt += 1
                if attempt >= self.max_attempts or not is_retryable(exc):
                    raise
                log.info("judge call failed (%s); retrying", describe_error(exc))
                delay = self.retry_delay * 2 ** (attempt - 1)
                self._sleep(delay + random.uniform(0, 0.3 * delay))
                self._count(retries=1)
                continue
            self._count(tokens=reply.tokens)
            return reply.text

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
