"""What an evaluation is asked to do: the model to load and the run settings, as typed objects.

``recif-eval`` maps its flags onto these one to one (``--sid-levels`` -> ``sid_levels``);
Python callers build them directly and hand them to :func:`recif_bench.evaluate.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from recif_bench.benchmark import groups, task_info
from recif_bench.general import DEFAULT_TASKS
from recif_bench.judges.settings import JudgeConfig

BACKENDS = {"hf": "recif-hf", "vllm": "recif-vllm", "openai": "recif-openai", "rec": "recif-rec"}


class UsageError(Exception):
    """A bad setting (as opposed to bad data); the message names the setting."""


@dataclass(frozen=True)
class Model:
    """The model to evaluate.

    ``name``: HF checkpoint folder or hub id (hf / vllm), served model name (openai), or recommender
    name (rec).  ``backend`` defaults to rec for a known recommender name, else hf.  ``args`` are
    extra backend arguments (``batch_size``, ``dtype``, ``base_url``, ...).  ``lm``: an lm-eval model
    already built from these (reused across evaluations, e.g. by benchmarks); None = build it.
    """

    name: str
    backend: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    lm: Any = None


@dataclass(frozen=True)
class GeneralSettings:
    """lm-eval's own tasks run on the same model (general-ability retention)."""

    tasks: Sequence[str] = DEFAULT_TASKS
    include: Sequence[str] = ()          # folders of extra lm-eval task YAMLs
    limit: int | None = None             # first N documents of every general task
    num_fewshot: int | None = None       # None = each task's own


@dataclass(frozen=True)
class EvalSettings:
    data_dir: str | Path | None = None   # RecIF-Bench data root or HF dataset id; None = the generated mini-RecIF
    limit: int | None = None             # first N rows of every task
    sample: int | None = None            # N rows drawn at random (with seed)
    seed: int = 0                        # of sample, sampling and SID->item ties
    thinking: bool = False               # one sampled thought, then the answer
    constrained: bool = False            # trie-constrained beam search over the catalogue's SIDs (hf)
    think_ahead: str | None = None       # "T,m": OneRec-Think think-ahead on the rec tasks (hf); implies thinking
    chat_template: str = "soft_switch"   # the reference's Qwen3 soft-switch template, or "model"
    sid_levels: int = 3
    sid_codebook: int = 8192
    item_ids: str = "auto"               # Amazon tasks: auto | keywords | an item-codes file ({category} allowed)
    text_augmented: bool = False         # Amazon tasks: SID followed by the item keywords
    collision_mode: str = "group"        # Amazon tasks: a shared identifier returns all its items, or the first
    judge: JudgeConfig | None = None     # judge of the judged text tasks; None = generations recorded, not scored
    general: GeneralSettings | None = None
    output: str | Path | None = None     # run directory; None = results/<model>-<data>
    resume: bool = False                 # continue an interrupted run in output
    pipeline: str | None = None          # training pipeline of this checkpoint (run.pipeline)
    stage: str | None = None             # training stage of this checkpoint (model.stage)
    include_paths: Sequence[str | Path] = ()   # extra folders of task YAMLs (tasks registered with register_task)


def expand_tasks(spec: str | Sequence[str]) -> list[str]:
    """Group names (``recif_bench``, ``recif_layer1``, ...) and task names with or without ``recif_``."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    known_groups = groups()
    names: list[str] = []
    for part in filter(None, (p.strip() for p in parts)):
        if part in known_groups:
            names.extend(known_groups[part])
        else:
            try:
                names.append(task_info(part).name)
            except KeyError as exc:
                raise UsageError(f"--tasks: {exc.args[0]}; groups: {', '.join(known_groups)}") from None
    if not names:
        raise UsageError("--tasks: no task given")
    return list(dict.fromkeys(names))
