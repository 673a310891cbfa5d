"""A remote table behaves as the same table opened locally (issue #13): each test asks
both, through ``riffledb serve`` of a directory and ``riffledb.connect`` of that
directory, and compares. Regression tests of differences found by exploring the
surface: dictionary columns of several fragments, filters that look like takes, the
exception types of refused input, create and add edge cases, binary views and batch
sizes."""

from __future__ import annotations

import base64
import functools
import http.client
import itertools
import pickle

import pyarrow as pa
import pytest
from harness.remote_server import RiffledbServer

import riffledb
from riffledb.errors import (
    InvalidError,
    NotSupportedError,
    RiffledbIndexError,
    RiffledbTypeError,
    TableNotFoundError,
)
from riffledb.permutation import Permutation, permutation_builder
from riffledb.remote.errors import BadRequestError, HttpError, NotFoundError
from riffledb.streaming import StreamingDataset


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(remote connection, local connection) of one database directory."""
    path = str(tmp_path_factory.mktemp("served") / "db")
    riffledb.connect(path)  # the directory exists before the server opens it
    server = RiffledbServer(path)
    remote = riffledb.connect("db://parity", api_key="", host_override=server.url)
    remote.url = server.url  # for the tests that look at the wire
    yield remote, riffledb.connect(path)
    assert server.stop() == 0


def content_type_of_scan(url: str, table: str) -> str:
    """The Content-Type of the server's answer to a scan of ``table``."""
    connection = http.client.HTTPConnection(url.split("//")[1])
    connection.request("POST", f"/v1/table/{table}/query/", body=b'{"k": 0}')
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.getheader("Content-Type")


_numbers = itertools.count()


@pytest.fixture
def both(served):
    """A fresh table of ids 0..9, as (remote, local)."""
    remote, local = served
    name = f"t{next(_numbers)}"
    remote_table = remote.create_table(name, pa.table({"id": pa.array(range(10))}))
    return remote_table, local.open_table(name)


def ids(table: pa.Table) -> list[int]:
    return table["id"].to_pylist()


def test_scans_of_a_dictionary_column_of_two_fragments(served):
    """Each fragment has a dictionary of its own: the answer is an IPC stream, which
    holds both (a file holds one: the server answered 400, and a streamed answer broke
    off and was retried until RetryError)."""
    remote, local = served
    t = remote.create_table(
        "dict", pa.table({"d": pa.array(["a", "b"]).dictionary_encode()})
    )
    # One fragment: an IPC file, which LanceDB's clients before 0.37.1 read (a stream
    # only when the batches may have dictionaries of their own).
    assert content_type_of_scan(remote.url, "dict") == "application/vnd.apache.arrow.file"
    assert t.to_arrow()["d"].to_pylist() == ["a", "b"]
    t.add(pa.table({"d": pa.array(["c"]).dictionary_encode()}))
    assert (
        content_type_of_scan(remote.url, "dict") == "application/vnd.apache.arrow.stream"
    )
    expected = local.open_table("dict").to_arrow()["d"].to_pylist()
    assert expected == ["a", "b", "c"]
    assert t.to_arrow()["d"].to_pylist() == expected
    assert t.search().where("d = 'c'").to_arrow()["d"].to_pylist() == ["c"]
    built = permutation_builder(t).split_hash(["d"], [1, 1]).execute()
    assert built.count_rows() == 3
    # Over the buffered-answer bound (1 MiB): sent as it is written.
    n = 20_000
    big = remote.create_table(
        "dict_big",
        pa.table(
            {
                "pad": pa.array([b"x" * 100] * n),
                "d": pa.array([f"k{i % 3}" for i in range(n)]).dictionary_encode(),
            }
        ),
    )
    big.add(pa.table({"pad": [b"y"], "d": pa.array(["zz"]).dictionary_encode()}))
    got = big.to_arrow()["d"].to_pylist()
    assert got == local.open_table("dict_big").to_arrow()["d"].to_pylist()
    assert len(got) == n + 1 and got[-1] == "zz"


@pytest.mark.parametrize(
    "where",
    [
        "_rowoffset IN (5, 3, 5)",
        "_rowoffset in (9, 5, 3)",
        "_rowid IN (7, 3)",
        "_rowoffset IN (3, 100)",
        "  _rowid in (300, 2)",
    ],
)
def test_a_filter_that_reads_like_a_take_is_a_filter(both, where):
    """The wire's take is a query whose filter is exactly `_rowoffset in (...)`: a
    user's filter of that shape was answered as a take (rows in the list's order,
    repeated, a 400 for a key past the end)."""
    remote, local = both
    expected = ids(local.search().where(where).to_arrow())
    assert ids(remote.search().where(where).to_arrow()) == expected
    assert ids(remote.search().where(where).limit(1).to_arrow()) == expected[:1]
    assert remote.count_rows(where) == len(expected)
    remote_rows = permutation_builder(remote).filter(where).execute().to_arrow()
    local_rows = permutation_builder(local).filter(where).execute().to_arrow()
    assert remote_rows["row_id"].to_pylist() == local_rows["row_id"].to_pylist()


def test_a_row_id_the_table_lacks_is_an_index_error(both):
    remote, local = both
    for table in (remote, local):
        with pytest.raises(
            RiffledbIndexError,
            match=r"^Row id 10 at position 1 is not a row of version 1 of the table$",
        ):
            table.take_row_ids([1, 10]).to_arrow()


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.count_rows("nope > 1"),
        lambda t: t.search().where("id >").to_arrow(),
        lambda t: t.search().select(["nope"]).to_arrow(),
        lambda t: t.take_offsets([0]).select(["nope"]).to_arrow(),
        lambda t: t.add(pa.table({"id": [1], "extra": [2]})),
    ],
)
def test_refused_input_is_a_value_error_on_both(both, call):
    """A 400 is a BadRequestError: an HttpError with LanceDB's fields, and a
    ValueError as the local InvalidError (it was an HttpError only)."""
    remote, local = both
    with pytest.raises(InvalidError):
        call(local)
    with pytest.raises(BadRequestError) as info:
        call(remote)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HttpError)
    assert info.value.status_code == 400
    assert remote.version == local.version == 1  # nothing written


def test_create_with_a_schema_fills_missing_nullable_columns(served):
    remote, local = served
    schema = pa.schema(
        [("id", pa.int32()), ("s", pa.string()), ("v", pa.list_(pa.float32(), 2))]
    )
    remote.create_table("fill_r", [{"id": 1}], schema=schema)
    local.create_table("fill_l", [{"id": 1}], schema=schema)
    for name in ("fill_r", "fill_l"):
        got = local.open_table(name).to_arrow()
        assert got.schema == schema
        assert got.to_pylist() == [{"id": 1, "s": None, "v": None}]
    strict = schema.append(pa.field("n", pa.int64(), nullable=False))
    for db, name in ((remote, "strict_r"), (local, "strict_l")):
        with pytest.raises(
            InvalidError, match=r"missing non-nullable columns: 'n' \(int64\)"
        ):
            db.create_table(name, [{"id": 1}], schema=strict)
    assert "strict_r" not in remote.table_names()


def test_add_of_none_is_refused_and_commits_nothing(both):
    for table in both:
        with pytest.raises(RiffledbTypeError, match="^Unsupported data of type NoneType"):
            table.add(None)
        assert table.version == 1
    remote, _ = both
    remote.add([])  # no rows: an empty append, as before
    assert remote.version == 2


def test_a_type_describe_cannot_name_is_refused_before_anything_is_written(served):
    """A map column: the table was created, listed, and then could not be opened
    (describe answered 501), nor created again (it existed)."""
    remote, local = served
    data = pa.table({"m": pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64()))})
    with pytest.raises(NotSupportedError, match="Column 'm' has type map<string, int64>"):
        remote.create_table("mapped", data)
    assert "mapped" not in remote.table_names()
    assert "mapped" not in local.table_names()
    t = remote.create_table("mapped", pa.table({"id": [1]}))
    with pytest.raises(HttpError) as info:
        t.add(data, mode="overwrite")
    assert info.value.status_code == 501
    assert ids(t.to_arrow()) == [1]


def test_takes_with_binary_views(served):
    remote, local = served
    data = pa.table({"s": ["a", "b" * 20, None], "b": pa.array([b"x", None, b"z" * 30])})
    remote.create_table("views", data)
    for db in (remote, local):
        got = db.open_table("views").take_offsets([2, 0]).with_binary_views().to_arrow()
        assert got.schema.types == [pa.string_view(), pa.binary_view()]
        assert got.to_pylist() == [{"s": None, "b": b"z" * 30}, {"s": "a", "b": b"x"}]


def test_columns_stored_as_views(served):
    """string_view/binary_view columns: the remote schema is the local one (the JSON
    schema of a describe names them "string"/"binary": the client reads the exact one,
    `arrow_schema`), and takes, filters and scans read them as locally (they failed on
    both: Arrow has no take or LIKE kernel for views)."""
    remote, local = served
    words = ["apple", None, "a much longer value, not inlined", "banana"]
    data = pa.table(
        {
            "id": pa.array(range(4)),
            "s": pa.array(words, pa.string_view()),
            "b": pa.array([w and w.encode() for w in words], pa.binary_view()),
        }
    )
    remote.create_table("stored_views", data)
    tables = [db.open_table("stored_views") for db in (remote, local)]
    for t in tables:
        assert t.schema == data.schema
        got = t.take_offsets([2, 1, 0]).to_arrow()
        assert got.schema == data.schema
        assert got["s"].to_pylist() == [words[2], None, words[0]]
        assert t.search().where("s LIKE 'a%'").to_arrow()["id"].to_pylist() == [0, 2]
        assert t.to_arrow()["b"].to_pylist() == data["b"].to_pylist()


def test_a_describe_without_a_readable_arrow_schema_gives_the_json_one():
    from riffledb.remote._schema import schema_of_describe

    json_schema = {
        "fields": [{"name": "s", "type": {"type": "string"}, "nullable": True}]
    }
    for arrow_schema in (None, "not base64!", "AAAA", 7):
        answer = {"schema": json_schema, "arrow_schema": arrow_schema}
        assert schema_of_describe(answer) == pa.schema([("s", pa.string())])
    exact = pa.schema([("s", pa.string_view())]).serialize().to_pybytes()
    answer = {"schema": json_schema, "arrow_schema": base64.b64encode(exact).decode()}
    assert schema_of_describe(answer) == pa.schema([("s", pa.string_view())])


def test_to_batches_gives_batches_of_the_asked_size(served):
    remote, local = served
    remote.create_table("batches", pa.table({"id": pa.array(range(10_000))}))
    for db in (remote, local):
        sizes = [len(b) for b in db.open_table("batches").search().to_batches(7000)]
        assert sizes == [7000, 3000]


def test_a_pinned_version_of_a_table_dropped_and_created_again_is_not_read(served):
    """A version read before is not read again from another table of the name: the
    first was dropped and another one created up to the same version number. A local
    handle keeps reading the dropped table's mapped files; a remote one cannot, and used
    to read the new table's rows as if they were the old ones: now its reads of that
    version are refused (the server compares the version's table_id with the one the
    client's describe gave)."""
    remote, _ = served
    remote.create_table("again", pa.table({"id": pa.array(range(10))}))
    pinned = remote.open_table("again")
    pinned.checkout(1)
    latest = remote.open_table("again")
    perm = Permutation.identity(latest)  # pinned at version 1
    pickled = pickle.dumps(pinned)
    # Reopened by a connection factory in the worker: the pickle carries the table id
    # (it did not, and the worker read the new table's rows).
    factory = functools.partial(_open_remote, remote.url)
    with_factory = pickle.dumps(perm.with_connection_factory(factory))
    assert perm.with_connection_factory(factory).__getstate__()["base_table_id"]
    assert ids(pinned.take_offsets([0, 1]).to_arrow()) == [0, 1]
    # Through the server, which forgets the table at once (another process's drop is
    # seen within a second: until then the server still reads the dropped table's
    # files, which it holds open, and answers the version read before, rightly).
    remote.drop_table("again")
    remote.create_table("again", pa.table({"id": pa.array(range(100, 105))}))
    for read in (
        lambda: pinned.take_offsets([0, 1]).to_arrow(),
        lambda: pinned.to_arrow(),
        lambda: pinned.count_rows(),
        lambda: pinned.schema,
        lambda: pickle.loads(pickled).to_arrow(),
    ):
        with pytest.raises(TableNotFoundError, match="dropped and created again"):
            read()
    # The native reader's 404 is an HttpError with LanceDB's fields and, as the
    # table's own reads say, a TableNotFoundError (it was an HttpError only).
    with pytest.raises(NotFoundError, match="dropped and created again") as info:
        perm.take_offsets([0, 1])
    assert info.value.status_code == 404
    assert isinstance(info.value, TableNotFoundError)
    assert isinstance(info.value, HttpError)
    with pytest.raises(TableNotFoundError, match="dropped and created again"):
        pickle.loads(with_factory).take_offsets([0, 1])
    # A handle of the newest version reads the new table, as before; so does one that
    # checks the version out again (of the table the name holds now).
    assert ids(latest.to_arrow()) == list(range(100, 105))
    pinned.checkout_latest()
    pinned.checkout(1)
    assert ids(pinned.to_arrow()) == list(range(100, 105))


def _open_remote(url: str, name: str):
    return riffledb.connect("db://parity", api_key="", host_override=url).open_table(name)


def test_a_streaming_dataset_keeps_the_table_of_its_version(served):
    """A StreamingDataset pins a version; pickled (into a spawn worker), or after the
    handle's describe saw the name's new table at that version, its reads said no table
    id and read the new table's rows as its own."""
    remote, _ = served
    remote.create_table("streamed", pa.table({"id": pa.array(range(10))}))
    table = remote.open_table("streamed")
    ds = StreamingDataset(table, num_splits=1, shuffle=False)
    assert sorted(row["id"] for row in ds) == list(range(10))
    pickled = pickle.dumps(ds)
    remote.drop_table("streamed")
    remote.create_table("streamed", pa.table({"id": pa.array(range(100, 110))}))
    assert table.version == 1  # a describe that sees the new table at version 1
    for dataset in (pickle.loads(pickled), ds):
        dataset._splits = None  # a new epoch's permutation, as a worker builds it
        with pytest.raises(TableNotFoundError, match="dropped and created again"):
            list(dataset)


def test_a_404_of_a_route_that_is_not_a_table_s_is_an_http_error(served):
    """Only the native reader's 404s (a table's, or a version's) are NotFoundError; a
    404 of another route (a server without the route, a wrong base path) is not a
    TableNotFoundError."""
    remote, _ = served
    with pytest.raises(HttpError) as info:
        remote._send("GET", "/v1/no/such/route/")
    assert info.value.status_code == 404
    assert not isinstance(info.value, TableNotFoundError)
