"""What test_s3_cache.py runs in its children: readers of s3:// tables through the local
block cache (a warm cache, a damaged one, processes sharing one) and DataLoader workers
under each start method while parent threads read the same table.

Every row is a function of its id (:func:`rows`), so a child checks the values it read
itself and reports only facts: whether they were exact, and its ``riffledb.io_stats()``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
import traceback

import numpy as np
import pyarrow as pa

import riffledb
from riffledb.permutation import Permutation

from .hang import PROGRESS_TIMEOUT
from .stacks import arm_worker

DIM = 64  # vec: fixed_size_list<float32, 64>, 256 bytes a row
GO_TIMEOUT = 60.0


def rows(ids) -> pa.Table:
    """The rows with these ids: ``id`` int64, ``vec`` (``sin(64 * id + k)`` as float32)
    and ``s``, a string of 0 to 36 characters that depends on the id."""
    ids = np.asarray(ids, dtype=np.int64)
    vec = np.sin(ids[:, None] * DIM + np.arange(DIM)[None, :]).astype(np.float32)
    letters = "abcdefghijklmnopqrstuvwxyz"
    strings = [
        "".join(letters[(i + j) % 26] for j in range((i * 2654435761) % 37))
        for i in ids.tolist()
    ]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), DIM),
            "s": pa.array(strings, pa.string()),
        }
    )


def _mismatch(got: pa.Table, ids) -> str | None:
    """None if ``got`` holds exactly the rows ``ids`` in that order, else what differs."""
    want = rows(ids)
    if got.schema != want.schema:
        return f"schema {got.schema} != {want.schema}"
    if got.num_rows != want.num_rows:
        return f"{got.num_rows} rows, not {want.num_rows}"
    for name in want.column_names:
        a, b = got[name].combine_chunks(), want[name].combine_chunks()
        if not a.equals(b):
            bad = [k for k in range(len(b)) if a[k] != b[k]][:5]
            return f"column {name!r} differs at rows {bad}"
    return None


def take(uri: str, options: dict[str, str], name: str, offsets: list[int]) -> dict:
    """In a fresh process: connects, takes ``offsets`` of table ``name`` (whose ids are
    its offsets) and reports ``{"mismatch", "stats", "pid"}``; the stats count
    everything since the connect (the fragment's open too)."""
    riffledb.io_stats(reset=True)
    table = riffledb.connect(uri, storage_options=options).open_table(name)
    got = table.take_offsets(offsets).to_arrow()
    return {
        "mismatch": _mismatch(got, offsets),
        "stats": riffledb.io_stats(),
        "pid": os.getpid(),
    }


def scan(uri: str, options: dict[str, str], name: str, n: int) -> dict:
    """In a fresh process: reads every row of ``name`` (ids 0..n-1) with to_arrow();
    ``{"mismatch", "stats", "pid"}`` as :func:`take`."""
    riffledb.io_stats(reset=True)
    table = riffledb.connect(uri, storage_options=options).open_table(name)
    return {
        "mismatch": _mismatch(table.to_arrow(), range(n)),
        "stats": riffledb.io_stats(),
        "pid": os.getpid(),
    }


def take_scenarios(uri: str, options: dict[str, str], name: str, offsets: list[int]):
    """:func:`take` as a scenario generator (harness.hang.Child), for children that run
    at once."""
    yield "take", lambda: take(uri, options, name, offsets)


def take_after_go(
    uri: str, options: dict[str, str], name: str, chunks: list[list[int]], go
):
    """A scenario generator: connects and opens ``name``, waits for ``go`` (an Event),
    then takes each chunk of offsets in turn, checking every row."""

    def run():
        riffledb.io_stats(reset=True)
        table = riffledb.connect(uri, storage_options=options).open_table(name)
        assert go.wait(timeout=GO_TIMEOUT), "never told to go"
        problems = []
        for chunk in chunks:
            problem = _mismatch(table.take_offsets(chunk).to_arrow(), chunk)
            if problem:
                problems.append(problem)
        return {"problems": problems, "stats": riffledb.io_stats(), "pid": os.getpid()}

    yield "take", run


# -- DataLoader workers ------------------------------------------------------------------


def worker_init(worker_id: int) -> None:
    """Arms the hang detector's stack dumps (spawn, forkserver) and zeroes this worker's
    I/O counters (a fork worker inherits its parent's)."""
    arm_worker(worker_id)
    riffledb.io_stats(reset=True)


def collate(batch: pa.RecordBatch) -> dict:
    """Runs in the worker: the batch, who read it and the requests it sent for it."""
    import torch

    return {
        "batch": batch,
        "pid": os.getpid(),
        "worker": torch.utils.data.get_worker_info().id,
        "requests": riffledb.io_stats(reset=True)["requests"],
    }


def dataloader_scenarios(
    uri: str, options: dict[str, str], name: str, rows_in_first: int, methods: list[str]
):
    """For each start method (its own cache directory under ``options["cache_dir"]``):
    a DataLoader with two workers reads every row of table ``name`` through
    ``Permutation.identity`` while two threads of this process read it too: one takes
    rows of the first fragment from the very Table the permutation reads (its cached
    files are the ones a fork worker inherits), the other connects with a new empty cache
    each time, so it is inside the S3 client (requests in flight) when the workers fork.
    The first thread never reads past the first fragment: the workers fetch the rest."""
    import torch

    if "forkserver" in methods:
        mp.set_forkserver_preload(
            ["torch", "riffledb", "riffledb.permutation", "harness.s3_cache_scenarios"]
        )
    base_dir = options["cache_dir"]

    for method in methods:

        def run(method=method):
            mine = dict(options, cache_dir=os.path.join(base_dir, method))
            table = riffledb.connect(uri, storage_options=mine).open_table(name)
            n = table.count_rows()
            stop = threading.Event()
            counts = {"same": 0, "fresh": 0}
            errors: list[str] = []

            def same_table() -> None:
                rng = np.random.default_rng(1)
                try:
                    while not stop.is_set():
                        offsets = rng.integers(0, rows_in_first, 64).tolist()
                        problem = _mismatch(
                            table.take_offsets(offsets).to_arrow(), offsets
                        )
                        if problem:
                            raise AssertionError(f"same-table take: {problem}")
                        counts["same"] += 1
                except BaseException:
                    errors.append(traceback.format_exc())

            def fresh_cache() -> None:
                rng = np.random.default_rng(2)
                try:
                    while not stop.is_set():
                        scratch = tempfile.mkdtemp(prefix="riffledb-fresh-", dir=base_dir)
                        try:
                            other = riffledb.connect(
                                uri, storage_options=dict(options, cache_dir=scratch)
                            ).open_table(name)
                            offsets = rng.integers(0, n, 32).tolist()
                            got = other.take_offsets(offsets).to_arrow()
                            problem = _mismatch(got, offsets)
                            if problem:
                                raise AssertionError(f"fresh-cache take: {problem}")
                            counts["fresh"] += 1
                        finally:
                            shutil.rmtree(scratch, ignore_errors=True)
                except BaseException:
                    errors.append(traceback.format_exc())

            threads = [
                threading.Thread(target=f, daemon=True) for f in (same_table, fresh_cache)
            ]
            for t in threads:
                t.start()
            # The workers must start while both threads are busy: wait for their first
            # reads (not a timing bound: a deadline against a hang only).
            deadline = time.monotonic() + PROGRESS_TIMEOUT
            while min(counts.values()) == 0 and not errors:
                assert time.monotonic() < deadline, "the reader threads never read"
                time.sleep(0.001)
            try:
                permutation = Permutation.identity(table).with_format("arrow")
                loader = torch.utils.data.DataLoader(
                    permutation,
                    batch_size=400,
                    shuffle=True,
                    num_workers=2,
                    multiprocessing_context=method,
                    collate_fn=collate,
                    worker_init_fn=worker_init,
                    generator=torch.Generator().manual_seed(3),
                    timeout=60,
                )
                batches = list(loader)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=PROGRESS_TIMEOUT)
            assert not any(t.is_alive() for t in threads), "a reader thread hung"
            assert not errors, errors[0]
            ids = [i for b in batches for i in b["batch"]["id"].to_pylist()]
            got = pa.Table.from_batches([b["batch"] for b in batches])
            got = got.sort_by("id") if len(set(ids)) == len(ids) else got
            return {
                "rows": n,
                "ids": ids,
                "mismatch": _mismatch(got, sorted(ids)),
                "pids": sorted({b["pid"] for b in batches}),
                "workers": sorted({b["worker"] for b in batches}),
                "worker_requests": sum(b["requests"] for b in batches),
                "parent": os.getpid(),
                "reads": dict(counts),
            }

        yield method, run
