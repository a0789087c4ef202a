"""Many SID strings at once: the numpy side of :mod:`recif_bench.sid`, for scoring at benchmark size.

Two readers work on raw characters instead of one Python call per string or per item:

* :func:`packed_units`: the packed codes of every string written exactly as a run of canonical
  units (a SID body ``<s_a_1><s_b_2><s_c_3>`` as :func:`sid.render_body` writes it, or a marked
  ``<|sid_begin|>...<|sid_end|>`` block); anything else is left to the caller's one-at-a-time
  reading.  The full benchmark has 4.2M candidates and 130k answers of 1-10 SIDs.
* :func:`item_map_arrays`: the arrays of a ``sid2pid.json`` / ``sid2iid.json`` file written in the
  reference's layout, without building a Python object per item (``json.loads`` of the 432k-SID file
  takes a second and most of the scoring memory).

The strings are read by a small parser run on all of them at once: its state, the read position
of every string, is a numpy array, and each step checks one fixed piece (8 bytes per comparison)
or reads one code.  The mapping file is checked whole: with every run of digits collapsed to one
``0``, what is left (the *skeleton*) must equal, byte for byte, the skeleton ``json.dumps`` writes
for the lists found; the numbers are then read in order.  Both are exact or abstain: a string that
is not canonical is refused (-1) and read the slow way; a mapping file with anything unexpected
gives ``None`` and is read with ``json``, which also names what is wrong.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

_CHUNK = 1 << 16        # strings per pass: the joined text and its masks stay in the CPU caches
_INT64_MAX = np.iinfo(np.int64).max
_TO_SPACE = bytes(byte if 48 <= byte < 58 else 32 for byte in range(256))   # digits kept, the rest blank
_TO_ZERO = bytes(48 if 48 <= byte < 58 else byte for byte in range(256))    # every digit a 0
_POWERS_OF_TEN = 10 ** np.arange(1, 19, dtype=np.int64)   # a value below 10**n has at most n digits


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

    All strings are read together, one piece or code at a time: a small parser whose state (the
    read position of every string still being read) is a numpy array.
    """
    max_digits = len(str(codebook_size - 1))
    counts = np.full(len(strings), -1, dtype=np.int64)
    if any(ch.isdigit() or ch == "\n" for piece in pieces for ch in piece) or max_digits > 18:
        return counts, np.zeros(0, dtype=np.int64)
    encoded = [piece.encode("ascii") for piece in pieces]
    pad = b"\n" * (sum(map(len, encoded)) + len(pieces) * (max_digits + 8) + 16)   # reads past the end see newlines
    packed_parts = []
    for lo in range(0, len(strings), _CHUNK):
        chunk = list(strings[lo:lo + _CHUNK])
        try:
            joined = "\n".join(chunk)
        except TypeError:                                   # not all strings: read as str() writes them
            chunk = list(map(str, chunk))
            joined = "\n".join(chunk)
        refused = np.zeros(len(chunk), dtype=bool)
        text, newlines = _lines(joined, len(chunk), pad)
        if newlines is None:                                # rows must be lines of ASCII bytes
            for i, row in enumerate(chunk):
                if not row.isascii() or "\n" in row:
                    refused[i], chunk[i] = True, ""
            text, newlines = _lines("\n".join(chunk), len(chunk), pad)
        n_units, values = _read_units(text, newlines, encoded, max_digits, codebook_size, exactly_one)
        n_units[refused] = -1
        counts[lo:lo + len(chunk)] = n_units
        packed_parts.append(values)
    return counts, (np.concatenate(packed_parts) if packed_parts else np.zeros(0, dtype=np.int64))


def _lines(joined: str, n_rows: int, pad: bytes) -> tuple[bytes, np.ndarray | None]:
    """The padded ASCII bytes of ``n_rows`` joined rows and the newline ending each row (None when
    a row is not ASCII or holds a newline itself)."""
    if not joined.isascii():
        return b"", None
    text = joined.encode("ascii") + pad
    newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
    return text, (newlines[:n_rows] if len(newlines) == n_rows + len(pad) - 1 else None)


def _read_units(text: bytes, row_end: np.ndarray, pieces: list[bytes], max_digits: int, codebook_size: int,
                exactly_one: bool) -> tuple[np.ndarray, np.ndarray]:
    """Units of the rows ending at ``row_end`` (newlines; ``text`` padded with newlines).

    Returns the unit count of every row (-1 = not canonical) and the packed codes of the units of
    every row read to its end, row after row."""
    n_rows = len(row_end)
    words = _words(text)
    counts = np.full(n_rows, -1, dtype=np.int64)
    rows, pos = np.arange(n_rows), np.concatenate([[0], row_end[:-1] + 1])
    found_rows, found_codes = [], []
    unit = 0
    while len(rows):
        if not exactly_one or unit == 1:                   # a row read to its end is complete
            done = pos == row_end[rows]
            counts[rows[done]] = unit
            rows, pos = rows[~done], pos[~done]
            if exactly_one or not len(rows):
                break
        ok = np.ones(len(rows), dtype=bool)
        packed = np.zeros(len(rows), dtype=np.int64)
        for piece in pieces[:-1]:
            ok &= _matches(words, pos, piece)
            value, length, canonical = _read_code(words, pos + len(piece), max_digits)
            ok &= canonical & (value < codebook_size)
            packed = packed * codebook_size + value
            pos = pos + len(piece) + length
        ok &= _matches(words, pos, pieces[-1])
        pos = pos + len(pieces[-1])
        rows, pos = rows[ok], pos[ok]                      # the others stay at -1
        found_rows.append(rows)
        found_codes.append(packed[ok])
        unit += 1
    if not found_rows:
        return counts, np.zeros(0, dtype=np.int64)
    row_of, codes = np.concatenate(found_rows), np.concatenate(found_codes)
    order = np.argsort(row_of, kind="stable")              # row after row, units in reading order
    row_of, codes = row_of[order], codes[order]
    return counts, codes[counts[row_of] >= 0]


def _words(text: bytes) -> np.ndarray:
    """The 8 bytes starting at every position, as little-endian integers (an unaligned view, no copy)."""
    return np.ndarray(shape=(len(text) - 7,), dtype="<u8", buffer=text, strides=(1,))


def _matches(words: np.ndarray, positions: np.ndarray, piece: bytes) -> np.ndarray:
    """Whether ``piece`` is written at each position, compared 8 bytes at a time."""
    ok = np.ones(len(positions), dtype=bool)
    for lo in range(0, len(piece), 8):
        part = piece[lo:lo + 8]
        mask = np.uint64((1 << (8 * len(part))) - 1)
        ok &= (words[positions + lo] & mask) == np.uint64(int.from_bytes(part, "little"))
    return ok


def _read_code(words: np.ndarray, positions: np.ndarray, max_digits: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The number written at each position: value, digit count, and whether it is canonical
    (1 to ``max_digits`` digits, no leading zero)."""
    kind = np.int32 if max_digits <= 9 else np.int64          # half the memory traffic for codebooks < 10**9
    value = np.zeros(len(positions), dtype=kind)
    length = np.zeros(len(positions), dtype=np.int8)
    alive = np.ones(len(positions), dtype=bool)
    ten = kind(10)
    for j in range(max_digits + 1):
        if j % 8 == 0:
            block = words[positions + j].view(np.uint8).reshape(-1, 8)    # little-endian: byte k is column k
        digit = block[:, j % 8] - np.uint8(48)
        if j == 0:
            first = digit
        alive &= digit < 10
        if j == max_digits:
            break
        value = np.where(alive, value * ten + digit, value)
        length += alive
    canonical = (length > 0) & ~alive & ((length == 1) | (first != 0))
    return value.astype(np.int64), length.astype(np.int64), canonical


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
    zeroed = np.frombuffer(text.translate(_TO_ZERO), dtype=np.uint8)   # digits are the only 0s
    repeated = zeroed == 48
    repeated[1:] &= repeated[:-1].copy()                 # a 0 right after a 0: the rest of a run
    repeated[0] = False
    np.logical_not(repeated, out=repeated)
    skeleton = zeroed[repeated].tobytes()
    del zeroed, repeated
    if skeleton == b"{}":
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(5))
    first_item = skeleton.find(b"{", 1)
    layout = _item_layout(skeleton[first_item:skeleton.find(b"}", first_item) + 1]) if first_item > 0 else None
    if layout is None:
        return None
    item, fields, (item_sep, key_sep) = layout
    marks = np.frombuffer(skeleton, dtype=np.uint8)
    lists = np.flatnonzero(marks == ord("["))
    items = np.flatnonzero(marks == ord("{"))[1:]
    lengths = np.diff(np.searchsorted(items, lists), append=len(items)).astype(np.int64)
    del marks, items
    if skeleton != _expected_skeleton(lengths, item, item_sep.encode(), key_sep.encode()):
        return None
    del skeleton
    blanked = text.translate(_TO_SPACE)
    values = np.fromstring(blanked, dtype=np.int64, sep=" ")
    n_fields = len(fields)
    if len(values) != len(lengths) + n_fields * int(lengths.sum()) or (len(values) and values.max() == _INT64_MAX):
        return None                                      # a number beyond int64
    # every run of digits is as long as its value written plainly: no leading zero (not a JSON number)
    n_digits = len(values) + int(np.searchsorted(_POWERS_OF_TEN, values, "right").sum())
    if len(blanked) - blanked.count(b" ") != n_digits:
        return None
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
