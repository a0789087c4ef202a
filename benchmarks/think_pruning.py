"""How well does OneRec-Think's pruned context pick history items related to the target? (mini-RecIF)

    python benchmarks/think_pruning.py [--users 200] [--top-k 5]

mini-RecIF items belong to one of 20 topics (topic t owns the first SID codes [12t, 12t+12)), so
"related" can be measured: the share of pruned-context items on the target's topic, for the
caption-embedding relevance (MiniLM), the SID-overlap fallback, the last k views and k random
views.  A first code is a sub-cluster of a topic, so the SID overlap only sees same-topic items
that share it.  Prints one table; no model is run (the first run embeds the captions, minutes on CPU).

Measured (2 shared CPU cores, 200 pairs, top_k 5): whole history on topic 0.387; caption cosine
0.655, SID-code overlap 0.499, last k views 0.408, k random views 0.382.
"""

from __future__ import annotations

import argparse
import random

from recif_bench.data import mini, training
from trainers import think_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    users, maps, caption_table = training.load_raw(mini.default_data_dir() / "raw", mini.FORMAT)
    captions = dict(zip(caption_table["pid"].astype(int), caption_table["dense_caption"]))
    settings = think_data.Settings(model="unused", output_dir=".", users=args.users, top_k=args.top_k, fmt=mini.FORMAT)
    jobs = think_data.plan(users, maps, settings)
    vectors = think_data.item_vectors([p for j in jobs for p in (j.target, *j.history)], captions, settings.embedder)
    topic = {p: codes[0] // mini.SUBCLUSTERS for p, codes in maps.video.items()}
    rng = random.Random(0)
    pickers = {
        "caption cosine (MiniLM)": lambda j: think_data.relevance(j.target, j.history, maps.video, vectors),
        "SID-code overlap": lambda j: think_data.relevance(j.target, j.history, maps.video, {}),
        "last k views": lambda j: [float(i) for i in range(len(j.history))],
        "k random views": lambda j: [rng.random() for _ in j.history],
    }
    base = sum(topic[p] == topic[j.target] for j in jobs for p in j.history) / sum(len(j.history) for j in jobs)
    print(f"{len(jobs)} (user, target) pairs of mini-RecIF train users, top_k={args.top_k}; "
          f"share of the whole history on the target's topic: {base:.3f}")
    print(f"{'relevance':<26} {'on-topic share of the pruned context':>38}")
    for name, scores in pickers.items():
        kept = hits = 0
        for job in jobs:
            context = think_data.pruned_context(job.history, scores(job), args.top_k)
            kept += len(context)
            hits += sum(topic[p] == topic[job.target] for p in context)
        print(f"{name:<26} {hits / kept:>38.3f}")


if __name__ == "__main__":
    main()
