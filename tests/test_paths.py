"""Every cache recif-bench writes lives under the one root a user (or CI) can move with RECIF_BENCH_CACHE."""

from pathlib import Path

from recif_bench import identity, paths
from recif_bench.itemic import embed
from recif_bench.judges import cache as judge_cache
from recif_bench.models import demo


def test_every_cache_follows_the_one_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "root"))
    for folder in (embed.cache_dir(), identity.cache_file(), judge_cache.default_cache_dir(), demo.cache_dir()):
        assert Path(folder).is_relative_to(tmp_path / "root"), folder


def test_without_the_variable_the_root_is_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "xdg" / "recif_bench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "recif_bench"
