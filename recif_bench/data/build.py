"""``recif-train build-data`` at any size: raw tables streamed in record batches, outputs written as shards.

The official raw table holds ~96M interactions; building every output row in memory first would
need ~200 GB.  Here the user table and the caption table are read in record batches (pyarrow);
each batch is turned into rows by the same builders as :func:`recif_bench.data.training.build_all`
(on ``num_proc`` worker processes), and the rows are appended to the current shard of each output
(``<name>-00000-of-000NN.parquet``, the Hugging Face datasets convention).  Only the item maps
(pid -> SID, :class:`~recif_bench.data.item_codes.PidCodes`) are whole-table state; they are saved
as ``.npy`` files the workers memory-map.

Results are written in input order by the parent process, so the output is byte-identical for
every ``num_proc`` (template choices are seeded per sample) and, concatenated, row for row the
output of the in-memory builder (uuids are positions in the whole file).  A shard appears only when
complete (written to a temporary name, then renamed), and ``.build-state.json`` records the finished
shards: a killed build rerun with the same settings continues after the last finished shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from recif_bench import sid
from recif_bench.benchmark import user_builder_tasks
from recif_bench.data import builders, training
from recif_bench.data.item_codes import PidCodes
from recif_bench.data.reader import DataError

log = logging.getLogger(__name__)

STATE_FILE = ".build-state.json"
INFO_FILE = "build-info.json"
WORK_DIR = ".build-work"
USER_FILES = ("pretrain_video_rec", "pretrain_user_profile", *(f"sft_{t}" for t in user_builder_tasks()))
CAPTION_FILES = ("pretrain_item_understand", "sft_item_understand")
TEXT_COLUMN = {"pretrain_video_rec": "segments", "pretrain_user_profile": "segments",
               "pretrain_item_understand": "segments"}     # every other output holds chat messages
USER_COLUMNS = {"uid", "split", "hist_video_pid", "target_video_pid"}
CAPTION_COLUMNS = {"pid", "dense_caption"}
MAP_COLUMNS = {"pid", "sid"}


@dataclass(frozen=True)
class BuildSettings:
    """What decides the bytes of the output (``num_proc`` does not: any N gives the same files)."""

    raw_dir: str
    out_dir: str
    seed: int = 42
    levels: int = 3
    codebook_size: int = 8192
    batch_rows: int = 1000           # input rows handed to a worker at a time: bounds the memory
    shard_rows: int = 50_000         # input rows per output shard (a multiple of batch_rows)
    benchmark_dir: str | None = None
    num_proc: int = field(default=0, compare=False)   # 0 = every core

    def __post_init__(self) -> None:
        for name in ("batch_rows", "shard_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_proc < 0:
            raise ValueError(f"--num-proc must be 0 (every core) or more, got {self.num_proc}")
        if self.shard_rows % self.batch_rows:
            raise ValueError(f"--shard-rows ({self.shard_rows}) must be a multiple of --batch-rows ({self.batch_rows})")

    @property
    def fmt(self) -> sid.SidFormat:
        return sid.SidFormat(self.levels, self.codebook_size)

    @property
    def workers(self) -> int:
        return self.num_proc or os.cpu_count() or 1

    def fingerprint(self) -> str:
        """Settings + the raw files' sizes and times: a rerun continues only the very same build."""
        files = {name: _stat(Path(self.raw_dir) / name) for name in training.RAW_FILES.values()}
        settings = {k: v for k, v in asdict(self).items() if k != "num_proc"}
        return hashlib.sha256(json.dumps([settings, files], sort_keys=True).encode()).hexdigest()[:16]


def _stat(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def shard_name(name: str, index: int, total: int) -> str:
    return f"{name}-{index:05d}-of-{total:05d}.parquet"


def output_files(data_dir: str | Path, name: str) -> list[Path]:
    """The files of one output in order: its shards, the single ``<name>.parquet`` of an in-memory build,
    or the ``<name>/`` folder the Ray engine writes."""
    data_dir = Path(data_dir)
    shards = sorted(data_dir.glob(f"{name}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet"))
    single = data_dir / f"{name}.parquet"
    folder = sorted((data_dir / name).glob("*.parquet")) if (data_dir / name).is_dir() else []
    return shards or ([single] if single.exists() else folder)


def is_built(data_dir: str | Path) -> bool:
    return (Path(data_dir) / INFO_FILE).exists()


# ---- the per-batch work (runs in the worker processes) -------------------------------------------

_MAPS: builders.ItemMaps | None = None


def _init_worker(maps_dir: str, levels: int, codebook_size: int) -> None:
    global _MAPS
    _MAPS = builders.ItemMaps(PidCodes.load(Path(maps_dir), "video"), PidCodes.load(Path(maps_dir), "product"),
                              sid.SidFormat(levels, codebook_size))


def _columns(rows: list[dict[str, str]], name: str) -> dict[str, list[str]]:
    text = TEXT_COLUMN.get(name, "messages")
    return {"source": [r["source"] for r in rows], text: [r[text] for r in rows],
            "metadata": [r["metadata"] for r in rows]}


def _bench_columns(examples: list[builders.Example]) -> dict[str, list[str]]:
    records = [e.benchmark_row() for e in examples]
    return {"messages": [json.dumps(r["messages"], ensure_ascii=False) for r in records],
            "metadata": [json.dumps(r["metadata"], ensure_ascii=False) for r in records]}


def user_outputs(users: list[dict[str, Any]], maps: builders.ItemMaps, seed: int, benchmark: bool,
                 ) -> dict[str, dict[str, list[str]]]:
    """Output columns of one batch of users: train users' training rows (+ test users' benchmark rows)."""
    out = {name: _columns(rows, name) for name, rows in training.user_rows(users, maps, seed).items()}
    if benchmark:
        tests = builders.build_user_tasks(users, maps, split=1, seed=seed)
        out.update({f"bench:{task}": _bench_columns(rows) for task, rows in tests.items()})
    return out


def caption_outputs(captions: list[dict[str, Any]], maps: builders.ItemMaps, seed: int, benchmark: bool,
                    ) -> dict[str, dict[str, list[str]]]:
    """Output columns of one batch of caption rows (every item: no user split)."""
    out = {name: _columns(rows, name) for name, rows in training.caption_rows(captions, maps, seed).items()}
    if benchmark:
        out["bench:item_understand"] = _bench_columns(builders.build_item_understand(captions, maps, seed))
    return out


def _user_batch(batch: Any, seed: int, benchmark: bool) -> dict[str, dict[str, list[str]]]:
    assert _MAPS is not None, "worker not initialised"
    return user_outputs(batch.to_pylist(), _MAPS, seed, benchmark)


def _caption_batch(batch: Any, seed: int, benchmark: bool) -> dict[str, dict[str, list[str]]]:
    assert _MAPS is not None, "worker not initialised"
    return caption_outputs(batch.to_pylist(), _MAPS, seed, benchmark)


# ---- the parent: read, dispatch, write in order ---------------------------------------------------

class _InlineExecutor(Executor):
    """num_proc = 1: the same code path without processes (and without pickling the batches)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class _ShardWriter:
    """Appends batches to the current shard of every output; a shard is renamed into place when complete."""

    def __init__(self, out: Path, names: tuple[str, ...], total: int, offsets: dict[str, int]) -> None:
        self.out, self.names, self.total, self.offsets = out, names, total, offsets
        self.writers: dict[str, Any] = {}

    def append(self, shard: int, columns: dict[str, dict[str, list[str]]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for name in self.names:
            cols = dict(columns[name])
            if "source" in cols:                     # a training file: uuid = position in the whole file
                start = self.offsets.get(name, 0)
                uuids = [training.stable_uuid(name, i) for i in range(start, start + len(cols["source"]))]
                cols = {"source": cols.pop("source"), "uuid": uuids, **cols}
                self.offsets[name] = start + len(uuids)
            table = pa.table(cols, schema=pa.schema([(c, pa.string()) for c in cols]))
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(self._tmp(name, shard), table.schema)
            self.writers[name].write_table(table)

    def close(self, shard: int) -> None:
        for name in self.names:
            self.writers.pop(name).close()
            os.replace(self._tmp(name, shard), self.out / shard_name(name, shard, self.total))

    def _tmp(self, name: str, shard: int) -> Path:
        return self.out / WORK_DIR / f"{shard_name(name, shard, self.total)}.partial"


def check_columns(path: Path, required: set[str]) -> int:
    """Row count of a raw table, after checking it is a readable parquet file with the columns the builders need."""
    import pyarrow.parquet as pq

    if path.is_dir() or not path.exists():
        raise DataError(path, "raw RecIF table not found")
    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DataError(path, f"not a readable parquet file ({str(exc).splitlines()[0]})") from None
    missing = sorted(required - set(meta.schema_arrow.names))
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} (present: {', '.join(meta.schema_arrow.names)})")
    return meta.metadata.num_rows


def read_maps(settings: BuildSettings) -> dict[str, PidCodes]:
    """The two pid -> SID spaces (video/ad, product) of the raw folder, checked against the SID format."""
    import pyarrow.parquet as pq

    maps = {}
    for space in ("video", "product"):
        path = Path(settings.raw_dir) / training.RAW_FILES[space]
        try:
            table = PidCodes.from_table(pq.read_table(path, columns=["pid", "sid"]), path.name)
        except (ValueError, TypeError) as exc:
            raise DataError(path, str(exc)) from None
        if table.codes.shape[1] not in (0, settings.levels):
            raise DataError(path, f"SIDs have {table.codes.shape[1]} codes, --sid-levels is {settings.levels}")
        maps[space] = table
    return maps


def _build_maps(settings: BuildSettings, work: Path) -> None:
    if not (work / "product.codes.npy").exists():
        for space, table in read_maps(settings).items():
            table.save(work, space)


def check_raw(raw: Path) -> dict[str, int]:
    """Row counts of the user and caption tables, after checking every raw table the builders read."""
    if not raw.is_dir():
        raise DataError(raw, "raw RecIF folder not found")
    for key in ("video", "product"):
        check_columns(raw / training.RAW_FILES[key], MAP_COLUMNS)
    return {"users": check_columns(raw / training.RAW_FILES["users"], USER_COLUMNS),
            "captions": check_columns(raw / training.RAW_FILES["captions"], CAPTION_COLUMNS)}


def _batches(path: Path, batch_rows: int, skip: int) -> Iterator[Any]:
    """Tables of exactly ``batch_rows`` rows (the last one shorter), whatever the file's row groups; the
    first ``skip`` are read but not returned."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer: list[Any] = []
    buffered = index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        buffer.append(batch)
        buffered += batch.num_rows
        while buffered >= batch_rows:
            table = pa.Table.from_batches(buffer)
            if index >= skip:
                yield table.slice(0, batch_rows)
            index += 1
            rest = table.slice(batch_rows)
            buffer, buffered = rest.to_batches(), rest.num_rows
    if buffered and index >= skip:
        yield pa.Table.from_batches(buffer)


def _run_table(settings: BuildSettings, executor: Executor, kind: str, state: dict[str, Any],
               save_state: Callable[[], None]) -> None:
    """Every shard of one raw table (users or captions), continuing after the shards already finished."""
    from tqdm import tqdm

    path = Path(settings.raw_dir) / training.RAW_FILES["users" if kind == "users" else "captions"]
    rows = state["rows"][kind]
    names = USER_FILES if kind == "users" else CAPTION_FILES
    per_shard = settings.shard_rows // settings.batch_rows
    total_batches = max(1, math.ceil(rows / settings.batch_rows))
    total_shards = max(1, math.ceil(total_batches / per_shard))
    done = state["shards_done"][kind]
    bench_names = tuple(n for n in _bench_names(kind) if settings.benchmark_dir)
    writer = _ShardWriter(Path(settings.out_dir), names + bench_names, total_shards, state["offsets"])
    work = (_user_batch if kind == "users" else _caption_batch)
    window = 1 if settings.workers == 1 else settings.workers + 2     # results wait in memory: keep few
    pending: list[Future] = []
    progress = tqdm(total=total_batches, initial=done * per_shard, desc=f"build-data {kind}", unit="batch",
                    mininterval=2)
    first = done * per_shard
    source = enumerate(_batches(path, settings.batch_rows, first), start=first)

    def finish_one() -> None:
        index, result = pending.pop(0)
        shard = index // per_shard
        writer.append(shard, result.result())
        progress.update(1)
        if (index + 1) % per_shard == 0 or index + 1 == total_batches:
            writer.close(shard)
            state["shards_done"][kind] = shard + 1
            save_state()

    for index, batch in source:
        pending.append((index, executor.submit(work, batch, settings.seed, bool(settings.benchmark_dir))))
        if len(pending) >= window:
            finish_one()
    while pending:
        finish_one()
    if rows == 0 and done == 0:          # an empty table still gives one (empty) shard per output
        empty = {n: {"source": [], TEXT_COLUMN.get(n, "messages"): [], "metadata": []} for n in names}
        writer.append(0, {**empty, **{n: {"messages": [], "metadata": []} for n in bench_names}})
        writer.close(0)
        state["shards_done"][kind] = 1
        save_state()
    progress.close()


def _bench_names(kind: str) -> tuple[str, ...]:
    tasks = tuple(user_builder_tasks()) if kind == "users" else ("item_understand",)
    return tuple(f"bench:{t}" for t in tasks)


def _finish_benchmark(settings: BuildSettings, state: dict[str, Any]) -> None:
    """The official layout wants one ``<task>/<task>_test.parquet`` per task: stream the shards into it."""
    import pyarrow.parquet as pq

    out, bench = Path(settings.out_dir), Path(settings.benchmark_dir or "")
    for name in _bench_names("users") + _bench_names("captions"):
        task = name.split(":", 1)[1]
        shards = sorted(out.glob(f"{name}-*.parquet"))
        (bench / task).mkdir(parents=True, exist_ok=True)
        target = bench / task / f"{task}_test.parquet"
        tmp = target.with_suffix(".parquet.partial")
        with pq.ParquetWriter(tmp, pq.read_schema(shards[0])) as sink:
            for shard in shards:
                sink.write_table(pq.read_table(shard))
        os.replace(tmp, target)
        for shard in shards:
            shard.unlink()


def _executor(settings: BuildSettings, maps_dir: Path) -> Executor:
    if settings.workers == 1:
        _init_worker(str(maps_dir), settings.levels, settings.codebook_size)
        return _InlineExecutor()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else methods[0])
    return ProcessPoolExecutor(settings.workers, mp_context=context, initializer=_init_worker,
                               initargs=(str(maps_dir), settings.levels, settings.codebook_size))


def build(settings: BuildSettings) -> dict[str, int]:
    """Every training file of the raw tables (+ the benchmark files of the test users); returns rows per file."""
    out = Path(settings.out_dir)
    rows = check_raw(Path(settings.raw_dir))
    fingerprint = settings.fingerprint()
    state_path = out / STATE_FILE
    state = resume_state(out, state_path, fingerprint, rows)
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)

    def save_state() -> None:
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, state_path)

    save_state()
    _build_maps(settings, out / WORK_DIR)
    with _executor(settings, out / WORK_DIR) as executor:
        for kind in ("users", "captions"):
            _run_table(settings, executor, kind, state, save_state)
    if settings.benchmark_dir:
        _finish_benchmark(settings, state)
    counts = {name: state["offsets"].get(name, 0) for name in USER_FILES + CAPTION_FILES}
    (out / INFO_FILE).write_text(json.dumps({"rows": counts, "shards": state["shards_done"], "settings": {
        k: v for k, v in asdict(settings).items() if k not in ("num_proc", "raw_dir", "out_dir", "benchmark_dir")}},
        indent=1), encoding="utf-8")
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    state_path.unlink()
    return counts


def resume_state(out: Path, state_path: Path, fingerprint: str, rows: dict[str, int]) -> dict[str, Any]:
    """The saved progress of the same build, or a fresh start (refused over a finished or foreign build)."""
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("fingerprint") == fingerprint:
            log.warning("%s: continuing an unfinished build after shards %s", out, state["shards_done"])
            return state
        raise DataError(out, "holds an unfinished build with other settings or raw files; "
                             "remove the folder or choose another --out")
    if is_built(out) or any(out.glob("*.parquet")):
        raise DataError(out, "already holds built data; remove the folder or choose another --out")
    return {"fingerprint": fingerprint, "rows": rows, "shards_done": {"users": 0, "captions": 0}, "offsets": {}}
