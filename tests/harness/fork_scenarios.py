"""What test_fork.py runs in its children without torch: raw ``os.fork()`` while a
thread appends, while threads share one Table, and with objects made before the fork.

A forked child reports through its exit code (0, or which check failed) and stderr; the
scenario reaps it with harness.hang.wait_child.
"""

from __future__ import annotations

import os
import threading
import traceback

import numpy as np

import riffledb
from riffledb.permutation import Permutation, Permutations

from .data import (
    BUSY_ROWS,
    BUSY_TAKE,
    N_ROWS,
    busy_table,
    check_rows,
    memory_table,
    rows,
    split_ids,
    split_table,
)
from .hang import PROGRESS_TIMEOUT, wait_child

APPEND_ROWS = 10
# Appends between the shared-table appender's compactions.
COMPACT_EVERY = 100


def _whole_version(ids: list[int]) -> str | None:
    n = len(ids)
    if n == 0 or n % APPEND_ROWS:
        return f"{n} rows: not a whole number of appends"
    if ids != list(range(n)):
        return f"{n} rows but ids are not 0..{n - 1}"
    return None


def _latest(table):
    table.checkout_latest()
    return table


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
                # Compacted now and then: a child reads every fragment of the latest
                # version, and each commit writes a manifest listing them all. Without
                # it the table grew by a fragment an append (1,335 in one run) and the
                # test took 23-40 s on an idle machine; 10 s with. A fork may also land
                # in a compaction.
                if start // APPEND_ROWS % COMPACT_EVERY == 0:
                    shared.optimize()
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
                    code = 1  # raised: the traceback is on stderr
                    try:
                        ids = _latest(shared).to_arrow()["id"].to_pylist()
                        problem = _whole_version(ids)
                        if problem:
                            os.write(2, f"shared table child: {problem}\n".encode())
                            code = 2
                        else:
                            code = 0
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        os._exit(code)
                try:
                    code = wait_child(pid, timeout=20)
                except AssertionError as error:
                    raise AssertionError(f"fork {i}: {error}") from None
                assert code == 0, f"fork {i}: child exited with {code} (see stderr)"
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=PROGRESS_TIMEOUT)
        assert not errors, errors[0]
        return forks

    yield "forks", run


# -- objects made in the parent, used after os.fork() ------------------------------------

OBJECT_STEPS = [
    "directory table reads",
    "memory table reads",
    "used permutation reads",
    "used memory permutation",
    "iterator continues",
    "scan iterator continues",
    "rebuild permutation table",
    "parallel take",
]


def _objects_child(objs: dict) -> int:
    """Runs in the forked child; returns 0 or 10 + the index of the first failing step
    of OBJECT_STEPS."""
    steps = [
        (_check_table, objs["dir"], objs["dir_ids"]),
        (_check_table, objs["mem"], objs["mem_ids"]),
        (_check_perm, objs["perm"], objs["perm_ids"]),
        (_check_perm, objs["mem_perm"], objs["mem_perm_ids"]),
        (_check_iter, objs["iter"], objs["iter_rest"]),
        (_check_iter, objs["scan"], objs["scan_rest"]),
        (_check_rebuild, objs["dir"], objs["perm_ids"]),
        (_check_big_take, objs["busy_perm"], objs["busy_ids"]),
    ]
    for code, (what, (fn, *args)) in enumerate(
        zip(OBJECT_STEPS, steps, strict=True), start=10
    ):
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
