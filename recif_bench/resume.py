"""Resume an interrupted evaluation: every finished request is stored as soon as it is done.

lm-eval's ``CachingLM`` almost does this, but refuses to cache sampled requests (the text tasks
sample at T=0.01), so a killed run would redo them.  For resuming, a finished request is finished
whatever its decoding, so this wrapper stores all of them, keyed by lm-eval's own request hash.
Backends call ``cache_hook.add_partial`` as each request (or batch) completes.

The request hash says nothing about *which model* answered, so the store also records the model's
identity (:func:`recif_bench.identity.model_identity`: content hash of the weights, or served name +
endpoint, and the settings that change answers); opening it with another model is refused
(:class:`ResumeMismatch`) instead of crediting one model with another's answers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM, CacheHook, hash_args

log = logging.getLogger(__name__)


IDENTITY_KEY = "__model_identity__"   # not a request hash (those are hex digests)


class ResumeMismatch(Exception):
    """The stored requests were answered by another model (or with other settings)."""


class _Hook(CacheHook):
    def __init__(self, store: Any) -> None:
        self.dbdict = store


class ResumableLM(LM):
    """Wraps any lm-eval ``LM``; answers finished requests from ``<path>`` and runs only the rest."""

    def __init__(self, lm: LM, path: str | Path, identity: dict[str, Any]) -> None:
        from sqlitedict import SqliteDict

        super().__init__()
        self.lm = lm
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = SqliteDict(str(self.path), autocommit=True)
        try:
            check_identity(self.store, self.path, identity)
        except ResumeMismatch:
            self.store.close()
            raise
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


def check_stored_identity(path: Path | None, identity: dict[str, Any]) -> None:
    """Refuse, before any model loads, to resume from a store another model wrote (read only)."""
    from sqlitedict import SqliteDict

    if path is None or not path.is_file():
        return
    with SqliteDict(str(path), flag="r") as store:
        check_identity(store, path, identity, record=False)


def check_identity(store: Any, path: Path, identity: dict[str, Any], record: bool = True) -> None:
    """Record ``identity`` in an empty store; refuse a store that holds another model's answers."""
    from recif_bench.identity import describe_difference

    stored = store.get(IDENTITY_KEY)
    if stored is None and len(store):
        raise ResumeMismatch(f"{path}: stored answers without a model identity (written by an older "
                             "recif-bench); cannot tell which model gave them - start a new run")
    if stored is not None and stored != identity:
        raise ResumeMismatch(f"{path}: stored answers come from another model "
                             f"({describe_difference(stored, identity)}); resume with the same model and settings, "
                             "or start a new run without --resume")
    if record:
        store[IDENTITY_KEY] = identity
