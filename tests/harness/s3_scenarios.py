"""What test_s3.py runs in its spawn children: appenders and readers of s3:// tables."""

from __future__ import annotations

import os
import pickle

import pyarrow as pa

import riffledb

APPENDS = 10  # appends per concurrent writer
GO_TIMEOUT = 60.0


def appender_scenarios(uri: str, options: dict[str, str], writer: int, go):
    """Opens table ``t``, waits for ``go`` (an Event), then appends APPENDS one-row
    batches with ids ``1000 * (writer + 1) + k``."""

    def append():
        table = riffledb.connect(uri, storage_options=options).open_table("t")
        assert go.wait(timeout=GO_TIMEOUT), f"writer {writer} was never told to go"
        for k in range(APPENDS):
            table.add(pa.table({"id": pa.array([1000 * (writer + 1) + k], pa.int64())}))
        return APPENDS

    yield "append", append


def read_pickled_table(blob: bytes) -> tuple[list[dict], int, int]:
    """Unpickles a table and reads it: ``(rows, version, this pid)``."""
    table = pickle.loads(blob)
    return table.to_arrow().to_pylist(), table.version, os.getpid()


def append_in_forked_child(table, queue) -> None:
    """In a fork child: appends one row (this pid) to the inherited ``table`` and puts
    ``(rows, version)`` or the error's repr on ``queue``."""
    try:
        table.add(pa.table({"id": pa.array([os.getpid()], pa.int64())}))
        queue.put((table.count_rows(), table.version))
    except BaseException as error:  # reported to the parent, which fails the test
        queue.put(repr(error))
