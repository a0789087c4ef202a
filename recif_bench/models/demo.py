"""Where the demo model lives: ``recif-eval --model demo`` reads it from here.

The model (a small Qwen3 trained from scratch on mini-RecIF) is built once by ``recif-train demo``
(:mod:`trainers.demo`) under ``$RECIF_BENCH_CACHE/demo-<VERSION>/`` and reused afterwards.  The
library only locates it; when it is missing it runs the training CLI as its own process, so the
library never imports the recipes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recif_bench import sid

VERSION = "v2"
FMT = sid.SidFormat(3, 256)
DONE = "demo-done.json"


def cache_dir() -> Path:
    root = Path(os.environ.get("RECIF_BENCH_CACHE", Path.home() / ".cache" / "recif_bench"))
    return root / f"demo-{VERSION}"


def final_dir() -> Path:
    """The finished model's folder (the last training stage, SFT)."""
    return cache_dir() / "sft"


def is_built() -> bool:
    return (final_dir() / DONE).exists()


def ensure() -> Path:
    """The demo model's folder, built first by ``recif-train demo`` if needed (a few minutes on 2 CPU cores)."""
    if not is_built():
        subprocess.run([sys.executable, "-m", "trainers.cli", "demo"], check=True, stdout=subprocess.DEVNULL)
    return final_dir()
