"""Safety guarantees of issue 19: no code from a model folder unasked, model identity, no secret written."""

import json
import shutil
import sys

import pytest

from recif_bench.cli.eval import main as recif_eval
from recif_bench.identity import content_fingerprint
from recif_bench.redact import scrub


def remote_code_folder(tiny_model_dir, tmp_path):
    """The tiny model with an auto_map pointing at a module that writes a marker file when imported."""
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil_qwen", auto_map={"AutoConfig": "evil.EvilConfig",
                                                    "AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "from transformers import Qwen3Config as EvilConfig, Qwen3ForCausalLM as EvilModel\n")
    return folder, marker


def test_model_folder_code_is_not_run_by_default(tiny_model_dir, tmp_path, capsys):
    folder, marker = remote_code_folder(tiny_model_dir, tmp_path)
    assert recif_eval(["--model", str(folder), "--tasks", "video", "--limit", "2",
                       "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "auto_map" in err[0] and "--trust-remote-code" in err[0]
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_backend_default_refuses_folder_code_too(tiny_model_dir, tmp_path):
    from recif_bench.models.hf import HFRecLM

    folder, marker = remote_code_folder(tiny_model_dir, tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):
        HFRecLM(pretrained=str(folder), device="cpu")
    assert not marker.exists()


def test_same_size_different_weights_get_different_fingerprints(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0          # same shapes, same file size, other values
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    assert (other / "model.safetensors").stat().st_size == (tiny_model_dir / "model.safetensors").stat().st_size
    assert content_fingerprint(other) != content_fingerprint(tiny_model_dir)
    assert content_fingerprint(tiny_model_dir) == content_fingerprint(tiny_model_dir)   # stable (cached)


@pytest.mark.parametrize("text, secret", [
    ("--model-args base_url=http://u:sk-abcdef123456@host/v1", "sk-abcdef123456"),
    ("--judge openai:m@https://h/v1?key=AIzaSyA0123456789abcdefghijk", "AIzaSyA0123456789abcdefghijk"),
    ("--model-args api_key=plainsecret,batch_size=2", "plainsecret"),
    ("--api-key hunter2hunter2", "hunter2hunter2"),
    ("http://host/v1?token=abc123&x=1", "abc123"),
])
def test_credentials_are_scrubbed(text, secret):
    cleaned = scrub(text)
    assert secret not in cleaned and len(cleaned.split()) == len(text.split())   # the rest of the line stays


def test_command_line_in_summary_has_no_credentials(mini_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = ["--model", "popularity", "--data-dir", str(mini_dir), "--tasks", "video", "--limit", "3",
            "--output", str(out), "--pipeline", "http://user:pa55word@host/x?api_key=k3y"]
    monkeypatch.setattr(sys, "argv", ["recif-eval", *argv])
    assert recif_eval(argv) == 0
    written = "".join(p.read_text() for p in out.iterdir() if p.suffix in (".json", ".jsonl"))
    assert "pa55word" not in written and "k3y" not in written
    assert "http://host/x?api_key=***" in json.loads((out / "summary.json").read_text())["run"]["command"]


class _Payload:
    """Unpickling this object would call ``os.system`` (a classic checkpoint attack)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_pickled_checkpoint_with_a_payload_does_not_run(mini_dir, tmp_path, capsys):
    import torch

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "best.pt"
    torch.save({"kind": "sasrec", "config": {}, "state": _Payload(marker)}, evil)
    code = recif_eval(["--model", "sasrec", "--model-args", f"checkpoint={evil}", "--data-dir", str(mini_dir),
                       "--tasks", "video", "--limit", "2", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(evil) in err[0] and "never loaded" in err[0]
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_checkpoints_round_trip_without_pickle(tmp_path):
    import random

    import numpy as np
    import torch
    from safetensors import safe_open

    from recif_bench.recommenders.checkpoint import load_checkpoint, save_atomic

    net = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    optimiser.step()
    payload = {"kind": "demo", "state": net.state_dict(), "optimiser": optimiser.state_dict(),
               "codes": {(1, 2): (0, 1), "x": (3, 4)}, "rng": random.Random(0).getstate(),
               "array": np.arange(4), "meta": {"name": "n", "value": 0.5, "none": None}}
    path = save_atomic(payload, tmp_path / "best.pt")
    with safe_open(str(path), framework="pt") as handle:   # a plain safetensors file
        assert "recif-checkpoint/1" in handle.metadata()
    _, back = load_checkpoint(tmp_path, "demo", "best.pt", "demo checkpoint")
    assert back["codes"] == payload["codes"] and back["rng"] == payload["rng"] and back["meta"] == payload["meta"]
    assert all(torch.equal(back["state"][k], v) for k, v in net.state_dict().items())
    assert np.array_equal(back["array"], payload["array"])
    optimiser.load_state_dict(back["optimiser"])   # the optimiser state round-trips too
    with pytest.raises(ValueError, match="not a other checkpoint"):
        load_checkpoint(path, "other", "best.pt", "other checkpoint")


def _changed_weights_copy(tiny_model_dir, out):
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_model_dir, out)
    weights = load_file(out / "model.safetensors")
    weights = {k: v + 0.5 for k, v in weights.items()}
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_resuming_another_model_into_a_run_is_refused(tiny_model_dir, mini_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data-dir", str(mini_dir), "--tasks", "label_pred", "--limit", "2", "--output", str(out)]
    assert recif_eval(["--model", str(tiny_model_dir), *common]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other = _changed_weights_copy(tiny_model_dir, tmp_path / "other")
    capsys.readouterr()
    assert recif_eval(["--model", str(other), "--resume", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model" in err[0] and "requests.db" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert recif_eval(["--model", str(tiny_model_dir), "--resume", *common]) == 0   # the same model resumes
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["requests"]["computed"] == 0 and summary["settings"]["requests"]["reused"] > 0


def test_a_second_run_on_the_same_output_stops_with_one_line(mini_dir, tmp_path, capsys):
    from recif_bench.run_dir import run_lock

    out = tmp_path / "run"
    with run_lock(out):   # as if another recif-eval were writing it
        assert recif_eval(["--data-dir", str(mini_dir), "--tasks", "video", "--limit", "2", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another recif-eval" in err[0] and "error" in err[0] and not out.exists()


def test_a_replacing_run_swaps_whole_and_a_failed_one_damages_nothing(mini_dir, tmp_path, monkeypatch):
    from recif_bench import evaluate as evaluate_module

    out = tmp_path / "run"
    common = ["--data-dir", str(mini_dir), "--limit", "2", "--output", str(out)]
    assert recif_eval(["--tasks", "video,ad", *common]) == 0
    assert (out / "samples_recif_ad.jsonl").exists()
    assert recif_eval(["--tasks", "video", *common]) == 0
    assert not (out / "samples_recif_ad.jsonl").exists()            # no stale samples of a task not run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise ValueError("the model crashed in the middle of generation")

    monkeypatch.setattr(evaluate_module, "_run_tasks", crash)
    with pytest.raises(ValueError):
        recif_eval(["--tasks", "video", *common])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before   # the earlier run is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]      # no partial folder left
