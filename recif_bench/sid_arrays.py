"""Many SID strings at once: the numpy side of :mod:`recif_bench.sid`, for scoring at benchmark size.

Two readers work on raw characters instead of one Python call per string or per item:

* :func:`packed_units`: the packed codes of every string written exactly as a run of canonical
  units (a SID body ``<s_a_1><s_b_2><s_c_3>`` as :func:`sid.render_body` writes it, or a marked
  ``<|sid_begin|>...<|sid_end|>`` block); anything else is left to the caller's one-at-a-time
  reading.  The full benchmark has 4.2M candidates and 130k answers of 1-10 SIDs.
* :func:`item_map_arrays`: the arrays of a ``sid2pid.json`` / ``sid2iid.json`` file written in the
  reference's layout, without building a Python object per item (``json.loads`` of the 432k-SID file
  takes a second and most of the scoring memory).

Both rest on one idea: collapse every run of digits to a single ``0`` and what is left, the
*skeleton*, must equal the skeleton of a well-formed string byte for byte; the numbers are then
read from the digit runs in order.  Both are exact or abstain: a string that is not canonical is
refused (-1) and read the slow way; a mapping file with anything unexpected gives ``None`` and is
read with ``json``, which also names what is wrong.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

_CHUNK = 1 << 15        # strings per pass: the joined text and its masks stay in the CPU caches
_INT64_MAX = np.iinfo(np.int64).max
_TO_SPACE = bytes(byte if 48 <= byte < 58 else 32 for byte in range(256))   # digits kept, the rest blank
_TO_ZERO = bytes(48 if 48 <= byte < 58 else byte for byte in range(256))    # every digit a 0
_IS_DIGIT = bytes(int(48 <= byte < 58) for byte in range(256))


def _digit_masks(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per byte: is a digit; starts a run of digits (``bytes.translate`` is the fast way in)."""
    digit = np.frombuffer(text.translate(_IS_DIGIT), dtype=bool)
    start = digit.copy()
    start[1:] &= ~digit[:-1]
    return digit, start


def _skeleton(text: bytes, digit: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The bytes with every run of digits collapsed to one ``0``."""
    keep = ~digit
    keep |= start
    return np.frombuffer(text.translate(_TO_ZERO), dtype=np.uint8)[keep]


# --------------------------------------------------------------------------------------------
# SID strings


def packed_units(strings: Sequence[str], pieces: Sequence[str], codebook_size: int,
                 exactly_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, packed)``: how many canonical units each string is made of (-1 = not only that),
    and the packed codes (``a*K^2 + b*K + c``) of all those units, string after string.

    ``pieces`` is the fixed text around a unit's codes (``SidFormat.body_pieces()``, or with the
    ``<|sid_begin|>`` / ``<|sid_end|>`` markers added to its ends).  Canonical: ``render_body``'s
    spelling, ASCII digits without leading zeros, every code below ``codebook_size``; two canonical
    units are equal strings exactly when their packed codes are equal.  ``exactly_one``: a string
    must be one unit (a candidate body), not zero or several.
    """
    levels = len(pieces) - 1
    unit = "0".join(pieces).encode("ascii")                 # the unit's skeleton
    max_digits = len(str(codebook_size - 1))
    counts = np.full(len(strings), -1, dtype=np.int64)
    packed_parts = []
    if any(ch.isdigit() for piece in pieces for ch in piece) or max_digits > 18:
        return counts, np.zeros(0, dtype=np.int64)
    for lo in range(0, len(strings), _CHUNK):
        chunk = list(strings[lo:lo + _CHUNK])
        joined = "\n".join(chunk)
        refused = np.zeros(len(chunk), dtype=bool)
        if not joined.isascii() or joined.count("\n") != len(chunk) - 1:   # rows must be lines of bytes
            for i, text in enumerate(chunk):
                if not text.isascii() or "\n" in text:
                    refused[i], chunk[i] = True, "\x01"
            joined = "\n".join(chunk)
        n_counts, values = _chunk_units(joined.encode("ascii"), len(chunk), unit, levels, max_digits,
                                        codebook_size, exactly_one)
        n_counts[refused] = -1
        counts[lo:lo + len(chunk)] = n_counts
        packed_parts.append(values)
    return counts, (np.concatenate(packed_parts) if packed_parts else np.zeros(0, dtype=np.int64))


def _chunk_units(text: bytes, n_rows: int, unit: bytes, levels: int, max_digits: int, codebook_size: int,
                 exactly_one: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`packed_units` of ``n_rows`` newline-separated ASCII strings (no newline inside one)."""
    a = np.frombuffer(text, dtype=np.uint8)
    digit, start = _digit_masks(text)
    skeleton = _skeleton(text, digit, start)
    row_start, row_end = _rows(skeleton, n_rows)
    length = row_end - row_start
    n_units = np.where(length % len(unit) == 0, length // len(unit), -1)
    if exactly_one:
        n_units[n_units != 1] = -1
    # every unit of a row must have the unit's skeleton
    units_of = np.maximum(n_units, 0)
    first = np.repeat(row_start, units_of) + len(unit) * _within(units_of)
    if len(first):
        windows = np.lib.stride_tricks.sliding_window_view(skeleton, len(unit))[first]
        unit_ok = (windows == np.frombuffer(unit, dtype=np.uint8)).all(1)
        n_units[np.repeat(np.arange(n_rows), units_of)[~unit_ok]] = -1
    # the codes: each good row's runs of digits, in order, read from the raw bytes
    raw_start = np.concatenate([[0], np.flatnonzero(a == 10) + 1])
    runs = np.flatnonzero(start)
    first_run = np.searchsorted(runs, raw_start)
    good = n_units > 0
    per_row = np.where(good, n_units * levels, 0)
    run_index = np.repeat(first_run, per_row) + _within(per_row)
    value, canonical = _run_values(a, digit, runs[run_index], max_digits)
    canonical &= value < codebook_size
    owner = np.repeat(np.arange(n_rows), per_row)
    n_units[owner[~canonical]] = -1
    keep = np.repeat(n_units > 0, per_row)
    codes = value[keep].reshape(-1, levels)
    packed = np.zeros(len(codes), dtype=np.int64)
    for level in range(levels):
        packed = packed * codebook_size + codes[:, level]
    return n_units, packed


def _rows(skeleton: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    newlines = np.flatnonzero(skeleton == 10)
    assert len(newlines) == n_rows - 1, "rows are newline-separated"
    return (np.concatenate([[0], newlines + 1]), np.concatenate([newlines, [len(skeleton)]]))


def _within(lengths: np.ndarray) -> np.ndarray:
    """``0..n-1`` for every ``n`` of ``lengths``, concatenated."""
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - offsets


def _run_values(a: np.ndarray, digit: np.ndarray, starts: np.ndarray, max_digits: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Value of the digit run at each start, and whether it is canonical (at most ``max_digits``
    digits, no leading zero)."""
    value = np.zeros(len(starts), dtype=np.int64)
    alive = np.ones(len(starts), dtype=bool)
    last = len(a) - 1
    for j in range(max_digits + 1):
        at = np.minimum(starts + j, last)
        alive &= digit[at] & (starts + j <= last)
        if j == max_digits:
            break
        value = np.where(alive, value * 10 + (a[at].astype(np.int64) - 48), value)
    too_long = alive
    leading_zero = (a[starts] == 48) & digit[np.minimum(starts + 1, last)] & (starts + 1 <= last)
    return value, ~too_long & ~leading_zero


def plain_packed(strings: Sequence[str], pieces: Sequence[str], codebook_size: int) -> np.ndarray:
    """Packed codes of the strings that are exactly one canonical SID body, else -1."""
    counts, packed = packed_units(strings, pieces, codebook_size, exactly_one=True)
    out = np.full(len(strings), -1, dtype=np.int64)
    out[counts == 1] = packed
    return out


# ---------------------------------------------------------------------------------------------
# sid2pid.json / sid2iid.json

_ID_FIELDS = ("pid", "iid")
_SEPARATORS = ((", ", ": "), (",", ":"))          # json.dumps' default and compact spellings


def item_map_arrays(data: bytes, key_limit: int) -> tuple[np.ndarray, ...] | None:
    """``(keys, lengths, item_ids, counts, counts_after)`` of a mapping file in the reference's layout.

    The layout ``{"<packed>": [{"pid": i, "count": c, "count_after_downsample": d}, ...], ...}`` as
    ``json.dumps`` writes it (default or compact separators), ``iid`` for ``pid``, the fields in any
    order but the same in every item, ``count`` / ``count_after_downsample`` optional (missing:
    0 / ``count``, as :func:`sid._entry` reads them).  The file's skeleton must equal the skeleton
    of that layout for the lists it holds, byte for byte; ``None`` for anything else.
    ``key_limit``: packed SIDs must be below it (``codebook_size ** levels``).
    """
    text = data.strip()
    if text[:1] != b"{" or text[-1:] != b"}":
        return None
    digit, start = _digit_masks(text)
    if (start[:-1] & digit[1:] & (np.frombuffer(text, dtype=np.uint8)[:-1] == 48)).any():
        return None                                      # a leading zero: not a JSON number
    skeleton = _skeleton(text, digit, start)
    del digit, start
    skeleton_bytes = skeleton.tobytes()
    if skeleton_bytes == b"{}":
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(5))
    first_item = skeleton_bytes.find(b"{", 1)
    layout = _item_layout(skeleton_bytes[first_item:skeleton_bytes.find(b"}", first_item) + 1])
    if first_item < 0 or layout is None:
        return None
    item, fields, (item_sep, key_sep) = layout
    lists = np.flatnonzero(skeleton == ord("["))
    items = np.flatnonzero(skeleton == ord("{"))[1:]
    lengths = np.diff(np.searchsorted(items, lists), append=len(items)).astype(np.int64)
    del skeleton
    if skeleton_bytes != _expected_skeleton(lengths, item, item_sep.encode(), key_sep.encode()):
        return None
    values = np.fromstring(text.translate(_TO_SPACE), dtype=np.int64, sep=" ")
    n_fields = len(fields)
    if len(values) != len(lengths) + n_fields * int(lengths.sum()) or (len(values) and values.max() == _INT64_MAX):
        return None                                      # a number beyond int64
    key_at = np.cumsum(1 + n_fields * lengths) - (1 + n_fields * lengths)
    keys = values[key_at]
    table = np.delete(values, key_at).reshape(-1, n_fields)
    if len(keys) and (keys.max() >= key_limit or (np.diff(np.sort(keys)) == 0).any()):
        return None                                      # out of range, or a duplicate key (json keeps the last)
    column = {name: table[:, i] for i, name in enumerate(fields)}
    ids = column.get("pid", column.get("iid"))
    counts = column.get("count", np.zeros(len(table), dtype=np.int64))
    return keys, lengths, ids, counts, column.get("count_after_downsample", counts)


def _item_layout(skeleton: bytes) -> tuple[bytes, tuple[str, ...], tuple[str, str]] | None:
    """The first item's skeleton, its fields in order and the separators, if it is an item of the layout."""
    try:
        item = json.loads(skeleton)
    except (ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(item, dict) or sum(name in item for name in _ID_FIELDS) != 1
            or set(item) - {*_ID_FIELDS, "count", "count_after_downsample"} or set(item.values()) != {0}):
        return None
    for separators in _SEPARATORS:
        if json.dumps(item, separators=separators).encode() == skeleton:
            return skeleton, tuple(item), separators
    return None


def _expected_skeleton(lengths: np.ndarray, item: bytes, item_sep: bytes, key_sep: bytes) -> bytes:
    """The skeleton ``json.dumps`` writes for keys with item lists of these lengths."""
    head = b'"0"' + key_sep + b"["
    lists = {n: head + item_sep.join([item] * n) + b"]" for n in np.unique(lengths).tolist()}
    return b"{" + item_sep.join([lists[n] for n in lengths.tolist()]) + b"}"
