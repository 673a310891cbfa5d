"""riffledb's ``db://`` client against mocks written after the ones of LanceDB's own
remote tests (test_remote_db.py, test_torch.py, test_permutation.py; spec
/remote-protocol.md §4): exact request bodies, headers, row orders and error fields.

The mocks (harness/lancedb_mocks.py) answer as LanceDB's tests do: HTTP/1.0 handlers
that write their own answers, some without Content-Length. test_remote.py tests the
client against ``riffledb serve`` and a keep-alive mock; nothing here repeats it.
Where riffledb differs from LanceDB's client on purpose, the test says so.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pyarrow as pa
import pytest
from harness import hang
from harness.lancedb_mocks import (
    NO_LIMIT,
    MockLanceDB,
    PermutationServer,
    connect,
    describe_answer,
    loader_scenarios,
    mock_connection,
    mock_remote_table,
    send_arrow,
    send_json,
    send_status,
)

import riffledb
from riffledb.errors import InvalidError, TableExistsError, TableNotFoundError
from riffledb.permutation import Permutation, permutation_builder
from riffledb.remote import ClientConfig, HeaderProvider, RetryConfig, TimeoutConfig
from riffledb.remote.errors import HttpError, RetryError
from riffledb.remote.header import StaticHeaderProvider
from riffledb.remote.table import RemoteTable

DESCRIBE = describe_answer({"id": "int64"})


def table_server(count: int = 3, query=None):
    """``serve`` of a table ``test`` (id: int64): describe, count_rows, create, insert,
    drop, version/list, and ``query(body) -> pa.Table``; anything else 404."""

    def serve(request, body):
        path = request.path
        if path.startswith("/v1/table/test/describe/"):
            return send_json(request, DESCRIBE)
        if path == "/v1/table/test/count_rows/":
            return send_json(request, count)
        if path.startswith("/v1/table/test/create/"):
            return send_json(request, {})
        if path.startswith("/v1/table/test/insert/"):
            return send_status(request, 200)  # no body, as LanceDB's tests answer
        if path == "/v1/table/test/drop/":
            return send_status(request, 200)
        if path == "/v1/table/test/query/" and query is not None:
            return send_arrow(request, query(json.loads(body)))
        return send_status(request, 404)

    return serve


# -- connect ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a" * 64, "invalid..database", "-dash"])
def test_connect_refuses_names_that_are_not_dns_labels(name):
    with pytest.raises(ValueError, match="DNS labels must contain 1 to 63 bytes"):
        riffledb.connect(f"db://{name}", api_key="fake")
    riffledb.connect("db://" + "a" * 63, api_key="fake")  # the longest label


def test_client_config_and_lancedbs_deprecated_connect_arguments():
    args = {"uri": "db://dev", "api_key": "fake-api-key", "region": "us-east-1"}
    assert riffledb.connect(**args).client_config == ClientConfig()
    assert riffledb.connect(**args, client_config={}).client_config == ClientConfig()
    for timeouts in ({"connect_timeout": 42}, {"connect_timeout": timedelta(seconds=42)}):
        db = riffledb.connect(**args, client_config={"timeout_config": timeouts})
        assert db.client_config.timeout_config.connect_timeout == timedelta(seconds=42)
    db = riffledb.connect(
        **args, client_config=ClientConfig(timeout_config={"timeout": 60})
    )
    assert db.client_config.timeout_config == TimeoutConfig(timeout=timedelta(seconds=60))
    db = riffledb.connect(**args, client_config={"retry_config": {"retries": 42}})
    assert db.client_config.retry_config == RetryConfig(retries=42)

    with pytest.warns(DeprecationWarning, match="^connection_timeout is deprecated"):
        db = riffledb.connect(**args, connection_timeout=42)
    assert db.client_config.timeout_config.connect_timeout == timedelta(seconds=42)
    config = ClientConfig(retry_config=RetryConfig(retries=1))
    with pytest.warns(DeprecationWarning, match="^read_timeout is deprecated"):
        db = riffledb.connect(**args, client_config=config, read_timeout=7)
    assert db.client_config.timeout_config.read_timeout == timedelta(seconds=7)
    assert db.client_config.retry_config.retries == 1
    assert config.timeout_config.read_timeout is None  # the caller's is not changed
    with pytest.warns(DeprecationWarning, match="^request_thread_pool is no longer"):
        riffledb.connect(**args, request_thread_pool=10)
    with pytest.raises(TypeError, match="connection_timeout"):
        riffledb.connect("memory://", connection_timeout=42)


def test_client_config_busy_poll(monkeypatch):
    from riffledb.remote import native_client_arguments

    def polls(config, worker=False):
        arguments = native_client_arguments(config, worker=worker)
        return arguments["busy_poll_us"], arguments["forked_busy_poll_us"]

    monkeypatch.delenv("RIFFLEDB_BUSY_POLL_US", raising=False)
    assert ClientConfig().busy_poll_us is None
    # By default the connecting process polls, its forked children and workers do not.
    assert polls(ClientConfig()) == (1000, 0)
    assert polls(ClientConfig(), worker=True) == (0, 0)
    # A value said applies everywhere, the config's before the environment's.
    assert polls(ClientConfig(busy_poll_us=50), worker=True) == (50, 50)
    monkeypatch.setenv("RIFFLEDB_BUSY_POLL_US", "0")
    assert polls(ClientConfig()) == (0, 0)
    monkeypatch.setenv("RIFFLEDB_BUSY_POLL_US", "300")
    assert polls(ClientConfig(), worker=True) == (300, 300)
    assert polls(ClientConfig(busy_poll_us=50)) == (50, 50)
    for text in ("fast", "-5", "1000001", "2.5"):
        monkeypatch.setenv("RIFFLEDB_BUSY_POLL_US", text)
        with pytest.raises(
            ValueError, match=rf"^Invalid value for RIFFLEDB_BUSY_POLL_US: '{text}'$"
        ):
            native_client_arguments(ClientConfig())
    monkeypatch.delenv("RIFFLEDB_BUSY_POLL_US")
    for bad in (-1, 1_000_001, True, 1.5, "200"):
        with pytest.raises(
            ValueError,
            match=r"^busy_poll_us must be a whole number of microseconds from 0 to "
            rf"1000000, not {bad!r}$",
        ):
            ClientConfig(busy_poll_us=bad)
    # It travels with a pickled connection, as the rest of the config does.
    with mock_connection(table_server(count=3), busy_poll_us=7) as (db, _):
        restored = pickle.loads(pickle.dumps(db.open_table("test")))
        assert restored._conn.client_config.busy_poll_us == 7
        assert restored.count_rows() == 3


def test_reprs_are_lancedbs():
    with mock_connection(table_server()) as (db, _):
        assert repr(db) == "RemoteConnect(name=dev)"
        assert repr(db.open_table("test")) == "RemoteTable(dev.test)"


# -- headers ---------------------------------------------------------------------------
def test_headers_of_every_request():
    version = riffledb.__version__
    with mock_connection(table_server(count=5)) as (db, mock):
        assert len(db.open_table("test")) == 5
        describe, count = mock.requests
    for request in (describe, count):
        assert request.headers["x-api-key"] == "fake"
        assert request.headers["x-lancedb-database"] == "dev"
        # LanceDB's client says LanceDB-Python-Client/<version>.
        assert request.headers["User-Agent"] == f"riffledb-Python-Client/{version}"
        assert uuid.UUID(request.headers["x-request-id"]).version == 4
        assert request.headers.get("x-lancedb-database-prefix") is None
    assert describe.headers["x-request-id"] != count.headers["x-request-id"]
    assert describe.body == b"" and describe.headers.get("Content-Type") is None
    assert count.headers["Content-Type"] == "application/json"


def test_extra_headers_prefix_user_id_and_empty_key():
    with MockLanceDB(lambda r, b: send_json(r, {"tables": []})) as mock:
        riffledb.connect(
            "db://dev/team",
            api_key="",
            host_override=mock.url,
            client_config={
                "extra_headers": {"foo": "bar", "User-Agent": "mine/1"},
                "user_id": "u-7",
            },
        ).table_names()
        (request,) = mock.requests
    assert request.headers.get("x-api-key") is None  # "" sends no key
    assert request.headers["foo"] == "bar"
    assert request.headers.get_all("User-Agent") == ["mine/1"]  # replaces the default
    assert request.headers["x-lancedb-database"] == "dev"
    assert request.headers["x-lancedb-database-prefix"] == "team"
    assert request.headers["x-lancedb-user-id"] == "u-7"


class CountingProvider(HeaderProvider):
    def __init__(self):
        self.calls = 0

    def get_headers(self):
        self.calls += 1
        return {"X-Auth-Token": f"token-{self.calls}", "X-API-Key": "provider-key"}


def test_header_provider_is_asked_before_every_request_and_wins():
    provider = CountingProvider()
    with mock_connection(
        table_server(),
        header_provider=provider,
        extra_headers={"X-API-Key": "static-key", "X-Extra": "extra-value"},
    ) as (db, mock):
        table = db.create_table("test", [{"id": 1}])
        table.add([{"id": 2}])
        assert table.count_rows() == 3
    assert [r.path for r in mock.requests] == [
        "/v1/table/test/create/?mode=create",
        "/v1/table/test/insert/",
        "/v1/table/test/count_rows/",
    ]
    assert [r.headers.get_all("X-Auth-Token") for r in mock.requests] == [
        ["token-1"],
        ["token-2"],
        ["token-3"],
    ]
    for request in mock.requests:
        assert request.headers.get_all("x-api-key") == ["provider-key"]
        assert request.headers["X-Extra"] == "extra-value"
    assert provider.calls == 3


def test_header_provider_is_asked_again_before_each_retry():
    # Spec §1.3: the provider's headers are applied before each attempt, so a retry
    # after a token expired carries a fresh one (takes too, which are native).
    answers = [503]  # the mock connection makes two attempts

    def serve(request, body):
        if answers:
            return send_status(request, answers.pop(0), b"later")
        if request.path == "/v1/table/test/query/":
            return send_arrow(request, pa.table({"id": pa.array([0, 2], pa.int64())}))
        send_json(request, {"tables": ["test"]})

    provider = CountingProvider()
    with mock_connection(serve, header_provider=provider) as (db, mock):
        assert db.table_names() == ["test"]
        assert [r.headers["X-Auth-Token"] for r in mock.requests] == [
            "token-1",
            "token-2",
        ]
        assert len({r.headers["x-request-id"] for r in mock.requests}) == 1
        answers.append(429)
        table = RemoteTable(db, "test")
        assert table.take_offsets([2, 0]).to_arrow()["id"].to_pylist() == [2, 0]
        takes = [r for r in mock.requests if r.path == "/v1/table/test/query/"]
        assert [r.headers["X-Auth-Token"] for r in takes] == ["token-3", "token-4"]
        # One header of that name per attempt: the provider's replaces, never adds.
        assert all(len(r.headers.get_all("X-Auth-Token")) == 1 for r in mock.requests)
    assert provider.calls == 4


def test_static_header_provider_and_a_failing_one():
    provider = StaticHeaderProvider({"X-Session-Id": "sync-session-123"})
    assert provider.get_headers() == {"X-Session-Id": "sync-session-123"}

    class Failing(HeaderProvider):
        def get_headers(self):
            raise RuntimeError("Failed to fetch authentication token")

    with mock_connection(table_server(), header_provider=provider) as (db, mock):
        assert len(db.open_table("test")) == 3
        assert {r.headers["X-Session-Id"] for r in mock.requests} == {"sync-session-123"}
    with mock_connection(table_server(), header_provider=Failing()) as (db, mock):
        with pytest.raises(RuntimeError, match="^Failed to fetch authentication token$"):
            db.table_names()
        assert mock.requests == []  # nothing was sent
    with pytest.raises(TypeError, match="abstract"):
        HeaderProvider()


# -- catalog ---------------------------------------------------------------------------
NAMES = ["a", "b", "c", "d", "e"]


def pages(request, body):
    """Sorted names after ``page_token``, at most ``limit`` and 2 a page."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(request.path).query)
    after = query.get("page_token", [""])[0]
    limit = min(int(query.get("limit", ["2"])[0]), 2)
    rest = [n for n in NAMES if n > after]
    answer = {"tables": rest[:limit]}
    if len(rest) > limit:
        answer["page_token"] = rest[limit - 1]
    send_json(request, answer)


def test_table_names_follows_page_tokens():
    with mock_connection(pages) as (db, mock):
        assert db.table_names() == NAMES
        assert mock.paths() == [
            "/v1/table/",
            "/v1/table/?page_token=b",
            "/v1/table/?page_token=d",
        ]
    with mock_connection(pages) as (db, mock):
        assert db.table_names(page_token="a", limit=3) == ["b", "c", "d"]
        assert mock.paths() == [
            "/v1/table/?limit=3&page_token=a",
            "/v1/table/?limit=1&page_token=c",
        ]
        assert all(r.method == "GET" and r.body == b"" for r in mock.requests)
    # LanceDB's sync table_names() sends ?limit=10 and returns that one page; riffledb's
    # returns every name (LanceDB's async one and list_tables follow the tokens too).


def test_create_open_drop_and_len():
    with mock_connection(table_server(count=1)) as (db, mock):
        table = db.create_table("test", [{"id": 1}])
        assert isinstance(table, RemoteTable) and len(table) == 1
        db.create_table("test", [{"id": 1}], exist_ok=True)
        db.create_table("test", [{"id": 1}], mode="create", exist_ok=True)
        db.create_table("test", [{"id": 1}], mode="overwrite", exist_ok=True)
        db.create_table("test", schema=pa.schema([("id", pa.int64())]))
        db.drop_table("test")
    assert mock.paths() == [
        "/v1/table/test/create/?mode=create",
        "/v1/table/test/count_rows/",  # create answers no table: no describe
        "/v1/table/test/create/?mode=exist_ok",
        "/v1/table/test/create/?mode=exist_ok",
        "/v1/table/test/create/?mode=overwrite",
        "/v1/table/test/create/?mode=create",
        "/v1/table/test/drop/",
    ]
    create = mock.requests[0]
    assert create.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    assert pa.ipc.open_stream(create.body).read_all() == pa.table({"id": [1]})
    empty = pa.ipc.open_stream(mock.requests[5].body)
    assert empty.schema == pa.schema([("id", pa.int64())])
    assert [b.num_rows for b in empty] == [0]  # one zero-row batch, as LanceDB sends
    assert mock.requests[6].body == b""


def test_create_and_open_errors():
    def serve(request, body):
        if "/exists/create/" in request.path:
            return send_status(request, 400, b"Table 'exists' already exists")
        if "/bad/create/" in request.path:
            return send_status(request, 400, b"bad schema")
        if "/busy/create/" in request.path:
            return send_status(request, 503, b"later")
        return send_status(request, 404, b"no such table")

    with mock_connection(serve) as (db, mock):
        with pytest.raises(TableExistsError, match="^Table 'exists' already exists$"):
            db.create_table("exists", [{"id": 1}])
        with pytest.raises(InvalidError, match="400 Bad Request: bad schema$"):
            db.create_table("bad", [{"id": 1}])
        with pytest.raises(HttpError) as info:
            db.create_table("busy", [{"id": 1}])
        with pytest.raises(TableNotFoundError) as missing:
            db.open_table("gone")
        with pytest.raises(TableNotFoundError):
            db.drop_table("gone")
        db.drop_table("gone", ignore_missing=True)
        # Creates are sent once (503 is not retried on a write), reads once on a 404.
        assert mock.paths().count("/v1/table/busy/create/?mode=create") == 1
        assert mock.paths().count("/v1/table/gone/describe/") == 1
    assert not isinstance(info.value, RetryError) and info.value.status_code == 503
    assert isinstance(missing.value, ValueError)  # LanceDB's TableNotFound
    assert missing.value.__cause__.status_code == 404


# -- reads -----------------------------------------------------------------------------
def test_count_rows_checkout_and_versions():
    counts = {None: 300, 1: 100, 2: 200}

    def serve(request, body):
        if request.path == "/v1/table/test/describe/":
            version = json.loads(body)["version"] if body else None
            if version == 9:
                return send_status(request, 404, b"no version 9")
            return send_json(request, describe_answer({"id": "int64"}, version or 42))
        if request.path == "/v1/table/test/count_rows/":
            return send_json(request, counts[json.loads(body)["version"]])
        if request.path == "/v1/table/test/version/list/":
            return send_json(
                request,
                {
                    "versions": [
                        {"version": 1, "timestamp": "2026-01-02T03:04:05Z"},
                        {"version": 2, "timestamp_millis": 1000, "metadata": {"k": "v"}},
                    ]
                },
            )
        return send_status(request, 404)

    with mock_connection(serve) as (db, mock):
        table = db.open_table("test")
        assert table.count_rows() == 300 and table.version == 42
        table.checkout(1)
        assert table.count_rows() == 100 and table.version == 1
        table.checkout(2)
        assert table.count_rows("id > 1") == 200
        with pytest.raises(ValueError, match="Cannot mutate table reference fixed at"):
            table.add([{"id": 1}])
        with pytest.raises(TableNotFoundError):
            table.checkout(9)
        table.checkout_latest()
        assert table.count_rows() == 300
        versions = table.list_versions()
        bodies = [(r.path.split("/")[4], r.body) for r in mock.requests]
    assert bodies == [
        ("describe", b""),
        ("count_rows", b'{"version": null}'),
        ("describe", b'{"version": null}'),
        ("describe", b'{"version": 1}'),
        ("count_rows", b'{"version": 1}'),
        ("describe", b'{"version": 2}'),
        ("count_rows", b'{"version": 2, "predicate": "id > 1"}'),
        ("describe", b'{"version": 9}'),
        ("count_rows", b'{"version": null}'),
        ("version", b""),
    ]
    assert versions[0]["timestamp"].isoformat() == "2026-01-02T03:04:05+00:00"
    assert versions[1]["timestamp"].timestamp() == 1.0
    assert [v["metadata"] for v in versions] == [{}, {"k": "v"}]


def test_query_bodies_and_answers():
    bodies = []

    def query(body):
        bodies.append(body)
        return pa.table({"id": [1, 2, 3]})

    with mock_connection(table_server(query=query)) as (db, _):
        table = db.open_table("test")
        assert table.head(5) == pa.table({"id": [1, 2, 3]})
        assert table.search(None).where("true").select(["id"]).limit(10).to_list() == [
            {"id": 1},
            {"id": 2},
            {"id": 3},
        ]
        table.search().where("id > 0").select({"x": "id * 2"}).offset(2).with_row_id(
            True
        ).to_arrow()
        assert table.to_arrow().num_rows == 3  # LanceDB's client refuses; riffledb reads
        assert table.search().limit(0).to_arrow().num_rows == 0
    assert bodies == [
        {"version": None, "prefilter": True, "k": 5, "vector": []},
        {
            "version": None,
            "prefilter": True,
            "k": 10,
            "vector": [],
            "filter": "true",
            "columns": ["id"],
        },
        {
            "version": None,
            "prefilter": True,
            "k": NO_LIMIT,
            "vector": [],
            "offset": 2,
            "filter": "id > 0",
            "columns": {"x": "id * 2"},
            "with_row_id": True,
        },
        {"version": None, "prefilter": True, "k": NO_LIMIT, "vector": []},
        # k=0 means "no limit" on the wire: an empty answer asks for one row.
        {"version": None, "prefilter": True, "k": 1, "vector": []},
    ]


def test_query_answers_as_ipc_stream_and_in_batches():
    def serve(request, body):
        if request.path == "/v1/table/test/describe/":
            return send_json(request, DESCRIBE)
        send_arrow(request, pa.table({"id": list(range(7))}), stream="s" in body.decode())

    with mock_connection(serve) as (db, _):
        table = db.open_table("test")
        assert table.search().to_arrow()["id"].to_pylist() == list(range(7))
        answer = table.search().where("s").to_batches(3)
        assert [b.num_rows for b in answer] == [3, 3, 1]


def test_takes_ask_once_per_key_and_keep_the_requested_order():
    bodies = []

    def query(body):
        # As LanceDB's server over 10 rows whose id == offset == rowid: each matching
        # row once, ascending.
        bodies.append(body)
        keys = sorted({int(k) for k in body["filter"].split("(")[1][:-1].split(",")})
        keys = [k for k in keys if k < 10]
        columns = {"id": pa.array(keys, pa.int64())}
        if body.get("with_row_id"):
            columns["_rowid"] = pa.array(keys, pa.uint64())
        return pa.table(columns)

    with mock_connection(table_server(query=query)) as (db, _):
        table = db.open_table("test")
        assert table.take_offsets([4, 0, 4]).to_list() == [
            {"id": 4},
            {"id": 0},
            {"id": 4},
        ]
        got = table.take_row_ids([9, 2, 9]).to_arrow()
        assert got == pa.table({"id": [9, 2, 9]})
        got = table.take_row_ids([5, 1]).select(["id"]).with_row_id(True).to_arrow()
        assert got.to_pydict() == {"id": [5, 1], "_rowid": [5, 1]}
        # As a local table's take: an IndexError naming the id and its position.
        with pytest.raises(
            IndexError, match="^Row id 17 at position 1 is not a row of table 'test'$"
        ):
            table.take_row_ids([3, 17]).to_arrow()
    assert [(b["filter"], b.get("columns"), b.get("with_row_id")) for b in bodies] == [
        ("_rowoffset in (0,4)", None, None),
        ("_rowid in (2,9)", None, True),
        ("_rowid in (1,5)", ["id"], True),
        ("_rowid in (3,17)", None, True),
    ]
    assert all(b["k"] == NO_LIMIT and b["vector"] == [] for b in bodies)
    # LanceDB's client returns take_offsets([0, 2, 0, 4]) of a remote table as rows 0, 0,
    # 2, 4 (ascending); riffledb's keeps the requested order, as its local takes do.


def test_add_sends_one_insert_from_many_threads():
    with mock_connection(table_server()) as (db, mock):
        table = db.create_table("test", [{"id": 1}])
        with ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(table.add, [{"id": 1}]) for _ in range(10)]:
                future.result()
        table.add(pa.table({"id": [5]}), mode="overwrite")
    inserts = [r for r in mock.requests if "/insert/" in r.path]
    assert [r.path for r in inserts] == ["/v1/table/test/insert/"] * 10 + [
        "/v1/table/test/insert/?mode=overwrite"
    ]
    assert {pa.ipc.open_stream(r.body).read_all()["id"][0].as_py() for r in inserts} == {
        1,
        5,
    }
    assert len({r.headers["x-request-id"] for r in inserts}) == 11


# -- errors, retries, timeouts ---------------------------------------------------------
def test_http_error_carries_the_request_id_and_the_body():
    # An answer without Content-Length, ended by the close (HTTP/1.0), as LanceDB's mock.
    with mock_connection(lambda r, b: send_status(r, 507, b"Internal Server Error")) as (
        db,
        mock,
    ):
        with pytest.raises(HttpError) as info:
            db.table_names()
        (request,) = mock.requests
    request_id = request.headers["x-request-id"]
    assert not isinstance(info.value, RetryError)
    assert info.value.request_id == request_id and info.value.status_code == 507
    assert str(info.value) == (
        f"Http error: (request_id={request_id}) 507 Insufficient Storage: "
        "Internal Server Error"
    )


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_listed_statuses_are_retried_with_one_request_id(status):
    with mock_connection(lambda r, b: send_status(r, status, b"Try again later")) as (
        db,
        mock,
    ):
        with pytest.raises(RetryError) as info:
            db.table_names()
        ids = [r.headers["x-request-id"] for r in mock.requests]
    error = info.value
    assert len(ids) == 2 and len(set(ids)) == 1  # retries=2: two attempts
    assert error.request_id == ids[0] and error.status_code == status
    assert (error.request_failures, error.max_request_failures) == (2, 2)
    assert (error.connect_failures, error.read_failures) == (0, 0)
    assert str(error) == (
        f"Hit retry limit for request_id={ids[0]} (request_failures=2/2, "
        "connect_failures=0/3, read_failures=0/3)"
    )
    cause = error.__cause__
    assert isinstance(cause, HttpError) and not isinstance(cause, RetryError)
    assert cause.request_id == ids[0] and cause.status_code == status
    assert str(cause).endswith(f" {status} {cause_reason(status)}: Try again later")


def cause_reason(status: int) -> str:
    from http import HTTPStatus

    return {413: "Payload Too Large"}.get(status, HTTPStatus(status).phrase)


def test_retry_statuses_are_configurable_and_a_later_success_wins():
    answers = [418, 503]

    def serve(request, body):
        if answers:
            return send_status(request, answers.pop(0), b"teapot")
        send_json(request, {"tables": ["t"]})

    with mock_connection(serve, retry_config={"statuses": [418]}) as (db, mock):
        with pytest.raises(HttpError) as info:
            db.table_names()  # 418 retried, then 503 (not listed) fails
        assert db.table_names() == ["t"]
        assert len({r.headers["x-request-id"] for r in mock.requests[:2]}) == 1
    assert info.value.status_code == 503 and not isinstance(info.value, RetryError)
    assert len(mock.requests) == 3


def test_connection_refused_counts_connect_failures():
    with socket.socket() as s:
        # Bound and not listening, for the whole test: a connection is refused, and no
        # other process (pytest's other worker) can take the port meanwhile.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        db = connect(f"http://127.0.0.1:{port}", retry_config={"connect_retries": 2})
        with pytest.raises(RetryError) as info:
            db.table_names()
    error = info.value
    assert (error.connect_failures, error.max_connect_failures) == (2, 2)
    assert (error.request_failures, error.read_failures) == (0, 0)
    assert error.status_code is None and error.__cause__.status_code is None
    assert error.__cause__.request_id == error.request_id
    assert str(error.__cause__).endswith(
        f"GET /v1/table/: cannot connect to 127.0.0.1:{port} [Connection]"
    )


def test_a_server_that_never_answers_is_a_read_failure():
    release = threading.Event()

    def serve(request, body):
        release.wait(30)
        send_json(request, {"tables": []})

    with MockLanceDB(serve, threading_server=True) as mock:
        db = connect(
            mock.url,
            retry_config={"read_retries": 1},
            timeout_config={"read_timeout": 0.2},
        )
        try:
            with pytest.raises(RetryError) as info:
                db.table_names()
        finally:
            release.set()
    assert (info.value.read_failures, info.value.max_read_failures) == (1, 1)
    assert info.value.connect_failures == 0 and info.value.status_code is None
    assert str(info.value.__cause__).endswith(
        f"GET /v1/table/: the connection to {mock.url[7:]} failed, closed or "
        "timed out before the whole response came [Read]"
    )


# -- serialization, pickling, fork -----------------------------------------------------
def test_serialize_is_json_and_deserialize_conn_reconnects():
    with mock_connection(
        lambda r, b: send_json(r, {"tables": []}), extra_headers={"foo": "bar"}
    ) as (db, mock):
        state = json.loads(db.serialize())
        assert state["db_url"] == "db://dev" and state["api_key"] == "fake"
        assert state["host_override"] == mock.url and state["region"] == "us-east-1"
        assert state["client_config"]["extra_headers"] == {"foo": "bar"}
        assert state["client_config"]["retry_config"]["retries"] == 2
        restored = riffledb.deserialize_conn(db.serialize())
        assert restored is not db and restored.table_names() == []
        assert riffledb.deserialize_conn(state, for_worker=True).table_names() == []
        assert [r.headers["foo"] for r in mock.requests] == ["bar", "bar"]
    with pytest.raises(InvalidError, match="Not a serialized"):
        riffledb.deserialize_conn("{")
    with pytest.raises(InvalidError, match="no db:// db_url"):
        riffledb.deserialize_conn({"db_url": "memory://"})


def test_pickled_table_reopens_at_its_version():
    with mock_connection(table_server(count=3)) as (db, mock):
        table = db.open_table("test")
        restored = pickle.loads(pickle.dumps(table))
        assert restored.count_rows() == 3 and restored._conn is not table._conn
        table.checkout(1)
        pinned = pickle.loads(pickle.dumps(table))
        assert pinned.version == 1 and pinned.count_rows() == 3
        assert mock.requests[-1].body == b'{"version": 1}'


def test_a_header_provider_keeps_tables_and_permutations_from_pickling():
    server = PermutationServer(name="test", num_rows=4)
    provider = StaticHeaderProvider({"X-Test-Header": "present"})
    with MockLanceDB(server, threading_server=True) as mock:
        db = connect(mock.url, header_provider=provider)
        table = db.open_table("test")
        assert table.count_rows() == 4
        for what in (db, table, Permutation.identity(table)):
            with pytest.raises(ValueError, match="header_provider"):
                pickle.dumps(what)
        with pytest.raises(ValueError, match="header_provider"):
            db.serialize()
        assert {r.headers["X-Test-Header"] for r in mock.requests} == {"present"}


@pytest.mark.skipif(sys.platform != "linux", reason="fork is Linux-only here")
def test_an_inherited_table_works_after_fork_against_an_http10_server():
    with mock_connection(table_server(count=7)) as (db, mock):
        table = db.open_table("test")
        assert table.count_rows() == 7
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if table.count_rows() == 7 else 2
            finally:
                os._exit(code)
        assert hang.wait_child(pid, timeout=30) == 0
        assert table.count_rows() == 7  # and the parent's still works
        assert mock.paths().count("/v1/table/test/count_rows/") == 3


# -- permutations (LanceDB's MockPermutationServer cases) ------------------------------
def test_permutation_over_a_remote_table_sends_lancedbs_shapes():
    server = PermutationServer()
    with mock_remote_table(server) as table:
        perm_table = permutation_builder(table).split_sequential(fixed=2).execute()
        assert perm_table.count_rows() == server.num_rows
        permutation = Permutation.from_tables(table, perm_table, 0)
        assert permutation.num_rows == server.num_rows // 2
        rows = perm_table.to_arrow().to_pydict()
        split0 = [
            r for r, s in zip(rows["row_id"], rows["split_id"], strict=True) if s == 0
        ]
        assert split0 == [0, 1, 2, 3]
        # The server answers takes in ascending order; the client restores the order.
        assert permutation.take_offsets([2, 0, 3]) == [{"id": 2}, {"id": 0}, {"id": 3}]
    assert server.scans == [
        {
            "version": 1,
            "prefilter": True,
            "k": NO_LIMIT,
            "columns": ["_rowid"],
            "vector": [],
        }
    ]
    assert server.takes == [
        {
            "version": 1,
            "prefilter": True,
            "k": NO_LIMIT,
            "vector": [],
            "filter": "_rowid in (0,2,3)",
            "columns": ["id"],
            "with_row_id": True,
        }
    ]
    # Only the build's scan asks for the whole table.
    unbounded = [
        b
        for b in server.query_bodies
        if "_row" not in b.get("filter", "") and (b["k"] == 0 or b["k"] > server.num_rows)
    ]
    assert unbounded == server.scans


def test_the_build_does_not_depend_on_the_servers_scan_order():
    server = PermutationServer(num_rows=16, vary_scan_order=True)

    def split_of_each_row(perm_table):
        rows = perm_table.to_arrow().to_pydict()
        return dict(zip(rows["row_id"], rows["split_id"], strict=True))

    with mock_remote_table(server) as table:
        first = split_of_each_row(
            permutation_builder(table).split_sequential(fixed=2).execute()
        )
        second = split_of_each_row(
            permutation_builder(table).split_sequential(fixed=2).execute()
        )
    assert server.scan_calls == 2
    assert first == second == {i: int(i >= 8) for i in range(16)}


def test_identity_permutation_pickles_and_takes_in_the_requested_order():
    # LanceDB's test_remote_permutation_is_picklable: a server that answers takes with
    # each offset once, in batches of two rows.
    server = PermutationServer(name="test", num_rows=10, chunk=2)
    with mock_remote_table(server) as table:
        assert table.take_offsets([0, 2, 0, 4]).to_list() == [
            {"id": 0},
            {"id": 2},
            {"id": 0},
            {"id": 4},
        ]
        restored = pickle.loads(pickle.dumps(Permutation.identity(table)))
        assert restored.__getitems__([0, 2, 0, 4]) == [
            {"id": 0},
            {"id": 2},
            {"id": 0},
            {"id": 4},
        ]
    assert [b["filter"] for b in server.takes] == [
        "_rowoffset in (0,2,4)",
        "_rowoffset in (0,2,4)",
    ]


def test_dataloader_workers_over_a_mocked_remote_table():
    pytest.importorskip("torch")
    server = PermutationServer(name="test", num_rows=100, chunk=7)
    with MockLanceDB(server, threading_server=True) as mock:
        outcome = hang.run_scenarios(
            loader_scenarios,
            mock.url,
            "test",
            what="mocked remote DataLoader",
            timeout=90,
        )
        table_ids = outcome.get("table-spawn")
        assert sorted(table_ids) == list(range(100))  # shuffled, every row once
        assert outcome.get("permutation-spawn") == list(range(100))
        assert outcome.get("permutation-fork") == list(range(100))
