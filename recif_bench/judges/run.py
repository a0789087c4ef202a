"""One judge pass over one task's recorded generations, with the accounting results record.

The scorer of a judged task is named by its :class:`~recif_bench.benchmark.TaskInfo` (``judge``)
and looked up in :data:`SCORERS`; a new judged task reuses a scorer by name or registers its own.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from recif_bench.judges import prompt
from recif_bench.judges.base import ScoreResult, TextSample
from recif_bench.judges.bertscore import BertScorer
from recif_bench.judges.cache import JudgeCache, default_cache_dir
from recif_bench.judges.clients import JudgeClient, build_client
from recif_bench.judges.runner import JudgeRunner
from recif_bench.judges.settings import JudgeConfig

REFERENCE_BERTSCORE = BertScorer().describe()   # bert-base-chinese, layer 9: the paper's match weights

# (samples, runner, bertscorer) -> metrics, accounting and per-sample records
Scorer = Callable[[Sequence[TextSample], JudgeRunner, BertScorer], ScoreResult]

log = logging.getLogger(__name__)


def _wip_f1(samples: Sequence[TextSample], runner: JudgeRunner, bertscorer: BertScorer) -> ScoreResult:
    from recif_bench.judges.wip import score_item_understand

    return score_item_understand(samples, runner, bertscorer)


def _llm_score(samples: Sequence[TextSample], runner: JudgeRunner, bertscorer: BertScorer) -> ScoreResult:
    from recif_bench.judges.rec_reason import score_rec_reason

    return score_rec_reason(samples, runner)


SCORERS: dict[str, Scorer] = {"wip_f1": _wip_f1, "llm_score": _llm_score}
USES_BERTSCORE = {"wip_f1"}


def scorer_of(task: str) -> str:
    """The scorer name of a judged task (ValueError for a task without a judge)."""
    from recif_bench.benchmark import judged_tasks, task_info

    name = task_info(task).judge
    if name is None:
        raise ValueError(f"no judge for task {task!r}; judged tasks: {', '.join(judged_tasks())}")
    if name not in SCORERS:
        raise ValueError(f"task {task!r}: unknown judge scorer {name!r}; known: {', '.join(SCORERS)}")
    return name


def build_runner(config: JudgeConfig, client: JudgeClient | None = None, progress: bool = True) -> JudgeRunner:
    cache = JudgeCache(config.cache_dir or default_cache_dir())
    return JudgeRunner(client or build_client(config), cache, workers=config.workers, rpm=config.rpm,
                       max_attempts=config.max_attempts, retry_delay=config.retry_delay,
                       max_reasks=config.max_reasks, progress=progress)


def judge_task(task: str, samples: Sequence[TextSample], config: JudgeConfig, *, runner: JudgeRunner | None = None,
               bertscorer: BertScorer | None = None) -> ScoreResult:
    """Score one judged task; stats = the judge (public) + calls/tokens/failures."""
    scorer = scorer_of(task)
    runner = runner or build_runner(config)
    result = SCORERS[scorer](samples, runner, bertscorer or config.bertscorer())
    bertscore = result.stats.get("bertscore", REFERENCE_BERTSCORE)
    comparable = config.comparable_with_paper and bertscore == REFERENCE_BERTSCORE
    result.stats = {"kind": config.kind, "model": config.model, "prompt_version": prompt.prompt_version(),
                    "comparable_with_paper": comparable, **runner.stats.as_dict(), **result.stats}
    if result.stats["failed"]:
        first = next(r.get("error") for r in result.samples if r["status"] in ("judge_failed", "out_of_range"))
        log.warning("%s: the judge failed on %d of %d samples (first: %s)", task, result.stats["failed"],
                    len(samples), first)
    return result
