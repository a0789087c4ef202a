"""Trade-off plot: mean RecIF-Bench headline vs mean general score, per run and per pipeline stage."""

import json

import pytest

from leaderboard.cli import main
from leaderboard.collect import collect, group_by_data
from leaderboard.tradeoff import points, recif_score
from leaderboard_fixtures import task_entry, write_run


def general_section(**scores):
    return {"settings": {}, "tasks": {task: {"n": 10, "metrics": {}, "headline": {
        "metric": "acc,none", "value": value, "higher_is_better": value is not None and value <= 1}}
        for task, value in scores.items()}}


def write(root, name, video, label_pred, reason, general=None, **extra):
    tasks = {"video": task_entry("video", video), "label_pred": task_entry("label_pred", label_pred),
             "rec_reason": task_entry("rec_reason", reason)}
    run_dir = write_run(root, name, tasks, **extra)
    if general is not None:
        path = run_dir / "summary.json"
        summary = json.loads(path.read_text())
        summary["general"] = general
        path.write_text(json.dumps(summary))
    return run_dir


def test_points_average_headlines_on_one_scale(tmp_path):
    # rec_reason's 1-5 llm_score 3.0 counts as 0.5; the perplexity-like 25.0 is not a general score
    write(tmp_path, "base", 0.2, 0.7, 3.0, general_section(mmlu_pro=0.6, gsm8k=0.4, ppl=25.0))
    write(tmp_path, "no-general", 0.3, 0.6, None)
    runs = collect([tmp_path]).runs
    (point,) = points(runs)
    assert point.run.name == "base"
    assert point.recif == pytest.approx((0.2 + 0.7 + 0.5) / 3) and point.n_recif == 3
    assert point.general == pytest.approx(0.5)
    assert recif_score(next(r for r in runs if r.name == "no-general")) == (pytest.approx(0.45), 2)


def test_tradeoff_command_draws_runs_and_pipeline_stages(tmp_path, capsys):
    results = tmp_path / "results"
    write(results, "qwen3", 0.0, 0.5, 2.0, general_section(mmlu_pro=0.72))
    for i, (stage, rec, gen) in enumerate([("itemic", 0.1, 0.70), ("co-pretrain", 0.3, 0.60), ("sft", 0.5, 0.53)]):
        write(results, f"onerec-{stage}", rec, 0.7, 3.0, general_section(mmlu_pro=gen),
              run_extra={"pipeline": "onerec"}, model_extra={"stage": stage, "stage_index": i},
              created=f"2026-01-0{i + 2}T00:00:00+00:00")
    out = tmp_path / "site"
    assert main(["tradeoff", "--results", str(results), "--out", str(out), "--no-published"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and any("onerec-sft" in line and "general 0.5300" in line for line in printed)
    (group,) = group_by_data(collect([results]).runs)
    png = out / "plots" / f"tradeoff-{group.key}.png"
    assert png.stat().st_size > 10_000 and png.with_suffix(".svg").exists()

    assert main(["plots", "--results", str(results), "--out", str(tmp_path / "all"), "--no-published"]) == 0
    assert (tmp_path / "all" / "plots" / f"tradeoff-{group.key}.png").exists()   # part of every board
