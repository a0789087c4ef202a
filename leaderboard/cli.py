"""recif-leaderboard: turn results/*/ runs and the published numbers into tables, plots and a page.

A small dispatcher: each subcommand is a ``Command`` (help, its own arguments, a function of the
parsed arguments returning the exit status) in ``COMMANDS``; adding one is a function and an entry.
Without a subcommand it runs ``all``: tables + plots + ``index.html`` under ``--out`` (default ``site/``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from leaderboard import scaling, significance
from leaderboard.collect import Collection, CollectError, DataGroup, collect, group_by_data
from leaderboard.published import PublishedError, PublishedTable, load_published
from leaderboard.tables import Table, build_tables, to_csv, to_latex, to_markdown

PROG = "recif-leaderboard"


@dataclass
class Board:
    """Everything the subcommands render: the runs, their data groups, published numbers, the tables."""

    collection: Collection
    groups: list[DataGroup]
    published: list[PublishedTable]
    tables: list[Table] = field(default_factory=list)


def board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", action="append", type=Path, default=None, metavar="DIR",
                        help="folder of run directories, or one run directory (repeatable; default: results)")
    parser.add_argument("--published", type=Path, default=None, metavar="DIR",
                        help="folder of published-number YAMLs (default: configs/published)")
    parser.add_argument("--no-published", action="store_true", help="our runs only")
    parser.add_argument("--out", type=Path, default=Path("site"), help="output folder (default: site)")


def load_board(args: argparse.Namespace) -> Board:
    collection = collect(args.results or [Path("results")])
    for message in collection.refused:
        print(f"{PROG}: refused {message}", file=sys.stderr)
    published = [] if args.no_published else load_published(args.published)
    groups = group_by_data(collection.runs)
    board = Board(collection, groups, published, build_tables(groups, published))
    print(f"{PROG}: {len(collection.runs)} run(s) in {len(groups)} data group(s), "
          f"{len(published)} published table(s)", file=sys.stderr)
    return board


def write_tables(board: Board, out: Path) -> list[Path]:
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in board.tables:
        for suffix, render in ((".md", to_markdown), (".csv", to_csv), (".tex", to_latex)):
            path = folder / f"{table.key}{suffix}"
            path.write_text(render(table), encoding="utf-8")
            written.append(path)
    return written


def write_plots(board: Board, out: Path) -> list[Path]:
    from leaderboard import plots, tradeoff   # matplotlib only when plotting

    return (plots.write_plots(board.tables, board.groups, out / "plots")
            + tradeoff.write_tradeoff(board.groups, out / "plots"))


def write_page(board: Board, out: Path, pngs: Sequence[Path]) -> Path:
    from leaderboard.html import write_html

    return write_html(out / "index.html", board.tables, board.collection.runs, pngs, board.collection.refused)


def cmd_table(args: argparse.Namespace) -> int:
    board = load_board(args)
    print("\n".join(to_markdown(t) for t in board.tables))
    written = write_tables(board, args.out)
    print(f"{PROG}: wrote {len(written)} table files under {args.out / 'tables'}", file=sys.stderr)
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    pngs = write_plots(load_board(args), args.out)
    print(f"{PROG}: wrote {len(pngs)} plots (PNG + SVG) under {args.out / 'plots'}", file=sys.stderr)
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    board = load_board(args)
    page = write_page(board, args.out, write_plots(board, args.out))
    print(f"{PROG}: wrote {page}", file=sys.stderr)
    return 0


def cmd_all(args: argparse.Namespace) -> int:
    board = load_board(args)
    print("\n".join(to_markdown(t) for t in board.tables))
    tables = write_tables(board, args.out)
    pngs = write_plots(board, args.out)
    page = write_page(board, args.out, pngs)
    print(f"{PROG}: wrote {len(tables)} table files, {len(pngs)} plots (PNG + SVG) and {page}", file=sys.stderr)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    board = load_board(args)
    for group in board.groups:
        print(f"{group.label}  [{', '.join(group.fingerprints)}]")
        for run in group.runs:
            print(f"  {run.name:<40} {run.label():<50} {len(run.tasks)} task(s)  {run.path}")
    return 0


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from leaderboard import tradeoff

    board = load_board(args)
    for group in board.groups:
        for point in tradeoff.points(group.runs):
            print(f"{group.label:<24} {point.run.label():<50} recif {point.recif:.4f} ({point.n_recif} tasks)  "
                  f"general {point.general:.4f}")
    pngs = tradeoff.write_tradeoff(board.groups, args.out / "plots")
    print(f"{PROG}: wrote {len(pngs)} trade-off plot(s) (PNG + SVG) under {args.out / 'plots'}"
          + ("" if pngs else " (no run has both RecIF-Bench and --general scores)"), file=sys.stderr)
    return 0


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = board_arguments


COMMANDS: dict[str, Command] = {
    "all": Command("tables, plots and the HTML page (the default)", cmd_all),
    "table": Command("print the tables (Markdown) and write .md/.csv/.tex under OUT/tables", cmd_table),
    "plots": Command("write the figures (PNG + SVG) under OUT/plots", cmd_plots),
    "html": Command("write the self-contained page OUT/index.html (with its plots)", cmd_html),
    "runs": Command("list the collected runs by data group", cmd_runs),
    "tradeoff": Command("RecIF-Bench vs general ability (recif-eval --general) per run and pipeline stage", cmd_tradeoff),
    "scaling": Command(scaling.HELP, scaling.command, scaling.arguments),
    "compare": Command(significance.HELP, significance.command, significance.arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "all")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (CollectError, PublishedError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
