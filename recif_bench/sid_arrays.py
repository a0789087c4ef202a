"""Many SID strings at once: the numpy side of :mod:`recif_bench.sid`, for scoring at benchmark size.

Two readers work on raw characters instead of one Python call per string or per item:

* :func:`plain_packed`: the packed codes of every candidate that is exactly a canonical SID body
  (``<s_a_1><s_b_2><s_c_3>``, as :func:`sid.render_body` writes it), -1 for anything else.  The full
  benchmark has 4.2M candidates; a per-string regex is most of the scoring time.
* :func:`item_map_arrays`: the arrays of a ``sid2pid.json`` / ``sid2iid.json`` file written in the
  reference's layout, without building a Python object per item (``json.loads`` of the 432k-SID file
  takes seconds and most of the scoring memory).

Both are exact or abstain: a string that is not a canonical body gets -1 and is read the slow way
by the caller; a mapping file with anything unexpected gives ``None`` and is read with ``json``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_CHUNK = 1 << 18        # candidates per pass: bounds the joined text and its masks
_MAX_DIGITS = 18        # a run of more digits could overflow int64


def _digit_runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of ASCII digits in a byte array."""
    digit = (a - np.uint8(48)) < 10
    edges = np.diff(digit.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _run_values(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Decimal value of each digit run (runs of at most ``_MAX_DIGITS`` digits)."""
    lengths = ends - starts
    values = np.zeros(len(starts), dtype=np.int64)
    last = len(a) - 1
    for j in range(int(lengths.max(initial=0))):
        digit = a[np.minimum(starts + j, last)].astype(np.int64) - 48
        values = np.where(lengths > j, values * 10 + digit, values)
    return values


def _matches(a: np.ndarray, positions: np.ndarray, text: bytes) -> np.ndarray:
    """Whether ``text`` is written at each of ``positions`` (positions beyond the end never match)."""
    ok = (positions >= 0) & (positions + len(text) <= len(a))
    if not len(text) or not ok.any():
        return ok
    windows = np.lib.stride_tricks.sliding_window_view(a, len(text))      # a view: rows copied on indexing only
    return ok & (windows[np.where(ok, positions, 0)] == np.frombuffer(text, dtype=np.uint8)).all(1)


def plain_packed(strings: Sequence[str], pieces: Sequence[str], codebook_size: int) -> np.ndarray:
    """Packed codes (``a*K^2 + b*K + c``) of the strings that are canonical SID bodies, else -1.

    ``pieces`` is the fixed text around the codes (``SidFormat.body_pieces()``).  Canonical:
    ``render_body``'s spelling, i.e. ASCII digits without leading zeros and every code below
    ``codebook_size``.  Two canonical bodies are equal strings exactly when their packed codes are
    equal, so the packed code can stand for the string in comparisons.
    """
    out = np.full(len(strings), -1, dtype=np.int64)
    digits = len(str(codebook_size - 1))
    levels = len(pieces) - 1
    before, closing = [piece.encode("ascii") for piece in pieces[:-1]], pieces[-1].encode("ascii")
    for lo in range(0, len(strings), _CHUNK):
        chunk = strings[lo:lo + _CHUNK]
        joined = "\n".join(chunk)
        if not joined.isascii():       # byte offsets would not be character offsets: read one by one
            chunk = [s if s.isascii() else "" for s in chunk]
            joined = "\n".join(chunk)
        a = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        row_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        starts, ends = _digit_runs(a)
        row = np.searchsorted(row_start, starts, side="right") - 1
        per_row = np.bincount(row, minlength=len(chunk))
        ok = per_row == levels
        first_run = np.concatenate([[0], np.cumsum(per_row)[:-1]])
        packed = np.zeros(len(chunk), dtype=np.int64)
        for level in range(levels):
            run = np.where(ok, first_run + level, 0)
            if len(starts) == 0:
                ok[:] = False
                break
            s, e = starts[run], ends[run]
            gap_start = row_start if level == 0 else ends[np.maximum(run - 1, 0)]
            ok &= (s - gap_start == len(before[level])) & _matches(a, gap_start, before[level])
            ok &= (e - s <= digits) & ((e - s == 1) | (a[s] != 48))           # no leading zero
            value = _run_values(a, np.where(ok, s, 0), np.where(ok, e, 0))
            ok &= value < codebook_size
            packed = packed * codebook_size + value
            if level == levels - 1:        # the closing text ends the string
                ok &= (row_start + lengths - e == len(closing)) & _matches(a, e, closing)
        out[lo:lo + len(chunk)] = np.where(ok, packed, -1)
    return out


# ---------------------------------------------------------------------------------------------
# sid2pid.json / sid2iid.json

_ID_FIELDS = (b"pid", b"iid")
_FIELDS = _ID_FIELDS + (b"count", b"count_after_downsample")
_ALLOWED = np.zeros(256, dtype=bool)
for _byte in b'0123456789 \t\n\r":,{}[]' + b"".join(_FIELDS):
    _ALLOWED[_byte] = True
_LETTERS = np.zeros(256, dtype=bool)
for _byte in b"".join(_FIELDS):
    if _byte not in b'"':
        _LETTERS[_byte] = True
_BRACKETS = np.zeros(256, dtype=bool)
for _byte in b"[]{}":
    _BRACKETS[_byte] = True
_SPACE = np.zeros(256, dtype=bool)
for _byte in b" \t\n\r":
    _SPACE[_byte] = True


def item_map_arrays(data: bytes, key_limit: int) -> tuple[np.ndarray, ...] | None:
    """``(keys, lengths, item_ids, counts, counts_after)`` of a mapping file in the reference's layout.

    The layout ``{"<packed>": [{"pid": i, "count": c, "count_after_downsample": d}, ...], ...}``
    (``iid`` for ``pid``; any field order, spacing as ``json.dumps`` writes it).  Every structural
    character is accounted for; ``None`` for anything else (the caller then reads the file with
    ``json``, which also names what is wrong), so a file read here reads the same as with ``json``.
    ``key_limit``: packed SIDs must be below it (``codebook_size ** levels``).
    """
    a = np.frombuffer(data, dtype=np.uint8)
    stripped = data.strip()
    if not _ALLOWED[a].all() or stripped[:1] != b"{" or stripped[-1:] != b"}":
        return None
    del stripped
    starts, ends = _digit_runs(a)
    if len(starts) and (ends - starts).max() > _MAX_DIGITS:
        return None
    values = _run_values(a, starts, ends)
    before, after = a[np.maximum(starts - 1, 0)], a[np.minimum(ends, len(a) - 1)]
    is_key = (before == ord('"')) & (after == ord('"'))
    spaced_colon = _SPACE[before] & (a[np.maximum(starts - 2, 0)] == ord(":"))      # ": 12" (json.dumps)
    colon = np.where(before == ord(":"), starts - 1, np.where(spaced_colon, starts - 2, -1))
    field = np.full(len(starts), -1)
    name_end = a[np.maximum(colon - 2, 0)]              # last letter of the field name: d, t or e
    for index, name in enumerate(_FIELDS):
        maybe = np.flatnonzero(~is_key & (colon >= 0) & (name_end == name[-1]))
        field[maybe[_matches(a, colon[maybe] - len(name) - 2, b'"' + name + b'"')]] = index
    if (~is_key & (field < 0)).any() or (~is_key & (ends - starts > 1) & (a[starts] == ord("0"))).any():
        return None     # not a field value, or a number with a leading zero (invalid JSON)
    keys, key_end = values[is_key], ends[is_key]
    field_pos, field, field_value = starts[~is_key], field[~is_key], values[~is_key]

    brackets = np.flatnonzero(_BRACKETS[a])
    kind = a[brackets]
    opens, closes = brackets[kind == ord("[")], brackets[kind == ord("]")]
    dict_open, dict_close = brackets[kind == ord("{")][1:], brackets[kind == ord("}")][:-1]
    n_keys, n_dicts, n_fields = len(keys), len(dict_open), len(field)
    counts_of = {byte: int(np.count_nonzero(a == ord(byte))) for byte in '":,'}
    if (len(opens) != n_keys or len(closes) != n_keys or len(dict_close) != n_dicts
            or counts_of['"'] != 2 * (n_keys + n_fields) or counts_of[":"] != n_keys + n_fields
            or int(np.count_nonzero(_LETTERS[a])) != sum(len(name) * int(np.count_nonzero(field == f))
                                                 for f, name in enumerate(_FIELDS))):
        return None
    # each key is followed by its list, lists do not overlap, dicts sit inside one list, fields inside one dict
    if n_keys and not (_list_follows(a, key_end, opens) and (opens < closes).all()
                       and (closes[:-1] < opens[1:]).all() and (key_end[1:] > closes[:-1]).all()):
        return None
    owner = np.searchsorted(opens, dict_open) - 1
    if n_dicts and ((owner < 0).any() or (dict_open > closes[owner]).any() or (dict_close < dict_open).any()
                    or (dict_close[:-1] > dict_open[1:]).any() or (dict_close > closes[owner]).any()):
        return None
    in_dict = np.searchsorted(dict_open, field_pos) - 1
    if n_fields and ((in_dict < 0).any() or (field_pos > dict_close[in_dict]).any()):
        return None
    per_dict = np.bincount(in_dict * 4 + field, minlength=n_dicts * 4).reshape(n_dicts, 4)
    if (per_dict[:, 0] + per_dict[:, 1] != 1).any() or (per_dict[:, 2:] > 1).any():
        return None
    lengths = np.bincount(owner, minlength=n_keys).astype(np.int64)
    commas = (n_keys - 1 if n_keys else 0) + int(np.maximum(lengths - 1, 0).sum()) + n_fields - n_dicts
    if counts_of[","] != commas or (n_keys and (np.diff(np.sort(keys)) == 0).any()):
        return None     # a comma out of place, or a duplicate key (json keeps the last one)
    if n_keys and keys.max() >= key_limit:
        return None
    table = np.zeros((n_dicts, 4), dtype=np.int64)
    table[in_dict, field] = field_value
    ids = table[:, 0] + table[:, 1]
    counts = table[:, 2]
    counts_after = np.where(per_dict[:, 3] > 0, table[:, 3], counts)
    return keys, lengths, ids, counts, counts_after


def _list_follows(a: np.ndarray, key_end: np.ndarray, opens: np.ndarray) -> bool:
    """Each key's closing quote is followed by ``:`` (optionally a space) and its own ``[``."""
    gap = opens - key_end
    plain = (gap == 2) & (a[np.minimum(key_end + 1, len(a) - 1)] == ord(":"))
    spaced = (gap == 3) & _matches(a, key_end + 1, b": ")
    return bool((plain | spaced).all())
