import json
import re

import pytest

from recif_bench import sid
from recif_bench.sid import SidError, SidFormat, SidItemMap


def test_render_parse_round_trip_default_and_four_levels():
    assert sid.render((340, 6566, 5603)) == "<|sid_begin|><s_a_340><s_b_6566><s_c_5603><|sid_end|>"
    four = SidFormat(4, 256)
    text = sid.render((1, 2, 3, 255), four)
    assert text == "<|sid_begin|><s_a_1><s_b_2><s_c_3><s_d_255><|sid_end|>"
    assert sid.parse_body(text, four) == (1, 2, 3, 255)


@pytest.mark.parametrize("text, message", [
    ("<s_a_1><s_b_2>", "2 levels, expected 3"),
    ("<s_a_1><s_b_2><s_c_3><s_d_4>", "4 levels, expected 3"),
    ("<s_a_1><s_b_8192><s_c_3>", "outside [0, 8192)"),
    ("<s_a_1><s_c_2><s_b_3>", "level 1 should use letter 'b'"),
    ("<s_a_1> junk <s_b_2><s_c_3>", "unexpected text"),
])
def test_parse_rejects_malformed(text, message):
    with pytest.raises(SidError, match=re.escape(message)):
        sid.parse_body(text)
    assert sid.try_parse_body(text) is None


def test_extract_bodies_keeps_order_and_drops_duplicates():
    answer = sid.render_many([(1, 2, 3), (4, 5, 6), (1, 2, 3)]) + "<|im_end|>"
    assert sid.extract_bodies(answer) == ["<s_a_1><s_b_2><s_c_3>", "<s_a_4><s_b_5><s_c_6>"]
    assert sid.extract_codes(answer) == [(1, 2, 3), (4, 5, 6), (1, 2, 3)]


@pytest.mark.parametrize("generation, body", [
    ("<s_a_1><s_b_2><s_c_3>", "<s_a_1><s_b_2><s_c_3>"),
    ("thought</think>\n<|sid_begin|><s_a_1><s_b_2><s_c_3>", "<s_a_1><s_b_2><s_c_3>"),
    ("a</think>b</think><|sid_begin|><|sid_end|><|sid_begin|><s_a_9><s_b_2><s_c_3><|sid_end|>",
     "<s_a_9><s_b_2><s_c_3>"),
    ("", ""),
])
def test_prediction_body_follows_reference(generation, body):
    assert sid.prediction_body(generation) == body


def test_pack_unpack():
    assert sid.pack((1, 2, 3)) == 1 * 8192 ** 2 + 2 * 8192 + 3
    assert sid.unpack(sid.pack((8191, 0, 17))) == (8191, 0, 17)
    with pytest.raises(SidError):
        sid.pack((1, 2, 9000))


def test_item_map_strategies_and_seeded_ties(tmp_path):
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, {(1, 2, 3): [(10, 50, 5), (11, 40, 5), (12, 30, 1)], (4, 5, 6): [(20, 1, 1)]})
    raw = json.loads(path.read_text())
    assert [e["pid"] for e in raw[str(sid.pack((1, 2, 3)))]] == [10, 11, 12]   # sorted by count
    first = SidItemMap.load(path, seed=0)
    assert first.item_for((1, 2, 3), "most_popular_originally") == 10
    tied = first.item_for((1, 2, 3))
    assert tied in (10, 11)
    # the same choice from a fresh map with the same seed, and on every call
    assert all(SidItemMap.load(path, seed=0).item_for((1, 2, 3)) == tied for _ in range(5))
    choices = {SidItemMap.load(path, seed=s).item_for((1, 2, 3)) for s in range(40)}
    assert choices == {10, 11}    # the seed matters, and only tied items are ever chosen
    assert first.item_for((4, 5, 6)) == 20
    assert first.item_for((7, 7, 7)) == 0 and first.item_for(None) == 0
    assert (4, 5, 6) in first and (9, 9, 9) not in first


def test_item_map_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="sid2pid.json"):
        SidItemMap.load(tmp_path / "sid2pid.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SidError, match="bad.json: not valid JSON"):
        SidItemMap.load(bad)
    bad.write_text(json.dumps({"12": [{"count": 1}]}))
    with pytest.raises(SidError, match="bad entry for key '12'"):
        SidItemMap.load(bad)


def test_seeded_index_is_fixed_by_seed_and_sid_and_spread_evenly():
    import numpy as np

    packed = np.arange(20_000, dtype=np.int64) * 7919
    n = np.full(len(packed), 3)
    first = sid.seeded_index(0, packed, n)
    assert first.tolist() == sid.seeded_index(0, packed, n).tolist()            # the same in every run
    assert sid.seeded_index(0, packed[::-1], n[::-1]).tolist() == first[::-1].tolist()   # order-free
    assert ((first >= 0) & (first < 3)).all()
    assert abs(np.bincount(first, minlength=3) / len(first) - 1 / 3).max() < 0.02
    other = sid.seeded_index(1, packed, n)
    assert 0.6 < (other != first).mean() < 0.74                               # a new seed re-draws (2/3 expected)
    assert sid.seeded_index(5, packed[:4], np.ones(4, dtype=np.int64)).tolist() == [0] * 4


def test_try_parse_body_agrees_with_parse_body():
    import random

    rng = random.Random(4)
    fmt = sid.SidFormat(3, 64)
    texts = []
    for _ in range(3000):
        body = sid.render_body([rng.randrange(64) for _ in range(3)], fmt)
        texts.append(rng.choice([
            body, " " + body + "\n", sid.SID_BEGIN + body, body + sid.SID_END, sid.render([1, 2, 3], fmt),
            body.replace("_a_", "_b_"), body[:-2], body + body, body.replace("_1", "_01"), "<s_a_64><s_b_0><s_c_0>",
            body.replace("<s_c_", "<s_d_"), "", "<s_a_1><s_b_2>", body.replace("2", "٢"), body + "x",
        ]))
    for text in texts:
        try:
            expected = sid.parse_body(text, fmt)
        except sid.SidError:
            expected = None
        assert sid.try_parse_body(text, fmt) == expected, text
