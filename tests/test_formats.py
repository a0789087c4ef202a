"""Formats written once: the itemic code token (``recif_bench.sid``), the raw RecIF table file names
(``data.training.RAW_FILES``), and the spellings of a boolean option (``recif_bench.options.as_bool``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recif_bench import sid
from recif_bench.data.training import RAW_FILES
from recif_bench.models.openai_backend import OpenAIRecLM
from recif_bench.models.trie import SidTrie
from recif_bench.options import as_bool

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "recif_bench", ROOT / "trainers", ROOT / "leaderboard", ROOT / "tasks"]


def code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant of a module that is not a docstring (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def spelled(needles: list[str], allowed: Path) -> list[str]:
    """``file:line`` of each string constant holding one of ``needles``, outside the one file allowed to."""
    found = []
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            if path != allowed:
                found += [f"{path.relative_to(ROOT)}:{line}" for line, text in code_strings(path)
                          if any(needle in text for needle in needles)]
    return found


def test_the_code_token_is_spelled_only_in_sid():
    assert spelled(["<s_"], ROOT / "recif_bench" / "sid.py") == []


def test_the_raw_table_names_are_spelled_only_in_raw_files():
    assert spelled(list(RAW_FILES.values()), ROOT / "recif_bench" / "data" / "training.py") == []


def test_code_tokens_render_parse_and_feed_the_trie_alike():
    fmt = sid.SidFormat(3, 16)
    assert sid.code_token(1, 7) == "<s_b_7>" == fmt.code_tokens()[16 + 7]
    assert sid.render_body((3, 7, 15), fmt) == "".join(sid.code_token(level, c) for level, c in enumerate((3, 7, 15)))
    assert sid.CODE_TOKEN.fullmatch("<s_h_8191>") and not sid.CODE_TOKEN.fullmatch("<s_i_1>")
    token_ids = {token: i for i, token in enumerate(fmt.code_tokens())}
    trie = SidTrie([(3, 7, 15)], token_ids, fmt, end_ids=[-1])
    assert trie.allowed(()) == [3] and trie.allowed((3,)) == [16 + 7] and trie.allowed((3, 23)) == [32 + 15]


@pytest.mark.parametrize("value, expected", [(True, True), ("on", True), ("Yes", True), (" 1 ", True), ("TRUE", True),
                                             (False, False), ("off", False), ("no", False), ("0", False),
                                             ("False", False), (None, False), ("", False)])
def test_boolean_spellings(value, expected):
    assert as_bool(value) is expected


def test_a_word_that_is_no_boolean_is_an_error_naming_the_option():
    with pytest.raises(ValueError, match=r"constrained='maybe' is not a boolean"):
        as_bool("maybe", "constrained")


def test_every_backend_reads_booleans_the_same_way():
    model = OpenAIRecLM(model="m", base_url="http://127.0.0.1:9/v1", thinking="on", beam_search="yes")
    assert model.thinking is True and model.beam_search is True
    with pytest.raises(ValueError, match="beam_search"):
        OpenAIRecLM(model="m", base_url="http://127.0.0.1:9/v1", beam_search="sometimes")
