"""Offsets and row ids given as lists, ranges, generators, numpy or Arrow arrays."""

import numpy as np
import pyarrow as pa
import pytest


@pytest.fixture
def table(mem_db):
    return mem_db.create_table("t", pa.table({"a": np.arange(100, dtype=np.int64)}))


@pytest.mark.parametrize(
    "offsets",
    [
        [4, 2, 4],
        (4, 2, 4),
        range(4, 1, -2),
        np.array([4, 2, 4], dtype=np.int64),
        np.array([4, 2, 4], dtype=np.uint32),
        pa.array([4, 2, 4], pa.int16()),
    ],
    ids=["list", "tuple", "range", "int64", "uint32", "arrow"],
)
def test_offset_containers(table, offsets):
    expected = [4, 2, 4] if not isinstance(offsets, range) else [4, 2]
    assert table.take_offsets(offsets).to_arrow()["a"].to_pylist() == expected
    assert table.__getitems__(offsets)["a"].to_pylist() == expected


def test_offsets_from_generator(table):
    assert table.take_offsets(x for x in [9, 0]).to_list() == [{"a": 9}, {"a": 0}]


@pytest.mark.parametrize(
    ("offsets", "error", "message"),
    [
        ([1.5], TypeError, "got float at position 0"),
        ([True], TypeError, "got bool at position 0"),
        ([1, "x"], TypeError, "got str at position 1"),
        ([[1]], ValueError, "one-dimensional"),
        (5, TypeError, "sequence of integers, got int"),
        ("ab", TypeError, "sequence of integers, got str"),
        ([2**70], IndexError, "64-bit"),
        ([3, -1], IndexError, "Offset -1 at position 1"),
        (np.array([2**63], dtype=np.uint64), IndexError, "Offset 9223372036854775808"),
    ],
)
def test_bad_offsets(table, offsets, error, message):
    with pytest.raises(error, match=message):
        table.take_offsets(offsets).to_arrow()


def test_bad_row_ids(table):
    with pytest.raises(IndexError, match="Row id -3 at position 0 is negative"):
        table.take_row_ids([-3]).to_arrow()
    with pytest.raises(IndexError, match="Row id 100 at position 1"):
        table.take_row_ids(np.array([1, 100], dtype=np.uint64)).to_arrow()
