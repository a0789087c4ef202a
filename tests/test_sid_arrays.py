"""The numpy readers of SID strings and mapping files equal the one-at-a-time definitions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from recif_bench import sid
from recif_bench.sid_arrays import item_map_arrays, plain_packed


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


def json_arrays(text: str, fmt: sid.SidFormat):
    """The definition: the file read with json (sid._arrays_from_json), as plain lists."""
    from pathlib import Path

    return [a.tolist() for a in sid._arrays_from_json(text.encode(), fmt, Path("m.json"))]


def random_mapping(rng: random.Random, fmt: sid.SidFormat, id_key: str = "pid") -> dict:
    out = {}
    for _ in range(rng.randrange(0, 40)):
        items = []
        for _ in range(rng.randrange(0, 4)):
            item = {id_key: rng.randrange(1, 10 ** rng.randrange(1, 12)), "count": rng.randrange(100),
                    "count_after_downsample": rng.randrange(3)}
            if rng.random() < 0.2:
                del item["count_after_downsample"]
            if rng.random() < 0.1:
                del item["count"]
            keys = list(item)
            rng.shuffle(keys)
            items.append({k: item[k] for k in keys})
        out[str(rng.randrange(fmt.codebook_size ** fmt.levels))] = items
    return out


@pytest.mark.parametrize("seed", range(6))
def test_mapping_files_read_as_json_reads_them(seed):
    fmt = sid.SidFormat(3, 64)
    rng = random.Random(seed)
    mapping = random_mapping(rng, fmt, "pid" if seed % 2 else "iid")
    for text, fast in ((json.dumps(mapping), True), (json.dumps(mapping, separators=(",", ":")), True),
                       (json.dumps(mapping, indent=1), False), (json.dumps(mapping) + "\n", True)):
        arrays = item_map_arrays(text.encode(), 64 ** 3)
        if fast or arrays is not None:
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
