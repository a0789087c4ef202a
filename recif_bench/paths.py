"""The one folder where recif-bench keeps what it builds once.

Mini-RecIF, embeddings, item codes, SID -> item map arrays, file hashes, judge answers: under
``$RECIF_BENCH_CACHE`` when set, else ``recif_bench`` under ``$XDG_CACHE_HOME`` (default ``~/.cache``), so a user
or a CI job points every cache elsewhere with one variable.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RECIF_BENCH_CACHE"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recif_bench"
