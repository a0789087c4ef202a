"""Amazon transfer tasks: the P5-format reader, leave-one-out split, raw builder, and popularity through recif-eval."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from recif_bench.cli import data as data_cli
from recif_bench.cli import eval as eval_cli
from recif_bench.data.amazon import load_amazon
from recif_bench.data.reader import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"

# 4 users, 6 items; items 1 and 4 share a SID (a collision group)
SEQUENCES = "1 1 2 3 4\n2 2 3 1 5\n3 3 2 1 2\n4 1 2 6\n"
CODES = {1: [0, 0], 2: [0, 1], 3: [1, 0], 4: [0, 0], 5: [2, 1], 6: [3, 3]}


def write_category(root: Path, name: str = "beauty", sequences: str = SEQUENCES, n_items: int = 6) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "Beauty.txt").write_text(sequences)
    (folder / "datamaps.json").write_text(json.dumps({"id2user": {}, "id2item": {str(i): f"A{i}" for i in range(1, n_items + 1)}}))
    (folder / "item_generative_indexing_phase_0.txt").write_text("".join(f"A{i} toy number {i}\n" for i in range(1, n_items + 1)))
    return folder


def write_codes(path: Path, codes: dict) -> Path:
    path.write_text(json.dumps({"format": "recif-bench/item-codes/1", "levels": 2, "codebook_size": 4, "dedup": False,
                                "source": {}, "items": {str(k): v for k, v in codes.items()}}))
    return path


@pytest.fixture()
def tiny(tmp_path):
    write_category(tmp_path / "data")
    return tmp_path / "data", write_codes(tmp_path / "codes.json", CODES)


def test_reader_split_and_training_counts(tmp_path):
    long_user = "5 " + " ".join(str(1 + i % 6) for i in range(25)) + "\n"
    write_category(tmp_path, sequences=SEQUENCES + long_user + "6 1 2\n")
    data = load_amazon("beauty", tmp_path)
    assert data.stats() == {"users": 5, "items": 6, "interactions": 40, "min_length": 3, "max_length": 25,
                            "mean_length": 8.0, "short_users_skipped": 1}
    test = data.examples("test")
    assert test[0].history == (1, 2, 3) and test[0].target == 4
    seq = [1 + i % 6 for i in range(25)]
    assert test[4].history == tuple(seq[-20:-1]) and len(test[4].history) == 19 and test[4].target == seq[-1]
    valid = data.examples("valid")
    assert valid[0].history == (1, 2) and valid[0].target == 3
    assert data.train_counts("test")[1] == 4 + seq[:-1].count(1)
    assert data.texts[3] == "toy number 3" and data.keywords == {}
    assert load_amazon("beauty", tmp_path / "beauty").items == [1, 2, 3, 4, 5, 6]   # the category folder itself


@pytest.mark.parametrize("break_it, message", [
    (lambda f: (f / "Beauty.txt").write_text("1 1 2 9\n"), "1 item id(s) not in datamaps.json (mismatched maps), first [9]"),
    (lambda f: (f / "Beauty.txt").write_text("1 1 2\n"), "empty catalogue"),
    (lambda f: (f / "Beauty.txt").write_text("1 a b c\n"), "line 1: expected integers"),
    (lambda f: (f / "item_generative_indexing_phase_0.txt").write_text("A1 x\n"), "5 item(s) without text"),
    (lambda f: (f / "Other.txt").write_text("1 1 2 3\n"), "expected one sequence file"),
    (lambda f: (f / "datamaps.json").write_text("[]"), 'expected JSON {"id2item"'),
])
def test_reader_errors_name_the_file(tmp_path, break_it, message):
    break_it(write_category(tmp_path))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_amazon("beauty", tmp_path)
    with pytest.raises(DataError, match="no Amazon category 'toys' here \\(categories found: beauty\\)"):
        load_amazon("toys", tmp_path)


def run_eval(capsys, data_dir, *extra):
    tasks = [] if "--tasks" in extra else ["--tasks", "amazon_transfer"]
    code = eval_cli.main(["--model", "popularity", "--data-dir", str(data_dir), *tasks, *extra])
    return code, capsys.readouterr()


def summary_metrics(run_dir: Path, task="amazon_beauty") -> dict:
    return json.loads((run_dir / "summary.json").read_text())["tasks"][task]["metrics"]


def test_popularity_on_a_hand_computed_case(tiny, tmp_path, capsys):
    """Training counts (all but each user's last item): 1:4, 2:4, 3:3, 4-6:0 -> ranking 1,2,3,4,5,6.

    group mode: item 1's SID returns its group [1, 4] -> ranked 1,4,2,3,5,6; targets 4,5,2,6 sit at
    ranks 2,5,3,6.  first mode: 4 is never returned -> ranked 1,2,3,5,6; targets at -,4,2,5.
    """
    data_dir, codes = tiny
    for mode, ranks in (("group", [2, 5, 3, 6]), ("first", [None, 4, 2, 5])):
        out = tmp_path / mode
        code, printed = run_eval(capsys, data_dir, "--tasks", "amazon_beauty", "--item-ids", str(codes),
                                 "--collision-mode", mode, "--output", str(out))
        assert code == 0, printed.err
        metrics = summary_metrics(out)
        for k in (1, 3, 5, 10, 20):
            assert metrics[f"recall@{k}"] == pytest.approx(sum(r is not None and r <= k for r in ranks) / 4)
            assert metrics[f"ndcg@{k}"] == pytest.approx(
                sum(1 / math.log2(r + 1) for r in ranks if r is not None and r <= k) / 4)
        assert "R@10" in printed.out and "beauty" in printed.out
        identifiers = json.loads((out / "summary.json").read_text())["data"]["files"]["amazon_beauty"]["identifiers"]
        assert identifiers["mode"] == mode and identifiers["collision_rate"] == pytest.approx(1 / 6)


def test_text_augmented_and_keyword_identifiers_reach_the_prompt(tiny, tmp_path, capsys):
    data_dir, codes = tiny
    for extra, piece in ((["--item-ids", str(codes), "--text-augmented"], "<|sid_begin|><s_a_0><s_b_1><|sid_end|> [toy, number, 2]"),
                         (["--item-ids", "keywords"], "[toy, number, 2] toy number 2")):
        out = tmp_path / extra[-1].strip("-")
        code, printed = run_eval(capsys, data_dir, "--tasks", "amazon_beauty", *extra, "--output", str(out))
        assert code == 0, printed.err
        sample = json.loads((out / "samples_amazon_beauty.jsonl").read_text().splitlines()[0])
        assert piece in sample["arguments"][0][0]
        assert summary_metrics(out)["legal_rate"] == 1.0


def test_recif_eval_errors_for_amazon_inputs(tiny, tmp_path, capsys):
    data_dir, _ = tiny
    bad = write_codes(tmp_path / "bad.json", {k: v for k, v in CODES.items() if k != 6})
    code, printed = run_eval(capsys, data_dir, "--tasks", "amazon_beauty", "--item-ids", str(bad))
    assert code == 2 and "bad.json: codes for 5 items, the beauty catalogue has 6 (mismatched maps" in printed.err
    code, printed = run_eval(capsys, data_dir, "--tasks", "amazon_beauty,recif_video", "--item-ids", str(bad))
    assert code == 2 and "separately" in printed.err
    code, printed = run_eval(capsys, tmp_path / "nowhere", "--tasks", "amazon_beauty")
    assert code == 2 and "nowhere: Amazon data folder not found" in printed.err


def test_build_from_raw_2014_files(tmp_path, capsys):
    reviews = [("u2", "X", 30), ("u1", "Y", 20), ("u2", "Y", 10), ("u1", "Z", 5), ("u2", "Z", 20), ("u1", "X", 40)]
    with gzip.open(tmp_path / "reviews_Beauty_5.json.gz", "wt") as fh:
        for user, asin, t in reviews:
            fh.write(json.dumps({"reviewerID": user, "asin": asin, "unixReviewTime": t, "overall": 5.0}) + "\n")
    with gzip.open(tmp_path / "meta_Beauty.json.gz", "wt") as fh:   # the 2014 meta files are Python literals
        fh.write(repr({"asin": "X", "title": "Red  Lipstick", "brand": "Acme"}) + "\n")
        fh.write(repr({"asin": "Y", "title": "Shampoo"}) + "\n")
    assert data_cli.main(["amazon", "--dataset", "beauty", "--reviews", str(tmp_path / "reviews_Beauty_5.json.gz"),
                          "--meta", str(tmp_path / "meta_Beauty.json.gz"), "--out", str(tmp_path / "out")]) == 0
    data = load_amazon("beauty", tmp_path / "out")
    # u2 (first in the file) = user 1: Y(10) Z(20) X(30) -> items 1, 2, 3; u1 = user 2: Z(5) Y(20) X(40)
    assert data.sequences == {1: [1, 2, 3], 2: [2, 1, 3]}
    assert data.id2asin == {1: "Y", 2: "Z", 3: "X"}
    assert data.texts == {1: "Shampoo", 2: "Z", 3: "Red Lipstick Acme"}
    assert "users=2 items=3 interactions=6" in capsys.readouterr().out
    assert data_cli.main(["amazon", "--dataset", "beauty", "--reviews", str(tmp_path / "missing.gz"),
                          "--meta", str(tmp_path / "meta_Beauty.json.gz"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing.gz: raw file not found" in capsys.readouterr().err


def brute_force_ranks(sequence_file: Path) -> dict[int, int]:
    """Independent of the harness: numpy over the raw file; items ranked by count of all-but-last (ties by id).
    Returns user -> 1-based rank of the user's last item."""
    rows = [np.array(line.split(), dtype=np.int64) for line in sequence_file.read_text().splitlines()]
    n_items = int(max(r[1:].max() for r in rows))
    counts = np.bincount(np.concatenate([r[1:-1] for r in rows]), minlength=n_items + 1)[1:]
    order = np.lexsort((np.arange(1, n_items + 1), -counts)) + 1          # item ids, most popular first
    rank = np.empty(n_items + 1, dtype=np.int64)
    rank[order] = np.arange(1, n_items + 1)
    return {int(r[0]): int(rank[r[-1]]) for r in rows}


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="shared/data/amazon is absent")
def test_popularity_on_real_beauty_and_sports_matches_a_brute_force_recomputation(tmp_path, capsys):
    files = {"beauty": "Beauty.txt", "sports": "Sports_and_Outdoors.txt"}
    for category in files:
        items = load_amazon(category, SHARED).items
        # unique 2-level identifiers (mixed radix of the item id): popularity ranks are then item ranks
        (tmp_path / f"{category}.json").write_text(json.dumps({
            "format": "recif-bench/item-codes/1", "levels": 2, "codebook_size": 256, "dedup": False, "source": {},
            "items": {str(i): [i // 256, i % 256] for i in items}}))
    out = tmp_path / "run"
    code, printed = run_eval(capsys, SHARED, "--item-ids", str(tmp_path / "{category}.json"), "--sample", "1500",
                             "--output", str(out))
    assert code == 0, printed.err
    for category, name in files.items():
        ranks = brute_force_ranks(SHARED / category / name)
        samples = [json.loads(line) for line in (out / f"samples_amazon_{category}.jsonl").read_text().splitlines()]
        users = [s["doc"]["user"] for s in samples]
        assert len(set(users)) == 1500
        for k in (1, 5, 10, 20):
            expected = [float(ranks[u] <= k) for u in users]
            assert [s[f"recall@{k}"] for s in samples] == expected
            assert [s[f"ndcg@{k}"] for s in samples] == pytest.approx(
                [1 / math.log2(ranks[u] + 1) if ranks[u] <= k else 0.0 for u in users], abs=1e-12)
            assert summary_metrics(out, f"amazon_{category}")[f"recall@{k}"] == pytest.approx(np.mean(expected))
