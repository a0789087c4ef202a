"""Data at the real scale: the streamed build equals the in-memory one, for any worker count, and resumes."""

import random

import pandas as pd
import pytest

from recif_bench.data import build, mini, training
from recif_bench.data.item_codes import PidCodes
from recif_bench.data.reader import DataError

MINI_FORMAT = mini.FORMAT


def settings(raw, out, **kw):
    defaults = dict(seed=42, levels=3, codebook_size=MINI_FORMAT.codebook_size, batch_rows=40, shard_rows=120)
    return build.BuildSettings(str(raw), str(out), **{**defaults, **kw})


def read_output(folder, name):
    return pd.concat([pd.read_parquet(p) for p in build.output_files(folder, name)], ignore_index=True)


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


def test_zipf_draws_with_cached_cumulative_weights_equal_the_weighted_draws():
    group = list(range(37))
    weights = [1.0 / (rank + 1) for rank in range(len(group))]
    a, b = random.Random(5), random.Random(5)
    assert [a.choices(group, weights)[0] for _ in range(500)] == \
        [b.choices(group, cum_weights=mini._zipf_cumulative(len(group)))[0] for _ in range(500)]


def test_pid_codes_behaves_like_the_dict_it_replaces():
    pids, sids = [7, 3, 9, 3], [[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 1]]
    table = PidCodes.from_columns(pids, sids)
    expected = dict(zip(pids, map(tuple, sids)))                 # a pid listed twice keeps its last SID
    assert dict(table.items()) == expected and len(table) == 3
    assert table[3] == (0, 0, 1) and 9 in table and 4 not in table and "x" not in table
    assert table.mapped([9, 4, 3, 100, 7]) == [(9, (7, 8, 9)), (3, (0, 0, 1)), (7, (1, 2, 3))]
    with pytest.raises(KeyError):
        table[4]
    with pytest.raises(ValueError, match="different lengths"):
        PidCodes.from_columns([1, 2], [[1, 2, 3], [1, 2]])


def test_streamed_build_equals_the_in_memory_build_and_any_worker_count(mini_dir, tmp_path):
    counts = build.build(settings(mini_dir / "raw", tmp_path / "one", num_proc=1, benchmark_dir=str(tmp_path / "b1")))
    build.build(settings(mini_dir / "raw", tmp_path / "two", num_proc=2, benchmark_dir=str(tmp_path / "b2")))
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert len(build.output_files(tmp_path / "one", "sft_video")) > 1          # several shards were written
    reference = training.build_all(mini_dir / "raw", seed=42, fmt=MINI_FORMAT)
    for name, rows in reference.items():
        assert read_output(tmp_path / "one", name).equals(pd.DataFrame(rows)), name
        assert counts[name] == len(rows)
    for task_file in sorted((tmp_path / "b1").glob("*/*_test.parquet")):
        other = tmp_path / "b2" / task_file.parent.name / task_file.name
        assert pd.read_parquet(task_file).equals(pd.read_parquet(other))


def test_a_killed_build_continues_after_its_last_finished_shard(mini_dir, tmp_path, monkeypatch):
    build.build(settings(mini_dir / "raw", tmp_path / "clean", num_proc=1))
    real, calls = build._user_batch, []

    def dies_on_the_fifth_batch(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(build, "_user_batch", dies_on_the_fifth_batch)
    with pytest.raises(KeyboardInterrupt):
        build.build(settings(mini_dir / "raw", tmp_path / "resumed", num_proc=1))
    finished = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "resumed").glob("*.parquet")}
    assert finished and not build.is_built(tmp_path / "resumed")         # one shard of 3 batches was finished
    monkeypatch.setattr(build, "_user_batch", real)
    calls.clear()
    build.build(settings(mini_dir / "raw", tmp_path / "resumed", num_proc=1))
    assert shard_bytes(tmp_path / "resumed") == shard_bytes(tmp_path / "clean")
    assert all((tmp_path / "resumed" / n).stat().st_mtime_ns == t for n, t in finished.items())  # not redone


def test_a_folder_with_other_data_or_other_settings_is_refused(mini_dir, tmp_path, monkeypatch):
    build.build(settings(mini_dir / "raw", tmp_path / "done", num_proc=1))
    with pytest.raises(DataError, match="already holds built data"):
        build.build(settings(mini_dir / "raw", tmp_path / "done", num_proc=1))
    monkeypatch.setattr(build, "_user_batch", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        build.build(settings(mini_dir / "raw", tmp_path / "half", num_proc=1))
    with pytest.raises(DataError, match="other settings"):
        build.build(settings(mini_dir / "raw", tmp_path / "half", num_proc=1, seed=7))


def test_bad_raw_tables_are_one_clear_error(mini_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in training.RAW_FILES.values():
        (raw / name).write_bytes((mini_dir / "raw" / name).read_bytes())
    users = pd.read_parquet(raw / training.RAW_FILES["users"]).drop(columns=["split"])
    users.to_parquet(raw / training.RAW_FILES["users"])
    with pytest.raises(DataError, match=r"onerec_bench_release.parquet: missing column\(s\) split"):
        build.build(settings(raw, tmp_path / "out"))
    (raw / training.RAW_FILES["users"]).write_bytes((mini_dir / "raw" / training.RAW_FILES["users"]).read_bytes())
    (raw / training.RAW_FILES["captions"]).write_text("not parquet")
    with pytest.raises(DataError, match="pid2caption.parquet: not a readable parquet file"):
        build.build(settings(raw, tmp_path / "out"))
    with pytest.raises(ValueError, match="multiple of --batch-rows"):
        settings(raw, tmp_path / "out", batch_rows=40, shard_rows=100)


def test_the_lazy_training_dataset_yields_the_in_memory_packs(mini_dir, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from trainers.common import collate, dataset, samples

    build.build(settings(mini_dir / "raw", tmp_path / "data", num_proc=1))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = {"dir": str(tmp_path / "data"), "mixture": {"sft_video": 1.0, "sft_label_pred": 0.3}, "max_length": 200,
            "seed": 3}
    packed, _ = dataset.build(spec, tokenizer, tmp_path / "cache")
    rows = samples.mix(spec["mixture"], spec["dir"], seed=3)
    tokens = [samples.tokenize_row(tokenizer, r) for r in rows]
    kept = [s for s in tokens if len(s) <= 200 and any(label != samples.IGNORE for label in s.labels)]
    assert 0 < len(kept) < len(tokens)                      # some samples were dropped as too long
    expected = collate.pack(kept, 200)
    assert len(packed) == len(expected)
    assert [packed[i] for i in (0, len(expected) // 2, len(expected) - 1)] == \
        [expected[i] for i in (0, len(expected) // 2, len(expected) - 1)]
    assert (tmp_path / "cache").is_dir()                    # the Arrow files live beside the run


def test_the_ray_engine_gives_the_rows_of_the_local_engine(mini_dir, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install '.[scale]')")
    import ray

    from recif_bench.data import build_ray

    build.build(settings(mini_dir / "raw", tmp_path / "local", num_proc=1))
    try:
        counts = build_ray.build(settings(mini_dir / "raw", tmp_path / "ray", num_proc=2))
    finally:
        ray.shutdown()
    for name in build.USER_FILES + build.CAPTION_FILES:
        ours, theirs = read_output(tmp_path / "local", name), read_output(tmp_path / "ray", name)
        assert theirs.equals(ours), name
        assert counts[name] == len(ours)
