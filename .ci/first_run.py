"""Helpers of .ci/first_run.sh: read the README's first command, check the demo table in its output.

    python .ci/first_run.py command README.md     # prints the first line of the first ```bash block
    python .ci/first_run.py check run.log         # exit 1 with one line unless the log holds the demo table

The command is taken from the README, never retyped, so CI runs exactly what a new user copies.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```bash\s*$")
HEADER = re.compile(r"^task\s+metric\s+demo\s+popularity(\s+demo - popularity \[95%\])?\s*$")
# a value may carry its standard error (" ±0.0123"); the row may end with the paired difference
ROW = re.compile(r"^(?P<task>recif_\w+)\s+(?P<metric>\S+)\s+(?P<demo>\d+\.\d+)(?: ±\d+\.\d+)?"
                 r"\s+(?P<popularity>\d+\.\d+)(?: ±\d+\.\d+)?(?:\s+[+-]\d+\.\d+ \[[^\]]*\]\*?)?\s*$")


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
        if not line.startswith("recif_"):
            break
        match = ROW.match(line.strip())
        if not match:
            return []
        rows.append(match.groupdict())
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("command", "check"):
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
    print(f"first_run: demo table found ({len(rows)} tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
