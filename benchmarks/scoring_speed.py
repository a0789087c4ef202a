"""Scoring alone at full RecIF-Bench size: prints seconds (target: under 30 s on 2 cores).

Synthetic outputs: 38,781 + 27,677 + 27,910 + 34,891 + 1,000 rec samples x 32 candidates (about 2%
malformed), scored in SID and item (pid_) mode against a 1M-item SID->item map with collisions;
346,190 label_pred samples over 30,000 users for AUC and wuAUC.

    python benchmarks/scoring_speed.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from recif_bench import sid
from recif_bench.metrics.classification import auc, wuauc
from recif_bench.metrics.ranking import RecScorer

REC_SIZES = {"video": 38_781, "ad": 27_677, "product": 27_910, "label_cond": 34_891, "interactive": 1_000}
LABEL_PRED_SIZE, USERS, ITEMS, K = 346_190, 30_000, 1_000_000, 32


def synthetic_item_map(rng: random.Random, n_items: int) -> tuple[sid.SidItemMap, list[tuple[int, int, int]]]:
    codes = [(rng.randrange(8192), rng.randrange(8192), rng.randrange(8192)) for _ in range(n_items // 2)]
    entries: dict[int, list[sid.ItemEntry]] = {}
    for item in range(1, n_items + 1):   # two items per SID on average: collisions everywhere
        key = sid.pack(codes[rng.randrange(len(codes))])
        entries.setdefault(key, []).append(sid.ItemEntry(item, rng.randrange(100), rng.randrange(5)))
    return sid.SidItemMap(entries), codes


def synthetic_rec(rng: random.Random, n: int, codes: list) -> list[tuple[list[str], str, list[int]]]:
    popular = codes[:5000]   # beams concentrate on popular SIDs, so candidate strings repeat
    samples = []
    for _ in range(n):
        truth = [rng.choice(popular) for _ in range(rng.randint(1, 10))]
        candidates = [sid.render_body(rng.choice(popular)) if rng.random() > 0.02 else "<s_a_1><s_b_2>"
                      for _ in range(K)]
        samples.append((candidates, sid.render_many(truth), [rng.randrange(1, ITEMS) for _ in truth]))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    args = parser.parse_args()
    rng = random.Random(0)
    item_map, codes = synthetic_item_map(rng, int(ITEMS * args.scale))
    data = {task: synthetic_rec(rng, int(n * args.scale), codes) for task, n in REC_SIZES.items()}
    n_label = int(LABEL_PRED_SIZE * args.scale)
    gen = np.random.default_rng(0)
    scores, labels = gen.random(n_label), gen.integers(0, 2, n_label)
    users = gen.integers(0, int(USERS * args.scale) or 1, n_label)
    print(f"inputs built: {sum(len(v) for v in data.values()):,} rec samples x {K}, {n_label:,} label_pred samples")

    total = 0.0
    for task, samples in data.items():
        scorer = RecScorer(item_map=item_map)
        start = time.perf_counter()
        for candidates, answer, ids in samples:
            scorer(candidates, answer, ids)
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f"{task:<12} {len(samples):>7,} samples  {elapsed:6.2f} s")
    for name, fn in (("auc", lambda: auc(scores, labels)), ("wuauc", lambda: wuauc(scores, labels, users))):
        start = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f"{name:<12} {n_label:>7,} samples  {elapsed:6.2f} s  (value {value:.4f})")
    print(f"total scoring time: {total:.2f} s (target < 30 s)")


if __name__ == "__main__":
    main()
