"""pid -> SID codes held as two sorted numpy arrays: the only whole-catalogue state of a data build.

A dict of Python ints and tuples costs ~200 bytes an item, which at the real catalogue's size is
tens of GB; two arrays cost ~14-20 bytes an item and can be saved as ``.npy`` files that worker
processes memory-map instead of copying.  The class is a read-only ``Mapping`` so the builders
use it exactly like the dict they used before, and :meth:`mapped` looks up a whole history with
one ``searchsorted`` instead of one dict probe per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

Codes = tuple[int, ...]


def _code_dtype(codes: np.ndarray) -> np.dtype:
    """The smallest signed integer type holding every code (codebooks are at most a few thousand)."""
    top = int(codes.max()) if codes.size else 0
    return np.dtype(np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64)


class PidCodes(Mapping):
    """Read-only pid -> codes map; a pid listed twice keeps its last SID (as a dict built in order would)."""

    def __init__(self, pids: np.ndarray, codes: np.ndarray) -> None:
        pids = np.asarray(pids, dtype=np.int64)
        codes = np.asarray(codes)
        if codes.ndim != 2 or len(codes) != len(pids):
            raise ValueError(f"codes must be a (n_items, levels) array matching {len(pids)} pids, got {codes.shape}")
        order = np.argsort(pids, kind="stable")
        pids, codes = pids[order], codes[order]
        last = np.append(pids[1:] != pids[:-1], True) if len(pids) else np.zeros(0, dtype=bool)
        self.pids = np.ascontiguousarray(pids[last])
        self.codes = np.ascontiguousarray(codes[last].astype(_code_dtype(codes), copy=False))

    @classmethod
    def from_columns(cls, pids: Iterable[Any], sids: Iterable[Sequence[int]], source: str = "pid2sid table",
                     ) -> "PidCodes":
        """From a ``pid`` column and a ``sid`` column of code lists; every SID must have the same length."""
        pid_array = np.asarray([int(p) for p in pids], dtype=np.int64)
        rows = [np.asarray(s, dtype=np.int64).ravel() for s in sids]
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            raise ValueError(f"{source}: SIDs of different lengths ({', '.join(map(str, sorted(lengths)))} codes)")
        codes = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.int64)
        return cls(pid_array, codes)

    @classmethod
    def from_table(cls, table: Any, source: str = "pid2sid table") -> "PidCodes":
        """From a pandas frame or a pyarrow table with ``pid`` and ``sid`` columns."""
        if hasattr(table, "column_names"):                       # pyarrow: no Python object per code
            import pyarrow.compute as pc

            sid = table.column("sid").combine_chunks()
            lengths = pc.unique(pc.list_value_length(sid)).to_pylist() if len(sid) else []
            if len(lengths) > 1:
                raise ValueError(f"{source}: SIDs of different lengths ({', '.join(map(str, sorted(lengths)))} codes)")
            width = lengths[0] if lengths else 0
            codes = sid.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(sid), width)
            return cls(table.column("pid").to_numpy().astype(np.int64), codes)
        return cls.from_columns(table["pid"], table["sid"], source)

    @classmethod
    def from_sorted(cls, pids: np.ndarray, codes: np.ndarray) -> "PidCodes":
        """Arrays that already are a PidCodes' own (sorted, unique pids): no copy, no sort."""
        table = cls.__new__(cls)
        table.pids, table.codes = pids, codes
        return table

    def save(self, folder: Path, name: str) -> None:
        np.save(Path(folder) / f"{name}.pids.npy", self.pids)
        np.save(Path(folder) / f"{name}.codes.npy", self.codes)

    @classmethod
    def load(cls, folder: Path, name: str) -> "PidCodes":
        """Memory-mapped: worker processes share the pages instead of each holding a copy."""
        return cls.from_sorted(np.load(Path(folder) / f"{name}.pids.npy", mmap_mode="r"),
                               np.load(Path(folder) / f"{name}.codes.npy", mmap_mode="r"))

    def _rows(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, row index) of each pid."""
        if not len(self.pids):
            return np.zeros(len(pids), dtype=bool), np.zeros(len(pids), dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.pids, pids), len(self.pids) - 1)
        return self.pids[rows] == pids, rows

    def mapped(self, pids: Iterable[Any]) -> list[tuple[int, Codes]]:
        """(pid, codes) of the pids that have a SID, in their order; unmapped pids are dropped."""
        wanted = np.asarray([int(p) for p in pids], dtype=np.int64)
        found, rows = self._rows(wanted)
        codes = self.codes[rows[found]].tolist()
        return [(pid, tuple(c)) for pid, c in zip(wanted[found].tolist(), codes)]

    def __getitem__(self, pid: Any) -> Codes:
        found, rows = self._rows(np.asarray([int(pid)], dtype=np.int64))
        if not found[0]:
            raise KeyError(pid)
        return tuple(self.codes[rows[0]].tolist())

    def __contains__(self, pid: object) -> bool:
        try:
            return bool(self._rows(np.asarray([int(pid)], dtype=np.int64))[0][0])  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(self.pids.tolist())

    def __len__(self) -> int:
        return len(self.pids)

    def items(self):  # type: ignore[override]
        """All (pid, codes) pairs in pid order, converted in one pass."""
        return list(zip(self.pids.tolist(), map(tuple, self.codes.tolist())))
