"""RQ-KMeans 3 x 256: fit / encode time and quantisation error per available back-end.

Two inputs: 100k x 64 float32 (unit-normalised Gaussian) and the Beauty item-text embeddings
(12,101 x 384, MiniLM; read from the embedding cache, computed on first use, which takes minutes
on CPU; skipped when shared/data/amazon or the ``items`` extra is absent).

    python benchmarks/rqkmeans_speed.py [--backends faiss,sklearn,torch] [--n 100000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from recif_bench.itemic.rqkmeans import RQKMeans, available_backends, collision_stats, quality_report

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"


def beauty_embeddings() -> np.ndarray | None:
    try:
        from recif_bench.data.amazon import load_amazon
        from recif_bench.itemic.embed import SentenceTransformerEmbedder, cached_embed

        data = load_amazon("beauty", SHARED)
        return cached_embed([data.texts[i] for i in data.items], SentenceTransformerEmbedder("minilm"))
    except (ImportError, OSError, ValueError) as exc:
        print(f"(Beauty embeddings skipped: {exc})")
        return None


def bench(name: str, x: np.ndarray, backends: list[str]) -> None:
    print(f"\n{name}: {x.shape[0]} x {x.shape[1]}, RQ-KMeans 3 x 256")
    print(f"{'backend':<8} {'fit s':>8} {'encode s':>9} {'mse':>10} {'rel.err':>8} {'collisions':>10}")
    for backend in backends:
        model = RQKMeans(3, 256, backend=backend, niter=20, seed=0).fit(x, progress=False)
        start = time.perf_counter()
        codes = model.encode(x)
        encode_s = time.perf_counter() - start
        last = quality_report(model, x, codes)[-1]
        print(f"{backend:<8} {model.fit_seconds:>8.2f} {encode_s:>9.2f} {last.mse:>10.3e} {last.relative_error:>8.4f} "
              f"{collision_stats(codes)['collision_rate']:>10.2%}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=",".join(available_backends()))
    p.add_argument("--n", type=int, default=100_000)
    args = p.parse_args()
    backends = args.backends.split(",")
    x = np.random.default_rng(0).normal(size=(args.n, 64)).astype(np.float32)
    bench("synthetic", x / np.linalg.norm(x, axis=1, keepdims=True), backends)
    beauty = beauty_embeddings()
    if beauty is not None:
        bench("Beauty item text (MiniLM)", beauty, backends)


if __name__ == "__main__":
    main()
