"""CI's first step (.ci/first_run.sh): the README's first command is read, not retyped, and its table is checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from recif_bench.cli.demo_eval import compare

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def first_run():
    spec = importlib.util.spec_from_file_location("first_run", ROOT / ".ci" / "first_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_first_command_is_the_base_install_demo(first_run):
    command = first_run.first_command((ROOT / "README.md").read_text(encoding="utf-8"))
    steps = [step.strip() for step in command.split("#")[0].split("&&")]
    assert steps == ["pip install torch==2.13.0", "pip install .", "recif-eval --model demo"]


def test_first_command_is_the_first_line_of_the_first_bash_block(first_run):
    readme = "# title\n\n```python\nprint('not this')\n```\n\ntext\n\n```bash\n\n  echo one   # first\necho two\n```\n"
    assert first_run.first_command(readme) == "echo one   # first"
    with pytest.raises(ValueError, match="no ```bash block"):
        first_run.first_command("# title\n```sh\necho x\n```\n")
    with pytest.raises(ValueError, match="empty"):
        first_run.first_command("```bash\n\n```\n```bash\necho later\n```\n")


def _summary(path: Path, values: dict[str, float | None]) -> Path:
    tasks = {task: {"headline": {"metric": "recall@32", "value": value}} for task, value in values.items()}
    path.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
    return path


def test_table_check_reads_what_the_demo_prints(first_run, tmp_path):
    demo = _summary(tmp_path / "demo.json", {"video": 0.3246, "ad": 0.3658})
    popularity = _summary(tmp_path / "pop.json", {"video": 0.2008, "ad": 0.3367})
    log = "recif-eval: data mini-RecIF\nprogress 100%\n" + compare({"demo": demo, "popularity": popularity}) + "\n"
    rows = first_run.demo_table(log)
    assert [(r["task"], r["demo"], r["popularity"]) for r in rows] == [
        ("video", "0.3246", "0.2008"), ("ad", "0.3658", "0.3367")]
    (tmp_path / "ok.log").write_text(log, encoding="utf-8")
    readme = tmp_path / "README.md"
    stated = compare({"demo": demo, "popularity": popularity})
    readme.write_text(f"```bash\nrecif-eval --model demo\n```\n\n```text\n{stated}\n```\n", encoding="utf-8")
    assert first_run.main(["check", str(tmp_path / "ok.log"), str(readme)]) == 0


def test_table_check_compares_the_scores_with_the_readme(first_run, tmp_path, capsys):
    def table(video: float, ad: float) -> str:
        return compare({"demo": _summary(tmp_path / "demo.json", {"video": video, "ad": ad}),
                        "popularity": _summary(tmp_path / "pop.json", {"video": 0.2, "ad": 0.3})})

    (tmp_path / "README.md").write_text(f"```text\n{table(0.3246, 0.3658)}\n```\n", encoding="utf-8")
    (tmp_path / "close.log").write_text(table(0.3246 + first_run.TOLERANCE / 2, 0.3658), encoding="utf-8")
    (tmp_path / "off.log").write_text(table(0.3246, 0.3658 - 2 * first_run.TOLERANCE), encoding="utf-8")
    (tmp_path / "short.log").write_text(table(0.3246, 0.3658).splitlines()[0] + "\n" +
                                        table(0.3246, 0.3658).splitlines()[1], encoding="utf-8")
    readme = str(tmp_path / "README.md")
    assert first_run.main(["check", str(tmp_path / "close.log"), readme]) == 0
    assert first_run.main(["check", str(tmp_path / "off.log"), readme]) == 1
    assert "ad demo 0.3258 (README 0.3658)" in capsys.readouterr().err
    assert first_run.main(["check", str(tmp_path / "short.log"), readme]) == 1
    assert "ad not printed" in capsys.readouterr().err


def test_table_check_fails_without_a_score_in_every_cell(first_run, tmp_path, capsys):
    demo = _summary(tmp_path / "demo.json", {"video": 0.3, "ad": None})
    popularity = _summary(tmp_path / "pop.json", {"video": 0.2, "ad": 0.3})
    log = compare({"demo": demo, "popularity": popularity})
    assert "--" in log and first_run.demo_table(log) == []
    (tmp_path / "broken.log").write_text(log, encoding="utf-8")
    (tmp_path / "none.log").write_text("recif-eval: error: something\n", encoding="utf-8")
    assert first_run.main(["check", str(tmp_path / "broken.log"), str(tmp_path / "broken.log")]) == 1
    assert first_run.main(["check", str(tmp_path / "none.log"), str(tmp_path / "broken.log")]) == 1
    assert capsys.readouterr().err.count("no demo-vs-popularity table") == 2


FAKE_COMMAND = '''\
import os, site, sys
from pathlib import Path
home = Path(os.environ["HOME"])
assert not any(home.iterdir()), "HOME is not empty"
assert os.environ["XDG_CACHE_HOME"].startswith(str(home))
assert "RECIF_BENCH_CACHE" not in os.environ and "HF_HOME" not in os.environ
assert sys.prefix != sys.base_prefix and Path(sys.prefix, "bin", "pip").exists(), "not the fresh venv"
assert not any("dist-packages" in p or p.startswith(sys.base_prefix + "/lib/python3") and "site-packages" in p
               for p in sys.path), "system site packages visible"
package = Path(site.getsitepackages()[0], "recif_bench")
package.mkdir()
(package / "__init__.py").write_text("")
print("task             metric             demo  popularity")
print("video            recall@32        0.3246      0.2008")
'''


def test_first_run_script_isolates_the_command(tmp_path):
    """The CI step runs the README's command in a fresh venv, an empty HOME, no project cache variable."""
    import os
    import shutil
    import subprocess

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / ".ci", repo / ".ci")
    (repo / "fake_command.py").write_text(FAKE_COMMAND, encoding="utf-8")
    (repo / "README.md").write_text("# x\n\n```bash\npython fake_command.py   # the first command\n```\n\n```text\n"
                                    "task  metric  demo  popularity\nvideo  recall@32  0.3300  0.2008\n```\n",
                                    encoding="utf-8")
    env = {**os.environ, "RECIF_BENCH_CACHE": str(tmp_path / "warm"), "HF_HOME": str(tmp_path / "hf"),
           "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(repo / ".ci" / "first_run.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "first run: exit 0" in done.stdout and "demo table found (1 tasks)" in done.stdout
    assert "recif_bench imported from the venv" in done.stdout
    assert not list(tmp_path.glob("recif-first-run.*")), "the temporary venv was left behind"

    (repo / "README.md").write_text("```bash\npython -c 'print(1)'\n```\n", encoding="utf-8")
    failed = subprocess.run(["bash", str(repo / ".ci" / "first_run.sh")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == 1 and "no demo-vs-popularity table" in failed.stderr


def test_table_check_reads_values_with_their_errors_and_difference(first_run):
    log = ("task             metric                    demo        popularity  demo - popularity [95%]\n"
           "video            recall@32    0.3246 ±0.0120    0.2008 ±0.0110  +0.1238 [+0.0900, +0.1500]*\n"
           "ad               recall@32    0.3658 ±0.0300    0.3367 ±0.0310  +0.0291 [-0.0100, +0.0700]\n"
           "(± = standard error, bootstrap over users; * = the 95% interval excludes 0)\n")
    rows = first_run.demo_table(log)
    assert [(r["task"], r["demo"], r["popularity"]) for r in rows] == [
        ("video", "0.3246", "0.2008"), ("ad", "0.3658", "0.3367")]
