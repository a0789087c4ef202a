"""Training data in the unified row schema (spec training §2.0-2.1), from raw RecIF tables.

A row is ``{source, uuid, messages | segments, metadata}`` with JSON-string columns, as the
reference writes them.  The 3 pretrain builders (video-rec sequences, user profiles, item
captions) are here; the SFT builders (named by the task registry) are :mod:`recif_bench.data.builders`, shared with the
benchmark files, so training and test prompts come from one implementation.

uuids are derived from the file name and row position (uuid5), so a rebuilt dataset is
byte-identical; the reference draws them at random.  Every builder but item_understand keeps train users only.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from recif_bench import sid
from recif_bench.benchmark import task_info, user_builder_tasks
from recif_bench.data import builders
from recif_bench.data import templates as T

PRETRAIN_SOURCES = {"video_rec": "RecIF_VideoRec_Pretrain", "user_profile": "RecIF_UserProfile_Pretrain",
                    "item_understand": "RecIF_ItemUnderstand_Pretrain"}
RAW_FILES = {"users": "onerec_bench_release.parquet", "video": "video_ad_pid2sid.parquet",
             "product": "product_pid2sid.parquet", "captions": "pid2caption.parquet"}
# the user-table columns holding a domain's interactions (history, target), and the domain's pid -> SID table
DOMAIN_COLUMNS = {"video": (("hist_video_pid", "target_video_pid"), RAW_FILES["video"]),
                  "ad": (("hist_ad_pid", "target_ad_pid"), RAW_FILES["video"]),
                  "product": (("hist_goods_pid", "target_goods_pid"), RAW_FILES["product"])}
_NAMESPACE = uuid.UUID("5f2b1f4e-0c1e-4d55-9a57-6d1a8f1b7a11")


def row(source: str, metadata: Mapping[str, Any], messages: list | None = None,
        segments: list | None = None) -> dict[str, str]:
    """One unified row; ``messages`` contents become ``[{type: text, text}]`` part lists."""
    out = {"source": source}
    if messages is not None:
        out["messages"] = json.dumps([{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                                      for m in messages], ensure_ascii=False)
    if segments is not None:
        out["segments"] = json.dumps([{"type": "text", "text": s} for s in segments], ensure_ascii=False)
    out["metadata"] = json.dumps(dict(metadata), ensure_ascii=False)
    return out


def stable_uuid(name: str, key: Any) -> str:
    """uuid5 of (file name, key): the same in every rebuild (the reference draws uuids at random)."""
    return str(uuid.uuid5(_NAMESPACE, f"{name}:{key}"))


def with_uuids(name: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """uuid5 of (file name, row position): unique, and the same in every rebuild."""
    return [{"source": r["source"], "uuid": stable_uuid(name, i),
             **{k: v for k, v in r.items() if k != "source"}} for i, r in enumerate(rows)]


def video_rec_pretrain(user: Mapping, maps: builders.ItemMaps) -> list[dict[str, str]]:
    """History (last 512) immediately followed by the targets (first 10), no prompt."""
    history = builders._mapped(builders._list(user["hist_video_pid"])[-builders.VIDEO_HISTORY:], maps.video)
    targets = builders._mapped(builders._list(user["target_video_pid"])[:builders.TARGETS], maps.video)
    if not history and not targets:
        return []
    text = builders._render(history + targets, maps.fmt)
    return [row(PRETRAIN_SOURCES["video_rec"], {"uid": int(user["uid"])}, segments=[text])]


def user_profile_pretrain(user: Mapping, maps: builders.ItemMaps) -> list[dict[str, str]]:
    profile = user.get("inter_user_profile_with_sid")
    if not isinstance(profile, str) or not profile.strip():
        return []
    return [row(PRETRAIN_SOURCES["user_profile"], {"uid": int(user["uid"])}, segments=[profile])]


def item_understand_pretrain(pid: int, caption: str, maps: builders.ItemMaps, seed: int) -> list[dict[str, str]]:
    """One of the 3 caption templates, chosen by a generator seeded with (seed, pid)."""
    if not isinstance(caption, str) or not caption.strip() or int(pid) not in maps.video:
        return []
    codes = maps.video[int(pid)]
    rendered = sid.render(codes, maps.fmt)
    choice = builders._rng(seed, "item_understand_pretrain", pid).randrange(1 + len(T.ITEM_UNDERSTAND_PRETRAIN))
    if choice == 0:
        id_key, text_key = T.ITEM_UNDERSTAND_PRETRAIN_KEYS
        text = json.dumps({id_key: rendered, text_key: caption}, ensure_ascii=False)
    else:
        text = T.ITEM_UNDERSTAND_PRETRAIN[choice - 1].format(sid=rendered, caption=caption)
    return [row(PRETRAIN_SOURCES["item_understand"], {"pid": int(pid), "sid": list(codes)}, segments=[text])]


def sft_rows(examples: Iterable[builders.Example]) -> list[dict[str, str]]:
    out = []
    for example in examples:
        sample = example.sft_row()
        out.append(row(task_info(example.task).sft_source, sample["metadata"], messages=sample["messages"]))
    return out


def load_raw(raw_dir: str | Path, fmt: sid.SidFormat = sid.DEFAULT_FORMAT):
    """(users, item maps, captions) from a raw RecIF folder; a missing file is one clear error."""
    import pandas as pd

    raw_dir = Path(raw_dir)
    missing = [name for name in RAW_FILES.values() if not (raw_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{raw_dir}: missing raw RecIF file(s) {', '.join(missing)}")
    tables = {key: pd.read_parquet(raw_dir / name) for key, name in RAW_FILES.items()}
    maps = builders.ItemMaps.from_tables(tables["video"], tables["product"], fmt)
    return tables["users"], maps, tables["captions"]


def user_rows(users: Iterable[Mapping], maps: builders.ItemMaps, seed: int) -> dict[str, list[dict[str, str]]]:
    """The training rows (no uuid yet) of a batch of users; test users (split 1) give none."""
    train = [u for u in users if int(u["split"]) == 0]
    out: dict[str, list[dict[str, str]]] = {
        "pretrain_video_rec": [r for u in train for r in video_rec_pretrain(u, maps)],
        "pretrain_user_profile": [r for u in train for r in user_profile_pretrain(u, maps)],
    }
    examples = builders.build_user_tasks(train, maps, split=0, seed=seed)
    out.update({f"sft_{task}": sft_rows(rows) for task, rows in examples.items()})
    return out


def caption_rows(captions: Iterable[Mapping], maps: builders.ItemMaps, seed: int) -> dict[str, list[dict[str, str]]]:
    """The item-understanding rows (no uuid yet) of a batch of caption rows (every item, no user split)."""
    captions = list(captions)
    return {"pretrain_item_understand": [r for c in captions
                                         for r in item_understand_pretrain(c["pid"], c["dense_caption"], maps, seed)],
            "sft_item_understand": sft_rows(builders.build_item_understand(captions, maps, seed))}


def build_all(raw_dir: str | Path, seed: int = 42, fmt: sid.SidFormat = sid.DEFAULT_FORMAT,
              ) -> dict[str, list[dict[str, str]]]:
    """Every training file of the reference's run.sh, in memory: for small inputs and tests
    (:mod:`recif_bench.data.build` streams the same rows for inputs of any size)."""
    users, maps, captions = load_raw(raw_dir, fmt)
    out = {**user_rows(builders._rows(users), maps, seed), **caption_rows(builders._rows(captions), maps, seed)}
    order = ["pretrain_video_rec", "pretrain_user_profile", "pretrain_item_understand",
             *(f"sft_{t}" for t in user_builder_tasks()), "sft_item_understand"]
    return {name: with_uuids(name, out[name]) for name in order}


def write(files: Mapping[str, list[dict[str, str]]], out_dir: str | Path) -> dict[str, int]:
    """``<out>/<name>.parquet`` per file (columns source, uuid, messages|segments, metadata)."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        pd.DataFrame(rows).to_parquet(out_dir / f"{name}.parquet", index=False)
    return {name: len(rows) for name, rows in files.items()}
