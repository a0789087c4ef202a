"""Which differences between our runs are real: paired bootstrap over the users two runs share.

Two runs scored on the same data (same fingerprint and selection, so one table) recorded their
per-sample values (``samples_<task>.jsonl``); the same draws of users are applied to both and the
95% interval of the difference decides.  In a table the best of our runs on a row is marked ``†``
when it beats every other run of ours on that row at 95%; the notes give each difference.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from leaderboard.collect import Run
from recif_bench.metrics.uncertainty import Difference, compare
from recif_bench.results import run_samples

MARK = "†"
LEGEND = f"{MARK} = better than every other run of ours on the row (paired bootstrap over users, 95%)."


def compare_runs(a: Run, b: Run, tasks: Sequence[str], metrics: dict[str, str]) -> list[tuple[str, Difference]]:
    """``a - b`` per task on ``metrics[task]`` (tasks either run lacks samples for are left out)."""
    out = []
    for task in tasks:
        left, right = run_samples(a.path, task), run_samples(b.path, task)
        if left is None or right is None:
            continue
        out += [(task, diff) for diff in compare(left, right, [metrics[task]])]
    return out


def mark_table(table) -> None:
    """Mark and annotate the significant differences among the table's own runs (not reported columns)."""
    ours = [c for c, col in enumerate(table.columns) if col.run is not None]
    if len(ours) < 2:
        return
    for r, row in enumerate(table.rows):
        scored = [(table.cells[r][c].value, c) for c in ours if table.cells[r][c].status == "ok"]
        if len(scored) < 2:
            continue
        best = max(scored)[1]
        diffs = []
        for _, other in scored:
            if other == best:
                continue
            found = compare_runs(table.columns[best].run, table.columns[other].run, [row.task], {row.task: row.metric})
            if not found:
                diffs = []
                break
            diffs.append((other, found[0][1]))
        if not diffs:
            continue
        if all(d.significant for _, d in diffs):
            table.cells[r][best] = replace(table.cells[r][best], mark=MARK)
        for other, d in diffs:
            table.notes.append(
                f"{row.label}: {table.columns[best].label} - {table.columns[other].label} = {d.delta:+.4f} "
                f"[{d.low:+.4f}, {d.high:+.4f}] over {d.n_users} users, "
                f"{'significant' if d.significant else 'not significant'} at 95%.")


HELP = "paired bootstrap of two runs on the same data: each task's headline difference with its 95% interval"


def arguments(parser) -> None:
    parser.add_argument("run_a", type=str, help="run directory (results/<run>)")
    parser.add_argument("run_b", type=str, help="run directory compared against (same data)")
    parser.add_argument("--metric", action="append", default=None, metavar="TASK=METRIC",
                        help="compare METRIC instead of TASK's headline metric (repeatable)")


def command(args) -> int:
    from pathlib import Path

    from leaderboard.collect import CollectError, read_run, same_data

    a, b = read_run(Path(args.run_a)), read_run(Path(args.run_b))
    if not same_data(a, b):
        raise CollectError(f"{args.run_b}: scored on other data than {args.run_a} (fingerprint or selection differ)")
    chosen = dict(item.split("=", 1) for item in args.metric or [])
    tasks = [t for t in a.tasks if t in b.tasks and a.tasks[t].get("supported", True) and b.tasks[t].get("supported", True)]
    metrics = {t: chosen.get(t) or (a.tasks[t].get("headline") or {}).get("metric") for t in tasks}
    print(f"{'task':<16} {'metric':<30} {'A - B':>8}  {'95% interval':<20} {'users':>6}  (A = {a.label()}, B = {b.label()})")
    for task, diff in compare_runs(a, b, [t for t in tasks if metrics[t]], metrics):
        print(f"{task:<16} {diff.metric:<30} {diff.delta:>+8.4f}  [{diff.low:+.4f}, {diff.high:+.4f}]  "
              f"{diff.n_users:>6}  {'significant' if diff.significant else 'not significant'}")
    return 0
