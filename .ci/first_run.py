"""Helpers of .ci/first_run.sh: read the README's first command, check the demo table in its output.

    python .ci/first_run.py command README.md     # prints the first line of the first ```bash block
    python .ci/first_run.py check run.log README.md   # exit 1 with one line unless the log holds the demo
                                                      # table and its scores are the README's

The command is taken from the README, never retyped, so CI runs exactly what a new user copies.  The
README shows the table the command prints; the scores printed must match it within ``TOLERANCE``
(the evaluation is deterministic, the slack only covers floating-point differences between CPUs that
can swap tied beam candidates: 0.02 is about two of the 100 rows changing their recall).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```bash\s*$")
HEADER = re.compile(r"^task\s+metric\s+demo\s+popularity(\s+demo - popularity \[95%\])?\s*$")
# a value may carry its standard error (" ±0.0123"); the row may end with the paired difference and its interval
ROW = re.compile(r"^(?P<task>\w+)\s+(?P<metric>\S+)\s+(?P<demo>\d+\.\d+)(?: ±\d+\.\d+)?"
                 r"\s+(?P<popularity>\d+\.\d+)(?: ±\d+\.\d+)?(?:\s+[+-]\d+\.\d+ \[[^\]]*\]\*?)?\s*$")
TOLERANCE = 0.02


def first_command(readme: str) -> str:
    """The first non-empty line inside the README's first ```bash block."""
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if FENCE.match(line.strip())), None)
    if start is None:
        raise ValueError("no ```bash block in the README")
    for line in lines[start + 1:]:
        if line.strip().startswith("```"):
            break
        if line.strip():
            return line.strip()
    raise ValueError("the README's first ```bash block is empty")


def demo_table(log: str) -> list[dict[str, str]]:
    """The rows of the demo-vs-popularity table printed by ``recif-eval --model demo`` (empty if absent).

    Every row must carry a number for both models: a ``--`` (a task without a score) is a broken run.
    """
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if HEADER.match(line.strip())), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith(("(", "```")):   # the table ends at its legend, a blank line or a fence
            break
        match = ROW.match(line.strip())
        if not match:
            return []
        rows.append(match.groupdict())
    return rows


def score_mismatches(printed: list[dict[str, str]], stated: list[dict[str, str]]) -> list[str]:
    """Where the printed table differs from the README's (a missing task, or a score off by > TOLERANCE)."""
    printed_by_task = {row["task"]: row for row in printed}
    problems = []
    for row in stated:
        got = printed_by_task.get(row["task"])
        if got is None:
            problems.append(f"{row['task']} not printed")
            continue
        problems += [f"{row['task']} {model} {got[model]} (README {row[model]})" for model in ("demo", "popularity")
                     if abs(float(got[model]) - float(row[model])) > TOLERANCE]
    return problems


def main(argv: list[str]) -> int:
    if not ((len(argv) == 2 and argv[0] == "command") or (len(argv) == 3 and argv[0] == "check")):
        print(__doc__, file=sys.stderr)
        return 2
    text = Path(argv[1]).read_text(encoding="utf-8", errors="replace")
    if argv[0] == "command":
        try:
            print(first_command(text))
        except ValueError as exc:
            print(f"first_run: error: {argv[1]}: {exc}", file=sys.stderr)
            return 1
        return 0
    rows = demo_table(text)
    if not rows:
        print(f"first_run: error: {argv[1]} holds no demo-vs-popularity table with a score in every cell",
              file=sys.stderr)
        return 1
    stated = demo_table(Path(argv[2]).read_text(encoding="utf-8"))
    if not stated:
        print(f"first_run: error: {argv[2]} shows no demo-vs-popularity table to compare with", file=sys.stderr)
        return 1
    problems = score_mismatches(rows, stated)
    if problems:
        print(f"first_run: error: the demo scores differ from {argv[2]}'s by more than {TOLERANCE}: "
              + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"first_run: demo table found ({len(rows)} tasks), scores as in {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
