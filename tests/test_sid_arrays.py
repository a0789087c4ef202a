"""The numpy readers of SID strings and mapping files equal the one-at-a-time definitions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from recif_bench import sid
from recif_bench.sid_arrays import item_map_arrays, packed_units, plain_packed


PLAIN = (sid.DEFAULT_FORMAT.body_pieces(), sid.DEFAULT_FORMAT.codebook_size)


def canonical_packed(text: str, fmt: sid.SidFormat) -> int:
    """The definition: a string render_body would write for some codes, else -1."""
    codes = sid.try_parse_body(text, fmt)
    return sid.pack(codes, fmt) if codes is not None and sid.render_body(codes, fmt) == text else -1


@pytest.mark.parametrize("fmt", [sid.SidFormat(3, 8192), sid.SidFormat(4, 256), sid.SidFormat(1, 10)])
def test_plain_packed_equals_the_canonical_definition(fmt):
    rng = random.Random(0)
    strings = []
    for _ in range(3000):
        codes = [rng.randrange(fmt.codebook_size) for _ in range(fmt.levels)]
        body = sid.render_body(codes, fmt)
        strings.append(rng.choice([
            body, body, body, " " + body, body + " ", body + "\n", body[:-1], body + ">", "x" + body,
            body.replace("_", "_0", 1), body.replace("<s_a_", "<s_A_"), body.replace(">", ">>", 1),
            body + body, "".join(f"<s_{l}_{fmt.codebook_size}>" for l in fmt.letters), "", "junk", "<s_a_>",
            body.replace("1", "١"), "é" + body, body.replace("<s_", "<t_"), f"<|sid_begin|>{body}<|sid_end|>",
            "reason</think>\n<|sid_begin|>" + body, body.replace(">", ">\n"),
        ]))
    got = plain_packed(strings, fmt.body_pieces(), fmt.codebook_size)
    assert got.tolist() == [canonical_packed(s, fmt) for s in strings]
    assert (got >= 0).sum() > 300                           # the canonical ones were read, not refused


def test_plain_packed_of_chunks_and_of_nothing(monkeypatch):
    import recif_bench.sid_arrays as sa

    monkeypatch.setattr(sa, "_CHUNK", 7)                    # several chunks, one with a non-ASCII string
    strings = [sid.render_body((i, i, i)) for i in range(20)] + ["ü"] + [sid.render_body((1, 2, 3))]
    assert plain_packed(strings, *PLAIN).tolist() == [sid.pack((i, i, i)) for i in range(20)] + [
        -1, sid.pack((1, 2, 3))]
    assert plain_packed([], *PLAIN).tolist() == []
    assert plain_packed(["", ""], *PLAIN).tolist() == [-1, -1]


@pytest.mark.parametrize("fmt", [sid.SidFormat(3, 8192), sid.SidFormat(2, 100)])
def test_packed_units_read_marked_answers_as_extract_bodies_does(fmt):
    """An answer made only of marked canonical SIDs gives those SIDs, in order, repeats kept;
    anything else is refused (the caller reads it with extract_bodies)."""
    rng = random.Random(1)
    marked = [sid.SID_BEGIN + fmt.body_pieces()[0], *fmt.body_pieces()[1:-1], fmt.body_pieces()[-1] + sid.SID_END]
    answers = []
    for _ in range(2000):
        blocks = [sid.render([rng.randrange(fmt.codebook_size) for _ in range(fmt.levels)], fmt)
                  for _ in range(rng.randrange(0, 5))]
        if blocks and rng.random() < 0.3:
            blocks.append(blocks[0])                                           # a repeat
        text = "".join(blocks)
        answers.append(rng.choice([text, text, text, " " + text, text + "\n", text.replace("_", "_0", 1),
                                   text.replace(sid.SID_END, "", 1), "x" + text, text + "é", text[:-1]]))
    counts, packed = packed_units(answers, marked, fmt.codebook_size)
    got, at = [], 0
    for n in counts.tolist():
        got.append(None if n < 0 else packed[at:at + n].tolist())
        at += max(n, 0)
    assert at == len(packed)
    for text, row in zip(answers, got):
        blocks = [piece.split(sid.SID_END, 1)[0] for piece in text.split(sid.SID_BEGIN)[1:]]
        whole = "".join(sid.render(sid.parse_body(b, fmt), fmt) for b in blocks) if all(
            canonical_packed(b, fmt) >= 0 for b in blocks) else None
        if row is None:
            assert whole != text                                               # refused only if not canonical
        else:
            assert whole == text and row == [canonical_packed(b, fmt) for b in blocks]
    assert sum(row is not None for row in got) > 500                           # ~30 % are canonical


def json_arrays(text: str, fmt: sid.SidFormat):
    """The definition: the file read with json (sid._arrays_from_json), as plain lists."""
    from pathlib import Path

    return [a.tolist() for a in sid._arrays_from_json(text.encode(), fmt, Path("m.json"))]


def random_mapping(rng: random.Random, fmt: sid.SidFormat, id_key: str = "pid", uniform: bool = True) -> dict:
    """Items with optional fields in a shuffled order: one layout for the whole file when ``uniform``
    (as the reference's files are written), else drawn per item."""
    def layout() -> list[str]:
        names = [id_key] + [name for name, p in (("count", 0.9), ("count_after_downsample", 0.8)) if rng.random() < p]
        rng.shuffle(names)
        return names

    file_layout = layout()
    out = {}
    for _ in range(rng.randrange(0, 40)):
        items = []
        for _ in range(rng.randrange(0, 4)):
            value = {id_key: rng.randrange(1, 10 ** rng.randrange(1, 12)), "count": rng.randrange(100),
                     "count_after_downsample": rng.randrange(3)}
            items.append({name: value[name] for name in (file_layout if uniform else layout())})
        out[str(rng.randrange(fmt.codebook_size ** fmt.levels))] = items
    return out


@pytest.mark.parametrize("seed", range(8))
def test_mapping_files_read_as_json_reads_them(seed):
    fmt = sid.SidFormat(3, 64)
    rng = random.Random(seed)
    for uniform in (True, False):
        mapping = random_mapping(rng, fmt, "pid" if seed % 2 else "iid", uniform)
        for text, fast in ((json.dumps(mapping), uniform), (json.dumps(mapping, separators=(",", ":")), uniform),
                           (json.dumps(mapping, indent=1), False), (json.dumps(mapping) + "\n", uniform)):
            arrays = item_map_arrays(text.encode(), 64 ** 3)
            if fast or arrays is not None:      # a mixed file may still have one layout by chance
                assert arrays is not None
                assert [a.tolist() for a in arrays] == json_arrays(text, fmt)


@pytest.mark.parametrize("text", [
    '{"1": [{"pid": 1, "count": 2}], "1": [{"pid": 3}]}',          # duplicate key: json keeps the last
    '{"1": [{"pid": 1, "count": 2}] "2": []}',                       # missing comma
    '{"1": [{"pid": 1, "pid": 2}]}',
    '{"1": [{"pid": 1, "iid": 2}]}',
    '{"1": [{"count": 2}]}',
    '{"1": [{"pid": 01}]}',
    '{"1": [{"pid": -1}]}',
    '{"1": [{"pid": 1.5}]}',
    '{"1": [{"pid": "7"}]}',
    '{"1": [{"pid": null}]}',
    '{"1": [{"pid": 1, "other": 2}]}',
    '{"1": {"pid": 1}}',
    '{"a1": []}',
    '{"1": [[{"pid": 1}]]}',
    '{"99999999": [{"pid": 1}]}',                                     # beyond 3 x 64 codes
    '{"1": [{"pid": 1}], }',
    '[{"pid": 1}]',
    '{"1": [{"pid": 12345678901234567890}]}',
    '{"1": [{"p1d": 1}]}',                                          # a digit inside a field name
    '{"1": [{"pid": 1, "count": 2}], "2": [{"count": 3, "pid": 4}]}',  # a second layout
    '{"1": [{"pid": 1e3}]}',
    '{"01": [{"pid": 1}]}',
    '{"1": [{"pid": 1}]}]',
    '{"1": [{"pid": 1}, ]}',
    '{"1": [{"pid": 1},{"pid": 2}]}',                                # compact between items only
    '{}',
])
def test_anything_unusual_is_left_to_json(text):
    """json reads some of these (duplicates: the last wins; extra fields ignored), others it refuses
    with a named error; either way it is json's reading that counts."""
    arrays = item_map_arrays(text.encode(), 64 ** 3)
    if text == "{}":
        assert [a.tolist() for a in arrays] == json_arrays(text, sid.SidFormat(3, 64)) == [[]] * 5
    else:
        assert arrays is None


def test_the_shipped_writer_is_read_without_json(tmp_path, monkeypatch):
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, {(1, 2, 3): [(10, 50, 5), (11, 40, 5)], (4, 5, 6): [(20, 1, 1)]})
    monkeypatch.setattr(sid, "_arrays_from_json", lambda *a: pytest.fail("fell back to json"))
    item_map = sid.SidItemMap.load(path)
    assert item_map.items_for_packed(np.array([sid.pack((4, 5, 6))])).tolist() == [20]
    assert item_map.item_for((1, 2, 3), "most_popular_originally") == 10
