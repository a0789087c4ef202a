"""Experiment: would a bfloat16-screened Lloyd make RQ-KMeans 3x faster than the reference at equal
error?  It prints, per data set, the reference (faiss ``Kmeans`` per level, as
``benchmarks/rqkmeans_speed.py``) beside this fit, wall and CPU seconds and the MSE after each level,
and the reference's own MSE with one faiss thread (its tie-breaking noise).  Not used by the library:
on the 2-core machine it was measured on it is 1.0-1.3x, see docs/items_and_amazon.md.

The idea: a Lloyd iteration is one ``items x centroids x dim`` product, and torch runs it in bfloat16
4-6x faster than float32 on CPUs with bfloat16 dot products (AVX512-BF16, AMX).  Every screened
score carries a proven error bound (rounding of both inputs, float32 accumulation, the bfloat16
result); a row whose best score beats the runner-up by more than both bounds has that winner for
certain, the rest are scored again in float32, then float64.  The assignment is the true nearest
centroid, never an approximation.  Hamerly's bounds skip rows that cannot change centroid, and the
fit stops at a fixed point (same assignment, no split: later iterations recompute the same centroids).

Everything else is faiss's algorithm, re-expressed (spec openonerec_training §3): the start is rows
``faiss.rand_perm(n, seed + 1)[:k]``, each centroid the float32 sum of its rows in row order times
``1 / count``, and an empty cluster takes a nudged copy (+-1/1024 per coordinate) of a cluster drawn
with probability ``(count - 1) / (n - k)`` from a Mersenne Twister seeded 1234 at every iteration.
Without near-ties the centroids equal faiss's bit for bit; where a split leaves two copies almost
equidistant from a row, faiss's float32 rounding decides (and changes with its thread count).

    python benchmarks/kmeans_bf16_screen.py [--repeat 2] [--amazon DIR]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

import numpy as np
import torch
from rqkmeans_speed import AMAZON, K, LEVELS, NITER, SEED, category_embeddings, level_errors, reference_fit, timed

from recif_bench.itemic.rqkmeans import faiss_threads

SPLIT_SEED = 1234            # faiss re-seeds its empty-cluster generator with this at every iteration
SPLIT_NUDGE = 1 / 1024.0     # faiss's symmetric perturbation of a split centroid
BLOCK_ELEMENTS = 1 << 24     # scores per block (64 MB of float32)
CACHE_BYTES = 1 << 31        # keep the screened copy of the items when it fits in this


@functools.lru_cache(maxsize=None)
def screen_dtype() -> torch.dtype:
    """bfloat16 where this CPU multiplies it at least 1.5x faster than float32, else float32.

    Why measured, not looked up: without native bfloat16 dot products torch emulates them, 5-10x
    slower than float32; no torch API reports the instruction set.
    """
    a = torch.randn(512, 512)

    def seconds(t: torch.Tensor) -> float:
        t @ t
        start = time.perf_counter()
        for _ in range(3):
            t @ t
        return time.perf_counter() - start

    return torch.bfloat16 if seconds(a.bfloat16()) * 1.5 < seconds(a) else torch.float32


def _unit_roundoff(dtype: torch.dtype) -> float:
    """Largest relative error of rounding a result to ``dtype`` (round to nearest: 2^-precision;
    float32 gets twice its 2^-24 as slack)."""
    return 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -23


def _top_two(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the best column, its score and the best score of the other columns (float64)."""
    at = np.arange(len(scores))
    top = scores.argmax(1)
    first = scores[at, top].astype(np.float64)
    scores[at, top] = -np.inf
    second = torch.from_numpy(scores).amax(1).double().numpy()
    return top, first, second


class _Screen:
    """Centroids ``[c, shift - |c|^2/2, 0...]`` in one precision, with the error constants of the
    bound |screened score - true score| <= |x~ - x| |c~| + |x| |c~ - c| + offset error
    + float32 accumulation + result rounding (the last one relative, applied by :meth:`decide`)."""

    def __init__(self, centroids: np.ndarray, offset: np.ndarray, width: int, dtype: torch.dtype) -> None:
        dim = centroids.shape[1]
        self.dtype = dtype
        self.matrix = torch.zeros(len(centroids), width, dtype=dtype)
        self.matrix[:, :dim] = torch.from_numpy(centroids)
        self.matrix[:, dim] = torch.from_numpy(offset)
        rounded = self.matrix[:, : dim + 1].double()
        exact = torch.from_numpy(centroids).double()
        self.c_norm = float(torch.linalg.vector_norm(rounded[:, :dim], dim=1).max())
        self.c_err = float(torch.linalg.vector_norm(rounded[:, :dim] - exact, dim=1).max())
        self.off_err = float((rounded[:, dim] - torch.from_numpy(offset)).abs().max())
        self.off_max = float(rounded[:, dim].abs().max())
        self.accumulation = (width + 2) * 2.0 ** -24
        self.unit = _unit_roundoff(dtype)

    def decide(self, block: torch.Tensor, rounding: np.ndarray, norm: np.ndarray, shift: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Best centroid per row, bounds on its true score and on the others', and the rows where
        the bounds overlap (undecided)."""
        top, first, second = _top_two((block @ self.matrix.T).float().numpy())
        bound = (rounding * self.c_norm + norm * self.c_err + self.off_err
                 + self.accumulation * ((norm + rounding) * self.c_norm + self.off_max))
        low = first - bound - self.unit * np.abs(first) - shift
        high = second + bound + self.unit * np.abs(second) - shift
        return top, low, high, np.flatnonzero(~(low > high))


class ScreenedItems:
    """Items prepared once for many nearest-centroid searches: float32 rows, their norms, and the
    screened copy ``[x, 1, 0...]`` with its rounding error per row."""

    def __init__(self, x: np.ndarray, dtype: torch.dtype | None = None) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.n, self.dim = self.x.shape
        self.dtype = dtype or screen_dtype()
        self.width = -(-(self.dim + 1) // 16) * 16          # room for the constant column, aligned
        data = torch.from_numpy(self.x)
        self.norm = torch.linalg.vector_norm(data, dim=1, dtype=torch.float64).numpy()
        self.sq_norm = self.norm ** 2
        self._cached = self._rows(None, self.dtype) if self.n * self.width * 2 <= CACHE_BYTES else None
        rounded = (self._cached[:, : self.dim] if self._cached is not None else data.to(self.dtype)).float()
        self.rounding = torch.linalg.vector_norm(rounded - data, dim=1, dtype=torch.float64).numpy()

    def _rows(self, rows: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor:
        x = self.x if rows is None else self.x[rows]
        out = torch.zeros(len(x), self.width, dtype=dtype)
        out[:, : self.dim] = torch.from_numpy(x)
        out[:, self.dim] = 1
        return out

    def _screened(self, rows: np.ndarray) -> torch.Tensor:
        if self._cached is None:
            return self._rows(rows, self.dtype)
        return self._cached if len(rows) == self.n else self._cached[torch.from_numpy(rows)]

    def nearest(self, centroids: np.ndarray, rows: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ``rows`` (default all): the nearest centroid, a lower bound on its score and an upper
        bound on every other centroid's score, score = x.c - |c|^2/2 (the larger, the nearer).

        Rows the screen cannot decide go to float32 (when the screen was coarser), then float64.
        """
        rows = np.arange(self.n) if rows is None else rows
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        half_sq = torch.linalg.vector_norm(torch.from_numpy(centroids), dim=1, dtype=torch.float64).numpy() ** 2 / 2
        shift = float(half_sq.mean())               # a constant per search: keeps screened scores small
        offset = shift - half_sq
        screens = [_Screen(centroids, offset, self.width, dtype)
                   for dtype in dict.fromkeys([self.dtype, torch.float32])]
        exact_centroids = torch.from_numpy(centroids).double()   # torch, not numpy: one thread pool
        best = np.empty(len(rows), dtype=np.int64)
        low, high = np.empty(len(rows)), np.empty(len(rows))
        step = max(1, BLOCK_ELEMENTS // max(len(centroids), 1))
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            top, lo, hi, undecided = screens[0].decide(self._screened(part), self.rounding[part], self.norm[part], shift)
            for screen in screens[1:]:
                if len(undecided):
                    sub = part[undecided]
                    t, l, h, still = screen.decide(self._rows(sub, screen.dtype), np.zeros(len(sub)), self.norm[sub], shift)
                    top[undecided], lo[undecided], hi[undecided] = t, l, h
                    undecided = undecided[still]
            if len(undecided):
                sub = part[undecided]
                exact = (torch.from_numpy(self.x[sub]).double() @ exact_centroids.T).numpy() - half_sq
                t, first, second = _top_two(exact)
                slack = 1e-12 * (self.sq_norm[sub] + half_sq.max())
                top[undecided], lo[undecided], hi[undecided] = t, first - slack, second + slack
            best[start:start + len(part)] = top
            low[start:start + len(part)], high[start:start + len(part)] = lo, hi
        return best, low, high


def faiss_start(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """faiss ``Kmeans``'s first centroids: rows ``rand_perm(n, seed + 1)[:k]``."""
    import faiss

    order = np.empty(len(x), dtype=np.int32)
    faiss.rand_perm(faiss.swig_ptr(order), len(x), seed + 1)
    return x[order[:k]].copy()


def split_empty_clusters(centroids: np.ndarray, counts: np.ndarray, n: int) -> int:
    """faiss's rule for empty clusters, in place: each takes a nudged copy of a cluster drawn with
    probability ``(count - 1) / (n - k)`` scanning from cluster 0; returns how many were split."""
    empty = np.flatnonzero(counts == 0)
    if not len(empty):
        return 0
    k = len(counts)
    draws = np.random.RandomState(SPLIT_SEED)          # Mersenne Twister, as faiss's generator
    pending, used = np.empty(0, dtype=np.float32), 0
    denominator = np.float64(np.float32(n - k))
    even = np.arange(centroids.shape[1]) % 2 == 0
    up, down = np.where(even, 1 + SPLIT_NUDGE, 1 - SPLIT_NUDGE), np.where(even, 1 - SPLIT_NUDGE, 1 + SPLIT_NUDGE)
    for target in empty:
        chance = ((counts.astype(np.float64) - 1.0) / denominator).astype(np.float32)
        while True:
            if used + k > len(pending):
                fresh = draws.randint(0, 2 ** 32, 1 << 16, dtype=np.uint32).astype(np.float32) / np.float32(2.0 ** 32)
                pending, used = np.concatenate([pending[used:], fresh]), 0
            hits = np.flatnonzero(pending[used:used + k] < chance)
            if len(hits):
                source = int(hits[0])
                used += source + 1
                break
            used += k
        copy = centroids[source].astype(np.float64)
        centroids[target] = (copy * up).astype(np.float32)
        centroids[source] = (copy * down).astype(np.float32)
        counts[target] = counts[source] / np.float32(2)
        counts[source] -= counts[target]
    return len(empty)


def lloyd(items: ScreenedItems, k: int, niter: int, seed: int) -> np.ndarray:
    """``niter`` Lloyd iterations from faiss's start: float32 centroids ``[k, dim]``."""
    n = items.n
    data = torch.from_numpy(items.x)
    centroids = faiss_start(items.x, k, seed)
    assign = np.zeros(n, dtype=np.int64)
    own, other = np.full(n, np.inf), np.zeros(n)       # bounds on the distance to own / any other centroid
    previous, splits = None, 0
    for _ in range(niter):
        active = np.flatnonzero(~(own < other))
        if len(active):
            best, low, high = items.nearest(centroids, active)
            assign[active] = best
            own[active] = np.sqrt(np.maximum(items.sq_norm[active] - 2 * low, 0)) * (1 + 1e-9)
            other[active] = np.sqrt(np.maximum(items.sq_norm[active] - 2 * high, 0)) * (1 - 1e-9)
        if previous is not None and splits == 0 and np.array_equal(previous, assign):
            break                                           # the same centroids again, for every later iteration
        previous = assign.copy()
        sums = torch.zeros(k, items.dim).index_add_(0, torch.from_numpy(assign), data).numpy()
        counts = np.bincount(assign, minlength=k).astype(np.float32)
        updated = np.zeros_like(centroids)
        filled = counts > 0
        updated[filled] = sums[filled] * (np.float32(1) / counts[filled])[:, None]
        splits = split_empty_clusters(updated, counts, n)
        moved = torch.linalg.vector_norm(torch.from_numpy(updated - centroids), dim=1, dtype=torch.float64).numpy() * (1 + 1e-6)
        farthest, runner_up = np.argsort(moved)[-1], np.sort(moved)[-2] if k > 1 else 0.0
        own += moved[assign]
        other -= np.where(assign == farthest, runner_up, moved[farthest])
        centroids = updated
    return centroids


def screened_fit(x: np.ndarray) -> list[np.ndarray]:
    """Residual k-means with this fit at every level; residuals from the same exact search."""
    residual, books = x.copy(), []
    for _ in range(LEVELS):
        items = ScreenedItems(residual)
        centroids = lloyd(items, K, NITER, SEED)
        residual -= centroids[items.nearest(centroids)[0]]
        books.append(centroids)
    return books


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--amazon", type=Path, default=AMAZON, help="the Amazon data folder (Beauty item texts)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f}; screen dtype {screen_dtype()}")
    x = np.random.default_rng(0).normal(size=(20_000, 384)).astype(np.float32)
    inputs = [("random unit vectors", x / np.linalg.norm(x, axis=1, keepdims=True))]
    beauty = category_embeddings(args.amazon, "beauty")
    if beauty is not None:
        inputs.append(("Beauty item text (MiniLM)", beauty))
    for name, data in inputs:
        print(f"\n{name}: {data.shape[0]:,} x {data.shape[1]}, {LEVELS} x {K}, niter {NITER}, seed {SEED}")
        best: dict[str, float] = {}
        for run in range(1, args.repeat + 1):
            for label, threads, fit in [("screened", None, screened_fit), ("reference", cores, reference_fit),
                                        ("reference 1 thread", 1, reference_fit)]:
                with faiss_threads(threads):
                    wall, cpu, books = timed(lambda: fit(data))
                print(f"{run:<3} {label:<19} {wall:6.2f} s wall {cpu:6.2f} s CPU  mse "
                      + " / ".join(f"{e:.5e}" for e in level_errors(data, books)), flush=True)
                best[label] = min(best.get(label, float("inf")), wall)
        print(f"best of {args.repeat}: screened {best['reference'] / best['screened']:.2f}x the reference's speed")


if __name__ == "__main__":
    main()
