"""Rec-RL rewards of the OneRec family, selected by ``reward.kind`` in the RL config.

Every reward reads the *first* SID of a completion's answer (after the last ``</think>``, as the
evaluation does); a malformed or missing SID scores 0.  trl calls them with the dataset columns
``ground_truth`` (JSON list of code lists), ``source`` and ``uid`` as keyword lists.

* ``hit`` (OpenOneRec): 1 when the SID is a ground-truth SID; ``partial: true`` adds 0.1 / 0.01 for
  a shared a/b or a prefix.
* ``beam_match`` (OneRec-Think): ``max over beams of sum_l 1[s_hat^l = s^l]``, the best level-wise
  match between a ground-truth SID and the rollout's beam items (0 .. levels).  A completion's
  beams are the ``beam_texts`` column when the rollout sends one (``rollout.mode: think_beam``:
  one member = one reasoning path and its top-K beams, Think's rollout); otherwise the member
  itself (``beam`` / ``sample``: each member already is one of the top-K beams, so the group's best
  reward is Think's rollout reward and the advantages rank the beams).
* ``pscore`` (OneRec-V1): the P-Score of the generated item for the row's user: the mean of
  ``PScoreModel.score(uid, pids)`` over the catalogue items carrying the SID (collisions share a
  SID); a SID that is not an item scores 0.  The P-Score model knows the video/ad item space only
  (RecIF's feedback flags are video flags), so product prompts score 0.
* ``feedback`` (OneRec-V2): +1 when the item is one of the user's target videos with positive
  feedback (``reward.positive``, default like or long-view), -1 when the user marked it
  not-interested (explicit negatives win over positives), 0 otherwise.  Only the video targets
  carry flags in RecIF, so ad and product prompts score 0.

The catalogue is the raw RecIF folder's pid->SID tables (``reward.raw: mini`` = the cached
mini-RecIF); ``format_regularisation`` (OneRec-V1's legality term) is applied by the trainer with
:meth:`Catalogue.legal`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from recif_bench import sid
from recif_bench.benchmark import task_info
from recif_bench.data import builders
from recif_bench.data.training import RAW_FILES
from trainers.common.config import ConfigError

log = logging.getLogger(__name__)

Codes = tuple[int, ...]
REWARD_KINDS = ("hit", "beam_match", "pscore", "feedback")
FEEDBACK_FLAGS = ("longview", "like", "follow", "forward")
RewardFunction = Callable[..., list[float]]


class Scorer(Protocol):
    """What the pscore reward needs of :class:`recif_bench.recommenders.pscore.PScoreModel`."""

    def score(self, uid: int, pids: Sequence[int]) -> list[float]: ...


def answer_codes(completion: str, fmt: sid.SidFormat) -> Codes | None:
    """The first SID of the answer, or None when it is missing or malformed."""
    return sid.try_parse_body(sid.prediction_body(completion), fmt)


def first_sid_reward(completion: str, truth: set[Codes], fmt: sid.SidFormat, partial: bool = False) -> float:
    """1.0 when the answer's first SID is a ground-truth SID; with ``partial``, 10^-(unmatched levels)
    for the longest code prefix it shares with one (0.1 for a/b, 0.01 for a of three); else 0."""
    codes = answer_codes(completion, fmt)
    if codes is None:
        return 0.0
    if codes in truth:
        return 1.0
    if not partial:
        return 0.0
    best = 0
    for target in truth:
        shared = 0
        while shared < len(codes) and codes[shared] == target[shared]:
            shared += 1
        best = max(best, shared)
    return 10.0 ** (best - fmt.levels) if best else 0.0


def level_matches(codes: Codes | None, truth: Iterable[Codes]) -> int:
    """``max over targets of sum_l 1[codes^l = target^l]`` (0 for no SID)."""
    if codes is None:
        return 0
    return max((sum(a == b for a, b in zip(codes, target)) for target in truth), default=0)


def beam_match_reward(beams: Sequence[str], truth: set[Codes], fmt: sid.SidFormat) -> float:
    """Think's rollout reward: the best level-wise match of any beam item with any target."""
    return float(max((level_matches(answer_codes(text, fmt), truth) for text in beams), default=0))


class Catalogue:
    """SID -> items, one space for videos and ads and one for products (raw RecIF pid2sid tables)."""

    def __init__(self, video: Mapping[int, Codes], product: Mapping[int, Codes]) -> None:
        self.spaces: dict[str, dict[Codes, list[int]]] = {"video": defaultdict(list), "product": defaultdict(list)}
        for space, mapping in (("video", video), ("product", product)):
            for pid, codes in mapping.items():
                self.spaces[space][tuple(codes)].append(int(pid))

    @classmethod
    def from_raw(cls, raw_dir: str | Path) -> "Catalogue":
        import pandas as pd

        raw_dir = Path(raw_dir)
        paths = [raw_dir / RAW_FILES[key] for key in ("video", "product")]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)}: raw RecIF pid2sid table not found (reward.raw)")
        maps = builders.ItemMaps.from_tables(pd.read_parquet(paths[0]), pd.read_parquet(paths[1]))
        return cls(maps.video, maps.product)

    @staticmethod
    def space(source: str) -> str:
        return "product" if source == task_info("product").sft_source else "video"

    def pids(self, codes: Codes | None, source: str) -> list[int]:
        """The items carrying ``codes`` in the row's item space (empty for a non-item)."""
        return list(self.spaces[self.space(source)].get(codes, ())) if codes is not None else []

    def legal(self, codes: Codes | None, source: str) -> bool:
        return bool(self.pids(codes, source))


def feedback_table(users: Any, positive: Sequence[str] = ("like", "longview")) -> dict[int, dict[int, float]]:
    """uid -> {target video pid: +1 (positive flag) | -1 (not_interested)} from the raw user table."""
    unknown = sorted(set(positive) - set(FEEDBACK_FLAGS))
    if unknown:
        raise ConfigError(f"reward.positive: unknown flag(s) {unknown}; choose from {FEEDBACK_FLAGS}")
    table: dict[int, dict[int, float]] = {}
    for user in builders._rows(users):
        pids = builders._list(user.get("target_video_pid"))
        flags = {name: builders._list(user.get(f"target_video_{name}")) for name in (*positive, "not_interested")}
        signs: dict[int, float] = {}
        for i, pid in enumerate(pids):
            raised = {name for name, values in flags.items() if i < len(values) and values[i]}
            if "not_interested" in raised:
                signs[int(pid)] = -1.0
            elif raised:
                signs[int(pid)] = 1.0
        if signs:
            table[int(user["uid"])] = signs
    return table


def feedback_reward(pids: Sequence[int], signs: Mapping[int, float]) -> float:
    """-1 if the user rejected any of the items, else +1 if they engaged with one, else 0."""
    values = [signs.get(int(p), 0.0) for p in pids]
    return min(values) if any(v < 0 for v in values) else max(values, default=0.0)


def pscore_reward(scorer: Scorer, uid: int, pids: Sequence[int]) -> float:
    """The mean P-Score of the items of a SID; 0 for a SID that is no item (or an unknown user)."""
    if not pids or uid < 0:
        return 0.0
    scores = scorer.score(int(uid), list(pids))
    return float(sum(scores) / len(scores))


def raw_dir(spec: Mapping[str, Any]) -> Path:
    """``reward.raw``: a raw RecIF folder, or ``mini`` for the cached mini-RecIF's."""
    value = spec.get("raw")
    if value is None:
        raise ConfigError(f"reward.kind {spec.get('kind')!r} needs reward.raw (a raw RecIF folder, or mini)")
    if value == "mini":
        from recif_bench.data import mini

        return mini.default_data_dir() / "raw"
    return Path(value)


def load_pscore(path: str | Path) -> Scorer:
    """The trained P-Score model (:class:`recif_bench.recommenders.pscore.PScoreModel`)."""
    from recif_bench.recommenders.pscore import PScoreModel

    return PScoreModel.load(path)


def _truths(ground_truth: Sequence[str]) -> list[set[Codes]]:
    return [{tuple(c) for c in json.loads(truth)} for truth in ground_truth]


def build(spec: Mapping[str, Any], fmt: sid.SidFormat, catalogue: Catalogue | None = None,
          scorer: Scorer | None = None, users: Any = None) -> RewardFunction:
    """The trl reward function of ``reward:`` (``kind`` and its options); the catalogue, P-Score model
    and raw user table are loaded from ``reward.raw`` / ``reward.pscore_model`` unless given."""
    kind = spec.get("kind", "hit")
    if kind not in REWARD_KINDS:
        raise ConfigError(f"reward.kind must be one of {REWARD_KINDS}, got {kind!r}")
    if kind == "hit":
        partial = bool(spec.get("partial", False))

        def reward(prompts: Sequence[Any], completions: Sequence[str], ground_truth: Sequence[str],
                   **_: Any) -> list[float]:
            return [first_sid_reward(text, truth, fmt, partial)
                    for text, truth in zip(completions, _truths(ground_truth))]

        reward.__name__ = "partial_hit" if partial else "hit"
        return reward
    if kind == "beam_match":
        def beam_match(prompts: Sequence[Any], completions: Sequence[str], ground_truth: Sequence[str],
                       beam_texts: Sequence[Sequence[str]] | None = None, **_: Any) -> list[float]:
            beams = beam_texts if beam_texts is not None else [[text] for text in completions]
            return [beam_match_reward(b, truth, fmt) for b, truth in zip(beams, _truths(ground_truth))]

        return beam_match
    catalogue = catalogue or Catalogue.from_raw(raw_dir(spec))
    if kind == "pscore":
        if scorer is None:
            if not spec.get("pscore_model"):
                raise ConfigError("reward.kind pscore needs reward.pscore_model (a model folder written by recif-train pscore)")
            scorer = load_pscore(spec["pscore_model"])

        def pscore(prompts: Sequence[Any], completions: Sequence[str], source: Sequence[str], uid: Sequence[int],
                   **_: Any) -> list[float]:
            return [pscore_reward(scorer, u, catalogue.pids(answer_codes(text, fmt), src))
                    if catalogue.space(src) == "video" else 0.0 for text, src, u in zip(completions, source, uid)]

        return pscore
    if users is None:
        import pandas as pd

        users = pd.read_parquet(raw_dir(spec) / RAW_FILES["users"])
    table = feedback_table(users, tuple(spec.get("positive", ("like", "longview"))))

    def feedback(prompts: Sequence[Any], completions: Sequence[str], source: Sequence[str], uid: Sequence[int],
                 **_: Any) -> list[float]:
        return [feedback_reward(catalogue.pids(answer_codes(text, fmt), src), table.get(int(u), {}))
                for text, src, u in zip(completions, source, uid)]

    return feedback
