"""The lm-eval side of the Amazon transfer tasks ``amazon_<category>`` (GRLM protocol, spec amazon §1).

One document per user: the prompt lists the user's last 19 items (identifier + text, oldest first)
and asks for the next one; the target is the user's last item.  A model returns 20 candidates
(beam 20, as GRLM); :class:`~recif_bench.itemic.collisions.ItemCatalogue` maps them to a ranked
list of distinct items, scored by Recall@K (= HR@K, one target) and NDCG@K for K in 1, 3, 5, 10, 20
over the full catalogue.  Headline: Recall@10.

Run-time settings (lm-eval metadata, or model_args with the stock CLI):

``data_dir``         folder holding ``<category>/`` (or the category folder itself)
``item_ids``         ``auto`` (default: MiniLM embeddings of the item text -> RQ-KMeans 3 x 256 + dedup
                     level, built once and cached), a path to an item-codes file from
                     ``recif-items encode`` (``{category}`` is replaced by the category), or
                     ``keywords`` (GRLM's keyword IDs only, Strategy 2)
``text_augmented``   append the item keywords to the SID (Strategy 3)
``collision_mode``   ``group`` (an identifier returns all its items, GRLM) or ``first``
``fallback``         ``grlm`` (fuzzy grounding of unknown identifiers) or ``none``
``limit``, ``sample``, ``seed``   first N users / N seeded random users
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from recif_bench import chat
from recif_bench.benchmark import AMAZON_K, AMAZON_PREFIX, task_info
from recif_bench.data.amazon import AmazonDataset, Example, load_amazon
from recif_bench.data.reader import DataError, LoadReport
from recif_bench.harness import _candidates, _opt_int
from recif_bench.options import as_bool
from recif_bench.itemic.collisions import CatalogueError, ItemCatalogue, ItemId, text_keywords
from recif_bench.metrics.ranking import ranking_metrics_of
from recif_bench.paths import cache_root

log = logging.getLogger(__name__)

KS = (1, 3, 5, 10, AMAZON_K)   # cutoffs of the Amazon metrics, up to the task's K
AUTO_EMBEDDER, AUTO_LEVELS, AUTO_CODEBOOK = "minilm", 3, 256
# float32 products: the shared benchmark codes must not depend on whether a CPU has bfloat16
AUTO_BACKEND, AUTO_PRECISION = "hartigan", "float32"


def category_of(task: str) -> str:
    return task_info(task).name.removeprefix(AMAZON_PREFIX)


def require_data_dir(data_dir: str | None) -> str:
    if not data_dir:
        raise DataError("data_dir", "the Amazon tasks need a data folder holding <category>/ "
                                    "(e.g. --data-dir ../shared/data/amazon)")
    return str(data_dir)


@lru_cache(maxsize=8)
def dataset(category: str, data_dir: str) -> AmazonDataset:
    return load_amazon(category, require_data_dir(data_dir))


@lru_cache(maxsize=8)
def catalogue(category: str, data_dir: str, item_ids: str = "auto", text_augmented: bool = False,
              mode: str = "group", fallback: str = "grlm") -> ItemCatalogue:
    """The identifiers of one category's items, as prompts show them and generations are mapped back."""
    data = dataset(category, data_dir)
    keywords = data.keywords or {i: text_keywords(t) for i, t in data.texts.items()}
    if item_ids == "keywords":
        return ItemCatalogue({i: ItemId(keywords=keywords[i]) for i in data.items}, None, mode, fallback)
    codes, fmt = _codes(data, item_ids)
    ids = {i: ItemId(codes[i], keywords[i] if text_augmented else None) for i in data.items}
    return ItemCatalogue(ids, fmt, mode, fallback)


def _codes(data: AmazonDataset, item_ids: str):
    from recif_bench.itemic.codes import read_item_codes

    path = auto_codes(data) if item_ids == "auto" else Path(item_ids.replace("{category}", data.category))
    codes, fmt, _ = read_item_codes(path)
    if set(codes) != set(data.id2asin):
        missing = sorted(set(data.id2asin) - set(codes))[:5]
        raise CatalogueError(f"{path}: codes for {len(codes)} items, the {data.category} catalogue has "
                             f"{len(data.id2asin)} (mismatched maps; first missing {missing})")
    return codes, fmt


def auto_codes(data: AmazonDataset) -> Path:
    """The default identifiers: built once per data fingerprint and cached (needs the ``items`` extra)."""
    from recif_bench.itemic.codes import build_item_codes, write_item_codes
    from recif_bench.itemic.embed import SentenceTransformerEmbedder

    root = cache_root() / "amazon_codes"
    name = (f"{data.category}-{data.fingerprint.split(':')[-1]}-{AUTO_EMBEDDER}-{AUTO_LEVELS}x{AUTO_CODEBOOK}"
            f"-{AUTO_BACKEND}-{AUTO_PRECISION}-dedup.json")
    path = root / name
    if not path.exists():
        log.warning("%s: building item SIDs (%s embeddings -> RQ-KMeans %dx%d + dedup level), cached in %s",
                    data.category, AUTO_EMBEDDER, AUTO_LEVELS, AUTO_CODEBOOK, path)
        _, codes, fmt = build_item_codes([data.texts[i] for i in data.items], SentenceTransformerEmbedder(AUTO_EMBEDDER),
                                         AUTO_LEVELS, AUTO_CODEBOOK, dedup=True, backend=AUTO_BACKEND,
                                         precision=AUTO_PRECISION)
        write_item_codes(path, data.items, codes, fmt, dedup=True,
                         source={"embedder": AUTO_EMBEDDER, "data": data.fingerprint, "text": "item text",
                                 "rqkmeans": f"{AUTO_BACKEND}, {AUTO_PRECISION}"})
    return path


def select(examples: list[Example], limit: int | None, sample: int | None, seed: int) -> list[Example]:
    if sample is not None and sample < len(examples):
        rows = sorted(random.Random(seed).sample(range(len(examples)), sample))
        examples = [examples[r] for r in rows]
    return examples[:limit] if limit is not None else examples


def prompt_messages(data: AmazonDataset, items: ItemCatalogue, example: Example) -> list[dict[str, str]]:
    """Our wording (GRLM's prompt text is not published); one line per history item, oldest first."""
    lines = "\n".join(f"{items.render(i)} {data.texts[i]}" for i in example.history)
    category = data.category.replace("_", " ")
    return [{"role": "user", "content": f"A customer bought these {category} products on Amazon, oldest first:\n"
                                        f"{lines}\nWhich product will the customer buy next? Answer with its item ID."}]


def prompt_text(data: AmazonDataset, items: ItemCatalogue, example: Example) -> str:
    """The exact model input of one example (chat-rendered, thinking off, ending in the answer prefix)."""
    return chat.render(prompt_messages(data, items, example), False) + items.answer_prefix


@lru_cache(maxsize=8)
def _prompt_users(category: str, data_dir: str, item_ids: str, text_augmented: bool) -> dict[str, int]:
    data, items = dataset(category, data_dir), catalogue(category, data_dir, item_ids, text_augmented)
    return {prompt_text(data, items, e): e.user for e in data.examples("test")}


def user_of_prompt(category: str, data_dir: str, item_ids: str, text_augmented: bool, prompt: str) -> int:
    """The user whose test prompt this is (ID-based baselines read the user's whole history, not the shown 19 items)."""
    user = _prompt_users(category, data_dir, item_ids, text_augmented).get(prompt)
    if user is None:
        raise DataError(category, "a prompt that is not one of this category's test prompts (other item_ids settings?)")
    return user


@dataclass
class AmazonReport(LoadReport):
    """The load report of one category, plus the identifier settings and their collision report."""

    identifiers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "identifiers": self.identifiers}


def load(task: str, data_dir: str | None, item_ids: str = "auto", text_augmented: Any = False,
         collision_mode: str = "group", fallback: str = "grlm", limit: Any = None, sample: Any = None,
         seed: Any = 0) -> tuple[list[Example], ItemCatalogue, AmazonReport]:
    """Validated examples and identifiers of one task; every input error is raised here, before a model runs."""
    category, root = category_of(task), require_data_dir(data_dir)
    data = dataset(category, root)
    augmented = as_bool(text_augmented, "text_augmented")
    items = catalogue(category, root, str(item_ids), augmented, collision_mode, fallback)
    examples = data.examples("test")
    chosen = select(examples, _opt_int(limit), _opt_int(sample), int(seed))
    report = AmazonReport(task_info(task).name, str(data.root), data.fingerprint, len(examples) + data.n_short_users,
                          len(chosen) + data.n_short_users, identifiers={"item_ids": str(item_ids),
                                                                         **items.collision_report()})
    if data.n_short_users:
        report.skipped["fewer_than_3_items"] = data.n_short_users
    return chosen, items, report


def load_docs(amazon_task: str, data_dir: str | None = None, item_ids: str = "auto", text_augmented: Any = False,
              collision_mode: str = "group", fallback: str = "grlm", limit: Any = None, sample: Any = None,
              seed: Any = 0, chat_template: str = chat.SOFT_SWITCH, **_other_metadata: Any):
    """lm-eval ``custom_dataset`` of ``amazon_<category>``."""
    import datasets

    if chat_template != chat.SOFT_SWITCH:
        log.warning("%s: the Amazon tasks use the soft-switch template (thinking off)", amazon_task)
    examples, items, _ = load(amazon_task, data_dir, item_ids, text_augmented, collision_mode, fallback,
                              limit, sample, seed)
    data = dataset(category_of(amazon_task), require_data_dir(data_dir))
    n = len(examples)
    rows = {
        "prompt": [prompt_text(data, items, e) for e in examples],
        "answer": [items.render_answer(e.target) for e in examples],
        "user": [e.user for e in examples],
        "target": [e.target for e in examples],
    }
    settings = {"category": data.category, "data_dir": str(data_dir), "item_ids": str(item_ids),
                "text_augmented": as_bool(text_augmented, "text_augmented"), "collision_mode": collision_mode,
                "fallback": fallback}
    rows.update({key: [value] * n for key, value in settings.items()})
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})


def score(items: ItemCatalogue, candidates: Sequence[str], target: int) -> dict[str, float]:
    """Recall@K and NDCG@K of one user's candidates; ``legal_rate`` = share of exact identifiers."""
    ranked = items.rank(candidates)
    metrics = ranking_metrics_of(ranked, [target], KS, miss=0)
    out = {f"{name}@{k}": metrics[f"{name}@{k}"] for name in ("recall", "ndcg") for k in KS}
    out["legal_rate"] = sum(items.is_exact(c) for c in candidates) / len(candidates) if candidates else 0.0
    out["n_invalid"] = float(not ranked)
    return out


def process_results(doc: dict, results: Sequence[Any]) -> dict[str, float]:
    items = catalogue(doc["category"], doc["data_dir"], doc["item_ids"], doc["text_augmented"],
                      doc["collision_mode"], doc["fallback"])
    return score(items, _candidates(results), int(doc["target"]))


def format_table(summary: dict) -> str:
    """R@K / N@K of every Amazon task of a summary, one row per category."""
    rows = {t: e for t, e in summary["tasks"].items() if t.startswith(AMAZON_PREFIX)}
    if not rows:
        return ""
    names = [f"recall@{k}" for k in KS] + [f"ndcg@{k}" for k in KS]
    header = f"{'amazon':<16}" + "".join(f"{n.replace('recall', 'R').replace('ndcg', 'N'):>8}" for n in names) + f"{'n':>8}"
    lines = [header]
    for task, entry in rows.items():
        values = "".join("      --" if not entry["supported"] or entry["metrics"].get(n) is None
                         else f"{entry['metrics'][n]:>8.4f}" for n in names)
        lines.append(f"{task.removeprefix(AMAZON_PREFIX):<16}{values}{entry['n']:>8}")
    return "\n".join(lines)
