"""riffledb.connect and DBConnection: uris, the table catalog, create/open/drop."""

import os

import pyarrow as pa
import pytest

import riffledb
from riffledb.db import DBConnection
from riffledb.errors import TableNotFoundError
from riffledb.table import Table


def _names_value(name: str, message: str) -> bool:
    """True if the message names `name`, raw or as its repr (for names with `\\`)."""
    return name in message or repr(name) in message


SIMPLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", "c"]})


# ---------------------------------------------------------------------------------------
# connect


def test_connect_str_path(tmp_path):
    path = tmp_path / "db"
    db = riffledb.connect(str(path))
    assert isinstance(db, DBConnection)
    assert db.uri == str(path)
    assert type(db.uri) is str
    assert path.is_dir()
    assert db.table_names() == []


def test_connect_rejects_nul_byte(tmp_path):
    # Regression: "db\0evil" silently created "db" (the OS stops at the NUL).
    uri = str(tmp_path / "db") + "\0evil"
    with pytest.raises(riffledb.errors.InvalidError) as info:
        riffledb.connect(uri)
    assert str(info.value) == (
        f"Invalid database URI '{tmp_path}/db\\0evil': it contains a NUL byte at "
        f"position {len(str(tmp_path)) + 3}"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("memory:/", "Invalid database URI 'memory:/': expected memory://"),
        ("memory:", "Invalid database URI 'memory:': expected memory://"),
        ("s3:bucket/db", "Invalid database URI 's3:bucket/db': expected s3://"),
        ("file:db", "Invalid database URI 'file:db': expected file://"),
        (
            "file://db",
            "Invalid database URI 'file://db': file:// takes an absolute path "
            "(file:///data/db)",
        ),
        (
            "xyz://a/b",
            "Invalid database URI 'xyz://a/b': unknown scheme 'xyz'; use a directory "
            "path or memory://",
        ),
    ],
)
def test_connect_rejects_malformed_uri(tmp_path, monkeypatch, uri, message):
    # Regression: "memory:/" created a directory named "memory:".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(riffledb.errors.InvalidError) as info:
        riffledb.connect(uri)
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("uri", ["az://container/db", "gs://b/db"])
def test_connect_planned_schemes_are_not_supported_yet(uri):
    with pytest.raises(riffledb.errors.NotSupportedError) as info:
        riffledb.connect(uri)
    scheme = uri.split(":")[0]
    assert str(info.value) == (
        f"Unsupported database URI '{uri}': {scheme}:// is not supported yet; use a "
        "directory path or memory://"
    )


def test_connect_file_uri(tmp_path):
    db = riffledb.connect(f"file://{tmp_path}/db")
    assert db.uri == str(tmp_path / "db")
    assert (tmp_path / "db").is_dir()


def test_connect_directory_name_with_colon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = riffledb.connect("run:3")
    assert db.uri == str(tmp_path / "run:3")
    assert (tmp_path / "run:3").is_dir()


def test_connect_pathlike(tmp_path):
    path = tmp_path / "db"
    db = riffledb.connect(path)
    assert db.uri == str(path)
    assert type(db.uri) is str
    assert path.is_dir()


def test_connect_creates_missing_parents(tmp_path):
    # Guess: like LanceDB (create_dir_all), missing parent directories are created too.
    path = tmp_path / "a" / "b" / "c"
    riffledb.connect(path)
    assert path.is_dir()


def test_connect_relative_path_gives_absolute_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = riffledb.connect("rel")
    assert db.uri == os.path.abspath("rel")
    assert os.path.isabs(db.uri)
    assert (tmp_path / "rel").is_dir()


def test_connect_existing_directory_sees_tables(tmp_path):
    riffledb.connect(tmp_path).create_table("t", SIMPLE)
    db2 = riffledb.connect(tmp_path)
    assert db2.table_names() == ["t"]
    assert db2.open_table("t").to_arrow().equals(SIMPLE)


def test_memory_uri_and_fresh_database_per_call():
    db1 = riffledb.connect("memory://")
    db2 = riffledb.connect("memory://")
    assert isinstance(db1, DBConnection)
    assert db1.uri == "memory://"
    db1.create_table("t", SIMPLE)
    assert db1.table_names() == ["t"]
    assert db2.table_names() == []
    assert "t" not in db2


def test_memory_db_writes_nothing_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = riffledb.connect("memory://")
    db.create_table("t", SIMPLE)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------
# catalog


def test_table_names_sorted(db):
    for name in ["b", "a", "C", "a-2", "a_1", "a.3", "10", "9"]:
        db.create_table(name, SIMPLE)
    # Byte order, which for ASCII names is Python's str order.
    assert db.table_names() == ["10", "9", "C", "a", "a-2", "a.3", "a_1", "b"]


def test_contains(db):
    db.create_table("present", SIMPLE)
    assert "present" in db
    assert "absent" not in db
    assert "presen" not in db


def test_table_directory_layout(tmp_db, tmp_path):
    tmp_db.create_table("t", SIMPLE)
    assert (tmp_path / "t.riffle").is_dir()
    assert (tmp_path / "t.riffle" / "_versions").is_dir()
    assert (tmp_path / "t.riffle" / "data").is_dir()
    assert len(list((tmp_path / "t.riffle" / "_versions").glob("*.json"))) == 1
    assert len(list((tmp_path / "t.riffle" / "data").glob("*.arrow"))) == 1


def test_table_visible_to_second_connection(tmp_path):
    db1 = riffledb.connect(tmp_path)
    db2 = riffledb.connect(tmp_path)
    db1.create_table("t", SIMPLE)
    assert db2.table_names() == ["t"]
    assert "t" in db2
    assert db2.open_table("t").count_rows() == 3


# ---------------------------------------------------------------------------------------
# create_table: data forms


def test_create_returns_table(db):
    tbl = db.create_table("t", SIMPLE)
    assert isinstance(tbl, Table)
    assert tbl.name == "t"
    assert tbl.version == 1
    assert tbl.schema == SIMPLE.schema
    assert tbl.to_arrow().equals(SIMPLE)


def test_create_from_record_batch(db):
    batch = pa.record_batch({"x": pa.array([1.5, None, 3.0]), "y": ["p", "q", None]})
    tbl = db.create_table("t", batch)
    assert tbl.to_arrow().equals(pa.Table.from_batches([batch]))
    assert tbl.schema == batch.schema


def test_create_from_record_batch_reader_streams_all_batches(db):
    schema = pa.schema([("id", pa.int64()), ("v", pa.float32())])
    pulled = []

    def gen():
        for i in range(40):
            pulled.append(i)
            ids = list(range(i * 250, (i + 1) * 250))
            yield pa.record_batch(
                [pa.array(ids, pa.int64()), pa.array(ids, pa.float32())], schema=schema
            )

    reader = pa.RecordBatchReader.from_batches(schema, gen())
    tbl = db.create_table("t", reader)
    assert pulled == list(range(40))
    assert tbl.schema == schema
    assert tbl.count_rows() == 10_000
    out = tbl.to_arrow()
    assert out.schema == schema
    assert out["id"].to_pylist() == list(range(10_000))
    assert out["v"].to_pylist() == [float(i) for i in range(10_000)]


def test_create_from_empty_record_batch_reader(db):
    schema = pa.schema([("id", pa.int64())])
    reader = pa.RecordBatchReader.from_batches(schema, iter([]))
    tbl = db.create_table("t", reader)
    assert tbl.count_rows() == 0
    assert tbl.schema == schema
    assert tbl.version == 1


def test_create_from_list_of_dicts(db):
    # Guess: type inference is pyarrow's (pa.Table.from_pylist).
    rows = [{"a": 1, "b": "x", "c": 0.5}, {"a": 2, "b": None, "c": 1.5}]
    tbl = db.create_table("t", rows)
    expected = pa.Table.from_pylist(rows)
    assert tbl.schema == pa.schema(
        [("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())]
    )
    assert tbl.to_arrow().equals(expected)
    assert tbl.search().to_list() == rows


def test_create_from_dict_of_lists(db):
    data = {"a": [3, 1, 2], "b": [True, False, None]}
    tbl = db.create_table("t", data)
    assert tbl.schema == pa.schema([("a", pa.int64()), ("b", pa.bool_())])
    assert tbl.to_arrow().equals(pa.table(data))


def test_create_from_pandas(db):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {"a": [1, 2, 3], "f": [0.5, None, 2.5]},
        index=[10, 20, 30],  # a non-default index must not become a column
    )
    tbl = db.create_table("t", df)
    # Guess (LanceDB): preserve_index=False and the b"pandas" schema metadata dropped.
    expected = pa.Table.from_pandas(df, preserve_index=False)
    out = tbl.to_arrow()
    assert out.column_names == ["a", "f"]
    assert out.equals(expected)
    assert not (tbl.schema.metadata or {}).get(b"pandas")
    assert out["a"].to_pylist() == [1, 2, 3]
    assert out["f"].to_pylist() == [0.5, None, 2.5]


def test_create_from_polars(db):
    pl = pytest.importorskip("polars")
    # Numeric columns only: polars may export strings as string_view, which this
    # test does not want to depend on.
    df = pl.DataFrame(
        {"a": [1, 2, 3], "f": [0.5, None, 2.5]},
        schema={"a": pl.Int32, "f": pl.Float64},
    )
    tbl = db.create_table("t", df)
    assert tbl.schema == pa.schema([("a", pa.int32()), ("f", pa.float64())])
    assert tbl.to_arrow()["a"].to_pylist() == [1, 2, 3]
    assert tbl.to_arrow()["f"].to_pylist() == [0.5, None, 2.5]


class _StreamOnly:
    """Exposes nothing but the Arrow PyCapsule stream protocol."""

    def __init__(self, table: pa.Table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_create_from_arrow_c_stream_object(db):
    data = pa.Table.from_batches(
        [
            pa.record_batch({"id": pa.array([0, 1], pa.int64())}),
            pa.record_batch({"id": pa.array([2, 3, 4], pa.int64())}),
        ]
    )
    tbl = db.create_table("t", _StreamOnly(data))
    assert tbl.to_arrow()["id"].to_pylist() == [0, 1, 2, 3, 4]
    assert tbl.schema == data.schema


def test_create_with_schema_only_is_empty(db):
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), ("v", pa.list_(pa.float32()))],
        metadata={b"k": b"v"},
    )
    tbl = db.create_table("t", schema=schema)
    assert tbl.version == 1
    assert tbl.count_rows() == 0
    assert len(tbl) == 0
    assert tbl.schema.equals(schema, check_metadata=True)
    out = tbl.to_arrow()
    assert out.num_rows == 0
    assert out.schema.equals(schema, check_metadata=True)


def test_create_with_data_and_schema_casts(db):
    schema = pa.schema([("a", pa.int32()), ("b", pa.large_string())])
    tbl = db.create_table("t", {"a": [1, 2, 3], "b": ["x", "y", "z"]}, schema=schema)
    assert tbl.schema == schema
    out = tbl.to_arrow()
    assert out.schema == schema
    assert out["a"].to_pylist() == [1, 2, 3]
    assert out["b"].to_pylist() == ["x", "y", "z"]


def test_create_with_schema_cast_failure(db):
    schema = pa.schema([("a", pa.int32())])
    with pytest.raises(ValueError):
        db.create_table("t", {"a": ["not", "numbers"]}, schema=schema)
    # Guess: a failed create leaves no table behind.
    assert "t" not in db
    assert db.table_names() == []


def test_create_without_data_or_schema(db):
    with pytest.raises(ValueError):
        db.create_table("t")
    assert db.table_names() == []


# ---------------------------------------------------------------------------------------
# create_table: modes


def test_create_existing_name_raises(db):
    db.create_table("dup_name", SIMPLE)
    with pytest.raises(ValueError) as info:
        db.create_table("dup_name", pa.table({"z": [9]}))
    assert "already exists" in str(info.value)
    assert "dup_name" in str(info.value)
    tbl = db.open_table("dup_name")
    assert tbl.to_arrow().equals(SIMPLE)
    assert tbl.version == 1


def test_create_exist_ok_returns_existing_and_ignores_data(db):
    db.create_table("t", SIMPLE)
    tbl = db.create_table("t", pa.table({"id": [99], "s": ["new"]}), exist_ok=True)
    assert isinstance(tbl, Table)
    assert tbl.name == "t"
    assert tbl.version == 1
    assert tbl.to_arrow().equals(SIMPLE)


def test_create_overwrite_replaces(db):
    db.create_table("t", SIMPLE)
    other = pa.table({"z": pa.array([7.0, 8.0], pa.float64())})
    tbl = db.create_table("t", other, mode="overwrite")
    assert tbl.schema == other.schema
    assert tbl.to_arrow().equals(other)
    # Guess (Lance): overwriting an existing table commits a new version.
    assert tbl.version == 2
    assert db.open_table("t").to_arrow().equals(other)
    assert db.table_names() == ["t"]


def test_create_overwrite_of_missing_name_creates(db):
    tbl = db.create_table("t", SIMPLE, mode="overwrite")
    assert tbl.version == 1
    assert tbl.to_arrow().equals(SIMPLE)


def test_create_unknown_mode(db):
    with pytest.raises(ValueError):
        db.create_table("t", SIMPLE, mode="upsert")
    assert "t" not in db


# ---------------------------------------------------------------------------------------
# table names


INVALID_NAMES = [
    "",
    "a/b",
    "/abs",
    "a\\b",
    "..",
    ".",
    ".hidden",
    "x" * 256,
    "a b",
    "a:b",
    "a*b",
    "tab\tle",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_create_invalid_name(db, name):
    with pytest.raises(ValueError) as info:
        db.create_table(name, SIMPLE)
    if name:
        assert _names_value(name, str(info.value))
    assert db.table_names() == []


def test_invalid_name_creates_nothing_on_disk(tmp_db, tmp_path):
    for name in ["../escape", "a/b", "..", ".hidden"]:
        with pytest.raises(ValueError):
            tmp_db.create_table(name, SIMPLE)
    assert os.listdir(tmp_path) == []
    assert not (tmp_path.parent / "escape.riffle").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_open_invalid_name(db, name):
    with pytest.raises(ValueError):
        db.open_table(name)


@pytest.mark.parametrize("name", ["a", "A1", "1abc", "a_b-c.d", "a.", "x" * 64])
def test_valid_names(db, name):
    tbl = db.create_table(name, SIMPLE)
    assert tbl.name == name
    assert db.table_names() == [name]
    assert db.open_table(name).count_rows() == 3


def test_longest_name_is_248_chars(db):
    # Regression: names of 249..255 characters passed validation, then failed with "File
    # name too long" making the `<name>.riffle` directory (NAME_MAX is 255). One limit
    # for every backend, so a memory table can always be written out.
    name = "x" * 248
    assert db.create_table(name, SIMPLE).name == name
    assert db.table_names() == [name]
    assert db.open_table(name).count_rows() == 3
    for length in (249, 255, 256):
        message = (
            f"Table name '{'y' * length}' is {length} characters long; the limit is 248 "
            "(its directory, the name + '.riffle', must fit the 255-character file name "
            "limit)"
        )
        with pytest.raises(riffledb.errors.InvalidError) as info:
            db.create_table("y" * length, SIMPLE)
        assert str(info.value) == message
        with pytest.raises(riffledb.errors.InvalidError) as info:
            db.open_table("y" * length)
        assert str(info.value) == message
        assert "y" * length not in db  # not an OSError "File name too long"
    assert db.table_names() == [name]


# ---------------------------------------------------------------------------------------
# open_table / drop_table


def test_open_table(db):
    db.create_table("t", SIMPLE)
    tbl = db.open_table("t")
    assert isinstance(tbl, Table)
    assert tbl.name == "t"
    assert tbl.version == 1
    assert tbl.to_arrow().equals(SIMPLE)


def test_open_missing_table(db):
    db.create_table("other", SIMPLE)
    with pytest.raises(ValueError) as info:
        db.open_table("nope")
    assert "'nope'" in str(info.value)
    assert db.uri in str(info.value)


def test_drop_table(db):
    db.create_table("a", SIMPLE)
    db.create_table("b", SIMPLE)
    assert db.drop_table("a") is None
    assert db.table_names() == ["b"]
    assert "a" not in db
    with pytest.raises(ValueError):
        db.open_table("a")


def test_drop_table_removes_directory(tmp_db, tmp_path):
    tmp_db.create_table("t", SIMPLE)
    tmp_db.drop_table("t")
    assert not (tmp_path / "t.riffle").exists()
    assert riffledb.connect(tmp_path).table_names() == []


def test_drop_missing_table(db):
    with pytest.raises(ValueError) as info:
        db.drop_table("nope")
    assert "'nope'" in str(info.value)
    assert db.uri in str(info.value)


def test_drop_missing_table_ignore_missing(db):
    db.create_table("keep", SIMPLE)
    assert db.drop_table("nope", ignore_missing=True) is None
    assert db.table_names() == ["keep"]


def test_drop_then_recreate(db):
    db.create_table("t", SIMPLE)
    db.open_table("t").add(SIMPLE)
    db.drop_table("t")
    other = pa.table({"q": [1]})
    tbl = db.create_table("t", other)
    assert tbl.version == 1
    assert tbl.to_arrow().equals(other)
    assert len(tbl.list_versions()) == 1


def test_a_handle_of_a_dropped_table_reads_but_does_not_write(db):
    """Regression: the handle of a dropped memory:// table went on committing appends
    to a table no longer listed (a directory table's raised)."""
    tbl = db.create_table("t", SIMPLE)
    db.drop_table("t")
    with pytest.raises(TableNotFoundError, match="was dropped"):
        tbl.add(SIMPLE)
    assert tbl.version == 1
    assert tbl.to_arrow().equals(SIMPLE)
    assert db.table_names() == []


def test_reopen_after_writes(tmp_path):
    db = riffledb.connect(tmp_path)
    tbl = db.create_table("t", SIMPLE)
    tbl.add(pa.table({"id": [4], "s": ["d"]}))
    tbl.delete("id = 1")
    reopened = riffledb.connect(tmp_path).open_table("t")
    assert reopened.version == 3
    assert [v["version"] for v in reopened.list_versions()] == [1, 2, 3]
    assert reopened.to_arrow().to_pydict() == {"id": [2, 3, 4], "s": ["b", "c", "d"]}
