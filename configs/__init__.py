"""The shipped configs, installed as package ``recif_bench_configs`` (one home for every YAML):

* ``train/``: the recipe configs (``recif-train sft --config tiny_sft`` finds one by name) and the files
  they name (``general_prompts.jsonl``);
* ``published/``: the published numbers of the paper and its peers, read by the leaderboard;
* ``accelerate/``: DDP / FSDP / DeepSpeed launch configs for ``accelerate launch``.

The folder is a package only so that ``pip install .`` ships it; :data:`HOME` is where it lies.
"""

from pathlib import Path

HOME = Path(__file__).resolve().parent
