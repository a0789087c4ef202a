"""``recif-eval``: every RecIF-Bench score of one model, in one command.

A thin layer over ``lm_eval.simple_evaluate``: it validates the data before the model is loaded,
builds one of our K-candidate models, runs the task YAMLs, and writes the run directory of the
results contract.  Errors in inputs end the run with one line naming the input (exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from recif_bench.cli import configure_logging
from recif_bench import general, tasks_dir
from recif_bench.benchmark import AMAZON_CATEGORIES, AMAZON_GROUP, AMAZON_PREFIX, LAYER_NAMES, TASK_ORDER, TASKS, task_info
from recif_bench.data.reader import DataError, LoadReport, load_task, resolve_data_dir
from recif_bench.models.openai_backend import ServerError
from recif_bench.models.vllm_engine import EngineOptionError
from recif_bench.itemic.collisions import CatalogueError
from recif_bench.itemic.embed import EmbeddingError
from recif_bench.sid import SidError, SidFormat
from recif_bench.transfer import format_table as transfer_table

log = logging.getLogger("recif_bench")

GROUPS = {
    "recif_bench": TASK_ORDER,
    **{f"recif_layer{layer}": [t for t in TASK_ORDER if TASKS[t].layer == layer] for layer in LAYER_NAMES},
    AMAZON_GROUP: [f"{AMAZON_PREFIX}{c}" for c in AMAZON_CATEGORIES],
}
BACKENDS = {"hf": "recif-hf", "vllm": "recif-vllm", "openai": "recif-openai", "rec": "recif-rec"}


class UsageError(Exception):
    """A bad command line or setting (as opposed to bad data)."""


def expand_tasks(spec: str) -> list[str]:
    """``recif_bench``, layer groups, and task names with or without the ``recif_`` prefix."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part in GROUPS:
            names.extend(GROUPS[part])
        else:
            try:
                names.append(task_info(part).name)
            except KeyError as exc:
                raise UsageError(f"--tasks: {exc.args[0]}; groups: {', '.join(GROUPS)}") from None
    return list(dict.fromkeys(names))


def parse_model_args(text: str | None) -> dict[str, Any]:
    from lm_eval.utils import simple_parse_args_string

    try:
        return simple_parse_args_string(text or "")
    except ValueError as exc:
        raise UsageError(f"--model-args: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recif-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="popularity",
                   help="HF checkpoint dir or hub id (hf/vllm), served model name (openai), "
                        "or recommender name (rec). Default: popularity on mini-RecIF")
    p.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                   help="default: rec for a known recommender name, else hf")
    p.add_argument("--model-args", default=None,
                   help="extra backend arguments, k=v,k=v (e.g. batch_size=8,dtype=bfloat16,base_url=...)")
    p.add_argument("--tasks", default="recif_bench", help="tasks or groups, comma separated (default: recif_bench)")
    p.add_argument("--data-dir", default=None,
                   help="RecIF-Bench data root or Hugging Face dataset id (default: the generated mini-RecIF)")
    p.add_argument("--limit", type=int, default=None, help="first N rows of every task")
    p.add_argument("--sample", type=int, default=None, help="N rows drawn at random (with --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample, sampling and SID->item ties")
    p.add_argument("--thinking", action="store_true", help="thinking mode: one sampled thought, then the answer")
    p.add_argument("--constrained", action="store_true",
                   help="trie-constrained beam search over the catalogue's SIDs (hf backend)")
    p.add_argument("--think-ahead", default=None, metavar="T,m",
                   help="OneRec-Think think-ahead on the rec tasks (hf backend): T sampled reasoning paths, m beams "
                        "of the first 2 SID levels kept per path, then the fast model (--model-args fast_model=PATH, "
                        "default the same model) answers constrained to those prefixes; implies --thinking")
    p.add_argument("--chat-template", choices=["soft_switch", "model"], default="soft_switch",
                   help="the reference's Qwen3 soft-switch template (default) or the model's own")
    p.add_argument("--sid-levels", type=int, default=3)
    p.add_argument("--sid-codebook", type=int, default=8192)
    p.add_argument("--item-ids", default="auto",
                   help="Amazon tasks: item identifiers: auto (MiniLM + RQ-KMeans 3x256 + dedup, cached), "
                        "keywords (GRLM term IDs), or an item-codes file of `recif-items encode` ({category} allowed)")
    p.add_argument("--text-augmented", action="store_true",
                   help="Amazon tasks: SID followed by the item keywords (OpenOneRec Strategy 3)")
    p.add_argument("--collision-mode", choices=["group", "first"], default="group",
                   help="Amazon tasks: an identifier shared by several items returns all of them (GRLM) or the first")
    p.add_argument("--judge", default=None, metavar="SPEC",
                   help="LLM judge of the two text tasks: gemini[:<model>] | openai:<model>[@<base_url>] | "
                        "local:<path> | none (default: $RECIF_JUDGE or none)")
    p.add_argument("--judge-workers", type=int, default=None, help="concurrent judge calls (default 8)")
    p.add_argument("--judge-rpm", type=float, default=None, help="at most this many judge calls per minute")
    p.add_argument("--rejudge", default=None, metavar="RUN_DIR",
                   help="score the recorded generations of a finished run with the judge (no generation)")
    p.add_argument("--pipeline", default=None,
                   help="training pipeline this checkpoint belongs to (run.pipeline; the leaderboard plots its stages)")
    p.add_argument("--stage", default=None, help="training stage of this checkpoint, e.g. stage1, sft (model.stage)")
    p.add_argument("--general", nargs="?", const="mmlu_pro,gsm8k", default=None, metavar="TASKS",
                   help="also run lm-eval's own tasks/groups on the same model (general-ability retention); "
                        "bare --general = mmlu_pro,gsm8k (hub datasets)")
    p.add_argument("--general-include", action="append", default=[], metavar="DIR",
                   help="folder of extra lm-eval task YAMLs for --general (repeatable)")
    p.add_argument("--general-limit", type=int, default=None, help="first N documents of every general task")
    p.add_argument("--general-fewshot", type=int, default=None, help="few-shot count of the general tasks "
                                                                      "(default: each task's own)")
    p.add_argument("--output", default=None, help="run directory (default: results/<model>-<data>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if not args.verbose:   # lm-eval warns about every custom dataset; our own warnings stay on
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        with _environ_restored():
            return _dispatch(args)
    except (DataError, SidError, UsageError, FileNotFoundError, ServerError, ImportError,
            CatalogueError, EmbeddingError, NotImplementedError, EngineOptionError) as exc:
        print(f"recif-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recif-eval: interrupted; finished requests are kept — rerun with --resume", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    """The judge settings travel to the tasks through ``os.environ``; a run must not leave them behind.

    Without this, a second run in the same process (a test, a notebook, the demo's popularity
    baseline) would inherit the first run's judge and judge cache.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _dispatch(args: argparse.Namespace) -> int:
    if args.model == "demo" and not args.rejudge:
        from recif_bench.cli.demo_eval import run_demo

        return run_demo(args, run)   # builds the demo model once, then scores it and popularity
    return rejudge_run(args) if args.rejudge else run(args)


def run(args: argparse.Namespace) -> int:
    from recif_bench import harness
    from recif_bench.models import build_model
    from recif_bench.models.rec import supports

    started, clock = datetime.now(timezone.utc), time.perf_counter()
    fmt = SidFormat(args.sid_levels, args.sid_codebook)
    tasks = expand_tasks(args.tasks)
    backend = args.backend or ("rec" if args.model in _recommenders() else "hf")
    if args.think_ahead:
        args.think_ahead = _think_ahead(args.think_ahead, backend)
        args.thinking = True   # the reasoning paths need thinking prompts

    root = _data_root(args.data_dir, tasks)
    data_name = _data_name(args.data_dir, root, tasks)
    print(f"recif-eval: data {data_name} at {root}", file=sys.stderr)
    reports = {t: _validate(root, t, args, fmt) for t in tasks}
    general_tasks, general_manager = _general_tasks(args, backend)

    run_dir = Path(args.output or Path("results") / _run_name(args.model, data_name))
    if run_dir.exists() and (run_dir / "summary.json").exists() and not args.resume:
        print(f"recif-eval: {run_dir} holds a finished run; it will be replaced", file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)
    requests_db = run_dir / "requests.db"
    if requests_db.exists() and not args.resume:
        requests_db.unlink()

    metadata = {"data_dir": str(root), "thinking": args.thinking, "chat_template": args.chat_template,
                "item_ids": args.item_ids, "text_augmented": args.text_augmented,
                "collision_mode": args.collision_mode,
                "limit": args.limit, "sample": args.sample, "seed": args.seed,
                "sid_levels": fmt.levels, "sid_codebook": fmt.codebook_size}
    model_args = {**parse_model_args(args.model_args), **_backend_args(backend, args, root, fmt)}
    _configure_judge(args, run_dir, tasks)
    harness.reset_judge()
    lm = build_model(BACKENDS[backend], model_args)

    runnable = [t for t in tasks if supports(lm, task_info(t).kind)]
    skipped_kinds = [t for t in tasks if t not in runnable]
    from recif_bench.resume import ResumableLM

    resumable = ResumableLM(lm, requests_db)
    try:
        lm_results = _evaluate(resumable, runnable, metadata, args.seed) if runnable else {"results": {}}
        general_results = general.evaluate(resumable, general_tasks, general_manager, limit=args.general_limit,
                                           num_fewshot=args.general_fewshot, seed=args.seed) if general_tasks else {}
    finally:
        resumable.close()   # flushes finished requests even when interrupted

    from recif_bench import results as res

    for task in runnable:
        res.write_samples(run_dir, task_info(task).lm_eval_name,
                          lm_results.get("samples", {}).get(task_info(task).lm_eval_name, []))
    for name, samples in general_results.get("samples", {}).items():
        res.write_samples(run_dir, name, samples)
    write_judge_samples(run_dir, harness.JUDGE_SAMPLES)
    lm_results = general.merge_lm_results(lm_results, general_results)
    res.write_json(run_dir / "lm_eval_results.json", {k: v for k, v in lm_results.items() if k != "samples"})
    entries = {}
    for task in tasks:
        report = reports[task]
        name = task_info(task).lm_eval_name
        supported = task in runnable
        entries[task] = res.task_entry(task, n=report.n_loaded, n_skipped=report.skipped, n_flagged=report.flagged,
                                       metrics=res.task_metrics(lm_results, name) if supported else None,
                                       supported=supported, judge=harness.JUDGE_STATS.get(task))
    summary = res.build_summary(
        name=run_dir.name, started=started, elapsed=time.perf_counter() - clock,
        model={"name": args.model, "backend": backend, "source": _public_source(args.model, model_args),
               "fingerprint": res.model_fingerprint(args.model),
               **({"stage": args.stage} if args.stage else {})},
        data={"name": data_name, "location": str(root),
              "fingerprint": res.data_fingerprint(r.fingerprint for r in reports.values()),
              "files": {t: r.as_dict() for t, r in reports.items()},
              "limit": args.limit, "sample": args.sample},
        settings={"thinking": args.thinking, "constrained": args.constrained, "chat_template": args.chat_template,
                  "think_ahead": args.think_ahead and {"paths": args.think_ahead.paths, "beams": args.think_ahead.beams,
                                                       "fast_model": model_args.get("fast_model") or args.model},
                  "num_beams": 32, "num_return_sequences": 32, "seed": args.seed,
                  "sid_format": {"levels": fmt.levels, "codebook_size": fmt.codebook_size},
                  "judge": harness.judge_settings_for_summary(),
                  "requests": {"reused": resumable.reused, "computed": resumable.computed}},
        tasks=entries)
    if args.pipeline:
        summary["run"]["pipeline"] = args.pipeline
    if general_tasks:
        summary["general"] = general.summarize(general_results, general_tasks, {
            "limit": args.general_limit, "num_fewshot": args.general_fewshot, "include": args.general_include})
    res.write_json(run_dir / "summary.json", summary)
    for table in (format_table(summary), transfer_table(summary),
                  general.format_table(summary["general"]) if general_tasks else ""):
        if "\n" in table:    # a header without rows is left out
            print(table)
    if skipped_kinds:
        print(f"(not supported by {args.model}: {', '.join(skipped_kinds)})")
    print(f"results: {run_dir}")
    return 0


def _general_tasks(args: argparse.Namespace, backend: str) -> tuple[list[str], Any]:
    """The --general task names and the lm-eval TaskManager that finds them, checked before the model loads."""
    if not args.general:
        return [], None
    if backend == "rec":
        raise UsageError("--general: recommender baselines (rec backend) cannot run language tasks")
    for folder in args.general_include:
        if not Path(folder).is_dir():
            raise UsageError(f"--general-include: {folder}: no such folder")
    names = general.parse_tasks(args.general)
    manager = general.task_manager(names, args.general_include)
    try:
        general.check_tasks(manager, names)
    except general.GeneralTaskError as exc:
        raise UsageError(f"--general: {exc}") from None
    return names, manager


def _evaluate(lm, tasks: list[str], metadata: dict, seed: int) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=tasks_dir(), include_defaults=False, metadata=metadata)
    names = [task_info(t).lm_eval_name for t in tasks]
    return lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, bootstrap_iters=0,
                                   log_samples=True, random_seed=seed, numpy_random_seed=seed,
                                   torch_random_seed=seed, fewshot_random_seed=seed) or {}


def _validate(root: Path, task: str, args: argparse.Namespace, fmt: SidFormat) -> LoadReport:
    if task.startswith(AMAZON_PREFIX):
        from recif_bench import transfer

        return transfer.load(task, str(root), args.item_ids, args.text_augmented, args.collision_mode,
                             limit=args.limit, sample=args.sample, seed=args.seed)[2]
    _, report = load_task(root, task, limit=args.limit, sample=args.sample, seed=args.seed, fmt=fmt)
    return report


def _recommenders() -> set[str]:
    from recif_bench.models.rec import RECOMMENDERS

    return set(RECOMMENDERS)


def _backend_args(backend: str, args: argparse.Namespace, root: Path, fmt: SidFormat) -> dict[str, Any]:
    common = {"data_dir": str(root), "sid_levels": fmt.levels, "sid_codebook": fmt.codebook_size}
    if backend == "rec":
        return {"model": args.model, "item_ids": args.item_ids, "text_augmented": args.text_augmented, **common}
    llm = {"pretrained": args.model, "thinking": args.thinking, "seed": args.seed, **common}
    if args.constrained:
        if backend not in ("hf",):
            raise UsageError(f"--constrained is supported by the hf backend, not {backend}")
        llm["constrained"] = True
    if args.think_ahead:
        llm["think_ahead"] = str(args.think_ahead)
    if backend == "openai":
        llm["model"] = llm.pop("pretrained")
    return llm


def _think_ahead(value: str, backend: str) -> Any:
    """``--think-ahead T,m`` -> settings, checked before any data or model is loaded."""
    from recif_bench.models.think_ahead import ThinkAhead

    if backend != "hf":
        raise UsageError(f"--think-ahead is supported by the hf backend, not {backend}")
    try:
        return ThinkAhead.parse(value)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None


def _configure_judge(args: argparse.Namespace, run_dir: Path, tasks: list[str]) -> None:
    """The text tasks read their judge from the environment (so stock ``lm_eval`` can set it too).

    The judge is built here, before any model is loaded, so a bad spec or missing credentials end
    the run at once instead of after the generations.
    """
    from recif_bench.judges import JudgeConfigError, settings_from_env
    from recif_bench.judges.run import client_for

    for var, value in (("RECIF_JUDGE", args.judge), ("RECIF_JUDGE_WORKERS", args.judge_workers),
                       ("RECIF_JUDGE_RPM", args.judge_rpm)):
        if value is not None:
            os.environ[var] = str(value)
    os.environ.setdefault("RECIF_JUDGE_CACHE", str(run_dir / "judge_cache"))
    try:
        settings = settings_from_env()
        if settings is not None:
            client_for(settings)
    except JudgeConfigError as exc:
        raise UsageError(f"--judge: {exc}") from None
    if settings is not None and "item_understand" in tasks:
        from recif_bench.judges.bertscore import bertscorer_from_env

        try:
            bertscorer_from_env().check()
        except (OSError, ValueError) as exc:
            raise UsageError(f"--judge: {exc}") from None


def write_judge_samples(run_dir: Path, records: dict[str, list[dict]]) -> None:
    """``judge_<task>.jsonl``: per sample, how the judge scored it (or why it could not)."""
    import json

    for task, rows in records.items():
        with open(run_dir / f"judge_{task}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def rejudge_run(args: argparse.Namespace) -> int:
    from recif_bench.cli.rejudge import rejudge

    from recif_bench.judges import JUDGED_TASKS

    run_dir = Path(args.rejudge)
    _configure_judge(args, run_dir, list(JUDGED_TASKS))
    summary = rejudge(run_dir)
    print(format_table(summary))
    print(f"results: {run_dir}")
    return 0


def _data_root(data_dir: str | None, tasks: list[str]) -> Path:
    """The RecIF-Bench data root, or the Amazon folder (given explicitly) when every task is an Amazon one."""
    amazon = [t for t in tasks if t.startswith(AMAZON_PREFIX)]
    if not amazon:
        return resolve_data_dir(data_dir)
    if len(amazon) < len(tasks):
        raise UsageError("--tasks: run the Amazon tasks and the RecIF-Bench tasks separately (different --data-dir)")
    if not data_dir:
        raise UsageError("--data-dir: the Amazon tasks need the folder holding <category>/ (e.g. ../shared/data/amazon)")
    return Path(data_dir)


def _data_name(data_dir: str | None, root: Path, tasks: list[str] = ()) -> str:
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
    """Where the model came from, never with credentials (URLs lose their user:password part)."""
    url = str(model_args.get("base_url", ""))
    if url:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        host = parts.hostname or ""
        url = urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
        return f"{url} ({model})"
    return model


def format_table(summary: dict) -> str:
    """The 8-task table grouped by layer, headline metric per task, "--" for unsupported tasks."""
    lines = [f"{'layer':<34} {'task':<16} {'metric':<30} {'value':>8} {'n':>7}"]
    for layer, title in LAYER_NAMES.items():
        for task, entry in summary["tasks"].items():
            if entry["layer"] != layer:
                continue
            value = entry["headline"]["value"]
            shown = "--" if not entry["supported"] else ("n/a" if value is None else f"{value:.4f}")
            line = f"{title:<34} {task:<16} {entry['headline']['metric']:<30} {shown:>8} {entry['n']:>7}"
            lines.append(f"{line}  {_judge_note(entry)}".rstrip())
    return "\n".join(lines)


def _judge_note(entry: dict) -> str:
    """What a reader must know about a judged score: no judge, failures, a non-paper judge."""
    judge = entry.get("judge") if entry["supported"] else None
    if not judge:
        return ""
    if judge.get("kind") == "none":
        return "(judge not configured)"
    notes = [f"{judge['failed']} judge failures"] if judge.get("failed") else []
    if not judge.get("comparable_with_paper", True):
        notes.append(f"judge {judge['kind']}:{judge.get('model')}, not comparable with the paper")
    return f"({'; '.join(notes)})" if notes else ""


if __name__ == "__main__":
    sys.exit(main())
