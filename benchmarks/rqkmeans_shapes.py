"""RQ-KMeans at our defaults beside the reference's algorithm on data of other shapes and kinds.

``rqkmeans_speed.py`` measures the issue's setting (384-d, 3 x 256).  This script checks that the
default back-end is not tuned to it: Gaussian blobs with a large codebook (few points per
centroid), strongly anisotropic data, data far from the origin, 2048-d vectors and a tiny set.  It
prints the wall time of both and the relative error of ours per level (negative = below the
reference's).  Synthetic data, seeded; a minute on 2 cores.

    python benchmarks/rqkmeans_shapes.py
"""

from __future__ import annotations

import time

import numpy as np
from rqkmeans_speed import level_errors, reference_fit, require_faiss

from recif_bench.itemic.rqkmeans import RQKMeans


def cases() -> dict[str, tuple[np.ndarray, int, int]]:
    rng = np.random.default_rng(0)
    blobs = rng.normal(size=(500, 128))[rng.integers(0, 500, 40_000)] + 0.3 * rng.normal(size=(40_000, 128))
    return {
        "blobs 40,000 x 128, 3 x 1024": (blobs.astype(np.float32), 3, 1024),
        "anisotropic 30,000 x 256, 3 x 256": (
            (rng.normal(size=(30_000, 256)) * np.linspace(3, 0.05, 256)).astype(np.float32), 3, 256),
        "offset +50, 10,000 x 64, 3 x 256": ((rng.normal(size=(10_000, 64)) + 50).astype(np.float32), 3, 256),
        "wide 8,000 x 2048, 2 x 256": ((rng.normal(size=(8_000, 2048)) * np.linspace(2, 0.1, 2048)).astype(np.float32),
                                       2, 256),
        "tiny 600 x 16, 3 x 64": (rng.normal(size=(600, 16)).astype(np.float32), 3, 64),
    }


def main() -> None:
    require_faiss()
    print(f"{'data, levels x codebook':<36} {'reference s':>11} {'ours s':>7} {'speed-up':>8}  ours vs reference per level")
    for name, (x, levels, k) in cases().items():
        started = time.perf_counter()
        reference = level_errors(x, reference_fit(x, levels, k))
        reference_s = time.perf_counter() - started
        model = RQKMeans(levels, k)
        started = time.perf_counter()
        model.fit(x, progress=False)
        ours_s = time.perf_counter() - started
        ours = level_errors(x, list(model.codebooks))
        print(f"{name:<36} {reference_s:>11.2f} {ours_s:>7.2f} {reference_s / ours_s:>7.1f}x  "
              + " / ".join(f"{o / r - 1:+.2%}" for o, r in zip(ours, reference)), flush=True)


if __name__ == "__main__":
    main()
