"""Prefetching on S3 (issue #12, item 3): does ``perm.iter(prefetch=...)`` overlap the
network's latency?

``make bench-s3-prefetch`` (``QUICK=1`` for a short run) or::

    PYTHONPATH=python:tests .venv/bin/python benchmarks/s3_prefetch.py \\
        [--rows 50000] [--latency-ms 0,20] [--quick]

The rows of ``benchmarks/s3_take.py`` (``vectors``: ``id`` int64, ``label`` int32,
``vec`` 512 float32, 2,060 bytes a row; the first ``--rows``) in one riffledb table on
the loopback S3 server (moto, as in ``make bench-s3``: ranged GETs read the range alone,
one request handled at a time), and its train split in the same shuffled order as
there, read as a permutation (``Permutation.from_tables`` over a ``memory://``
permutation table of those row ids) in batches of ``--batch`` (256) Arrow rows. Every
pass starts with a fresh, empty ``cache_dir``: the cold reads are what is measured.

Real S3 answers a GET after tens of milliseconds and serves many at once; moto on
loopback answers in ~3 ms, one at a time. ``--latency-ms`` adds a delay to every request
before the server handles it, outside its one-at-a-time lock (so delays overlap, as
S3's do): 0 is moto as it is, 20 a typical time to first byte from S3 in the same region.
For each latency, cells:

- **plain**: ``for b in perm.iter(256)``: each batch read when asked for;
- **prefetch**: ``perm.iter(256, prefetch=8)``: 2 native threads read ahead (the
  defaults);
- **prefetch x8**: ``perm.iter(256, prefetch=16, prefetch_threads=8)``.

The loop does nothing but check the ids (every pass must deliver every row of the split
exactly once, or its cell reports FAIL). Rounds (``--repeats``, default 3; quick 1)
visit the cells in rotated order; figures are the median [min–max] rows/s, the requests
the server handled per batch, and the pipeline's ``io_s`` (summed over its threads) and
``wait_s``. Results: a Markdown table on stdout and
``benchmarks/results/s3-prefetch-<rows>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "python"))
sys.path.insert(2, str(REPO / "tests"))

import data  # noqa: E402
from common import git_revision, machine  # noqa: E402
from s3_take import (  # noqa: E402
    TABLE,
    counting_server,
    serve_ranges_in_place,
    train_offsets,
    vector_batches,
)

CELLS = {
    "plain": ("perm.iter(256)", {}),
    "prefetch": ("perm.iter(256, prefetch=8)", {"prefetch": 8}),
    "prefetch x8": (
        "perm.iter(256, prefetch=16, prefetch_threads=8)",
        {"prefetch": 16, "prefetch_threads": 8},
    ),
}


def delayed_server(base, latency: dict):
    """The counting server, each request first sleeping ``latency["s"]`` outside the
    server's lock (a dict: the driver changes it between cells)."""

    class Delayed(base):
        def _serialized(self, app):
            inner = super()._serialized(app)

            def delayed(environ, start_response):
                if latency["s"] > 0:
                    time.sleep(latency["s"])
                return inner(environ, start_response)

            return delayed

    return Delayed


def one_pass(riffledb, uri, options, perm_rows, batch, kwargs) -> dict:
    """A cold pass: a new connection with an empty cache, the whole split read."""
    from riffledb.permutation import Permutation

    table = riffledb.connect(uri, storage_options=options).open_table(TABLE)
    perm = Permutation.from_tables(table, perm_rows).with_format("arrow")
    seen = []
    t0 = time.perf_counter()
    iterator = perm.iter(batch, **kwargs)
    for b in iterator:
        seen.append(b.column("id").to_numpy())
    seconds = time.perf_counter() - t0
    stats = dict(iterator.stats) if kwargs else None
    return {"seconds": seconds, "ids": np.concatenate(seen), "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 50,000")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    parser.add_argument(
        "--latency-ms", default="0,20", help="comma list of per-request delays (ms)"
    )
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 repeat")
    args = parser.parse_args()
    rows = args.rows or (10_000 if args.quick else 50_000)
    repeats = args.repeats or (1 if args.quick else 3)
    latencies = [float(x) for x in args.latency_ms.split(",") if x.strip()]

    from harness.s3_server import BUCKET, S3Server

    import riffledb

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="riffledb-s3-prefetch-"))
    serve_ranges_in_place()
    latency = {"s": 0.0}
    server = delayed_server(counting_server(S3Server, BUCKET), latency)()
    options = server.storage_options()
    uri = f"s3://{BUCKET}/prefetch"
    results: dict = {}
    try:
        reader = pa.RecordBatchReader.from_batches(
            data.schema(TABLE), vector_batches(rows)
        )
        t0 = time.perf_counter()
        load_options = dict(options, cache_dir=str(tmp / "load-cache"))
        table = riffledb.connect(uri, storage_options=load_options).create_table(
            TABLE, reader
        )
        print(f"wrote {rows:,} rows to {uri} in {time.perf_counter() - t0:.1f} s")
        offsets = train_offsets(rows)
        # The split in s3_take's order, as base row ids: a permutation table in memory.
        from riffledb.permutation import Permutation

        all_ids = Permutation.from_tables(table).row_ids().to_numpy()
        perm_rows = riffledb.connect("memory://").create_table(
            "perm",
            pa.table(
                {
                    "row_id": pa.array(all_ids[offsets], pa.uint64()),
                    "split_id": pa.array(np.zeros(len(offsets), np.uint32)),
                }
            ),
        )
        expected = np.sort(offsets)
        cells = [(ms, name) for ms in latencies for name in CELLS]
        runs: dict = {f"{ms:g}/{name}": [] for ms, name in cells}
        for r in range(repeats):
            shift = r % len(cells)
            for ms, name in cells[shift:] + cells[:shift]:
                latency["s"] = ms / 1000
                cache = tmp / f"cache-{r}-{ms:g}-{name.replace(' ', '')}"
                before = server.snapshot()
                out = one_pass(
                    riffledb,
                    uri,
                    dict(options, cache_dir=str(cache), cache_size=str(1 << 32)),
                    perm_rows,
                    args.batch,
                    CELLS[name][1],
                )
                requests = (server.snapshot() - before)["requests"]
                ok = np.array_equal(np.sort(out.pop("ids")), expected)
                out.update(requests=requests, ok=ok)
                runs[f"{ms:g}/{name}"].append(out)
                print(
                    f"round {r + 1}/{repeats} latency {ms:g} ms {name:12} "
                    f"{len(offsets) / out['seconds']:10,.0f} rows/s"
                    f"{'' if ok else ' WRONG ROWS'}",
                    flush=True,
                )
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    batches = -(-len(offsets) // args.batch)
    print(
        f"\n`vectors` on moto: {rows:,} rows, the train split's {len(offsets):,} rows "
        f"in {batches} shuffled batches of {args.batch}, every pass with an empty "
        f"cache; median [min–max] of {repeats}\n"
    )
    print("| latency | cell | rows/s | ÷ plain | requests / batch | io_s | wait_s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for ms in latencies:
        plain = None
        for name in CELLS:
            passes = runs[f"{ms:g}/{name}"]
            if not all(p["ok"] for p in passes):
                print(f"| {ms:g} ms | {name} | **FAIL**: wrong rows | | | | |")
                continue
            rates = [len(offsets) / p["seconds"] for p in passes]
            median = statistics.median(rates)
            plain = median if name == "plain" else plain
            stats = passes[-1]["stats"] or {}
            requests = statistics.median(p["requests"] for p in passes) / batches
            print(
                f"| {ms:g} ms | `{CELLS[name][0]}` | {median:,.0f} "
                f"[{min(rates):,.0f}–{max(rates):,.0f}] | "
                f"{median / plain:.2f}× | {requests:.1f} | "
                f"{stats.get('io_s', float('nan')):.2f} | "
                f"{stats.get('wait_s', float('nan')):.2f} |"
            )
            results[f"{ms:g}/{name}"] = {
                "rows_per_s": rates,
                "requests_per_batch": requests,
                "stats_last": stats,
            }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"s3-prefetch-{rows}.json"
    path.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": machine(),
                "riffledb": git_revision(),
                "results": results,
            },
            indent=1,
        )
    )
    print(f"\nresults: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
