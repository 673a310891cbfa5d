"""Module-level helpers for the multi-process tests (test_dataloader.py, test_fork.py).

Everything a child process runs lives here, at module level, so that the ``spawn`` and
``forkserver`` start methods can import it by name. torch is imported lazily: children
that do not need it do not pay for its import (seconds on a busy machine).

The hang detector: :func:`run_scenarios` runs a *scenario generator* in a fresh ``spawn``
child of its own process group. The generator yields ``(name, fn)`` pairs; the child runs
each ``fn()`` and reports ``start`` / ``ok`` (with ``fn``'s picklable result) / ``error``
(with the traceback) through a pipe. The parent waits for progress; if a scenario makes
none for ``timeout`` seconds the whole group (child, DataLoader workers, forkserver,
grandchildren) is SIGKILLed and the scenario is reported as hung. Nothing here waits
without a timeout.
"""

from __future__ import annotations

import collections
import json
import multiprocessing as mp
import os
import select
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

import riffledb
from riffledb.permutation import Permutation, Permutations, permutation_builder

# Rows of the DataLoader tables. Odd, so that a 70 % split (699 rows) is odd too (the
# DistributedSampler pads) and neither 999 nor 699 is a multiple of BATCH.
N_ROWS = 999
BATCH = 33
SPLIT_SEED = 7
EMB_DIM = 32  # float32: 128 bytes a row, so a 16k-row take is split across the pool
PROGRESS_TIMEOUT = 150.0  # seconds without progress before a scenario counts as hung


# -- data --------------------------------------------------------------------------------


def rows(start: int, n: int, emb_dim: int = 0) -> pa.Table:
    """Rows ``start .. start+n-1``: ``id``, ``x = id / 2 + 1`` and optionally ``emb``
    (``emb[k] = id + k``), so any row's content can be checked from its id."""
    ids = np.arange(start, start + n, dtype=np.int64)
    columns = {"id": pa.array(ids), "x": pa.array(ids / 2 + 1, pa.float64())}
    if emb_dim:
        emb = (ids[:, None] + np.arange(emb_dim)[None, :]).astype(np.float32)
        columns["emb"] = pa.FixedSizeListArray.from_arrays(
            pa.array(emb.reshape(-1)), emb_dim
        )
    return pa.table(columns)


def check_rows(ids, xs) -> None:
    """Every delivered row is a whole row: its ``x`` matches its ``id``."""
    ids = np.asarray(ids, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.float64)
    bad = np.nonzero(xs != ids / 2 + 1)[0]
    if len(bad):
        i = int(bad[0])
        raise AssertionError(f"row id {ids[i]} came with x={xs[i]}, not {ids[i] / 2 + 1}")


def memory_table(name: str = "m"):
    """A ``memory://`` table of N_ROWS rows in three fragments with deleted rows, so its
    row ids are neither offsets nor contiguous."""
    db = riffledb.connect("memory://")
    t = db.create_table(name, rows(0, 400))
    t.add(rows(400, 400))
    t.add(rows(800, N_ROWS - 800 + 30))
    t.delete("id % 37 = 5")  # ids 5, 42, ..., 1004
    cut = t.to_arrow()["id"].to_pylist()[N_ROWS]
    t.delete(f"id >= {cut}")  # leaves the first N_ROWS of the others
    assert len(t) == N_ROWS, len(t)
    return t


def split_table(table, seed: int = SPLIT_SEED):
    return (
        permutation_builder(table)
        .split_random(ratios=[0.7, 0.3], seed=seed, split_names=["train", "test"])
        .shuffle(seed=seed)
        .execute()
    )


def split_ids(table, permutation_table, split: int = 0) -> list[int]:
    """The ids of a split's rows, in permutation order, computed without the reader."""
    base = table.search().with_row_id(True).to_arrow()
    by_rowid = dict(zip(base["_rowid"].to_pylist(), base["id"].to_pylist(), strict=True))
    perm = permutation_table.to_arrow()
    return [
        by_rowid[r]
        for r, s in zip(
            perm["row_id"].to_pylist(), perm["split_id"].to_pylist(), strict=True
        )
        if s == split
    ]


def dataset(table, kind: str):
    """``(dataset, collate_fn, expected ids)`` for a dataset kind over ``table``."""
    if kind == "table":
        return table, collate_table, table.to_arrow()["id"].to_pylist()
    if kind == "identity":
        return (
            Permutation.identity(table).with_format("torch"),
            collate_torch,
            table.to_arrow()["id"].to_pylist(),
        )
    if kind == "split":
        pt = split_table(table)
        perm = Permutations(table, pt)["train"].with_format("arrow")
        expected = split_ids(table, pt)
        assert len(perm) == len(expected) == round(0.7 * len(table))
        return perm, collate_arrow, expected
    raise ValueError(kind)


# -- collate functions (module level: they run in the workers) ---------------------------


def _stamp(ids, xs) -> dict:
    import torch

    info = torch.utils.data.get_worker_info()
    return {
        "id": [int(i) for i in ids],
        "x": [float(x) for x in xs],
        "pid": os.getpid(),
        "worker": None if info is None else info.id,
    }


def collate_table(batch: pa.Table) -> dict:
    """For ``Table.__getitems__`` (a ``pa.Table``)."""
    assert isinstance(batch, pa.Table), type(batch)
    return _stamp(batch["id"].to_pylist(), batch["x"].to_pylist())


def collate_arrow(batch: pa.RecordBatch) -> dict:
    """For a permutation in the ``"arrow"`` format."""
    assert isinstance(batch, pa.RecordBatch), type(batch)
    if "emb" in batch.schema.names:
        emb = batch["emb"].values.to_numpy().reshape(len(batch), -1)
        ids = batch["id"].to_numpy()
        if not (emb[:, 0] == ids).all():
            raise AssertionError("emb does not match id")
    return _stamp(batch["id"].to_pylist(), batch["x"].to_pylist())


def collate_torch(batch: list) -> dict:
    """For a permutation in the ``"torch"`` format (a list of row dicts of tensors)."""
    from torch.utils.data import default_collate

    out = default_collate(batch)
    return _stamp(out["id"].tolist(), out["x"].tolist())


def collate_nested(item) -> dict:
    batch, grandchild = item
    out = collate_arrow(batch)
    out["grandchild"] = grandchild
    return out


# -- the hang detector -------------------------------------------------------------------


@dataclass
class Outcome:
    what: str
    results: dict[str, tuple[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    hung: str | None = None  # the scenario running when the child was killed
    exitcode: int | None = None
    finished: bool = False  # the child reported the end of its scenarios
    exit_hang: bool = False  # ... but then did not exit

    def get(self, name: str) -> Any:
        """The result of scenario ``name``; pytest.fail with a precise message if it
        failed, hung or never ran."""
        import pytest

        if name in self.results:
            status, value = self.results[name]
            if status == "ok":
                if self.exit_hang:
                    pytest.fail(
                        f"{self.what}: the child finished every scenario but did not "
                        "exit (hang at interpreter exit); killed",
                        pytrace=False,
                    )
                return value
            pytest.fail(f"{self.what}: scenario {name!r} raised in the child:\n{value}")
        if self.hung == name:
            pytest.fail(
                f"{self.what}: scenario {name!r} HUNG (no progress for "
                f"{PROGRESS_TIMEOUT:.0f}s); process group killed",
                pytrace=False,
            )
        if self.hung is not None:
            pytest.fail(
                f"{self.what}: scenario {name!r} did not run: the child hung in "
                f"{self.hung!r} and was killed",
                pytrace=False,
            )
        pytest.fail(
            f"{self.what}: scenario {name!r} did not run: the child exited with code "
            f"{self.exitcode} after {self.order}",
            pytrace=False,
        )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_scenarios(target, *args, what: str, timeout: float = PROGRESS_TIMEOUT) -> Outcome:
    """Runs ``target(*args)`` (a generator of ``(name, fn)``) in a spawn child with a
    progress timeout. Never hangs."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, target, args), daemon=False)
    proc.start()
    send.close()
    outcome = Outcome(what)
    current = "<startup>"
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.hung = current
                break
            if not recv.poll(min(remaining, 1.0)):
                if not proc.is_alive() and not recv.poll(0):
                    break
                continue
            try:
                msg = recv.recv()
            except EOFError:
                break
            deadline = time.monotonic() + timeout
            if msg[0] == "start":
                current = msg[1]
                outcome.order.append(current)
            elif msg[0] in ("ok", "error"):
                outcome.results[msg[1]] = (msg[0], msg[2])
                current = "<between scenarios>"
            elif msg[0] == "end":
                outcome.finished = True
                current = "<exit>"
                break
    finally:
        if outcome.hung is not None:
            _kill_group(proc.pid)
        proc.join(timeout=60 if outcome.hung is None else 10)
        if proc.is_alive():
            outcome.exit_hang = outcome.finished
            if outcome.hung is None:
                outcome.hung = current
            _kill_group(proc.pid)
            proc.join(timeout=10)
        else:
            # Leftovers (a forkserver, an orphaned worker) must not outlive the test.
            _kill_group(proc.pid)
        outcome.exitcode = proc.exitcode
        recv.close()
    return outcome


class Running:
    """:func:`run_scenarios` in a parent thread, so that several children run at once.
    The thread drains the child's pipe as it goes, so the progress timeout of each child
    is measured independently."""

    def __init__(self, target, *args, what: str, timeout: float = PROGRESS_TIMEOUT):
        self._outcome: Outcome | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(target, args, what, timeout), daemon=True
        )
        self._thread.start()

    def _run(self, target, args, what, timeout) -> None:
        try:
            self._outcome = run_scenarios(target, *args, what=what, timeout=timeout)
        except BaseException as error:
            self._error = error

    def outcome(self) -> Outcome:
        # run_scenarios cannot take longer than one timeout per message, plus reaping.
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome


def _child_main(conn, target, args) -> None:
    os.setpgrp()  # the parent kills the whole group on a hang
    try:
        for name, fn in target(*args):
            conn.send(("start", name))
            try:
                result = fn()
            except BaseException:
                conn.send(("error", name, traceback.format_exc()))
            else:
                conn.send(("ok", name, result))
    except BaseException:
        conn.send(("error", "<generator>", traceback.format_exc()))
    conn.send(("end",))
    conn.close()


def wait_child(pid: int, timeout: float = 60.0) -> int:
    """``waitpid`` with a deadline: returns the exit code (negative signal number), or
    kills the child and raises AssertionError on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} hung for {timeout:.0f}s; killed")
        time.sleep(0.005)


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


def sleeper_scenarios():
    """For the hang detector's own test."""
    yield "quick", lambda: True
    yield "forever", lambda: time.sleep(3600)


# -- DataLoader scenarios (test_dataloader.py) -------------------------------------------


def _loader(ds, collate, method: str, seed: int, **kwargs):
    import torch

    return torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=2,
        multiprocessing_context=method,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def _epoch(ds, collate, expected, method, seed):
    batches = list(_loader(ds, collate, method, seed))
    return {"batches": batches, "expected": expected, "parent": os.getpid()}


def _persistent(ds, collate, expected, method):
    loader = _loader(ds, collate, method, 3, persistent_workers=True)
    epochs = [list(loader) for _ in range(2)]
    return {"epochs": epochs, "expected": expected, "parent": os.getpid()}


def _distributed(ds, collate, expected, method, num_replicas):
    import torch

    per_rank = []
    for rank in range(num_replicas):
        sampler = torch.utils.data.DistributedSampler(
            ds,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=5,
            drop_last=False,
        )
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=BATCH,
            sampler=sampler,
            num_workers=2,
            multiprocessing_context=method,
            collate_fn=collate,
        )
        per_rank.append({"batches": list(loader), "indices": list(sampler)})
    return {"ranks": per_rank, "expected": expected, "parent": os.getpid()}


STORES = {"fork": ["dir", "memory"], "spawn": ["dir"], "forkserver": ["dir", "memory"]}
KINDS = ["table", "identity", "split"]


def dataloader_scenarios(method: str, db_path: str):
    """Every DataLoader scenario of one start method, in one child (see run_scenarios)."""
    import torch  # noqa: F401  (before the forkserver starts, so its preload is cheap)

    if method == "forkserver":
        mp.set_forkserver_preload(["torch", "riffledb", "riffledb.permutation", __name__])
    tables = {}

    def table(store):
        if store not in tables:
            if store == "dir":
                tables[store] = riffledb.connect(db_path).open_table("t")
            else:
                tables[store] = memory_table()
        return tables[store]

    for store in STORES[method]:
        for kind in KINDS:

            def run(store=store, kind=kind):
                ds, collate, expected = dataset(table(store), kind)
                return _epoch(ds, collate, expected, method, seed=11)

            yield f"{store}-{kind}", run

    def persistent():
        ds, collate, expected = dataset(table("dir"), "split")
        return _persistent(ds, collate, expected, method)

    yield "persistent", persistent

    if method == "fork":

        def distributed():
            ds, collate, expected = dataset(table("dir"), "split")
            return _distributed(ds, collate, expected, method, 2)

        yield "distributed", distributed


# -- fork while busy (test_fork.py) ------------------------------------------------------

BUSY_ROWS = 4000
BUSY_SPLIT = 150  # rows the DataLoader reads per round: 4 batches of 32 and one of 22
BUSY_TAKE = 16384  # offsets per reader-thread take: > 1 MiB of emb, so the pool is used


def busy_table(db_path: str | None = None):
    db = riffledb.connect(db_path if db_path else "memory://")
    return db.create_table("busy", rows(0, BUSY_ROWS, EMB_DIM))


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


# -- nested fork (test_fork.py) ----------------------------------------------------------


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


# -- fork mid-append (test_fork.py) ------------------------------------------------------

APPEND_ROWS = 10


def _whole_version(ids: list[int]) -> str | None:
    n = len(ids)
    if n == 0 or n % APPEND_ROWS:
        return f"{n} rows: not a whole number of appends"
    if ids != list(range(n)):
        return f"{n} rows but ids are not 0..{n - 1}"
    return None


def _mid_append_child(db_path: str, reader) -> int:
    """In a child forked while ``writer`` appends: every way to read sees a whole version.
    Returns the exit code (0, or which read failed)."""
    checks = [
        ("inherited reader checkout_latest", lambda: _latest(reader)),
        ("fresh connection", lambda: riffledb.connect(db_path).open_table("t")),
        ("inherited reader, version as forked", lambda: reader),
    ]
    for code, (what, get) in enumerate(checks, start=10):
        try:
            table = get()
            ids = table.to_arrow()["id"].to_pylist()
            problem = _whole_version(ids) or (
                None if len(table) == len(ids) else "len() disagrees with to_arrow()"
            )
        except BaseException:
            traceback.print_exc()
            problem = "raised"
        if problem:
            os.write(2, f"mid-append child: {what}: {problem}\n".encode())
            return code
    return 0


def _latest(table):
    table.checkout_latest()
    return table


def fork_mid_append_scenarios(db_path: str, forks: int):
    reader = riffledb.connect(db_path).open_table("t")
    writer = riffledb.connect(db_path).open_table("t")
    stop = threading.Event()
    appended = threading.Event()
    errors: list[str] = []
    count = [0]

    def append_loop():
        try:
            start = len(writer)
            while not stop.is_set():
                writer.add(rows(start, APPEND_ROWS))
                start += APPEND_ROWS
                count[0] += 1
                appended.set()
        except BaseException:
            errors.append(traceback.format_exc())
            appended.set()

    thread = threading.Thread(target=append_loop, daemon=True)
    thread.start()
    assert appended.wait(PROGRESS_TIMEOUT), "the writer never appended"
    reader.checkout_latest()  # a non-empty version before the first fork

    for i in range(forks):

        def one_fork(i=i):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _mid_append_child(db_path, reader)
                finally:
                    os._exit(code)
            code = wait_child(pid, timeout=60)
            assert code == 0, f"fork {i}: child exited with {code} (see stderr)"
            return count[0]

        yield f"fork-{i:02d}", one_fork

    def finish():
        stop.set()
        thread.join(timeout=PROGRESS_TIMEOUT)
        assert not thread.is_alive(), "the writer thread hung"
        assert not errors, errors[0]
        writer.checkout_latest()
        ids = writer.to_arrow()["id"].to_pylist()
        assert _whole_version(ids) is None
        return count[0]

    yield "writer", finish


def fork_shared_table_scenarios(db_path: str, forks: int):
    """One Table object used by three threads (an appender, two checkout_latest/len
    loops) while the main thread forks: each child uses that same object."""
    shared = riffledb.connect(db_path).open_table("t")
    stop = threading.Event()
    errors: list[str] = []

    def appender():
        try:
            start = len(shared)
            while not stop.is_set():
                shared.add(rows(start, APPEND_ROWS))
                start += APPEND_ROWS
        except BaseException:
            errors.append(traceback.format_exc())

    def refresher():
        try:
            while not stop.is_set():
                shared.checkout_latest()
                len(shared)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [
        threading.Thread(target=f, daemon=True) for f in (appender, refresher, refresher)
    ]
    for t in threads:
        t.start()

    def run():
        try:
            for i in range(forks):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        ids = _latest(shared).to_arrow()["id"].to_pylist()
                        problem = _whole_version(ids)
                        if problem:
                            os.write(2, f"shared table child: {problem}\n".encode())
                            code = 2
                        else:
                            code = 0
                    finally:
                        os._exit(code)
                try:
                    code = wait_child(pid, timeout=20)
                except AssertionError as error:
                    raise AssertionError(f"fork {i}: {error}") from None
                assert code == 0, f"fork {i}: child exited with {code}"
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=PROGRESS_TIMEOUT)
        assert not errors, errors[0]
        return forks

    yield "forks", run


# -- objects made in the parent, used after os.fork() (test_fork.py) ---------------------


def _objects_child(objs: dict) -> int:
    """Runs in the forked child; returns 0 or the number of the first failing step."""
    steps = [
        ("directory table reads", _check_table, objs["dir"], objs["dir_ids"]),
        ("memory table reads", _check_table, objs["mem"], objs["mem_ids"]),
        ("used permutation reads", _check_perm, objs["perm"], objs["perm_ids"]),
        ("used memory permutation", _check_perm, objs["mem_perm"], objs["mem_perm_ids"]),
        ("iterator continues", _check_iter, objs["iter"], objs["iter_rest"]),
        ("scan iterator continues", _check_iter, objs["scan"], objs["scan_rest"]),
        ("rebuild permutation table", _check_rebuild, objs["dir"], objs["perm_ids"]),
        ("parallel take", _check_big_take, objs["busy_perm"], objs["busy_ids"]),
    ]
    for code, (what, fn, *args) in enumerate(steps, start=10):
        try:
            fn(*args)
        except BaseException:
            os.write(2, f"after fork, {what} failed:\n".encode())
            traceback.print_exc()
            return code
    return 0


def _check_table(table, ids):
    assert len(table) == len(ids)
    assert table.to_arrow()["id"].to_pylist() == ids
    pick = [len(ids) - 1, 0, 17, 17]
    got = table.__getitems__(pick)
    assert got["id"].to_pylist() == [ids[i] for i in pick]
    check_rows(got["id"].to_pylist(), got["x"].to_pylist())
    assert table.count_rows("id % 2 = 0") == sum(1 for i in ids if i % 2 == 0)


def _check_perm(perm, ids):
    assert len(perm) == len(ids)
    offsets = list(range(len(ids)))[::-1]
    got = perm.__getitems__(offsets)
    assert got["id"].to_pylist() == [ids[i] for i in offsets]
    check_rows(got["id"].to_pylist(), got["x"].to_pylist())


def _check_iter(it, rest):
    got = [i for batch in it for i in batch["id"].to_pylist()]
    assert got == rest, (got[:5], rest[:5])


def _check_rebuild(table, ids):
    pt = split_table(table)
    assert split_ids(table, pt) == ids
    assert Permutations(table, pt)["train"].__getitems__([0])[0]["id"] == ids[0]


def _check_big_take(perm, ids):
    offsets = np.random.default_rng(3).integers(0, len(ids), BUSY_TAKE)
    got = perm.__getitems__(offsets)["id"].to_numpy()
    assert np.array_equal(got, np.asarray(ids)[offsets])


def objects_after_fork_scenarios(db_path: str):
    def run():
        dir_table = riffledb.connect(db_path).open_table("t")
        mem = memory_table()
        pt = split_table(dir_table)
        perm = Permutations(dir_table, pt)["train"].with_format("arrow")
        perm_ids = split_ids(dir_table, pt)
        mem_pt = split_table(mem)
        mem_perm = Permutations(mem, mem_pt)["test"].with_format("arrow")
        mem_perm_ids = split_ids(mem, mem_pt, split=1)
        busy = busy_table()
        busy_perm = Permutation.identity(busy).with_format("arrow")
        busy_ids = list(range(BUSY_ROWS))
        # Use everything once, so native readers exist and the pool's threads run.
        _check_perm(perm, perm_ids)
        _check_perm(mem_perm, mem_perm_ids)
        _check_big_take(busy_perm, busy_ids)
        it = perm.iter(50)
        first = next(it)["id"].to_pylist()
        assert first == perm_ids[:50]
        scan = dir_table.search().to_batches(100)
        assert next(scan)["id"].to_pylist() == list(range(100))
        objs = {
            "dir": dir_table,
            "dir_ids": list(range(N_ROWS)),
            "mem": mem,
            "mem_ids": mem.to_arrow()["id"].to_pylist(),
            "perm": perm,
            "perm_ids": perm_ids,
            "mem_perm": mem_perm,
            "mem_perm_ids": mem_perm_ids,
            "iter": it,
            "iter_rest": perm_ids[50:],
            "scan": scan,
            "scan_rest": list(range(100, N_ROWS)),
            "busy_perm": busy_perm,
            "busy_ids": busy_ids,
        }
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _objects_child(objs)
            finally:
                os._exit(code)
        code = wait_child(pid, timeout=90)
        # The parent's objects are untouched by the child's use of its copies.
        _check_iter(it, perm_ids[50:])
        _check_iter(scan, list(range(100, N_ROWS)))
        _check_perm(perm, perm_ids)
        return code

    yield "objects", run
