"""The demo model: a small Qwen3 trained from scratch on mini-RecIF, stage 1 -> stage 2 -> SFT.

``recif-train demo`` builds it once under ``$RECIF_BENCH_CACHE/demo-<version>/`` and reuses it
afterwards; ``--export DIR`` also writes it in the layout shipped with the package
(:mod:`recif_bench.models.demo`), which is what ``recif-eval --model demo`` loads.  Every step has a
fixed seed, so a rebuild reproduces the shipped model (``benchmarks/demo_rebuild.py`` checks it).
Steps, each resumable:

1. the training files of mini-RecIF's train users (``recif-train build-data``);
2. a byte-level BPE trained on the mini-RecIF texts, a random Qwen3, the itemic tokens
   (3 x 256 codes + delimiters) added by :func:`recif_bench.itemic.vocab.expand` with their
   rows initialised from the item captions;
3. the three recipes with the shipped configs ``configs/train/demo_*.yaml`` (installed with the
   package): stage 1 (itemic rows only), stage 2 (all weights, packed), SFT.

The final folder is an ordinary HF checkpoint; the evaluation then runs like any other model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from recif_bench import sid
from recif_bench.models.demo import DONE, FMT, VERSION, cache_dir, final_dir

log = logging.getLogger(__name__)

STAGES = (("stage1", "pretrain"), ("stage2", "pretrain"), ("sft", "sft"))


def config(name: str) -> dict[str, Any]:
    from trainers.common.config import load

    return load(f"demo_{name}")


def ensure(rebuild: bool = False) -> Path:
    """The demo model's folder, built first if needed (a few minutes on 2 CPU cores)."""
    root, final = cache_dir(), final_dir()
    if rebuild and root.exists():
        shutil.rmtree(root)
    if (final / DONE).exists():
        return final
    log.warning("building the demo model under %s (once; a few minutes on CPU)", root)
    data_dir = build_data(root / "data")
    base = build_base(root / "base", data_dir)
    previous = base
    for name, recipe in STAGES:
        previous = train_stage(name, recipe, previous, data_dir, root / name)
    (final / DONE).write_text(json.dumps({"version": VERSION, "stages": [s for s, _ in STAGES]}), encoding="utf-8")
    return final


def export(dest: Path, rebuild: bool = False) -> Path:
    """Build (or reuse) the demo model and write it to ``dest`` in the shipped layout, with its provenance."""
    import torch
    import transformers

    from recif_bench.models import demo as shipped

    provenance = {"version": VERSION, "built_by": "recif-train demo", "torch": torch.__version__,
                  "transformers": transformers.__version__}
    return shipped.export(ensure(rebuild), dest, provenance)


def build_data(out: Path) -> Path:
    from recif_bench.data import mini, training

    if not (out / "sft_video.parquet").exists():
        training.write(training.build_all(mini.default_data_dir() / "raw", seed=42, fmt=mini.FORMAT), out)
    return out


def corpus(data_dir: Path) -> list[str]:
    """Every text of the training files with the SIDs cut out: what the BPE is trained on."""
    from trainers.common.samples import read_rows

    texts = []
    for path in sorted(data_dir.glob("*.parquet")):
        for row in read_rows(path):
            body = row.get("messages") if isinstance(row.get("messages"), str) else row.get("segments")
            for part in json.loads(body):
                contents = part["content"] if "content" in part else [part]
                texts += [_strip_sids(c["text"]) for c in contents]
    return texts


def _strip_sids(text: str) -> str:
    import re

    return re.sub(f"{re.escape(sid.SID_BEGIN)}.*?{re.escape(sid.SID_END)}", " ", text)


def build_base(out: Path, data_dir: Path) -> Path:
    from recif_bench.models.tiny import build_tiny_qwen3
    from trainers.common.samples import read_rows

    if (out / "config.json").exists():
        return out
    item_texts = {}
    for row in read_rows(data_dir / "pretrain_item_understand.parquet"):
        meta = json.loads(row["metadata"])
        item_texts[tuple(meta["sid"])] = json.loads(row["segments"])[0]["text"]
    model = config("base")
    tmp = out.with_name(out.name + ".tmp")
    build_tiny_qwen3(tmp, FMT, corpus=corpus(data_dir), init="text",
                     item_texts={codes: _strip_sids(t) for codes, t in item_texts.items()}, **model)
    os.replace(tmp, out)
    return out


def train_stage(name: str, recipe: str, model: Path, data_dir: Path, out: Path) -> Path:
    from trainers import pretrain, sft

    if (out / "model.safetensors").exists() and (out / "trainer_done").exists():
        return out
    cfg = config(name)
    cfg.update(model=str(model), output_dir=str(out))
    cfg["data"]["dir"] = str(data_dir)
    (pretrain if recipe == "pretrain" else sft).main(cfg)
    (out / "trainer_done").write_text("ok", encoding="utf-8")
    return out
