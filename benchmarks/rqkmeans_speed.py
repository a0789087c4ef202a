"""RQ-KMeans 3 x 256, niter 20: our fit beside the reference's algorithm, paired, with the error per level.

Two inputs: 20,000 x 384 random unit vectors (Gaussian, seed 0) and the Beauty item texts embedded
with MiniLM (12,101 x 384; computed once into the embedding cache, minutes on CPU; skipped when the
Amazon data or the ``items`` extra is absent).

* reference: its algorithm re-expressed from spec openonerec_training §3 (not its code): per level a
  faiss ``Kmeans`` with faiss's defaults (every core, OpenMP), then the residual of each item after
  its nearest centroid (``|x|^2 + |c|^2 - 2 x.c`` in float32).
* ours: ``RQKMeans(3, 256, backend=..., niter=20)``, our defaults (faiss on its default threads, blocked
  float32 assignment).  The same seed at every level, as the reference, so the same clustering is
  computed: the difference is the time.

Runs alternate (ours, reference, ours, ...); fit wall and CPU seconds, and the mean squared error
after each level on every item.  Timing on a shared machine is noisy: compare within one run.

    python benchmarks/rqkmeans_speed.py [--repeat 3] [--backends faiss,torch] [--amazon DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from recif_bench.itemic.rqkmeans import RQKMeans, available_backends, faiss_threads, quality_report

LEVELS, K, NITER, SEED = 3, 256, 20, 0
AMAZON = Path(os.environ.get("RECIF_AMAZON_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"))


def beauty_embeddings(amazon: Path) -> np.ndarray | None:
    from recif_bench.data.reader import DataError

    try:
        from recif_bench.data.amazon import load_amazon
        from recif_bench.itemic.embed import SentenceTransformerEmbedder, cached_embed

        data = load_amazon("beauty", amazon)
        return cached_embed([data.texts[i] for i in data.items], SentenceTransformerEmbedder("minilm"))
    except (ImportError, OSError, ValueError, DataError) as exc:
        print(f"(Beauty embeddings skipped: {exc})")
        return None


def reference_fit(x: np.ndarray) -> list[np.ndarray]:
    """The reference's residual k-means: faiss Kmeans per level at faiss's defaults, greedy residuals."""
    import faiss

    residual, books = x.copy(), []
    for _ in range(LEVELS):
        km = faiss.Kmeans(x.shape[1], K, niter=NITER, seed=SEED, verbose=False)   # one config for all levels
        km.train(residual)
        centroids = km.centroids
        distances = (centroids ** 2).sum(1)[None, :] - 2.0 * residual @ centroids.T
        residual -= centroids[distances.argmin(1)]
        books.append(centroids.copy())
    return books


def level_errors(x: np.ndarray, books: list[np.ndarray]) -> list[float]:
    model = RQKMeans(LEVELS, K)
    model.codebooks = np.stack(books)
    return [r.mse for r in quality_report(model, x)]


def timed(fit) -> tuple[float, float, list[np.ndarray]]:
    wall, cpu = time.perf_counter(), time.process_time()
    books = fit()
    return time.perf_counter() - wall, time.process_time() - cpu, books


def bench(name: str, x: np.ndarray, backends: list[str], repeat: int, reference_threads: int) -> None:
    print(f"\n{name}: {x.shape[0]:,} x {x.shape[1]}, RQ-KMeans {LEVELS} x {K}, niter {NITER}, seed {SEED}")
    print(f"{'run':<4} {'fit':<18} {'wall s':>8} {'cpu s':>8}  mse after level a / b / c")
    best: dict[str, tuple[float, float]] = {}
    for run in range(1, repeat + 1):
        for label in [f"ours ({b})" for b in backends] + ["reference"]:
            if label == "reference":
                with faiss_threads(reference_threads):
                    wall, cpu, books = timed(lambda: reference_fit(x))
            else:
                backend = label[6:-1]
                wall, cpu, books = timed(lambda: list(RQKMeans(LEVELS, K, backend=backend, niter=NITER, seed=SEED)
                                                      .fit(x, progress=False).codebooks))
            errors = level_errors(x, books)
            print(f"{run:<4} {label:<18} {wall:>8.2f} {cpu:>8.2f}  " + " / ".join(f"{e:.4e}" for e in errors),
                  flush=True)
            old = best.get(label, (float("inf"), float("inf")))
            best[label] = (min(old[0], wall), min(old[1], cpu))
    ref_wall, ref_cpu = best["reference"]
    for label, (wall, cpu) in best.items():
        if label != "reference":
            print(f"best of {repeat}: {label} {ref_wall / wall:.1f}x faster than the reference in wall time, "
                  f"{ref_cpu / cpu:.1f}x in CPU time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=available_backends()[0], help="ours: comma-separated back-ends")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--reference-threads", type=int, default=os.cpu_count() or 1,
                   help="faiss threads of the reference (default: every core, faiss's own default)")
    p.add_argument("--amazon", type=Path, default=AMAZON, help="the Amazon data folder (Beauty item texts)")
    p.add_argument("--n", type=int, default=20_000, help="rows of the random input")
    args = p.parse_args()
    backends = args.backends.split(",")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; reference faiss threads "
          f"{args.reference_threads}, ours {RQKMeans().threads or 'faiss default'}")
    x = np.random.default_rng(0).normal(size=(args.n, 384)).astype(np.float32)
    bench("random unit vectors", x / np.linalg.norm(x, axis=1, keepdims=True), backends, args.repeat,
          args.reference_threads)
    beauty = beauty_embeddings(args.amazon)
    if beauty is not None:
        bench("Beauty item text (MiniLM)", beauty, backends, args.repeat, args.reference_threads)


if __name__ == "__main__":
    main()
