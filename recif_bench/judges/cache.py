"""Content-addressed judge cache: sha256(judge identity + full prompt) -> the judge's answer.

Keyed by what was asked, never by sample id, so a changed generation can never reuse a stale
judgment (the reference's bug B4) and an unchanged one never costs a second call.  One small file
per answer, written atomically: safe with threads and concurrent runs, safe to delete (costs calls).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from recif_bench.paths import cache_root


class JudgeCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(identity: str, prompt: str) -> str:
        return hashlib.sha256(f"{identity}\0{prompt}".encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))["answer"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None   # absent, or a torn file from a killed writer: ask again

    def put(self, key: str, identity: str, answer: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{id(answer)}.tmp")
        tmp.write_text(json.dumps({"judge": identity, "answer": answer}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)


def default_cache_dir() -> Path:
    """Used when neither ``RECIF_JUDGE_CACHE`` nor the settings name one (e.g. under stock lm_eval)."""
    return cache_root() / "judge"
