"""OneRec-Think reasoning activation data: a rationale written from a pruned context, learnt from the full history.

    recif-train think-data --config configs/train/think_data_mini.yaml

For each training user and target video (its first ``targets_per_user`` targets):

1. **Pruned context**: the ``top_k`` history videos most relevant to the target.  Relevance is the
   cosine similarity of caption embeddings (``similarity: caption``, :mod:`recif_bench.itemic.embed`,
   ``pip install ".[items]"``); with ``similarity: sid``, and for any item without a caption, it is
   the SID-code overlap: the share of leading code levels the two SIDs have in common (residual
   codes refine level by level, so a shared prefix is a shared cluster).  Repeated videos count
   once (their last view), ties go to the more recent view, the kept items stay in history order.
2. **Rationale**: the aligned model (``model``: an HF folder, ``demo``, or a served model with
   ``backend: openai``) answers :data:`RATIONALE_USER` — only the pruned items and the target, with
   captions where known — as a plain (non-thinking) chat turn, sampled with ``generation``.
3. **SFT row** in the unified schema: the user turn is the video-rec prompt of the user's FULL
   (noisy) history, built by :func:`recif_bench.data.builders.video_rec` exactly as for SFT and the
   benchmark; the answer is ``<think>\\n{rationale}\\n</think>\\n\\n{target SID}``.  Under the
   soft-switch convention (spec training §7.7, :func:`recif_bench.chat.render_conversation`) the
   user turn then ends in ``/think``, and the SFT loss covers the whole assistant turn, rationale
   and SID (:mod:`trainers.common.samples`).

Rows are appended to ``<output_dir>/sft_think.jsonl`` batch by batch (flushed); a rerun skips the
(user, target) pairs already there, so a killed run loses at most one batch.  At the end the rows
are also written as ``sft_think.parquet``, the file an SFT mixture names.  A rationale that comes
back empty gives no row (it would teach ``/no_think``); it is counted and retried on a rerun.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from recif_bench import chat, sid
from recif_bench.data import builders, training
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)

SOURCE = "RecIF_VideoRec_Think"
ROWS_FILE = "sft_think"
RATIONALE_SYSTEM = "你是一名推荐系统分析师，擅长根据用户的历史行为解释用户的兴趣。"
RATIONALE_USER = ("用户过去观看过以下与目标视频最相关的视频：\n{context}\n用户接下来观看了视频{target}。\n"
                  "请一步步分析用户的兴趣，说明用户为什么会观看这个视频。只写分析，不要推荐新的视频。")
SIMILARITIES = ("caption", "sid")
Writer = Callable[[list[str]], list[str]]   # rendered prompts -> one answer text each


@dataclass(frozen=True)
class Settings:
    model: str
    output_dir: Path
    backend: str = "hf"
    model_args: Mapping[str, Any] = field(default_factory=dict)
    raw: str = "mini"
    users: int | None = None
    targets_per_user: int = 1
    top_k: int = 5
    similarity: str = "caption"
    embedder: str = "minilm"
    generation: Mapping[str, Any] = field(default_factory=dict)   # generation_kwargs-style sampling settings
    batch_size: int = 8
    seed: int = 42
    fmt: sid.SidFormat = sid.DEFAULT_FORMAT

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Settings":
        config = dict(config)
        levels = config.pop("sid", None) or {}
        unknown = sorted(set(config) - set(cls.__dataclass_fields__) - {"fmt"})
        if unknown:
            raise ConfigError(f"think-data: unknown config key(s) {', '.join(unknown)}")
        settings = cls(**{**config, "model": str(require(config, "model")),
                          "output_dir": Path(require(config, "output_dir")),
                          "fmt": sid.SidFormat(int(levels.get("levels", 3)), int(levels.get("codebook", 8192)))})
        if settings.similarity not in SIMILARITIES:
            raise ConfigError(f"think-data: similarity must be one of {', '.join(SIMILARITIES)}, "
                              f"got {settings.similarity!r}")
        if settings.backend not in ("hf", "openai", "vllm"):
            raise ConfigError(f"think-data: backend must be hf, openai or vllm, got {settings.backend!r}")
        if settings.top_k < 1 or settings.targets_per_user < 1:
            raise ConfigError("think-data: top_k and targets_per_user must be at least 1")
        return settings


@dataclass(frozen=True)
class Job:
    """One (user, target) pair: the full-history question and what the rationale prompt needs."""
    uid: int
    target: int
    example: builders.Example
    history: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.uid}:{self.target}"


# ---- pruned context ---------------------------------------------------------------------------
def sid_overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of leading SID levels two items have in common (1.0 = same SID)."""
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    return shared / max(len(a), 1)


def relevance(target: int, history: Sequence[int], codes: Mapping[int, Sequence[int]],
              vectors: Mapping[int, np.ndarray]) -> list[float]:
    """Relevance of every history item to the target: cosine of their (unit) vectors when both have
    one, else the SID-code overlap."""
    goal = vectors.get(target)
    return [float(np.dot(goal, vectors[p])) if goal is not None and p in vectors
            else sid_overlap(codes[target], codes[p]) for p in history]


def pruned_context(history: Sequence[int], scores: Sequence[float], k: int) -> list[int]:
    """The ``k`` most relevant distinct items (last view of each; ties to the more recent), in history order."""
    last = {p: i for i, p in enumerate(history)}
    best = sorted(last.values(), key=lambda i: (-scores[i], -i))[:k]
    return [history[i] for i in sorted(best)]


def item_vectors(pids: Sequence[int], captions: Mapping[int, str], embedder: str) -> dict[int, np.ndarray]:
    """Unit caption embeddings of the items that have a caption (cached on disk by the embedder)."""
    from recif_bench.itemic.embed import SentenceTransformerEmbedder, cached_embed

    known = sorted(p for p in set(pids) if captions.get(p))
    if not known:
        return {}
    try:
        matrix = cached_embed([captions[p] for p in known], SentenceTransformerEmbedder(embedder), progress=False)
    except ImportError as exc:
        raise ValueError(f"think-data: similarity caption: {exc} (or set similarity: sid)") from None
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return dict(zip(known, matrix))


# ---- prompts and rows -------------------------------------------------------------------------
def rationale_prompt(context: Sequence[int], target: int, codes: Mapping[int, Sequence[int]],
                     captions: Mapping[int, str], fmt: sid.SidFormat) -> str:
    """The aligned model's question: the pruned items and the target, captions where known."""
    def item(p: int) -> str:
        return sid.render(codes[p], fmt) + (f"（{captions[p]}）" if captions.get(p) else "")

    user = RATIONALE_USER.format(context="\n".join(item(p) for p in context), target=item(target))
    return chat.render([{"role": "system", "content": RATIONALE_SYSTEM}, {"role": "user", "content": user}],
                       thinking=False)


def clean_rationale(text: str) -> str:
    """The answer text of a generation, without think tags (they would close the training thought early)."""
    return sid.answer_text(text).replace("<think>", "").replace(sid.THINK_END, "").strip()


def think_row(job: Job, rationale: str, context: Sequence[int], codes: Mapping[int, Sequence[int]],
              fmt: sid.SidFormat) -> dict[str, str]:
    """The SFT row: full-history question, ``<think>`` rationale ``</think>`` + the target SID."""
    answer = f"<think>\n{rationale}\n</think>\n\n{sid.render(codes[job.target], fmt)}"
    messages = job.example.sft_row()["messages"][:-1] + [{"role": "assistant", "content": answer}]
    metadata = {**job.example.metadata, "target_pid": job.target, "pruned_context": list(context)}
    return {"uuid": training.stable_uuid(ROWS_FILE, job.key), **training.row(SOURCE, metadata, messages=messages)}


def plan(users: Any, maps: builders.ItemMaps, settings: Settings) -> list[Job]:
    """The (user, target) pairs of the training users, users in table order (the first ``users`` of them)."""
    jobs: list[Job] = []
    taken = 0
    for user in builders._rows(users):
        if int(user["split"]) != 0 or (settings.users is not None and taken >= settings.users):
            continue
        examples = builders.video_rec(user, maps, settings.seed)
        if not examples:
            continue
        taken += 1
        example = examples[0]
        history = tuple(p for p, _ in builders._mapped(
            builders._list(user["hist_video_pid"])[-builders.VIDEO_HISTORY:], maps.video))
        jobs += [Job(int(user["uid"]), t, example, history) for t in example.answer_ids[:settings.targets_per_user]]
    return jobs


# ---- the resumable loop -----------------------------------------------------------------------
def finished_rows(path: Path) -> list[dict[str, str]]:
    """Rows already written; a line torn by a kill is cut off so appending continues cleanly."""
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        log.warning("%s: dropping a partly written last row", path)
        path.write_bytes(whole)
    return [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]


def row_key(row: Mapping[str, str]) -> str:
    meta = json.loads(row["metadata"])
    return f"{meta['uid']}:{meta['target_pid']}"


def build(settings: Settings, writer: Writer | None = None) -> dict[str, int]:
    """Write the rows of every pending pair; ``writer`` defaults to the configured model."""
    from tqdm import tqdm

    from recif_bench.data import mini

    raw = mini.default_data_dir() / "raw" if settings.raw == "mini" else Path(settings.raw)
    users, maps, caption_table = training.load_raw(raw, settings.fmt)
    captions = {int(p): str(c) for p, c in zip(caption_table["pid"], caption_table["dense_caption"])
                if isinstance(c, str) and c.strip()}
    jobs = plan(users, maps, settings)
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{ROWS_FILE}.jsonl"
    done = {row_key(r) for r in finished_rows(path)}
    todo = [j for j in jobs if j.key not in done]
    empty = 0
    if todo:
        writer = writer or load_writer(settings)
        vectors = item_vectors([p for j in todo for p in (j.target, *j.history)], captions, settings.embedder) \
            if settings.similarity == "caption" else {}
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="think-data: rationales", mininterval=2)
        with open(path, "a", encoding="utf-8") as fh:
            for batch in _chunks(todo, settings.batch_size):
                contexts = [pruned_context(j.history, relevance(j.target, j.history, maps.video, vectors),
                                           settings.top_k) for j in batch]
                prompts = [rationale_prompt(c, j.target, maps.video, captions, settings.fmt)
                           for j, c in zip(batch, contexts)]
                for job, context, text in zip(batch, contexts, writer(prompts)):
                    rationale = clean_rationale(text)
                    if rationale:
                        fh.write(json.dumps(think_row(job, rationale, context, maps.video, settings.fmt),
                                            ensure_ascii=False) + "\n")
                    else:
                        empty += 1
                fh.flush()
                bar.update(len(batch))
        bar.close()
    rows = finished_rows(path)
    training.write({ROWS_FILE: rows}, out)
    return {"pairs": len(jobs), "reused": len(jobs) - len(todo), "written": len(todo) - empty, "empty": empty,
            "rows": len(rows)}


def _chunks(items: Sequence[Job], size: int) -> Iterator[Sequence[Job]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + max(1, size)]


def load_writer(settings: Settings) -> Writer:
    """The aligned model as a :data:`Writer`, through the evaluation backends (one way to load a model)."""
    from recif_bench.models import build_model
    from recif_bench.models.genspec import GenSpec

    if settings.model == "demo":
        from recif_bench.models import demo

        model = str(demo.checked())   # the demo model shipped with the package
    else:
        model = settings.model
    args = {**dict(settings.model_args), "seed": settings.seed,
            ("model" if settings.backend == "openai" else "pretrained"): model}
    try:
        lm = build_model(f"recif-{settings.backend}", args)
    except OSError as exc:   # transformers' "not a folder, not a hub id" and friends
        raise ValueError(f"think-data: cannot load model {model!r}: {exc}") from None
    spec = GenSpec.from_kwargs({"do_sample": True, "temperature": 0.7, "top_p": 0.95, **settings.generation}, 128)
    return lambda prompts: [texts[0] for texts in lm._generate(prompts, spec, None)]


def main(config: dict[str, Any]) -> Path:
    settings = Settings.from_config(config)
    counts = build(settings)
    print("think-data: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    return Path(settings.output_dir) / f"{ROWS_FILE}.parquet"
