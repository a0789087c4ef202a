"""Python's cyclic garbage collector, set for one large evaluation batch.

At scoring time lm-eval holds every task's documents, requests and responses (millions of
objects at full RecIF-Bench size) and calls ``process_results`` once per document, allocating a
few objects each time.  With the default first-generation threshold (700 allocations) the
collector keeps walking that whole heap: label_pred's 346k documents took 0.59 s in a
per-document loop like lm-eval's, 0.16 s with the threshold raised (on the full-size outputs that
``benchmarks/scoring_speed.py`` writes).  Garbage is still collected, in larger batches; the
previous thresholds are restored afterwards.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

BATCH_THRESHOLD = 200_000     # allocations between first-generation collections


@contextmanager
def batch_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(max(BATCH_THRESHOLD, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
