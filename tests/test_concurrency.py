"""Atomic commits: concurrent writers, readers during writes, a writer killed mid-commit.

Child processes use the "spawn" start method; every join has a timeout, after which the
test kills the child and fails, so a deadlock cannot hang the suite.
"""

import multiprocessing as mp
import os
import random
import signal
import threading
import time

import pyarrow as pa
import pytest

import riffledb

JOIN_TIMEOUT = 60
BATCHES = 50
ROWS = 10
INITIAL = 100


def _reap(procs) -> None:
    """Joins each process with a timeout; kills stragglers and fails the test."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    hung = []
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            hung.append(p.pid)
            p.kill()
            p.join(timeout=10)
    if hung:
        pytest.fail(f"child processes {hung} did not finish within {JOIN_TIMEOUT}s")


def _batch(start: int, writer: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + ROWS), pa.int64()),
            "writer": pa.array([writer] * ROWS, pa.int8()),
        }
    )


def _appender(db_path: str, writer: int, go) -> None:
    tbl = riffledb.connect(db_path).open_table("t")
    if not go.wait(timeout=JOIN_TIMEOUT):
        raise SystemExit(3)
    base = 1_000_000 * (writer + 1)
    for i in range(BATCHES):
        tbl.add(_batch(base + i * ROWS, writer))


@pytest.mark.slow
def test_two_processes_append_concurrently(tmp_path):
    db = riffledb.connect(tmp_path)
    tbl = db.create_table(
        "t",
        pa.table(
            {
                "id": pa.array(range(INITIAL), pa.int64()),
                "writer": pa.array([-1] * INITIAL, pa.int8()),
            }
        ),
    )
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_appender, args=(str(tmp_path), w, go)) for w in (0, 1)]
    for p in procs:
        p.start()
    go.set()
    _reap(procs)
    assert [p.exitcode for p in procs] == [0, 0]

    tbl.checkout_latest()
    assert tbl.count_rows() == INITIAL + 2 * BATCHES * ROWS
    # One version per append: a writer that loses the race retries on the new version.
    assert tbl.version == 1 + 2 * BATCHES
    assert [v["version"] for v in tbl.list_versions()] == list(range(1, 2 + 2 * BATCHES))

    out = tbl.search().with_row_id(True).to_arrow()
    ids = out["id"].to_pylist()
    writers = out["writer"].to_pylist()
    expected = {
        w: [1_000_000 * (w + 1) + k for k in range(BATCHES * ROWS)] for w in (0, 1)
    }
    assert sorted(ids) == list(range(INITIAL)) + expected[0] + expected[1]
    assert len(set(ids)) == len(ids)
    # Scan order is commit order, and each writer committed its batches in order.
    assert ids[:INITIAL] == list(range(INITIAL))
    for w in (0, 1):
        assert [i for i, x in zip(ids, writers, strict=True) if x == w] == expected[w]
    # Each append is its own fragment: rows come in runs of ROWS sharing a fragment id,
    # and no two appends got the same fragment id.
    rowids = out["_rowid"].to_pylist()
    frags = [r >> 32 for r in rowids[INITIAL:]]
    runs = [frags[k : k + ROWS] for k in range(0, len(frags), ROWS)]
    assert all(len(set(run)) == 1 for run in runs)
    assert len({run[0] for run in runs}) == 2 * BATCHES
    assert [r & 0xFFFFFFFF for r in rowids[INITIAL:]] == list(range(ROWS)) * 2 * BATCHES

    reopened = riffledb.connect(tmp_path).open_table("t")
    assert reopened.version == 1 + 2 * BATCHES
    assert reopened.count_rows() == INITIAL + 2 * BATCHES * ROWS


# ---------------------------------------------------------------------------------------
# SIGKILL during a series of appends

KILL_APPENDS = 200


def _killable_appender(db_path: str, done) -> None:
    tbl = riffledb.connect(db_path).open_table("t")
    for i in range(KILL_APPENDS):
        tbl.add(pa.table({"id": pa.array(range(i * ROWS, (i + 1) * ROWS), pa.int64())}))
        done.value = i + 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_writer_killed_mid_append(tmp_path, seed):
    db = riffledb.connect(tmp_path)
    db.create_table("t", schema=pa.schema([("id", pa.int64())]))
    kill_after = random.Random(seed).randint(1, KILL_APPENDS - 20)
    ctx = mp.get_context("spawn")
    # A RawValue: a lock held by the killed child would deadlock the parent.
    done = ctx.RawValue("i", 0)
    proc = ctx.Process(target=_killable_appender, args=(str(tmp_path), done))
    proc.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    # Wait until `kill_after` appends have returned; the kill then lands at a random
    # point in the next one(s). The sleep only paces the polling.
    while done.value < kill_after and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    if proc.is_alive():
        assert done.value >= kill_after, f"writer made no progress in {JOIN_TIMEOUT}s"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=10)
        assert proc.exitcode == -signal.SIGKILL
    else:
        # Only acceptable if the writer outran the poll and finished every append.
        proc.join(timeout=10)
        assert (proc.exitcode, done.value) == (0, KILL_APPENDS)
    acknowledged = done.value

    tbl = riffledb.connect(tmp_path).open_table("t")
    latest = tbl.version
    # Every append that returned is durable; at most the in-flight ones (the one being
    # committed and the one whose counter update was pre-empted) are extra.
    assert acknowledged + 1 <= latest <= acknowledged + 2
    versions = [v["version"] for v in tbl.list_versions()]
    assert versions == list(range(1, latest + 1))
    for v in versions:
        tbl.checkout(v)
        n = 10 * (v - 1)
        assert tbl.count_rows() == n, f"version {v}"
        assert tbl.to_arrow()["id"].to_pylist() == list(range(n)), f"version {v}"
    # The table stays writable: leftovers of the killed commit do not get in the way.
    tbl.checkout_latest()
    tbl.add(pa.table({"id": pa.array([-1], pa.int64())}))
    assert tbl.version == latest + 1
    assert tbl.count_rows() == 10 * (latest - 1) + 1
    assert riffledb.connect(tmp_path).open_table("t").version == latest + 1


# ---------------------------------------------------------------------------------------
# readers in threads see whole versions only


def test_readers_see_whole_versions_during_appends(tmp_path):
    db = riffledb.connect(tmp_path)
    db.create_table("t", pa.table({"id": pa.array(range(ROWS), pa.int64())}))
    n_appends = 40
    observed: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(k):
        try:
            tbl = riffledb.connect(tmp_path).open_table("t")
            while True:  # at least one read, however fast the writer is
                done = stop.is_set()
                tbl.checkout_latest()
                ids = tbl.to_arrow()["id"].to_pylist()
                # A whole version: a prefix of 0.. made of complete appends.
                assert ids == list(range(len(ids))), len(ids)
                assert len(ids) % ROWS == 0, len(ids)
                observed[k].append(len(ids))
                if done:
                    break
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    writer = db.open_table("t")
    try:
        for i in range(1, n_appends + 1):
            writer.add(pa.table({"id": pa.array(range(i * ROWS, (i + 1) * ROWS))}))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "reader thread hung"
    if errors:
        raise errors[0]
    for seen in observed:
        assert seen, "a reader never completed a read"
        assert seen == sorted(seen), "a reader went back to an older version"
        # Its last read started after the last append returned.
        assert seen[-1] == ROWS * (n_appends + 1)
    assert writer.count_rows() == ROWS * (n_appends + 1)


def test_threads_share_one_table_object(tmp_path):
    # Guess: a Table object may be used from several threads (reads release the GIL).
    tbl = riffledb.connect(tmp_path).create_table(
        "t", pa.table({"id": pa.array(range(1000), pa.int64())})
    )
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(k):
        try:
            offsets = [(k * 37 + j * 11) % 1000 for j in range(200)]
            got = tbl.take_offsets(offsets).to_arrow()["id"].to_pylist()
            results[k] = got if got == offsets else ["mismatch"]
        except BaseException as e:  # re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "worker thread hung"
    if errors:
        raise errors[0]
    assert sorted(results) == list(range(8))
    for k, got in results.items():
        assert got == [(k * 37 + j * 11) % 1000 for j in range(200)]
