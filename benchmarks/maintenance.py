"""Maintenance beside LanceDB: many one-row appends and a delete, then compaction and
cleanup of old versions. Reports time, files and bytes on disk, and the latency of a
256-row shuffled take before and after (what compaction is for).

    PYTHONPATH=python .venv/bin/python benchmarks/maintenance.py [--appends N]

LanceDB (``lancedb==0.40.0``) is measured when it imports. One process, sequential: the
figures are for comparison within one run, not across runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import statistics
import tempfile
import time

import pyarrow as pa


def disk(path: str) -> tuple[int, int]:
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            size += os.stat(os.path.join(root, name)).st_size
    return files, size


def take_ms(take, n_rows: int, repeats: int = 20) -> float:
    rng = random.Random(0)
    times = []
    for _ in range(repeats):
        offsets = rng.sample(range(n_rows), min(256, n_rows))
        start = time.perf_counter()
        take(offsets)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def fill(table, appends: int) -> None:
    for i in range(1, appends):
        table.add(pa.table({"id": pa.array([i], pa.int64()), "x": [float(i)]}))
    table.delete("id % 10 = 3")


def run_riffledb(root: str, appends: int) -> dict:
    import riffledb

    db = riffledb.connect(os.path.join(root, "riffledb"))
    t = db.create_table("t", pa.table({"id": pa.array([0], pa.int64()), "x": [0.0]}))
    fill(t, appends)
    path = os.path.join(root, "riffledb", "t.riffle")
    n = len(t)
    out = {"disk_before": disk(path)}
    out["take_before_ms"] = take_ms(lambda o: t.take_offsets(o).to_arrow(), n)
    start = time.perf_counter()
    stats = t.optimize()
    out["compact_s"] = time.perf_counter() - start
    out["fragments"] = (
        stats.compaction.fragments_removed,
        stats.compaction.fragments_added,
    )
    out["take_after_ms"] = take_ms(lambda o: t.take_offsets(o).to_arrow(), n)
    start = time.perf_counter()
    cleanup = t.cleanup_old_versions(datetime.timedelta(0))
    out["cleanup_s"] = time.perf_counter() - start
    out["versions_removed"] = cleanup.old_versions
    out["disk_after"] = disk(path)
    out["rows"] = n
    return out


def run_lancedb(root: str, appends: int) -> dict:
    import lancedb  # noqa: PLC0415 (optional peer)

    db = lancedb.connect(os.path.join(root, "lancedb"))
    t = db.create_table("t", pa.table({"id": pa.array([0], pa.int64()), "x": [0.0]}))
    fill(t, appends)
    path = os.path.join(root, "lancedb", "t.lance")
    n = t.count_rows()
    out = {"disk_before": disk(path)}
    out["take_before_ms"] = take_ms(lambda o: t.take_offsets(o).to_arrow(), n)
    # The synchronous optimize() returns no statistics and cleanup_old_versions() needs
    # pylance: the async table's optimize (what optimize() runs) returns them.
    from lancedb.background_loop import LOOP  # noqa: PLC0415

    # Its default prune (older than 7 days) removes nothing here: compaction only.
    start = time.perf_counter()
    stats = LOOP.run(t._table.optimize())
    out["compact_s"] = time.perf_counter() - start
    out["fragments"] = (
        stats.compaction.fragments_removed,
        stats.compaction.fragments_added,
    )
    out["take_after_ms"] = take_ms(lambda o: t.take_offsets(o).to_arrow(), n)
    start = time.perf_counter()
    stats = LOOP.run(t._table.optimize(cleanup_older_than=datetime.timedelta(0)))
    out["cleanup_s"] = time.perf_counter() - start
    out["versions_removed"] = stats.prune.old_versions_removed
    out["disk_after"] = disk(path)
    out["rows"] = n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=1000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="riffledb-maint-bench-")
    try:
        results = {"riffledb": run_riffledb(root, args.appends)}
        try:
            import lancedb  # noqa: F401, PLC0415
        except ImportError:
            print("lancedb not installed: riffledb only")
        else:
            results["lancedb"] = run_lancedb(root, args.appends)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.appends} one-row appends, then delete 10% of rows")
    header = (
        "| system | rows | files/bytes before | take 256 before | compact "
        "| fragments removed/added | take 256 after | cleanup | versions removed "
        "| files/bytes after |"
    )
    print(header)
    print("|" + "---|" * 10)
    for name, r in results.items():
        print(
            f"| {name} | {r['rows']} | {r['disk_before'][0]} / {r['disk_before'][1]:,} "
            f"| {r['take_before_ms']:.2f} ms | {r['compact_s'] * 1000:.0f} ms "
            f"| {r['fragments'][0]} / {r['fragments'][1]} | {r['take_after_ms']:.2f} ms "
            f"| {r['cleanup_s'] * 1000:.0f} ms | {r['versions_removed']} "
            f"| {r['disk_after'][0]} / {r['disk_after'][1]:,} |"
        )


if __name__ == "__main__":
    main()
