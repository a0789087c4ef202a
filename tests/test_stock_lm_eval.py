"""Stock ``lm_eval --include_path tasks --model hf``: label_pred equals recif-eval, the rest is refused in one line."""

import json
import subprocess
import sys

import pytest

from recif_bench import harness, stock_guard, tasks_dir
from recif_bench.cli.eval import main as recif_eval
from recif_bench.metrics.classification import yes_probability

LIMIT = 12


def stock_lm_eval(model_dir, data_dir, task, out, limit=LIMIT):
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
           f"pretrained={model_dir},dtype=float32", "--device", "cpu", "--include_path", tasks_dir(),
           "--tasks", task, "--metadata", json.dumps({"data_dir": str(data_dir), "limit": limit}),
           "--output_path", str(out), "--log_samples"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_stock_hf_label_pred_equals_recif_eval(qwen3_tiny_dir, mini_dir, tmp_path):
    done = stock_lm_eval(qwen3_tiny_dir, mini_dir, "recif_label_pred", tmp_path / "stock")
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = (tmp_path / "stock").rglob("results_*.json")
    stock = json.loads(result_file.read_text())["results"]["recif_label_pred"]
    (samples_file,) = (tmp_path / "stock").rglob("samples_recif_label_pred_*.jsonl")
    stock_p = {}
    for line in samples_file.read_text().splitlines():
        record = json.loads(line)
        (ll_yes, _), (ll_no, _) = (r[0] for r in record["resps"])
        stock_p[record["doc"]["sample_id"]] = yes_probability(float(ll_yes), float(ll_no))

    ours = tmp_path / "ours"
    assert recif_eval(["--model", str(qwen3_tiny_dir), "--data-dir", str(mini_dir), "--tasks", "label_pred",
                       "--limit", str(LIMIT), "--model-args", "dtype=float32", "--output", str(ours)]) == 0
    metrics = json.loads((ours / "summary.json").read_text())["tasks"]["label_pred"]["metrics"]
    our_p = {}
    for line in (ours / "samples_recif_label_pred.jsonl").read_text().splitlines():
        record = json.loads(line)
        (ll_yes, _), (ll_no, _) = (r[0] for r in record["resps"])
        our_p[record["doc"]["sample_id"]] = yes_probability(float(ll_yes), float(ll_no))

    assert len(stock_p) == len(our_p) == LIMIT
    for sample_id, p in our_p.items():
        assert stock_p[sample_id] == pytest.approx(p, abs=1e-5), sample_id
    assert stock["auc,none"] == pytest.approx(metrics["auc"], abs=1e-9)
    assert stock["wuauc,none"] == pytest.approx(metrics["wuauc"], abs=1e-9)


def test_stock_hf_rec_task_is_refused_in_one_line(qwen3_tiny_dir, mini_dir, tmp_path):
    done = stock_lm_eval(qwen3_tiny_dir, mini_dir, "recif_video", tmp_path / "stock", limit=2)
    assert done.returncode == 2
    (line,) = [l for l in done.stderr.splitlines() if l.startswith("recif-bench:")]
    assert "recif_video: stock lm-eval backends cannot return the task's candidates" in line
    assert "Traceback" not in done.stderr


def load(task, mini_dir, **metadata):
    return harness.load_docs(task, data_dir=str(mini_dir), limit=3, **metadata)


@pytest.mark.parametrize("task", ["video", "interactive", "item_understand", "rec_reason"])
def test_generation_tasks_are_refused_for_stock_models(task, mini_dir, monkeypatch):
    monkeypatch.delenv(stock_guard.MODEL_ENV, raising=False)
    with pytest.raises(SystemExit) as refused:
        load(task, mini_dir, pretrained="some/model")
    assert refused.value.code == 2 and f"recif_{task}: stock lm-eval" in refused.value.message


def test_label_pred_is_refused_when_the_tokenizer_merges_prompt_and_answer(tiny_model_dir, mini_dir, monkeypatch):
    """The tiny test tokenizer (GPT-2 split) tokenises '\\n\\n是' differently from '\\n\\n' + '是'."""
    monkeypatch.setenv(stock_guard.MODEL_ENV, "hf")
    with pytest.raises(SystemExit) as refused:
        load("label_pred", mini_dir, pretrained=str(tiny_model_dir))
    assert "tokenise together" in refused.value.message
    with pytest.raises(SystemExit, match="2"):
        load("label_pred", mini_dir, pretrained=str(tiny_model_dir), thinking=True)


def test_our_backends_and_recif_eval_are_never_refused(tiny_model_dir, mini_dir, monkeypatch):
    monkeypatch.setenv(stock_guard.MODEL_ENV, "recif-hf")
    assert len(load("video", mini_dir, pretrained=str(tiny_model_dir))["test"]) == 3
    monkeypatch.delenv(stock_guard.MODEL_ENV)
    assert len(load("label_pred", mini_dir)["test"]) == 3   # recif-eval passes no model arguments as metadata


def test_boundary_problem_names_multi_token_answers():
    def encode(text):   # a character-level tokenizer where 否 needs two tokens
        return [ord(c) for c in text.replace("否", "不是")]

    assert stock_guard.boundary_problem(encode, "问题\n\n") == "'否' is 2 tokens, the reference reads one"
