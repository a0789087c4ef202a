"""The library locates the demo model and leaves building it to ``recif-train demo``, run as its own process."""

from __future__ import annotations

import subprocess
import sys

from recif_bench.models import demo


def test_a_built_demo_model_is_found_without_running_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran a process")))
    (demo.final_dir()).mkdir(parents=True)
    (demo.final_dir() / demo.DONE).write_text("{}")
    assert demo.ensure() == tmp_path / f"demo-{demo.VERSION}" / "sft"


def test_a_missing_demo_model_is_built_by_the_training_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path))
    calls = []

    def build(command, **kwargs):
        calls.append(command)
        (demo.final_dir()).mkdir(parents=True)
        (demo.final_dir() / demo.DONE).write_text("{}")

    monkeypatch.setattr(subprocess, "run", build)
    assert demo.ensure() == demo.final_dir() and demo.is_built()
    assert calls == [[sys.executable, "-m", "trainers.cli", "demo"]]
