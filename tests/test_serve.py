"""``riffledb serve`` (issue #13): LanceDB's REST protocol served from a database.

Each server is a ``python -m riffledb.cli serve`` subprocess on a port it picks, talked to
with http.client and pyarrow IPC as LanceDB's client would (spec/remote-protocol.md).
Every wait has a deadline; a server that does not stop is killed and the test fails.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing

import numpy as np
import pyarrow as pa
import pytest

import riffledb
from riffledb import _riffledb
from riffledb.db import native_database

KEY = "s3cret-key"
TIMEOUT = 30.0  # seconds, for every request and every wait


class Server:
    """A ``riffledb serve`` subprocess; ``stop()`` sends SIGTERM and returns the exit
    code (killing it and failing the test if it does not exit in time)."""

    def __init__(
        self, uri: str, *args: str, env: dict | None = None, ca: str | None = None
    ):
        self.ca = ca  # for connect() to a server given --tls-cert
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "riffledb.cli", "serve", uri, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        self.scheme = "https" if "--tls-cert" in args else "http"
        expected = f"riffledb serve: listening on {self.scheme}://127.0.0.1:"
        if not line.startswith(expected):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TIMEOUT)
            pytest.fail(f"riffledb serve did not start: {line!r}\n{err}")
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=self.ca)
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=TIMEOUT, context=context
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"riffledb serve did not stop on SIGTERM; stderr:\n{err}")
        self.stderr = err
        return self.proc.returncode


def ipc_stream(table: pa.Table, lz4: bool = True) -> bytes:
    """A table as LanceDB's client uploads it: an IPC stream, LZ4_FRAME batches."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4" if lz4 else None)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ids(start: int, n: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "label": pa.array([f"r{i}" for i in range(start, start + n)], pa.string()),
        }
    )


def call(conn, method, path, body=None, headers=None, key=KEY):
    """(status, headers, body bytes) of one request on ``conn``."""
    headers = dict(headers or {})
    if key is not None:
        headers["x-api-key"] = key
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, bytes):
        headers.setdefault("Content-Type", "application/vnd.apache.arrow.stream")
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.headers, response.read()


def query(conn, table: str, body: dict) -> pa.Table:
    body = {"version": None, "prefilter": True, "k": 2**63 - 1, "vector": [], **body}
    status, headers, data = call(conn, "POST", f"/v1/table/{table}/query/", body)
    assert status == 200, data
    assert headers["Content-Type"] == "application/vnd.apache.arrow.file"
    return pa.ipc.open_file(pa.BufferReader(data)).read_all()


def error_of(data: bytes) -> str:
    return json.loads(data)["error"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A directory database with table ``base`` (ids 0..99, 2 fragments), served with
    an API key and a 1 MiB body limit."""
    path = tmp_path_factory.mktemp("served") / "db"
    db = riffledb.connect(path)
    t = db.create_table("base", ids(0, 60))
    t.add(ids(60, 40))
    server = Server(str(path), "--api-key", KEY, "--max-body-bytes", str(1 << 20))
    yield server, path
    assert server.stop() == 0, server.stderr


@pytest.fixture
def conn(served):
    c = served[0].connect()
    yield c
    c.close()


# -- Endpoints, exact answers


def test_list_tables_with_pagination(served, conn):
    for name in ("pa", "pb", "pc"):
        status, _, data = call(
            conn, "POST", f"/v1/table/{name}/create/?mode=create", ipc_stream(ids(0, 1))
        )
        assert status == 200, data
    status, headers, data = call(conn, "GET", "/v1/table/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    names = json.loads(data)["tables"]
    assert names == sorted(names) and {"base", "pa", "pb", "pc"} <= set(names)
    assert (
        "phalanx-version" not in headers
    )  # keeps LanceDB's client on the basic protocol
    _, _, data = call(conn, "GET", "/v1/table/?limit=2&page_token=base")
    assert json.loads(data) == {"tables": ["pa", "pb"], "page_token": "pb"}
    _, _, data = call(conn, "GET", "/v1/namespace/$/table/list?limit=10&page_token=pb")
    assert json.loads(data)["tables"][0] == "pc"
    status, _, data = call(conn, "GET", "/v1/table/?limit=-3")
    assert status == 400 and "'limit'" in error_of(data)
    for name in ("pa", "pb", "pc"):
        assert call(conn, "POST", f"/v1/table/{name}/drop/")[0] == 200


def test_create_describe_count_insert_versions_drop(conn):
    data = ipc_stream(ids(0, 5))
    assert call(conn, "POST", "/v1/table/t1/create/?mode=create", data)[0] == 200
    status, _, body = call(conn, "POST", "/v1/table/t1/create/?mode=create", data)
    assert status == 400 and "already exists" in error_of(body)
    assert call(conn, "POST", "/v1/table/t1/create/?mode=exist_ok", data)[0] == 200

    status, _, body = call(conn, "POST", "/v1/table/t1/describe/")  # open_table: no body
    assert status == 200
    described = json.loads(body)
    # riffledb's: which table of the name version 1 is of (32 hex digits).
    table_id = described.pop("table_id")
    assert len(table_id) == 32 and int(table_id, 16) >= 0
    # riffledb's: the exact schema, as a base64 Arrow IPC schema message.
    arrow_schema = base64.b64decode(described.pop("arrow_schema"))
    assert pa.ipc.read_schema(pa.py_buffer(arrow_schema)) == ids(0, 5).schema
    assert described == {
        "version": 1,
        "schema": {
            "fields": [
                {"name": "id", "type": {"type": "int64"}, "nullable": True},
                {"name": "label", "type": {"type": "string"}, "nullable": True},
            ]
        },
    }
    assert call(conn, "POST", "/v1/table/t1/count_rows/", {"version": None})[2] == b"5"
    status, _, body = call(
        conn,
        "POST",
        "/v1/table/t1/count_rows/",
        {"predicate": "id >= 3", "version": None},
    )
    assert (status, body) == (200, b"2")

    status, _, body = call(conn, "POST", "/v1/table/t1/insert/", ipc_stream(ids(5, 3)))
    assert (status, json.loads(body)) == (200, {"version": 2})
    assert call(conn, "POST", "/v1/table/t1/count_rows/", {})[2] == b"8"
    # Reads at an older version (checkout) and 404 for one that does not exist.
    assert call(conn, "POST", "/v1/table/t1/count_rows/", {"version": 1})[2] == b"5"
    assert (
        json.loads(call(conn, "POST", "/v1/table/t1/describe/", {"version": 1})[2])[
            "version"
        ]
        == 1
    )
    assert call(conn, "POST", "/v1/table/t1/describe/", {"version": 7})[0] == 404

    status, _, body = call(
        conn, "POST", "/v1/table/t1/insert/?mode=overwrite", ipc_stream(ids(100, 2))
    )
    assert json.loads(body) == {"version": 3}
    assert query(conn, "t1", {})["id"].to_pylist() == [100, 101]
    versions = json.loads(call(conn, "POST", "/v1/table/t1/version/list/")[2])["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["metadata"]["operation"] for v in versions] == [
        "create",
        "append",
        "overwrite",
    ]
    assert all(v["timestamp"].endswith("Z") for v in versions)
    # Created empty (a schema and a zero-row batch), as create_table(name, schema=...).
    empty = ipc_stream(ids(0, 0))
    assert call(conn, "POST", "/v1/table/t1e/create/", empty)[0] == 200
    assert call(conn, "POST", "/v1/table/t1e/count_rows/")[2] == b"0"

    assert call(conn, "POST", "/v1/table/t1/drop/")[0] == 200
    assert call(conn, "POST", "/v1/table/t1e/drop/")[0] == 200
    assert call(conn, "POST", "/v1/table/t1/describe/")[0] == 404


def test_query_filter_projection_limit_offset(conn):
    everything = query(conn, "base", {})
    assert everything["id"].to_pylist() == list(range(100))
    assert everything.schema.names == ["id", "label"]
    head = query(conn, "base", {"k": 5})  # tbl.head(5)
    assert head["id"].to_pylist() == [0, 1, 2, 3, 4]
    rows = query(
        conn,
        "base",
        {
            "filter": "id > 10 AND label LIKE 'r2%'",
            "columns": ["id"],
            "k": 3,
            "offset": 2,
            "with_row_id": True,
        },
    )
    assert rows.schema.names == ["id", "_rowid"]
    assert rows.schema.field("_rowid").type == pa.uint64()
    assert rows["id"].to_pylist() == [22, 23, 24]
    rows = query(conn, "base", {"columns": {"twice": "id * 2"}, "k": 2, "offset": 50})
    assert rows.to_pydict() == {"twice": [100, 102]}
    assert query(conn, "base", {"filter": "id < 0"}).num_rows == 0


def test_takes_by_offset_and_row_id_in_request_order(conn):
    # LanceDB <= 0.34 sends lower case without spaces; >= 0.35 upper case with spaces.
    for spelling in ("_rowoffset in (61,3,3,99)", "_rowoffset IN (61, 3, 3, 99)"):
        rows = query(conn, "base", {"filter": spelling, "columns": {"id": "id"}})
        assert rows["id"].to_pylist() == [61, 3, 3, 99]
    # Fragment 1 starts at row id 1 << 32 (DESIGN.md decision 4).
    second = 1 << 32
    rows = query(
        conn,
        "base",
        {
            "filter": f"_rowid IN ({second + 5}, 7)",
            "columns": {"label": "label"},
            "with_row_id": True,
        },
    )
    assert rows.to_pydict() == {"label": ["r65", "r7"], "_rowid": [second + 5, 7]}
    # Repeats repeated, in the order asked for, as every answer says (riffledb's client
    # then asks for its keys as they are: remote/client/http_client.h).
    status, headers, data = call(
        conn,
        "POST",
        "/v1/table/base/query/",
        {"filter": f"_rowid in (7,{second + 5},7)", "with_row_id": True},
    )
    assert status == 200 and headers["X-Riffledb-Take-Order"] == "asked"
    rows = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    assert rows["_rowid"].to_pylist() == [7, second + 5, 7]
    assert rows["id"].to_pylist() == [7, 65, 7]
    status, headers, _ = call(conn, "GET", "/v1/table/")
    assert status == 200 and headers["X-Riffledb-Take-Order"] == "asked"
    # The permutation reader's id scan: `_rowid` only, as uint64, chunked.
    scan = query(conn, "base", {"columns": ["_rowid"]})
    assert scan["_rowid"].to_pylist() == list(range(60)) + [second + i for i in range(40)]
    status, _, body = call(
        conn, "POST", "/v1/table/base/query/", {"filter": "_rowoffset in (100)"}
    )
    assert status == 400 and "100" in error_of(body)


# -- Errors


def test_errors_are_lancedb_shaped_and_name_the_fault(conn):
    status, headers, body = call(conn, "POST", "/v1/table/nope/count_rows/", {})
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert "'nope'" in error_of(body)
    assert call(conn, "POST", "/v1/table/nope/query/", {})[0] == 404
    assert call(conn, "POST", "/v1/table/nope/insert/", ipc_stream(ids(0, 1)))[0] == 404
    assert call(conn, "POST", "/v1/table/nope/drop/")[0] == 404

    status, _, body = call(conn, "POST", "/v1/table/base/query/", {"filter": "idx > 1"})
    assert status == 400 and "idx" in error_of(body)
    status, _, body = call(
        conn, "POST", "/v1/table/base/count_rows/", {"predicate": "id >>> 1"}
    )
    assert status == 400 and "Invalid filter 'id >>> 1'" in error_of(body)
    status, _, body = call(conn, "POST", "/v1/table/base/query/", {"k": "ten"})
    assert status == 400 and "'k'" in error_of(body)
    status, _, body = call(conn, "POST", "/v1/table/base/query/", b"{not json")
    assert status == 400 and "JSON" in error_of(body)
    status, _, body = call(conn, "POST", "/v1/table/base/insert/", b"not an ipc stream")
    assert status == 400 and "Arrow IPC" in error_of(body)
    status, _, body = call(conn, "POST", "/v1/table/base/insert/?mode=merge", b"")
    assert status == 400 and "'mode'" in error_of(body)
    status, _, body = call(conn, "POST", "/v1/table/base/query/", {"vector": [0.5]})
    assert status == 501 and "Vector search" in error_of(body)
    assert call(conn, "POST", "/v1/table/base/merge_insert/")[0] == 501
    assert call(conn, "GET", "/v1/table/base/describe/")[0] == 405
    assert call(conn, "POST", "/v2/anything")[0] == 404
    # None of that changed the table.
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"


@pytest.mark.parametrize(
    "name",
    ["..", "..%2F..%2Fetc", "%2Fetc%2Fpasswd", ".hidden", "a%5Cb", "x" * 300, "a%00b"],
)
def test_path_traversal_names_are_400(served, conn, name):
    status, _, body = call(
        conn, "POST", f"/v1/table/{name}/create/", ipc_stream(ids(0, 1))
    )
    assert status == 400, body
    assert "table name" in error_of(body).lower()
    assert call(conn, "POST", f"/v1/table/{name}/describe/")[0] == 400
    # Nothing was written beside the database or outside a table directory.
    root = served[1]
    assert all(p.name.endswith(".riffle") for p in root.iterdir())
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]


def test_api_key_required(conn):
    for key, message in (
        (None, "Missing API key"),
        ("wrong", "Invalid API key"),
        ("", ""),
    ):
        status, headers, body = call(conn, "GET", "/v1/table/", key=key)
        assert status == 401, body
        assert message in error_of(body)
        assert headers["Connection"] == "close"
        conn.close()
    status, _, _ = call(conn, "GET", "/v1/table/")
    assert status == 200


def test_body_limit_413(conn):
    big = ipc_stream(ids(0, 100_000), lz4=False)
    assert len(big) > 1 << 20
    status, headers, body = call(conn, "POST", "/v1/table/base/insert/", big)
    assert status == 413 and "limit" in error_of(body)
    assert headers["Connection"] == "close"
    conn.close()
    # Chunked (no Content-Length, as LanceDB's client streams uploads): cut off too.
    conn.putrequest("POST", "/v1/table/base/insert/")
    conn.putheader("x-api-key", KEY)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    status = None
    try:
        for start in range(0, len(big), 65536):
            chunk = big[start : start + 65536]
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may close before the whole body is sent
    response = conn.getresponse()
    status = response.status
    assert status == 413, response.read()
    conn.close()
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"


def test_chunked_upload_and_malformed_framing(conn):
    data = ipc_stream(ids(0, 3))
    conn.putrequest("POST", "/v1/table/chunked/create/?mode=create")
    conn.putheader("x-api-key", KEY)
    conn.putheader("Content-Type", "application/vnd.apache.arrow.stream")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for start in range(0, len(data), 100):
        chunk = data[start : start + 100]
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 200, response.read()
    response.read()
    assert call(conn, "POST", "/v1/table/chunked/count_rows/")[2] == b"3"
    assert call(conn, "POST", "/v1/table/chunked/drop/")[0] == 200

    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", conn.port), timeout=TIMEOUT) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)  # the server sees the end after this request
            received = b""
            while chunk := s.recv(65536):
                received += chunk
            return received

    auth = f"x-api-key: {KEY}\r\n".encode()
    # Both Content-Length and chunked: refused (request smuggling).
    reply = raw(
        b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-"
        b"Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    reply = raw(
        b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-"
        b"Length: 12x\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    reply = raw(
        b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-"
        b"Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(150))
    reply = raw(b"GET /v1/table/ HTTP/1.1\r\nHost: x\r\n" + auth + many + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    reply = raw(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414"), reply[:200]
    reply = raw(b"DELETE /v1/table/base/ HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 405"), reply[:200]
    # A POST with neither Content-Length nor chunked has no body (LanceDB's client sends
    # describe, drop and version/list so): answered at once, not read until the close.
    with socket.create_connection(("127.0.0.1", conn.port), timeout=5) as s:
        s.sendall(
            b"POST /v1/table/base/describe/ HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
        )
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    reply = raw(b"\x00\x01garbage\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]
    conn.close()
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"


def test_chunked_bodies_are_read_strictly_and_at_once(conn):
    """A chunk size that is not 1-16 hex digits is a 400, and one past the body limit a
    413, both at once: cpp-httplib's reader waited out the 30 s I/O timeout for the data
    of a `-2` or `7FFFFFFF` chunk, and took `0x5` or ` 5` for 5. Trailer fields are
    read and dropped, and a request after a chunked one on the same connection is
    served."""
    auth = f"x-api-key: {KEY}\r\n".encode()
    head = (
        b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )

    def raw(request: bytes) -> bytes:
        # 5 s: an answer that waits for the I/O timeout (30 s) fails here.
        with socket.create_connection(("127.0.0.1", conn.port), timeout=5) as s:
            s.sendall(request)  # the connection stays open: nothing ends the body
            received = b""
            while chunk := s.recv(65536):
                received += chunk
                if received.count(b"HTTP/1.1 ") >= request.count(b"HTTP/1.1\r\n"):
                    if received.endswith(b"}") or received.endswith(b"100"):
                        break
            return received

    for size, status in [
        (b"-2", 400),
        (b"0x5", 400),
        (b" 5", 400),
        (b"5 ", 400),
        (b"7FFFFFFF", 413),
        (b"FFFFFFFFFFFFFFFF", 413),
    ]:
        reply = raw(head + size + b"\r\nhello\r\n")
        assert reply.startswith(b"HTTP/1.1 %d" % status), (size, reply[:200])
        assert b"Connection: close" in reply.split(b"\r\n\r\n")[0], size
    body = b'{"version": null}'
    chunked = b"%x;ext=1\r\n%s\r\n0\r\nX-Checksum: 7\r\n\r\n" % (len(body), body)
    count = b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n" + auth
    reply = raw(head + chunked + count + b"Content-Length: 0\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 2, reply[:400]
    assert reply.endswith(b"100"), reply[-200:]
    # A GET or HEAD has no body: one would be read as the next request (a proxy in
    # front takes it for part of this one), here a drop of the table. Refused.
    drop = b"POST /v1/table/base/drop/ HTTP/1.1\r\nHost: x\r\n" + auth
    drop += b"Content-Length: 0\r\n\r\n"
    for method in (b"GET", b"HEAD"):
        get = method + b" /v1/table/ HTTP/1.1\r\nHost: x\r\n" + auth
        for framing in (
            b"Content-Length: %d\r\n" % len(drop),
            b"Transfer-Encoding: chunked\r\n",
        ):
            body = (
                drop
                if framing.startswith(b"Content")
                else b"%x\r\n%s\r\n0\r\n\r\n" % (len(drop), drop)
            )
            reply = raw(get + framing + b"\r\n" + body)
            assert reply.startswith(b"HTTP/1.1 400"), (method, framing, reply[:200])
            assert reply.count(b"HTTP/1.1 ") == 1, reply
            assert b"has no body" in reply or method == b"HEAD"
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"
    get = b"GET /v1/table/ HTTP/1.1\r\nHost: x\r\n" + auth
    assert raw(get + b"Content-Length: 0\r\n\r\n").startswith(b"HTTP/1.1 200")
    # HTTP/1.0 has no chunked framing (RFC 9112 §6.1): refused, not read as chunked.
    reply = raw(head.replace(b"HTTP/1.1", b"HTTP/1.0") + chunked)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"HTTP/1.0 request" in reply
    # A chunked body with a Content-Encoding (which this reader does not decode).
    reply = raw(
        head.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n") + chunked
    )
    assert reply.startswith(b"HTTP/1.1 415"), reply[:200]


def test_expect_connection_and_key_headers_are_read_as_http_means_them(conn):
    """`Expect: 100-continue`: 100 Continue comes before the body is sent (it was held
    back with the reply until the body's 30 s I/O timeout), and a refused request is
    refused without it; another expectation is a 417. `Connection: close` in any case,
    list or header closes (a request after `Connection: CLOSE` was served). Two
    x-api-key headers are refused (the first won)."""
    auth = f"x-api-key: {KEY}\r\n".encode()
    body = b'{"version": null}'
    count = b"POST /v1/table/base/count_rows/ HTTP/1.1\r\nHost: x\r\n"
    with socket.create_connection(("127.0.0.1", conn.port), timeout=5) as s:
        s.sendall(
            count
            + auth
            + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        reply = s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"100"), reply
    with socket.create_connection(("127.0.0.1", conn.port), timeout=5) as s:
        s.sendall(count + b"Expect: 100-continue\r\nContent-Length: 17\r\n\r\n")
        reply = s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 401"), reply  # no 100 Continue first

    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", conn.port), timeout=5) as s:
            s.sendall(request)
            received = b""
            while chunk := s.recv(65536):
                received += chunk
            return received

    reply = raw(count + auth + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 417"), reply[:200]
    drop = b"POST /v1/table/base/drop/ HTTP/1.1\r\nHost: x\r\n" + auth
    drop += b"Content-Length: 0\r\n\r\n"
    for connection in (
        b"CLOSE",
        b"Close",
        b"keep-alive, close",
        b"a\r\nConnection: close",
    ):
        request = count + auth + b"Connection: " + connection + b"\r\n"
        reply = raw(request + b"Content-Length: %d\r\n\r\n" % len(body) + body + drop)
        assert reply.count(b"HTTP/1.1 ") == 1, (connection, reply)
        assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply
    keys = auth + f"x-api-key: {KEY}x\r\n".encode()
    reply = raw(count + keys + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert reply.startswith(b"HTTP/1.1 400") and b"More than one x-api-key" in reply
    # The HTTP/1.0 connection closes after its answer, keep-alive or not.
    http10 = (
        count.replace(b"HTTP/1.1", b"HTTP/1.0") + auth + b"Connection: Keep-Alive\r\n"
    )
    reply = raw(http10 + b"Content-Length: %d\r\n\r\n" % len(body) + body + drop)
    assert reply.count(b"HTTP/1.1 ") == 1, reply
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"


# -- Transport


def test_keep_alive_serves_many_requests_on_one_connection(conn):
    assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"
    sock = conn.sock
    for i in range(30):
        if i % 3 == 0:
            assert call(conn, "POST", "/v1/table/base/count_rows/")[2] == b"100"
        elif i % 3 == 1:
            assert (
                query(conn, "base", {"filter": f"_rowoffset in ({i})"})["id"][0].as_py()
                == i
            )
        else:
            assert call(conn, "POST", "/v1/table/base/describe/")[0] == 200
        assert conn.sock is sock, f"the server closed the connection after request {i}"


def test_concurrent_clients_lose_no_rows(served):
    server, _ = served
    with closing(server.connect()) as c:
        assert call(c, "POST", "/v1/table/conc/create/", ipc_stream(ids(0, 0)))[0] == 200
    threads, inserts, batch = 6, 8, 25
    errors: list[BaseException] = []

    def client(t: int) -> None:
        c = server.connect()
        try:
            for i in range(inserts):
                start = (t * inserts + i) * batch
                status, _, body = call(
                    c, "POST", "/v1/table/conc/insert/", ipc_stream(ids(start, batch))
                )
                assert status == 200, body
                rows = query(c, "base", {"filter": f"_rowoffset IN ({t}, {99 - i})"})
                assert rows["id"].to_pylist() == [t, 99 - i]
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            c.close()

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert not w.is_alive(), "a client thread hung"
    assert not errors, errors
    with closing(server.connect()) as c:
        got = sorted(query(c, "conc", {"columns": ["id"]})["id"].to_pylist())
        versions = json.loads(call(c, "POST", "/v1/table/conc/version/list/")[2])
    assert got == list(range(threads * inserts * batch))  # none lost, none twice
    assert len(versions["versions"]) == 1 + threads * inserts


def test_memory_database_without_key():
    server = Server("memory://")
    try:
        c = server.connect()
        assert (
            call(c, "POST", "/v1/table/m/create/", ipc_stream(ids(0, 4)), key=None)[0]
            == 200
        )
        assert call(c, "POST", "/v1/table/m/count_rows/", key=None)[2] == b"4"
        assert query_no_key(c, "m") == [0, 1, 2, 3]
        c.close()
    finally:
        assert server.stop() == 0, server.stderr


def query_no_key(c, table: str) -> list[int]:
    status, _, data = call(c, "POST", f"/v1/table/{table}/query/", {"k": 0}, key=None)
    assert status == 200, data
    return pa.ipc.open_file(pa.BufferReader(data)).read_all()["id"].to_pylist()


def test_api_key_from_the_environment(tmp_path):
    server = Server(str(tmp_path), env={"RIFFLEDB_API_KEY": "from-env"})
    try:
        c = server.connect()
        assert call(c, "GET", "/v1/table/", key=None)[0] == 401
        c.close()
        assert call(c, "GET", "/v1/table/", key="from-env")[0] == 200
        c.close()
    finally:
        assert server.stop() == 0, server.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_sigterm_while_inserting_is_graceful(tmp_path, tls):
    """Inserts race a SIGTERM: the server exits 0, every acknowledged insert is in the
    table, and every insert is there whole or not at all. Over TLS too, whose
    connections take the other request path (cpp-httplib's), where an insert
    committed during a stop was once answered with its head alone."""
    db_path = tmp_path / "db"
    riffledb.connect(db_path).create_table("g", ids(0, 0))
    args, ca = ["--threads", "4"], None
    if tls:
        ca, cert, key = certificates(tmp_path)
        args += ["--tls-cert", cert, "--tls-key", key]
    server = Server(str(db_path), *args, ca=ca)
    batch = 200
    acknowledged: list[int] = []
    cut_short: list[str] = []
    lock = threading.Lock()
    started = threading.Event()

    def writer(w: int) -> None:
        c = server.connect()
        for i in range(10_000):
            start = (w * 10_000 + i) * batch
            try:
                status, _, _ = call(
                    c,
                    "POST",
                    "/v1/table/g/insert/",
                    ipc_stream(ids(start, batch)),
                    key=None,
                )
            except OSError:
                return  # the server closed: this insert may or may not have landed
            except http.client.IncompleteRead as cut:
                with lock:  # an answer begun is finished, even during a stop
                    cut_short.append(repr(cut))
                return
            except http.client.HTTPException:
                return
            if status != 200:
                return
            with lock:
                acknowledged.append(start)
            started.set()

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for w in writers:
        w.start()
    assert started.wait(TIMEOUT), "no insert was acknowledged"
    time.sleep(0.3)
    code = server.stop()
    for w in writers:
        w.join(timeout=TIMEOUT)
        assert not w.is_alive(), "a writer hung after the server stopped"
    assert code == 0, server.stderr
    assert "listening" not in server.stderr
    assert cut_short == []
    table = riffledb.connect(db_path).open_table("g")
    got = table.to_arrow()["id"].to_pylist()
    starts = {i - i % batch for i in got}
    assert len(got) == len(set(got)) == len(starts) * batch  # whole inserts only
    assert set(acknowledged) <= starts  # nothing acknowledged was lost
    assert len(starts) - len(acknowledged) <= 3  # at most one in flight per writer


# -- LanceDB's own client (lancedb==0.40.0 in .venv-lancedb, which `make test` makes)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `make test` names the interpreter and wants the tests run; elsewhere they run when a
# virtualenv with lancedb is there (.venv-lancedb, or make bench's .venv-bench).
LANCEDB_PYTHON = os.environ.get("RIFFLEDB_LANCEDB_PYTHON") or next(
    (
        path
        for path in (
            os.path.join(_ROOT, venv, "bin", "python")
            for venv in (".venv-lancedb", ".venv-bench")
        )
        if os.path.exists(path)
    ),
    "",
)
needs_lancedb = pytest.mark.skipif(
    not LANCEDB_PYTHON and "RIFFLEDB_LANCEDB_PYTHON" not in os.environ,
    reason="no virtualenv with lancedb (make test creates .venv-lancedb)",
)

LANCEDB_SCRIPT = r"""
import sys
import warnings

import lancedb
import pyarrow as pa
from lancedb.permutation import Permutation

warnings.simplefilter("ignore", DeprecationWarning)
url, key, ca = sys.argv[1], sys.argv[2], sys.argv[3]
config = {"tls_config": {"ssl_ca_cert": ca}} if ca else None
db = lancedb.connect("db://test", api_key=key, host_override=url, client_config=config)
assert db.table_names() == [], db.table_names()
data = pa.table({"id": pa.array(range(10), pa.int64()), "x": [i / 2 for i in range(10)]})
db.create_table("events", data)
assert db.table_names() == ["events"]
try:
    db.create_table("events", data)
    raise AssertionError("created twice")
except ValueError as e:
    assert "already exists" in str(e), e
t = db.open_table("events")
assert t.schema == data.schema, t.schema
assert (t.count_rows(), t.count_rows("id > 4"), len(t), t.version) == (10, 5, 10, 1)
got = t.search().where("id >= 3").limit(4).to_arrow()
assert got["id"].to_pylist() == [3, 4, 5, 6], got
got = t.search().where("id > 1").select(["x"]).limit(2).offset(1).to_arrow()
assert got.to_pydict() == {"x": [1.5, 2.0]}, got
t.add(pa.table({"id": pa.array([100, 101], pa.int64()), "x": [1.0, 2.0]}))
assert (t.count_rows(), t.version) == (12, 2)
assert t.take_offsets([11, 3]).to_arrow()["id"].to_pylist() == [101, 3]
assert sorted(t.take_row_ids([5, 0]).to_arrow()["id"].to_pylist()) == [0, 5]
assert [v["version"] for v in t.list_versions()] == [1, 2]
perm = Permutation.identity(t)
assert len(perm) == 12
assert perm.take_offsets([5, 2]) == [{"id": 5, "x": 2.5}, {"id": 2, "x": 1.0}]
rows = [r for batch in perm.iter(4, skip_last_batch=False) for r in batch]
assert [r["id"] for r in rows] == list(range(10)) + [100, 101], rows
# `for batch in perm` keeps the batches of exactly its batch size (100): the server's
# `_rowid` scan comes in batches of 100 (it gave 1024-row ones, so none were kept).
big = db.create_table("big", pa.table({"id": pa.array(range(250), pa.int64())}))
sizes = [len(batch) for batch in Permutation.identity(big)]
assert sizes == [100, 100], sizes
db.drop_table("big")
try:
    db.open_table("nope")
    raise AssertionError("opened a missing table")
except ValueError as e:
    assert "nope" in str(e), e
db.drop_table("events")
assert db.table_names() == []
print("OK")
"""


def run_lancedb_script(url: str, ca: str = "") -> None:
    result = subprocess.run(
        [LANCEDB_PYTHON, "-c", LANCEDB_SCRIPT, url, KEY, ca],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


@needs_lancedb
def test_lancedb_client_against_riffledb_serve(tmp_path):
    server = Server(str(tmp_path), "--api-key", KEY)
    try:
        run_lancedb_script(server.url)
    finally:
        assert server.stop() == 0, server.stderr


@needs_lancedb
def test_lancedb_client_over_tls(tmp_path):
    """LanceDB's client verifies the server's certificate against the CA it is given
    (its TlsConfig.ssl_ca_cert) and does everything over HTTPS."""
    ca, cert, key = certificates(tmp_path)
    server = Server(
        str(tmp_path / "db"), "--api-key", KEY, "--tls-cert", cert, "--tls-key", key
    )
    try:
        assert server.url.startswith("https://")
        run_lancedb_script(server.url, ca)
    finally:
        assert server.stop() == 0, server.stderr


def test_port_in_use_fails_with_a_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "riffledb.cli",
                "serve",
                "memory://",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_busy_poll_defaults():
    """The client's default spin: 1,000 µs (a 256-row take's answer on loopback comes
    after 150-450 µs on the benchmarks' machines; 200 µs missed it). The server's: 200
    µs (1,000 cost a loaded server's clients CPU)."""
    from riffledb.cli import _parser
    from riffledb.remote import DEFAULT_BUSY_POLL_US

    assert DEFAULT_BUSY_POLL_US == _riffledb.DEFAULT_CLIENT_BUSY_POLL_US == 1000
    assert _riffledb.DEFAULT_SERVE_BUSY_POLL_US == 200
    parser = _parser()
    assert parser.parse_args(["serve", "memory://"]).busy_poll_us == 200
    off = parser.parse_args(["serve", "memory://", "--busy-poll-us", "0"])
    assert off.busy_poll_us == 0


def test_version_check_interval_option(capsys):
    """`--version-check-interval-ms`: -1 (resolved by where the database is) unless
    given; a negative value is a usage error naming it."""
    from riffledb.cli import _parser, main

    parser = _parser()
    assert parser.parse_args(["serve", "memory://"]).version_check_interval_ms == -1
    given = parser.parse_args(["serve", "memory://", "--version-check-interval-ms", "0"])
    assert given.version_check_interval_ms == 0
    assert main(["serve", "memory://", "--version-check-interval-ms", "-5"]) == 2
    assert "expected an integer of at least 0, got '-5'" in capsys.readouterr().err


@pytest.mark.skipif(
    _riffledb.busy_poll_max_spinners() == 0, reason="one usable CPU: nothing busy-polls"
)
def takes_until_a_spin(table, conn, offsets: list[int], most: int = 500) -> bool:
    """Takes ``offsets`` until a wait of ``conn`` for an answer began with a spin (at
    most ``most`` takes); whether one did. A wait whose answer is there at its first
    check is not a spin, and on a loaded machine every answer may be: the server's
    thread, woken by the request, can take the client's CPU and answer before the
    client checks (CI saw 40 takes without a spin)."""
    start = conn.stats()["busy_polls"]
    for _ in range(most):
        assert table.take_offsets(offsets).to_arrow()["id"].to_pylist() == offsets
        if conn.stats()["busy_polls"] > start:
            return True
    return False


def test_busy_polling_client_and_server(served):
    """A wait of riffledb's client for an answer's bytes starts with a busy-poll (1 s
    here: every answer comes within it), counted in its stats; 0 turns it off."""
    server, _ = served
    db = riffledb.connect(
        "db://x",
        api_key=KEY,
        host_override=server.url,
        client_config={"busy_poll_us": 1_000_000},
    )
    table = db.open_table("base")
    before = db.stats()
    assert takes_until_a_spin(table, db, [3, 97])
    after = db.stats()
    polls = after["busy_polls"] - before["busy_polls"]
    assert polls >= 1
    assert after["busy_poll_hits"] - before["busy_poll_hits"] == polls
    blocking = riffledb.connect(
        "db://x", api_key=KEY, host_override=server.url, client_config={"busy_poll_us": 0}
    )
    assert blocking.open_table("base").count_rows() == 100
    assert blocking.stats()["busy_polls"] == 0 and blocking.stats()["requests"] == 2

    # By default the connecting process polls, a copy pickled in the same process too,
    # and a worker's connection (unpickled in another process) does not.
    default = riffledb.connect("db://x", api_key=KEY, host_override=server.url)
    table = default.open_table("base")
    data = pickle.dumps(table)
    same = pickle.loads(data)
    assert takes_until_a_spin(table, default, [5])
    assert takes_until_a_spin(same, same._conn, [5])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child that unpickles what its parent pickled: a worker
        try:
            worker = pickle.loads(data)
            for _ in range(20):
                worker.take_offsets([5]).to_arrow()
            stats = worker._conn.stats()
            os.write(write, json.dumps([stats["requests"], stats["busy_polls"]]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert json.loads(answer) == [20, 0]


@pytest.mark.skipif(
    _riffledb.busy_poll_max_spinners() == 0, reason="one usable CPU: nothing busy-polls"
)
def test_the_server_busy_polls_for_the_next_request(tmp_path):
    """A connection thread polls for its connection's next request after each reply
    (1 s here: every request of this client comes within it), counted in the server's
    stats; ``busy_poll_us=0`` turns it off; a bad value is refused."""
    db = riffledb.connect(tmp_path / "db")
    db.create_table("t", ids(0, 5))
    for poll, expected in ((1_000_000, range(1, 12)), (0, range(0, 1))):
        server = _riffledb.Server.start(
            native_database(db), "127.0.0.1", 0, "", 2, 1 << 20, busy_poll_us=poll
        )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            for _ in range(10):
                # Sent after the server has had time to wait for it (a request there
                # at the first check is not a spin: under load, all 10 were once).
                time.sleep(0.02)
                status, _, data = call(
                    conn, "POST", "/v1/table/t/count_rows/", {}, key=""
                )
                assert status == 200 and json.loads(data) == 5
            conn.close()
        finally:
            server.stop()
        stats = server.stats()
        # At most one spin before each request and one before the close.
        assert stats["busy_polls"] in expected, stats
        assert stats["busy_poll_hits"] == stats["busy_polls"]
    for bad in (-1, 1_000_001):
        with pytest.raises(
            ValueError,
            match=rf"^Invalid busy_poll_us {bad}: it must be in \[0, 1000000\]$",
        ):
            _riffledb.Server.start(
                native_database(db), "127.0.0.1", 0, "", 2, 1 << 20, busy_poll_us=bad
            )


def test_serve_without_busy_polling():
    quiet = Server("memory://", "--busy-poll-us", "0")
    try:
        db = riffledb.connect("db://x", api_key="", host_override=quiet.url)
        db.create_table("t", ids(0, 5))
        assert db.open_table("t").count_rows() == 5
    finally:
        assert quiet.stop() == 0, quiet.stderr


@pytest.mark.parametrize("value", ["-1", "1000001", "2.5", "fast"])
def test_serve_refuses_a_bad_busy_poll(value):
    result = subprocess.run(
        [sys.executable, "-m", "riffledb.cli", "serve", "memory://"]
        + ["--busy-poll-us", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        f"argument --busy-poll-us: expected microseconds from 0 to 1000000, got "
        f"'{value}'" in result.stderr
    )


def test_read_after_insert_through_another_connection(served):
    """The server caches opened tables: a read on one connection after an insert on
    another (and after a write by another process) sees it."""
    server, path = served
    a, b = server.connect(), server.connect()
    try:
        call(b, "POST", "/v1/table/cached/create/", ipc_stream(ids(0, 5)))
        assert call(a, "POST", "/v1/table/cached/count_rows/")[2] == b"5"
        assert (
            call(b, "POST", "/v1/table/cached/insert/", ipc_stream(ids(5, 3)))[0] == 200
        )
        assert call(a, "POST", "/v1/table/cached/count_rows/")[2] == b"8"
        riffledb.connect(path).open_table("cached").add(ids(8, 2))
        assert query(a, "cached", {"filter": "_rowoffset IN (9, 0)"})[
            "id"
        ].to_pylist() == [
            9,
            0,
        ]
        assert call(b, "POST", "/v1/table/cached/drop/")[0] == 200
        assert call(a, "POST", "/v1/table/cached/count_rows/")[0] == 404
    finally:
        a.close()
        b.close()


# -- Hardening: decompression bombs, TLS


def zeros(n: int) -> pa.Table:
    return pa.table({"id": pa.array(np.zeros(n, np.int64))})


def test_lz4_decompression_bomb_is_413(tmp_path):
    """A body under the body limit that LZ4-decompresses past --max-decoded-bytes is
    refused with 413 (and the connection stays usable for the next request: the body
    was read whole), and nothing is written."""
    server = Server("memory://", "--max-decoded-bytes", str(4 << 20))
    try:
        c = server.connect()
        assert call(c, "POST", "/v1/table/z/create/", ipc_stream(zeros(10)))[0] == 200
        bomb = ipc_stream(zeros(8 << 20))  # 64 MiB of zeros
        assert len(bomb) < 1 << 20
        status, _, body = call(c, "POST", "/v1/table/z/insert/", bomb)
        assert status == 413, body
        assert "decompresses to more than 4194304 bytes" in error_of(body)
        status, _, body = call(c, "POST", "/v1/table/bomb/create/", bomb)
        assert status == 413, body
        assert call(c, "POST", "/v1/table/z/count_rows/")[2] == b"10"
        assert call(c, "POST", "/v1/table/bomb/describe/")[0] == 404
        # Under the budget, compressed bodies still go through.
        assert call(c, "POST", "/v1/table/z/insert/", ipc_stream(zeros(1000)))[0] == 200
        assert call(c, "POST", "/v1/table/z/count_rows/")[2] == b"1010"
        c.close()
    finally:
        assert server.stop() == 0, server.stderr


def certificates(directory) -> tuple[str, str, str]:
    """(CA certificate, server certificate, server key) PEM files: a fresh CA and a
    certificate it signed for 127.0.0.1 and localhost. (A self-signed certificate
    serving as its own CA is refused by rustls, which LanceDB's client uses.)"""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(subject, public_key, issuer, signing_key, *extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "riffledb test CA")])
    ca = issue(
        ca_name,
        ca_key.public_key(),
        ca_name,
        ca_key,
        (x509.BasicConstraints(ca=True, path_length=0), True),
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        key.public_key(),
        ca_name,
        ca_key,
        (
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        ),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    )
    paths = [str(directory / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    for path, data in zip(
        paths,
        (
            ca.public_bytes(serialization.Encoding.PEM),
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        strict=True,
    ):
        with open(path, "wb") as f:
            f.write(data)
    return paths[0], paths[1], paths[2]


def test_tls_with_riffledb_client(tmp_path):
    """--tls-cert/--tls-key: riffledb's client talks HTTPS to it (verifying the
    certificate against the CA it is given) with keep-alive and LZ4 uploads; plain
    HTTP and an unverified certificate are refused."""
    import ssl

    from riffledb.remote import ClientConfig, TlsConfig
    from riffledb.remote.errors import RetryError

    ca, cert, key = certificates(tmp_path)
    db_path = tmp_path / "db"
    riffledb.connect(db_path).create_table("t", ids(0, 50))
    server = Server(str(db_path), "--api-key", KEY, "--tls-cert", cert, "--tls-key", key)
    try:
        config = ClientConfig(
            tls_config=TlsConfig(ssl_ca_cert=ca),
            retry_config={"retries": 0, "connect_retries": 0, "read_retries": 0},
            timeout_config={"connect_timeout": 10, "read_timeout": 10},
        )
        db = riffledb.connect(
            "db://x", api_key=KEY, host_override=server.url, client_config=config
        )
        assert db.table_names() == ["t"]
        t = db.open_table("t")
        assert t.count_rows() == 50
        t.add(ids(50, 10))
        got = t.take_offsets([59, 0, 7]).to_arrow()["id"].to_pylist()
        assert got == [59, 0, 7]
        for _ in range(20):  # keep-alive over TLS
            assert len(t) == 60

        # Python's own TLS stack agrees (a second, independent client).
        context = ssl.create_default_context(cafile=ca)
        c = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=TIMEOUT, context=context
        )
        assert call(c, "POST", "/v1/table/t/count_rows/")[2] == b"60"
        assert call(c, "POST", "/v1/table/t/count_rows/", key="wrong")[0] == 401
        c.close()

        # Plain HTTP to the TLS port: no answer, the connection is closed.
        with closing(socket.create_connection(("127.0.0.1", server.port), TIMEOUT)) as s:
            s.sendall(b"GET /v1/table/ HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(TIMEOUT)
            try:
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
            assert b"HTTP/1.1 200" not in data

        # Without the CA, the client refuses the server's certificate.
        strict = riffledb.connect(
            "db://x",
            api_key=KEY,
            host_override=server.url,
            client_config=ClientConfig(
                retry_config={"retries": 0, "connect_retries": 0, "read_retries": 0},
                timeout_config={"connect_timeout": 10, "read_timeout": 10},
            ),
        )
        with pytest.raises(RetryError, match="connect_failures=1") as refused:
            strict.table_names()
        # The cause says why, and what to do.
        assert str(refused.value.__cause__).endswith(
            f"GET /v1/table/: the TLS certificate of 127.0.0.1:{server.port} is not "
            "trusted (unable to get local issuer certificate): give the CA that signed "
            "it as tls_config.ssl_ca_cert [SSLServerVerification]"
        )
    finally:
        assert server.stop() == 0, server.stderr


def test_tls_needs_a_matching_key(tmp_path):
    _, cert, _ = certificates(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, _, wrong_key = certificates(other)
    for args in (["--tls-cert", cert], ["--tls-cert", cert, "--tls-key", wrong_key]):
        result = subprocess.run(
            [sys.executable, "-m", "riffledb.cli", "serve", "memory://", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "TLS" in result.stderr, result.stderr


def _trickle(sock, data: bytes, seconds_per_byte: float = 0.05) -> bool:
    """Sends ``data`` a byte at a time; True if the server answered (an error) or closed
    the connection before all of it was sent."""
    for byte in data:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return True
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return True
        time.sleep(seconds_per_byte)
    return False


def test_tls_heads_and_handshakes_must_come_within_the_head_timeout(tmp_path):
    """--head-timeout-ms bounds a TLS handshake, and a request head sent as one TLS
    record trickled a byte at a time: each byte came within the I/O timeout, and the
    record's bytes were waited for inside OpenSSL with only that timeout (a thread was
    held for as long as they came)."""
    import ssl

    ca, cert, key = certificates(tmp_path)
    server = Server(
        str(tmp_path / "db"),
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--head-timeout-ms",
        "300",
        ca=ca,
    )
    try:
        # A handshake whose ClientHello trickles in: 100 bytes, 5 s.
        client = ssl.create_default_context(cafile=ca)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            assert _trickle(sock, hello[:100]), "a trickled handshake was not cut off"
        # A head in one record, trickled after a handshake at full speed.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(TIMEOUT)
            tls = client.wrap_bio(
                incoming := ssl.MemoryBIO(),
                outgoing := ssl.MemoryBIO(),
                server_hostname="localhost",
            )
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    incoming.write(sock.recv(65536))
            sock.sendall(outgoing.read())
            # The session tickets TLS 1.3 sends after the handshake, read first.
            sock.settimeout(0.3)
            try:
                while chunk := sock.recv(65536):
                    incoming.write(chunk)
            except TimeoutError:
                pass
            tls.write(b"GET /v1/table/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 80)
            record = outgoing.read()
            assert _trickle(sock, record), "a trickled record was not cut off"
        # Served as usual meanwhile, and afterwards.
        conn = server.connect()
        conn.request("GET", "/v1/table/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        assert server.stop() == 0
