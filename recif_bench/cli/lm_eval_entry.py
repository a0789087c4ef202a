"""``recif-lm-eval``: the stock ``lm_eval`` command line with our models registered.

lm-eval has no plugin discovery for models, so this wrapper imports ours (recif-hf, recif-vllm,
recif-openai, recif-rec) and hands over to lm-eval's own CLI.  When no ``--include_path`` is
given it adds the folder of the RecIF-Bench task YAMLs.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    from recif_bench import stock_guard, tasks_dir
    from recif_bench.gc_tuning import batch_gc
    from recif_bench.lm_eval_shims import quiet_git_probe
    from recif_bench.models import register_all

    register_all()
    argv = sys.argv[1:]
    os.environ[stock_guard.MODEL_ENV] = _model_name(argv)   # our backends are exempt from the stock checks
    if argv and argv[0] in ("run", "validate") and "--include_path" not in argv:
        sys.argv = [sys.argv[0], *argv, "--include_path", tasks_dir()]
    with batch_gc(), quiet_git_probe():
        cli_evaluate()


def _model_name(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return "hf"   # lm-eval's default model


if __name__ == "__main__":
    main()
