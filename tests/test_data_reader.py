"""The malformed-input suite: every bad input is one clear error naming it, or a counted skip."""

import json

import pandas as pd
import pytest

from recif_bench import sid
from recif_bench.cli.eval import main as recif_eval
from recif_bench.data.reader import DataError, load_task

GOOD_SID = sid.render((1, 2, 3))
USER = [{"role": "system", "content": "sys"}, {"role": "user", "content": "历史" + sid.render((4, 5, 6))}]


def row(messages=USER, answer=GOOD_SID, **meta):
    metadata = {"answer": answer, "uid": 7, **meta} if answer is not None else {"uid": 7, **meta}
    return {"messages": json.dumps(messages, ensure_ascii=False), "metadata": json.dumps(metadata, ensure_ascii=False)}


def write_task(root, task, rows, columns=("messages", "metadata")):
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(columns)) if rows else pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    frame.to_parquet(folder / f"{task}_test.parquet")
    return folder / f"{task}_test.parquet"


def skips_of(tmp_path, task, bad_row):
    write_task(tmp_path, task, [row(), bad_row])
    samples, report = load_task(tmp_path, task)
    assert len(samples) == 1 and report.n_selected == 2 and report.n_loaded == 1
    return dict(report.skipped)


# --- whole-file problems: one error naming the file ------------------------------------------

def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        load_task(tmp_path / "nowhere", "video")


def test_data_dir_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_task(tmp_path / "f", "video")


def test_missing_task_file(tmp_path):
    with pytest.raises(DataError, match=r"video_test\.parquet: file not found"):
        load_task(tmp_path, "video")


def test_not_parquet(tmp_path):
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "video_test.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_task(tmp_path, "video")


def test_missing_column(tmp_path):
    write_task(tmp_path, "video", [{"messages": "[]"}], columns=("messages",))
    with pytest.raises(DataError, match="missing column 'metadata'"):
        load_task(tmp_path, "video")


def test_empty_parquet(tmp_path):
    write_task(tmp_path, "video", [])
    with pytest.raises(DataError, match="has no rows"):
        load_task(tmp_path, "video")


def test_all_rows_skipped_is_an_error(tmp_path):
    write_task(tmp_path, "video", [row(answer=""), row(answer="")])
    with pytest.raises(DataError, match="no usable rows.*empty_answer: 2"):
        load_task(tmp_path, "video")


def test_unknown_task(tmp_path):
    with pytest.raises(KeyError, match="unknown RecIF-Bench task 'movies'"):
        load_task(tmp_path, "movies")


# --- row problems: counted skips, as the reference skips them ---------------------------------

@pytest.mark.parametrize("task, bad, reason", [
    ("video", {"messages": "[{not json", "metadata": json.dumps({"answer": GOOD_SID})}, "unparsable_messages"),
    ("video", {"messages": json.dumps(USER), "metadata": "{oops"}, "unparsable_metadata"),
    ("video", {"messages": json.dumps(USER), "metadata": json.dumps([1, 2])}, "unparsable_metadata"),
    ("video", {"messages": "", "metadata": json.dumps({"answer": GOOD_SID})}, "empty_messages"),
    ("video", {"messages": json.dumps(USER), "metadata": json.dumps({})}, "empty_metadata"),
    ("video", row(answer=""), "empty_answer"),
    ("video", row(answer=None), "empty_answer"),
    ("video", row(answer="   "), "empty_answer"),
    ("video", row(messages=[{"content": "no role"}]), "bad_messages"),
    ("video", row(messages=[{"role": "narrator", "content": "x"}]), "bad_messages"),
    ("video", row(messages=[{"role": "user", "content": 42}]), "bad_messages"),
    ("video", row(messages=json.dumps("a string, not a list")), "unparsable_messages"),
    ("video", row(answer_pid="[1, 2"), "bad_answer_ids"),
    ("ad", row(answer_pid=["x"]), "bad_answer_ids"),
    ("label_pred", row(answer="maybe"), "answer_not_yes_no"),
])
def test_row_problems_are_counted_skips(tmp_path, task, bad, reason):
    if task == "label_pred":
        write_task(tmp_path, task, [row(answer="是"), bad])
        samples, report = load_task(tmp_path, task)
        assert report.skipped == {reason: 1} and len(samples) == 1
    else:
        assert skips_of(tmp_path, task, bad) == {reason: 1}


@pytest.mark.parametrize("answer, flag", [
    ("no sid here", "answer_without_sid"),
    ("<|sid_begin|><s_a_1><s_b_2><|sid_end|>", "malformed_answer_sid"),
    ("<|sid_begin|><s_a_1><s_b_2><s_c_9999><|sid_end|>", "malformed_answer_sid"),
    (GOOD_SID + "<|sid_begin|>junk<|sid_end|>", "malformed_answer_sid"),
])
def test_answers_without_a_valid_sid_are_kept_and_flagged(tmp_path, answer, flag):
    """The reference keeps these rows (it skips only empty or unparsable values) and scores them 0."""
    write_task(tmp_path, "video", [row(), row(answer=answer, answer_pid=[9])])
    samples, report = load_task(tmp_path, "video")
    assert len(samples) == 2 and not report.skipped and report.flagged == {flag: 1}
    assert samples[1].answer == answer and samples[1].answer_ids == [9]
    assert report.as_dict()["n_flagged"] == {flag: 1}


def test_wrong_column_type_is_counted(tmp_path):
    folder = tmp_path / "video"
    folder.mkdir()
    pd.DataFrame({"messages": [1, 2], "metadata": [json.dumps({"answer": GOOD_SID})] * 2}).to_parquet(
        folder / "video_test.parquet")
    with pytest.raises(DataError, match="unparsable_messages: 2"):
        load_task(tmp_path, "video")


# --- good inputs in every documented shape ----------------------------------------------------

def test_native_columns_and_part_lists(tmp_path):
    folder = tmp_path / "product"
    folder.mkdir()
    messages = [{"role": "user", "content": [{"type": "text", "text": "看"}, {"type": "image", "text": ""},
                                             {"type": "text", "text": "这个"}]}]
    frame = pd.DataFrame({"messages": [messages], "metadata": [{"answer": GOOD_SID + " ", "answer_iid": "[5, 0, 5, 6]"}]})
    frame.to_parquet(folder / "product_test.parquet")
    (sample,), report = load_task(tmp_path, "product")
    assert sample.messages == [{"role": "user", "content": "看这个"}]
    assert sample.answer == GOOD_SID and sample.answer_ids == [5, 6]
    assert sample.sample_id == "0" and sample.metadata["row_index"] == 0
    assert report.n_loaded == 1 and not report.skipped


def test_limit_takes_first_rows_and_sample_is_seeded(tmp_path):
    rows = [row(answer=sid.render((i, 0, 0))) for i in range(20)]
    write_task(tmp_path, "video", rows)
    first, _ = load_task(tmp_path, "video", limit=3)
    assert [s.sample_id for s in first] == ["0", "1", "2"]
    a, _ = load_task(tmp_path, "video", sample=5, seed=1)
    b, _ = load_task(tmp_path, "video", sample=5, seed=1)
    c, _ = load_task(tmp_path, "video", sample=5, seed=2)
    assert [s.sample_id for s in a] == [s.sample_id for s in b] != [s.sample_id for s in c]
    assert [int(s.sample_id) for s in a] == sorted(int(s.sample_id) for s in a)


# --- the CLI turns every input error into one line, exit code 2 -------------------------------

@pytest.mark.parametrize("setup, expected", [
    (lambda root: None, "file not found"),
    (lambda root: write_task(root, "video", [{"messages": "[]"}], columns=("messages",)), "missing column"),
    (lambda root: write_task(root, "video", []), "has no rows"),
])
def test_cli_reports_one_line(tmp_path, capsys, setup, expected):
    setup(tmp_path)
    code = recif_eval(["--tasks", "video", "--data-dir", str(tmp_path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("recif-eval: error: ") and expected in err[-1]
    assert not any("Traceback" in line for line in err)


def test_cli_rejects_unknown_task(capsys):
    assert recif_eval(["--tasks", "recif_movies"]) == 2
    assert "unknown RecIF-Bench task" in capsys.readouterr().err
