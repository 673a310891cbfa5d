"""Creating or appending from a stream never holds the whole input in memory."""

import os

import numpy as np
import pyarrow as pa

ROWS_PER_BATCH = 100_000
BATCHES = 35  # 3.5M rows: more than three 1M-row fragments


def _stream(table_dir, seen_files):
    schema = pa.schema([("id", pa.int64())])

    def batches():
        for i in range(BATCHES):
            data_dir = os.path.join(table_dir, "data")
            seen_files.append(len(os.listdir(data_dir)) if os.path.isdir(data_dir) else 0)
            start = i * ROWS_PER_BATCH
            yield pa.record_batch(
                [pa.array(np.arange(start, start + ROWS_PER_BATCH))], schema
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def test_create_from_reader_writes_fragments_while_reading(tmp_db):
    table_dir = os.path.join(tmp_db.uri, "big.riffle")
    seen_files = []
    table = tmp_db.create_table("big", _stream(table_dir, seen_files))
    assert len(table) == ROWS_PER_BATCH * BATCHES
    # The reader was pulled batch by batch: whole fragments were on disk before the input
    # ended, so at most one fragment's rows were ever buffered.
    assert seen_files[0] == 0
    assert seen_files[-1] >= 3
    assert table.take_offsets([0, 1_999_999, 3_499_999]).to_arrow()["id"].to_pylist() == [
        0,
        1_999_999,
        3_499_999,
    ]


def test_append_from_reader_streams_too(tmp_db):
    table_dir = os.path.join(tmp_db.uri, "big.riffle")
    table = tmp_db.create_table("big", pa.table({"id": pa.array([-1], pa.int64())}))
    seen_files = []
    before = len(os.listdir(os.path.join(table_dir, "data")))
    table.add(_stream(table_dir, seen_files))
    assert seen_files[-1] - before >= 3
    assert len(table) == 1 + ROWS_PER_BATCH * BATCHES
    assert table.count_rows("id < 0") == 1
