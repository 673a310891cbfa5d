"""Takes with ``TakeQuery.with_binary_views()``: binary/string columns as Arrow views
into the table, their values, their lifetime, and what consumes them downstream."""

import gc
import pickle
import shutil

import pyarrow as pa
import pytest

import riffledb
from riffledb import util

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("s", pa.string()),
        ("b", pa.binary()),
        ("ls", pa.large_string()),
        ("lb", pa.large_binary()),
    ]
)
VIEW_TYPES = {
    "id": pa.int64(),
    "s": pa.string_view(),
    "b": pa.binary_view(),
    "ls": pa.string_view(),
    "lb": pa.binary_view(),
}


def _value(i: int) -> str | None:
    """Null every 7th row, empty every 5th, long (> 12 bytes) every 3rd, else inline."""
    if i % 7 == 3:
        return None
    if i % 5 == 0:
        return ""
    value = f"v{i}"
    if i % 3 == 0:
        value += chr(ord("a") + i % 26) * (13 + (i * 37) % 3000)
    return value


def _rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    text = [_value(i) for i in ids]
    data = [None if v is None else v.encode() for v in text]
    return pa.table([ids, text, data, text, data], schema=SCHEMA)


@pytest.fixture(params=["tmp", "mem"])
def db(request):
    return request.getfixturevalue(f"{request.param}_db")


@pytest.fixture
def blobs(db):
    """Three fragments: ids 0..39, 40..89, 90..119."""
    t = db.create_table("blobs", _rows(0, 40))
    t.add(_rows(40, 50))
    t.add(_rows(90, 30))
    return t


OFFSETS = [6, 119, 3, 0, 45, 45, 90, 33, 5, 69, 12, 6]


def test_binary_views_types_and_values(blobs):
    views = blobs.take_offsets(OFFSETS).with_binary_views().to_arrow()
    plain = blobs.take_offsets(OFFSETS).to_arrow()
    assert {f.name: f.type for f in views.schema} == VIEW_TYPES
    assert plain.schema == SCHEMA  # the plain types stay the default
    assert views.cast(SCHEMA).equals(plain)
    assert views["s"].to_pylist() == [_value(i) for i in OFFSETS]
    assert views["lb"].to_pylist() == [
        None if _value(i) is None else _value(i).encode() for i in OFFSETS
    ]


def test_binary_views_by_row_id_with_selection(blobs):
    row_ids = blobs.take_offsets(OFFSETS).with_row_id().to_arrow()["_rowid"]
    out = (
        blobs.take_row_ids(row_ids.to_numpy())
        .select(["b", "id"])
        .with_row_id()
        .with_binary_views()
        .to_arrow()
    )
    assert out.schema.names == ["b", "id", "_rowid"]
    assert out.schema.field("b").type == pa.binary_view()
    assert out["id"].to_pylist() == OFFSETS
    assert out["_rowid"].to_pylist() == row_ids.to_pylist()


def test_binary_views_can_be_turned_off_and_checks_its_argument(blobs):
    q = blobs.take_offsets([3]).with_binary_views().with_binary_views(False)
    assert q.to_arrow().schema == SCHEMA
    with pytest.raises(TypeError, match="with_binary_views\\(\\) takes a bool, got str"):
        blobs.take_offsets([3]).with_binary_views("yes")


def test_binary_views_of_an_empty_take(blobs):
    out = blobs.take_offsets([]).with_binary_views().to_arrow()
    assert out.num_rows == 0
    assert {f.name: f.type for f in out.schema} == VIEW_TYPES


def test_binary_views_outlive_table_and_connection(tmp_path):
    db = riffledb.connect(tmp_path / "db")
    table = db.create_table("blobs", _rows(0, 120))
    # Long values only (multiples of 3 that are neither null nor empty), so every one is
    # read through a data buffer, not from the view itself.
    offsets = [6, 99, 69, 6, 111]
    out = table.take_offsets(offsets).select(["lb"]).with_binary_views().to_arrow()
    del table, db
    gc.collect()
    # The files may even go: the result holds the mapping, not the path.
    shutil.rmtree(tmp_path / "db")
    gc.collect()
    assert out["lb"].to_pylist() == [_value(i).encode() for i in offsets]


def test_binary_views_downstream(blobs):
    views = blobs.take_offsets(OFFSETS).with_binary_views().to_batch()
    plain = blobs.take_offsets(OFFSETS).to_batch()
    assert views.to_pylist() == plain.to_pylist()
    # pandas: the same frame as from the plain types.
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(views.to_pandas(), plain.to_pandas())
    # numpy (object arrays), directly and through riffledb's numpy formats.
    for name in ("s", "b", "ls", "lb"):
        assert (
            views.column(name).to_numpy(zero_copy_only=False).tolist()
            == plain.column(name).to_numpy(zero_copy_only=False).tolist()
        )
    got = util.batch_to_numpy_dict(views)
    want = util.batch_to_numpy_dict(plain)
    assert {k: v.tolist() for k, v in got.items()} == {
        k: v.tolist() for k, v in want.items()
    }
    assert util.batch_to_numpy(views).tolist() == util.batch_to_numpy(plain).tolist()
    # Arrow IPC (what crosses a process boundary) keeps the view types.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, views.schema) as writer:
        writer.write_batch(views)
    assert pa.ipc.open_stream(sink.getvalue()).read_all().equals(pa.table(views))


def test_binary_views_in_polars(blobs):
    pl = pytest.importorskip("polars")
    views = blobs.take_offsets(OFFSETS).with_binary_views().to_arrow()
    df = pl.from_arrow(views)
    assert df.schema["s"] == pl.String and df.schema["b"] == pl.Binary
    assert df.equals(pl.from_arrow(blobs.take_offsets(OFFSETS).to_arrow()))


def test_binary_views_tensor_formats_fail_as_for_plain_strings(blobs):
    pytest.importorskip("torch")
    views = blobs.take_offsets(OFFSETS).select(["id", "s"]).with_binary_views().to_batch()
    with pytest.raises(TypeError, match="Column 's' of type string_view cannot be"):
        util.batch_to_tensor(views)


# -- Permutation.with_binary_views -------------------------------------------------------


def test_permutation_reads_views_equal_to_the_plain_values(blobs):
    from riffledb.permutation import Permutation, permutation_builder

    perm = permutation_builder(blobs).shuffle(seed=5).execute()
    plain = Permutation.from_tables(blobs, perm).with_format("arrow")
    views = plain.with_binary_views()
    assert plain.binary_views is False and views.binary_views is True
    assert {f.name: f.type for f in views.schema} == VIEW_TYPES
    offsets = [119, 3, 3, 60, 0, 42]
    got, expected = views.take_offsets(offsets), plain.take_offsets(offsets)
    assert {f.name: f.type for f in got.schema} == VIEW_TYPES
    for name in ("s", "b", "ls", "lb"):
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name
    # Iteration, a narrowed selection and a pickled copy read views too.
    batches = list(views.select_columns(["lb"]).iter(50))
    assert [b.num_rows for b in batches] == [50, 50, 20]
    assert batches[0].schema.field("lb").type == pa.binary_view()
    assert views.with_binary_views(False).schema.field("s").type == pa.string()
    restored = pickle.loads(pickle.dumps(views))
    assert restored.take_offsets([0]).column("s").type == pa.string_view()
    with pytest.raises(TypeError, match="enabled must be a bool, got int"):
        views.with_binary_views(1)


def test_columns_stored_as_views_filter_delete_and_compact(tmp_path):
    """A table whose columns are string_view/binary_view (as polars writes strings):
    filters that Arrow has no view kernel for (IN, LIKE, lower(), length), deletions
    and optimize. Each of them failed with "array_take has no kernel"."""
    words = ["apple", None, "a much longer value, not inlined", "banana", "", "avocado"]
    data = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "s": pa.array(words, pa.string_view()),
            "b": pa.array(
                [w.encode() if w is not None else None for w in words], pa.binary_view()
            ),
        }
    )
    t = riffledb.connect(tmp_path).create_table("v", data)

    def where(expr):
        return t.search().where(expr).to_arrow()["id"].to_pylist()

    assert where("s LIKE 'a%'") == [0, 2, 5]
    assert where("s IN ('banana', 'apple')") == [0, 3]
    assert where("lower(s) = 'avocado'") == [5]
    assert where("s = 'banana'") == [3]
    assert where("s IS NULL") == [1]
    assert where("length(s) > 6") == [2, 5]
    got = t.search().where("s LIKE 'a%'").to_arrow()
    assert got.schema == data.schema
    assert got["s"].to_pylist() == [words[0], words[2], words[5]]
    assert got["b"].to_pylist() == [w.encode() for w in (words[0], words[2], words[5])]

    t.add(data)
    t.delete("id IN (0, 3)")
    expected = [w for i, w in enumerate(words) if i not in (0, 3)] * 2
    assert t.to_arrow()["s"].to_pylist() == expected
    assert t.take_offsets([5, 0]).to_arrow()["s"].to_pylist() == [words[2], words[1]]
    t.optimize()
    after = t.to_arrow()
    assert after.schema == data.schema
    assert after["s"].to_pylist() == expected
    assert after["b"].to_pylist() == [
        w.encode() if w is not None else None for w in expected
    ]


def test_views_nested_in_lists_and_structs(tmp_path):
    """Views inside a list or a struct (polars writes ``list[str]`` as
    ``large_list<string_view>``): takes, filters, deletions and optimize (each failed
    with "array_take has no kernel"), and projections keep their types."""
    data = pa.table(
        {
            "id": pa.array(range(4), pa.int64()),
            "l": pa.array(
                [["a", "x" * 20], None, [], ["b", None]], pa.large_list(pa.string_view())
            ),
            "st": pa.array(
                [{"n": "p" * 15}, {"n": None}, None, {"n": "q"}],
                pa.struct([("n", pa.string_view())]),
            ),
            "s": pa.array(["a", None, "c" * 30, "d"], pa.string_view()),
        }
    )
    t = riffledb.connect(tmp_path).create_table("nested", data)
    rows = data.to_pylist()
    assert t.take_offsets([3, 0]).to_arrow().to_pylist() == [rows[3], rows[0]]
    got = t.search().where("id > 0").to_arrow()
    assert got.schema == data.schema
    assert got.to_pylist() == rows[1:]
    # A column alone keeps its type; in a call it is read as large_string.
    projected = t.search().select({"n": "st.n", "x": "`s`", "y": "s"}).to_arrow()
    assert projected.schema.types == [pa.string_view()] * 3
    assert t.search().where("s IS NULL").to_arrow()["id"].to_pylist() == [1]
    t.delete("id = 0")
    assert t.to_arrow().to_pylist() == rows[1:]
    t.optimize()
    after = t.to_arrow()
    assert after.schema == data.schema
    assert after.to_pylist() == rows[1:]
