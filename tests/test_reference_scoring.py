"""A crafted official-layout file scored by ``recif-eval`` equals the reference's definitions.

The reference evaluator's rules (spec §3.1, re-expressed below from the definitions, not imported
from our code) are applied to the same candidates: rows whose answer holds no SID or a malformed
SID stay in the denominator, SID-mode candidates are read with the reference's split rules, and
item-level (pid_) candidates take the first ``<s_a_N><s_b_N><s_c_N>`` anywhere after ``</think>``.
"""

import json
import re

import pandas as pd
import pytest
from lm_eval.api.model import LM

from recif_bench import sid
from recif_bench.evaluate import evaluate
from recif_bench.settings import EvalSettings, Model

B, E = "<|sid_begin|>", "<|sid_end|>"
KS = (1, 2, 32)

# SID -> [(item, count, count_after_downsample)]; no ties, so the reference's unseeded choice is moot
MAPPING = {(1, 2, 3): [(11, 50, 5)], (4, 5, 6): [(99, 90, 1), (12, 10, 7)], (7, 7, 7): [(13, 3, 3)],
           (1, 0, 0): [(14, 1, 1)], (9, 9, 9): [(15, 1, 1)]}

# marker in the prompt -> (answer, answer_pid or None, generated candidates)
ROWS = {
    "row-text-after-sid": (sid.render_many([(1, 2, 3), (4, 5, 6)]), [11, 12],
                           ["<s_a_9><s_b_9><s_c_9>", "<s_a_4><s_b_5><s_c_6>xyz", "<s_a_1><s_b_2><s_c_3>"]),
    "row-no-sid": ("没有推荐", [13, 14], ["<s_a_7><s_b_7><s_c_7>", "<s_a_0><s_b_8192><s_c_0>"]),
    "row-malformed": (B + "<s_a_1><s_b_2>" + E, [11], ["<s_a_1><s_b_2>", "<s_a_1><s_b_2><s_c_3>"]),
    "row-text-around": ("推荐" + sid.render((4, 5, 6)) + "。", "[12, 0]",
                        ["想一想</think>\n" + B + "<s_a_4><s_b_5><s_c_6>", "abc" + B + "<s_a_4><s_b_5><s_c_6>"]),
    "row-junk-first": ("x" + E + sid.render((1, 2, 3)), None, ["x", "<s_a_0><s_b_8192><s_c_0>", ""]),
    "row-empty-answer": ("", [11], ["<s_a_1><s_b_2><s_c_3>"]),
    "row-no-generation": (sid.render((9, 9, 9)), [15], []),
    "row-think-pid": (sid.render((9, 9, 9)), [15],
                      ["a</think>b</think> 先说<s_a_9><s_b_9><s_c_9>后说", B + E + B + "<s_a_9><s_b_9><s_c_9>" + E]),
}


# ---- the reference's definitions ------------------------------------------------------------

def ref_truth_sids(answer):
    out = []
    for part in answer.split(B):
        if E in part:
            body = part.split(E)[0].strip()
            if body and body not in out:
                out.append(body)
    return out


def ref_after_think(generation):
    text = generation.strip()
    return text.split("</think>")[-1].strip() if "</think>" in text else text


def ref_candidate_sid(generation):
    text = ref_after_think(generation)
    if B in text:
        for part in text.split(B):
            if E in part:
                if part.split(E)[0].strip():
                    return part.split(E)[0].strip()
            elif part.strip():
                return part.strip()
    return text


def ref_candidate_item(generation, mapping):
    found = re.findall(r"<s_a_(\d+)><s_b_(\d+)><s_c_(\d+)>", ref_after_think(generation))
    if not found:
        return 0
    a, b, c = map(int, found[0])
    entries = mapping.get(a * 8192 * 8192 + b * 8192 + c, [])
    if not entries:
        return 0
    best = max(e["count_after_downsample"] for e in entries)
    return [e["pid"] for e in entries if e["count_after_downsample"] == best][0]


def ref_metrics(predictions, truth, first, miss):
    out = {}
    for k in KS:
        top = predictions[:k]
        ok = bool(predictions) and bool(truth)
        out[f"pass@{k}"] = float(ok and any(p != miss and p in truth for p in top))
        out[f"position1_pass@{k}"] = float(ok and first != miss and any(p != miss and p == first for p in top))
        out[f"recall@{k}"] = len({p for p in top if p != miss} & set(truth)) / len(set(truth)) if ok else 0.0
    return out


def ref_sample(answer, answer_pid, generations, mapping):
    truth = ref_truth_sids(answer)
    metrics = ref_metrics([ref_candidate_sid(g) for g in generations], truth, truth[0] if truth else "", "")
    pids = json.loads(answer_pid) if isinstance(answer_pid, str) else (answer_pid or [])
    items = [p for p in pids if p != 0]
    item_metrics = ref_metrics([ref_candidate_item(g, mapping) for g in generations], items,
                               items[0] if items else 0, 0)
    return {**metrics, **{f"pid_{k}": v for k, v in item_metrics.items()}}


# ---- the run --------------------------------------------------------------------------------

class ScriptedLM(LM):
    """Answers each prompt with the candidates of the row whose marker it contains."""

    def generate_until(self, requests, disable_tqdm=False):
        return [next(list(gens) for marker, (_, _, gens) in ROWS.items() if marker in r.args[0]) for r in requests]

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


@pytest.fixture
def official_dir(tmp_path):
    root = tmp_path / "data"
    (root / "video").mkdir(parents=True)
    rows = []
    for marker, (answer, answer_pid, _) in ROWS.items():
        metadata = {"answer": answer, "uid": marker}
        if answer_pid is not None:
            metadata["answer_pid"] = answer_pid
        rows.append({"messages": json.dumps([{"role": "user", "content": f"推荐下一个视频 {marker}"}],
                                            ensure_ascii=False),
                     "metadata": json.dumps(metadata, ensure_ascii=False)})
    pd.DataFrame(rows).to_parquet(root / "video" / "video_test.parquet")
    sid.write_item_map(root / "sid2pid.json", MAPPING)
    return root


def test_crafted_official_file_scores_as_the_reference(official_dir, tmp_path):
    """Through ``evaluate()``, the function ``recif-eval`` is a command line over, with a scripted model."""
    out = tmp_path / "run"
    evaluate(Model("scripted", backend="hf", lm=ScriptedLM()), "video",
             EvalSettings(data_dir=official_dir, output=out))
    mapping = {int(k): v for k, v in json.loads((official_dir / "sid2pid.json").read_text()).items()}
    kept = {m: row for m, row in ROWS.items() if row[0].strip()}   # the reference skips only empty answers
    expected = {m: ref_sample(*row, mapping) for m, row in kept.items()}

    records = [json.loads(line) for line in (out / "samples_recif_video.jsonl").read_text().splitlines()]
    assert len(records) == len(kept)
    for record in records:
        marker = record["doc"]["uid"]
        for metric, value in expected[marker].items():
            if metric.endswith(("@1", "@32")):
                assert record[metric] == pytest.approx(value), (marker, metric)

    entry = json.loads((out / "summary.json").read_text())["tasks"]["video"]
    assert entry["n"] == len(kept) and entry["n_skipped"] == {"empty_answer": 1}
    assert entry["n_flagged"] == {"answer_without_sid": 1, "malformed_answer_sid": 2}
    for metric in ("pass@1", "pass@32", "position1_pass@32", "recall@1", "recall@32",
                   "pid_pass@1", "pid_pass@32", "pid_position1_pass@1", "pid_recall@32"):
        reference = sum(e[metric] for e in expected.values()) / len(kept)
        assert entry["metrics"][metric] == pytest.approx(reference), metric
    # the cases the issue names, scored as the reference scores them
    assert expected["row-text-after-sid"]["pid_pass@2"] == 1.0 and expected["row-text-after-sid"]["pass@2"] == 0.0
    assert expected["row-no-sid"]["pid_pass@1"] == 1.0 and expected["row-no-sid"]["pass@32"] == 0.0
    assert expected["row-malformed"]["pass@1"] == 1.0 and expected["row-malformed"]["pid_pass@1"] == 0.0


@pytest.mark.parametrize("generation", [g for _, _, gens in ROWS.values() for g in gens] + [
    "", "<s_a_1>", "<s_a_1><s_b_2><s_c_3><s_a_4><s_b_5><s_c_6>", "<|sid_end|>x", "</think>",
    "<s_a_01><s_b_2><s_c_3>", " <s_a_1><s_b_2><s_c_3> ", B + "  " + E + "y", "q" + E + B + "<s_a_1>"])
def test_candidate_readers_equal_the_reference(generation):
    mapping = {sid.pack(codes): [{"pid": i, "count": c, "count_after_downsample": d} for i, c, d in items]
               for codes, items in MAPPING.items()}
    item_map = sid.SidItemMap({k: [sid.ItemEntry(e["pid"], e["count"], e["count_after_downsample"]) for e in v]
                               for k, v in mapping.items()})
    assert sid.prediction_body(generation) == ref_candidate_sid(generation)
    assert item_map.item_for(sid.item_codes(generation)) == ref_candidate_item(generation, mapping)


@pytest.mark.parametrize("answer", [a for a, _, _ in ROWS.values()] + [
    "x" + E, B + B + "<s_a_1>" + E + E, sid.render((1, 2, 3)) * 2, B + " " + E])
def test_answer_reader_equals_the_reference(answer):
    assert sid.extract_bodies(answer) == ref_truth_sids(answer)
