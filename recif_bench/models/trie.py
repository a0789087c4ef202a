"""Prefix trie of the catalogue's SIDs in token ids, for constrained decoding.

After the prompt's ``<|sid_begin|>``, a constrained model may only write code tokens that extend
some catalogue SID level by level, then ``<|sid_end|>`` (or end of sequence), so every candidate
is a legal item (legal_rate 1.0 by construction).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from recif_bench import sid


class SidTrie:
    def __init__(self, sids: list[tuple[int, ...]], token_ids: dict[str, int], fmt: sid.SidFormat,
                 end_ids: list[int]) -> None:
        self.children: dict[tuple[int, ...], set[int]] = {}
        for codes in sids:
            names = [sid.code_token(level, c) for level, c in enumerate(codes)]
            if any(name not in token_ids for name in names):
                missing = next(name for name in names if name not in token_ids)
                raise ValueError(f"constrained decoding needs the itemic tokens in the tokenizer; {missing} is missing")
            ids = tuple(token_ids[name] for name in names)
            for depth in range(len(ids)):
                self.children.setdefault(ids[:depth], set()).add(ids[depth])
        self.levels = fmt.levels
        self.end_ids = end_ids

    def under(self, prefixes: Iterable[tuple[int, ...]]) -> "SidTrie":
        """The sub-trie of the SIDs that start with one of ``prefixes`` (token-id tuples, one length).

        Think-ahead decoding (:mod:`recif_bench.models.think_ahead`) restricts the final answer
        to the code prefixes its reasoning paths chose; an empty ``prefixes`` leaves no SID.
        """
        keep = set(prefixes)
        depth = {len(p) for p in keep}
        if len(depth) > 1:
            raise ValueError(f"prefixes of one length expected, got lengths {sorted(depth)}")
        cut = depth.pop() if depth else 0
        heads = {p[:i] for p in keep for i in range(cut + 1)}
        sub = copy.copy(self)
        sub.children = {}
        for node, nexts in self.children.items():
            inside = node[:cut] in keep if len(node) >= cut else node in heads
            kept = {t for t in nexts if len(node) >= cut or node + (t,) in heads} if inside else set()
            if kept:
                sub.children[node] = kept
        return sub

    def contains(self, ids: tuple[int, ...]) -> bool:
        """Whether ``ids`` is a path of the trie (a whole SID, or a prefix of one)."""
        return all(ids[i] in self.children.get(ids[:i], ()) for i in range(len(ids)))

    def allowed(self, generated: tuple[int, ...]) -> list[int]:
        """Token ids that may follow the tokens generated so far after ``<|sid_begin|>``."""
        if len(generated) >= self.levels:
            return self.end_ids
        return sorted(self.children.get(generated, ())) or self.end_ids


@lru_cache(maxsize=8)
def _catalogue(path: str, levels: int, codebook: int) -> tuple[tuple[int, ...], ...]:
    item_map = sid.load_item_map(path, sid.SidFormat(levels, codebook))
    return tuple(sid.unpack(packed, item_map.fmt) for packed in item_map.keys.tolist())


def build_trie(tokenizer: Any, catalogue_path: str | Path, fmt: sid.SidFormat) -> SidTrie:
    vocab = tokenizer.get_vocab()
    end_ids = [i for i in (vocab.get(sid.SID_END), tokenizer.eos_token_id) if i is not None]
    return SidTrie(list(_catalogue(str(catalogue_path), fmt.levels, fmt.codebook_size)), vocab, fmt, end_ids)
