"""Atomic commits: concurrent writers, readers during writes, a writer killed mid-commit.

Writers run in spawn children (harness.concurrency_scenarios) watched by the hang
detector (harness.hang.Child): a child that makes no progress within JOIN_TIMEOUT
seconds fails the test with its stacks, so a deadlock cannot hang the suite.
"""

import multiprocessing as mp
import random
import shutil
import signal
import threading
import time

import pyarrow as pa
import pytest
from harness.concurrency_scenarios import (
    BATCHES,
    KILL_APPENDS,
    ROWS,
    appender_scenarios,
    killable_appender_scenarios,
)
from harness.hang import Child
from harness.soak import SoakLoop

import riffledb

JOIN_TIMEOUT = 60
INITIAL = 100


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
    go = mp.get_context("spawn").Event()
    writers = [
        Child(
            appender_scenarios,
            str(tmp_path),
            w,
            go,
            what=f"writer {w}",
            timeout=JOIN_TIMEOUT,
        )
        for w in (0, 1)
    ]
    go.set()
    outcomes = [w.outcome() for w in writers]
    assert [o.get("append") for o in outcomes] == [BATCHES, BATCHES]
    assert [o.exitcode for o in outcomes] == [0, 0]

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


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_writer_killed_mid_append(tmp_path, seed):
    # One kill per seed; `make soak` repeats it with further kill points (harness.soak).
    rng = random.Random(seed)
    with SoakLoop(f"kill -9 mid-append (seed {seed})", rounds=1) as loop:
        for round_ in loop:
            path = tmp_path / f"db{round_}"
            _kill_writer_and_check(path, rng, loop)
            shutil.rmtree(path)  # a soak makes hundreds; a failed round keeps its own


def _kill_writer_and_check(path, rng, loop):
    db = riffledb.connect(path)
    db.create_table("t", schema=pa.schema([("id", pa.int64())]))
    kill_after = rng.randint(1, KILL_APPENDS - 20)
    # A RawValue: a lock held by the killed child would deadlock the parent.
    done = mp.get_context("spawn").RawValue("i", 0)
    writer = Child(
        killable_appender_scenarios,
        str(path),
        done,
        what="writer to kill",
        timeout=JOIN_TIMEOUT,
    )
    deadline = time.monotonic() + JOIN_TIMEOUT
    # Wait until `kill_after` appends have returned; the kill then lands at a random
    # point in the next one(s). The sleep only paces the polling.
    while done.value < kill_after and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    if writer.is_alive():
        writer.kill()
        if done.value < kill_after:
            loop.add("hangs")
        assert done.value >= kill_after, f"writer made no progress in {JOIN_TIMEOUT}s"
        assert writer.outcome().exitcode == -signal.SIGKILL
        loop.add("kills")
    else:
        # Only acceptable if the writer outran the poll and finished every append.
        outcome = writer.outcome()
        assert (outcome.get("append"), outcome.exitcode, done.value) == (
            KILL_APPENDS,
            0,
            KILL_APPENDS,
        )
    acknowledged = done.value

    tbl = riffledb.connect(path).open_table("t")
    latest = tbl.version
    # Rows of appends that returned but are not in the latest version.
    loop.add("lost_rows", ROWS * max(0, acknowledged + 1 - latest))
    # Every append that returned is durable; at most the in-flight ones (the one being
    # committed and the one whose counter update was pre-empted) are extra.
    assert acknowledged + 1 <= latest <= acknowledged + 2
    versions = [v["version"] for v in tbl.list_versions()]
    assert versions == list(range(1, latest + 1))
    for v in versions:
        tbl.checkout(v)
        n = 10 * (v - 1)
        ids = tbl.to_arrow()["id"].to_pylist()
        loop.add("versions_checked")
        loop.add("rows_checked", len(ids))
        if ids != list(range(n)):
            loop.add("partial_versions")
        assert tbl.count_rows() == n, f"version {v}"
        assert ids == list(range(n)), f"version {v}"
    # The table stays writable: leftovers of the killed commit do not get in the way.
    tbl.checkout_latest()
    tbl.add(pa.table({"id": pa.array([-1], pa.int64())}))
    assert tbl.version == latest + 1
    assert tbl.count_rows() == 10 * (latest - 1) + 1
    assert riffledb.connect(path).open_table("t").version == latest + 1


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
