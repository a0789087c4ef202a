"""Judge scoring from recorded answers: hand-computed WIP F1 and rec-reason means, answer parsing,
BERTScore on a tiny BERT with hand-set embeddings, settings and cache.  No network."""

import json

import pytest
from tiny_bert import build_tiny_bert

from recif_bench.judges import JudgeConfigError, parse_spec, config_from_env
from recif_bench.judges.bertscore import BertScorer
from recif_bench.judges.cache import JudgeCache
from recif_bench.judges.prompt import render, template
from recif_bench.judges.rec_reason import parse_score, refined_reasoning
from recif_bench.judges.runner import MalformedAnswer
from recif_bench.judges.wip import double_weighted_counts, f1, parse_matching, parse_wips

# ---- WIP F1 -------------------------------------------------------------------------------


def test_double_weighted_f1_by_hand():
    matches = [(("m1", 4.0), ("g1", 5.0), 0.8), (("m2", 2.0), ("g2", 3.0), 0.5)]
    tp, fp, fn = double_weighted_counts(matches, unmatched_model=[("m3", 1.0)], unmatched_gt=[("g3", 4.0)])
    # TP = 5·0.8 + 3·0.5; FN = 5·0.2 + 3·0.5 + 4; FP = 4·0.2 + 2·0.5 + 1
    assert (tp, fp, fn) == pytest.approx((5.5, 2.8, 6.5))
    assert f1(tp, fp, fn) == pytest.approx(11 / 20.3)
    assert f1(0, 0, 0) == 0.0
    # perfect quality and nothing unmatched is a perfect score, whatever the weights
    assert f1(*double_weighted_counts([(("a", 1.0), ("b", 5.0), 1.0)], [], [])) == 1.0


def test_wip_answers_are_cleaned_like_the_reference_and_validated():
    fenced = '```json\n{"wips": [{"info_point": "猫", "importance_score": 5}, {"info_point": "睡觉"}]}\n```'
    assert parse_wips(fenced) == [{"info_point": "猫", "importance_score": 5}, {"info_point": "睡觉"}]
    assert parse_wips('{"wips": []}') == []
    for bad in ("不是JSON", '{"points": []}', '{"wips": [{"importance_score": 3}]}',
                '{"wips": [{"info_point": "猫", "importance_score": 9}]}',
                '{"wips": [{"info_point": "猫", "importance_score": "高"}]}'):
        with pytest.raises(MalformedAnswer):
            parse_wips(bad)
    matching = {"matches": [{"model_wip": {"info_point": "a", "importance_score": 2},
                             "gt_wip": {"info_point": "b"}}],
                "unmatched_model_wips": [], "unmatched_gt_wips": [{"info_point": "c", "importance_score": 4}]}
    assert parse_matching(json.dumps(matching)) == ([(("a", 2.0), ("b", 1.0))], [], [("c", 4.0)])
    with pytest.raises(MalformedAnswer):
        parse_matching('{"matches": []}')


# ---- rec_reason ------------------------------------------------------------------------------


def test_refined_reasoning_takes_the_text_after_the_last_marker():
    assert refined_reasoning("分析……\n**精炼推理**：\n 用户喜欢猫。 ") == "用户喜欢猫。"
    assert refined_reasoning("精炼推理：旧\n精炼推理: 新") == "新"
    assert refined_reasoning("  没有标记的理由  ") == "没有标记的理由"
    assert refined_reasoning("理由在前。精炼推理：**") == "理由在前。精炼推理：**"   # empty tail: whole text


def test_score_answers_parse_like_the_reference():
    assert parse_score('```json\n{"llm_score": 4, "llm_reason": "好"}\n```') == {"score": 4.0, "reason": "好"}
    assert parse_score('评分如下 {"llm_score": 2.5} 完') == {"score": 2.5, "reason": ""}   # first flat object
    with pytest.raises(MalformedAnswer) as info:
        parse_score('{"llm_score": 7, "llm_reason": "x"}')
    assert info.value.salvage == {"score": 3.0, "reason": "x"}   # what the reference would have used
    with pytest.raises(MalformedAnswer) as info:
        parse_score('{"llm_score": "五"}')
    assert info.value.salvage["score"] == 3.0
    for bad in ("", "没有分数", '{"reason": "x"}'):
        with pytest.raises(MalformedAnswer) as info:
            parse_score(bad)
        assert info.value.salvage is None


# ---- prompts -----------------------------------------------------------------------------


def test_prompts_are_the_reference_texts_with_slots_filled_once():
    for name in ("wip_extract", "wip_match", "rec_reason"):
        assert template(name).endswith("): ")          # verbatim, including the trailing space
    text = render("wip_extract", TEXT="视频里有{GT_REASON}")
    assert "视频里有{GT_REASON}\n\n你的输出结果" in text and '{"wips": []}' in text
    with pytest.raises(KeyError):
        render("rec_reason", GT_REASON="x")


# ---- BERTScore -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_bertscore_f1_by_hand(tiny_bert):
    scorer = BertScorer(str(tiny_bert), layer=0)
    got = scorer.f1(["a b", "a", "a b", "", "b a"], ["c", "a b", "a b", "a", "a b"])
    # P = R = 1/√2; P = 1, R = (1 + 0)/2 -> F = 2/3; identical -> 1; empty -> 0; order-free -> 1
    assert got == pytest.approx([2 ** -0.5, 2 / 3, 1.0, 0.0, 1.0], abs=1e-5)
    assert scorer.f1([], []) == []
    with pytest.raises(ValueError):
        BertScorer(str(tiny_bert), layer=9).f1(["a"], ["a"])


# ---- settings and cache ---------------------------------------------------------------------


def test_judge_specs_and_settings(tmp_path):
    assert parse_spec("gemini") == ("gemini", "gemini-2.5-flash-lite", None)
    assert parse_spec("openai:qwen@http://h:8000/v1") == ("openai", "qwen", "http://h:8000/v1")
    assert parse_spec("local:/models/j") == ("local", "/models/j", None)
    for bad in ("claude:x", "openai:", "local:"):
        with pytest.raises(JudgeConfigError, match="judge"):
            parse_spec(bad)
    assert config_from_env({}) is None and config_from_env({"RECIF_JUDGE": "none"}) is None

    config = tmp_path / "judge.json"
    config.write_text(json.dumps({"judge": "openai:qwen@http://user:pw@h:8000/v1?key=1", "api_key": "sk-secret",
                                  "workers": 2, "timeout": 30}))
    settings = config_from_env({"RECIF_JUDGE_CONFIG": str(config), "RECIF_JUDGE_WORKERS": "16"})
    assert (settings.kind, settings.model, settings.workers, settings.timeout) == ("openai", "qwen", 16, 30)
    public = json.dumps(settings.public())
    assert "sk-secret" not in public and "pw" not in public and "key=1" not in public and "h:8000/v1" in public
    assert "sk-secret" not in repr(settings)
    assert settings.public()["comparable_with_paper"] is False
    assert config_from_env({"RECIF_JUDGE": "gemini"}).comparable_with_paper

    config.write_text(json.dumps({"wrokers": 2}))
    with pytest.raises(JudgeConfigError, match="wrokers"):
        config_from_env({"RECIF_JUDGE": "gemini", "RECIF_JUDGE_CONFIG": str(config)})
    with pytest.raises(JudgeConfigError, match="RECIF_JUDGE_RPM"):
        config_from_env({"RECIF_JUDGE": "gemini", "RECIF_JUDGE_RPM": "fast"})


def test_cache_is_keyed_by_judge_and_full_prompt(tmp_path):
    cache = JudgeCache(tmp_path)
    key = cache.key("gemini:m@T=0.01", "prompt")
    assert cache.get(key) is None
    cache.put(key, "gemini:m@T=0.01", '{"llm_score": 4}')
    assert JudgeCache(tmp_path).get(key) == '{"llm_score": 4}'
    assert len({key, cache.key("gemini:other@T=0.01", "prompt"), cache.key("gemini:m@T=0.01", "prompt ")}) == 3
    cache._path(key).write_text("{torn")   # a writer killed mid-way: treated as absent
    assert cache.get(key) is None
