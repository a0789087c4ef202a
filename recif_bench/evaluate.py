"""``evaluate(model, tasks, settings) -> Summary``: every RecIF-Bench score of one model, in one call.

The one entry point under ``recif-eval``, the training pipeline and the benchmarks (in the spirit
of lm-eval's ``simple_evaluate``, which it wraps): it validates the data before the model is
loaded, builds one of our K-candidate models, runs the task YAMLs, judges the judged text tasks
with the given :class:`~recif_bench.judges.JudgeConfig`, and writes the run directory of the
results contract.  A bad input raises one of :data:`INPUT_ERRORS`, whose message names it.

    from recif_bench.evaluate import EvalSettings, evaluate
    summary = evaluate("popularity", "recif_layer1", EvalSettings(limit=50, output="results/pop"))
    summary.headline("video")
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from recif_bench import general, tasks_dir
from recif_bench import results as res
from recif_bench.benchmark import AMAZON_PREFIX, task_info
from recif_bench.data.reader import DataError, LoadReport, load_task, resolve_data_dir
from recif_bench.gc_tuning import batch_gc
from recif_bench.lm_eval_shims import quiet_git_probe
from recif_bench.itemic.collisions import CatalogueError
from recif_bench.itemic.embed import EmbeddingError
from recif_bench.judges import JudgeConfigError, JudgeSession
from recif_bench.judges.session import active
from recif_bench.identity import model_identity
from recif_bench.models.openai_backend import ServerError
from recif_bench.models.preflight import ModelError
from recif_bench.resume import ResumeMismatch, check_stored_identity
from recif_bench.run_dir import RunFolder, RunLocked
from recif_bench.models.vllm_engine import EngineOptionError
from recif_bench.settings import BACKENDS, EvalSettings, GeneralSettings, Model, UsageError, expand_tasks
from recif_bench.sid import SidError, SidFormat
from recif_bench.transfer import format_table as transfer_table

log = logging.getLogger("recif_bench")

# What a bad input raises: callers (the CLIs) turn these into one line, never a traceback.
INPUT_ERRORS = (DataError, SidError, UsageError, FileNotFoundError, ServerError, ImportError, CatalogueError,
                EmbeddingError, NotImplementedError, JudgeConfigError, EngineOptionError, ModelError, ResumeMismatch,
                RunLocked)


@dataclass
class Summary:
    """A finished run: ``record`` is its summary.json, ``run_dir`` the folder holding it."""

    run_dir: Path
    record: dict[str, Any]
    unsupported: list[str]     # tasks the model cannot do ("--" in the tables)

    def headline(self, task: str) -> float | None:
        return self.record["tasks"][task_info(task).name]["headline"]["value"]

    def report(self) -> str:
        """The tables ``recif-eval`` prints: RecIF-Bench, Amazon transfer and general tasks, then the folder."""
        tables = (res.format_table(self.record), transfer_table(self.record),
                  general.format_table(self.record["general"]) if "general" in self.record else "")
        lines = [table for table in tables if "\n" in table]    # a header without rows is left out
        if self.unsupported:
            lines.append(f"(not supported by {self.record['model']['name']}: {', '.join(self.unsupported)})")
        lines.append(f"results: {self.run_dir}")
        return "\n".join(lines)


def evaluate(model: str | Model, tasks: str | Sequence[str] = "recif_bench",
             settings: EvalSettings | None = None) -> Summary:
    """Evaluate ``model`` (a name, or a :class:`Model`) on ``tasks`` (task or group names) and write the run."""
    from recif_bench.models.rec import supports
    from recif_bench.resume import ResumableLM

    settings = settings or EvalSettings()
    model = model if isinstance(model, Model) else Model(model)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    check_numbers(settings)
    fmt = SidFormat(settings.sid_levels, settings.sid_codebook)
    names = expand_tasks(tasks)
    backend = model.backend or ("rec" if model.name in _recommenders() else "hf")
    if backend not in BACKENDS:
        raise UsageError(f"--backend: {backend!r}; known: {', '.join(BACKENDS)}")
    think_ahead = _think_ahead(settings.think_ahead, backend) if settings.think_ahead else None
    thinking = settings.thinking or think_ahead is not None    # the reasoning paths need thinking prompts

    # Everything is checked before the run folder is touched: data, catalogue files, model, args, judge.
    root = _data_root(settings.data_dir, names)
    data_name = _data_name(root, names)
    reports = {t: _validate(root, t, settings, fmt) for t in names}
    general_tasks, general_manager = _general_tasks(settings.general, backend)
    model_args = {**model.args, **_backend_args(backend, model.name, settings, thinking, think_ahead, root, fmt)}
    if model.lm is None:
        _check_model(backend, model.name, dict(model.args), model_args, names)
    identity = model_identity(model.name, backend, model_args)
    folder = RunFolder(Path(settings.output or Path("results") / _run_name(model.name, data_name)), settings.resume)
    judge = _judge_session(settings, folder.work, names)
    check_stored_identity(folder.resume_store, identity)

    metadata = {"data_dir": str(root), "thinking": thinking, "chat_template": settings.chat_template,
                "item_ids": settings.item_ids, "text_augmented": settings.text_augmented,
                "collision_mode": settings.collision_mode,
                "limit": settings.limit, "sample": settings.sample, "seed": settings.seed,
                "sid_levels": fmt.levels, "sid_codebook": fmt.codebook_size}
    with folder as run_dir:   # written beside the earlier run, swapped in at the end (recif_bench.run_dir)
        lm = model.lm if model.lm is not None else _build_model(backend, model.name, model_args)
        print(f"recif-eval: data {data_name} at {root}", file=sys.stderr)   # all checked and loaded: go
        if (folder.final / "summary.json").exists() and not settings.resume:
            print(f"recif-eval: {folder.final} holds a finished run; it is replaced when this one finishes",
                  file=sys.stderr)
        runnable = [t for t in names if supports(lm, task_info(t).kind)]
        resumable = ResumableLM(lm, run_dir / "requests.db", identity)
        try:
            with active(judge):
                lm_results = _run_tasks(resumable, runnable, metadata, settings) if runnable else {"results": {}}
            general_results = general.evaluate(resumable, general_tasks, general_manager,
                                               limit=settings.general.limit, num_fewshot=settings.general.num_fewshot,
                                               seed=settings.seed) if general_tasks else {}
        finally:
            resumable.close()   # flushes finished requests even when interrupted
        summary = _write_run(run_dir, folder.final.name, model, backend, model_args, identity, names, runnable,
                             reports, lm_results, general_results, general_tasks, judge, resumable, settings,
                             thinking, think_ahead, root, data_name, fmt, started, clock)
        folder.commit()
    return Summary(folder.final, summary, [t for t in names if t not in runnable])


def _write_run(run_dir: Path, run_name: str, model: Model, backend: str, model_args: dict[str, Any],
               identity: dict[str, Any], names: list[str], runnable: list[str], reports: dict[str, LoadReport],
               lm_results: dict, general_results: dict, general_tasks: list[str], judge: JudgeSession,
               resumable: Any, settings: EvalSettings, thinking: bool, think_ahead: Any, root: Path,
               data_name: str, fmt: SidFormat, started: datetime, clock: float) -> dict[str, Any]:
    """Every file of the run (samples, judge records, lm-eval results, summary.json) into ``run_dir``."""
    for task in runnable:
        name = task_info(task).lm_eval_name
        res.write_samples(run_dir, name, lm_results.get("samples", {}).get(name, []))
    for name, samples in general_results.get("samples", {}).items():
        res.write_samples(run_dir, name, samples)
    res.write_judge_samples(run_dir, judge.samples)
    stderrs = {task: res.task_stderrs(task, lm_results.get("samples", {}).get(task_info(task).lm_eval_name, []),
                                      judge.samples.get(task_info(task).name), settings.seed) for task in runnable}
    for task, values in stderrs.items():
        res.with_stderrs(lm_results, task_info(task).lm_eval_name, values)
    lm_results = general.merge_lm_results(lm_results, general_results)
    res.write_json(run_dir / "lm_eval_results.json",
                   res.full_lm_eval_results(lm_results, model_source=backend, model_name=model.name,
                                            elapsed=time.perf_counter() - clock))
    entries = {}
    for task in names:
        report, name, supported = reports[task], task_info(task).lm_eval_name, task in runnable
        entries[task] = res.task_entry(task, n=report.n_loaded, n_skipped=report.skipped, n_flagged=report.flagged,
                                       metrics=res.task_metrics(lm_results, name) if supported else None,
                                       supported=supported, judge=judge.stats.get(task), stderr=stderrs.get(task))
    k = _beam_width(names)
    summary = res.build_summary(
        name=run_name, started=started, elapsed=time.perf_counter() - clock,
        model={"name": model.name, "backend": backend, "source": _public_source(model.name, model_args),
               "fingerprint": identity["model"],
               **({"stage": settings.stage} if settings.stage else {})},
        data={"name": data_name, "location": str(root),
              "fingerprint": res.data_fingerprint(r.fingerprint for r in reports.values()),
              "files": {t: r.as_dict() for t, r in reports.items()},
              "limit": settings.limit, "sample": settings.sample},
        settings={"thinking": thinking, "constrained": settings.constrained, "chat_template": settings.chat_template,
                  "think_ahead": think_ahead and {"paths": think_ahead.paths, "beams": think_ahead.beams,
                                                  "fast_model": model_args.get("fast_model") or model.name},
                  "num_beams": k, "num_return_sequences": k, "seed": settings.seed,
                  "sid_format": {"levels": fmt.levels, "codebook_size": fmt.codebook_size},
                  "judge": judge.public(),
                  "uncertainty": {**res.UNCERTAINTY, "seed": settings.seed},
                  "requests": {"reused": resumable.reused, "computed": resumable.computed}},
        tasks=entries)
    if settings.pipeline:
        summary["run"]["pipeline"] = settings.pipeline
    if general_tasks:
        summary["general"] = general.summarize(general_results, general_tasks, {
            "limit": settings.general.limit, "num_fewshot": settings.general.num_fewshot,
            "include": list(settings.general.include)})
    res.write_json(run_dir / "summary.json", summary)
    return summary


def check_numbers(settings: EvalSettings) -> None:
    """Counts and sizes that cannot mean anything are refused (``--limit -1`` used to drop one row)."""
    general = settings.general
    for flag, value, low in (("--limit", settings.limit, 1), ("--sample", settings.sample, 1),
                             ("--seed", settings.seed, 0), ("--sid-levels", settings.sid_levels, 1),
                             ("--sid-codebook", settings.sid_codebook, 2),
                             ("--general-limit", general and general.limit, 1),
                             ("--general-fewshot", general and general.num_fewshot, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise UsageError(f"{flag} {value}: must be an integer >= {low}")


def _beam_width(tasks: Sequence[str]) -> int | None:
    """K of the run's rec tasks (one run never mixes RecIF-Bench and Amazon tasks); None without rec tasks."""
    ks = {task_info(t).k for t in tasks if task_info(t).k}
    return max(ks) if ks else None


def _judge_session(settings: EvalSettings, run_dir: Path, tasks: Sequence[str]) -> JudgeSession:
    """The run's judge, checked before any model is loaded: a bad spec or missing credentials end the
    run at once instead of after the generations.  Its cache defaults to the run folder."""
    config = settings.judge
    if config is not None and config.cache_dir is None:
        config = replace(config, cache_dir=str(run_dir / "judge_cache"))
    session = JudgeSession(config)
    try:
        session.check(t for t in tasks if task_info(t).judge)
    except (JudgeConfigError, OSError, ValueError) as exc:
        raise UsageError(f"--judge: {exc}") from None
    return session


def _check_model(backend: str, model: str, user_args: dict[str, Any], model_args: dict[str, Any],
                 tasks: Sequence[str]) -> None:
    """The model-args a user gave are known to the backend; a local model folder is usable and runs no code;
    a recommender's checkpoints are read now (once: the loader caches them), not in the middle of the run."""
    import importlib

    from lm_eval.api.registry import get_model

    from recif_bench.models import BACKEND_MODULES
    from recif_bench.models.preflight import check_model_args, check_source

    name = BACKENDS[backend]
    importlib.import_module(f"recif_bench.models.{BACKEND_MODULES[name]}")
    if backend != "vllm":   # recif-vllm checks its engine options against vLLM's own EngineArgs
        check_model_args(get_model(name), user_args)
    if backend in ("hf", "vllm"):
        check_source(model, model_args)
        if model_args.get("fast_model"):
            check_source(str(model_args["fast_model"]), model_args, "--model-args fast_model=")
    elif backend == "rec":
        if model not in _recommenders():
            raise UsageError(f"--model {model}: not a recommender of the rec backend; known: "
                             f"{', '.join(sorted(_recommenders()))}")
        if model_args.get("checkpoint"):
            _check_checkpoints(model, str(model_args["checkpoint"]), tasks)


def _check_checkpoints(kind: str, checkpoint: str, tasks: Sequence[str]) -> None:
    """Every checkpoint the run will read (one per Amazon category with ``{category}``) loads, or one line."""
    from recif_bench.models.sequential import load_model
    from recif_bench.recommenders import LOADERS

    if kind not in LOADERS:
        return
    categories = {t.removeprefix(AMAZON_PREFIX) for t in tasks if t.startswith(AMAZON_PREFIX)} or {""}
    for category in sorted(categories):
        path = checkpoint.replace("{category}", category)
        if not Path(path).exists():
            raise UsageError(f"--model-args checkpoint={path}: no such file or folder")
        try:
            load_model(kind, path)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelError(f"--model {kind}: {exc}") from None


def _build_model(backend: str, name: str, model_args: dict[str, Any]):
    """The backend's model; what it raises while loading (missing files, hub offline) is one line naming it."""
    from recif_bench.models import build_model
    from recif_bench.models.preflight import load_error

    try:
        return build_model(BACKENDS[backend], model_args)
    except Exception as exc:   # whatever the loader raises (OSError, SafetensorError, ...) is about this model
        if log.isEnabledFor(logging.DEBUG):   # -v: the whole story
            raise
        raise load_error(name, exc) from None


def _general_tasks(spec: GeneralSettings | None, backend: str) -> tuple[list[str], Any]:
    """The general task names and the lm-eval TaskManager that finds them, checked before the model loads."""
    if spec is None:
        return [], None
    if backend == "rec":
        raise UsageError("--general: recommender baselines (rec backend) cannot run language tasks")
    for folder in spec.include:
        if not Path(folder).is_dir():
            raise UsageError(f"--general-include: {folder}: no such folder")
    names = list(dict.fromkeys(spec.tasks))
    manager = general.task_manager(names, list(spec.include))
    try:
        general.check_tasks(manager, names)
    except general.GeneralTaskError as exc:
        raise UsageError(f"--general: {exc}") from None
    return names, manager


def _run_tasks(lm, tasks: list[str], metadata: dict, settings: EvalSettings) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    include = [tasks_dir(), *(str(p) for p in settings.include_paths)]
    manager = TaskManager(include_path=include, include_defaults=False, metadata=metadata)
    names = [task_info(t).lm_eval_name for t in tasks]
    seed = settings.seed
    with batch_gc(), quiet_git_probe():
        return lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, bootstrap_iters=0,
                                       log_samples=True, random_seed=seed, numpy_random_seed=seed,
                                       torch_random_seed=seed, fewshot_random_seed=seed) or {}


def _validate(root: Path, task: str, settings: EvalSettings, fmt: SidFormat) -> LoadReport:
    if task.startswith(AMAZON_PREFIX):
        from recif_bench import transfer

        return transfer.load(task, str(root), settings.item_ids, settings.text_augmented, settings.collision_mode,
                             limit=settings.limit, sample=settings.sample, seed=settings.seed)[2]
    _, report = load_task(root, task, limit=settings.limit, sample=settings.sample, seed=settings.seed, fmt=fmt)
    _check_mapping(root, task, fmt, settings.seed)
    return report


def _check_mapping(root: Path, task: str, fmt: SidFormat, seed: int) -> None:
    """The task's SID -> item file is read now, so a broken one stops the run before generation
    (once per process and file: the other rec tasks' checks, their documents and scoring reuse it)."""
    from recif_bench.sid import load_item_map

    mapping = task_info(task).mapping_file
    if not mapping or not (root / mapping).exists():
        return
    try:
        items = load_item_map(root / mapping, fmt, seed=seed)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(root / mapping, f"unreadable SID -> item file ({type(exc).__name__})") from None
    if not len(items):
        raise DataError(root / mapping, "no entries (expected a JSON object of packed SID -> item list)")


def _recommenders() -> set[str]:
    from recif_bench.models.rec import RECOMMENDERS

    return set(RECOMMENDERS)


def _backend_args(backend: str, name: str, settings: EvalSettings, thinking: bool, think_ahead: Any,
                  root: Path, fmt: SidFormat) -> dict[str, Any]:
    common = {"data_dir": str(root), "sid_levels": fmt.levels, "sid_codebook": fmt.codebook_size}
    if backend == "rec":
        return {"model": name, "item_ids": settings.item_ids, "text_augmented": settings.text_augmented, **common}
    llm = {"pretrained": name, "thinking": thinking, "seed": settings.seed, **common}
    if settings.constrained:
        if backend != "hf":
            raise UsageError(f"--constrained is supported by the hf backend, not {backend}")
        llm["constrained"] = True
    if think_ahead is not None:
        llm["think_ahead"] = str(think_ahead)
    if backend == "openai":
        llm["model"] = llm.pop("pretrained")
    return llm


def _think_ahead(value: str, backend: str) -> Any:
    """``T,m`` -> think-ahead settings, checked before any data or model is loaded."""
    from recif_bench.models.think_ahead import ThinkAhead

    if backend != "hf":
        raise UsageError(f"--think-ahead is supported by the hf backend, not {backend}")
    try:
        return ThinkAhead.parse(value)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None


def _data_root(data_dir: str | Path | None, tasks: list[str]) -> Path:
    """The RecIF-Bench data root, or the Amazon folder (given explicitly) when every task is an Amazon one."""
    amazon = [t for t in tasks if t.startswith(AMAZON_PREFIX)]
    if not amazon:
        return resolve_data_dir(None if data_dir is None else str(data_dir))
    if len(amazon) < len(tasks):
        raise UsageError("--tasks: run the Amazon tasks and the RecIF-Bench tasks separately (different --data-dir)")
    if not data_dir:
        raise UsageError("--data-dir: the Amazon tasks need the folder holding <category>/ (e.g. ../shared/data/amazon)")
    return Path(data_dir)


def _data_name(root: Path, tasks: Sequence[str]) -> str:
    from recif_bench.data.mini import MARKER

    if tasks and all(t.startswith(AMAZON_PREFIX) for t in tasks):
        return "amazon-" + "+".join(t.removeprefix(AMAZON_PREFIX) for t in tasks)
    if (root / MARKER).exists():
        return "mini-recif"
    if (root / "label_pred").is_dir() and (root / "video").is_dir():
        return "recif-bench"
    return "custom"


def _run_name(model: str, data_name: str) -> str:
    stem = Path(model.rstrip("/")).name or "model"
    return f"{stem}-{data_name}"


def _public_source(model: str, model_args: dict[str, Any]) -> str:
    """Where the model came from, never with credentials (URLs lose their user:password and query parts)."""
    from recif_bench.judges.settings import public_url
    from recif_bench.redact import scrub

    url = model_args.get("base_url")
    return scrub(f"{public_url(str(url))} ({model})" if url else model)
