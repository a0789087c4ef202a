"""Leaderboard figures tell the truth: the radar scale (best value reported or run, absent is not 0), layer panels
that never mix metrics or show nothing, and captions in words carried by the image files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leaderboard.collect import collect, group_by_data
from leaderboard.html import caption
from leaderboard.plots import layer_bars, layer_panels, plotted_columns, radar, radar_values
from leaderboard.published import load_file
from leaderboard.tables import build_tables
from leaderboard_fixtures import task_entry, write_run

PAPER = """title: a paper's table
table: recif_bench
data: recif-bench
source: the paper
models:
  - name: Big
    values: {video: 0.2, label_pred: 0.8, item_understand: null, rec_reason: 4.0}
"""


@pytest.fixture
def table(tmp_path):
    """One popularity run on mini-RecIF (text tasks unsupported) beside a reported model on other data."""
    tasks = {"video": task_entry("video", 0.05), "label_pred": task_entry("label_pred", 0.4),
             "ad": task_entry("ad", 0.03),
             "item_understand": task_entry("item_understand", None, supported=False),
             "rec_reason": task_entry("rec_reason", None, supported=False)}
    write_run(tmp_path / "results", "popularity", tasks)
    (tmp_path / "paper.yaml").write_text(PAPER)
    groups = group_by_data(collect([tmp_path / "results"]).runs)
    (recif,) = [t for t in build_tables(groups, [load_file(tmp_path / "paper.yaml")]) if t.kind == "recif_bench" and t.group is not None]
    return recif


def row(table, task):
    return next(i for i, r in enumerate(table.rows) if r.task == task)


def test_a_lone_run_is_scaled_by_the_best_value_reported_or_run(table):
    columns = plotted_columns(table)
    assert [table.columns[c].label for c in columns] == ["popularity"]      # the paper's model is not comparable
    values = radar_values(table, columns)[:, 0]
    assert values[row(table, "video")] == pytest.approx(0.05 / 0.2)
    assert values[row(table, "label_pred")] == pytest.approx(0.4 / 0.8)
    assert values[row(table, "ad")] == pytest.approx(1.0)                  # nobody reported ad: the run is the best
    assert math.isnan(values[row(table, "item_understand")]) and math.isnan(values[row(table, "rec_reason")])
    assert math.isnan(values[row(table, "product")])                       # not run: absent too, never 0


def test_layer_panels_never_share_an_axis_between_metrics_and_skip_empty_layers(table):
    panels = layer_panels(table, plotted_columns(table))
    assert [(layer, metric, [table.rows[r].task for r in rows]) for layer, metric, rows in panels] == \
        [(1, "Recall@32", ["video", "ad"]), (1, "AUC", ["label_pred"])]
    for _, _, rows in panels:
        assert len({table.rows[r].metric for r in rows}) == 1


def test_figures_carry_a_caption_in_words(table, tmp_path):
    radar_png = radar(table, tmp_path / "plots" / f"{table.key}-radar")
    layers_png = layer_bars(table, tmp_path / "plots" / f"{table.key}-layers")
    assert caption(radar_png).startswith(f"{table.title}: every model's score on each task as a share of the best")
    assert caption(layers_png).startswith(f"{table.title}: each task's headline metric per model")
    assert radar_png.stem not in caption(radar_png)
    assert f"<dc:title>{caption(radar_png)}" in radar_png.with_suffix(".svg").read_text()   # the SVG carries it too


def test_an_image_without_a_caption_falls_back_to_its_name_in_words(tmp_path):
    from PIL import Image

    png = tmp_path / "recif_bench-mini-recif-radar.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png)
    assert caption(png) == "recif bench mini recif radar"
