"""Experiment: can a better start or a warm start on a sample buy RQ-KMeans fewer full iterations at
equal or lower error per level?  The levers the speed issue names, each run as a residual k-means
3 x 256 with faiss (so only the start and the iteration counts differ from the reference), printing
wall seconds and the MSE after each level:

* reference: faiss ``Kmeans`` from its random start, 20 iterations (``benchmarks/rqkmeans_speed.py``);
* another random start (seed 1), 20 iterations: how far the start alone moves the error;
* faiss's random start without repeated rows (the first ``k`` distinct rows of its permutation: no
  two centroids start on the same point, so no cluster starts empty), 20 iterations;
* k-means++ (scikit-learn's greedy seeding, on all rows or on 4,096 of them) then 10 or 20 iterations;
* a warm start: 20 iterations on a quarter of the rows, then 6 or 8 on all of them.

    python benchmarks/kmeans_starts.py [--amazon DIR]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
from rqkmeans_speed import AMAZON, K, LEVELS, NITER, SEED, category_embeddings

from recif_bench.itemic.rqkmeans import nearest

Fit = Callable[[np.ndarray], np.ndarray]


def faiss_fit(x: np.ndarray, niter: int, start: np.ndarray | None = None, seed: int = SEED) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], K, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                      max_points_per_centroid=len(x))
    km.train(np.ascontiguousarray(x), init_centroids=start)
    return km.centroids


def kmeans_pp(x: np.ndarray, rows: int | None = None) -> np.ndarray:
    from sklearn.cluster import kmeans_plusplus

    if rows:
        x = x[np.random.default_rng(SEED).choice(len(x), rows, replace=False)]
    return kmeans_plusplus(x, K, random_state=SEED)[0].astype(np.float32)


def distinct_start(x: np.ndarray) -> np.ndarray:
    """faiss's start (rows ``rand_perm(n, seed + 1)[:k]``), skipping rows equal to an earlier one."""
    import faiss

    order = np.empty(len(x), dtype=np.int32)
    faiss.rand_perm(faiss.swig_ptr(order), len(x), SEED + 1)
    first = np.unique(x[order], axis=0, return_index=True)[1]
    return x[order[np.sort(first)[:K]]].copy()


def warm(x: np.ndarray, full_iterations: int) -> np.ndarray:
    quarter = x[np.random.default_rng(SEED).choice(len(x), len(x) // 4, replace=False)]
    return faiss_fit(x, full_iterations, start=faiss_fit(quarter, NITER))


SCHEMES: dict[str, Fit] = {
    "reference (random start, 20)": lambda x: faiss_fit(x, NITER),
    "random start seed 1, 20": lambda x: faiss_fit(x, NITER, seed=1),
    "distinct-row random start, 20": lambda x: faiss_fit(x, NITER, start=distinct_start(x)),
    "k-means++, 20": lambda x: faiss_fit(x, NITER, start=kmeans_pp(x)),
    "k-means++, 10": lambda x: faiss_fit(x, 10, start=kmeans_pp(x)),
    "k-means++ on 4,096 rows, 10": lambda x: faiss_fit(x, 10, start=kmeans_pp(x, 4096)),
    "quarter 20, then all 6": lambda x: warm(x, 6),
    "quarter 20, then all 8": lambda x: warm(x, 8),
}


def residual_errors(x: np.ndarray, fit: Fit) -> list[float]:
    residual, errors = x.copy(), []
    for _ in range(LEVELS):
        centroids = fit(residual)
        residual -= centroids[nearest(residual, centroids)]
        errors.append(float((residual ** 2).mean()))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amazon", default=AMAZON, help="the Amazon data folder (Beauty item texts)")
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(20_000, 384)).astype(np.float32)
    inputs = [("random unit vectors 20,000 x 384", x / np.linalg.norm(x, axis=1, keepdims=True))]
    beauty = category_embeddings(args.amazon, "beauty")
    if beauty is not None:
        inputs.append((f"Beauty item text (MiniLM) {len(beauty):,} x {beauty.shape[1]}", beauty))
    for name, data in inputs:
        print(f"\n{name}, {LEVELS} x {K}")
        for label, fit in SCHEMES.items():
            started = time.perf_counter()
            errors = residual_errors(data, fit)
            print(f"  {label:<30} {time.perf_counter() - started:6.2f} s  mse "
                  + " / ".join(f"{e:.5e}" for e in errors), flush=True)


if __name__ == "__main__":
    main()
