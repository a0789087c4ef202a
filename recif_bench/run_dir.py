"""A run folder that only ever holds one finished run: locked while written, replaced in one step.

``recif-eval --output results/X`` writes into ``results/.X.partial/`` and, once every file is
written, swaps it for ``results/X``.  So:

* a run that fails (bad input found late, a crash, Ctrl-C) leaves the earlier ``results/X``
  byte-identical, and a replacing run leaves no stale ``samples_<task>.jsonl`` of tasks it did not run;
* a run whose model fails to load leaves no empty folder behind;
* a second run on the same ``--output`` stops at once with one line (an exclusive ``flock`` on
  ``results/.X.lock``) instead of deleting the first run's ``requests.db`` under it;
* ``--resume`` continues from the partial folder of a killed run, or from the requests of the
  finished run (copied, so the finished run stays as it was until the swap).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Iterator

CARRIED = ("judge_cache",)     # content-addressed (judge model + prompt): any later run may reuse it
RESUMABLE = ("requests.db",)   # answers of this model: reused only by --resume (identity checked)


class RunLocked(Exception):
    """Another process is writing the same run folder."""


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``<parent>/.<name>.lock`` while a process writes ``folder`` (one line if taken)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    handle = open(folder.parent / f".{folder.name}.lock", "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLocked(f"{folder}: another recif-eval ({holder}) is writing this run folder; "
                            "wait for it or choose another --output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


class RunFolder:
    """``with RunFolder(final, resume) as work:`` write into ``work``; :meth:`commit` publishes it as ``final``."""

    def __init__(self, final: Path, resume: bool = False) -> None:
        self.final = Path(final)
        self.resume = resume
        self.work = self.final.parent / f".{self.final.name}.partial"
        self._old = self.final.parent / f".{self.final.name}.old"
        self._held = contextlib.ExitStack()
        self.committed = False

    @property
    def resume_store(self) -> Path | None:
        """The ``requests.db`` a ``--resume`` would continue from (checked before the model loads)."""
        if not self.resume:
            return None
        for folder in (self.work, self.final):
            if (folder / "requests.db").is_file():
                return folder / "requests.db"
        return None

    def __enter__(self) -> Path:
        self._held.enter_context(run_lock(self.final))
        try:
            self._recover()
            self._prepare()
        except BaseException:
            self._held.close()
            raise
        return self.work

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if not self.committed and not self._worth_resuming():
                shutil.rmtree(self.work, ignore_errors=True)
        finally:
            self._held.close()

    def commit(self) -> Path:
        """Replace ``final`` by the finished work folder (the old run is removed only after the swap)."""
        if self.final.exists():
            shutil.rmtree(self._old, ignore_errors=True)
            os.replace(self.final, self._old)
        os.replace(self.work, self.final)
        shutil.rmtree(self._old, ignore_errors=True)
        self.committed = True
        return self.final

    def _recover(self) -> None:
        """A swap interrupted between its two renames left the old run as ``.X.old``: put it back."""
        if self._old.exists() and not self.final.exists():
            os.replace(self._old, self.final)
        shutil.rmtree(self._old, ignore_errors=True)

    def _prepare(self) -> None:
        if not self.resume:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.work.exists():
            return   # a killed attempt's requests: --resume continues from them
        self.work.mkdir()
        if self.final.is_dir():
            for name in CARRIED + (RESUMABLE if self.resume else ()):
                source = self.final / name
                if source.is_dir():
                    shutil.copytree(source, self.work / name)
                elif source.is_file():
                    shutil.copy2(source, self.work / name)

    def _worth_resuming(self) -> bool:
        """Keep an unfinished work folder only when it holds finished requests (else it is just clutter)."""
        db = self.work / "requests.db"
        return db.is_file() and db.stat().st_size > 0 and _has_requests(db)


def _has_requests(db: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0] > 1   # more than the identity
    except sqlite3.Error:
        return False
