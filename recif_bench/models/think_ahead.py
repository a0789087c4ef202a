"""Think-ahead inference (OneRec-Think): reason about *where* in the catalogue to look, then answer fast.

``think_ahead="T,m"`` on ``recif-hf`` (``recif-eval --think-ahead T,m``) answers a rec request in
three steps:

1. sample T reasoning paths from the thinking prompt, with the task's thinking-stage sampling
   settings (``generation_kwargs.thinking``; ``n`` becomes T);
2. per path, beam-search the first 2 SID levels after ``thought + "</think>\\n" + <|sid_begin|>``
   (the thinking mode's bridge) with m beams, trie-constrained so every prefix leads to a
   catalogue item; all m beams of every path are kept, and their union (at most T·m distinct
   prefixes, first seen first) is the request's candidate prefix set;
3. the fast model (``fast_model``, default the same model) reads the *non-thinking* prompt — in
   deployment the reasoning runs ahead of the request and only the fast model answers at request
   time — and beam-searches the task's K SIDs, constrained to the catalogue SIDs under the prefix set.

Our reading of "T,m": T = reasoning paths per request, m = 2-level prefixes (beams) kept per path.
The candidates are the distinct catalogue SIDs of the last beam search, best first: at most K,
fewer when the prefix set holds fewer than K items (beams that found no SID are dropped, not
repeated).  The first candidate carries the T thoughts, each closed by ``</think>``, so
``samples_<task>.jsonl`` shows the reasoning; metrics read only the text after the last ``</think>``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from recif_bench import chat
from recif_bench.models.genspec import GenSpec, SamplingSpec
from recif_bench.sid import THOUGHT_CLOSE

PREFIX_LEVELS = 2   # the SID levels the reasoning paths decide


@dataclass(frozen=True)
class ThinkAhead:
    paths: int   # T: reasoning paths sampled per request
    beams: int   # m: 2-level prefixes kept per path

    @classmethod
    def parse(cls, value: Any) -> "ThinkAhead":
        """``"T,m"`` (or a pair) -> settings; anything else is one :class:`ValueError` naming the value."""
        if isinstance(value, ThinkAhead):
            return value
        parts = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
        try:
            paths, beams = (int(str(p).strip()) for p in parts)
        except ValueError:
            paths = beams = 0
        if paths < 1 or beams < 1:
            raise ValueError(f"think-ahead: expected T,m (two positive integers: reasoning paths, beams per path), "
                             f"got {value!r}")
        return cls(paths, beams)

    def __str__(self) -> str:
        return f"{self.paths},{self.beams}"


def answer(lm: Any, contexts: list[str], spec: GenSpec) -> list[list[str]]:
    """K (or fewer) candidates per thinking prompt, by think-ahead; ``lm`` is a ``recif-hf`` model."""
    lm._check_thinking_prompts(contexts)
    catalogue = lm.trie(spec.catalogue)
    thoughts = lm._thoughts(contexts, replace(spec.thinking, n=lm.think_ahead.paths))
    prefixes = path_prefixes(lm, contexts, thoughts, spec, catalogue)
    tries = [catalogue.under(p) for p in prefixes]
    fast_prompts = [chat.without_thinking(c) + spec.answer_prefix for c in contexts]
    rows = lm._generate_ids(lm.fast_model, fast_prompts, spec, tries).tolist()
    k = spec.num_return_sequences
    out = []
    for i, (per, allowed) in enumerate(zip(thoughts, tries)):
        found = [tuple(r[:allowed.levels]) for r in rows[i * k:(i + 1) * k]]
        sids = list(dict.fromkeys(r for r in found if len(r) == allowed.levels and allowed.contains(r)))
        texts = [spec.answer_prefix + t for t in lm.tokenizer.batch_decode(sids, skip_special_tokens=True)]
        if texts:
            texts[0] = "".join(t + THOUGHT_CLOSE for t in per) + texts[0]
        out.append(texts)
    return out


def path_prefixes(lm: Any, contexts: list[str], thoughts: list[list[str]], spec: GenSpec,
                  catalogue: Any) -> list[list[tuple[int, ...]]]:
    """Per context, the union over its reasoning paths of the m best 2-level prefixes (token ids)."""
    beams = lm.think_ahead.beams
    bridge = THOUGHT_CLOSE + spec.answer_prefix
    flat = [c + t + bridge for c, per in zip(contexts, thoughts) for t in per]
    stage = GenSpec(num_return_sequences=beams, num_beams=beams,
                    sampling=SamplingSpec(max_new_tokens=PREFIX_LEVELS))
    rows = [tuple(r) for r in lm._generate_ids(lm.model, flat, stage, [catalogue] * len(flat)).tolist()]
    out = []
    start = 0
    for per in thoughts:
        chosen = rows[start:start + len(per) * beams]
        start += len(per) * beams
        out.append(list(dict.fromkeys(r for r in chosen if len(r) == PREFIX_LEVELS and catalogue.contains(r))))
    return out
