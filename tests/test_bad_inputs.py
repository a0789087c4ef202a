"""Malformed inputs, one table row each: every one ends with ONE error line naming the input (exit 2),
no traceback, and the finished run already in the output folder byte-identical afterwards.

The CLIs run in process through their ``main(argv)``.  Every case gets a copy of one finished
popularity run (``run/``) as ``--output`` (or as the trainer's ``output_dir``), and a case that
breaks a data file breaks its own copy of the data.  Leaderboard inputs are the exception the issue
asks for: a broken summary is skipped with one ``refused`` line and the board is still built (exit 0).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from recif_bench.cli.eval import main as recif_eval
from trainers.cli import main as recif_train
from leaderboard.cli import main as recif_leaderboard


@dataclass
class World:
    """What a case may use: its folder, data copies, the tiny model, a finished run to keep intact."""

    tmp: Path
    mini: Path
    model: Path
    run: Path
    env: dict[str, str] = field(default_factory=dict)

    def data(self) -> Path:
        """A private copy of the mini-RecIF data (the video task, its catalogue, the raw tables)."""
        out = self.tmp / "data"
        if not out.exists():
            shutil.copytree(self.mini, out, ignore=shutil.ignore_patterns("item_understand", "rec_reason"))
        return out

    def model_copy(self) -> Path:
        out = self.tmp / "model"
        if not out.exists():
            shutil.copytree(self.model, out)
        return out

    def amazon(self, sequences: str | None = None, users: int | None = None) -> Path:
        """A tiny Amazon category ``toys`` in the P5 layout: sequences, datamaps, item text."""
        folder = self.tmp / "amazon" / "toys"
        folder.mkdir(parents=True, exist_ok=True)
        lines = sequences if sequences is not None else "".join(f"{u} 1 2 3 4\n" for u in range(1, 5))
        (folder / "Toys.txt").write_text(lines)
        n_users = users if users is not None else 4
        (folder / "datamaps.json").write_text(json.dumps({"id2user": {str(u): f"U{u}" for u in range(1, n_users + 1)},
                                                          "id2item": {str(i): f"A{i}" for i in range(1, 5)}}))
        (folder / "item_generative_indexing_phase_0.txt").write_text("".join(f"A{i} toy {i}\n" for i in range(1, 5)))
        return folder

    def config(self, text: str, name: str = "config.yaml") -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def judge_config(self, document: str) -> None:
        path = self.tmp / "judge.json"
        path.write_text(document)
        self.env["RECIF_JUDGE_CONFIG"] = str(path)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[World], list[str]]   # recif-eval arguments (or recif-train / recif-leaderboard, see cli)
    expect: str                          # the error line names this (file, row, key or flag)
    cli: str = "eval"


def ev(*extra: str) -> Callable[[World], list[str]]:
    """recif-eval on the mini data's video task into the finished run's folder, plus ``extra``."""
    return lambda w: ["--data-dir", str(w.mini), "--tasks", "video", "--output", str(w.run), *extra]


def on_data(change: Callable[[Path], object], *extra: str, tasks: str = "video") -> Callable[[World], list[str]]:
    """recif-eval on a copy of the data that ``change`` broke."""
    def argv(w: World) -> list[str]:
        root = w.data()
        change(root)
        return ["--data-dir", str(root), "--tasks", tasks, "--output", str(w.run), *extra]
    return argv


def on_model(change: Callable[[Path], object], *extra: str) -> Callable[[World], list[str]]:
    """recif-eval of a copy of the tiny model that ``change`` broke."""
    def argv(w: World) -> list[str]:
        folder = w.model_copy()
        change(folder)
        return ["--model", str(folder), "--data-dir", str(w.mini), "--tasks", "video", "--output", str(w.run), *extra]
    return argv


def on_amazon(change: Callable[[Path], object] = lambda folder: None, **world: object) -> Callable[[World], list[str]]:
    def argv(w: World) -> list[str]:
        folder = w.amazon(**world)
        change(folder)
        return ["--data-dir", str(folder.parent), "--tasks", "amazon_toys", "--item-ids", "keywords",
                "--output", str(w.run)]
    return argv


def with_checkpoint(kind: str, write: Callable[[Path], Path]) -> Callable[[World], list[str]]:
    def argv(w: World) -> list[str]:
        return ["--model", kind, "--model-args", f"checkpoint={write(w.tmp)}", "--data-dir", str(w.mini),
                "--tasks", "video", "--output", str(w.run)]
    return argv


def with_judge(document: str, *extra: str) -> Callable[[World], list[str]]:
    def argv(w: World) -> list[str]:
        w.judge_config(document)
        return ev(*extra)(w)
    return argv


def train(recipe: str, yaml_text: str, *extra: str) -> Callable[[World], list[str]]:
    """recif-train ``recipe`` with a config whose output_dir is the finished run's folder."""
    return lambda w: [recipe, "--config", w.config(yaml_text.replace("OUT", str(w.run))), *extra]


def board(summary: Callable[[dict], object] | str) -> Callable[[World], list[str]]:
    """recif-leaderboard over the finished run plus one run whose summary ``summary`` broke."""
    def argv(w: World) -> list[str]:
        results = w.tmp / "results"
        shutil.copytree(w.run, results / "good")
        bad = results / "bad"
        bad.mkdir()
        if isinstance(summary, str):
            (bad / "summary.json").write_text(summary)
        else:
            document = json.loads((w.run / "summary.json").read_text())
            summary(document)
            (bad / "summary.json").write_text(json.dumps(document))
        return ["runs", "--results", str(results), "--out", str(w.tmp / "site"), "--no-published"]
    return argv


# -------------------------------------------------------------------------------------------- writers

def parquet(frame_rows: list[dict] | None = None, columns: dict | None = None):
    def change(root: Path) -> None:
        import pandas as pd

        path = root / "video" / "video_test.parquet"
        frame = pd.DataFrame(columns or frame_rows or [])
        path.unlink()
        frame.to_parquet(path)
    return change


def mutate_rows(field_name: str, value):
    def change(root: Path) -> None:
        import pandas as pd

        path = root / "video" / "video_test.parquet"
        frame = pd.read_parquet(path)
        frame[field_name] = [value] * len(frame)
        frame.to_parquet(path)
    return change


def write(relative: str, content: str | bytes):
    def change(root: Path) -> None:
        path = root / relative
        if path.is_dir():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return change


def make_dir(relative: str):
    def change(root: Path) -> None:
        path = root / relative
        if path.exists():
            path.unlink()
        path.mkdir(parents=True)
    return change


def remove(relative: str):
    def change(root: Path) -> None:
        path = root / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return change


def json_edit(relative: str, edit: Callable[[dict], object]):
    def change(root: Path) -> None:
        path = root / relative
        document = json.loads(path.read_text())
        edit(document)
        path.write_text(json.dumps(document))
    return change


class _Payload:
    """Unpickling this calls os.system: the classic checkpoint attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def pickled_payload(tmp: Path) -> Path:
    import torch

    torch.save({"kind": "sasrec", "state": _Payload(tmp / "payload-ran")}, tmp / "evil.pt")
    return tmp / "evil.pt"


def garbage_file(tmp: Path) -> Path:
    (tmp / "garbage.pt").write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    return tmp / "garbage.pt"


def other_kind(tmp: Path) -> Path:
    import torch

    from recif_bench.recommenders.checkpoint import save_atomic

    return save_atomic({"kind": "lazy_decoder", "state": {"w": torch.zeros(2)}}, tmp / "other.pt")


def foreign_safetensors(tmp: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp / "plain.safetensors"))
    return tmp / "plain.safetensors"


def truncated_checkpoint(tmp: Path) -> Path:
    import torch

    from recif_bench.recommenders.checkpoint import save_atomic

    path = save_atomic({"kind": "sasrec", "state": {"w": torch.zeros(64)}}, tmp / "cut.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def auto_map(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil_qwen", auto_map={"AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"open({str(folder / 'code-ran')!r}, 'w').write('ran')\n")


def no_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (folder / name).exists():
            (folder / name).unlink()


SASREC = "output_dir: OUT\ndata: {source: recif}\nmodel: {epochs: 1}\n"
SFT = "model: nowhere\noutput_dir: OUT\ndata: {dir: nowhere, mixture: {sft_video: 1.0}}\ntrain: {max_steps: 2}\n"

CASES = [
    # ---- flags and model-args
    Case("limit-zero", ev("--limit", "0"), "--limit 0"),
    Case("limit-negative", ev("--limit", "-1"), "--limit -1"),
    Case("sample-negative", ev("--sample", "-5"), "--sample -5"),
    Case("sample-zero", ev("--sample", "0"), "--sample 0"),
    Case("codebook-negative", ev("--sid-codebook", "-1"), "--sid-codebook -1"),
    Case("levels-zero", ev("--sid-levels", "0"), "--sid-levels 0"),
    Case("seed-negative", ev("--seed", "-1"), "--seed -1"),
    Case("general-limit-zero", ev("--general", "x", "--general-limit", "0"), "--general-limit 0"),
    Case("tasks-empty", ev("--tasks", ","), "--tasks"),
    Case("tasks-path", ev("--tasks", "amazon_../../.."), "amazon_../../.."),
    Case("tasks-unknown", ev("--tasks", "videos"), "videos"),
    Case("tasks-mixed", lambda w: ["--data-dir", str(w.mini), "--tasks", "video,amazon_beauty", "--output", str(w.run)],
         "--tasks"),
    Case("model-args-typo-rec", ev("--model-args", "batch_sise=3"), "batch_sise"),
    Case("model-args-typo-hf", on_model(lambda f: None, "--model-args", "batch_sise=3"), "did you mean batch_size"),
    Case("model-args-checkpont", lambda w: ["--model", "sasrec", "--model-args", "checkpont=x", "--data-dir",
                                            str(w.mini), "--tasks", "video", "--output", str(w.run)],
         "did you mean checkpoint"),
    Case("model-args-batch-negative", on_model(lambda f: None, "--model-args", "batch_size=-1"), "batch_size=-1"),
    Case("model-args-trust-word", on_model(lambda f: None, "--model-args", "trust_remote_code=maybe"),
         "trust_remote_code"),
    Case("think-ahead-bad", on_model(lambda f: None, "--think-ahead", "x"), "think"),
    Case("constrained-openai", ev("--backend", "openai", "--model", "served", "--constrained"), "--constrained"),
    Case("judge-kind", ev("--judge", "claude:opus"), "claude"),
    Case("judge-workers-zero", ev("--judge", "openai:m@http://127.0.0.1:9/v1", "--judge-workers", "0"), "workers"),
    Case("rejudge-not-a-run", lambda w: ["--rejudge", str(w.tmp), "--judge", "openai:m@http://127.0.0.1:9/v1"],
         "summary.json does not exist"),
    Case("unknown-recommender", ev("--backend", "rec", "--model", "nosuchrec"), "nosuchrec"),
    # ---- model folders
    Case("model-auto-map", on_model(auto_map), "auto_map"),
    Case("model-no-tokenizer", on_model(no_tokenizer), "no tokenizer files"),
    Case("model-no-config", on_model(lambda f: (f / "config.json").unlink()), "no config.json"),
    Case("model-config-not-json", on_model(lambda f: (f / "config.json").write_text("{nope")), "config.json"),
    Case("model-missing", lambda w: ["--model", str(w.tmp / "nothere"), "--output", str(w.run)], "no such model folder"),
    Case("model-hub-offline", ev("--model", "nosuchorg/nosuchmodel"), "nosuchorg/nosuchmodel"),
    Case("model-is-file", lambda w: ["--model", w.config("x"), "--data-dir", str(w.mini), "--tasks", "video",
                                     "--output", str(w.run)], "a file, not a model folder"),
    Case("model-weights-garbage", on_model(lambda f: (f / "model.safetensors").write_bytes(b"\x08garbage")),
         "cannot load"),
    Case("fast-model-missing", on_model(lambda f: None, "--model-args", "fast_model=/nonexistent/fast"),
         "fast_model"),
    # ---- checkpoints
    Case("checkpoint-pickle-payload", with_checkpoint("sasrec", pickled_payload), "never loaded"),
    Case("checkpoint-garbage", with_checkpoint("sasrec", garbage_file), "garbage.pt"),
    Case("checkpoint-other-kind", with_checkpoint("sasrec", other_kind), "not a SASRec checkpoint"),
    Case("checkpoint-missing", with_checkpoint("sasrec", lambda t: t / "none.pt"), "none.pt"),
    Case("checkpoint-foreign-safetensors", with_checkpoint("sasrec", foreign_safetensors), "plain.safetensors"),
    Case("checkpoint-truncated", with_checkpoint("sasrec", truncated_checkpoint), "cut.pt"),
    Case("checkpoint-lazy-payload", with_checkpoint("lazy_decoder", pickled_payload), "evil.pt"),
    # ---- official parquet files
    Case("parquet-missing", on_data(remove("video/video_test.parquet")), "video_test.parquet"),
    Case("parquet-is-folder", on_data(make_dir("video/video_test.parquet")), "a folder, not a parquet file"),
    Case("parquet-garbage", on_data(write("video/video_test.parquet", b"PAR1garbage")), "not a readable parquet"),
    Case("parquet-no-messages", on_data(parquet(columns={"metadata": ["{}"]})), "missing column 'messages'"),
    Case("parquet-no-rows", on_data(parquet(columns={"messages": [], "metadata": []})), "no rows"),
    Case("parquet-empty-messages", on_data(mutate_rows("messages", "")), "no usable rows"),
    Case("parquet-metadata-not-json", on_data(mutate_rows("metadata", "{not json")), "no usable rows"),
    Case("parquet-no-answers", on_data(mutate_rows("metadata", json.dumps({"uid": "1"}))), "no usable rows"),
    Case("data-dir-is-file", lambda w: ["--data-dir", w.config("x"), "--tasks", "video", "--output", str(w.run)],
         "data directory is a file"),
    Case("data-dir-missing", lambda w: ["--data-dir", str(w.tmp / "no" / "data"), "--tasks", "video",
                                        "--output", str(w.run)], "not found"),
    # ---- SID -> item catalogues
    Case("sid2pid-not-json", on_data(write("sid2pid.json", "{nope")), "sid2pid.json"),
    Case("sid2pid-list", on_data(write("sid2pid.json", "[1, 2]")), "expected a JSON object"),
    Case("sid2pid-bad-key", on_data(write("sid2pid.json", '{"abc": [1]}')), "bad entry for key 'abc'"),
    Case("sid2pid-empty", on_data(write("sid2pid.json", "{}")), "no entries"),
    Case("sid2pid-binary", on_data(write("sid2pid.json", b"\xff\xfe\x00\x01")), "sid2pid.json"),
    Case("sid2pid-folder", on_data(make_dir("sid2pid.json")), "sid2pid.json"),
    Case("sid2iid-not-json", on_data(write("sid2iid.json", "{nope"), tasks="product"), "sid2iid.json"),
    # ---- Amazon sequences, datamaps, item text
    Case("amazon-truncated-line", on_amazon(sequences="1 1 2 3 4\n2 1\n"), "line 2"),
    Case("amazon-not-integers", on_amazon(sequences="1 1 2 3 x\n"), "line 1"),
    Case("amazon-duplicate-user", on_amazon(sequences="1 1 2 3\n1 2 3 4\n"), "user 1 appears twice"),
    Case("amazon-file-cut", on_amazon(sequences="1 1 2 3 4\n2 1 2 3\n", users=4), "datamaps.json lists 4"),
    Case("amazon-datamaps-not-json", on_amazon(lambda f: (f / "datamaps.json").write_text("{nope")), "datamaps.json"),
    Case("amazon-unknown-item", on_amazon(sequences="1 1 2 3 9\n2 1 2 3\n3 1 2 3\n4 1 2 3\n"), "not in datamaps.json"),
    Case("amazon-text-missing", on_amazon(lambda f: (f / "item_generative_indexing_phase_0.txt").write_text("A1 x\n")),
         "without text"),
    Case("amazon-no-text-file", on_amazon(lambda f: (f / "item_generative_indexing_phase_0.txt").unlink()),
         "no item text file"),
    Case("amazon-two-sequence-files", on_amazon(lambda f: (f / "Other.txt").write_text("1 1 2 3\n")),
         "expected one sequence file"),
    Case("amazon-unknown-category", lambda w: ["--data-dir", str(w.amazon().parent), "--tasks", "amazon_games",
                                               "--output", str(w.run)], "no Amazon category 'games'"),
    # ---- judge configs (RECIF_JUDGE_CONFIG)
    Case("judge-timeout-word", with_judge('{"timeout": "fast"}'), "timeout: expected a number"),
    Case("judge-key-typo", with_judge('{"timout": 3}'), "did you mean timeout"),
    Case("judge-workers-json-zero", with_judge('{"workers": 0}'), "workers"),
    Case("judge-not-json", with_judge("{nope"), "not valid JSON"),
    Case("judge-list", with_judge("[1]"), "JSON object"),
    Case("judge-max-tokens-negative", with_judge('{"max_tokens": -3}'), "max_tokens"),
    Case("judge-timeout-zero", with_judge('{"timeout": 0}'), "timeout"),
    Case("judge-spec-number", with_judge('{"judge": 5}'), "judge"),
    # ---- trainer YAMLs
    Case("train-data-domian", train("sasrec", "output_dir: OUT\ndata: {source: recif, domian: ad}\n"),
         "data.domian: unknown setting; did you mean domain?", "train"),
    Case("train-hidden-word", train("sasrec", SASREC.replace("epochs: 1", 'hidden: "sixty-four"')),
         "model.hidden: expected an integer", "train"),
    Case("train-max-stepz", train("sft", SFT.replace("max_steps", "max_stepz")), "did you mean max_steps", "train"),
    Case("train-max-steps-word", train("sft", SFT.replace("2}", "ten}")), "train.max_steps: expected an integer",
         "train"),
    Case("train-top-typo", train("sasrec", SASREC.replace("output_dir", "output_dri")), "did you mean output_dir",
         "train"),
    Case("train-yaml-syntax", train("sasrec", "output_dir: [unclosed\n"), "not valid YAML", "train"),
    Case("train-config-missing", lambda w: ["sasrec", "--config", str(w.tmp / "none.yaml")], "none.yaml", "train"),
    Case("train-top-list", train("sasrec", "- 1\n- 2\n"), "mapping", "train"),
    Case("train-set-no-equals", train("sasrec", SASREC, "--set", "model.epochs"), "key=value", "train"),
    Case("train-source-web", train("sasrec", SASREC.replace("recif", "web")), "data.source", "train"),
    Case("train-model-loss", train("sasrec", SASREC.replace("epochs: 1", "loss: xyz")), "model.loss", "train"),
    Case("train-pscore-fraction", train("pscore", "output_dir: OUT\ntrain: {valid_fraction: 2}\n"),
         "valid_fraction", "train"),
    Case("train-section-not-mapping", train("sft", SFT.replace("train: {max_steps: 2}", "train: 3")), "train",
         "train"),
    Case("train-pipeline-typo", train("pipeline", "name: x\noutput_dir: OUT\nstagez: []\n"), "did you mean stages",
         "train"),
    Case("train-think-data-word", train("think-data", "model: m\noutput_dir: OUT\ntop_k: many\n"),
         "top_k: expected an integer", "train"),
    Case("train-lazy-heads-word", train("lazy-decoder", "output_dir: OUT\nmodel: {heads: many}\n"), "model.heads",
         "train"),
    # ---- leaderboard summaries (the broken run is skipped with one line; the board is still built)
    Case("board-metric-word", board(lambda s: s["tasks"]["video"]["metrics"].update({"recall@32": "high"})),
         "not a number", "board"),
    Case("board-task-string", board(lambda s: s["tasks"].update({"video": "done"})), "tasks.video", "board"),
    Case("board-not-json", board("{nope"), "unreadable summary", "board"),
    Case("board-wrong-schema", board(lambda s: s.update({"schema": "other/1"})), "unknown schema", "board"),
    Case("board-headline-word", board(lambda s: s["tasks"]["video"]["headline"].update({"value": "good"})),
         "headline.value", "board"),
    Case("board-no-tasks", board(lambda s: s.pop("tasks")), "no 'tasks' object", "board"),
    Case("board-metrics-list", board(lambda s: s["tasks"]["video"].update({"metrics": [1]})), "metrics", "board"),
]


@pytest.fixture(scope="module")
def finished_run(mini_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert recif_eval(["--model", "popularity", "--data-dir", str(mini_dir), "--tasks", "video", "--limit", "3",
                       "--output", str(out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(case, finished_run, mini_dir, tiny_model_dir, tmp_path,
                                                 monkeypatch, capsys):
    world = World(tmp_path, mini_dir, tiny_model_dir, tmp_path / "run")
    shutil.copytree(finished_run, world.run)
    before = snapshot(world.run)
    monkeypatch.setenv("RECIF_BENCH_CACHE", str(tmp_path / "cache"))
    argv = case.argv(world)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    main = {"eval": recif_eval, "train": recif_train, "board": recif_leaderboard}[case.cli]
    try:
        code = main(argv)
    except SystemExit as exc:   # argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    if case.cli == "board":
        refused = [line for line in lines if "refused" in line]
        assert code == 0 and len(refused) == 1 and case.expect in refused[0] and "bad" in refused[0], err
        assert "1 run(s)" in err    # the good run is still on the board
    else:
        assert code == 2, err
        assert len(lines) == 1 and "error" in lines[0] and case.expect in lines[0], err
    assert snapshot(world.run) == before                                  # the finished run is byte-identical
    assert not (tmp_path / "payload-ran").exists() and not (tmp_path / "model" / "code-ran").exists()
    assert not list(world.run.parent.glob(".run.partial"))               # no half-written run left behind
    assert sorted(p.name for p in world.run.parent.glob("*run*")) in (["run"], [".run.lock", "run"])
