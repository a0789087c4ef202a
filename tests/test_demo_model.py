"""The demo model shipped with the package: present, checked, loadable and evaluated with the base install only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from recif_bench.cli import eval as eval_cli
from recif_bench.models import demo

TRAIN_EXTRA = ("trl", "peft", "accelerate")


def test_shipped_demo_model_matches_its_manifest():
    folder = demo.checked()
    manifest = json.loads((folder / demo.MANIFEST).read_text(encoding="utf-8"))
    assert sorted(manifest["sha256"]) == sorted(demo.FILES)
    assert manifest["built_by"] == "recif-train demo"
    assert sum((folder / name).stat().st_size for name in demo.FILES) < 10_000_000   # a few MB in the package


def test_shipped_demo_model_has_the_current_chat_template():
    """The shipped template is the soft-switch one the library renders; when that changes, re-export the model
    (``recif-train demo --export recif_bench/demo_model``: the weights do not depend on it)."""
    template = (Path(demo.__file__).parents[1] / "templates" / "qwen3_soft_switch.jinja").read_text(encoding="utf-8")
    assert (demo.shipped_dir() / "chat_template.jinja").read_text(encoding="utf-8") == template


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped checkpoint that ``recif-eval --model demo`` will load, free to damage."""
    copy = tmp_path / "demo_model"
    shutil.copytree(demo.shipped_dir(), copy)
    monkeypatch.setattr(demo, "shipped_dir", lambda: copy)
    return copy


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "model.safetensors").unlink(), "demo model missing: no {}/model.safetensors"),
    (lambda folder: (folder / demo.MANIFEST).unlink(), "demo model missing: no {}/manifest.json"),
    (lambda folder: (folder / demo.MANIFEST).write_text("{", encoding="utf-8"), "not a valid manifest"),
    (lambda folder: (folder / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes()[:-10]),
     "demo model damaged: {}/tokenizer.json does not match its checksum"),
])
def test_missing_or_damaged_demo_is_one_error_line(shipped_copy, tmp_path, capsys, damage, message):
    damage(shipped_copy)
    assert eval_cli.main(["--model", "demo", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recif-eval: error: ")
    assert message.format(shipped_copy) in err[0] and "recif-train demo" in err[0]
    assert not (tmp_path / "out").exists()


def test_export_writes_a_checked_copy(tmp_path):
    exported = demo.export(demo.shipped_dir(), tmp_path / "out", {"built_by": "test"})
    assert demo.checked(exported) == exported
    assert [p.name for p in sorted(exported.iterdir())] == sorted([*demo.FILES, demo.MANIFEST])
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="lacks generation_config.json"):
        demo.export(tmp_path / "partial", tmp_path / "out2", {})


def _site_without_train_extra(tmp_path: Path) -> Path:
    """One site folder holding every installed distribution except the train extra's.

    Links the entries of every site-packages folder on ``sys.path`` (a venv layered on another one has
    two); a ``.pth`` file that adds a site folder is left out, as its folder's entries are linked already.
    """
    farm = tmp_path / "site-packages"   # so named, as dill (datasets' hashing) tells installed modules by it
    farm.mkdir()
    folders = [Path(sysconfig.get_paths()["purelib"])] + [Path(p) for p in sys.path if p.endswith("site-packages")]
    for folder in dict.fromkeys(f for f in folders if f.is_dir()):
        for entry in folder.iterdir():
            skip = entry.name.split("-")[0].split(".")[0].lower() in TRAIN_EXTRA or (
                entry.suffix == ".pth" and "addsitedir" in entry.read_text(encoding="utf-8", errors="replace"))
            if not skip and not (farm / entry.name).exists():
                (farm / entry.name).symlink_to(entry)
    return farm


def test_demo_evaluates_without_the_train_extra(tmp_path):
    """``recif-eval --model demo`` on an interpreter where trl, peft and accelerate are not installed."""
    script = textwrap.dedent(f"""
        import importlib.util, site, sys
        site.addsitedir({str(_site_without_train_extra(tmp_path))!r})
        assert [importlib.util.find_spec(m) for m in {TRAIN_EXTRA!r}] == [None] * 3
        from recif_bench.cli.eval import main
        code = main(["--model", "demo", "--tasks", "recif_video,recif_label_pred", "--limit", "4",
                     "--output", {str(tmp_path / "out")!r}])
        assert not [m for m in sys.modules if m.split(".")[0] in {TRAIN_EXTRA!r}]
        sys.exit(code)
    """)
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:4] == ["task", "metric", "demo", "popularity"])
    rows = [line.split()[:2] for line in lines[header + 1:header + 3]]
    assert rows == [["video", "recall@32"], ["label_pred", "auc"]]
    assert lines[header + 3].startswith("(± = standard error")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["tasks"]["video"]["n"] == 4
