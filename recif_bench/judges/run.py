"""One judge pass over one task's recorded generations, with the accounting results record."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Sequence

from recif_bench.judges import prompt
from recif_bench.judges.base import ScoreResult, TextSample
from recif_bench.judges.bertscore import BertScorer, bertscorer_from_env
from recif_bench.judges.cache import JudgeCache, default_cache_dir
from recif_bench.judges.clients import JudgeClient, build_client
from recif_bench.judges.runner import JudgeRunner
from recif_bench.judges.settings import JudgeSettings

JUDGED_TASKS = ("item_understand", "rec_reason")
REFERENCE_BERTSCORE = BertScorer().describe()   # bert-base-chinese, layer 9: the paper's match weights

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def client_for(settings: JudgeSettings) -> JudgeClient:
    """One client per judge and process (a local judge model is loaded once for both tasks)."""
    return build_client(settings)


def build_runner(settings: JudgeSettings, client: JudgeClient | None = None, progress: bool = True) -> JudgeRunner:
    cache = JudgeCache(settings.cache_dir or default_cache_dir())
    return JudgeRunner(client or client_for(settings), cache, workers=settings.workers, rpm=settings.rpm,
                       max_attempts=settings.max_attempts, retry_delay=settings.retry_delay,
                       max_reasks=settings.max_reasks, progress=progress)


def judge_task(task: str, samples: Sequence[TextSample], settings: JudgeSettings, *, runner: JudgeRunner | None = None,
               bertscorer=None) -> ScoreResult:
    """Score ``item_understand`` or ``rec_reason``; stats = settings (public) + calls/tokens/failures."""
    runner = runner or build_runner(settings)
    if task == "item_understand":
        from recif_bench.judges.wip import score_item_understand

        result = score_item_understand(samples, runner, bertscorer or bertscorer_from_env())
    elif task == "rec_reason":
        from recif_bench.judges.rec_reason import score_rec_reason

        result = score_rec_reason(samples, runner)
    else:
        raise ValueError(f"no judge for task {task!r}; judged tasks: {', '.join(JUDGED_TASKS)}")
    bertscore = result.stats.get("bertscore", REFERENCE_BERTSCORE)
    comparable = settings.comparable_with_paper and bertscore == REFERENCE_BERTSCORE
    result.stats = {"kind": settings.kind, "model": settings.model, "prompt_version": prompt.prompt_version(),
                    "comparable_with_paper": comparable, **runner.stats.as_dict(), **result.stats}
    if result.stats["failed"]:
        first = next(r.get("error") for r in result.samples if r["status"] in ("judge_failed", "out_of_range"))
        log.warning("%s: the judge failed on %d of %d samples (first: %s)", task, result.stats["failed"],
                    len(samples), first)
    return result
