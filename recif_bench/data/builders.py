"""The official data builders (spec training §2.2), from raw RecIF tables to chat samples.

One function per task turns one raw row into samples: SFT rows (with the assistant answer) for
training users and RecIF-Bench test rows (answer in metadata) for test users, so a new dataset in
the raw format gets a benchmark too.

Template choice differs from the reference on purpose: the reference draws templates from one
``random.seed(42)`` stream row after row, so the prompt of a user depends on the row order.  We
seed a generator per sample from ``(seed, task, key)``, which keeps the choice deterministic and
independent of row order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from recif_bench import sid
from recif_bench.benchmark import task_info, user_builder_tasks
from recif_bench.data import templates as T
from recif_bench.data.item_codes import PidCodes

Codes = tuple[int, ...]
VIDEO_HISTORY, TARGETS, AD_HISTORY, SIDE_HISTORY, PER_TYPE_HISTORY = 512, 10, 200, 100, 10


@dataclass
class ItemMaps:
    """pid -> SID codes: videos and ads share one space, products have their own.

    Built from tables, each space is a compact :class:`PidCodes`; any ``Mapping`` works too.
    """

    video: Mapping[int, Codes]
    product: Mapping[int, Codes]
    fmt: sid.SidFormat = sid.DEFAULT_FORMAT

    @classmethod
    def from_tables(cls, video_table, product_table, fmt: sid.SidFormat = sid.DEFAULT_FORMAT) -> "ItemMaps":
        """From the raw ``video_ad_pid2sid`` and ``product_pid2sid`` tables (pandas or pyarrow)."""
        return cls(PidCodes.from_table(video_table, "video_ad_pid2sid"),
                   PidCodes.from_table(product_table, "product_pid2sid"), fmt)


@dataclass
class Example:
    task: str                      # benchmark folder name: video, ad, ...
    system: str | None
    user: str
    answer: str
    answer_ids: list[int] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def sft_row(self) -> dict[str, Any]:
        return {"messages": self._question() + [{"role": "assistant", "content": self.answer}],
                "metadata": dict(self.metadata)}

    def benchmark_row(self) -> dict[str, Any]:
        meta = {**self.metadata, "answer": self.answer}
        if self.answer_ids:
            meta["answer_iid" if self.task == "product" else "answer_pid"] = list(self.answer_ids)
        return {"messages": self._question(), "metadata": meta}

    def _question(self) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}] if self.system is not None else []
        return turns + [{"role": "user", "content": self.user}]


def _rng(seed: int, task: str, key: Any) -> random.Random:
    return random.Random(f"{seed}:{task}:{key}")


def _list(value: Any) -> list:
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return list(value.tolist() if hasattr(value, "tolist") else value)


def _mapped(pids: Iterable, mapping: Mapping[int, Codes]) -> list[tuple[int, Codes]]:
    """(pid, codes) of the pids that have a SID; unmapped pids are dropped, as the reference."""
    if isinstance(mapping, PidCodes):
        return mapping.mapped(pids)
    return [(int(p), mapping[int(p)]) for p in pids if int(p) in mapping]


def _render(items: Sequence[tuple[int, Codes]], fmt: sid.SidFormat) -> str:
    return sid.render_many([codes for _, codes in items], fmt)


def _answer(task: str, system: str | None, user: str, targets: Sequence[tuple[int, Codes]], fmt: sid.SidFormat,
            metadata: dict[str, Any]) -> Example:
    return Example(task, system, user, _render(targets, fmt), [p for p, _ in targets], metadata)


def video_rec(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    history = _mapped(_list(user["hist_video_pid"])[-VIDEO_HISTORY:], maps.video)
    targets = _mapped(_list(user["target_video_pid"])[:TARGETS], maps.video)
    if not history or not targets:
        return []
    rng = _rng(seed, "video", user["uid"])
    system, template = rng.choice(T.VIDEO_REC_SYSTEM), rng.choice(T.VIDEO_REC_USER)
    return [_answer("video", system, template.format(query=_render(history, maps.fmt)), targets, maps.fmt,
                    {"uid": int(user["uid"])})]


def interactive_rec(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    profile = user.get("inter_user_profile_with_sid")
    raw = user.get("inter_keyword_to_items")
    if not isinstance(profile, str) or not profile.strip() or raw is None:
        return []
    keyword_items = json.loads(raw) if isinstance(raw, str) else dict(raw)
    out = []
    for keyword, pids in keyword_items.items():
        targets = _mapped(_list(pids)[:TARGETS], maps.video)
        if not keyword or not targets:
            continue
        rng = _rng(seed, "interactive", f"{user['uid']}:{keyword}")
        system, template = rng.choice(T.INTERACTIVE_SYSTEM), rng.choice(T.INTERACTIVE_USER)
        out.append(_answer("interactive", system, template.format(user_profile=profile, keyword=keyword),
                           targets, maps.fmt, {"uid": int(user["uid"]), "keyword": keyword}))
    return out


def interaction_block(user: Mapping, maps: ItemMaps, rng: random.Random) -> str:
    """Per-type histories (last 10 flagged items over the whole history), joined by newlines."""
    history = _list(user["hist_video_pid"])
    parts = []
    for kind in T.INTERACTION_TYPES:
        flags = _list(user.get(f"hist_video_{kind}"))
        if len(flags) != len(history):
            continue
        flagged = _mapped([p for p, f in zip(history, flags) if int(f) == 1], maps.video)[-PER_TYPE_HISTORY:]
        if flagged:
            parts.append(rng.choice(T.INTERACTION_INTROS[kind]) + _render(flagged, maps.fmt))
    return "\n".join(parts)


def label_cond_rec(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    rng = _rng(seed, "label_cond", user["uid"])
    block = interaction_block(user, maps, rng)
    targets = _list(user["target_video_pid"])
    kinds = [k for k in T.INTERACTION_TYPES
             if len(flags := _list(user.get(f"target_video_{k}"))) == len(targets) and any(int(f) for f in flags)]
    if not block or not kinds:
        return []
    kind = rng.choice(kinds)
    flags = _list(user[f"target_video_{kind}"])
    chosen = _mapped([p for p, f in zip(targets, flags) if int(f) == 1][:TARGETS], maps.video)
    if not chosen:
        return []
    system = rng.choice(T.LABEL_COND_SYSTEM)
    text = block + "\n" + rng.choice(T.LABEL_COND_TASK[kind])
    return [_answer("label_cond", system, text, chosen, maps.fmt, {"uid": int(user["uid"]), "target_interaction": kind})]


def label_pred(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    targets = _list(user["target_video_pid"])
    longview = _list(user.get("target_video_longview"))
    if len(longview) != len(targets):
        return []
    block_rng = _rng(seed, "label_pred", user["uid"])
    block = interaction_block(user, maps, block_rng)
    if not block:
        return []
    out = []
    candidates = [(p, f) for p, f in zip(targets, longview) if int(p) in maps.video][:TARGETS]
    for position, (pid, flag) in enumerate(candidates):
        rng = _rng(seed, "label_pred", f"{user['uid']}:{position}")
        question = rng.choice(T.LABEL_PRED_QUESTIONS).format(candidate_sid=sid.render(maps.video[int(pid)], maps.fmt))
        label = "是" if int(flag) == 1 else "否"
        out.append(Example("label_pred", rng.choice(T.LABEL_PRED_SYSTEM), block + "\n" + question, label, [],
                           {"uid": int(user["uid"]), "label": int(flag)}))
    return out


def _two_history_rec(task: str, user: Mapping, maps: ItemMaps, seed: int, side: tuple[str, int, dict],
                     target: tuple[str, dict], texts: tuple[list, list, list]) -> list[Example]:
    """ad_rec and product_rec: long-view videos + the domain's history, then a task prompt."""
    side_column, side_limit, side_map = side
    target_column, target_map = target
    system_texts, side_intros, task_texts = texts
    targets = _mapped(_list(user.get(target_column))[:TARGETS], target_map)
    if not targets:
        return []
    rng = _rng(seed, task, user["uid"])
    videos = _mapped(_list(user.get("hist_longview_video_list"))[-SIDE_HISTORY:], maps.video)
    own = _mapped(_list(user.get(side_column))[-side_limit:], side_map)
    parts = []
    if videos:
        parts.append(rng.choice(T.VIDEO_WATCH_INTROS) + _render(videos, maps.fmt))
    if own:
        parts.append(rng.choice(side_intros) + _render(own, maps.fmt))
    if not parts:
        return []
    system = rng.choice(system_texts)
    text = "\n".join(parts) + "\n" + rng.choice(task_texts)
    return [_answer(task, system, text, targets, maps.fmt, {"uid": int(user["uid"])})]


def ad_rec(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    return _two_history_rec("ad", user, maps, seed, ("hist_ad_pid", AD_HISTORY, maps.video),
                            ("target_ad_pid", maps.video), (T.AD_SYSTEM, T.AD_CLICK_INTROS, T.AD_TASK))


def product_rec(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    return _two_history_rec("product", user, maps, seed, ("hist_goods_pid", SIDE_HISTORY, maps.product),
                            ("target_goods_pid", maps.product),
                            (T.PRODUCT_SYSTEM, T.PRODUCT_CLICK_INTROS, T.PRODUCT_TASK))


def rec_reason(user: Mapping, maps: ItemMaps, seed: int) -> list[Example]:
    profile, target, cot = (user.get(c) for c in ("inter_user_profile_with_sid", "reco_target_caption", "reco_cot"))
    if not all(isinstance(v, str) and v.strip() for v in (profile, target, cot)):
        return []
    text = T.REC_REASON_USER.format(user_profile=profile, gsu_caption=str(user.get("reco_gsu_caption")),
                                    target_video_caption=target)
    target_pid = user.get("target_pid")
    return [Example("rec_reason", None, text, cot, [],
                    {"uid": int(user["uid"]), "target_pid": None if target_pid is None else int(target_pid)})]


def item_understand(pid: int, caption: str, maps: ItemMaps, seed: int) -> list[Example]:
    """Per captioned item (no user split: the reference uses every caption)."""
    if not isinstance(caption, str) or not caption.strip() or int(pid) not in maps.video:
        return []
    codes = maps.video[int(pid)]
    rng = _rng(seed, "item_understand", pid)
    user = rng.choice(T.ITEM_UNDERSTAND_USER).format(sid=sid.render(codes, maps.fmt))
    return [Example("item_understand", rng.choice(T.ITEM_UNDERSTAND_SYSTEM), user, caption, [],
                    {"pid": int(pid), "sid": list(codes)})]


def build_user_tasks(users, maps: ItemMaps, split: int, seed: int = 42,
                     tasks: Iterable[str] | None = None) -> dict[str, list[Example]]:
    """Examples of the users of one split (0 = train, 1 = test), by benchmark task.

    ``tasks`` defaults to every registered task built per user (the registry names each builder).
    """
    names = list(tasks) if tasks is not None else user_builder_tasks()
    builders: dict[str, Callable[[Mapping, ItemMaps, int], list[Example]]] = {
        task: task_info(task).build_function() for task in names}
    out: dict[str, list[Example]] = {task: [] for task in names}
    for user in _rows(users):
        if int(user["split"]) != split:
            continue
        for task, build in builders.items():
            out[task].extend(build(user, maps, seed))
    return out


def build_item_understand(captions, maps: ItemMaps, seed: int = 42) -> list[Example]:
    return [e for row in _rows(captions) for e in item_understand(row["pid"], row["dense_caption"], maps, seed)]


def _rows(frame) -> Iterator[dict[str, Any]]:
    yield from (frame.to_dict("records") if hasattr(frame, "to_dict") else frame)


def write_benchmark(examples: Mapping[str, Sequence[Example]], out_dir: Path) -> None:
    """``<out>/<task>/<task>_test.parquet`` with JSON-string columns, as the official release."""
    import pandas as pd

    for task, rows in examples.items():
        folder = Path(out_dir) / task
        folder.mkdir(parents=True, exist_ok=True)
        records = [e.benchmark_row() for e in rows]
        pd.DataFrame({
            "messages": [json.dumps(r["messages"], ensure_ascii=False) for r in records],
            "metadata": [json.dumps(r["metadata"], ensure_ascii=False) for r in records],
        }).to_parquet(folder / f"{task}_test.parquet", index=False)
