"""The arrays of a SID -> item mapping file, kept once built: ``<cache>/item_maps/<sha256>-<levels>x<codebook>/``.

Reading a 432k-SID ``sid2pid.json`` into arrays takes about half a second; every evaluation of
every model reads the same file again.  The arrays are stored as ``.npy`` files (no pickle) under
the file's content hash, so a changed file is never served stale, and opened memory-mapped, so a
cached map costs the hash of the file and nothing per item.  A cache that cannot be read or
written is skipped: the file is then read as usual.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from recif_bench.paths import cache_root

log = logging.getLogger(__name__)

FIELDS = ("keys", "offsets", "item_ids", "counts", "counts_after")


def folder(digest: str, levels: int, codebook_size: int) -> Path:
    return cache_root() / "item_maps" / f"{digest}-{levels}x{codebook_size}"


def load(digest: str, levels: int, codebook_size: int) -> dict[str, np.ndarray] | None:
    """The stored arrays (memory-mapped, read-only), or None when absent or unreadable."""
    where = folder(digest, levels, codebook_size)
    if not where.is_dir():
        return None
    try:
        arrays = {name: np.load(where / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in FIELDS}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable item-map cache (%s); reading the mapping file", where, exc)
        return None
    n_keys, n_items = len(arrays["keys"]), len(arrays["item_ids"])
    if (len(arrays["offsets"]) != n_keys + 1 or len(arrays["counts"]) != n_items
            or len(arrays["counts_after"]) != n_items or (n_keys and arrays["offsets"][-1] != n_items)):
        log.warning("%s: inconsistent item-map cache; reading the mapping file", where)
        return None
    return arrays


def store(digest: str, levels: int, codebook_size: int, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays next to each other in a temporary folder, then move it in place whole."""
    where = folder(digest, levels, codebook_size)
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
        try:
            for name in FIELDS:
                np.save(staging / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
            os.replace(staging, where)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not where.is_dir():          # another process may have stored the same map first
                raise
    except OSError as exc:
        log.debug("item-map cache not written (%s)", exc)
