"""One configs home (``configs/``, installed as ``recif_bench_configs``): recipe configs by name or path from any
folder, the files they ship with, every file covered by the package data, and the published numbers read from it."""

from __future__ import annotations

import configparser
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leaderboard.published import default_dir
from recif_bench_configs import HOME
from trainers.common.config import ConfigError, find, load, shipped_file, shipped_names

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_config_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = HOME / "train" / "tiny_sft.yaml"
    assert find("tiny_sft") == find("tiny_sft.yaml") == find("configs/train/tiny_sft.yaml") == shipped
    assert load("tiny_sft", ["train.max_steps=7"])["train"]["max_steps"] == 7


def test_a_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny_sft.yaml").write_text("output_dir: mine\n")
    assert load("tiny_sft.yaml")["output_dir"] == "mine"
    assert load(str(tmp_path / "tiny_sft.yaml"))["output_dir"] == "mine"


def test_an_unknown_config_names_itself_and_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^no_such: config file not found.*shipped: .*tiny_sft"):
        find("no_such")
    with pytest.raises(ConfigError, match="sub/tiny_sft.yaml: config file not found"):
        find("sub/tiny_sft.yaml")


def test_recif_train_reads_a_config_by_name_and_refuses_an_unknown_one(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "trainers.cli", "sft", "--config", "no_such"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no_such" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "trainers.cli", "sft", "--config", "tiny_sft"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "runs/tiny/stage2" in missing.stderr     # the config was read: its model


def test_what_the_shipped_configs_name_is_shipped():
    names = set(shipped_names())
    assert {"tiny_sft", "qwen3_1.7b_sft", "demo_sft", "mini"} <= names
    for path in sorted((HOME / "train").glob("*.yaml")):
        config = yaml.safe_load(path.read_text("utf-8")) or {}
        for stage in config.get("stages") or []:
            assert find(stage["config"]).parent == HOME / "train", (path.name, stage)
        prompts = (config.get("data") or {}).get("prompts") or []
        leak_prompts = (config.get("eval") or {}).get("leak_prompts") or []
        for entry in [*prompts, *leak_prompts]:
            if Path(entry["path"]).parent == Path("."):          # a bare file name: one shipped beside the configs
                assert shipped_file(entry["path"]).is_file(), (path.name, entry)


def test_the_package_data_covers_every_file_of_the_home():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["recif_bench_configs"].split(",")]
    files = [p.relative_to(HOME).as_posix() for p in HOME.rglob("*")
             if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts]
    assert len(files) > 40
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


def test_the_leaderboard_reads_the_published_numbers_from_the_home():
    assert default_dir() == HOME / "published" and any(default_dir().glob("*.yaml"))
