"""Where lm-eval's behaviour is wrong for our users and it offers no setting, the one shim, undone after.

lm-eval records the git commit of the working directory by running ``git describe --always`` with
the terminal as its error stream, so outside a git checkout (a new user's first ``recif-eval``) the
run prints ``fatal: not a git repository`` although nothing failed.  The probe is asked quietly
instead; outside a checkout the run records no commit (lm-eval's own answer there is the same).
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from typing import Iterator


def git_commit_hash() -> str | None:
    try:
        done = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


@contextmanager
def quiet_git_probe() -> Iterator[None]:
    """lm-eval's evaluator asks :func:`git_commit_hash` inside the block (nothing changes if lm-eval
    no longer has the function this replaces)."""
    import lm_eval.evaluator as evaluator

    original = getattr(evaluator, "get_git_commit_hash", None)
    if original is None:
        yield
        return
    evaluator.get_git_commit_hash = git_commit_hash
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original
