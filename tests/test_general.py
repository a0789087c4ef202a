"""General-ability retention: stock lm-eval requests on recif-hf, and ``recif-eval --general``."""

import json
from pathlib import Path

import pytest
from lm_eval.api.instance import Instance

from recif_bench import general
from recif_bench.cli.eval import main as recif_eval

GENERAL_TASKS = Path(__file__).parent / "general_tasks"
PROMPT = "Question: 2 + 3 =\nAnswer:"


def request(kind, args, task):
    instance = Instance(kind, doc={}, arguments=args, idx=0)
    instance.task_name = task
    return instance


def test_stock_requests_score_as_lm_eval_hf_does(tiny_model_dir):
    """Same numbers as lm-eval's own ``hf`` model: multi-token continuations, an empty context,
    contexts cut to a 16-token window, rolling windows, and one greedy string per generation."""
    from lm_eval.models.huggingface import HFLM

    from recif_bench.models.hf import HFRecLM

    ours = HFRecLM(pretrained=str(tiny_model_dir), max_length=16, thinking=True)   # thinking: RecIF tasks only
    stock = HFLM(pretrained=str(tiny_model_dir), max_length=16, device="cpu", dtype="float32", batch_size=1)
    scored = [request("loglikelihood", (PROMPT, c), "mmlu") for c in (" 5", " 6 and more", " 7")]
    scored.append(request("loglikelihood", ("", "The quick brown fox"), "mmlu"))
    mine, theirs = ours.loglikelihood(scored), stock.loglikelihood(scored)
    assert [ll for ll, _ in mine] == pytest.approx([ll for ll, _ in theirs], abs=1e-4)
    assert [g for _, g in mine] == [g for _, g in theirs]

    text = "The quick brown fox jumps over the lazy dog. 0123456789 The lazy dog sleeps."
    assert len(ours.tokenizer(text)["input_ids"]) > 2 * 16                       # several windows
    rolling = [request("loglikelihood_rolling", (text,), "wikitext")]
    assert ours.loglikelihood_rolling(rolling) == pytest.approx(stock.loglikelihood_rolling(rolling), abs=1e-3)

    generate = [request("generate_until", (PROMPT, {"until": ["\n"], "do_sample": False, "max_gen_toks": 5}),
                        "gsm8k")]
    (text_out,) = ours.generate_until(generate)
    assert isinstance(text_out, str) and [text_out] == stock.generate_until(generate)


def test_headline_choice_and_mean_score():
    gsm = {"exact_match,strict-match": 0.25, "exact_match,flexible-extract": 0.5}
    assert general.headline("gsm8k", gsm, {"exact_match": True})["metric"] == "exact_match,strict-match"
    ppl = {"word_perplexity,none": 30.0, "bits_per_byte,none": 1.2}
    assert general.headline("my_ppl", ppl, {"word_perplexity": False, "bits_per_byte": False}) == \
        {"metric": "word_perplexity,none", "value": 30.0, "higher_is_better": False}
    mc = {"acc,none": 0.5, "acc_norm,none": 0.75}
    assert general.headline("my_mc", mc, {"acc": True, "acc_norm": True})["metric"] == "acc,none"
    section = {"tasks": {t: {"headline": general.headline(t, m, h)} for t, m, h in [
        ("gsm8k", gsm, {"exact_match": True}), ("ppl", ppl, {"word_perplexity": False}),
        ("mc", mc, {"acc": True})]}}
    assert general.mean_score(section) == pytest.approx((0.25 + 0.5) / 2)    # the perplexity is left out
    assert general.mean_score(None) is None


def test_merged_lm_eval_results_keep_both_runs():
    recif = {"results": {"recif_video": {"recall@32,none": 0.1}}, "versions": {"recif_video": 1.0},
             "config": {"model": "x"}, "date": 1.0}
    other = {"results": {"gsm8k": {"exact_match,strict-match": 0.2}}, "versions": {"gsm8k": 3.0},
             "config": {"limit": 5}, "date": 2.0, "n-shot": {"gsm8k": 5}}
    merged = general.merge_lm_results(recif, other)
    assert merged["results"] == {"recif_video": {"recall@32,none": 0.1}, "gsm8k": {"exact_match,strict-match": 0.2}}
    assert merged["versions"] == {"recif_video": 1.0, "gsm8k": 3.0}
    assert merged["config"] == {"model": "x"} and merged["date"] == 1.0 and merged["n-shot"] == {"gsm8k": 5}


def test_recif_eval_general_writes_both_kinds_of_scores(tiny_model_dir, mini_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", str(tiny_model_dir), "--data-dir", str(mini_dir), "--tasks", "video,label_pred",
            "--limit", "2", "--general", "tiny_general,tiny_general_ppl", "--general-include", str(GENERAL_TASKS),
            "--output", str(out)]
    assert recif_eval(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tasks"]) == {"video", "label_pred"}
    tasks = summary["general"]["tasks"]
    assert list(tasks) == ["tiny_general", "tiny_general_ppl"]
    group = tasks["tiny_general"]
    assert group["n"] == 12 and group["headline"]["metric"] == "acc,none"     # 6 + 6 docs of the two members
    assert 0 <= group["headline"]["value"] <= 1
    ppl = tasks["tiny_general_ppl"]
    assert ppl["n"] == 3 and ppl["headline"]["higher_is_better"] is False and ppl["metrics"]["bits_per_byte,none"] > 0
    assert summary["general"]["settings"]["include"] == [str(GENERAL_TASKS)]

    lm_results = json.loads((out / "lm_eval_results.json").read_text())
    assert {"recif_video", "recif_label_pred", "tiny_general_mc", "tiny_general_gen", "tiny_general_ppl"} \
        <= set(lm_results["results"])
    generated = json.loads((out / "samples_tiny_general_gen.jsonl").read_text().splitlines()[0])
    assert isinstance(generated["resps"][0][0], str)            # one string, lm-eval's contract
    video = json.loads((out / "samples_recif_video.jsonl").read_text().splitlines()[0])
    assert len(video["resps"][0][0]) == 32                      # while RecIF tasks keep 32 candidates
    printed = capsys.readouterr().out
    assert "tiny_general" in printed and "recall@32" in printed

    assert recif_eval(args + ["--resume"]) == 0                 # every request, general ones too, is reused
    again = json.loads((out / "summary.json").read_text())
    assert again["settings"]["requests"]["computed"] == 0
    assert again["general"]["tasks"] == summary["general"]["tasks"]


def test_unknown_general_tasks_are_named():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(GENERAL_TASKS), include_defaults=False)   # skip the 8-30 s index
    general.check_tasks(manager, ["tiny_general", "tiny_general_ppl"])
    with pytest.raises(general.GeneralTaskError, match="unknown lm-eval task.s.: no_such_task_xyz"):
        general.check_tasks(manager, ["tiny_general_mc", "no_such_task_xyz"])


def test_missing_include_folder_is_one_line(tiny_model_dir, mini_dir, tmp_path, capsys):
    args = ["--model", str(tiny_model_dir), "--data-dir", str(mini_dir), "--tasks", "video", "--limit", "1",
            "--output", str(tmp_path / "run"), "--general", "tiny_general_mc", "--general-include", "/no/such/dir"]
    assert recif_eval(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "recif-eval: error: --general-include: /no/such/dir: no such folder"


def test_recommenders_cannot_run_general_tasks(mini_dir, tmp_path, capsys):
    args = ["--model", "popularity", "--data-dir", str(mini_dir), "--general", "tiny_general_mc",
            "--general-include", str(GENERAL_TASKS), "--output", str(tmp_path / "run")]
    assert recif_eval(args) == 2
    assert "rec backend" in capsys.readouterr().err
