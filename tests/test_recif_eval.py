"""recif-eval end to end on mini-RecIF: the popularity baseline, resume, and the lm_eval entry point."""

import json
import subprocess
import sys

import pytest

from recif_bench.benchmark import TASK_ORDER
from recif_bench.cli.eval import main as recif_eval
from recif_bench.models import rec as rec_module

REC_TASKS = ["video", "ad", "product", "label_cond", "interactive"]


def read_summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_popularity_scores_all_tasks(mini_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert recif_eval(["--data-dir", str(mini_dir), "--limit", "40", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = read_summary(out)
    assert summary["schema"] == "recif-bench/summary/1"
    assert list(summary["tasks"]) == TASK_ORDER
    for task in ("item_understand", "rec_reason"):
        assert summary["tasks"][task]["supported"] is False
    for task in REC_TASKS:
        entry = summary["tasks"][task]
        assert entry["supported"] and entry["n"] == 40
        metrics = entry["metrics"]
        assert 0.0 <= metrics["recall@32"] <= metrics["pass@32"] <= 1.0
        assert metrics["legal_rate"] == pytest.approx(1.0)   # popular items are catalogue items
        assert entry["headline"] == {"metric": "recall@32", "value": metrics["recall@32"],
                                     "stderr": entry["stderr"]["recall@32"]}
    # popularity is a real baseline on a world with popularity skew: it finds something
    assert sum(summary["tasks"][t]["metrics"]["pass@32"] for t in REC_TASKS) > 0
    auc = summary["tasks"]["label_pred"]["metrics"]["auc"]
    assert 0.0 < auc < 1.0
    assert summary["data"]["name"] == "custom" or summary["data"]["fingerprint"].startswith("sha256:")
    assert "--" in printed and "recall@32" in printed
    lines = (out / "samples_recif_video.jsonl").read_text().splitlines()
    assert len(lines) == 40 and len(json.loads(lines[0])["resps"][0][0]) == 32


def test_resume_recomputes_no_finished_request(mini_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--data-dir", str(mini_dir), "--tasks", "video,ad", "--limit", "30", "--output", str(out)]
    calls = {"n": 0}
    original = rec_module.Popularity.recommend

    def flaky(self, prompt, domain, k):
        calls["n"] += 1
        if calls["n"] == 45:
            raise KeyboardInterrupt   # as if the user pressed Ctrl-C in the middle of the second task
        return original(self, prompt, domain, k)

    monkeypatch.setattr(rec_module.Popularity, "recommend", flaky)
    assert recif_eval(args) == 130
    assert not (out / "summary.json").exists()

    calls["n"] = 0
    monkeypatch.setattr(rec_module.Popularity, "recommend",
                        lambda self, *a: (calls.__setitem__("n", calls["n"] + 1), original(self, *a))[1])
    assert recif_eval(args + ["--resume"]) == 0
    requests = read_summary(out)["settings"]["requests"]
    assert requests == {"reused": 44, "computed": 16}
    assert calls["n"] == 16

    # the resumed run scores exactly like an uninterrupted one
    fresh = tmp_path / "fresh"
    assert recif_eval(["--data-dir", str(mini_dir), "--tasks", "video,ad", "--limit", "30", "--output", str(fresh)]) == 0
    for task in ("video", "ad"):
        assert read_summary(out)["tasks"][task]["metrics"] == read_summary(fresh)["tasks"][task]["metrics"]


def test_lm_eval_entry_point_gives_identical_metrics(mini_dir, tmp_path):
    ours = tmp_path / "ours"
    assert recif_eval(["--data-dir", str(mini_dir), "--tasks", "video,label_pred", "--limit", "25",
                       "--output", str(ours)]) == 0
    lm_out = tmp_path / "lm"
    cmd = [sys.executable, "-m", "recif_bench.cli.lm_eval_entry", "run", "--model", "recif-rec",
           "--model_args", f"model=popularity,data_dir={mini_dir},limit=25",
           "--tasks", "recif_video,recif_label_pred", "--output_path", str(lm_out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = lm_out.rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]
    mine = json.loads((ours / "lm_eval_results.json").read_text())["results"]
    for task in ("recif_video", "recif_label_pred"):
        keys = [k for k in mine[task] if "," in k and "stderr" not in k]
        assert keys
        assert {k: theirs[task][k] for k in keys} == {k: mine[task][k] for k in keys}


def test_tiny_llm_runs_all_eight_tasks_through_both_entry_points(tiny_model_dir, mini_dir, tmp_path):
    out = tmp_path / "tiny"
    args = ["--model", str(tiny_model_dir), "--data-dir", str(mini_dir), "--limit", "2", "--output", str(out)]
    assert recif_eval(args) == 0
    summary = read_summary(out)
    assert all(entry["supported"] and entry["n"] == 2 for entry in summary["tasks"].values())
    assert summary["model"]["backend"] == "hf" and summary["model"]["fingerprint"].startswith("sha256:")
    for task in REC_TASKS:
        (first, _) = (out / f"samples_recif_{task}.jsonl").read_text().splitlines()
        assert len(json.loads(first)["resps"][0][0]) == 32        # 32 beams recorded per sample
    for task in ("item_understand", "rec_reason"):
        record = json.loads((out / f"samples_recif_{task}.jsonl").read_text().splitlines()[0])
        assert isinstance(record["resps"][0][0][0], str)          # the generation is recorded for the judge
        assert summary["tasks"][task]["headline"]["value"] is None  # no judge configured: no score

    lm_out = tmp_path / "lm"
    cmd = [sys.executable, "-m", "recif_bench.cli.lm_eval_entry", "run", "--model", "recif-hf",
           "--model_args", f"pretrained={tiny_model_dir},data_dir={mini_dir},limit=2",
           "--tasks", "recif_video,recif_label_pred", "--output_path", str(lm_out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = lm_out.rglob("results_*.json")
    theirs = json.loads(result_file.read_text())["results"]
    mine = json.loads((out / "lm_eval_results.json").read_text())["results"]
    for task in ("recif_video", "recif_label_pred"):
        keys = [k for k in mine[task] if "," in k and "stderr" not in k]
        assert {k: theirs[task][k] for k in keys} == {k: mine[task][k] for k in keys}
