"""The full judge path against a local fake server speaking OpenAI chat and Gemini generateContent:
faults (timeouts, 429, 500s, malformed JSON, out-of-range scores), hand-computed scores, the
content-addressed cache, and recif-eval's --judge / --rejudge end to end."""

import json
import os

import pytest
from fake_judge import FakeJudge, between, oracle
from tiny_bert import build_tiny_bert

from recif_bench.cli.eval import main as recif_eval
from recif_bench.judges import JudgeConfig, TextSample, build_runner, judge_task


@pytest.fixture
def judge():
    with FakeJudge() as server:
        yield server


def settings_for(server, kind, tmp_path, **overrides):
    url = server.url + "/v1" if kind == "openai" else server.url
    values = {"base_url": url, "api_key": "sk-test-secret", "cache_dir": str(tmp_path / "cache"),
              "retry_delay": 0.01, "timeout": 5.0, "workers": 4, **overrides}
    return JudgeConfig(kind, f"{kind}-judge", **values)


def run(task, samples, settings, bertscorer=None):
    return judge_task(task, samples, settings, runner=build_runner(settings, progress=False), bertscorer=bertscorer)


class GivenQualities:
    """BERTScore F1 given as a table (model point, GT point) -> quality."""

    def __init__(self, table):
        self.table, self.asked = table, []

    def f1(self, candidates, references):
        self.asked.extend(zip(candidates, references))
        return [self.table[pair] for pair in zip(candidates, references)]

    def describe(self):
        return {"model": "given"}


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_faults_end_with_the_right_retries_counts_and_no_lost_sample(judge, kind, tmp_path):
    def behaviour(prompt, n):
        model = between(prompt, "**[模型生成]**\n", "\n\n### 输出格式")
        ok = (200, oracle(prompt), 0.0)
        return {"S429": (429, "", 0.0) if n == 1 else ok,
                "S500": (500, "", 0.0),
                "SLOW": (200, oracle(prompt), 2.0) if n == 1 else ok,
                "BADJSON": (200, "抱歉，我无法评分 {", 0.0) if n == 1 else ok,
                "RANGE": (200, '{"llm_score": 9, "llm_reason": "太好了"}', 0.0)}.get(model, ok)

    judge.behaviour = behaviour
    names = ["OK", "S429", "S500", "SLOW", "BADJSON", "RANGE"]
    samples = [TextSample(str(i), name, "OK") for i, name in enumerate(names)]
    result = run("rec_reason", samples, settings_for(judge, kind, tmp_path, timeout=0.5))

    status = {r["sample_id"]: r["status"] for r in result.samples}
    assert len(result.samples) == len(samples)
    assert status == {"0": "scored", "1": "scored", "2": "judge_failed", "3": "scored", "4": "scored",
                      "5": "out_of_range"}
    calls = {name: judge.seen[p] for name in names for p in judge.seen if f"**[模型生成]**\n{name}\n" in p}
    assert calls == {"OK": 1, "S429": 2, "S500": 3, "SLOW": 2, "BADJSON": 2, "RANGE": 3}
    stats = result.stats
    assert (stats["calls"], stats["retries"], stats["reasks"], stats["failed_calls"]) == (13, 4, 3, 2)
    assert stats["failed"] == 2 and result.metrics["n_judge_failed"] == 2
    assert "500" in next(r["error"] for r in result.samples if r["sample_id"] == "2")
    # oracle: 5 for "OK" (equals the reference), 2 otherwise; out of range reads 3 in the paper score
    assert result.metrics["llm_score"] == pytest.approx((5 + 2 + 2 + 2 + 3) / 5)
    assert result.metrics["llm_score_strict"] == pytest.approx((5 + 2 + 0 + 2 + 2 + 0) / 6)
    assert {protocol for protocol, _ in judge.prompts} == {kind}


def test_item_understand_by_hand_through_the_server(judge, tmp_path):
    points = {
        "refA": [("g1", 5), ("g2", 3), ("g3", 4)], "predA": [("m1", 4), ("m2", 2), ("m3", 1)],
        "refB": [("gb", 2)], "predB": [("mb", 3)], "refC": [("gc", 5)], "predD": [("md", 1)],
    }
    pairs = {"g1": [("m1", "g1"), ("m2", "g2")], "gb": [("mb", "gb")]}
    weight = {p: s for plist in points.values() for p, s in plist}

    def wip(point):
        return {"info_point": point, "importance_score": weight[point]}

    def behaviour(prompt, n):
        if "信息抽取专家" in prompt:
            text = between(prompt, "描述性文字:\n", "\n\n你的输出结果")
            if text == "refD":
                return 500, "", 0.0
            return 200, json.dumps({"wips": [wip(p) for p, _ in points[text]]}), 0.0
        gt = json.loads(between(prompt, "(GT列表)]\n\n", "\n\n[Model"))
        model = json.loads(between(prompt, "(模型列表)]\n\n", "\n\n你的匹配结果"))
        matched = pairs[gt[0]["info_point"]]
        used = {p for pair in matched for p in pair}
        return 200, "```json\n" + json.dumps({
            "matches": [{"model_wip": wip(m), "gt_wip": wip(g)} for m, g in matched],
            "unmatched_model_wips": [w for w in model if w["info_point"] not in used],
            "unmatched_gt_wips": [w for w in gt if w["info_point"] not in used]}) + "\n```", 0.0

    judge.behaviour = behaviour
    samples = [TextSample("A", "<think>想一想</think>predA", "refA"), TextSample("B", "predB", "refB"),
               TextSample("C", "<think>只想不答</think>", "refC"), TextSample("D", "predD", "refD")]
    qualities = GivenQualities({("m1", "g1"): 0.8, ("m2", "g2"): 0.5, ("mb", "gb"): 1.0})
    result = run("item_understand", samples, settings_for(judge, "openai", tmp_path), qualities)

    f1_a = 11 / 20.3          # TP 5.5, FP 2.8, FN 6.5 (see test_judges)
    assert [r["status"] for r in result.samples] == ["scored", "scored", "empty_prediction", "judge_failed"]
    assert result.metrics["macro_wip_double_weighted_f1"] == pytest.approx((f1_a + 1.0) / 2)
    assert result.metrics["micro_wip_double_weighted_f1"] == pytest.approx(15 / (15 + 2.8 + 6.5))
    assert result.metrics["macro_wip_double_weighted_f1_strict"] == pytest.approx((f1_a + 1.0) / 4)
    assert result.metrics["n_judge_failed"] == 1 and result.metrics["wip_num_samples"] == 2
    assert sorted(qualities.asked) == sorted(qualities.table)
    # 6 extractions + refD three times + 2 matchings; the empty answer is never sent
    assert result.stats["calls"] == 11 and result.stats["retries"] == 2
    assert not any("只想不答" in p for _, p in judge.prompts)


def test_same_run_twice_costs_nothing_and_one_changed_generation_costs_its_calls(judge, tmp_path):
    settings = settings_for(judge, "gemini", tmp_path)
    captions = ["一只猫，在睡觉。", "小狗，在草地上跑。", "做饭，煎蛋卷。"]
    samples = [TextSample(str(i), c.replace("。", "，很可爱。"), c) for i, c in enumerate(captions)]
    quality = GivenQualities({(p, p): 1.0 for c in captions for p in c.strip("。").split("，")})

    first = run("item_understand", samples, settings, quality)
    reasons = [TextSample(str(i), f"理由{i}", "理由0") for i in range(3)]
    first_reason = run("rec_reason", reasons, settings)
    assert first.stats["calls"] == 6 + 3 and first_reason.stats["calls"] == 3

    again, again_reason = run("item_understand", samples, settings, quality), run("rec_reason", reasons, settings)
    assert again.stats["calls"] == 0 and again_reason.stats["calls"] == 0
    assert again.stats["cached"] == 9 and again.metrics == first.metrics
    assert again_reason.metrics == first_reason.metrics == {**first_reason.metrics, "llm_score": (5 + 2 + 2) / 3}

    samples[1] = TextSample("1", "小狗，在睡觉。", captions[1])
    reasons[2] = TextSample("2", "理由2改", "理由0")
    before = judge.calls
    changed = run("item_understand", samples, settings, quality)
    assert changed.stats["calls"] == 2 and changed.stats["cached"] == 7   # its answer's points + its matching
    assert run("rec_reason", reasons, settings).stats["calls"] == 1
    assert judge.calls - before == 3


def test_concurrent_workers_ask_duplicates_once_and_respect_the_rate_limit(judge, tmp_path):
    import time

    judge.behaviour = lambda prompt, n: (200, oracle(prompt), 0.2)
    samples = [TextSample(str(i), f"答{i % 10}", "参考") for i in range(30)]   # 10 distinct prompts
    settings = settings_for(judge, "openai", tmp_path, workers=10)
    runner = build_runner(settings, progress=False)
    start = time.perf_counter()
    result = judge_task("rec_reason", samples, settings, runner=runner)
    assert result.stats["calls"] == 10 and time.perf_counter() - start < 1.5   # sequential: >= 2 s
    settings = settings_for(judge, "openai", tmp_path, workers=3, rpm=600)    # call starts at 0, 0.1, 0.2 s
    runner = build_runner(settings, progress=False)
    start = time.perf_counter()
    judge_task("rec_reason", [TextSample(str(i), f"新{i}", "参考") for i in range(3)], settings, runner=runner)
    assert time.perf_counter() - start >= 0.38


def test_local_transformers_judge_counts_garbage_as_failures(tiny_model_dir, tmp_path):
    settings = JudgeConfig("local", str(tiny_model_dir), max_tokens=4, max_reasks=1, cache_dir=str(tmp_path))
    result = run("rec_reason", [TextSample("0", "模型理由", "参考理由")], settings)
    assert result.samples[0]["status"] == "judge_failed" and result.metrics["llm_score"] is None
    assert result.metrics["llm_score_strict"] == 0.0
    assert (result.stats["calls"], result.stats["reasks"]) == (2, 1)
    assert result.stats["comparable_with_paper"] is False


def test_recif_eval_judges_caches_and_rejudges(judge, mini_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    monkeypatch.setenv("RECIF_BERTSCORE_MODEL", str(build_tiny_bert(tmp_path / "bert")))
    monkeypatch.setenv("RECIF_BERTSCORE_LAYER", "0")
    out = tmp_path / "run"
    base = ["--backend", "openai", "--model", "served", "--model-args", f"base_url={judge.url}/v1",
            "--data-dir", str(mini_dir), "--tasks", "item_understand,rec_reason", "--limit", "3",
            "--output", str(out)]
    assert recif_eval(base) == 0
    assert "(judge not configured)" in capsys.readouterr().out
    unjudged = json.loads((out / "summary.json").read_text())
    assert unjudged["tasks"]["rec_reason"]["headline"]["value"] is None and judge.calls == 0

    args = base + ["--judge", f"openai:judge@{judge.url}/v1", "--judge-workers", "2"]
    environ_before = dict(os.environ)
    assert recif_eval(args) == 0
    assert dict(os.environ) == environ_before          # the judge settings do not outlive the run
    summary = json.loads((out / "summary.json").read_text())
    for task, metric in (("item_understand", "macro_wip_double_weighted_f1"), ("rec_reason", "llm_score")):
        entry = summary["tasks"][task]
        assert entry["headline"]["value"] == entry["metrics"][metric] is not None
        assert entry["judge"]["calls"] > 0 and entry["judge"]["failed"] == 0 == entry["metrics"]["n_judge_failed"]
        assert len((out / f"judge_{task}.jsonl").read_text().splitlines()) == 3
    assert summary["tasks"]["rec_reason"]["metrics"]["llm_score"] == 2.0   # the fake model never gives the reason
    assert summary["tasks"]["rec_reason"]["headline"]["stderr"] == 0.0     # every judged sample scored 2
    assert summary["tasks"]["item_understand"]["headline"]["stderr"] is not None
    assert summary["settings"]["judge"]["model"] == "judge" and summary["settings"]["judge"]["workers"] == 2
    assert "not comparable with the paper" in capsys.readouterr().out
    calls = judge.calls

    assert recif_eval(args) == 0                                            # same run again: all from the cache
    again = json.loads((out / "summary.json").read_text())
    assert judge.calls == calls and again["tasks"]["rec_reason"]["judge"]["calls"] == 0
    assert again["tasks"]["rec_reason"]["metrics"] == summary["tasks"]["rec_reason"]["metrics"]

    # rejudge the recorded generations with a Gemini judge: no model request, same oracle scores
    judge.completion = "模型不应再被调用"
    monkeypatch.setenv("GEMINI_API_KEY", "gk-never-written")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", judge.url)
    assert recif_eval(["--rejudge", str(out), "--judge", "gemini:gemini-judge"]) == 0
    rejudged = json.loads((out / "summary.json").read_text())
    assert rejudged["settings"]["judge"]["kind"] == "gemini" and "rejudged" in rejudged["run"]
    assert rejudged["tasks"]["rec_reason"]["metrics"]["llm_score"] == 2.0
    assert rejudged["tasks"]["rec_reason"]["headline"]["stderr"] == 0.0
    assert {p for p, _ in judge.prompts[calls:]} == {"gemini"}
    lm = json.loads((out / "lm_eval_results.json").read_text())["results"]["recif_rec_reason"]
    assert lm["llm_score,none"] == 2.0
    text = (out / "summary.json").read_text() + (out / "lm_eval_results.json").read_text()
    assert "sk-never-written" not in text and "gk-never-written" not in text


def test_bad_judge_settings_end_with_one_line(tmp_path, monkeypatch, capsys):
    from recif_bench.results import SCHEMA

    assert recif_eval(["--judge", "claude:opus", "--tasks", "rec_reason", "--output", str(tmp_path / "a")]) == 2
    assert "kind must be one of" in capsys.readouterr().err
    monkeypatch.setenv("GEMINI_API_KEY", "x")
    assert recif_eval(["--rejudge", str(tmp_path / "missing"), "--judge", "gemini"]) == 2
    err = capsys.readouterr().err   # a folder that is not a run is named first, before any judge check
    assert "summary.json does not exist" in err and len(err.strip().splitlines()) == 1
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"schema": SCHEMA, "run": {}, "settings": {}, "tasks": {}}))
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(var, raising=False)
    assert recif_eval(["--rejudge", str(run_dir), "--judge", "gemini"]) == 2
    assert "no credentials" in capsys.readouterr().err
    monkeypatch.setenv("GEMINI_API_KEY", "x")
    monkeypatch.setenv("RECIF_BERTSCORE_MODEL", str(tmp_path / "no-bert"))
    assert recif_eval(["--rejudge", str(run_dir), "--judge", "gemini"]) == 2
    assert "BERTScore model" in capsys.readouterr().err
    monkeypatch.setenv("RECIF_BERTSCORE_MODEL", str(build_tiny_bert(tmp_path / "bert")))
    capsys.readouterr()   # the builder's progress bars
    assert recif_eval(["--rejudge", str(run_dir), "--judge", "gemini"]) == 2
    err = capsys.readouterr().err
    assert "BERTScore layer 9: " in err and len(err.strip().splitlines()) == 1   # the reference's layer; this BERT has 1


def test_only_the_reference_judge_and_bertscore_are_comparable_with_the_paper(judge, tmp_path):
    samples = [TextSample("0", "猫，睡觉。", "猫，睡觉。")]
    paper = JudgeConfig("gemini", "gemini-2.5-flash-lite", base_url=judge.url, api_key="k",
                          cache_dir=str(tmp_path), retry_delay=0.01)
    assert run("rec_reason", samples, paper).stats["comparable_with_paper"] is True
    other_bert = run("item_understand", samples, paper, GivenQualities({("猫", "猫"): 1.0, ("睡觉", "睡觉"): 1.0}))
    assert other_bert.metrics["macro_wip_double_weighted_f1"] == 1.0
    assert other_bert.stats["comparable_with_paper"] is False   # match weights from another BERTScore model
    assert run("rec_reason", samples, settings_for(judge, "gemini", tmp_path)).stats["comparable_with_paper"] is False
