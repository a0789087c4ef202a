"""LLM-as-judge scoring of the judged text tasks (item_understand, rec_reason).

Clients (Gemini, OpenAI-compatible, local transformers) sit behind one ``complete(prompt)``
interface; ``JudgeRunner`` adds concurrency, rate limit, retries, re-asks and a content-addressed
cache; ``wip`` and ``rec_reason`` turn judge answers into the reference's scores; a
``JudgeSession`` judges one run's tasks with one ``JudgeConfig``.  Importing this package is
light: clients and models load on first use.
"""

from recif_bench.judges.base import ScoreResult, TextSample
from recif_bench.judges.run import SCORERS, build_runner, judge_task
from recif_bench.judges.session import JudgeSession
from recif_bench.judges.settings import JudgeConfig, JudgeConfigError, config_from_env, parse_spec

__all__ = ["SCORERS", "JudgeConfig", "JudgeConfigError", "JudgeSession", "ScoreResult", "TextSample",
           "build_runner", "config_from_env", "judge_task", "parse_spec"]
