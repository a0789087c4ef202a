"""``recif-eval``: every RecIF-Bench score of one model, in one command.

Parses the command line into :class:`~recif_bench.settings.EvalSettings` (and the judge flags and
``RECIF_JUDGE*`` variables into a :class:`~recif_bench.judges.JudgeConfig`), calls
:func:`recif_bench.evaluate.evaluate`, and prints the tables.  Errors in inputs end the run with
one line naming the input (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from recif_bench.cli import configure_logging
from recif_bench.evaluate import INPUT_ERRORS, evaluate
from recif_bench.judges import JudgeConfig, JudgeConfigError, config_from_env
from recif_bench.results import format_table
from recif_bench.settings import BACKENDS, EvalSettings, GeneralSettings, Model, UsageError

log = logging.getLogger("recif_bench")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recif-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="popularity",
                   help="HF checkpoint dir or hub id (hf/vllm), served model name (openai), "
                        "or recommender name (rec). Default: popularity on mini-RecIF")
    p.add_argument("--backend", choices=sorted(BACKENDS), default=None,
                   help="default: rec for a known recommender name, else hf")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let a model folder's own Python code run (its config's auto_map); off by default")
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
        return _dispatch(args)
    except INPUT_ERRORS as exc:
        print(f"recif-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recif-eval: interrupted; finished requests are kept — rerun with --resume", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.rejudge:
        from recif_bench.rejudge import rejudge

        summary = rejudge(args.rejudge, judge_config(args))
        print(format_table(summary))
        print(f"results: {args.rejudge}")
        return 0
    settings = eval_settings(args)
    model_args = parse_model_args(args.model_args)
    if args.trust_remote_code:
        model_args["trust_remote_code"] = True
    model = Model(args.model, args.backend, model_args)
    if args.model == "demo":
        from recif_bench.cli.demo_eval import run_demo

        return run_demo(model, args.tasks, settings)   # the shipped demo model, then popularity
    print(evaluate(model, args.tasks, settings).report())
    return 0


def eval_settings(args: argparse.Namespace) -> EvalSettings:
    general = None
    if args.general:
        from recif_bench.general import parse_tasks

        general = GeneralSettings(tuple(parse_tasks(args.general)), tuple(args.general_include),
                                  args.general_limit, args.general_fewshot)
    return EvalSettings(
        data_dir=args.data_dir, limit=args.limit, sample=args.sample, seed=args.seed, thinking=args.thinking,
        constrained=args.constrained, think_ahead=args.think_ahead, chat_template=args.chat_template,
        sid_levels=args.sid_levels, sid_codebook=args.sid_codebook, item_ids=args.item_ids,
        text_augmented=args.text_augmented, collision_mode=args.collision_mode, judge=judge_config(args),
        general=general, output=args.output, resume=args.resume, pipeline=args.pipeline, stage=args.stage)


def judge_config(args: argparse.Namespace) -> JudgeConfig | None:
    """The flags win over the ``RECIF_JUDGE*`` / ``RECIF_BERTSCORE_*`` variables users already set."""
    flags = {"RECIF_JUDGE": args.judge, "RECIF_JUDGE_WORKERS": args.judge_workers, "RECIF_JUDGE_RPM": args.judge_rpm}
    env = {**os.environ, **{var: str(value) for var, value in flags.items() if value is not None}}
    try:
        return config_from_env(env)
    except JudgeConfigError as exc:
        raise UsageError(f"--judge: {exc}") from None


def parse_model_args(text: str | None) -> dict[str, Any]:
    from lm_eval.utils import simple_parse_args_string

    try:
        return simple_parse_args_string(text or "")
    except ValueError as exc:
        raise UsageError(f"--model-args: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
