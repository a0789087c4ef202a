"""One run's judge: its config, one client for all judged tasks, and what it did per task.

``evaluate()`` opens a :class:`JudgeSession` and makes it the current one for the run (:func:`active`);
the judged tasks' lm-eval aggregations (:mod:`recif_bench.harness`) ask :func:`current` for it,
since lm-eval hands an aggregation nothing but the per-sample items.  Under stock ``lm_eval`` no
session is active: the first aggregation opens one from the environment, that CLI's only channel.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterable, Iterator, Sequence

from recif_bench.judges.base import TextSample
from recif_bench.judges.clients import JudgeClient, build_client
from recif_bench.judges.settings import JudgeConfig, config_from_env

NO_JUDGE = {"kind": "none", "calls": 0, "failed": 0, "tokens": 0, "note": "judge not configured"}


class JudgeSession:
    """Judges tasks with one config; ``stats`` / ``samples`` hold each judged task's accounting and records."""

    def __init__(self, config: JudgeConfig | None, progress: bool = True):
        self.config = config
        self.progress = progress
        self.stats: dict[str, dict[str, Any]] = {}           # task -> summary.json tasks.<task>.judge
        self.samples: dict[str, list[dict[str, Any]]] = {}   # task -> per-sample judge records
        self._client: JudgeClient | None = None
        self._scored: dict[tuple[str, tuple], dict[str, Any]] = {}

    def check(self, tasks: Iterable[str]) -> None:
        """Build the client (and load-check BERTScore when a task needs it) before any generation,
        so a bad spec or missing credentials end the run at once (JudgeConfigError, OSError, ValueError)."""
        if self.config is None:
            return
        from recif_bench.judges.run import USES_BERTSCORE, scorer_of

        self.client()
        if any(scorer_of(task) in USES_BERTSCORE for task in tasks):
            self.config.bertscorer().check()

    def client(self) -> JudgeClient:
        """One client per session (a local judge model is loaded once for every task)."""
        if self._client is None:
            self._client = build_client(self.config)
        return self._client

    def judge(self, task: str, items: Sequence[Sequence[str]]) -> dict[str, Any]:
        """The judged metrics of ``task`` over its ``(sample_id, generation, answer)`` items.

        Without a judge the scores are empty (the generations are still recorded).  One pass per
        task and corpus: the task's several judged metrics share it.
        """
        key = (task, tuple(tuple(map(str, item)) for item in items))
        if key not in self._scored:
            self._scored[key] = self._judge(task, key[1])
        return self._scored[key]

    def _judge(self, task: str, items: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
        if self.config is None:
            self.stats[task] = dict(NO_JUDGE)
            return {}
        from recif_bench.judges.run import build_runner, judge_task

        samples = [TextSample(*item) for item in items]
        runner = build_runner(self.config, self.client(), progress=self.progress)
        result = judge_task(task, samples, self.config, runner=runner)
        self.stats[task], self.samples[task] = result.stats, result.samples
        return result.metrics

    def public(self) -> dict[str, Any] | None:
        """The judge as summary.json records it (no credentials), or None."""
        from recif_bench.judges.prompt import prompt_version

        return None if self.config is None else {**self.config.public(), "prompt_version": prompt_version()}


_CURRENT: ContextVar[JudgeSession | None] = ContextVar("recif_judge_session", default=None)


@contextlib.contextmanager
def active(session: JudgeSession) -> Iterator[JudgeSession]:
    """Make ``session`` the one the task aggregations use, for the duration of one evaluation."""
    token = _CURRENT.set(session)
    try:
        yield session
    finally:
        _CURRENT.reset(token)


def current() -> JudgeSession:
    session = _CURRENT.get()
    if session is None:   # stock lm_eval: its command line passes the judge only through the environment
        session = JudgeSession(config_from_env())
        _CURRENT.set(session)
    return session
