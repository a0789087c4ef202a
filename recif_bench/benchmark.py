"""The task registry: one :class:`TaskInfo` per task holds every fact other modules look up.

Layer, kind, headline metric, K, the lm-eval group, the data builder, the SFT source and the judge
of a task are written here once.  Task names follow the official data layout
(``<data_dir>/<name>/<name>_test.parquet``); the lm-eval task of ``video`` is ``recif_video``.
A new task is its YAML (in ``tasks/`` or any folder given to ``evaluate(include_paths=...)``) plus
one :func:`register_task` call.  The Amazon transfer tasks (``amazon_<category>``, any category
folder in the P5 format) have no layer, and :func:`task_info` describes them on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["rec", "label_pred", "text"]

LAYER_NAMES = {
    0: "L0 item understanding",
    1: "L1 recommendation + prediction",
    2: "L2 instruction following",
    3: "L3 reasoning / explanation",
}
BENCH_GROUP = "recif_bench"
AMAZON_PREFIX = "amazon_"
AMAZON_GROUP = "amazon_transfer"
AMAZON_CATEGORIES = ("beauty", "sports")    # the members of the amazon_transfer group (data in shared/)
# a category is a folder name and part of cache file names: lower-case words only, never a path
AMAZON_CATEGORY_PATTERN = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
RECIF_K = 32      # candidates per request of the RecIF-Bench rec tasks (the reference's beam width)
AMAZON_K = 20     # ... of the Amazon transfer tasks (GRLM's beam width)


@dataclass(frozen=True)
class TaskInfo:
    name: str               # official folder name, e.g. "video"
    layer: int | None       # capability layer of the paper (0..3), also its group recif_layer<n>; None for Amazon
    kind: TaskKind
    headline: str           # the metric of the paper's table
    title: str              # row label of the paper's table
    mapping_file: str | None = None   # SID -> item file in the data root (rec tasks)
    domain: str | None = None          # item space the answers live in
    k: int | None = None               # candidates per request (beam width) of rec tasks
    group: str | None = None           # benchmark group (recif_bench, amazon_transfer) or None
    builder: str | None = None         # "module:function" building its examples from one raw user row
    sft_source: str | None = None      # ``source`` of its SFT rows in the unified training schema
    judge: str | None = None           # scorer of a judged text task (recif_bench.judges.run.SCORERS)
    judged_metrics: tuple[str, ...] = ()   # metrics that scorer computes (in the task YAML's metric_list)

    @property
    def lm_eval_name(self) -> str:
        return self.name if self.name.startswith(AMAZON_PREFIX) else f"recif_{self.name}"

    def build_function(self):
        """The builder named by ``builder`` (imported on use: data builders are heavy)."""
        if self.builder is None:
            raise KeyError(f"task {self.name!r} has no data builder")
        from importlib import import_module

        module, _, function = self.builder.partition(":")
        return getattr(import_module(module), function)


_BUILDERS = "recif_bench.data.builders"
_REC = {"kind": "rec", "headline": f"recall@{RECIF_K}", "k": RECIF_K, "group": BENCH_GROUP}

# In the order of the reference's eval_script.sh (also the order of our result tables, by layer).
TASKS: dict[str, TaskInfo] = {}


def register_task(info: TaskInfo) -> TaskInfo:
    """Add a task to the registry; its YAML names it ``info.lm_eval_name``.  Registering the same entry twice is a no-op."""
    known = TASKS.get(info.name)
    if known is not None and known != info:
        raise ValueError(f"task {info.name!r} is already registered differently: {known}")
    TASKS[info.name] = info
    return info


for _info in [
    TaskInfo("item_understand", 0, "text", "macro_wip_double_weighted_f1", "Item Und.", group=BENCH_GROUP,
             sft_source="RecIF_ItemUnderstand", judge="wip_f1",
             judged_metrics=("macro_wip_double_weighted_f1", "micro_wip_double_weighted_f1",
                             "macro_wip_double_weighted_f1_strict", "n_judge_failed")),
    TaskInfo("video", 1, title="Short Video Rec", mapping_file="sid2pid.json", domain="video",
             builder=f"{_BUILDERS}:video_rec", sft_source="RecIF_VideoRec", **_REC),
    TaskInfo("ad", 1, title="Ad Rec", mapping_file="sid2pid.json", domain="ad",
             builder=f"{_BUILDERS}:ad_rec", sft_source="RecIF_AdRec", **_REC),
    TaskInfo("product", 1, title="Product Rec", mapping_file="sid2iid.json", domain="product",
             builder=f"{_BUILDERS}:product_rec", sft_source="RecIF_ProductRec", **_REC),
    TaskInfo("label_pred", 1, "label_pred", "auc", "Label Pred.", "sid2pid.json", "video", group=BENCH_GROUP,
             builder=f"{_BUILDERS}:label_pred", sft_source="RecIF_LabelPred"),
    TaskInfo("label_cond", 2, title="Label-Cond. Rec", mapping_file="sid2pid.json", domain="video",
             builder=f"{_BUILDERS}:label_cond_rec", sft_source="RecIF_LabelCondRec", **_REC),
    TaskInfo("interactive", 2, title="Interactive Rec", mapping_file="sid2pid.json", domain="video",
             builder=f"{_BUILDERS}:interactive_rec", sft_source="RecIF_InteractiveRec", **_REC),
    TaskInfo("rec_reason", 3, "text", "llm_score", "Rec. Explanation", group=BENCH_GROUP,
             builder=f"{_BUILDERS}:rec_reason", sft_source="RecIF_RecoReason", judge="llm_score",
             judged_metrics=("llm_score", "llm_score_strict", "n_judge_failed")),
]:
    register_task(_info)

TASK_ORDER = [name for name, info in TASKS.items() if info.group == BENCH_GROUP]


def amazon_task(category: str) -> TaskInfo:
    """The transfer task of one Amazon category: next item over the full catalogue, headline Recall@10."""
    group = AMAZON_GROUP if category in AMAZON_CATEGORIES else None
    return TaskInfo(f"{AMAZON_PREFIX}{category}", None, "rec", "recall@10",
                    category.replace("_", " ").title(), domain=f"{AMAZON_PREFIX}{category}", k=AMAZON_K, group=group)


def task_info(name: str) -> TaskInfo:
    """Look up by official name (``video``), lm-eval name (``recif_video``) or ``amazon_<category>``."""
    if name.startswith(AMAZON_PREFIX):
        category = name.removeprefix(AMAZON_PREFIX)
        if not AMAZON_CATEGORY_PATTERN.fullmatch(category):
            raise KeyError(f"{name!r} is not a task: an Amazon task is amazon_<category>, the category in "
                           "lower-case letters, digits and _ (e.g. amazon_beauty)")
        return amazon_task(category)
    key = name.removeprefix("recif_")
    if key not in TASKS:
        known = ", ".join(TASKS)
        raise KeyError(f"unknown RecIF-Bench task {name!r}; known tasks: {known}")
    return TASKS[key]


def groups() -> dict[str, list[str]]:
    """Group name -> member tasks: recif_bench, recif_layer0..3 (its members' layers) and amazon_transfer."""
    bench = [info for info in TASKS.values() if info.group == BENCH_GROUP]
    return {BENCH_GROUP: [info.name for info in bench],
            **{f"recif_layer{layer}": [info.name for info in bench if info.layer == layer] for layer in LAYER_NAMES},
            AMAZON_GROUP: [f"{AMAZON_PREFIX}{c}" for c in AMAZON_CATEGORIES]}


def judged_tasks() -> list[str]:
    return [name for name, info in TASKS.items() if info.judge]


def user_builder_tasks() -> list[str]:
    """Tasks whose examples are built per raw user row (all but item_understand, built per caption)."""
    return [name for name, info in TASKS.items() if info.builder]
