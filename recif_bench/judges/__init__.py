"""LLM-as-judge scoring of the two text tasks (item_understand, rec_reason).

Clients (Gemini, OpenAI-compatible, local transformers) sit behind one ``complete(prompt)``
interface; ``JudgeRunner`` adds concurrency, rate limit, retries, re-asks and a content-addressed
cache; ``wip`` and ``rec_reason`` turn judge answers into the reference's scores.  Importing this
package is light: clients and models load on first use.
"""

from recif_bench.judges.base import ScoreResult, TextSample
from recif_bench.judges.run import JUDGED_TASKS, build_runner, judge_task
from recif_bench.judges.settings import JudgeConfigError, JudgeSettings, parse_spec, settings_from_env

__all__ = ["JUDGED_TASKS", "JudgeConfigError", "JudgeSettings", "ScoreResult", "TextSample", "build_runner",
           "judge_task", "parse_spec", "settings_from_env"]
