"""Checkpoint files of the small recipes: written atomically, read back with the error a user can act on.

A checkpoint is one ``torch.save``d dict whose ``kind`` names the recipe, so a folder of another
recipe's (or a half-written) file is refused with a line naming the file instead of a KeyError later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_atomic(payload: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary name, then rename: a killed run never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, kind: str, filename: str, what: str) -> tuple[Path, dict[str, Any]]:
    """(file, checkpoint dict) from a file or a folder holding ``filename``; errors name the file and ``what``."""
    path = Path(path)
    if path.is_dir():
        path = path / filename
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise ValueError(f"{path}: not a {what}")
    return path, ckpt
