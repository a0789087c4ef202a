"""How `recif-train build-data` grows with the input: mini-RecIF at growing scale, built, measured.

    python benchmarks/build_data_scale.py [--scales 1 4 16 64] [--num-proc 2] [--work /tmp/build-scale]

For each scale: generate mini-RecIF (timed: the generator must grow linearly too), then run
`recif-train build-data` in a child process and sample the resident memory of its whole process tree
(parent + workers; shared memory-mapped pages are counted in each process, so the sum is an upper
bound); CPU time is the child's and its workers' own (getrusage).  Prints users, history interactions (hist_video + hist_ad + hist_goods, the issue's count),
wall and CPU seconds, peak memory, the fitted growth (log-log slope: 1 = linear, 0 = flat) and the
projection of time and memory to the official raw table's ~96M interactions.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

OFFICIAL_INTERACTIONS = 96_000_000


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process tree, peak summed RSS bytes) of one command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(child.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, err = child.communicate()
    done.set()
    watcher.join()
    wall = time.perf_counter() - start
    if child.returncode:
        sys.exit(f"build-data failed ({child.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)       # the workers were waited for: their CPU is in
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak


def interactions(raw: Path) -> tuple[int, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(raw / "onerec_bench_release.parquet",
                          columns=["hist_video_pid", "hist_ad_pid", "hist_goods_pid"])
    total = sum(int(pc.sum(pc.list_value_length(table[c])).as_py() or 0) for c in table.column_names)
    return table.num_rows, total


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--work", default="/tmp/recif-build-scale")
    args = parser.parse_args()
    from recif_bench.data import mini

    work = Path(args.work)
    rows = []
    for scale in args.scales:
        world = work / f"mini-{scale:g}"
        started = time.process_time()
        gen_wall = time.perf_counter()
        if not (world / "sid2pid.json").exists():
            mini.generate(world, seed=0, scale=scale)
        gen_wall = time.perf_counter() - gen_wall
        users, inter = interactions(world / "raw")
        out = work / f"built-{scale:g}"
        shutil.rmtree(out, ignore_errors=True)
        wall, cpu, peak = run_measured([sys.executable, "-m", "trainers.cli", "build-data",
                                        "--raw", str(world / "raw"), "--out", str(out),
                                        "--num-proc", str(args.num_proc)])
        rows.append((scale, users, inter, wall, cpu, peak))
        print(f"scale {scale:>5g}: {users:>8,} users {inter:>11,} interactions | generate {gen_wall:6.1f} s wall "
              f"({time.process_time() - started:6.1f} s CPU) | build-data {wall:7.1f} s wall {cpu:7.1f} s CPU "
              f"peak {peak / 2**20:7.0f} MB", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    if len(rows) < 2:
        return
    inter = [r[2] for r in rows]
    cpu_slope, mem_slope = slope(inter, [r[4] for r in rows]), slope(inter, [r[5] for r in rows])
    per_interaction = rows[-1][4] / rows[-1][2]
    mem_growth = rows[-1][5] / rows[1 if len(rows) > 2 else 0][5]
    print(f"growth (log-log slope over interactions): CPU time {cpu_slope:.2f} (1 = linear), "
          f"peak memory {mem_slope:.2f} (0 = flat); peak memory x{mem_growth:.2f} from scale "
          f"{rows[1 if len(rows) > 2 else 0][0]:g} to {rows[-1][0]:g}")
    print(f"projection to {OFFICIAL_INTERACTIONS / 1e6:.0f}M interactions: {per_interaction * OFFICIAL_INTERACTIONS / 3600:.1f} "
          f"CPU hours ({per_interaction * OFFICIAL_INTERACTIONS / 3600 / args.num_proc:.1f} h wall on {args.num_proc} "
          f"cores), peak memory ~{rows[-1][5] / 2**30:.1f} GB plus the item maps (~20 bytes per catalogue item)")


if __name__ == "__main__":
    main()
