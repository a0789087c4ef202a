import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen3 with a 3 x 256 itemic vocabulary, built offline."""
    from recif_bench.models.tiny import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny") / "qwen3")


@pytest.fixture(scope="session")
def mini_dir(tmp_path_factory):
    """A small mini-RecIF world (scale 0.3), generated once per test session."""
    from recif_bench.data import mini

    return mini.generate(tmp_path_factory.mktemp("data") / "mini", seed=0, scale=0.3)
