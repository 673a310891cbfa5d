"""Every Arrow type round-trips (values, nulls, type, metadata) through a table.

Each case goes through three backends: a directory database, the same directory reopened
by a fresh connection, and `memory://`.
"""

import datetime
import decimal

import numpy as np
import pyarrow as pa
import pytest

import riffledb

D = datetime.date
DT = datetime.datetime


def _ts(unit, tz=None):
    # Second-resolution values, exact in every unit; plus the unit's own smallest step.
    step = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    values = [0, 1_700_000_000 * step, None, -86_400 * step, 1_700_000_000 * step + 1]
    return pa.array(values, pa.timestamp(unit, tz=tz))


POINT = pa.struct([("x", pa.int32()), ("label", pa.string())])

CASES = {
    "int8": pa.array([-128, 0, None, 127], pa.int8()),
    "int16": pa.array([-32768, 1, None, 32767], pa.int16()),
    "int32": pa.array([-(2**31), 2, None, 2**31 - 1], pa.int32()),
    "int64": pa.array([-(2**63), 3, None, 2**63 - 1], pa.int64()),
    "uint8": pa.array([0, 1, None, 255], pa.uint8()),
    "uint16": pa.array([0, 1, None, 65535], pa.uint16()),
    "uint32": pa.array([0, 1, None, 2**32 - 1], pa.uint32()),
    "uint64": pa.array([0, 1, None, 2**64 - 1], pa.uint64()),
    "float16": pa.array(np.array([0.5, -2.0, 65504.0, 1.0], np.float16)),
    "float16_nulls": pa.array(
        np.array([0.5, 0.0, 1.0], np.float16), mask=np.array([False, True, False])
    ),
    "float32": pa.array([1.5, None, -3.25, float("inf")], pa.float32()),
    "float64": pa.array([1e-300, None, -1e300, float("-inf")], pa.float64()),
    "bool": pa.array([True, False, None, True], pa.bool_()),
    "string": pa.array(["", "héllo ✓", None, "x" * 1000], pa.string()),
    "large_string": pa.array(["a", None, "ünïcode", ""], pa.large_string()),
    "binary": pa.array([b"\x00\x01", b"", None, b"\xff" * 10], pa.binary()),
    "large_binary": pa.array([b"\x00", None, b"abc", b""], pa.large_binary()),
    # Stored as views (polars' strings are): inline (<= 12 bytes) and long values.
    "string_view": pa.array(["", "héllo ✓", None, "x" * 1000], pa.string_view()),
    "binary_view": pa.array([b"\x00" * 13, b"", None, b"abc"], pa.binary_view()),
    "fixed_size_binary": pa.array([b"abcd", None, b"\x00\x00\x00\x00"], pa.binary(4)),
    "date32": pa.array([D(1970, 1, 1), D(2024, 2, 29), None, D(1, 1, 1)], pa.date32()),
    "timestamp_s": _ts("s"),
    "timestamp_ms": _ts("ms"),
    "timestamp_us": _ts("us"),
    "timestamp_ns": _ts("ns"),
    "timestamp_s_utc": _ts("s", "UTC"),
    "timestamp_ms_paris": _ts("ms", "Europe/Paris"),
    "timestamp_us_offset": _ts("us", "+05:30"),
    "timestamp_ns_ny": _ts("ns", "America/New_York"),
    "decimal128": pa.array(
        [
            decimal.Decimal("12345678.90"),
            None,
            decimal.Decimal("-0.01"),
            decimal.Decimal(0),
        ],
        pa.decimal128(10, 2),
    ),
    "decimal128_38": pa.array(
        [decimal.Decimal("9" * 28 + "." + "9" * 10), None], pa.decimal128(38, 10)
    ),
    "list": pa.array([[1, 2], [], None, [None, 4]], pa.list_(pa.int32())),
    "large_list": pa.array(
        [["a"], None, [], ["b", None, "c"]], pa.large_list(pa.string())
    ),
    "fixed_size_list_512": pa.FixedSizeListArray.from_arrays(
        pa.array(np.arange(3 * 512, dtype=np.float32) / 7), 512
    ),
    "fixed_size_list_512_nulls": pa.array(
        [None, [float(i) for i in range(512)], None], pa.list_(pa.float32(), 512)
    ),
    "struct": pa.array(
        [
            {"x": 1, "label": "a"},
            None,
            {"x": None, "label": None},
            {"x": 4, "label": "d"},
        ],
        POINT,
    ),
    "list_of_struct": pa.array(
        [[{"x": 1, "label": "a"}, None], [], None, [{"x": 2, "label": None}]],
        pa.list_(POINT),
    ),
    "nested_list": pa.array(
        [[[1], [2, 3]], None, [[]], [None, [4]]], pa.list_(pa.list_(pa.int64()))
    ),
    "map": pa.array(
        [[("a", 1), ("b", None)], None, [], [("z", 26)]], pa.map_(pa.string(), pa.int64())
    ),
    "dictionary": pa.array(["red", "green", None, "red", "blue"])
    .dictionary_encode()
    .cast(pa.dictionary(pa.int32(), pa.string())),
    # Not in the required list, but an Arrow type like any other.
    "null": pa.array([None, None, None], pa.null()),
}


def _assert_same(actual: pa.Table, expected: pa.Table) -> None:
    assert actual.schema.equals(expected.schema, check_metadata=True), (
        f"\n{actual.schema}\n!=\n{expected.schema}"
    )
    assert actual.num_rows == expected.num_rows
    for name in expected.column_names:
        a, e = actual.column(name), expected.column(name)
        assert a.null_count == e.null_count, name
        if pa.types.is_dictionary(e.type):
            # The dictionary itself may be re-built; what it encodes must not change.
            a, e = a.cast(e.type.value_type), e.cast(e.type.value_type)
        assert a.equals(e), name


def _take(data: pa.Table, rows: list[int]) -> pa.Table:
    """``data.take(rows)``; pyarrow's take has no kernel for view types, so those columns
    are taken as their plain types and cast back."""
    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    plain = pa.schema(
        [f.with_type(views.get(f.type, f.type)) for f in data.schema],
        metadata=data.schema.metadata,
    )
    return data.cast(plain).take(rows).cast(data.schema)


@pytest.fixture(params=["tmp", "reopen", "mem"])
def roundtrip(request, tmp_path):
    """create_table(data) -> the table as read back from the backend under test."""

    def run(data=None, schema=None, name="t"):
        if request.param == "mem":
            return riffledb.connect("memory://").create_table(name, data, schema=schema)
        tbl = riffledb.connect(tmp_path).create_table(name, data, schema=schema)
        if request.param == "reopen":
            tbl = riffledb.connect(tmp_path).open_table(name)
        return tbl

    return run


@pytest.mark.parametrize("case", sorted(CASES))
def test_type_roundtrip(roundtrip, case):
    arr = CASES[case]
    data = pa.table({"v": arr, "i": pa.array(range(len(arr)), pa.int64())})
    tbl = roundtrip(data)
    assert tbl.schema == data.schema
    _assert_same(tbl.to_arrow(), data)
    # Every read path, not only the full scan, must carry the type.
    rev = list(reversed(range(len(arr))))
    _assert_same(tbl.take_offsets(rev).to_arrow(), _take(data, rev))
    _assert_same(tbl.search().where("i >= 1").to_arrow(), data.slice(1))
    _assert_same(tbl.__getitems__([0, 0]), _take(data, [0, 0]))


def _all_types_table() -> pa.Table:
    n = max(len(a) for a in CASES.values())
    cols = {}
    for name, arr in sorted(CASES.items()):
        if len(arr) < n:
            arr = pa.concat_arrays([arr, pa.nulls(n - len(arr), arr.type)])
        cols[name] = arr
    return pa.table(cols)


def test_all_types_in_one_table(roundtrip):
    data = _all_types_table()
    tbl = roundtrip(data)
    _assert_same(tbl.to_arrow(), data)
    _assert_same(tbl.take_offsets([4, 1, 1, 0]).to_arrow(), _take(data, [4, 1, 1, 0]))


def test_all_types_after_append(roundtrip):
    data = _all_types_table()
    tbl = roundtrip(data)
    tbl.add(data.slice(1, 2))
    expected = pa.concat_tables([data, data.slice(1, 2)])
    _assert_same(tbl.to_arrow(), expected)
    _assert_same(tbl.take_offsets([6, 0, 5]).to_arrow(), _take(expected, [6, 0, 5]))


def test_all_types_schema_only(roundtrip):
    schema = _all_types_table().schema
    tbl = roundtrip(schema=schema)
    assert tbl.schema.equals(schema, check_metadata=True)
    _assert_same(tbl.to_arrow(), schema.empty_table())


def test_large_fixed_size_list_vectors(roundtrip):
    vecs = np.random.default_rng(0).standard_normal((2000, 512)).astype(np.float32)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), 512)
    data = pa.table({"vec": arr})
    tbl = roundtrip(data)
    _assert_same(tbl.to_arrow(), data)
    got = tbl.take_offsets([1999, 3]).to_arrow()["vec"].combine_chunks()
    np.testing.assert_array_equal(
        got.flatten().to_numpy().reshape(2, 512), vecs[[1999, 3]]
    )


# ---------------------------------------------------------------------------------------
# metadata and nullability


SPLIT_META = {b"split_names": b'["train","test"]'}


def _meta_table() -> pa.Table:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False, metadata={b"role": b"key"}),
            pa.field("emb", pa.list_(pa.float32(), 4), metadata={b"unit": b"cm"}),
            pa.field(
                "s",
                pa.struct([pa.field("inner", pa.int8(), metadata={b"deep": b"1"})]),
            ),
        ]
    ).with_metadata(SPLIT_META)
    return pa.table(
        {
            "id": [1, 2],
            "emb": [[0.0, 1.0, 2.0, 3.0], None],
            "s": [{"inner": 1}, {"inner": None}],
        },
        schema=schema,
    )


def test_schema_and_field_metadata_roundtrip(roundtrip):
    data = _meta_table()
    tbl = roundtrip(data)
    assert tbl.schema.equals(data.schema, check_metadata=True)
    assert tbl.schema.metadata == SPLIT_META
    assert tbl.schema.field("id").metadata == {b"role": b"key"}
    assert tbl.schema.field("id").nullable is False
    assert tbl.schema.field("emb").metadata == {b"unit": b"cm"}
    assert tbl.schema.field("s").type.field("inner").metadata == {b"deep": b"1"}
    _assert_same(tbl.to_arrow(), data)
    _assert_same(tbl.head(1), data.slice(0, 1))


def test_metadata_survives_writes(tmp_path):
    data = _meta_table()
    tbl = riffledb.connect(tmp_path).create_table("t", data)
    tbl.add(data)
    tbl.delete("id = 1")
    reopened = riffledb.connect(tmp_path).open_table("t")
    assert reopened.schema.equals(data.schema, check_metadata=True)
    assert reopened.to_arrow().schema.equals(data.schema, check_metadata=True)
    assert reopened.to_arrow()["id"].to_pylist() == [2, 2]


def test_schema_metadata_with_schema_argument(roundtrip):
    schema = pa.schema([("a", pa.int32())]).with_metadata(SPLIT_META)
    tbl = roundtrip({"a": [1, 2]}, schema=schema)
    assert tbl.schema.equals(schema, check_metadata=True)
    assert tbl.to_arrow().schema.metadata == SPLIT_META
