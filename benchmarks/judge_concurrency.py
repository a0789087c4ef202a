"""Judge throughput: 200 rec_reason samples, a fake judge that answers in 0.2 s, 8 workers vs 1.

Runs the real scoring path (prompt rendering, ``JudgeRunner``, answer parsing, the mean) with an
in-process client that sleeps instead of calling a server, and no cache, so every sample costs one
call.  Target: 8 workers finish in well under 1/4 of the sequential time (ideal 1/8).

    python benchmarks/judge_concurrency.py [--samples 200] [--latency 0.2] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import time

from recif_bench.judges import TextSample
from recif_bench.judges.clients import Reply
from recif_bench.judges.rec_reason import score_rec_reason
from recif_bench.judges.runner import JudgeRunner


class SlowJudge:
    identity = "fake:slow"

    def __init__(self, latency: float):
        self.latency = latency

    def complete(self, prompt: str) -> Reply:
        time.sleep(self.latency)
        return Reply(json.dumps({"llm_score": 4, "llm_reason": "fake"}), tokens=len(prompt))


def timed(samples: list[TextSample], latency: float, workers: int) -> tuple[float, float]:
    runner = JudgeRunner(SlowJudge(latency), cache=None, workers=workers, progress=False)
    start = time.perf_counter()
    result = score_rec_reason(samples, runner)
    assert result.stats["failed"] == 0 and runner.stats.calls == len(samples)
    return time.perf_counter() - start, result.metrics["llm_score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    samples = [TextSample(str(i), f"推荐理由 {i}", f"标准答案 {i}") for i in range(args.samples)]
    sequential, score_1 = timed(samples, args.latency, 1)
    parallel, score_n = timed(samples, args.latency, args.workers)
    assert score_1 == score_n
    print(f"{args.samples} samples, judge latency {args.latency:.2f} s")
    print(f"sequential (1 worker): {sequential:7.2f} s")
    print(f"{args.workers} workers:           {parallel:7.2f} s   ({parallel / sequential:.3f} of sequential)")


if __name__ == "__main__":
    main()
