"""Scale-out ingest (issue #11, item 6): rows/s of writing one table.

``make bench-ingest`` (``INGEST_ROWS=N`` to change N) or::

    PYTHONPATH=python:tests .venv/bin/python benchmarks/ingest.py --rows 1000000

Writes the same ``--rows`` rows (``id`` int64, ``label`` int32, ``vec`` 64 float32: 268
bytes a row) as ``--blocks`` Arrow tables, into a fresh table each repeat, with:

- **add**: one process calling ``table.add(...)`` once per block (a commit per block,
  as a loop over a data source would);
- **add, one call**: one ``table.add`` of a reader over every block (one commit);
- **Ray datasink**: ``ray.data.from_arrow(blocks).write_datasink(RiffleDatasink(...))``
  on a local cluster of ``--cpus`` CPUs (2 tasks write at once, one commit). The blocks
  are in Ray's object store before the clock starts; ``ray.init`` is not counted.

each on a local directory and, with ``--s3``, on the loopback S3 server the tests use
(moto: a Python server, so its figures measure moto as much as riffledb). LanceDB's Ray
writer lives in pylance (``lance.ray``), which the dev virtualenv does not install: not
measured. Reports the median of ``--repeats`` runs and each rate relative to ``add``.
Results: a table on stdout and ``benchmarks/results/ingest-<rows>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))
# Ray's workers import riffledb from the tree under test, as this process does.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [sys.path[0]] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
)

import riffledb  # noqa: E402

DIM = 64


def make_blocks(rows: int, blocks: int) -> list[pa.Table]:
    rng = np.random.default_rng(11)
    step = -(-rows // blocks)
    out = []
    for start in range(0, rows, step):
        n = min(step, rows - start)
        vec = rng.standard_normal(n * DIM, dtype=np.float32)
        out.append(
            pa.table(
                {
                    "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                    "label": pa.array(
                        (np.arange(start, start + n) % 10).astype(np.int32)
                    ),
                    "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec), DIM),
                }
            )
        )
    return out


def run_add(db, blocks) -> float:
    name = f"t{uuid.uuid4().hex[:8]}"
    table = db.create_table(name, schema=blocks[0].schema)
    t0 = time.perf_counter()
    for block in blocks:
        table.add(block)
    seconds = time.perf_counter() - t0
    db.drop_table(name)
    return seconds


def run_add_once(db, blocks) -> float:
    name = f"t{uuid.uuid4().hex[:8]}"
    table = db.create_table(name, schema=blocks[0].schema)
    reader = pa.RecordBatchReader.from_batches(
        blocks[0].schema, (b for t in blocks for b in t.to_batches())
    )
    t0 = time.perf_counter()
    table.add(reader)
    seconds = time.perf_counter() - t0
    db.drop_table(name)
    return seconds


def run_ray(db, uri, options, dataset) -> float:
    from riffledb.ray import RiffleDatasink

    name = f"t{uuid.uuid4().hex[:8]}"
    sink = RiffleDatasink(uri, name, mode="create", storage_options=options)
    t0 = time.perf_counter()
    dataset.write_datasink(sink)
    seconds = time.perf_counter() - t0
    db.drop_table(name)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--s3", action="store_true", help="also write to moto on loopback"
    )
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    blocks = make_blocks(args.rows, args.blocks)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.from_arrow(blocks).materialize()

    stores = []
    tmp = tempfile.mkdtemp(prefix="riffledb-ingest-")
    stores.append(("directory", tmp, None))
    server = None
    if args.s3:
        from harness.s3_server import BUCKET, S3Server

        server = S3Server()
        stores.append(("s3 (moto)", f"s3://{BUCKET}/ingest", server.storage_options()))

    results = []
    try:
        for store, uri, options in stores:
            db = (
                riffledb.connect(uri, storage_options=options)
                if options
                else riffledb.connect(uri)
            )
            runs = {
                "add, a commit per block": functools.partial(run_add, db, blocks),
                "add, one call": functools.partial(run_add_once, db, blocks),
                f"Ray datasink, {args.cpus} CPUs": functools.partial(
                    run_ray, db, uri, options, dataset
                ),
            }
            for what, fn in runs.items():
                fn()  # warm-up
                seconds = statistics.median(fn() for _ in range(args.repeats))
                results.append(
                    {
                        "store": store,
                        "writer": what,
                        "seconds": seconds,
                        "rows_per_s": args.rows / seconds,
                    }
                )
                print(
                    f"{store:12} {what:28} {seconds:7.2f} s "
                    f"{args.rows / seconds:12,.0f} rows/s",
                    flush=True,
                )
    finally:
        ray.shutdown()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{args.rows:,} rows, {args.blocks} blocks, median of {args.repeats}\n")
    print("| store | writer | s | rows/s | ÷ add per block |")
    print("|---|---|---:|---:|---:|")
    for r in results:
        base = next(x for x in results if x["store"] == r["store"])["rows_per_s"]
        print(
            f"| {r['store']} | {r['writer']} | {r['seconds']:.2f} | "
            f"{r['rows_per_s']:,.0f} | {r['rows_per_s'] / base:.2f}× |"
        )
    out = Path(__file__).resolve().parent / "results" / f"ingest-{args.rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
