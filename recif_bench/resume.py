"""Resume an interrupted evaluation: every finished request is stored as soon as it is done.

lm-eval's ``CachingLM`` almost does this, but refuses to cache sampled requests (the text tasks
sample at T=0.01), so a killed run would redo them.  For resuming, a finished request is finished
whatever its decoding, so this wrapper stores all of them, keyed by lm-eval's own request hash.
Backends call ``cache_hook.add_partial`` as each request (or batch) completes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM, CacheHook, hash_args

log = logging.getLogger(__name__)


class _Hook(CacheHook):
    def __init__(self, store: Any) -> None:
        self.dbdict = store


class ResumableLM(LM):
    """Wraps any lm-eval ``LM``; answers finished requests from ``<path>`` and runs only the rest."""

    def __init__(self, lm: LM, path: str | Path) -> None:
        from sqlitedict import SqliteDict

        super().__init__()
        self.lm = lm
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteDict(str(self.path), autocommit=True)
        lm.set_cache_hook(_Hook(self.store))
        self.reused = 0
        self.computed = 0

    def __getattr__(self, name: str) -> Any:
        if name == "lm":   # not yet set: avoid recursion during construction
            raise AttributeError(name)
        return getattr(self.lm, name)

    @property
    def rank(self) -> int:
        return self.lm.rank

    @property
    def world_size(self) -> int:
        return self.lm.world_size

    def _run(self, attr: str, requests: list) -> list:
        results: list[Any] = [None] * len(requests)
        todo = []
        for i, request in enumerate(requests):
            key = hash_args(attr, request.args)
            if key in self.store:
                results[i] = self.store[key]
            else:
                todo.append(i)
        self.reused += len(requests) - len(todo)
        self.computed += len(todo)
        if len(todo) < len(requests):
            log.info("resume: %d of %d %s requests already done", len(requests) - len(todo), len(requests), attr)
        if todo:
            fresh = getattr(self.lm, attr)([requests[i] for i in todo])
            for i, value in zip(todo, fresh, strict=True):
                results[i] = value
                self.store[hash_args(attr, requests[i].args)] = value
        return results

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._run("generate_until", requests)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._run("loglikelihood", requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._run("loglikelihood_rolling", requests)

    def close(self) -> None:
        self.store.close()
