"""The vectorised rec scorer equals the per-sample definitions on random outputs (to 1e-12).

``Oracle`` below is the per-sample implementation the scorer replaced (one Python loop per sample
and candidate, dict-based SID -> item map), kept here as the definition to compare against.
"""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np
import pytest

from recif_bench import harness, sid
from recif_bench.metrics.ranking import RecScorer, ranking_metrics_of

STRATEGIES = sid.STRATEGIES


# ---------------------------------------------------------------------------------- the oracle

def oracle_ranking(preds, truth, ks, prefix, miss):
    gold = set(truth)
    first = truth[0] if truth else None
    out = {}
    for k in ks:
        top = preds[:k]
        hits = [p != miss and p in gold for p in top]
        found = {p for p, h in zip(top, hits) if h}
        out[f"{prefix}pass@{k}"] = float(any(hits))
        out[f"{prefix}position1_pass@{k}"] = float(first is not None and first in top)
        out[f"{prefix}recall@{k}"] = len(found) / len(gold) if gold else 0.0
        seen, dcg = set(), 0.0
        for rank, p in enumerate(top):
            if p in gold and p not in seen:
                seen.add(p)
                dcg += 1.0 / math.log2(rank + 2)
        ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(gold))))
        out[f"{prefix}ndcg@{k}"] = dcg / ideal if gold else 0.0
    return out


def oracle_item_key(generation: str, fmt: sid.SidFormat) -> int | None:
    """PID mode's key: the first SID anywhere after the last ``</think>``, packed without a range check."""
    text = generation.strip()
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1].strip()
    match = re.search("".join(rf"<s_{letter}_(\d+)>" for letter in fmt.letters), text)
    if match is None:
        return None
    key = 0
    for code in match.groups():
        key = key * fmt.codebook_size + int(code)
    return key


def oracle_item(raw: dict, packed: int | None, strategy: str, seed: int, fmt: sid.SidFormat) -> int:
    """The mapping file read as the reference reads it, with our seeded tie-break."""
    if packed is None:
        return 0
    items = raw.get(str(packed))
    if not items:
        return 0
    if strategy == "most_popular_originally":
        return items[0]["pid"]
    if strategy == "random":
        choices = sorted(i["pid"] for i in items)
    else:
        best = max(i["count_after_downsample"] for i in items)
        choices = sorted(i["pid"] for i in items if i["count_after_downsample"] == best)
    return choices[int(sid.seeded_index(seed, np.array([packed]), np.array([len(choices)]))[0])]


def oracle_score(candidates, answer, answer_ids, raw, strategy, ks, dedup, fmt, seed=0, catalogue=None):
    parsed = []
    for c in candidates:
        body = sid.prediction_body(c)
        codes = sid.try_parse_body(body, fmt) if body else None
        item = oracle_item(raw, oracle_item_key(c, fmt), strategy, seed, fmt) if raw is not None else 0
        if catalogue is not None:
            legal = codes is not None and codes in catalogue
        else:
            legal = codes is not None and (raw is None or str(sid.pack(codes, fmt)) in raw)
        parsed.append((body, codes, item, legal))
    if dedup:
        seen, kept = set(), []
        for p in parsed:
            if p[0] not in seen:
                seen.add(p[0])
                kept.append(p)
        parsed = kept
    metrics = oracle_ranking([p[0] for p in parsed], sid.extract_bodies(answer), ks, "", miss="")
    if raw is not None:
        truth = list(dict.fromkeys(i for i in (answer_ids or []) if i != 0))
        metrics.update(oracle_ranking([p[2] for p in parsed], truth, ks, "pid_", miss=0))
    metrics["legal_rate"] = sum(p[3] for p in parsed) / len(parsed) if parsed else 0.0
    metrics["n_invalid"] = float(sum(p[1] is not None for p in parsed) == 0)
    return metrics


# ---------------------------------------------------------------------------------- random outputs

def random_catalogue(rng: random.Random, n: int, fmt: sid.SidFormat) -> dict[tuple[int, ...], list]:
    """SIDs with 0-4 items each; few distinct counts, so ties are common."""
    out = {}
    while len(out) < n:
        codes = tuple(rng.randrange(fmt.codebook_size) for _ in range(fmt.levels))
        out[codes] = [(rng.randrange(1, 60), rng.randrange(4), rng.randrange(3)) for _ in range(rng.randrange(5))]
    return out


def random_generation(rng: random.Random, pool: list, fmt: sid.SidFormat) -> str:
    codes = rng.choice(pool)
    body = sid.render_body(codes, fmt)
    return rng.choice([
        body, body, body, body,
        " " + body + "\n",
        "reasoning</think>\n" + sid.SID_BEGIN + body,
        "a</think>b</think>" + sid.SID_BEGIN + sid.SID_END + sid.SID_BEGIN + body + sid.SID_END + "tail",
        body + "xyz", "text " + body + " more", body[:-1] + "9>" + body,
        body.replace(f"<s_b_{codes[1]}>", f"<s_b_{codes[1] + fmt.codebook_size}>"),   # out of range: pid key of a+1
        body.replace("_a_", "_b_"),
        "".join(f"<s_{letter}_{fmt.codebook_size + 5}>" for letter in fmt.letters),
        body[: len(body) // 2],
        "".join(f"<s_{letter}_0{c}>" for letter, c in zip(fmt.letters, codes)),
        "", "junk", "<think>no answer",
        sid.SID_BEGIN + "  " + sid.SID_END,
    ])


def random_answer(rng: random.Random, pool: list, fmt: sid.SidFormat) -> str:
    items = [rng.choice(pool) for _ in range(rng.randrange(6))]
    text = sid.render_many(items, fmt)
    return rng.choice([text, text, text, text + sid.SID_BEGIN + "junk" + sid.SID_END, "no sid here", ""])


def corpus(seed: int, fmt: sid.SidFormat, n: int = 400):
    rng = random.Random(seed)
    cat = random_catalogue(rng, 40, fmt)
    pool = list(cat)[:30] + [tuple(rng.randrange(fmt.codebook_size) for _ in range(fmt.levels)) for _ in range(5)]
    samples = []
    for _ in range(n):
        cands = [random_generation(rng, pool, fmt) for _ in range(rng.choice([0, 1, 3, 8, 8, 8]))]
        ids = rng.choice([None, [], [rng.randrange(0, 60) for _ in range(rng.randrange(6))]])
        samples.append((cands, random_answer(rng, pool, fmt), ids))
    return cat, samples


# ---------------------------------------------------------------------------------- the checks

def assert_rows_equal(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12, rel=0), name


def thinking(samples: list, seed: int) -> list:
    """The thinking flow's candidates: a thought, ``</think>\n`` and the answer (some left as they were)."""
    rng = random.Random(seed)
    out = [([f"thought {rng.random()}</think>\n" + c if rng.random() < 0.8 else c for c in cands], answer, ids)
           for cands, answer, ids in samples]
    first = next(i for i, (cands, _, _) in enumerate(out) if cands)
    out[first][0][0] = "the first one thinks</think>\n" + out[first][0][0]   # the scorer takes the thinking route
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("thinks", [False, True])
def test_corpus_scores_equal_the_per_sample_definition(tmp_path, seed, dedup, thinks):
    fmt = sid.SidFormat(3, 64)
    cat, samples = corpus(seed, fmt)
    if thinks:
        samples = thinking(samples, seed)
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, cat, fmt)
    raw = json.loads(path.read_text())
    strategy = STRATEGIES[seed % len(STRATEGIES)]
    ks = (1, 3, 32)
    scorer = RecScorer(sid.SidItemMap.load(path, fmt, seed=seed), fmt, strategy, ks, dedup=dedup)
    rows = scorer.score_rows(*zip(*samples))
    for (cands, answer, ids), row in zip(samples, rows):
        assert_rows_equal(row, oracle_score(cands, answer, ids, raw, strategy, ks, dedup, fmt, seed))
        assert_rows_equal(scorer(cands, answer, ids), row)     # one sample alone: the same row


def test_without_item_map_and_with_a_custom_catalogue():
    fmt = sid.SidFormat(4, 16)                 # another shape: 4 levels
    cat, samples = corpus(7, fmt)
    allowed = set(list(cat)[:10])
    for catalogue in (None, allowed):
        rows = RecScorer(fmt=fmt, ks=(2, 8), catalogue=catalogue).score_rows(*zip(*samples))
        for (cands, answer, ids), row in zip(samples, rows):
            assert_rows_equal(row, oracle_score(cands, answer, ids, None, "random", (2, 8), False, fmt,
                                                catalogue=catalogue))


def test_an_empty_corpus_and_samples_without_candidates():
    scorer = RecScorer(ks=(1, 32))
    assert scorer.score_rows([], [], []) == []
    rows = scorer.score_rows([[], []], ["", sid.render((1, 2, 3))])
    assert all(r["n_invalid"] == 1 and r["pass@32"] == 0 and r["legal_rate"] == 0 for r in rows)


def test_single_sample_helper_matches_the_oracle():
    rng = random.Random(3)
    for _ in range(300):
        preds = [rng.randrange(6) for _ in range(rng.randrange(12))]
        truth = [rng.randrange(1, 6) for _ in range(rng.randrange(4))]
        ks = (1, 5, 10, 20)
        assert_rows_equal(ranking_metrics_of(preds, truth, ks, miss=0), oracle_ranking(preds, truth, ks, "", 0))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_array_item_map_equals_the_mapping_file(tmp_path, strategy):
    fmt = sid.SidFormat(3, 32)
    rng = random.Random(11)
    cat = random_catalogue(rng, 300, fmt)
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, cat, fmt)
    raw = json.loads(path.read_text())
    item_map = sid.SidItemMap.load(path, fmt, seed=5)
    queries = list(cat) + [tuple(rng.randrange(32) for _ in range(3)) for _ in range(100)]
    packed = np.array([sid.pack(q, fmt) for q in queries] + [-1])
    expected = [oracle_item(raw, sid.pack(q, fmt), strategy, 5, fmt) for q in queries] + [0]
    assert item_map.items_for_packed(packed, strategy).tolist() == expected
    assert [item_map.item_for(q, strategy) for q in queries] == expected[:-1]
    assert [q in item_map for q in queries] == [str(sid.pack(q, fmt)) in raw for q in queries]
    assert len(item_map) == len(raw)


def test_item_map_reads_iid_files_and_names_bad_entries(tmp_path):
    path = tmp_path / "sid2iid.json"
    path.write_text(json.dumps({"7": [{"iid": 3, "count": 2}], "9": [{"iid": 4, "count": 1, "count_after_downsample": 0}],
                                "11": []}))
    item_map = sid.SidItemMap.load(path, sid.SidFormat(3, 8))
    assert item_map.items_for_packed(np.array([7, 9, 11, 12])).tolist() == [3, 4, 0, 0]
    path.write_text(json.dumps({"7": [{"iid": 3}], "99999": [{"iid": 4}]}))
    with pytest.raises(sid.SidError, match="sid2iid.json: bad entry for key '99999'"):
        sid.SidItemMap.load(path, sid.SidFormat(3, 8))
    path.write_text(json.dumps({"7": "not a list"}))
    with pytest.raises(sid.SidError, match="bad entry for key '7'"):
        sid.SidItemMap.load(path, sid.SidFormat(3, 8))


def test_lm_eval_filter_scores_the_corpus_as_process_results_would(tmp_path):
    """The rec tasks' filter (what lm-eval and recif-eval run) equals scoring each document alone."""
    fmt = sid.SidFormat(3, 64)
    cat, samples = corpus(9, fmt, n=120)
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, cat, fmt)
    docs = [{"task": "video", "answer": answer, "answer_ids": ids or [], "mapping": str(path) if i % 3 else "", "seed": 0,
             "sid_levels": 3, "sid_codebook": 64, "sid_strategy": "most_popular_after_downsampling"}
            for i, (_, answer, ids) in enumerate(samples)]
    resps = [[cands] for cands, _, _ in samples]          # lm-eval: one response list per instance
    rows = harness.score_rec_corpus(resps, docs)
    for doc, resp, row in zip(docs, resps, rows):
        assert harness.process_rec(doc, [row]) == row
        assert_rows_equal(row, harness.process_rec(doc, resp))     # unfiltered: scored alone
        assert ("pid_pass@1" in row) == bool(doc["mapping"])


def test_the_rec_tasks_score_through_lm_eval_filters(tmp_path):
    """Every rec task YAML routes its responses through the corpus filter, and lm-eval's own filter
    machinery hands it what it expects: process_results then returns the corpus rows."""
    from lm_eval.api.instance import Instance
    from lm_eval.filters import build_filter_ensemble
    from test_task_yaml import task_config

    for name in ("recif_video", "recif_ad", "recif_product", "recif_label_cond", "recif_interactive"):
        config = task_config(name)
        assert config["filter_list"] == [{"name": "none", "filter": [
            {"function": "custom", "filter_fn": "utils.score_rec_corpus"}]}]
        assert config["process_results"] == "utils.process_rec"
    fmt = sid.SidFormat(3, 64)
    cat, samples = corpus(5, fmt, n=60)
    path = tmp_path / "sid2pid.json"
    sid.write_item_map(path, cat, fmt)
    instances = []
    for i, (cands, answer, ids) in enumerate(samples):
        doc = {"task": "video", "answer": answer, "answer_ids": ids or [], "mapping": str(path), "seed": 0,
               "sid_levels": 3, "sid_codebook": 64, "sid_strategy": "most_popular_after_downsampling"}
        instance = Instance(request_type="generate_until", doc=doc, arguments=("prompt", {}), idx=0)
        instance.resps = [cands]
        instances.append(instance)
    build_filter_ensemble("none", [["custom", {"filter_fn": harness.score_rec_corpus}]]).apply(instances)
    for instance in instances:
        row = harness.process_rec(instance.doc, [instance.filtered_resps["none"]])
        assert_rows_equal(row, harness.process_rec(instance.doc, instance.resps))


def test_lm_eval_reads_the_mapping_file_when_it_builds_the_task(mini_dir, tmp_path, monkeypatch):
    """``load_docs`` (lm-eval's task building, before any generation) reads the rec task's SID -> item
    file: a broken one stops the run there, naming the file, and scoring later finds it read."""
    import shutil

    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(mini_dir, data)
    sid._load_once.cache_clear()
    docs = harness.load_docs("video", data_dir=str(data), limit=5)["test"]
    assert sid._load_once.cache_info().currsize == 1             # read once, kept for the scorer
    assert docs[0]["mapping"] == str(data / "sid2pid.json")
    (data / "sid2pid.json").write_text('{"12": [{"pid": 1}], "oops"}')
    sid._load_once.cache_clear()
    with pytest.raises(sid.SidError, match="sid2pid.json: not valid JSON"):
        harness.load_docs("ad", data_dir=str(data), limit=5)
