"""Tables pickle without native handles (spawn / forkserver DataLoader workers)."""

import pickle

import pyarrow as pa
import pytest

import riffledb


def test_local_table_pickles_by_uri_and_version(tmp_db):
    table = tmp_db.create_table("t", pa.table({"a": [1, 2, 3]}))
    data = pickle.dumps(table)
    assert len(data) < 300  # a path, a name and a version; no rows
    table.add(pa.table({"a": [4]}))  # version 2, after the pickle was taken
    restored = pickle.loads(data)
    assert restored.version == 1
    assert len(restored) == 3
    assert restored.to_arrow()["a"].to_pylist() == [1, 2, 3]
    restored.checkout_latest()
    assert restored.to_arrow()["a"].to_pylist() == [1, 2, 3, 4]


def test_pickle_of_unopened_copy_round_trips(tmp_db):
    table = tmp_db.create_table("t", pa.table({"a": [5]}))
    twice = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(table))))
    assert twice.to_arrow()["a"].to_pylist() == [5]


def test_memory_table_pickles_its_data(mem_db):
    schema = pa.schema([pa.field("a", pa.int64(), metadata={b"k": b"v"})]).with_metadata(
        {b"split_names": b'["x"]'}
    )
    table = mem_db.create_table("m", pa.table({"a": [7, 8]}, schema=schema))
    restored = pickle.loads(pickle.dumps(table))
    assert restored.name == "m"
    assert restored.schema == schema
    assert restored.schema.metadata == {b"split_names": b'["x"]'}
    assert restored.__getitems__([1, 0])["a"].to_pylist() == [8, 7]


def test_unpickled_table_of_dropped_table_fails_clearly(tmp_db):
    table = tmp_db.create_table("gone", pa.table({"a": [1]}))
    data = pickle.dumps(table)
    tmp_db.drop_table("gone")
    restored = pickle.loads(data)
    with pytest.raises(ValueError, match="Table 'gone' was not found"):
        len(restored)


def test_table_without_connection_cannot_pickle(mem_db):
    table = riffledb.table.Table(mem_db.create_table("t", pa.table({"a": [1]}))._inner)
    with pytest.raises(TypeError, match="no connection"):
        pickle.dumps(table)
