"""``recif-rec``: non-LLM recommenders behind the lm-eval model interface.

They read the SIDs in the prompt (the history, the label_pred candidate) and answer with SID
strings, so they are scored by exactly the same tasks and metrics as the LLMs.  The two text
tasks are not supported (the paper's "--"): :func:`supports` says so and ``recif-eval`` skips them.

Recommenders are a registry of small classes with ``fit`` / ``recommend`` / ``score``; the shipped
one is ``popularity``.  On the Amazon transfer tasks (domain ``amazon_<category>``) it ranks items
by their interactions before each user's test item (ties: lower item id first) and answers with
the items' identifiers from :mod:`recif_bench.transfer` (same ``item_ids`` / ``text_augmented``
settings as the task, passed as model_args).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Protocol

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from recif_bench import sid
from recif_bench.benchmark import AMAZON_PREFIX, TaskKind
from recif_bench.data.builders import _list
from recif_bench.data.training import DOMAIN_COLUMNS, RAW_FILES
from recif_bench.models.genspec import GenSpec

log = logging.getLogger(__name__)

SUPPORTED_KINDS: frozenset[TaskKind] = frozenset({"rec", "label_pred"})



class Recommender(Protocol):
    def recommend(self, prompt: str, domain: str, k: int) -> list[tuple[int, ...]]: ...

    def score(self, prompt: str, candidate: tuple[int, ...] | None, domain: str) -> float: ...


class Popularity:
    """Most popular items of the training split, the same list for every user (keys: SIDs, or item ids
    on the Amazon tasks).

    Counts come from the raw RecIF table's train users (``split == 0``): histories and targets of
    the domain, mapped to SIDs with the domain's pid2sid table.  Without a raw table the counts
    are the SIDs seen in the evaluation prompts (transductive; logged).
    """

    def __init__(self, counts: dict[str, Counter]) -> None:
        self.counts = counts
        self._ranked = {d: [codes for codes, _ in c.most_common()] for d, c in counts.items()}

    @classmethod
    def from_raw_table(cls, raw_dir: Path) -> "Popularity":
        import pandas as pd

        users = pd.read_parquet(raw_dir / RAW_FILES["users"])
        train = users[users["split"] == 0]
        counts: dict[str, Counter] = {}
        for domain, (columns, mapping_file) in DOMAIN_COLUMNS.items():
            pid2sid = pd.read_parquet(raw_dir / mapping_file)
            to_sid = {int(p): tuple(int(c) for c in s) for p, s in zip(pid2sid["pid"], pid2sid["sid"])}
            counter: Counter = Counter()
            for column in columns:
                if column in train.columns:
                    for pids in train[column]:
                        counter.update(to_sid[int(p)] for p in _list(pids) if int(p) in to_sid)
            counts[domain] = counter
        return cls(counts)

    @classmethod
    def from_prompts(cls, prompts_by_domain: dict[str, Iterable[str]], fmt: sid.SidFormat) -> "Popularity":
        counts = {d: Counter(c for p in prompts for c in sid.extract_codes(p, fmt))
                  for d, prompts in prompts_by_domain.items()}
        return cls(counts)

    def recommend(self, prompt: str, domain: str, k: int) -> list[tuple[int, ...]]:
        return self._ranked.get(domain, [])[:k]

    def score(self, prompt: str, candidate: tuple[int, ...] | None, domain: str) -> float:
        """Popularity squashed into (0, 1): only its order matters for AUC."""
        counter = self.counts.get(domain, Counter())
        count = counter.get(candidate, 0) if candidate else 0
        return (count + 1) / (max(counter.values(), default=0) + 2)


def _sequential(kind: str) -> Callable[..., Recommender]:
    def build(checkpoint: str | None = None, fmt: sid.SidFormat = sid.SidFormat(3, 8192)) -> Recommender:
        from recif_bench.models.sequential import SequentialRecommender

        return SequentialRecommender(kind, checkpoint, fmt)
    return build


# popularity is fitted here; sasrec / tiger / lazy_decoder load a checkpoint trained by `recif-train sasrec|tiger|lazy-decoder`
RECOMMENDERS: dict[str, Callable[..., Recommender]] = {"popularity": Popularity, "sasrec": _sequential("sasrec"),
                                                       "tiger": _sequential("tiger"),
                                                       "lazy_decoder": _sequential("lazy_decoder")}


def _is_amazon(domain: str | None) -> bool:
    return bool(domain) and domain.startswith(AMAZON_PREFIX)


def supports(model: LM, kind: TaskKind) -> bool:
    """Whether a model can answer a task kind (only non-LLM recommenders cannot do text tasks)."""
    return not isinstance(model, RecLM) or kind in SUPPORTED_KINDS


@register_model("recif-rec")
class RecLM(LM):
    """model_args: ``model=popularity`` (default) | ``sasrec`` | ``tiger`` | ``lazy_decoder`` (with ``checkpoint=``),
    ``data_dir=`` (to find ``raw/`` tables, or the Amazon
    category folders), ``train_dir=`` (a folder with the raw RecIF tables), ``sid_levels``, ``sid_codebook``,
    ``item_ids`` / ``text_augmented`` (identifiers of the Amazon tasks)."""

    def __init__(self, model: str = "popularity", data_dir: str | None = None, train_dir: str | None = None,
                 sid_levels: int = 3, sid_codebook: int = 8192, item_ids: str = "auto",
                 text_augmented: bool = False, checkpoint: str | None = None, **_ignored) -> None:
        super().__init__()
        self.data_dir, self.item_ids, self.text_augmented = data_dir, str(item_ids), text_augmented
        self.amazon: dict[str, Popularity] = {}
        if model not in RECOMMENDERS:
            raise ValueError(f"unknown recommender {model!r}; known: {', '.join(RECOMMENDERS)}")
        self.name = model
        self.fmt = sid.SidFormat(int(sid_levels), int(sid_codebook))
        self.recommender: Recommender | None = None
        if model != "popularity":
            self.recommender = RECOMMENDERS[model](checkpoint=checkpoint, fmt=self.fmt)
            return
        self.raw_dir = self._raw_dir(train_dir, data_dir)
        if self.raw_dir is not None:
            log.info("%s: fitting on the train users of %s", model, self.raw_dir)
            self.recommender = Popularity.from_raw_table(self.raw_dir)

    @staticmethod
    def _raw_dir(train_dir: str | None, data_dir: str | None) -> Path | None:
        if train_dir:
            path = Path(train_dir)
            if not (path / RAW_FILES["users"]).exists():
                raise FileNotFoundError(f"{path}: no {RAW_FILES['users']} (the raw RecIF user table)")
            return path
        from recif_bench.data.reader import resolve_data_dir

        raw = resolve_data_dir(data_dir) / "raw"
        return raw if (raw / RAW_FILES["users"]).exists() else None

    def _fitted(self, requests: list) -> Recommender:
        if self.recommender is None:
            log.warning("%s: no raw training table found; counting the SIDs of the evaluation prompts",
                        self.name)
            by_domain: dict[str, list[str]] = defaultdict(list)
            for request in requests:
                by_domain[GenSpec.for_request(request).domain or "video"].append(request.args[0])
            return Popularity.from_prompts(by_domain, self.fmt)
        return self.recommender

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[list[str]]:
        recif = [r for r in requests if not _is_amazon(GenSpec.for_request(r).domain)]
        recommender = self._fitted(recif) if recif else None
        out = []
        for request in tqdm(requests, desc=f"{self.name}: recommend", disable=disable_tqdm):
            spec = GenSpec.for_request(request)
            if spec.domain is None:   # a text task: not something a recommender can answer
                answer = [""]
            elif _is_amazon(spec.domain):
                answer = self._amazon_answer(spec.domain, spec.num_return_sequences, request.args[0])
            else:
                items = recommender.recommend(request.args[0], spec.domain, spec.num_return_sequences)
                answer = [sid.render_body(codes, self.fmt) for codes in items]
            self.cache_hook.add_partial("generate_until", request.args, answer)
            out.append(answer)
        return out

    def _amazon_answer(self, domain: str, k: int, prompt: str) -> list[str]:
        from recif_bench import transfer
        from recif_bench.options import as_bool

        category = domain.removeprefix(AMAZON_PREFIX)
        data_dir = transfer.require_data_dir(self.data_dir)
        augmented = as_bool(self.text_augmented, "text_augmented")
        items = transfer.catalogue(category, data_dir, self.item_ids, augmented)
        if self.name != "popularity":
            user = transfer.user_of_prompt(category, data_dir, self.item_ids, augmented, prompt)
            history = transfer.dataset(category, data_dir).sequences[user][:-1]
            return [items.render_answer(i) for i in self.recommender.recommend_items(category, history, k)]
        if domain not in self.amazon:
            data = transfer.dataset(category, data_dir)
            counts = data.train_counts("test")       # every catalogue item is ranked, unseen ones last
            self.amazon[domain] = Popularity({domain: Counter({item: counts[item] for item in data.items})})
        return [items.render_answer(item) for item in self.amazon[domain].recommend("", domain, k)]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """label_pred: log p(是) = log s, log p(否) = log(1 - s), s = the candidate's score."""
        recommender = self._fitted(requests)
        out = []
        for request in tqdm(requests, desc=f"{self.name}: score", disable=disable_tqdm):
            context, continuation = request.args
            candidates = sid.extract_codes(context, self.fmt)
            s = recommender.score(context, candidates[-1] if candidates else None, "video")
            value = (math.log(s) if continuation.strip() == "是" else math.log1p(-s), False)
            self.cache_hook.add_partial("loglikelihood", request.args, value)
            out.append(value)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("recif-rec models do not compute rolling loglikelihoods")
