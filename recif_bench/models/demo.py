"""The demo model shipped inside the package: a small Qwen3 trained on mini-RecIF by ``recif-train demo``.

Training it needs the ``train`` extra and ~7 minutes of CPU, so the finished checkpoint (~3 MB of
float32 safetensors, tokenizer and config) is installed with the package (``recif_bench/demo_model``)
and ``recif-eval --model demo`` only loads it: the base install is enough, and the library never
trains nor imports the recipes.  ``recif-train demo`` rebuilds it from scratch with fixed seeds under
``$RECIF_BENCH_CACHE/demo-<VERSION>/`` (:mod:`trainers.demo`); ``--export DIR`` writes the result in
the shipped layout, with a manifest of SHA-256 checksums, so a missing or damaged file is one clear
error instead of a transformers traceback.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from recif_bench import sid
from recif_bench.paths import cache_root

VERSION = "v2"
FMT = sid.SidFormat(3, 256)
DONE = "demo-done.json"


def cache_dir() -> Path:
    """Where ``recif-train demo`` builds the model (the training stages, each resumable)."""
    root = cache_root()
    return root / f"demo-{VERSION}"


def final_dir() -> Path:
    """The rebuilt model's folder (the last training stage, SFT)."""
    return cache_dir() / "sft"


FOLDER = "demo_model"
MANIFEST = "manifest.json"
FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "chat_template.jinja")
REBUILD_HINT = "reinstall recif-bench, or rebuild it with `recif-train demo` (needs the train extra)"


class DemoModelError(Exception):
    """The shipped demo checkpoint is missing or damaged."""


def shipped_dir() -> Path:
    return Path(str(resources.files("recif_bench") / FOLDER))


def checked(folder: Path | None = None) -> Path:
    """The demo checkpoint's folder, after checking every file against the manifest."""
    folder = shipped_dir() if folder is None else folder
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        digests = manifest["sha256"]
    except FileNotFoundError:
        raise DemoModelError(f"demo model missing: no {folder / MANIFEST}; {REBUILD_HINT}") from None
    except (ValueError, KeyError, TypeError):
        raise DemoModelError(f"demo model damaged: {folder / MANIFEST} is not a valid manifest; "
                             f"{REBUILD_HINT}") from None
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise DemoModelError(f"demo model missing: no {path}; {REBUILD_HINT}")
        if sha256(path) != digests.get(name):
            raise DemoModelError(f"demo model damaged: {path} does not match its checksum; {REBUILD_HINT}")
    return folder


def export(checkpoint: Path, dest: Path, provenance: dict[str, Any]) -> Path:
    """Copy the loadable files of a trained demo checkpoint to ``dest`` and write their manifest."""
    missing = [name for name in FILES if not (checkpoint / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{checkpoint} lacks {', '.join(missing)}: not a finished demo checkpoint")
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(checkpoint / name, dest / name)
    manifest = {**provenance, "sha256": {name: sha256(dest / name) for name in FILES}}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
