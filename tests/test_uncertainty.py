"""Bootstrap over users: weighted AUC / wuAUC equal the metric code, standard errors and paired differences behave."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recif_bench.metrics import uncertainty as unc
from recif_bench.metrics.classification import auc, wuauc


def label_pred_samples(n_users=60, per_user=6, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i}" for i in range(n_users)], per_user)
    labels = rng.integers(0, 2, len(users))
    scores = np.round(rng.random(len(users)) * 0.5 + labels * shift, 2)   # rounding makes ties
    return unc.TaskSamples([str(i) for i in range(len(users))], list(users), scores=scores, labels=labels)


def test_weighted_auc_equals_sklearn_with_sample_weights():
    s = label_pred_samples(shift=0.2)
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 4, size=(5, len(s))).astype(float)
    got = unc._AucPlan(s.scores, s.labels)(weights)
    for row, value in zip(weights, got):
        assert value == pytest.approx(roc_auc_score(s.labels, s.scores, sample_weight=row), abs=1e-12)


def test_point_values_equal_the_metric_functions():
    s = label_pred_samples(shift=0.1)
    point = unc.point_values(s, ["auc", "wuauc"])
    assert point["auc"] == pytest.approx(auc(list(s.scores), list(s.labels)), abs=1e-12)
    assert point["wuauc"] == pytest.approx(wuauc(list(s.scores), list(s.labels), s.users), abs=1e-12)


def test_standard_error_of_a_mean_matches_the_formula_with_one_sample_per_user():
    rng = np.random.default_rng(2)
    values = (rng.random(400) < 0.3).astype(float)
    s = unc.TaskSamples([str(i) for i in range(400)], [str(i) for i in range(400)], {"pass@1": values})
    se = unc.standard_errors(s, iterations=2000)["pass@1"]
    assert se == pytest.approx(values.std(ddof=1) / np.sqrt(400), rel=0.1)


def test_clustered_users_widen_the_error():
    """Ten identical samples per user carry the information of one: the error is ~sqrt(10) larger than i.i.d."""
    rng = np.random.default_rng(3)
    per_user = (rng.random(100) < 0.4).astype(float)
    values = np.repeat(per_user, 10)
    ids = [str(i) for i in range(1000)]
    clustered = unc.standard_errors(unc.TaskSamples(ids, [str(i // 10) for i in range(1000)], {"m": values}))["m"]
    iid = unc.standard_errors(unc.TaskSamples(ids, ids, {"m": values}))["m"]
    assert clustered / iid == pytest.approx(np.sqrt(10), rel=0.2)


def test_paired_comparison_finds_a_real_gain_and_no_gain_between_equal_runs():
    base = label_pred_samples(n_users=150, seed=4, shift=0.05)
    better = unc.TaskSamples(base.sample_ids, base.users, scores=base.scores + base.labels * 0.3, labels=base.labels)
    (same,) = unc.compare(base, base, ["auc"])
    assert same.delta == 0 and same.low == same.high == 0 and not same.significant
    (gain,) = unc.compare(better, base, ["auc"])
    assert gain.delta > 0 and gain.significant and gain.low > 0
    assert gain.n_users == 150 and gain.n_samples == len(base)


def test_compare_uses_only_the_shared_samples_in_the_same_order():
    a = unc.TaskSamples(["1", "2", "3", "4"], ["x", "x", "y", "z"], {"m": np.array([1.0, 0.0, 1.0, 1.0])})
    b = unc.TaskSamples(["4", "3", "2", "9"], ["z", "y", "x", "q"], {"m": np.array([0.0, 1.0, 0.0, 1.0])})
    (diff,) = unc.compare(a, b, ["m"], iterations=200)
    assert diff.n_samples == 3 and diff.delta == pytest.approx((0 + 1 + 1) / 3 - (0 + 1 + 0) / 3)


def test_from_records_reads_lm_eval_sample_records():
    records = [{"doc_id": 0, "doc": {"sample_id": "0", "uid": "u1"}, "target": 3, "pass@1": 1.0, "n_invalid": 0.0,
                "resps": [], "metrics": ["pass@1", "n_invalid"]},
               {"doc_id": 1, "doc": {"sample_id": "1", "uid": ""}, "target": 4, "pass@1": 0.0, "n_invalid": 1.0,
                "resps": [], "metrics": ["pass@1", "n_invalid"]}]
    s = unc.from_records(records)
    assert s.users == ["u1", "1"] and list(s.means) == ["pass@1"] and list(s.means["pass@1"]) == [1.0, 0.0]
    pred = unc.from_records([{"doc": {"sample_id": "5", "uid": "u"}, "auc": [0.7, 1], "wuauc": [0.7, 1, "u"]}])
    assert pred.metrics() == ["auc", "wuauc"] and pred.scores[0] == 0.7 and pred.labels[0] == 1


def test_summary_and_lm_eval_results_carry_bootstrap_stderrs(mini_dir, tmp_path):
    import json

    from recif_bench.cli.eval import main as recif_eval

    out = tmp_path / "run"
    assert recif_eval(["--data-dir", str(mini_dir), "--tasks", "video,label_pred", "--limit", "40",
                       "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    lm = json.loads((out / "lm_eval_results.json").read_text())
    assert summary["settings"]["uncertainty"]["iterations"] == unc.ITERATIONS
    assert {"task_hashes", "model_source", "model_name", "total_evaluation_time_seconds"} <= set(lm)
    for task, name in (("video", "recif_video"), ("label_pred", "recif_label_pred")):
        entry = summary["tasks"][task]
        records = [json.loads(line) for line in (out / f"samples_{name}.jsonl").read_text().splitlines()]
        expected = unc.standard_errors(unc.from_records(records), seed=0)
        headline = entry["headline"]
        assert headline["stderr"] is not None and headline["stderr"] == pytest.approx(expected[headline["metric"]])
        assert 0 < headline["stderr"] < 0.5
        assert lm["results"][name][f"{headline['metric']}_stderr,none"] == headline["stderr"]
    assert set(summary["tasks"]["label_pred"]["stderr"]) == {"auc", "wuauc"}


def _worse_copy(src, dst, task="video", metric="recall@32"):
    """A copy of a run whose ``metric`` on ``task`` is 0 on every sample (summary and samples agree)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    path = dst / f"samples_recif_{task}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, metric: 0.0}) + "\n" for r in records))
    summary = json.loads((dst / "summary.json").read_text())
    summary["run"]["name"] = dst.name
    summary["model"]["name"] = "worse"
    entry = summary["tasks"][task]
    entry["metrics"][metric] = entry["headline"]["value"] = 0.0
    (dst / "summary.json").write_text(json.dumps(summary))


def test_leaderboard_shows_stderr_and_marks_significant_differences(mini_dir, tmp_path, capsys):
    from leaderboard.cli import main as leaderboard
    from recif_bench.cli.eval import main as recif_eval

    results = tmp_path / "results"
    assert recif_eval(["--data-dir", str(mini_dir), "--tasks", "video,ad", "--limit", "60",
                       "--output", str(results / "pop")]) == 0
    _worse_copy(results / "pop", results / "worse")
    assert leaderboard(["table", "--results", str(results), "--out", str(tmp_path / "site"), "--no-published"]) == 0
    table = (tmp_path / "site" / "tables" / "recif_bench-mini-recif.md").read_text()
    video = next(line for line in table.splitlines() if line.startswith("| Short Video Rec"))
    assert "±" in video and "†" in video
    assert "significant at 95%" in table and "popularity (limit 60) - worse (limit 60) = +" in table
    ad = next(line for line in table.splitlines() if "Ad Rec" in line)
    assert "†" not in ad and "not significant at 95%" in table   # identical runs on ad
    capsys.readouterr()
    assert leaderboard(["compare", str(results / "pop"), str(results / "worse")]) == 0
    printed = capsys.readouterr().out
    video_line = next(line for line in printed.splitlines() if line.startswith("video"))
    assert "recall@32" in video_line and " significant" in video_line and "not significant" not in video_line
    assert "not significant" in next(line for line in printed.splitlines() if line.startswith("ad "))
    from recif_bench.cli.demo_eval import compare as demo_table

    shown = demo_table({"pop": results / "pop" / "summary.json", "worse": results / "worse" / "summary.json"})
    video_row = next(line for line in shown.splitlines() if line.startswith("video"))
    assert "±" in video_row and video_row.rstrip().endswith("]*")   # a significant paired difference
    assert not next(line for line in shown.splitlines() if line.startswith("ad ")).rstrip().endswith("*")
