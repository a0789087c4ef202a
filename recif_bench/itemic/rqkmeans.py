"""RQ-KMeans: residual k-means item tokenizer (spec openonerec_training §3).

Level ``l`` is a plain L2 k-means with ``codebook_size`` centroids fitted on the residuals left
after subtracting the centroids chosen at levels ``< l`` (greedy top-1).  The model is just the
``levels`` centroid matrices.  An item's SID is its ``levels`` nearest-centroid indices.

Back-ends (chosen by ``backend``), all minimising the same squared error:

* ``hartigan`` (``auto``, the default): batched Hartigan rounds in torch
  (:mod:`recif_bench.itemic.hartigan`), 6 rounds by default -- faster than the reference and lower
  in error on every level (docs/items_and_amazon.md "RQ-KMeans speed");
* ``faiss``: the reference's library and algorithm (Lloyd from random rows, 20 iterations), for
  codebooks that must match the reference's;
* ``sklearn`` and ``torch``: k-means++ seeding, then Lloyd iterations.

``sample`` fits on a seeded random subset of the items (the reference fits on everything it can
hold; faiss itself silently subsamples to 256 points per centroid unless told otherwise, which we
do) and then encodes every item.

Codebook file (``.npz``, numpy only)::

    codebooks   float32 [levels, codebook_size, dim]
    meta        JSON string: {"format": "recif-bench/rqkmeans/1", "levels", "codebook_size", "dim",
                              "backend", "niter", "seed", "precision", "n_fit"}

:meth:`RQKMeans.load` also reads the OneRec tokenizer release layout: a torch state dict
``model.pt`` with keys ``centroids.0`` .. ``centroids.{L-1}``, each float32 ``[K, dim]``.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from recif_bench.itemic.embed import EmbeddingError, check_embeddings

FORMAT = "recif-bench/rqkmeans/1"
BACKENDS = ("hartigan", "faiss", "sklearn", "torch")
DEFAULT_NITER = {"hartigan": 6, "faiss": 20, "sklearn": 20, "torch": 20}   # rounds / Lloyd iterations


def available_backends() -> list[str]:
    """Installed back-ends, the default (``auto``) first."""
    out = ["hartigan"]
    try:
        import faiss  # noqa: F401
        out.append("faiss")
    except ImportError:
        pass
    return out + ["sklearn", "torch"]


def _kmeans_faiss(x: np.ndarray, k: int, niter: int, seed: int, precision: str) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, max_points_per_centroid=max(1, -(-len(x) // k)),
                      verbose=False)
    km.train(np.ascontiguousarray(x))
    return np.asarray(km.centroids, dtype=np.float32)


def _kmeans_hartigan(x: np.ndarray, k: int, niter: int, seed: int, precision: str) -> np.ndarray:
    from recif_bench.itemic.hartigan import hartigan_kmeans   # torch, imported on use

    return hartigan_kmeans(x, k, niter, seed, precision)


@contextmanager
def _limited_threads(get: Callable[[], int], set_to: Callable[[int], None], threads: int | None) -> Iterator[None]:
    before = get()
    if threads is not None:
        set_to(threads)
    try:
        yield
    finally:
        set_to(before)


def torch_threads(threads: int | None) -> ContextManager[None]:
    """torch's intra-op threads limited to ``threads`` inside the block (``None``: unchanged)."""
    import torch

    return _limited_threads(torch.get_num_threads, torch.set_num_threads, threads)


def faiss_threads(threads: int | None) -> ContextManager[None]:
    """faiss (OpenMP) limited to ``threads`` inside the block, restored after.

    Why: faiss defaults to every core, which is fastest on a machine of one's own, but its OpenMP
    threads spin-wait at each iteration's barrier: on a busy or shared machine two threads took 3x
    the CPU and 2.8x the wall time of one (Beauty 3 x 256, level 1: 1.70 s CPU / 13.3 s wall vs
    0.52 s / 4.6 s, docs/items_and_amazon.md).  ``None`` (the default) keeps faiss's own setting.
    """
    try:
        import faiss
    except ImportError:
        return nullcontext()
    return _limited_threads(faiss.omp_get_max_threads, faiss.omp_set_num_threads, threads)


def _kmeans_sklearn(x: np.ndarray, k: int, niter: int, seed: int, precision: str) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=1, max_iter=niter, random_state=seed).fit(x).cluster_centers_.astype(np.float32)


def _kmeans_torch(x: np.ndarray, k: int, niter: int, seed: int, precision: str) -> np.ndarray:
    import torch

    data = torch.from_numpy(x)
    gen = torch.Generator().manual_seed(seed)
    centroids = data[torch.randint(len(data), (1,), generator=gen)]
    closest = ((data - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):                        # k-means++ seeding: next centre ~ squared distance
        weights = closest if closest.sum() > 0 else torch.ones_like(closest)
        new = data[torch.multinomial(weights, 1, generator=gen)]
        centroids = torch.cat([centroids, new])
        closest = torch.minimum(closest, ((data - new) ** 2).sum(1))
    for _ in range(niter):
        assign = torch.cdist(data, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, data)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        filled = counts.squeeze(1) > 0            # an empty cluster keeps its centroid
        centroids[filled] = sums[filled] / counts[filled]
    return centroids.numpy().astype(np.float32)


# (x, k, niter, seed, precision) -> centroids; precision matters to hartigan only (the others: float32)
KMEANS: dict[str, Callable[[np.ndarray, int, int, int, str], np.ndarray]] = {
    "hartigan": _kmeans_hartigan, "faiss": _kmeans_faiss, "sklearn": _kmeans_sklearn, "torch": _kmeans_torch}


def nearest(x: np.ndarray, centroids: np.ndarray, block_elements: int = 1 << 24) -> np.ndarray:
    """Index of the nearest centroid by squared L2 (|x|^2 + |c|^2 - 2 x.c, as the reference).

    float32 BLAS (torch) in row blocks of at most ``block_elements`` distances (64 MB), whatever
    the codebook size (8192 centroids and 1M items would otherwise need a 32 GB matrix).  torch
    rather than numpy: the hartigan back-end runs in torch's thread pool, and numpy's BLAS threads
    spinning beside it slowed every level by a third.
    """
    import torch

    c = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    c_norm = (c * c).sum(1)[None, :]
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) if x.flags.writeable else np.array(x, np.float32))
    rows = max(1, block_elements // max(len(c), 1))
    out = torch.empty(len(data), dtype=torch.int64)
    for start in range(0, len(data), rows):
        block = data[start:start + rows]
        out[start:start + len(block)] = torch.addmm(c_norm, block, c.T, alpha=-2.0).argmin(1)
    return out.numpy()


class RQKMeans:
    """``RQKMeans(levels, codebook_size).fit(x)``; then ``encode(x) -> int codes [n, levels]``."""

    def __init__(self, levels: int = 3, codebook_size: int = 8192, backend: str = "auto", niter: int | None = None,
                 seed: int = 0, sample: int | None = None, threads: int | None = None,
                 precision: str = "auto") -> None:
        if backend == "auto":
            backend = available_backends()[0]
        if backend not in KMEANS:
            raise ValueError(f"unknown k-means backend {backend!r}; choose one of {', '.join(BACKENDS)} or auto")
        if levels < 1 or codebook_size < 1:
            raise ValueError(f"levels and codebook_size must be positive, got {levels} x {codebook_size}")
        self.levels, self.codebook_size = levels, codebook_size
        if niter is not None and niter < 1:
            raise ValueError(f"niter must be a positive iteration count, got {niter}")
        self.backend, self.seed, self.sample = backend, seed, sample
        self.niter = DEFAULT_NITER[backend] if niter is None else niter
        self.threads = threads        # k-means threads while fitting (None: the library's default, every core)
        from recif_bench.itemic.hartigan import PRECISIONS

        if precision not in PRECISIONS or (backend != "hartigan" and precision == "bfloat16"):
            raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)} "
                             "(bfloat16 with the hartigan back-end only)")
        self.precision = precision    # of hartigan's cost products: auto = bfloat16 where the CPU has it natively
        self.codebooks: np.ndarray | None = None      # [levels, K, dim]
        self.n_fit = 0
        self.fit_seconds = 0.0

    @property
    def dim(self) -> int:
        return int(self._fitted().shape[2])

    def _fitted(self) -> np.ndarray:
        if self.codebooks is None:
            raise RuntimeError("RQKMeans is not fitted: call fit() or RQKMeans.load()")
        return self.codebooks

    def fit(self, x: np.ndarray, progress: bool = True) -> "RQKMeans":
        x = check_embeddings(x, source="embeddings to fit")
        if self.sample and self.sample < len(x):
            rows = np.random.default_rng(self.seed).choice(len(x), self.sample, replace=False)
            x = x[np.sort(rows)]
        if len(x) < self.codebook_size:
            raise EmbeddingError(f"embeddings to fit: {len(x)} items is fewer than the codebook size "
                                 f"{self.codebook_size}; use a smaller --codebook-size")
        started = time.perf_counter()
        if self.backend == "hartigan":     # record what ran: "auto" depends on the machine
            from recif_bench.itemic.hartigan import compute_dtype

            self.precision = str(compute_dtype(self.precision)).removeprefix("torch.")
        else:
            self.precision = "float32"
        residual = x.copy()
        books = []
        with faiss_threads(self.threads if self.backend == "faiss" else None), \
                torch_threads(self.threads if self.backend in ("hartigan", "torch") else None):
            for level in tqdm(range(self.levels), desc=f"rq-kmeans {self.levels}x{self.codebook_size} ({self.backend})",
                              disable=not progress):
                # one seed for every level, as the reference's single k-means config: same clustering
                centroids = KMEANS[self.backend](residual, self.codebook_size, self.niter, self.seed,
                                                 self.precision)
                residual -= centroids[nearest(residual, centroids)]
                books.append(centroids)
        self.codebooks = np.stack(books)
        self.n_fit = len(x)
        self.fit_seconds = time.perf_counter() - started
        return self

    def encode(self, x: np.ndarray, levels: int | None = None) -> np.ndarray:
        """int32 codes ``[n, levels]`` (``levels`` < fitted levels gives the prefix codes)."""
        books = self._fitted()
        x = check_embeddings(x, dim=books.shape[2], source="embeddings to encode")
        residual = x.copy()
        codes = np.empty((len(x), levels or self.levels), dtype=np.int32)
        for level in range(codes.shape[1]):
            codes[:, level] = nearest(residual, books[level])
            residual -= books[level][codes[:, level]]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Sum of the chosen centroids: the reconstruction of each item."""
        books = self._fitted()
        codes = np.asarray(codes)
        return sum(books[level][codes[:, level]] for level in range(codes.shape[1]))

    # ---- files

    def meta(self) -> dict:
        books = self._fitted()
        return {"format": FORMAT, "levels": int(books.shape[0]), "codebook_size": int(books.shape[1]),
                "dim": int(books.shape[2]), "backend": self.backend, "niter": self.niter, "seed": self.seed,
                "precision": self.precision, "n_fit": self.n_fit}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:   # a file handle keeps numpy from appending ".npz"
            np.savez(fh, codebooks=self._fitted(), meta=np.array(json.dumps(self.meta())))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RQKMeans":
        """Our ``.npz`` file, or the OneRec release's ``model.pt`` (``centroids.<l>`` tensors)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: codebook file not found")
        if path.suffix in (".pt", ".pth", ".bin"):
            books, meta = _load_torch_state(path), {"backend": "onerec-release"}
        else:
            try:
                with np.load(path) as data:
                    books, meta = data["codebooks"], json.loads(str(data["meta"]))
            except (ValueError, KeyError, OSError) as exc:
                raise EmbeddingError(f"{path}: not a recif-bench codebook file ({exc})") from None
            if meta.get("format") != FORMAT:
                raise EmbeddingError(f"{path}: unknown codebook format {meta.get('format')!r}; expected {FORMAT}")
        model = cls(books.shape[0], books.shape[1], backend="torch" if meta["backend"] not in KMEANS else meta["backend"],
                    niter=meta.get("niter"), seed=meta.get("seed", 0), precision=meta.get("precision", "auto"))
        model.codebooks = np.asarray(books, dtype=np.float32)
        model.n_fit = meta.get("n_fit", 0)
        return model


def _load_torch_state(path: Path) -> np.ndarray:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    keys = sorted((k for k in state if k.startswith("centroids.")), key=lambda k: int(k.split(".")[1]))
    if not keys:
        raise EmbeddingError(f"{path}: no centroids.<level> tensors (OneRec tokenizer layout)")
    return np.stack([state[k].float().numpy() for k in keys])


# --------------------------------------------------------------------------------------------
# Quality report

@dataclass(frozen=True)
class LevelReport:
    level: int
    codes_used: int
    usage: float                 # codes_used / codebook_size
    mse: float                   # mean squared reconstruction error after this level
    relative_error: float        # mean |x - x_hat| / (max(|x|, |x_hat|) + 1e-4), as the reference
    unique_prefixes: int
    collision_rate: float        # 1 - unique prefixes / items


def collision_stats(codes: np.ndarray) -> dict[str, float]:
    """Items sharing a full code tuple: ``collision_rate`` = 1 - unique / n (GRLM's "duplicate items"),
    ``colliding_items`` = share of items in a group of size >= 2, ``max_group``."""
    _, counts = np.unique(np.asarray(codes), axis=0, return_counts=True)
    n = int(counts.sum())
    return {"items": n, "unique": int(len(counts)), "collision_rate": 1.0 - len(counts) / n,
            "colliding_items": float(counts[counts > 1].sum()) / n, "max_group": int(counts.max())}


def quality_report(model: RQKMeans, x: np.ndarray, codes: np.ndarray | None = None) -> list[LevelReport]:
    books = model._fitted()
    x = check_embeddings(x, dim=books.shape[2])
    codes = model.encode(x) if codes is None else np.asarray(codes)
    recon = np.zeros_like(x)
    x_norm = np.linalg.norm(x, axis=1)
    out = []
    for level in range(codes.shape[1]):
        recon += books[level][codes[:, level]]
        err = np.linalg.norm(x - recon, axis=1)
        rel = err / (np.maximum(x_norm, np.linalg.norm(recon, axis=1)) + 1e-4)
        stats = collision_stats(codes[:, : level + 1])
        used = len(np.unique(codes[:, level]))
        out.append(LevelReport(level, used, used / books.shape[1], float(((x - recon) ** 2).mean()),
                               float(rel.mean()), stats["unique"], stats["collision_rate"]))
    return out


def format_report(levels: Sequence[LevelReport], codebook_size: int) -> str:
    lines = [f"{'level':>5} {'codes used':>12} {'usage':>7} {'mse':>10} {'rel.err':>8} {'unique SIDs':>12} {'collisions':>10}"]
    for r in levels:
        lines.append(f"{'abcdefgh'[r.level]:>5} {r.codes_used:>6}/{codebook_size:<5} {r.usage:>7.1%} {r.mse:>10.3e} "
                     f"{r.relative_error:>8.4f} {r.unique_prefixes:>12} {r.collision_rate:>10.2%}")
    return "\n".join(lines)
