"""The one write path: every input kind, one schema check, safe casts, all or nothing."""

import os
import traceback

import numpy as np
import pyarrow as pa
import pytest

import riffledb

SCHEMA = pa.schema([("id", pa.int32()), ("name", pa.string())])


@pytest.fixture(params=["tmp", "mem"])
def db(request):
    return request.getfixturevalue(f"{request.param}_db")


@pytest.fixture
def table(db):
    """A table {id int32, name string} holding the rows 0 and 1."""
    return db.create_table("t", {"id": [0, 1], "name": ["r0", "r1"]}, schema=SCHEMA)


def _rows(t) -> dict:
    return t.to_arrow().to_pydict()


# Rows 2 and 3, in the other column order and with id as int64: every kind must be
# reordered and cast to the table's {id int32, name string}.
NEW = pa.table({"name": ["r2", "r3"], "id": pa.array([2, 3], pa.int64())})


class _StreamOnly:
    """Any producer that only speaks the Arrow C stream protocol."""

    def __init__(self, data):
        self._data = data

    def __arrow_c_stream__(self, requested_schema=None):
        return self._data.__arrow_c_stream__(requested_schema)


def _kinds():
    kinds = {
        "table": lambda: NEW,
        "batch": lambda: NEW.to_batches()[0],
        "reader": lambda: pa.RecordBatchReader.from_batches(NEW.schema, NEW.to_batches()),
        "c_stream": lambda: _StreamOnly(NEW),
        "pylist": lambda: NEW.to_pylist(),
        "pydict": lambda: NEW.to_pydict(),
        "list_of_batches": lambda: NEW.to_batches(),
        "generator": lambda: (b for b in NEW.to_batches()),
        "pandas": lambda: pytest.importorskip("pandas").DataFrame(
            {"name": ["r2", "r3"], "id": [2, 3]}, index=[5, 9]
        ),
        "polars": lambda: pytest.importorskip("polars").DataFrame(
            {"name": ["r2", "r3"], "id": [2, 3]}
        ),
    }
    return kinds


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_add_every_kind_reorders_and_casts(table, kind):
    table.add(_kinds()[kind]())
    assert table.version == 2
    assert table.schema == SCHEMA
    assert _rows(table) == {"id": [0, 1, 2, 3], "name": ["r0", "r1", "r2", "r3"]}


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_create_with_schema_from_every_kind(db, kind):
    t = db.create_table("t", _kinds()[kind](), schema=SCHEMA)
    assert t.schema == SCHEMA
    assert _rows(t) == {"id": [2, 3], "name": ["r2", "r3"]}


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_overwrite_from_every_kind(table, kind):
    table.add(_kinds()[kind](), mode="overwrite")
    assert table.version == 2
    assert sorted(_rows(table)["id"]) == [2, 3]


def test_one_message_names_every_mismatched_column(db):
    schema = pa.schema([pa.field("id", pa.int32()), pa.field("name", pa.string(), False)])
    table = db.create_table("strict", schema=schema)
    data = pa.table({"extra": [1.5], "id": pa.array([[1]], pa.list_(pa.int64()))})
    with pytest.raises(ValueError) as info:
        table.add(data)
    assert str(info.value) == (
        "The data does not match the schema of table 'strict': missing non-nullable "
        "columns: 'name' (string); extra columns: 'extra' (double); mismatched columns: "
        "'id' (expected int32, got list<item: int64>)"
    )
    assert table.version == 1


@pytest.mark.parametrize(
    "column, value, message",
    [
        (pa.array([1, 2**31], pa.int64()), "2147483648", "int64) to int32"),
        (pa.array([1.0, 2.5]), "2.5", "double) to int32"),
        (pa.array(["1", "two"]), "two", "string) to int32"),
    ],
    ids=["overflow", "fraction", "unparsable"],
)
def test_lossy_cast_names_column_row_and_value(table, column, value, message):
    with pytest.raises(ValueError) as info:
        table.add(pa.table({"id": column, "name": ["a", "b"]}))
    assert (
        f"Cannot cast column 'id' of the data ({message} for table 't' without loss: "
        f"value {value} at row 1" in str(info.value)
    )
    assert table.version == 1
    assert _rows(table)["id"] == [0, 1]


def test_null_in_non_nullable_column_names_row(db):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    t = db.create_table("t", schema=schema)
    with pytest.raises(ValueError) as info:
        t.add([{"id": 1}, {"id": None}])
    assert str(info.value) == (
        "Column 'id' of table 't' is not nullable, but row 1 of the data is null"
    )
    assert t.version == 1


def _batches_failing_at(bad: int, n: int = 10, rows: int = 1000):
    for b in range(n):
        ids = np.arange(b * rows, (b + 1) * rows, dtype=np.int64)
        if b == bad:
            ids[3] = 2**40
        yield pa.record_batch({"id": ids, "name": pa.array(["x"] * rows)})


def _files(path) -> list:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_cast_error_in_a_late_batch_writes_nothing(tmp_db, tmp_path):
    t = tmp_db.create_table("t", {"id": [0], "name": ["r0"]}, schema=SCHEMA)
    before = _files(tmp_path)
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, _batches_failing_at(5))
    with pytest.raises(ValueError) as info:
        t.add(reader)
    assert "value 1099511627776 at row 5003" in str(info.value)
    assert t.version == 1
    assert len(t.list_versions()) == 1
    assert _rows(t) == {"id": [0], "name": ["r0"]}
    assert _files(tmp_path) == before
    reopened = riffledb.connect(tmp_path).open_table("t")
    assert reopened.version == 1
    assert len(reopened) == 1


def test_failed_create_from_a_stream_creates_nothing(db):
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, _batches_failing_at(5))
    with pytest.raises(ValueError):
        db.create_table("t", reader, schema=SCHEMA)
    assert db.table_names() == []


def test_reader_is_pulled_by_native_code_in_one_pass(table):
    # A reader's batches are read once each by the native write path; the only riffledb
    # Python code between it and the user's generator is the pass-through that keeps
    # the generator's exception (riffledb._data._Source): no alignment, no cast.
    batches = list(_batches_failing_at(bad=-1, n=4, rows=10))
    pulls = []

    def source():
        for batch in batches:
            pulls.append(traceback.extract_stack())
            yield batch

    reader = pa.RecordBatchReader.from_batches(batches[0].schema, source())
    table.add(reader)
    assert len(pulls) == 4
    for stack in pulls:
        ours = [
            f for f in stack if f.filename.endswith(os.path.join("riffledb", "_data.py"))
        ]
        assert [f.name for f in ours] == ["call_with_source", "__next__"]
    assert len(table) == 2 + 40


# ---------------------------------------------------------------------------------------
# missing columns: one rule, applied in the one check


def test_rows_missing_a_nullable_key_fill_null(table):
    table.add([{"id": 2}, {"id": 3}])
    assert _rows(table) == {"id": [0, 1, 2, 3], "name": ["r0", "r1", None, None]}


def test_columnar_data_missing_a_nullable_column_fill_null(table):
    # Regression: rows filled a missing nullable column with null, the same data as an
    # Arrow table was rejected. One rule for every form (LanceDB's).
    table.add(pa.table({"id": pa.array([2], pa.int32())}))
    table.add({"id": [3]})
    four = pa.table({"id": [4]})
    table.add(pa.RecordBatchReader.from_batches(four.schema, four.to_batches()))
    assert _rows(table) == {
        "id": [0, 1, 2, 3, 4],
        "name": ["r0", "r1", None, None, None],
    }
    assert table.version == 4


@pytest.mark.parametrize("as_rows", [True, False])
def test_data_missing_a_non_nullable_column_is_rejected(db, as_rows):
    schema = pa.schema(
        [pa.field("id", pa.int32(), nullable=False), ("name", pa.string())]
    )
    t = db.create_table("t", schema=schema)
    data = [{"name": "a"}] if as_rows else pa.table({"name": ["a"]})
    with pytest.raises(ValueError) as info:
        t.add(data)
    assert str(info.value) == (
        "The data does not match the schema of table 't': missing non-nullable columns: "
        "'id' (int32)"
    )
    assert t.version == 1


def test_rows_keep_keys_that_only_later_rows_have(table):
    # Regression: pa.Table.from_pylist takes its columns from the first row only.
    table.add([{"id": 2}, {"id": 3, "name": "r3"}])
    assert _rows(table)["name"] == ["r0", "r1", None, "r3"]


def test_rows_with_a_key_not_in_the_table_are_rejected(table):
    with pytest.raises(ValueError) as info:
        table.add([{"id": 2}, {"id": 3, "nope": 1}])
    assert "extra columns: 'nope' (int64)" in str(info.value)
    assert table.version == 1


def test_create_with_schema_from_rows_fills_missing_nullable(db):
    t = db.create_table("t", [{"id": 1}], schema=SCHEMA)
    assert _rows(t) == {"id": [1], "name": [None]}


def test_pandas_extra_column_is_rejected(table):
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError) as info:
        table.add(pd.DataFrame({"id": [2], "name": ["r2"], "other": [1]}))
    assert "extra columns: 'other' (int64)" in str(info.value)


# ---------------------------------------------------------------------------------------
# empty and unsupported data


def test_add_empty_list_commits_an_empty_version(table):
    table.add([])
    assert table.version == 2
    assert len(table) == 2


def test_create_from_empty_data_needs_a_schema(db):
    with pytest.raises(ValueError) as info:
        db.create_table("t", [])
    assert str(info.value) == (
        "Cannot create table 't' from empty data without a schema: pass schema="
    )
    t = db.create_table("t", iter([]), schema=SCHEMA)
    assert t.schema == SCHEMA
    assert len(t) == 0


def test_unsupported_data_is_a_type_error(table):
    with pytest.raises(TypeError) as info:
        table.add(42)
    assert "Unsupported data of type int" in str(info.value)
    with pytest.raises(TypeError) as info:
        table.add([1, 2])
    assert "got int at position 0" in str(info.value)
    with pytest.raises(TypeError) as info:
        table.add([{"id": 2}, 5])
    assert "must hold only dicts, got int at position 1" in str(info.value)
    with pytest.raises(TypeError) as info:
        table.add(iter(["x"]))
    assert "got str at position 0" in str(info.value)
    assert table.version == 1


# ---------------------------------------------------------------------------------------
# open_table at a version


def test_open_table_at_a_version(db):
    t = db.create_table("t", {"id": [0]}, schema=pa.schema([("id", pa.int64())]))
    t.add({"id": [1]})
    old = db.open_table("t", version=1)
    assert old.version == 1
    assert old.to_arrow().to_pydict() == {"id": [0]}
    with pytest.raises(ValueError):
        old.add({"id": [2]})  # detached, as after checkout
    assert db.open_table("t", version=2).to_arrow().to_pydict() == {"id": [0, 1]}


def test_open_table_at_a_missing_version(db):
    db.create_table("t", {"id": [0]})
    with pytest.raises(ValueError) as info:
        db.open_table("t", version=7)
    assert str(info.value) == "Version 7 of table 't' does not exist; versions: 1..1"


@pytest.mark.parametrize("version", [-1, 2**64, 1.0, True, "1"])
def test_open_table_bad_version_argument(db, version):
    db.create_table("t", {"id": [0]})
    with pytest.raises(ValueError) as info:
        db.open_table("t", version=version)
    assert "version must be a non-negative 64-bit integer" in str(info.value)


def test_open_table_version_is_keyword_only(db):
    db.create_table("t", {"id": [0]})
    with pytest.raises(TypeError):
        db.open_table("t", 1)


def test_create_overwrite_with_schema_adapts_the_data(table, db):
    other = pa.schema([("name", pa.large_string()), ("score", pa.float32())])
    t = db.create_table(
        "t", [{"score": 1}, {"score": 2.5}], schema=other, mode="overwrite"
    )
    assert t.version == 2
    assert t.schema == other
    assert _rows(t) == {"name": [None, None], "score": [1.0, 2.5]}
    t = db.create_table("t", pa.table({"score": [1.0]}), schema=other, mode="overwrite")
    assert t.version == 3
    assert _rows(t) == {"name": [None], "score": [1.0]}


@pytest.mark.parametrize("kind", ["rows", "columns"])
def test_python_integers_beyond_int64_go_to_uint64(db, kind):
    # Regression: type inference stops at int64, so these failed with OverflowError once
    # the table schema was no longer used to convert Python objects.
    t = db.create_table("t", schema=pa.schema([("v", pa.uint64()), ("w", pa.int8())]))
    values = [2**64 - 1, 2**63]
    if kind == "rows":
        t.add([{"v": values[0], "w": 1}, {"v": values[1]}])
    else:
        t.add({"v": values, "w": [1, None]})
    assert _rows(t) == {"v": values, "w": [1, None]}
