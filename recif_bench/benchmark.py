"""The eight RecIF-Bench tasks: the facts every other module looks up (layer, kind, headline metric).

Task names follow the official data layout (``<data_dir>/<name>/<name>_test.parquet``); the
lm-eval task of ``video`` is ``recif_video`` and so on.  The Amazon transfer tasks
(``amazon_<category>``, any category folder in the P5 format) are not RecIF-Bench tasks: they are
not in :data:`TASKS`, have no layer, and :func:`task_info` describes them on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["rec", "label_pred", "text"]

LAYER_NAMES = {
    0: "L0 item understanding",
    1: "L1 recommendation + prediction",
    2: "L2 instruction following",
    3: "L3 reasoning / explanation",
}


@dataclass(frozen=True)
class TaskInfo:
    name: str               # official folder name, e.g. "video"
    layer: int | None       # capability layer of the paper (0..3); None for the Amazon transfer tasks
    kind: TaskKind
    headline: str           # the metric of the paper's table
    title: str              # row label of the paper's table
    mapping_file: str | None = None   # SID -> item file in the data root (rec tasks)
    domain: str | None = None          # item space the answers live in

    @property
    def lm_eval_name(self) -> str:
        return self.name if self.name.startswith(AMAZON_PREFIX) else f"recif_{self.name}"


TASKS: dict[str, TaskInfo] = {t.name: t for t in [
    TaskInfo("item_understand", 0, "text", "macro_wip_double_weighted_f1", "Item Und."),
    TaskInfo("video", 1, "rec", "recall@32", "Short Video Rec", "sid2pid.json", "video"),
    TaskInfo("ad", 1, "rec", "recall@32", "Ad Rec", "sid2pid.json", "ad"),
    TaskInfo("product", 1, "rec", "recall@32", "Product Rec", "sid2iid.json", "product"),
    TaskInfo("label_pred", 1, "label_pred", "auc", "Label Pred.", "sid2pid.json", "video"),
    TaskInfo("label_cond", 2, "rec", "recall@32", "Label-Cond. Rec", "sid2pid.json", "video"),
    TaskInfo("interactive", 2, "rec", "recall@32", "Interactive Rec", "sid2pid.json", "video"),
    TaskInfo("rec_reason", 3, "text", "llm_score", "Rec. Explanation"),
]}

# The order of the reference's eval_script.sh (also the order of our result tables, by layer).
TASK_ORDER = ["item_understand", "video", "ad", "product", "label_pred", "label_cond",
              "interactive", "rec_reason"]


AMAZON_PREFIX = "amazon_"
AMAZON_GROUP = "amazon_transfer"
AMAZON_CATEGORIES = ("beauty", "sports")    # the members of the amazon_transfer group (data in shared/)


def amazon_task(category: str) -> TaskInfo:
    """The transfer task of one Amazon category: next item over the full catalogue, headline Recall@10."""
    return TaskInfo(f"{AMAZON_PREFIX}{category}", None, "rec", "recall@10",
                    category.replace("_", " ").title(), domain=f"{AMAZON_PREFIX}{category}")


def task_info(name: str) -> TaskInfo:
    """Look up by official name (``video``), lm-eval name (``recif_video``) or ``amazon_<category>``."""
    if name.startswith(AMAZON_PREFIX) and len(name) > len(AMAZON_PREFIX):
        return amazon_task(name.removeprefix(AMAZON_PREFIX))
    key = name.removeprefix("recif_")
    if key not in TASKS:
        known = ", ".join(TASKS)
        raise KeyError(f"unknown RecIF-Bench task {name!r}; known tasks: {known}")
    return TASKS[key]
