"""``recif-train build-data --engine ray``: the same per-batch builders on a Ray cluster (Ray Data).

read_parquet -> map_batches (the builders of :mod:`recif_bench.data.build`, as tasks reading the item
maps from the object store) -> a per-output uuid pass -> write_parquet, one folder ``<out>/<name>/`` per output.
uuids are positions in the whole output, as in the local engine: each input batch reports how many
rows it gave each output, the driver turns the counts into offsets (a table of batches x outputs,
small), and a second pass numbers the rows.  The rows equal the local engine's; the files differ
(Ray names and sizes them).  Connects to the cluster named by ``RAY_ADDRESS`` or starts a local one.
Needs ``pip install '.[scale]'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from recif_bench.data import build as local
from recif_bench.data import builders, training
from recif_bench.data.item_codes import PidCodes
from recif_bench.data.reader import DataError

ROW = "_row"          # the input row number added before the builders run


def _build_batch(batch: Any, kind: str, arrays: dict[str, Any], levels: int, codebook_size: int, seed: int,
                 ) -> dict[str, np.ndarray]:
    """The output rows of one batch of input rows, long format (one row per output row).

    A plain function, not an actor: Ray schedules it as tasks that free their CPU, so reading and
    building share the cluster; the item maps come zero-copy from the object store.
    """
    from recif_bench import sid

    maps = builders.ItemMaps(PidCodes.from_sorted(arrays["video_pids"], arrays["video_codes"]),
                             PidCodes.from_sorted(arrays["product_pids"], arrays["product_codes"]),
                             sid.SidFormat(levels, codebook_size))
    rows = batch.to_pylist()
    first = min(r.pop(ROW) for r in rows) if rows else 0
    outputs = (local.user_outputs if kind == "users" else local.caption_outputs)(rows, maps, seed, False)
    long: dict[str, list] = {"name": [], "batch": [], "ordinal": [], "source": [], "text": [], "metadata": []}
    for name, cols in outputs.items():
        text = cols[local.TEXT_COLUMN.get(name, "messages")]
        long["name"] += [name] * len(text)
        long["batch"] += [first] * len(text)
        long["ordinal"] += list(range(len(text)))
        long["source"] += cols["source"]
        long["text"] += text
        long["metadata"] += cols["metadata"]
    return {k: np.asarray(v, dtype=np.int64 if k in ("batch", "ordinal") else object) for k, v in long.items()}


def _number(batch: Any, offsets: dict[str, dict[int, int]]) -> Any:
    """uuid = position in the whole output = rows of the earlier batches + ordinal in this one."""
    frame = batch
    frame["position"] = [offsets[n][b] + o for n, b, o in zip(frame["name"], frame["batch"], frame["ordinal"])]
    frame["uuid"] = [training.stable_uuid(n, p) for n, p in zip(frame["name"], frame["position"])]
    return frame


def _output_table(frame: Any, text: str) -> Any:
    """The local engine's columns and types (plain strings), whatever Ray made of them."""
    import pyarrow as pa

    columns = {"source": frame["source"], "uuid": frame["uuid"], text: frame["text"], "metadata": frame["metadata"]}
    return pa.table({c: pa.array(list(v), pa.string()) for c, v in columns.items()})


def _write_empty(folder: Path, text: str) -> None:
    """An output no input row produced still exists, as in the local engine (one empty file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    columns = ("source", "uuid", text, "metadata")
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in columns}), folder / "part-00000.parquet")


def build(settings: local.BuildSettings) -> dict[str, int]:
    """Every training file of the raw tables on Ray; returns rows per file."""
    try:
        import ray
    except ImportError:
        raise DataError("--engine ray", "Ray is not installed: pip install 'recif-bench[scale]'") from None
    if settings.benchmark_dir:
        raise DataError("--benchmark", "not built by the Ray engine; build the benchmark files with --engine local")
    raw, out = Path(settings.raw_dir), Path(settings.out_dir)
    rows = local.check_raw(raw)
    if out.exists() and any(out.iterdir()):
        raise DataError(out, "is not empty; remove the folder or choose another --out")
    maps = local.read_maps(settings)
    arrays = {f"{space}_{part}": getattr(table, part) for space, table in maps.items() for part in ("pids", "codes")}
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), num_cpus=None if os.environ.get("RAY_ADDRESS")
                 else settings.workers, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    counts: dict[str, int] = {}
    for kind, names in (("users", local.USER_FILES), ("captions", local.CAPTION_FILES)):
        table = ray.data.read_parquet(str(raw / training.RAW_FILES[kind if kind == "users" else "captions"]))
        numbered = table.zip(ray.data.range(rows[kind]).rename_columns({"id": ROW}))
        long = numbered.map_batches(
            _build_batch, batch_size=settings.batch_rows, batch_format="pyarrow",
            fn_kwargs={"kind": kind, "arrays": arrays, "levels": settings.levels,
                       "codebook_size": settings.codebook_size, "seed": settings.seed},
        ).materialize()
        per_batch = long.groupby(["name", "batch"]).count().to_pandas().sort_values(["name", "batch"])
        offsets: dict[str, dict[int, int]] = {name: {} for name in names}
        for name, group in per_batch.groupby("name"):
            starts = np.concatenate([[0], np.cumsum(group["count()"].to_numpy())[:-1]])
            offsets[name] = dict(zip(group["batch"].tolist(), starts.tolist()))
            counts[name] = int(group["count()"].sum())
        numbered_rows = long.map_batches(_number, fn_kwargs={"offsets": offsets}, batch_format="pandas")
        for name in names:
            text = local.TEXT_COLUMN.get(name, "messages")
            if not counts.setdefault(name, 0):
                _write_empty(out / name, text)
                continue
            (numbered_rows.map_batches(lambda frame, n=name: frame[frame["name"] == n], batch_format="pandas")
             .sort("position").map_batches(_output_table, fn_kwargs={"text": text}, batch_format="pandas")
             .write_parquet(str(out / name)))
    (out / local.INFO_FILE).write_text(json.dumps({"rows": counts, "engine": "ray"}, indent=1), encoding="utf-8")
    return counts
