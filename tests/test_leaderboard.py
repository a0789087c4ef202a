"""recif-leaderboard: collecting runs, data grouping, published numbers, tables, plots and the HTML page."""

import csv
import io
import json
import re
import shutil

import numpy as np

import pytest

from leaderboard.cli import main as leaderboard
from leaderboard.collect import collect, group_by_data
from leaderboard.published import PublishedError, load_file, load_published
from leaderboard.tables import build_tables, to_csv, to_latex, to_markdown
from leaderboard_fixtures import task_entry, write_run

RECIF = ["item_understand", "video", "ad", "product", "label_pred", "label_cond", "interactive", "rec_reason"]


def full_run(root, name, values, **kwargs):
    """A run of all 8 tasks; ``values`` maps task -> headline value (None = judge not configured)."""
    tasks = {t: task_entry(t, values.get(t), judge={"kind": "none", "calls": 0, "failed": 0}
                           if t in ("item_understand", "rec_reason") and values.get(t) is None else None)
             for t in RECIF}
    return write_run(root, name, tasks, **kwargs)


def board(root, published=()):
    groups = group_by_data(collect([root]).runs)
    return groups, build_tables(groups, list(published))


def column(table, label):
    return [c.label for c in table.columns].index(label)


def shown(table, task, label, metric=None):
    from leaderboard.tables import format_value

    row = next(i for i, r in enumerate(table.rows) if r.task == task and metric in (None, r.metric))
    cell = table.cells[row][column(table, label)]
    return format_value(cell.value, cell)


# ---------------------------------------------------------------- collecting


def test_refuses_unknown_schema_and_broken_json_but_keeps_good_runs(tmp_path):
    full_run(tmp_path, "good", {"video": 0.1})
    future = write_run(tmp_path, "future", {"video": task_entry("video", 0.2)})
    doc = json.loads((future / "summary.json").read_text())
    doc["schema"] = "recif-bench/summary/2"
    (future / "summary.json").write_text(json.dumps(doc))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    (tmp_path / "notarun").mkdir()                       # no summary.json: simply not a run
    (tmp_path / "stock" / "org__model").mkdir(parents=True)
    (tmp_path / "stock" / "org__model" / "results_2026-01-01T00-00-00.json").write_text("{}")
    got = collect([tmp_path])
    assert [r.name for r in got.runs] == ["good"]
    assert len(got.refused) == 3
    assert any("stock" in m and "without a summary.json" in m for m in got.refused)
    future_msg = next(m for m in got.refused if "future" in m)
    assert "recif-bench/summary/2" in future_msg and "recif-bench/summary/1" in future_msg
    assert any("broken" in m and "unreadable" in m for m in got.refused)


def test_runs_on_different_data_are_never_merged(tmp_path):
    full_run(tmp_path, "a", {"video": 0.10}, model="model-a")
    full_run(tmp_path, "b", {"video": 0.20}, model="model-b", fingerprints={"video": "other-video-file"})
    groups, tables = board(tmp_path)
    assert sorted(len(g.runs) for g in groups) == [1, 1]
    recif = [t for t in tables if t.kind == "recif_bench"]
    assert len(recif) == 2
    for table in recif:
        assert len(table.columns) == 1                       # one run per table, never side by side
        assert any("Not merged" in note for note in table.notes)
    assert len({t.key for t in recif}) == 2 and len({t.title for t in recif}) == 2


def test_amazon_runs_of_different_task_subsets_share_their_data(tmp_path):
    write_run(tmp_path, "one", {"amazon_beauty": task_entry("amazon_beauty", 0.1)}, data_name="amazon-beauty")
    write_run(tmp_path, "two", {"amazon_beauty": task_entry("amazon_beauty", 0.2),
                                "amazon_sports": task_entry("amazon_sports", 0.3)}, data_name="amazon-beauty+sports")
    write_run(tmp_path, "other", {"amazon_beauty": task_entry("amazon_beauty", 0.4)}, data_name="amazon-beauty",
              fingerprints={"amazon_beauty": "another-split"})
    groups = group_by_data(collect([tmp_path]).runs)
    assert sorted([r.name for r in g.runs] for g in groups) == [["one", "two"], ["other"]]
    assert {g.label for g in groups} == {"amazon-beauty / amazon-beauty+sports", "amazon-beauty"}


def test_run_with_missing_tasks_shares_the_table_of_its_data(tmp_path):
    full_run(tmp_path, "full", {"video": 0.1, "ad": 0.2, "product": 0.3, "label_pred": 0.6,
                                "label_cond": 0.4, "interactive": 0.5})
    write_run(tmp_path, "partial", {"video": task_entry("video", 0.3), "ad": task_entry("ad", 0.1)},
              created="2026-01-02T00:00:00+00:00")
    groups, tables = board(tmp_path)
    assert len(groups) == 1                                  # same files for the tasks both ran
    (table,) = tables
    assert [c.label for c in table.columns] == ["full", "partial"]
    assert shown(table, "video", "partial") == "0.3000"
    assert shown(table, "product", "partial") == "n/a"
    assert shown(table, "item_understand", "full") == "no judge"
    averages = {a.label.split()[0]: table.average_values(a) for a in table.averages}
    assert averages["L1"][0] == pytest.approx((0.1 + 0.2 + 0.3 + 0.6) / 4)
    assert averages["L1"][1] is None                         # partial lacks product and label_pred
    assert averages["L2"] == [pytest.approx(0.45), None]
    assert table.best(table.row_values(1)) == {1}            # video: partial 0.3 beats 0.1


def test_failed_and_partly_failed_judge(tmp_path):
    tasks = {t: task_entry(t, 0.1) for t in RECIF}
    tasks["item_understand"] = task_entry("item_understand", None, judge={"kind": "openai", "calls": 12, "failed": 12})
    tasks["rec_reason"] = task_entry("rec_reason", 3.5, judge={"kind": "openai", "calls": 10, "failed": 2})
    write_run(tmp_path, "judged", tasks)
    _, (table,) = board(tmp_path)
    assert shown(table, "item_understand", "judged") == "failed"
    assert shown(table, "rec_reason", "judged") == "3.5000*"
    markdown = to_markdown(table)
    assert "judge failed on 12 of 12 calls" in markdown
    assert "judged / Rec. Explanation: judge failed on 2 of 10 calls" in markdown


def test_settings_show_in_column_labels(tmp_path):
    full_run(tmp_path, "plain", {"video": 0.1}, model="m")
    full_run(tmp_path, "think", {"video": 0.2}, model="m", settings={"thinking": True, "constrained": True})
    _, (table,) = board(tmp_path)
    assert [c.label for c in table.columns] == ["m", "m (thinking, constrained)"]


# ---------------------------------------------------------------- published numbers


def test_published_files_hold_the_papers_numbers_with_sources():
    sets = {p.key: p for p in load_published()}
    recif = sets["recif_bench_openonerec"]
    assert recif.table == "recif_bench" and [m.name for m in recif.models] == [
        "SASRec", "TIGER", "LC-Rec", "OneRec-1.7B", "OneRec-8B", "OneRec-1.7B-Pro", "OneRec-8B-Pro"]
    pro8 = next(m for m in recif.models if m.name == "OneRec-8B-Pro")
    assert pro8.values["rec_reason"] == {"llm_score": 4.0381}
    assert pro8.values["item_understand"] == {"macro_wip_double_weighted_f1": 0.3209}
    assert next(m for m in recif.models if m.name == "SASRec").values["interactive"] == {"recall@32": None}
    amazon = sets["amazon_openonerec"]
    assert len(amazon.rows()) == 10 and {m for _, m in amazon.rows()} == {"recall@10"}
    assert next(m for m in amazon.models if m.name == "SASRec").values["amazon_pet_supplies"]["recall@10"] == 0.0607
    think = next(m for m in sets["amazon_onerec_think"].models if m.name == "OneRec-Think")
    assert think.values["amazon_toys"] == {"recall@5": 0.0579, "recall@10": 0.0797, "ndcg@5": 0.0412, "ndcg@10": 0.0482}
    assert sets["amazon_tiger"].models[1].values["amazon_beauty"]["recall@10"] == 0.0648
    assert all(m.source for s in sets.values() for m in s.models)


def test_bad_published_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: t\ntable: recif_bench\ndata: recif-bench\nsource: s\n"
                   "models:\n  - name: X\n    values: {video: high}\n")
    with pytest.raises(PublishedError, match=r"bad.yaml: X/video: 'high' is not a number"):
        load_file(bad)


def test_best_is_bold_among_comparable_columns_only(tmp_path):
    published = load_published()
    official = tmp_path / "official"
    full_run(official, "ours", {"video": 0.05, "ad": 0.01, "product": 0.02, "label_pred": 0.60}, data_name="recif-bench")
    _, tables = board(official, published)
    table = next(t for t in tables if t.key == "recif_bench-recif-bench")
    markdown = to_markdown(table)
    assert "| Short Video Rec | Recall@32 | **0.0500** | 0.0119 |" in markdown      # ours beats the paper
    assert "| Ad Rec | Recall@32 | 0.0100 |" in markdown and "**0.0964**" in markdown   # OneRec-8B-Pro wins
    l1 = next(a for a in table.averages if a.label.startswith("L1"))
    assert table.average_values(l1)[0] == pytest.approx((0.05 + 0.01 + 0.02 + 0.60) / 4)
    assert not [t for t in tables if t.key == "recif_bench-reported"]   # the paper sits in our table

    mini = tmp_path / "mini"
    full_run(mini, "ours", {"video": 0.01, "ad": 0.01, "product": 0.01, "label_pred": 0.5})
    _, tables = board(mini, published)
    table = next(t for t in tables if t.key == "recif_bench-mini-recif")
    assert all(not c.comparable for c in table.columns if c.reported)
    assert "**" not in to_markdown(table).split("\n\n")[1]    # no bold: one comparable column only
    assert any("not comparable" in n for n in table.notes)
    assert any(t.key == "recif_bench-reported" for t in tables)   # the paper's own table still shown


def test_amazon_tasks_by_prefix(tmp_path):
    write_run(tmp_path, "pop-amazon", {"amazon_beauty": task_entry("amazon_beauty", 0.1),
                                       "amazon_sports": task_entry("amazon_sports", 0.02),
                                       "amazon_garden": task_entry("amazon_garden", 0.03)},
              model="popularity", data_name="amazon")
    _, tables = board(tmp_path, load_published())
    amazon = next(t for t in tables if t.kind == "amazon")
    labels = [r.label for r in amazon.rows]
    assert labels[:2] == ["Baby", "Beauty"] and "Garden" in labels and len(labels) == 11
    assert shown(amazon, "amazon_beauty", "popularity") == "0.1000"
    assert amazon.best(amazon.row_values(labels.index("Beauty"))) == {0}            # 0.1 > 0.0924
    assert amazon.best(amazon.row_values(labels.index("Sports"))) == {len(amazon.columns) - 1}   # OneRec 0.0547
    assert amazon.average_values(amazon.averages[0])[0] is None   # 3 of 11 domains: no average
    think = next(t for t in tables if t.kind == "onerec_think")
    assert think.columns[0].label == "popularity" and shown(think, "amazon_beauty", "popularity", "recall@10") == "0.1000"
    assert shown(think, "amazon_beauty", "popularity", "recall@5") == "n/a"


# ---------------------------------------------------------------- renderings


def test_csv_and_latex(tmp_path):
    full_run(tmp_path, "a_b", {"video": 0.25, "ad": 0.5})
    full_run(tmp_path, "c", {"video": 0.75, "ad": 0.125})
    _, (table,) = board(tmp_path)
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows[0] == ["task", "row", "metric", "a_b", "c"]
    video = next(r for r in rows if r[0] == "video")
    assert [float(video[3]), float(video[4])] == [0.25, 0.75]
    assert next(r for r in rows if r[0] == "rec_reason")[3:] == ["no judge", "no judge"]
    latex = to_latex(table)
    assert "a\\_b" in latex and "\\textbf{0.7500}" in latex and "\\textbf{0.5000}" in latex
    assert latex.count("\\begin{tabular}{llrr}") == 1


# ---------------------------------------------------------------- command line


def pipeline_runs(root):
    for index, (stage, value) in enumerate([("stage1", 0.05), ("stage2", 0.10), ("sft", 0.30)]):
        full_run(root, f"demo-{stage}", {"video": value, "ad": value, "label_pred": 0.5 + value}, model="demo",
                 run_extra={"pipeline": "demo"}, model_extra={"stage": stage, "stage_index": index},
                 created=f"2026-01-0{3 - index}T00:00:00+00:00")   # created order reversed: stage_index wins


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The board of a baseline and a three-stage pipeline, built once through the CLI."""
    root = tmp_path_factory.mktemp("board")
    results = root / "results"
    full_run(results, "baseline", {"video": 0.1, "ad": 0.2})
    pipeline_runs(results)
    out = root / "site"
    assert leaderboard(["--results", str(results), "--out", str(out)]) == 0
    return results, out


def test_cli_writes_tables_plots_and_a_self_contained_page(built_site, capsys):
    results, out = built_site
    assert leaderboard(["table", "--results", str(results), "--out", str(out / "again")]) == 0
    printed = capsys.readouterr().out
    assert "### RecIF-Bench — mini-recif" in printed and "| Short Video Rec | Recall@32 |" in printed
    assert "| baseline | demo (sft) | demo (stage2) | demo (stage1) | SASRec (reported) |" in printed   # by created
    for suffix in ("md", "csv", "tex"):
        assert (out / "tables" / f"recif_bench-mini-recif.{suffix}").stat().st_size > 0
    for stem in ("recif_bench-mini-recif-radar", "recif_bench-mini-recif-layers", "recif_bench-reported-radar",
                 "amazon-reported-domains", "stages-demo-mini-recif"):
        for suffix in ("png", "svg"):
            assert (out / "plots" / f"{stem}.{suffix}").stat().st_size > 1000, stem
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 6
    for external in ('src="http', "<link", "<script src", "url(http"):
        assert external not in page
    from leaderboard.plots import pipelines

    ((name, _, runs),) = pipelines(group_by_data(collect([results]).runs))
    assert name == "demo" and [r.stage for r in runs] == ["stage1", "stage2", "sft"]


def chromium(*args, profile):
    import subprocess

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_renders_in_headless_chromium(built_site, tmp_path):
    """The page from the file system: tables and every plot drawn, run details open from a link."""
    from PIL import Image

    _, out = built_site
    page = (out / "index.html").resolve().as_uri()
    results = collect([built_site[0]]).runs
    from leaderboard.html import run_anchor

    anchor = run_anchor(next(r for r in results if r.name == "demo-sft"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", f"{page}#{anchor}", profile=tmp_path / "p1")
    assert 'data-plots-drawn="6/6"' in dom                  # every embedded PNG decoded by the browser
    assert "RecIF-Bench — mini-recif" in dom and "OneRec-8B-Pro" in dom and "0.3000" in dom
    assert re.search(rf'<details class="run" id="{anchor}" open', dom)   # the linked run's details opened
    shot = tmp_path / "shot.png"
    chromium("--window-size=1200,1600", f"--screenshot={shot}", page, profile=tmp_path / "p2")
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[:2] == (1600, 1200)
    assert (image.min(axis=2) < 100).mean() > 0.005         # dark pixels: text and table lines
    saturated = (image.max(axis=2) - image.min(axis=2)) > 80
    assert saturated.mean() > 0.002                          # coloured pixels: a plot is on screen


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert leaderboard(["table", "--results", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"recif-leaderboard: {tmp_path / 'nowhere'}: no such results folder"]
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "x.yaml").write_text("title: t\n")
    (tmp_path / "results").mkdir()
    assert leaderboard(["table", "--results", str(tmp_path / "results"), "--published", str(tmp_path / "pub")]) == 2
    assert "x.yaml: missing table, data, source, models" in capsys.readouterr().err


def test_on_a_real_recif_eval_run(mini_dir, tmp_path, monkeypatch):
    """recif-eval (popularity, the README's main command) then recif-leaderboard on its results folder."""
    from recif_bench.cli.eval import main as recif_eval

    monkeypatch.delenv("RECIF_JUDGE", raising=False)   # the README command runs without a judge

    results = tmp_path / "results"
    assert recif_eval(["--data-dir", str(mini_dir), "--limit", "5", "--output", str(results / "pop"),
                       "--pipeline", "baselines", "--stage", "popularity"]) == 0
    assert leaderboard(["--results", str(results), "--out", str(tmp_path / "site"), "--no-published"]) == 0
    table = (tmp_path / "site" / "tables" / "recif_bench-mini-recif.csv").read_text()
    video = next(r for r in csv.reader(io.StringIO(table)) if r[0] == "video")
    summary = json.loads((results / "pop" / "summary.json").read_text())
    assert float(video[3]) == pytest.approx(summary["tasks"]["video"]["headline"]["value"])
    assert (summary["run"]["pipeline"], summary["model"]["stage"]) == ("baselines", "popularity")
    for stem in ("recif_bench-mini-recif-radar", "stages-baselines-mini-recif"):
        assert (tmp_path / "site" / "plots" / f"{stem}.png").exists()
