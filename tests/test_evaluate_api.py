"""The Python API under recif-eval: evaluate(), the task registry (one entry per task), judge sessions."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from recif_bench import tasks_dir
from recif_bench.benchmark import AMAZON_K, RECIF_K, TASKS, TaskInfo, groups, judged_tasks, register_task, task_info
from recif_bench.evaluate import Summary, evaluate
from recif_bench.judges import JudgeConfig, JudgeSession
from recif_bench.judges.session import active, current
from recif_bench.settings import EvalSettings, Model, UsageError, expand_tasks


def test_evaluate_writes_the_run_and_returns_its_summary(mini_dir, tmp_path):
    environ = {k: v for k, v in os.environ.items() if k.startswith("RECIF")}
    settings = EvalSettings(data_dir=mini_dir, limit=20, output=tmp_path / "run")
    summary = evaluate("popularity", "video,label_pred", settings)
    assert isinstance(summary, Summary) and summary.run_dir == tmp_path / "run"
    assert summary.record == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary.record["tasks"]) == ["video", "label_pred"]
    assert summary.headline("recif_video") == summary.record["tasks"]["video"]["metrics"]["recall@32"] is not None
    assert summary.record["model"]["backend"] == "rec"
    assert summary.record["settings"]["num_beams"] == summary.record["settings"]["num_return_sequences"] == RECIF_K
    assert summary.record["settings"]["judge"] is None
    assert summary.report().splitlines()[-1] == f"results: {tmp_path / 'run'}"
    assert {k: v for k, v in os.environ.items() if k.startswith("RECIF")} == environ   # settings are objects


def test_bad_settings_raise_one_named_error(mini_dir, tmp_path):
    with pytest.raises(UsageError, match="--tasks: unknown RecIF-Bench task 'vidoe'"):
        evaluate("popularity", "vidoe", EvalSettings(data_dir=mini_dir, output=tmp_path / "a"))
    with pytest.raises(UsageError, match="--constrained is supported by the hf backend"):
        evaluate(Model("served", "openai"), "video", EvalSettings(data_dir=mini_dir, constrained=True,
                                                                  output=tmp_path / "b"))
    assert not (tmp_path / "a").exists()


def test_every_task_has_one_registry_entry_and_k_comes_from_it():
    assert expand_tasks("recif_bench") == list(TASKS)[:8] == groups()["recif_bench"]
    assert expand_tasks(["recif_layer2", "recif_video"]) == ["label_cond", "interactive", "video"]
    assert [t for t in TASKS if task_info(t).kind == "rec"] == ["video", "ad", "product", "label_cond", "interactive"]
    assert {task_info(t).k for t in TASKS if task_info(t).kind == "rec"} == {RECIF_K}
    assert task_info("amazon_beauty").k == task_info("amazon_any_category").k == AMAZON_K
    assert judged_tasks() == ["item_understand", "rec_reason"]
    assert len({task_info(t).sft_source for t in TASKS}) == len(TASKS)
    video = task_info("video").build_function()
    assert video.__name__ == "video_rec"
    with pytest.raises(ValueError, match="already registered differently"):
        register_task(TaskInfo("video", 1, "rec", "recall@10", "Other"))


def _load_yaml(path: Path) -> dict:
    """A task YAML with its ``include`` merged in (``!function`` tags kept as their target names)."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: f"{suffix} {loader.construct_scalar(node)}")
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    if "include" in config:
        config = {**_load_yaml(path.parent / config.pop("include")), **config}
    return config


def test_task_yamls_and_groups_agree_with_the_registry():
    folder = Path(tasks_dir())
    members = {name: [task_info(t).lm_eval_name for t in tasks] for name, tasks in groups().items()}
    for name, tasks in members.items():
        assert _load_yaml(folder / f"{name}.yaml")["task"] == tasks, name
    for path in folder.glob("*.yaml"):
        config = _load_yaml(path)
        if "group" in config:
            assert config["group"] in members, f"{path.name}: a group the registry does not know"
            continue
        info = task_info(config["task"])
        assert info.lm_eval_name == config["task"] and path.stem == config["task"]
        metrics = [m["metric"] for m in config["metric_list"]]
        if info.k:
            gen = config["generation_kwargs"]
            assert gen["num_beams"] == gen["num_return_sequences"] == info.k, path.name
            assert f"recall@{info.k}" in metrics and info.headline in metrics, path.name
        assert set(info.judged_metrics) <= set(metrics), path.name
        assert info.headline in metrics or info.kind == "text", path.name


@pytest.fixture
def ninth_task():
    info = register_task(TaskInfo("video_again", 1, "rec", f"recall@{RECIF_K}", "Video Rec again", "sid2pid.json",
                                  "video", k=RECIF_K))
    yield info
    del TASKS[info.name]


def test_a_ninth_task_is_one_yaml_and_one_registry_entry(ninth_task, mini_dir, tmp_path):
    task_folder = tmp_path / "tasks"
    task_folder.mkdir()
    template = Path(tasks_dir()) / "_rec_template_yaml"
    (task_folder / "recif_video_again.yaml").write_text(
        f"include: {template}\ntask: recif_video_again\ndataset_kwargs: {{recif_task: video_again}}\n")
    data = tmp_path / "data"      # mini-RecIF plus the new task's folder (the video rows under a new name)
    data.mkdir()
    for entry in Path(mini_dir).iterdir():
        (data / entry.name).symlink_to(entry)
    (data / "video_again").mkdir()
    shutil.copy(Path(mini_dir) / "video" / "video_test.parquet", data / "video_again" / "video_again_test.parquet")

    settings = EvalSettings(data_dir=data, limit=25, include_paths=[task_folder], output=tmp_path / "run")
    summary = evaluate("popularity", "video_again,video", settings)
    new, old = summary.record["tasks"]["video_again"], summary.record["tasks"]["video"]
    assert new["supported"] and new["n"] == 25 and new["layer"] == 1
    assert new["metrics"] == old["metrics"] and new["metrics"]["legal_rate"] == pytest.approx(1.0)
    assert new["headline"] == {"metric": "recall@32", "value": old["metrics"]["recall@32"],
                               "stderr": old["stderr"]["recall@32"]}
    assert (summary.run_dir / "samples_recif_video_again.jsonl").exists()


def test_judge_sessions_keep_their_stats_and_config_to_themselves(tmp_path):
    unjudged = JudgeSession(None)
    assert unjudged.judge("rec_reason", [("0", "gen", "ref")]) == {}
    assert unjudged.stats["rec_reason"]["kind"] == "none" and unjudged.public() is None
    config = JudgeConfig.from_spec("openai:j@http://user:pw@localhost:1/v1", workers=2, cache_dir=str(tmp_path))
    assert (config.kind, config.model, config.workers) == ("openai", "j", 2)
    judged = JudgeSession(config)
    with active(judged):
        assert current() is judged
        with active(unjudged):
            assert current() is unjudged
        assert current() is judged
    assert judged.public()["base_url"] == "http://localhost:1/v1" and "prompt_version" in judged.public()
    assert judged.stats == {} and unjudged.stats.keys() == {"rec_reason"}


def test_pipeline_stage_evaluation_settings(tmp_path):
    from trainers import pipeline
    from trainers.common.config import ConfigError

    config = {"name": "p", "sid_levels": 3, "sid_codebook": 256,
              "eval": {"tasks": "recif_video", "sample": 20, "settings": {"thinking": True, "seed": 3}}}
    settings = pipeline.eval_settings(config, "sft", tmp_path / "sft", tmp_path)
    assert (settings.sid_codebook, settings.sample, settings.thinking, settings.seed) == (256, 20, True, 3)
    assert (settings.pipeline, settings.stage, settings.resume) == ("p", "sft", False)
    assert settings.output == tmp_path / "sft"
    config["eval"]["settings"] = {"thinkng": True}
    with pytest.raises(ConfigError, match="thinkng"):
        pipeline.eval_settings(config, "sft", tmp_path / "sft", tmp_path)


def test_pipeline_stage_is_evaluated_once_through_evaluate(mini_dir, tmp_path):
    from trainers import pipeline

    config = {"name": "p", "eval": {"tasks": "video", "sample": 10, "settings": {"data_dir": str(mini_dir)}}}
    figures = pipeline.evaluate(config, "base", Path("popularity"), tmp_path)
    summary = json.loads((tmp_path / "results" / "base" / "summary.json").read_text())
    assert (summary["run"]["pipeline"], summary["model"]["stage"], summary["data"]["sample"]) == ("p", "base", 10)
    assert figures["headline"] == {"video": summary["tasks"]["video"]["headline"]["value"]}
    created = summary["run"]["created"]
    config["eval"]["settings"]["data_dir"] = str(tmp_path / "missing")     # a finished stage is not evaluated again
    assert pipeline.evaluate(config, "base", Path("popularity"), tmp_path) == figures
    assert json.loads((tmp_path / "results" / "base" / "summary.json").read_text())["run"]["created"] == created


def test_demo_runs_the_demo_model_and_popularity_through_evaluate(tiny_model_dir, mini_dir, tmp_path, monkeypatch,
                                                                  capsys):
    from recif_bench.cli.eval import main as recif_eval
    from recif_bench.models import demo

    monkeypatch.setattr(demo, "checked", lambda *a, **k: tiny_model_dir)
    out = tmp_path / "demo"
    assert recif_eval(["--model", "demo", "--data-dir", str(mini_dir), "--tasks", "video", "--limit", "4",
                       "--output", str(out)]) == 0
    demo_run = json.loads((out / "summary.json").read_text())
    baseline = json.loads((tmp_path / "demo-popularity" / "summary.json").read_text())
    assert demo_run["model"]["name"] == str(tiny_model_dir) and baseline["model"]["name"] == "popularity"
    assert demo_run["data"]["fingerprint"] == baseline["data"]["fingerprint"]
    table = capsys.readouterr().out.splitlines()[-3:]                # header, the video row, the ± legend
    assert table[0].split()[:2] == ["task", "metric"] and table[1].startswith("video") and "±" in table[2]


def test_a_run_parses_each_mapping_file_once(mini_dir, tmp_path, monkeypatch):
    """The data check reads every rec task's SID -> item file before generation; the other rec
    tasks' checks and the scoring then take the stored arrays instead of parsing the file again."""
    from recif_bench import sid, sid_arrays

    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path / "cache"))
    sid._load_once.cache_clear()
    parsed = []
    real = sid_arrays.item_map_arrays
    monkeypatch.setattr(sid_arrays, "item_map_arrays", lambda data, limit: parsed.append(len(data)) or real(data, limit))
    summary = evaluate("popularity", "video,ad,product", EvalSettings(data_dir=mini_dir, limit=10, output=tmp_path / "r"))
    assert len(parsed) == 2                                   # sid2pid.json (video, ad) and sid2iid.json (product)
    assert len(list((tmp_path / "cache" / "item_maps").iterdir())) == 2
    assert summary.record["tasks"]["product"]["metrics"]["pid_recall@32"] is not None


def test_a_run_outside_a_git_checkout_prints_no_git_error(mini_dir, tmp_path, monkeypatch, capfd):
    import lm_eval.evaluator

    before = lm_eval.evaluator.get_git_commit_hash
    monkeypatch.chdir(tmp_path)                               # not a git checkout
    summary = evaluate("popularity", "video", EvalSettings(data_dir=mini_dir, limit=5, output=tmp_path / "r"))
    assert summary.record["tasks"]["video"]["metrics"]["recall@32"] is not None
    assert "not a git repository" not in capfd.readouterr().err
    assert lm_eval.evaluator.get_git_commit_hash is before   # lm-eval is left as it was
