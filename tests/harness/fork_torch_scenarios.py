"""What test_fork.py runs in its torch children: a fork DataLoader started while threads
take from the same Permutation, and DataLoader workers that fork grandchildren."""

from __future__ import annotations

import collections
import json
import os
import select
import threading
import time
import traceback

import numpy as np
import pyarrow as pa

import riffledb
from riffledb.permutation import Permutation, Permutations, permutation_builder

from .data import (
    BUSY_ROWS,
    BUSY_SPLIT,
    BUSY_TAKE,
    EMB_DIM,
    busy_table,
    check_rows,
    collate_arrow,
    collate_nested,
    split_ids,
    split_table,
)
from .hang import PROGRESS_TIMEOUT, wait_child


def fork_while_busy_scenarios(db_path: str, rounds: int, threads: int):
    import torch

    table = busy_table(db_path)
    pt = (
        permutation_builder(table)
        .split_random(counts=[BUSY_SPLIT, BUSY_ROWS - BUSY_SPLIT], seed=1)
        .shuffle(seed=2)
        .execute()
    )
    perm = Permutation.from_tables(table, pt, 0).with_format("arrow")
    expected = np.asarray(split_ids(table, pt), dtype=np.int64)
    stop = threading.Event()
    takes = [0] * threads
    errors: list[str] = []

    def reader(k: int) -> None:
        rng = np.random.default_rng(k)
        try:
            while not stop.is_set():
                offsets = rng.integers(0, BUSY_SPLIT, BUSY_TAKE)
                batch = perm.__getitems__(offsets)
                ids = batch["id"].to_numpy()
                if not np.array_equal(ids, expected[offsets]):
                    raise AssertionError(f"thread {k}: wrong rows in take {takes[k]}")
                emb = batch["emb"].values.to_numpy().reshape(len(batch), -1)
                if not np.array_equal(emb[:, -1], ids + (EMB_DIM - 1)):
                    raise AssertionError(f"thread {k}: torn emb in take {takes[k]}")
                takes[k] += 1
        except BaseException:
            errors.append(traceback.format_exc())

    pool = [
        threading.Thread(target=reader, args=(k,), daemon=True) for k in range(threads)
    ]
    for t in pool:
        t.start()
    # Forks must find the threads inside takes: wait for each thread's first take.
    deadline = time.monotonic() + PROGRESS_TIMEOUT
    while min(takes) == 0 and not errors and time.monotonic() < deadline:
        time.sleep(0.001)
    want = collections.Counter(expected.tolist())

    for r in range(rounds):

        def one_round(r=r):
            loader = torch.utils.data.DataLoader(
                perm,
                batch_size=32,
                shuffle=True,
                num_workers=2,
                multiprocessing_context="fork",
                collate_fn=collate_arrow,
                generator=torch.Generator().manual_seed(r),
            )
            batches = list(loader)
            got = collections.Counter(i for b in batches for i in b["id"])
            if got != want:
                missing = sorted((want - got).elements())[:10]
                extra = sorted((got - want).elements())[:10]
                raise AssertionError(f"round {r}: missing {missing}, extra {extra}")
            for b in batches:
                check_rows(b["id"], b["x"])
            sizes = [len(b["id"]) for b in batches]
            assert sizes == [32] * 4 + [22], sizes
            assert {b["pid"] for b in batches} & {os.getpid()} == set()
            return sum(takes)

        yield f"round-{r:02d}", one_round

    def finish():
        stop.set()
        for t in pool:
            t.join(timeout=PROGRESS_TIMEOUT)
        assert not any(t.is_alive() for t in pool), "a reader thread hung"
        assert not errors, errors[0]
        return list(takes)

    yield "threads", finish


def read_pipe(fd: int, timeout: float = 60.0) -> bytes:
    """Everything written to the pipe until its writer closes it, or AssertionError."""
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no EOF on the pipe within {timeout:.0f}s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _grandchild_read(perm, indices) -> dict:
    """Forks a grandchild that reads ``indices`` through ``perm`` and reports the rows
    through a pipe; returns the report after checking the grandchild exited cleanly."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the grandchild: never returns
        code = 1
        try:
            os.close(r)
            batch = (
                perm.__getitems__(indices)
                if indices is not None
                else pa.Table.from_batches(list(perm.iter(64)))
            )
            report = {
                "id": batch["id"].to_pylist(),
                "x": batch["x"].to_pylist(),
                "pid": os.getpid(),
            }
            write_all(w, json.dumps(report).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = read_pipe(r, timeout=60)
    finally:
        os.close(r)
        code = wait_child(pid, timeout=60)
    if code != 0:
        raise AssertionError(f"grandchild {pid} exited with {code}")
    report = json.loads(data)
    assert report["pid"] == pid != os.getpid()
    return report


class NestedForkDataset:
    """A map-style dataset whose ``__getitems__`` (run in a DataLoader worker) forks a
    grandchild that reads the same rows through the same Permutation object."""

    def __init__(self, perm):
        self.perm = perm

    def __len__(self) -> int:
        return len(self.perm)

    def __getitems__(self, indices):
        mine = self.perm.__getitems__(indices)
        report = _grandchild_read(self.perm, list(indices))
        if report["id"] != mine["id"].to_pylist() or report["x"] != mine["x"].to_pylist():
            raise AssertionError(
                f"grandchild read {report['id'][:5]}..., worker {mine['id'][:5]}..."
            )
        return mine, report["pid"]


def nested_worker_init(worker_id: int) -> None:
    """Before the worker's first read, a grandchild reads the whole permutation (its
    reader rebuilt twice: worker, grandchild) and the worker checks it."""
    import torch

    perm = torch.utils.data.get_worker_info().dataset.perm
    report = _grandchild_read(perm, None)
    check_rows(report["id"], report["x"])
    mine = pa.Table.from_batches(list(perm.iter(64)))["id"].to_pylist()
    if report["id"] != mine:
        raise AssertionError(f"worker {worker_id}: grandchild's full read differs")


def nested_fork_scenarios(db_path: str):
    import torch

    def run():
        table = riffledb.connect(db_path).open_table("t")
        pt = split_table(table)
        perm = Permutations(table, pt)["train"].with_format("arrow")
        perm.__getitems__([0, 1, 2])  # the parent's reader exists before the fork
        loader = torch.utils.data.DataLoader(
            NestedForkDataset(perm),
            batch_size=100,
            shuffle=True,
            num_workers=2,
            multiprocessing_context="fork",
            collate_fn=collate_nested,
            worker_init_fn=nested_worker_init,
            generator=torch.Generator().manual_seed(0),
        )
        return {
            "batches": list(loader),
            "expected": split_ids(table, pt),
            "parent": os.getpid(),
        }

    yield "nested", run
