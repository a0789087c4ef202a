"""How much of Lloyd's work a faster RQ-KMeans could skip: per iteration, the share of points whose
nearest centroid changes, and the share that Hamerly's bound (distance to the own centroid against
half the distance to the next centroid and the second-nearest distance, both moved by the centroid
shifts) would spare from a full distance row, and the share Drake's bounds would spare (the ``m``
nearest other centroids each moved by its own shift, all the rest by the largest shift), for
``m`` in ``CANDIDATES``.  Each bound is built from the previous iteration's exact distances, so the
shares are what the bounds spare at best: kept over several iterations they only loosen.

The same random unit vectors as ``benchmarks/rqkmeans_speed.py`` (20,000 x 384), one level of 256
centroids from a seeded random sample, niter 20, full float32 distances every iteration (this
measures the opportunity, not a faster fit).

    python benchmarks/kmeans_pruning.py [--n 20000] [--dim 384] [--k 256] [--niter 20]
"""

from __future__ import annotations

import argparse

import numpy as np

CANDIDATES = (4, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--niter", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centroids = x[rng.choice(args.n, args.k, replace=False)].copy()
    assign = upper = lower = half_gap = shift = candidates = None
    print(f"{'iteration':>9} {'points changed':>14} {'bound spares':>12}"
          + "".join(f"{f'Drake {m}':>10}" for m in CANDIDATES))
    for iteration in range(args.niter):
        distances = np.sqrt(np.maximum((x * x).sum(1)[:, None] + (centroids * centroids).sum(1)[None, :]
                                       - 2 * x @ centroids.T, 0))
        nearest_two = np.partition(distances, 1, axis=1)[:, :2]
        new = distances.argmin(1)
        if assign is not None:
            spared = upper <= np.maximum(lower, half_gap[assign])
            drake = [upper <= np.minimum((near_d - shift[near_ids]).min(1), rest - shift.max())
                     for near_ids, near_d, rest in candidates]
            print(f"{iteration:>9} {int((new != assign).sum()):>14,} {spared.mean():>12.1%}"
                  + "".join(f"{share.mean():>10.1%}" for share in drake))
        order = np.argsort(distances, axis=1)[:, : max(CANDIDATES) + 2]
        candidates = [(order[:, 1:m + 1], np.take_along_axis(distances, order[:, 1:m + 1], 1),
                       np.take_along_axis(distances, order[:, m + 1:m + 2], 1)[:, 0]) for m in CANDIDATES]
        assign = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, x)
        counts = np.bincount(assign, minlength=args.k)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
        shift = np.linalg.norm(moved - centroids, axis=1)
        between = np.sqrt(np.maximum((moved ** 2).sum(1)[:, None] + (moved ** 2).sum(1)[None, :]
                                     - 2 * moved @ moved.T, 0))
        np.fill_diagonal(between, np.inf)
        half_gap = between.min(1) / 2
        upper, lower = nearest_two[:, 0] + shift[assign], nearest_two[:, 1] - shift.max()
        centroids = moved


if __name__ == "__main__":
    main()
