"""``recif-train``: build training data, pretrain (stage 1 / 2), SFT, or build the demo model (the recipes' CLI).

    recif-train build-data --raw path/to/raw --out runs/data [--benchmark runs/bench] [--num-proc N]
    recif-train pretrain --config tiny_stage1 [--set train.max_steps=10 ...]
    recif-train sft --config tiny_sft
    recif-train distill --config tiny_distill
    recif-train rl --config tiny_rl
    recif-train think-data --config think_data_mini   # OneRec-Think rationale + SID rows
    recif-train pipeline --config mini    # every stage on mini-RecIF, evaluated after each
    recif-train sasrec --config sasrec_beauty_bce   # also: tiger
    recif-train pscore --config pscore_mini        # P-Score reward model, AUC per tower
    recif-train lazy-decoder --config lazy_decoder_mini   # OneRec-V2's lazy decoder
    recif-train demo [--rebuild] [--export DIR]   # train the mini-RecIF demo model (cached), as shipped

``--config`` takes a YAML file or the name of a shipped config (``configs/train/<name>.yaml``, installed with the
package).  Runs under ``accelerate launch`` unchanged (DDP / FSDP / DeepSpeed configs in configs/accelerate/).
Bad inputs end the command with one error line naming the input (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recif_bench.cli import configure_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recif-train", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("build-data", help="raw RecIF tables -> pretrain_*/sft_* parquet files (train users)")
    data.add_argument("--raw", default="mini", help="folder of the raw RecIF tables, or 'mini' (default)")
    data.add_argument("--out", required=True)
    data.add_argument("--benchmark", default=None, help="also write RecIF-Bench test files of the test users here")
    data.add_argument("--seed", type=int, default=42)
    data.add_argument("--sid-levels", type=int, default=3)
    data.add_argument("--sid-codebook", type=int, default=8192)
    data.add_argument("--num-proc", type=int, default=0, help="worker processes (default 0: every core); "
                      "the output is the same for every value")
    data.add_argument("--batch-rows", type=int, default=1000, help="raw rows a worker builds at a time (memory)")
    data.add_argument("--shard-rows", type=int, default=50_000, help="raw rows per output shard")
    data.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local processes, or Ray Data (pip install '.[scale]') to run on a cluster")
    for name, text in (("pretrain", "stage 1 itemic alignment or stage 2 co-pretraining"), ("sft", "multi-task SFT"),
                       ("sasrec", "SASRec baseline (BCE or CE loss)"), ("tiger", "TIGER baseline (SIDs + T5)"),
                       ("lazy-decoder", "OneRec-V2 lazy decoder-only recommender over item SIDs"),
                       ("distill", "on-policy distillation with the itemic-token penalty"),
                       ("rl", "Rec-RL: GRPO with hit rewards on the rec SFT prompts"),
                       ("pscore", "P-Score reward model: engagement towers fused by an MLP (raw RecIF flags)"),
                       ("think-data", "OneRec-Think reasoning activation: pruned-context rationales -> SFT rows"),
                       ("pipeline", "build-data -> stage 1 -> stage 2 -> SFT -> distill -> RL, evaluated after each")):
        recipe = sub.add_parser(name, help=text)
        recipe.add_argument("--config", required=True,
                            help="a config file, or the name of a shipped one (e.g. tiny_sft; see configs/train/)")
        recipe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config value, e.g. train.max_steps=20 (repeatable)")
    demo = sub.add_parser("demo", help="build (or reuse) the mini-RecIF demo model and print its folder")
    demo.add_argument("--rebuild", action="store_true", help="train from scratch even if the cache holds it")
    demo.add_argument("--export", metavar="DIR", default=None,
                      help="also write it to DIR in the shipped layout (DIR = recif_bench/demo_model refreshes "
                           "the checkpoint that `recif-eval --model demo` loads)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from recif_bench.data.reader import DataError
    from trainers.common.config import ConfigError

    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        print(run(args))
        return 0
    except (ConfigError, DataError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"recif-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recif-train: interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> Path:
    if args.command == "build-data":
        return build_data(args)
    if args.command == "demo":
        from trainers import demo

        return demo.export(Path(args.export), args.rebuild) if args.export else demo.ensure(rebuild=args.rebuild)
    import importlib

    from trainers.common import schema
    from trainers.common.config import load

    config = load(args.config, args.set)
    schema.check(args.command, config, args.config)   # before any model or data loads
    return importlib.import_module(f"trainers.{args.command.replace('-', '_')}").main(config)


def build_data(args: argparse.Namespace) -> Path:
    from recif_bench.data import build, mini

    raw = mini.default_data_dir() / "raw" if args.raw == "mini" else Path(args.raw)
    settings = build.BuildSettings(str(raw), args.out, args.seed, args.sid_levels, args.sid_codebook, args.batch_rows,
                                   args.shard_rows, args.benchmark, num_proc=args.num_proc)
    if args.engine == "ray":
        from recif_bench.data import build_ray

        counts = build_ray.build(settings)
    else:
        counts = build.build(settings)
    for name, n in counts.items():
        print(f"{name:<28} {n:>8} rows", file=sys.stderr)
    if args.benchmark:
        print(f"benchmark files of the test users: {args.benchmark}", file=sys.stderr)
    return Path(args.out)


if __name__ == "__main__":
    sys.exit(main())
