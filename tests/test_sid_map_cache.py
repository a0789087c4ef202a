"""A mapping file's arrays are kept under its content hash and served only for that content."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recif_bench import sid, sid_arrays

FMT = sid.SidFormat(3, 16)


def write_map(path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    raw = {str(int(k)): [{"pid": int(rng.integers(1, 10 ** 6)), "count": int(rng.integers(9)),
                          "count_after_downsample": int(rng.integers(3))} for _ in range(int(rng.integers(0, 4)))]
           for k in rng.choice(16 ** 3, 200, replace=False)}
    path.write_text(json.dumps(raw))
    return raw


def lookups(item_map: sid.SidItemMap) -> list[list[int]]:
    packed = np.arange(-1, 16 ** 3)
    return [item_map.items_for_packed(packed, strategy).tolist() for strategy in sid.STRATEGIES]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "item_maps"


def test_second_read_comes_from_the_cache_and_equals_the_first(tmp_path, cache, monkeypatch):
    path = tmp_path / "sid2pid.json"
    write_map(path, 0)
    first = sid.SidItemMap.load(path, FMT, seed=3)
    assert len(list(cache.iterdir())) == 1

    def not_called(*_args):
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(sid_arrays, "item_map_arrays", not_called)
    again = sid.SidItemMap.load(path, FMT, seed=3)
    assert isinstance(again.keys, np.memmap)
    assert lookups(again) == lookups(first)
    assert len(again) == len(first)


def test_a_changed_file_is_read_anew(tmp_path, cache):
    path = tmp_path / "sid2pid.json"
    write_map(path, 0)
    before = lookups(sid.SidItemMap.load(path, FMT))
    raw = write_map(path, 1)
    after = sid.SidItemMap.load(path, FMT)
    assert lookups(after) != before
    assert len(after) == len(raw) and len(list(cache.iterdir())) == 2
    other_format = sid.SidItemMap.load(path, sid.SidFormat(3, 32))          # same file, other key space
    assert len(other_format) == len(raw) and len(list(cache.iterdir())) == 3


def test_a_damaged_or_unwritable_cache_is_skipped(tmp_path, cache, caplog, monkeypatch):
    path = tmp_path / "sid2pid.json"
    write_map(path, 2)
    expected = lookups(sid.SidItemMap.load(path, FMT))
    (entry,) = cache.iterdir()
    (entry / "offsets.npy").write_bytes(b"not an array")
    assert lookups(sid.SidItemMap.load(path, FMT)) == expected
    assert "unreadable item-map cache" in caplog.text
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    monkeypatch.setenv("RECIF_BENCH_CACHE", str(blocked))                  # no folder can be made under it
    assert lookups(sid.SidItemMap.load(path, FMT)) == expected
    assert not list(tmp_path.glob("a_file*/**"))
