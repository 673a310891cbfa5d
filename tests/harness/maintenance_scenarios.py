"""What test_maintenance.py runs in its children: an appender racing maintenance."""

from __future__ import annotations

import pyarrow as pa

import riffledb

APPENDS = 40  # appends of the racing writer
ROWS = 10  # rows per append
BASE = 1_000_000  # its first id
GO_TIMEOUT = 60.0


def racing_appender_scenarios(db_path: str, go):
    """Waits for ``go``, then appends APPENDS batches of ids ``BASE + k``, in order."""

    def append():
        tbl = riffledb.connect(db_path).open_table("t")
        assert go.wait(timeout=GO_TIMEOUT), "the appender was never told to go"
        for i in range(APPENDS):
            start = BASE + i * ROWS
            tbl.add(pa.table({"id": pa.array(range(start, start + ROWS), pa.int64())}))
        return APPENDS

    yield "append", append


def read_pickled_permutation(blob: bytes, offsets: list[int]):
    """Unpickles a permutation (as a spawn DataLoader worker does) and takes ``offsets``:
    ``("ok", ids)``, or ``(exception class name, message)``."""
    import pickle

    try:
        rows = pickle.loads(blob).__getitems__(offsets)
        return ("ok", [row["id"] for row in rows])
    except Exception as e:  # noqa: BLE001 (the test asserts which one)
        return (type(e).__name__, str(e))
