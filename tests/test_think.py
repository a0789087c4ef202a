"""OneRec-Think: pruned-context rationale rows (trainers/think_data.py) and think-ahead inference
(recif_bench/models/think_ahead.py, ``recif-eval --think-ahead``)."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from lm_eval.api.instance import Instance

from recif_bench import chat, sid
from recif_bench.data import builders, mini
from recif_bench.models.genspec import GenSpec
from recif_bench.models.think_ahead import ThinkAhead
from recif_bench.models.trie import SidTrie
from trainers import think_data
from trainers.common.samples import IGNORE, tokenize_chat

FMT = sid.SidFormat(3, 256)


# ---- pruned context ---------------------------------------------------------------------------
def test_pruned_context_keeps_the_most_similar_history_items_in_history_order():
    angle = {10: 80, 11: 10, 12: 60, 13: 30, 14: 5, 15: 30}   # degrees from the target's vector
    vectors = {p: np.array([np.cos(np.radians(a)), np.sin(np.radians(a))]) for p, a in angle.items()}
    vectors[99] = np.array([1.0, 0.0])
    history = [10, 11, 12, 13, 14, 15, 11]   # 11 viewed twice; 13 and 15 tie
    codes = {p: (1, 1, p) for p in [*history, 99]}
    scores = think_data.relevance(99, history, codes, vectors)
    assert scores[1] == pytest.approx(np.cos(np.radians(10)))
    assert think_data.pruned_context(history, scores, 2) == [14, 11]        # 5° and 10°, 11 at its last view
    assert think_data.pruned_context(history, scores, 3) == [14, 15, 11]    # the tie goes to the later view


def test_relevance_falls_back_to_sid_overlap_without_a_vector():
    codes = {1: (4, 2, 3), 2: (4, 2, 9), 3: (4, 5, 3), 4: (7, 2, 3), 5: (4, 2, 3)}
    vectors = {1: np.array([1.0, 0.0]), 5: np.array([0.0, 1.0])}   # 2, 3, 4 have no caption
    assert think_data.relevance(1, [2, 3, 4, 5], codes, vectors) == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert think_data.relevance(1, [2, 3, 4, 5], codes, {}) == pytest.approx([2 / 3, 1 / 3, 0.0, 1.0])


# ---- rows -------------------------------------------------------------------------------------
def _settings(tmp_path, mini_dir, **kw):
    kw = {"model": "unused", "similarity": "sid", **kw}
    return think_data.Settings(output_dir=tmp_path / "think", raw=str(mini_dir / "raw"), top_k=3, batch_size=2,
                               fmt=mini.FORMAT, **kw)


def _train_users(mini_dir):
    users = pd.read_parquet(mini_dir / "raw" / "onerec_bench_release.parquet")
    return users[users["split"] == 0].to_dict("records")


def test_rows_hold_the_full_history_and_learn_rationale_and_sid(tmp_path, mini_dir, tiny_model_dir):
    from transformers import AutoTokenizer

    settings = _settings(tmp_path, mini_dir, users=2, model=str(tiny_model_dir), generation={"max_new_tokens": 6})
    counts = think_data.build(settings)   # the real writer: the tiny model through recif-hf
    assert counts["pairs"] == 2 and counts["written"] + counts["empty"] == 2
    rows = pd.read_parquet(tmp_path / "think" / "sft_think.parquet").to_dict("records")
    assert len(rows) == counts["written"] and rows
    video = pd.read_parquet(mini_dir / "raw" / "video_ad_pid2sid.parquet")
    maps = builders.ItemMaps.from_tables(video, video.iloc[:0], mini.FORMAT)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    users = {u["uid"]: u for u in _train_users(mini_dir)[:2]}
    for row in rows:
        meta = json.loads(row["metadata"])
        user = users[meta["uid"]]
        messages = chat.normalise_messages(json.loads(row["messages"]))
        history = [maps.video[int(p)] for p in user["hist_video_pid"] if int(p) in maps.video][-512:]
        assert meta["target_pid"] == int(user["target_video_pid"][0])
        assert sid.extract_codes(messages[-2]["content"], mini.FORMAT) == history   # the full history
        assert set(meta["pruned_context"]) <= set(int(p) for p in user["hist_video_pid"])
        answer = messages[-1]["content"]
        rationale = answer.split("</think>")[0].removeprefix("<think>\n").strip()
        target = sid.render(maps.video[meta["target_pid"]], mini.FORMAT)
        assert rationale and answer == f"<think>\n{rationale}\n</think>\n\n{target}"
        assert chat.render_conversation(messages).count("/think<|im_end|>") == 1
        sample = tokenize_chat(tokenizer, messages)
        supervised = tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels) if label != IGNORE])
        assert supervised == f"<think>\n{rationale}\n</think>\n\n{target}<|im_end|>"


def test_rerun_skips_finished_rows_and_repairs_a_torn_line(tmp_path, mini_dir):
    asked = []

    def writer(prompts):
        asked.extend(prompts)
        return [f"理由{len(asked) - len(prompts) + i}" for i in range(len(prompts))]

    first = think_data.build(_settings(tmp_path, mini_dir, users=3), writer)
    assert first == {"pairs": 3, "reused": 0, "written": 3, "empty": 0, "rows": 3}
    log = tmp_path / "think" / "sft_think.jsonl"
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"uuid": "torn')   # a kill in the middle of a row
    asked.clear()
    second = think_data.build(_settings(tmp_path, mini_dir, users=5), writer)
    assert second == {"pairs": 5, "reused": 3, "written": 2, "empty": 0, "rows": 5}
    assert len(asked) == 2
    uids = [u["uid"] for u in _train_users(mini_dir)[:5]]
    rows = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
    assert [json.loads(r["metadata"])["uid"] for r in rows] == uids
    assert len({r["uuid"] for r in rows}) == 5
    assert len(pd.read_parquet(tmp_path / "think" / "sft_think.parquet")) == 5


def test_empty_rationales_give_no_row(tmp_path, mini_dir):
    counts = think_data.build(_settings(tmp_path, mini_dir, users=2), lambda prompts: ["</think>  "] * len(prompts))
    assert counts["empty"] == 2 and counts["rows"] == 0


# ---- think-ahead ------------------------------------------------------------------------------
CATALOGUE = {(a, b, c): [(100 * a + 10 * b + c, 1, 1)] for a in (1, 2, 3) for b in (4, 5) for c in (6, 7)}
PROMPT = [{"role": "user", "content": "用户浏览了以下内容：\n" + sid.render((1, 4, 6)) + "\n请预测用户的下一个观看意向。"}]
KWARGS = {"until": [], "do_sample": False, "num_beams": 4, "num_return_sequences": 4, "max_gen_toks": 3,
          "answer_prefix": "<|sid_begin|>", "thinking": {"temperature": 1.0, "max_gen_toks": 4}}


def _beam(lm, prompt, trie, width, steps):
    """Beam search of ``steps`` trie tokens by hand: every expansion scored with a full forward."""
    context = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    beams = [((), 0.0)]
    for _ in range(steps):
        grown = []
        for ids, score in beams:
            logprobs = lm._logprobs([context + list(ids)])[0, -1]
            grown += [(ids + (t,), score + float(logprobs[t])) for t in trie.children.get(ids, ())]
        beams = sorted(grown, key=lambda b: -b[1])[:width]
    return [ids for ids, _ in beams]


def test_think_ahead_answers_only_under_the_prefixes_of_its_paths(tiny_model_dir, tmp_path):
    from recif_bench.models.hf import HFRecLM

    sid.write_item_map(tmp_path / "sid2pid.json", CATALOGUE, FMT)
    lm = HFRecLM(pretrained=str(tiny_model_dir), sid_codebook=256, data_dir=str(tmp_path), think_ahead="2,2")
    assert lm.thinking and lm.fast_model is lm.model
    prompt = chat.render(PROMPT, thinking=True)
    request = Instance("generate_until", doc={}, arguments=(prompt, dict(KWARGS)), idx=0)
    request.task_name = "recif_video"
    (candidates,) = lm.generate_until([request])

    spec = GenSpec.for_request(request)
    trie = lm.trie("sid2pid.json")
    (thoughts,) = lm._thoughts([prompt], replace(spec.thinking, n=2))   # the same seeded samples
    prefixes = list(dict.fromkeys(p for t in thoughts
                                  for p in _beam(lm, prompt + t + "</think>\n<|sid_begin|>", trie, 2, 2)))
    expected = _beam(lm, chat.without_thinking(prompt) + "<|sid_begin|>", trie.under(prefixes), 4, 3)
    assert 1 <= len(prefixes) <= 4 and len(candidates) == len(expected)
    got = [sid.parse_body(sid.prediction_body(c), FMT) for c in candidates]
    vocab = lm.tokenizer.get_vocab()
    assert [tuple(vocab[f"<s_{x}_{c}>"] for x, c in zip("abc", codes)) for codes in got] == expected
    assert {tuple(vocab[f"<s_{x}_{c}>"] for x, c in zip("ab", codes)) for codes in got} <= set(prefixes)
    assert candidates[0].startswith("".join(t + "</think>\n" for t in thoughts))   # the reasoning is recorded


def test_trie_under_keeps_only_sids_below_the_prefixes():
    vocab = {f"<s_{x}_{c}>": 10 * "abc".index(x) + c for x in "abc" for c in range(10)}
    trie = SidTrie([(1, 2, 3), (1, 2, 4), (1, 5, 3), (2, 2, 3)], vocab, sid.SidFormat(3, 10), [99])
    sub = trie.under([(1, 12)])
    assert sub.allowed(()) == [1] and sub.allowed((1,)) == [12] and sub.allowed((1, 12)) == [23, 24]
    assert sub.contains((1, 12, 24)) and not sub.contains((1, 15, 23)) and not sub.contains((2, 12, 23))
    assert trie.allowed((1,)) == [12, 15]   # the original is untouched
    assert trie.under([]).allowed(()) == [99]


def test_without_thinking_gives_the_non_thinking_prompt():
    assert chat.without_thinking(chat.render(PROMPT, thinking=True)) == chat.render(PROMPT, thinking=False)


@pytest.mark.parametrize("value", ["2", "a,b", "0,3", "2,4,1", ""])
def test_think_ahead_setting_refuses_bad_values(value):
    with pytest.raises(ValueError, match="expected T,m"):
        ThinkAhead.parse(value)


def test_think_ahead_flag_parses_and_errors_clearly(capsys):
    from recif_bench.cli.eval import main

    assert ThinkAhead.parse(" 2, 4") == ThinkAhead(2, 4) and str(ThinkAhead(2, 4)) == "2,4"
    assert main(["--model", "no/such/model", "--think-ahead", "2x4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["recif-eval: error: --think-ahead: expected T,m (two positive integers: reasoning paths, "
                   "beams per path), got '2x4'"]
    assert main(["--model", "popularity", "--think-ahead", "2,4"]) == 2
    assert "--think-ahead is supported by the hf backend, not rec" in capsys.readouterr().err


def test_think_ahead_runs_are_labelled_on_the_leaderboard(tmp_path):
    from leaderboard.collect import collect, group_by_data
    from leaderboard.tables import build_tables
    from leaderboard_fixtures import task_entry, write_run

    settings = {"thinking": True, "think_ahead": {"paths": 2, "beams": 4, "fast_model": "m"}}
    write_run(tmp_path, "plain", {"video": task_entry("video", 0.1)}, model="m", settings={"thinking": True})
    write_run(tmp_path, "ahead", {"video": task_entry("video", 0.2)}, model="m", settings=settings)
    (table,) = build_tables(group_by_data(collect([tmp_path]).runs), [])
    assert sorted(c.label for c in table.columns) == ["m (thinking)", "m (thinking, think-ahead 2,4)"]
