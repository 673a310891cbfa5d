"""What test_concurrency.py runs in its children: appending writers."""

from __future__ import annotations

import pyarrow as pa

import riffledb

BATCHES = 50  # appends per concurrent writer
ROWS = 10  # rows per append
KILL_APPENDS = 200  # appends the killed writer would make if left alone
GO_TIMEOUT = 60.0


def _batch(start: int, writer: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + ROWS), pa.int64()),
            "writer": pa.array([writer] * ROWS, pa.int8()),
        }
    )


def appender_scenarios(db_path: str, writer: int, go):
    """Opens the table, waits for ``go`` (an Event), then appends BATCHES batches of
    ids ``1_000_000 * (writer + 1) + k``."""

    def append():
        tbl = riffledb.connect(db_path).open_table("t")
        assert go.wait(timeout=GO_TIMEOUT), f"writer {writer} was never told to go"
        base = 1_000_000 * (writer + 1)
        for i in range(BATCHES):
            tbl.add(_batch(base + i * ROWS, writer))
        return BATCHES

    yield "append", append


def killable_appender_scenarios(db_path: str, done):
    """Appends ids ``0 ..`` ROWS at a time, KILL_APPENDS times, counting the appends
    that returned in ``done`` (a RawValue: a lock held by the killed child would
    deadlock the parent)."""

    def append():
        tbl = riffledb.connect(db_path).open_table("t")
        for i in range(KILL_APPENDS):
            ids = pa.array(range(i * ROWS, (i + 1) * ROWS), pa.int64())
            tbl.add(pa.table({"id": ids}))
            done.value = i + 1
        return KILL_APPENDS

    yield "append", append
