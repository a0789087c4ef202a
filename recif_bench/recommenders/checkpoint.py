"""Checkpoint files of the small recipes: tensors in safetensors, everything else as JSON, no pickle.

A checkpoint is a dict whose ``kind`` names the recipe (so another recipe's file is refused with a
line naming it).  It is written as one safetensors file: every tensor (and numpy array) of the dict
under a path-like key, the rest of the dict as JSON in the file's header metadata.  Loading reads
the header and the tensors and never unpickles, so a crafted file cannot run code.  Files written
by ``torch.save`` before this format are still read with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers (a pickled payload is not executed).

Writes are atomic (temporary name, then rename): a killed run never leaves a truncated checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "recif-checkpoint/1"   # safetensors metadata key holding the JSON part


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message names the file."""


def save_atomic(payload: dict[str, Any], path: Path) -> Path:
    """``payload`` to ``path`` (tensors -> safetensors, the rest -> JSON), through a temporary name."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    document = _encode(payload, tensors, "")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={FORMAT: json.dumps(document)})
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, kind: str, filename: str, what: str) -> tuple[Path, dict[str, Any]]:
    """(file, checkpoint dict) from a file or a folder holding ``filename``; errors name the file and ``what``."""
    path = Path(path)
    if path.is_dir():
        path = path / filename
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found")
    ckpt = read(path)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: not a {what}")
    return path, ckpt


def read(path: Path) -> Any:
    """The dict stored in ``path`` (this format, or a legacy ``torch.save`` file of tensors and containers)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if FORMAT not in metadata:
                raise CheckpointError(f"{path}: a safetensors file without recif-bench metadata (not a checkpoint)")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            return _decode(json.loads(metadata[FORMAT]), tensors)
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        return _read_legacy(path)


def _read_legacy(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors, numbers, strings and containers only; never code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError):
        raise CheckpointError(f"{path}: not a readable checkpoint (neither safetensors nor a file of plain "
                              "tensors; pickled objects are never loaded, so no code in it ran)") from None


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON-able ``value`` with tensors moved to ``tensors`` (keyed by their path) and markers for
    what JSON cannot say: tuples, dicts with non-string keys, numpy arrays."""
    if isinstance(value, torch.Tensor):
        tensors[where] = value.detach().cpu().contiguous().clone()   # clone: tied weights share storage
        return {"__tensor__": where}
    if isinstance(value, np.ndarray):
        tensors[where] = torch.from_numpy(np.ascontiguousarray(value)).clone()
        return {"__ndarray__": where}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        return {"__items__": [[_encode(k, tensors, f"{where}.k{i}"), _encode(v, tensors, f"{where}.v{i}")]
                              for i, (k, v) in enumerate(value.items())]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint value at {where or 'top'} is a {type(value).__name__}; "
                    "only tensors, arrays, numbers, strings and containers are stored")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy()
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key
