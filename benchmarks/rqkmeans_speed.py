"""RQ-KMeans 3 x 256: our fit beside the reference's algorithm (niter 20), paired, with the error per level.

Inputs: 20,000 x 384 random unit vectors (Gaussian, seed 0) and the item texts of each Amazon
category in ``--categories`` (default Beauty, 12,101 items) embedded with MiniLM (384-d; computed once
into the embedding cache, a minute or two on CPU; skipped when the Amazon data or the ``items``
extra is absent).

* reference: its algorithm re-expressed from spec openonerec_training §3 (not its code): per level a
  faiss ``Kmeans`` with faiss's defaults (every core, OpenMP), then the residual of each item after
  its nearest centroid (``|x|^2 + |c|^2 - 2 x.c`` in float32).
* ours: ``RQKMeans(3, 256, backend=...)`` at our defaults: the ``hartigan`` back-end (batched
  Hartigan rounds, 6 by default) or any other back-end at its own default iteration count.  The
  target: faster, at an error per level equal to or below the reference's (the last column says
  whether every level is at or below it).

Runs alternate (reference, ours, reference, ...), both on ``--threads`` threads (default every core,
even under ``OMP_NUM_THREADS=1``: faiss's and torch's pools are set explicitly, so neither side gets
more cores); fit wall and CPU seconds, and the mean squared error after each level on every item.  Timing on a shared machine is noisy: compare within one run.

    python benchmarks/rqkmeans_speed.py [--repeat 3] [--backends hartigan,faiss] [--categories beauty,sports]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from recif_bench.itemic.rqkmeans import DEFAULT_NITER, RQKMeans, available_backends, faiss_threads, quality_report

LEVELS, K, NITER, SEED = 3, 256, 20, 0
AMAZON = Path(os.environ.get("RECIF_AMAZON_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"))


def category_embeddings(amazon: Path, category: str = "beauty") -> np.ndarray | None:
    from recif_bench.data.reader import DataError

    try:
        from recif_bench.data.amazon import load_amazon
        from recif_bench.itemic.embed import SentenceTransformerEmbedder, cached_embed

        data = load_amazon(category, amazon)
        return cached_embed([data.texts[i] for i in data.items], SentenceTransformerEmbedder("minilm"))
    except (ImportError, OSError, ValueError, DataError) as exc:
        print(f"({category} embeddings skipped: {exc})")
        return None



def require_faiss() -> None:
    """One clear line, not a traceback, where the reference's library is not installed."""
    if importlib.util.find_spec("faiss") is None:
        raise SystemExit("the reference's algorithm runs on faiss: pip install '.[items]' (faiss-cpu)")


def reference_fit(x: np.ndarray, levels: int = LEVELS, k: int = K) -> list[np.ndarray]:
    """The reference's residual k-means: faiss Kmeans per level at faiss's defaults, greedy residuals."""
    import faiss

    residual, books = x.copy(), []
    for _ in range(levels):
        km = faiss.Kmeans(x.shape[1], k, niter=NITER, seed=SEED, verbose=False)   # one config for all levels
        km.train(residual)
        centroids = km.centroids
        distances = (centroids ** 2).sum(1)[None, :] - 2.0 * residual @ centroids.T
        residual -= centroids[distances.argmin(1)]
        books.append(centroids.copy())
    return books


def level_errors(x: np.ndarray, books: list[np.ndarray]) -> list[float]:
    model = RQKMeans(len(books), len(books[0]))
    model.codebooks = np.stack(books)
    return [r.mse for r in quality_report(model, x)]


def timed(fit) -> tuple[float, float, list[np.ndarray]]:
    wall, cpu = time.perf_counter(), time.process_time()
    books = fit()
    return time.perf_counter() - wall, time.process_time() - cpu, books


def bench(name: str, x: np.ndarray, backends: list[str], repeat: int, threads: int,
          precision: str = "auto", niter: int | None = None) -> None:
    print(f"\n{name}: {x.shape[0]:,} x {x.shape[1]}, RQ-KMeans {LEVELS} x {K}, seed {SEED}; reference niter {NITER}")
    print(f"{'run':<4} {'fit':<24} {'wall s':>8} {'cpu s':>8}  mse after level a / b / c")
    best: dict[str, tuple[float, float]] = {}
    reference_errors: list[float] = []
    for run in range(1, repeat + 1):
        for label in ["reference"] + [f"ours ({b}, niter {niter or DEFAULT_NITER[b]})" for b in backends]:
            if label == "reference":
                with faiss_threads(threads):
                    wall, cpu, books = timed(lambda: reference_fit(x))
            else:
                backend = label[6:].split(",")[0]
                wall, cpu, books = timed(lambda: list(RQKMeans(LEVELS, K, backend=backend, seed=SEED, niter=niter,
                                                               threads=threads,
                                                               precision=precision if backend == "hartigan" else "auto")
                                                      .fit(x, progress=False).codebooks))
            errors = level_errors(x, books)
            verdict = ""
            if label == "reference":
                reference_errors = errors
            else:
                verdict = "  at or below the reference on every level: " + (
                    "yes" if all(e <= r for e, r in zip(errors, reference_errors)) else "NO")
            print(f"{run:<4} {label:<24} {wall:>8.2f} {cpu:>8.2f}  " + " / ".join(f"{e:.4e}" for e in errors)
                  + verdict, flush=True)
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
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads of both sides: the reference's faiss and ours (default: every core, whatever "
                        "OMP_NUM_THREADS says, so both get the same cores)")
    p.add_argument("--amazon", type=Path, default=AMAZON, help="the Amazon data folder (item texts)")
    p.add_argument("--categories", default="beauty", help="comma-separated Amazon categories (beauty, sports)")
    p.add_argument("--n", type=int, default=20_000, help="rows of the random input")
    p.add_argument("--precision", default="auto", help="hartigan's products: auto | bfloat16 | float32")
    p.add_argument("--niter", type=int, default=None, help="ours: rounds / iterations (default: the back-end's)")
    args = p.parse_args()
    require_faiss()
    backends = args.backends.split(",")
    from recif_bench.itemic.hartigan import compute_dtype

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; reference faiss threads "
          f"{args.threads}, ours {args.threads} (faiss's or torch's); hartigan products in "
          f"{str(compute_dtype(args.precision)).removeprefix('torch.')}")
    x = np.random.default_rng(0).normal(size=(args.n, 384)).astype(np.float32)
    bench("random unit vectors", x / np.linalg.norm(x, axis=1, keepdims=True), backends, args.repeat,
          args.threads, args.precision, args.niter)
    for category in args.categories.split(","):
        embeddings = category_embeddings(args.amazon, category)
        if embeddings is not None:
            bench(f"{category} item text (MiniLM)", embeddings, backends, args.repeat, args.threads,
                  args.precision, args.niter)


if __name__ == "__main__":
    main()
