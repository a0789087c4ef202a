"""Itemic-token format: one item is ``<|sid_begin|><s_a_X><s_b_Y><s_c_Z><|sid_end|>``.

The number of levels and the codebook size are parameters (OneRec: 3 x 8192; the Amazon
transfer work uses 4 levels), so every function takes a :class:`SidFormat`.  Level ``l`` is
written with the letter ``"abcdefgh"[l]``.

Two kinds of strings are handled:

* the *body* of one SID, ``<s_a_1><s_b_2><s_c_3>``: this is what a model generates after the
  prompt's ``<|sid_begin|>`` and what the metrics compare;
* texts holding any number of full ``<|sid_begin|>...<|sid_end|>`` blocks (answers, prompts).
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from recif_bench import sid_arrays, sid_map_cache

SID_BEGIN = "<|sid_begin|>"
SID_END = "<|sid_end|>"
LEVEL_LETTERS = "abcdefgh"
THINK_END = "</think>"
# what follows a closed thought before the answer, in evaluation's second stage and in RL rollouts
# (the reference's "</think>\n" + "<|sid_begin|>"); SFT text keeps the Qwen3 template's "</think>\n\n"
THOUGHT_CLOSE = THINK_END + "\n"

CODE_TOKEN_FORMAT = "<s_{letter}_{code}>"     # the one spelling of an itemic code token


def code_token(level: int, code: int) -> str:
    """The token of ``code`` at ``level`` (0-based): ``code_token(1, 7)`` is ``<s_b_7>``."""
    return CODE_TOKEN_FORMAT.format(letter=LEVEL_LETTERS[level], code=int(code))


def code_token_regex(letter: str = f"[{LEVEL_LETTERS}]", code: str = r"\d+") -> str:
    """A regular expression of code tokens, from regular expressions of the letter and of the code."""
    return CODE_TOKEN_FORMAT.format(letter=letter, code=code)


CODE_TOKEN = re.compile(code_token_regex(f"([{LEVEL_LETTERS}])", r"(\d+)"))   # groups: letter, code


class SidError(ValueError):
    """A string that should be a SID is not one (wrong level count, bad code, junk)."""


@dataclass(frozen=True)
class SidFormat:
    """Shape of the itemic vocabulary: ``levels`` codes per item, each in ``[0, codebook_size)``."""

    levels: int = 3
    codebook_size: int = 8192

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= len(LEVEL_LETTERS):
            raise ValueError(f"levels must be in 1..{len(LEVEL_LETTERS)}, got {self.levels}")
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be positive, got {self.codebook_size}")

    @property
    def letters(self) -> str:
        return LEVEL_LETTERS[: self.levels]

    def code_tokens(self) -> list[str]:
        """Every code token in vocabulary order: all of level a, then b, ... (as the reference adds them)."""
        return [code_token(level, i) for level in range(self.levels) for i in range(self.codebook_size)]

    def itemic_tokens(self) -> list[str]:
        """Code tokens followed by the two delimiters: the tokens to add to an LLM tokenizer."""
        return self.code_tokens() + [SID_BEGIN, SID_END]

    def body_pattern(self) -> re.Pattern[str]:
        return _body_pattern(self.letters)

    def body_pieces(self) -> list[str]:
        """The fixed text of a body around its ``levels`` codes: before the first, between, after the last."""
        around = [CODE_TOKEN_FORMAT.format(letter=letter, code="\0").split("\0") for letter in self.letters]
        return ([around[0][0]] + [around[i - 1][1] + around[i][0] for i in range(1, self.levels)]
                + [around[-1][1]])


DEFAULT_FORMAT = SidFormat()


@lru_cache(maxsize=None)
def _body_pattern(letters: str) -> re.Pattern[str]:
    """Compiled once per format: the PID reading calls it for every non-canonical candidate."""
    return re.compile("".join(code_token_regex(letter, r"(\d+)") for letter in letters))


def render_body(codes: Sequence[int], fmt: SidFormat = DEFAULT_FORMAT) -> str:
    """``(1, 2, 3)`` -> ``<s_a_1><s_b_2><s_c_3>``, validated against ``fmt``."""
    _check_codes(codes, fmt)
    return "".join(code_token(level, c) for level, c in enumerate(codes))


def render(codes: Sequence[int], fmt: SidFormat = DEFAULT_FORMAT) -> str:
    """``(1, 2, 3)`` -> ``<|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>``."""
    return SID_BEGIN + render_body(codes, fmt) + SID_END


def render_many(items: Iterable[Sequence[int]], fmt: SidFormat = DEFAULT_FORMAT) -> str:
    """Item lists are plain concatenations of full SIDs, with no separator (as in the reference)."""
    return "".join(render(codes, fmt) for codes in items)


def parse_body(text: str, fmt: SidFormat = DEFAULT_FORMAT) -> tuple[int, ...]:
    """Strict inverse of :func:`render_body`; raises :class:`SidError` naming what is wrong."""
    body = text.strip()
    if body.startswith(SID_BEGIN):
        body = body[len(SID_BEGIN):]
    if body.endswith(SID_END):
        body = body[: -len(SID_END)]
    tokens = CODE_TOKEN.findall(body)
    if CODE_TOKEN.sub("", body) != "":
        raise SidError(f"not a SID (unexpected text): {text!r}")
    if len(tokens) != fmt.levels:
        raise SidError(f"SID has {len(tokens)} levels, expected {fmt.levels}: {text!r}")
    codes = []
    for level, (letter, code) in enumerate(tokens):
        if letter != fmt.letters[level]:
            raise SidError(f"SID level {level} should use letter {fmt.letters[level]!r}: {text!r}")
        codes.append(int(code))
    _check_codes(codes, fmt, text)
    return tuple(codes)


def try_parse_body(text: str, fmt: SidFormat = DEFAULT_FORMAT) -> tuple[int, ...] | None:
    """:func:`parse_body`, None instead of an error; without raising, as scoring calls it per malformed
    candidate (the same test: the code tokens of every level in order, nothing else, codes in range)."""
    body = text.strip()
    if body.startswith(SID_BEGIN):
        body = body[len(SID_BEGIN):]
    if body.endswith(SID_END):
        body = body[: -len(SID_END)]
    match = fmt.body_pattern().fullmatch(body)
    if match is None:
        return None
    codes = tuple(map(int, match.groups()))
    return codes if all(code < fmt.codebook_size for code in codes) else None


def extract_bodies(text: str) -> list[str]:
    """Every SID body found between ``<|sid_begin|>`` and ``<|sid_end|>``, in order, duplicates removed.

    This is the reference's ground-truth extraction (spec §3.1): it does not validate the bodies,
    so a malformed block comes back as it is written and simply never matches a prediction.  Like
    the reference it reads every piece of the split, the one before the first ``<|sid_begin|>``
    included (``junk<|sid_end|>`` yields ``junk``).
    """
    seen: dict[str, None] = {}
    for piece in text.split(SID_BEGIN):
        if SID_END in piece:
            body = piece.split(SID_END, 1)[0].strip()
            if body:
                seen.setdefault(body, None)
    return list(seen)


def extract_codes(text: str, fmt: SidFormat = DEFAULT_FORMAT) -> list[tuple[int, ...]]:
    """Every well-formed SID of a text, in order (duplicates kept): for reading prompts."""
    return [codes for body in _all_blocks(text) if (codes := try_parse_body(body, fmt)) is not None]


def _all_blocks(text: str) -> list[str]:
    return [piece.split(SID_END, 1)[0] for piece in text.split(SID_BEGIN)[1:] if SID_END in piece]


def answer_text(generation: str) -> str:
    """The part of a generation after the last ``</think>``: what the model answered."""
    text = generation.strip()
    if THINK_END in text:
        text = text.rsplit(THINK_END, 1)[1].strip()
    return text


def prediction_body(generation: str) -> str:
    """The candidate SID body of one generation, exactly as the reference reads it (spec §3.1).

    After the last ``</think>``, when the text holds a ``<|sid_begin|>``: the first non-empty piece
    of the split on it (the text before the first one included, as in the reference), cut at
    ``<|sid_end|>``; when there is none, or no such piece, the whole stripped text (the non-thinking
    case, where the prompt ends in ``<|sid_begin|>`` and the model writes only the codes).
    """
    text = answer_text(generation)
    if SID_BEGIN in text:
        for piece in text.split(SID_BEGIN):
            body = piece.split(SID_END, 1)[0].strip() if SID_END in piece else piece.strip()
            if body:
                return body
    return text


def item_codes(generation: str, fmt: SidFormat = DEFAULT_FORMAT) -> tuple[int, ...] | None:
    """The codes the item-level (``pid_``) metrics read from one generation, as the reference does.

    The reference (spec §3.1, PID mode) takes the first ``<s_a_N><s_b_N><s_c_N>`` anywhere after
    the last ``</think>`` (text around it is ignored, unlike the SID-mode body) and packs it as
    ``a*K^2 + b*K + c`` without a range check.  An out-of-range code therefore denotes whatever
    in-range SID has the same packed key; we return those codes, and None when there is no match
    or the key is beyond every SID (the reference finds no mapping entry: item 0, a miss).
    """
    match = fmt.body_pattern().search(answer_text(generation))
    if match is None:
        return None
    key = 0
    for code in match.groups():
        key = key * fmt.codebook_size + int(code)
    return unpack(key, fmt) if key < fmt.codebook_size ** fmt.levels else None


def pack(codes: Sequence[int], fmt: SidFormat = DEFAULT_FORMAT) -> int:
    """Mixed-radix integer of the codes: ``a*K^2 + b*K + c`` for 3 levels (the mapping files' key)."""
    _check_codes(codes, fmt)
    value = 0
    for code in codes:
        value = value * fmt.codebook_size + int(code)
    return value


def unpack(value: int, fmt: SidFormat = DEFAULT_FORMAT) -> tuple[int, ...]:
    if value < 0 or value >= fmt.codebook_size ** fmt.levels:
        raise SidError(f"packed SID {value} out of range for {fmt}")
    codes = []
    for _ in range(fmt.levels):
        value, code = divmod(value, fmt.codebook_size)
        codes.append(code)
    return tuple(reversed(codes))


def _check_codes(codes: Sequence[int], fmt: SidFormat, text: str | None = None) -> None:
    where = f": {text!r}" if text is not None else f": {tuple(codes)}"
    if len(codes) != fmt.levels:
        raise SidError(f"SID has {len(codes)} levels, expected {fmt.levels}{where}")
    for code in codes:
        if not 0 <= int(code) < fmt.codebook_size:
            raise SidError(f"SID code {code} outside [0, {fmt.codebook_size}){where}")


# --------------------------------------------------------------------------------------------
# SID -> item mapping (sid2pid.json / sid2iid.json, spec §4.4)

STRATEGIES = ("most_popular_after_downsampling", "most_popular_originally", "random")


@dataclass(frozen=True)
class ItemEntry:
    item_id: int
    count: int
    count_after_downsample: int


class SidItemMap:
    """Packed SID -> items carrying it, with the reference's selection strategies.

    Held as arrays, not one Python object per item: ``keys`` (sorted packed SIDs) and, per key, a
    slice ``offsets[i]:offsets[i + 1]`` of ``item_ids`` / ``counts`` / ``counts_after`` in file
    order.  A 1M-item map is then ~50 MB and looked up for a whole corpus at once
    (:meth:`items_for_packed`, ``np.searchsorted``).

    Ties (and the ``random`` strategy) pick among the candidate ids in ascending order with
    :func:`seeded_index` of ``(seed, packed SID)``, so a SID maps to the same item in every run and
    regardless of evaluation order; the reference uses unseeded ``random`` here (its bug B5).  The
    pick is a hash, not a generator, so a whole corpus of SIDs is resolved in a few numpy passes.
    """

    def __init__(self, entries: Mapping[int, Sequence[ItemEntry]], fmt: SidFormat = DEFAULT_FORMAT,
                 seed: int = 0, source: str = "<memory>") -> None:
        _check_key_space(fmt)
        keys = list(entries)
        lengths = [len(entries[k]) for k in keys]
        flat = [item for k in keys for item in entries[k]]
        self._set_arrays(np.array(keys, dtype=np.int64), np.array(lengths, dtype=np.int64),
                         np.array([e.item_id for e in flat], dtype=np.int64),
                         np.array([e.count for e in flat], dtype=np.int64),
                         np.array([e.count_after_downsample for e in flat], dtype=np.int64))
        self.fmt, self.seed, self.source = fmt, seed, source

    def _set_arrays(self, keys: np.ndarray, lengths: np.ndarray, item_ids: np.ndarray, counts: np.ndarray,
                    counts_after: np.ndarray) -> None:
        """Store the per-key item lists sorted by key (each list keeps its file order)."""
        order = np.argsort(keys, kind="stable")
        starts = np.concatenate([[0], np.cumsum(lengths)])[:-1][order]
        lengths = lengths[order]
        self.keys = keys[order]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(starts - self.offsets[:-1], lengths) + np.arange(int(self.offsets[-1]))
        self.item_ids, self.counts, self.counts_after = item_ids[gather], counts[gather], counts_after[gather]
        self._best: np.ndarray | None = None          # most popular after downsampling, -1 = tie

    @classmethod
    def load(cls, path: str | Path, fmt: SidFormat = DEFAULT_FORMAT, seed: int = 0) -> "SidItemMap":
        """Read a ``sid2pid.json`` / ``sid2iid.json`` file; errors name the file and the key."""
        path = Path(path)
        _check_key_space(fmt)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: SID->item mapping file not found") from None
        self = cls.__new__(cls)
        self.fmt, self.seed, self.source = fmt, seed, str(path)
        digest = hashlib.sha256(data).hexdigest()
        cached = sid_map_cache.load(digest, fmt.levels, fmt.codebook_size)
        if cached is not None:
            self._set_sorted(cached)
            return self
        arrays = sid_arrays.item_map_arrays(data, fmt.codebook_size ** fmt.levels)   # without json, if it can
        if arrays is None:
            arrays = _arrays_from_json(data, fmt, path)
        del data
        self._set_arrays(*arrays)
        sid_map_cache.store(digest, fmt.levels, fmt.codebook_size,
                            {name: getattr(self, name) for name in sid_map_cache.FIELDS})
        return self

    def _set_sorted(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Arrays already in :meth:`_set_arrays`' order (from the cache)."""
        for name in sid_map_cache.FIELDS:
            setattr(self, name, arrays[name])
        self._best = None

    def __contains__(self, codes: Sequence[int]) -> bool:
        try:
            packed = pack(codes, self.fmt)
        except SidError:
            return False
        return bool(self._positions(np.array([packed], dtype=np.int64))[0] >= 0)

    def __len__(self) -> int:
        return len(self.keys)

    def _positions(self, packed: np.ndarray) -> np.ndarray:
        """Index of each packed SID in ``keys``, -1 where absent (negative input = no SID)."""
        if len(self.keys) == 0:
            return np.full(len(packed), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, packed), len(self.keys) - 1)
        return np.where(self.keys[pos] == packed, pos, -1)

    def contains_packed(self, packed: np.ndarray) -> np.ndarray:
        """Boolean mask: which packed SIDs are in the map (negative = no SID = False)."""
        return self._positions(np.asarray(packed, dtype=np.int64)) >= 0

    def item_for(self, codes: Sequence[int] | None,
                 strategy: str = "most_popular_after_downsampling") -> int:
        """The item a SID stands for; 0 (never a hit) for an unknown or malformed SID."""
        if codes is None:
            return 0
        try:
            packed = pack(codes, self.fmt)
        except SidError:
            return 0
        return int(self.items_for_packed(np.array([packed], dtype=np.int64), strategy)[0])

    def items_for_packed(self, packed: np.ndarray, strategy: str = "most_popular_after_downsampling") -> np.ndarray:
        """:meth:`item_for` of many packed SIDs at once (negative = no SID); int64, 0 = no item."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown SID->item strategy {strategy!r}; choose one of {STRATEGIES}")
        pos = self._positions(np.asarray(packed, dtype=np.int64))
        out = np.zeros(len(pos), dtype=np.int64)
        found = pos >= 0
        found[found] = self.offsets[pos[found] + 1] > self.offsets[pos[found]]   # an empty list maps to 0
        where = pos[found]
        if strategy == "most_popular_originally":
            out[found] = self.item_ids[self.offsets[where]]
            return out
        chosen = self._best_after_downsampling()[where] if strategy != "random" else np.full(len(where), -1)
        undecided = np.flatnonzero(chosen < 0)     # ties (or the random strategy): one seeded pick per SID
        chosen[undecided] = self._seeded_picks(where[undecided], strategy)
        out[found] = chosen
        return out

    def _best_after_downsampling(self) -> np.ndarray:
        """Per key: the item with the highest ``count_after_downsample``; -1 where several tie."""
        if self._best is None:
            lengths = np.diff(self.offsets)
            owner = np.repeat(np.arange(len(self.keys)), lengths)
            top = np.zeros(len(self.keys), dtype=np.int64)
            nonempty = lengths > 0
            if nonempty.any():
                top[nonempty] = np.maximum.reduceat(self.counts_after, self.offsets[:-1][nonempty])
            is_top = self.counts_after == top[owner]
            n_top = np.bincount(owner[is_top], minlength=len(self.keys))
            best = np.full(len(self.keys), -1, dtype=np.int64)
            best[owner[is_top]] = self.item_ids[is_top]          # the only one where n_top == 1
            self._best = np.where(n_top == 1, best, -1)
        return self._best

    def _seeded_picks(self, key_index: np.ndarray, strategy: str) -> np.ndarray:
        """Per key: its candidate ids (the most popular after downsampling, or all for ``random``)
        in ascending order, and the one at :func:`seeded_index` of the key."""
        lengths = (self.offsets[key_index + 1] - self.offsets[key_index]).astype(np.int64)
        owner = np.repeat(np.arange(len(key_index)), lengths)
        first_entry = self.offsets[key_index] - np.cumsum(lengths) + lengths      # minus each key's start in the list
        entry = np.repeat(first_entry, lengths) + np.arange(int(lengths.sum()))
        if strategy != "random":
            after = self.counts_after[entry]
            top = np.full(len(key_index), np.iinfo(np.int64).min)
            np.maximum.at(top, owner, after)
            owner, entry = owner[after == top[owner]], entry[after == top[owner]]
        ids = self.item_ids[entry]
        order = np.lexsort((ids, owner))
        owner, ids = owner[order], ids[order]
        n_choices = np.bincount(owner, minlength=len(key_index))
        first = np.cumsum(n_choices) - n_choices
        return ids[first + seeded_index(self.seed, self.keys[key_index], n_choices)]


def seeded_index(seed: int, packed: np.ndarray, n_choices: np.ndarray) -> np.ndarray:
    """An index in ``[0, n)`` per packed SID, fixed by ``(seed, SID)``: splitmix64 of the two, mod ``n``."""
    with np.errstate(over="ignore"):
        state = _splitmix64(_splitmix64(np.array([seed % 2 ** 64], dtype=np.uint64)) ^ packed.astype(np.uint64))
    return (state % np.maximum(n_choices, 1).astype(np.uint64)).astype(np.int64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def load_item_map(path: str | Path, fmt: SidFormat = DEFAULT_FORMAT, seed: int = 0) -> SidItemMap:
    """:meth:`SidItemMap.load`, once per process and file (seconds at full size); a changed file is re-read."""
    stat = Path(path).stat() if Path(path).exists() else None
    return _load_once(str(path), stat and (stat.st_mtime_ns, stat.st_size), fmt, seed)


@lru_cache(maxsize=4)
def _load_once(path: str, version: tuple[int, int] | None, fmt: SidFormat, seed: int) -> SidItemMap:
    return SidItemMap.load(path, fmt, seed)


def _check_key_space(fmt: SidFormat) -> None:
    if fmt.codebook_size ** fmt.levels > 2 ** 63:
        raise SidError(f"{fmt}: packed SIDs need more than 63 bits; the item map holds them as int64")


def _arrays_from_json(data: bytes, fmt: SidFormat, path: Path) -> tuple[np.ndarray, ...]:
    """Any other valid mapping file, through ``json``; errors name the file and the bad entry."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SidError(f"{path}: not valid JSON{where}") from None
    if not isinstance(raw, dict):
        raise SidError(f"{path}: expected a JSON object of packed SID -> item list")
    try:
        return _arrays_fast(raw, fmt)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        return _arrays_checked(raw, fmt, path)    # names the first bad entry


def _arrays_fast(raw: dict, fmt: SidFormat) -> tuple[np.ndarray, ...]:
    """The arrays of a well-formed mapping in a few vectorised passes (raises on anything odd)."""
    n = len(raw)
    keys = np.array([int(k) for k in raw], dtype=np.int64)
    if n and (keys.min() < 0 or keys.max() >= fmt.codebook_size ** fmt.levels):
        raise ValueError("packed SID out of range")
    lengths = np.fromiter(map(len, raw.values()), dtype=np.int64, count=n)
    flat = [item for items in raw.values() if isinstance(items, list) for item in items]
    if len(flat) != int(lengths.sum()):
        raise TypeError("item lists expected")
    id_key = "pid" if not flat or "pid" in flat[0] else "iid"
    ids = np.fromiter(map(operator.itemgetter(id_key), flat), dtype=np.int64, count=len(flat))
    counts = np.fromiter((item.get("count", 0) for item in flat), dtype=np.int64, count=len(flat))
    after = np.fromiter((item.get("count_after_downsample", item.get("count", 0)) for item in flat),
                        dtype=np.int64, count=len(flat))
    if id_key == "iid" and any("pid" in item for item in flat):
        raise KeyError("pid and iid mixed")
    return keys, lengths, ids, counts, after


def _arrays_checked(raw: dict, fmt: SidFormat, path: Path) -> tuple[np.ndarray, ...]:
    """Entry by entry, for any mapping the fast path refused: the first bad entry is named."""
    keys, lengths, rows = [], [], []
    for key, items in raw.items():
        try:
            packed = int(key)
            unpack(packed, fmt)
            entries = [_entry(item) for item in items]
        except (TypeError, ValueError, KeyError) as exc:
            raise SidError(f"{path}: bad entry for key {key!r}: {exc}") from None
        keys.append(packed)
        lengths.append(len(entries))
        rows.extend((e.item_id, e.count, e.count_after_downsample) for e in entries)
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return (np.array(keys, dtype=np.int64), np.array(lengths, dtype=np.int64),
            table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())


def _entry(item: Mapping) -> ItemEntry:
    item_id = item["pid"] if "pid" in item else item["iid"]
    count = int(item.get("count", 0))
    return ItemEntry(int(item_id), count, int(item.get("count_after_downsample", count)))


def write_item_map(path: str | Path, sid_items: Mapping[Sequence[int], Sequence[tuple[int, int, int]]],
                   fmt: SidFormat = DEFAULT_FORMAT, id_key: str = "pid") -> None:
    """Write the reference's mapping layout: ``{packed: [{pid, count, count_after_downsample}, ...]}``
    sorted by ``count`` descending.  ``sid_items`` maps codes to ``(item_id, count, count_after)``."""
    out = {}
    for codes, items in sid_items.items():
        rows = sorted(items, key=lambda t: (-t[1], t[0]))
        out[str(pack(codes, fmt))] = [
            {id_key: int(i), "count": int(c), "count_after_downsample": int(d)} for i, c, d in rows
        ]
    Path(path).write_text(json.dumps(out), encoding="utf-8")
