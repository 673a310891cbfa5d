"""Mock servers in the manner of LanceDB's own remote tests (spec/remote-protocol.md §4),
for tests/test_remote_compat.py: plain ``http.server`` handlers that write their own
answers, HTTP/1.0 by default (every answer closes its connection, and an answer without
Content-Length ends at the close), a connection built as LanceDB's tests build theirs,
and a permutation server for one table whose ``id`` equals its ``_rowid`` and its
offset.

Where harness/remote_server.py's ``MockServer`` is a keep-alive server that scripts
``(status, type, body)`` answers, these are the other shape LanceDB's client must cope
with; the DataLoader scenarios at the end run in hang-detected children (harness/hang.py).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from .remote_server import arrow_file_bytes

ARROW_FILE = "application/vnd.apache.arrow.file"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
NO_LIMIT = 9223372036854775807
#: A short deadline of the mocks' connections: a hung request fails, never hangs.
CONFIG = {
    "retry_config": {"retries": 2, "backoff_factor": 0.001, "backoff_jitter": 0.001},
    "timeout_config": {"connect_timeout": 5, "read_timeout": 30},
}


class Recorded:
    """A request as the server got it: ``method``, ``path`` (with its query string),
    ``headers`` (an ``email.message.Message``: ``get`` / ``get_all`` ignore case) and
    ``body`` (bytes)."""

    def __init__(self, method: str, path: str, headers, body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Recorded({self.method} {self.path} {self.body[:80]!r})"


def read_body(request: http.server.BaseHTTPRequestHandler) -> bytes:
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def send_json(request, payload: Any, status: int = 200, headers=()) -> None:
    """A JSON answer without Content-Length (the close ends it)."""
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    for name, value in headers:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(json.dumps(payload).encode())


def send_status(request, status: int, body: bytes = b"") -> None:
    """A bare status with an optional text body (ended by the close)."""
    request.send_response(status)
    request.end_headers()
    request.wfile.write(body)


def send_arrow(request, table: pa.Table, stream: bool = False, chunk: int = 0) -> None:
    """An Arrow IPC file answer (or a stream, labelled so), in batches of ``chunk``
    rows when given."""
    sink = pa.BufferOutputStream()
    if stream:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=chunk or None)
        body = sink.getvalue().to_pybytes()
    elif chunk:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=chunk)
        body = sink.getvalue().to_pybytes()
    else:
        body = arrow_file_bytes(table)
    request.send_response(200)
    request.send_header("Content-Type", ARROW_STREAM if stream else ARROW_FILE)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def describe_answer(fields: dict[str, str], version: int = 1) -> dict[str, Any]:
    """A describe answer of scalar columns (``{"id": "int64"}``)."""
    return {
        "version": version,
        "schema": {
            "fields": [
                {"name": name, "type": {"type": kind}, "nullable": False}
                for name, kind in fields.items()
            ]
        },
    }


def handler_class(
    serve: Callable[[Any, bytes], None],
    log: list[Recorded],
    lock: threading.Lock,
    keep_alive: bool = False,
):
    """A ``BaseHTTPRequestHandler`` whose GET and POST read the body, record the
    request in ``log`` and call ``serve(request, body)``, which writes the answer."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def _serve(self):
            body = read_body(self)
            with lock:
                log.append(Recorded(self.command, self.path, self.headers, body))
            serve(self, body)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *args):
            pass

    return Handler


class MockLanceDB:
    """A mock server on a local port: ``url``, ``requests`` (every :class:`Recorded`
    request), ``paths()``; single-threaded unless ``threading``."""

    def __init__(self, serve, threading_server: bool = False, keep_alive: bool = False):
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        kind = (
            http.server.ThreadingHTTPServer
            if threading_server
            else http.server.HTTPServer
        )
        self.server = kind(
            ("127.0.0.1", 0), handler_class(serve, self.requests, self._lock, keep_alive)
        )
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def to(self, path: str) -> list[Recorded]:
        """The requests to ``path`` (exactly, query string included)."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(url: str, **config):
    """``riffledb.connect`` as LanceDB's tests connect: ``db://dev``, key ``fake``."""
    import riffledb

    return riffledb.connect(
        "db://dev", api_key="fake", host_override=url, client_config={**CONFIG, **config}
    )


@contextlib.contextmanager
def mock_connection(serve, **config) -> Iterator[tuple[Any, MockLanceDB]]:
    """A connection to a single-threaded HTTP/1.0 mock running ``serve(request,
    body)``, and the mock."""
    with MockLanceDB(serve) as mock:
        yield connect(mock.url, **config), mock


# -- a permutation server --------------------------------------------------------------
def in_list(filter_sql: str, column: str) -> list[int] | None:
    """The integers of ``<column> IN (a, b)`` (any case and spacing), else None."""
    match = re.search(rf"\b{column}\s+in\s*\(([^)]*)\)", filter_sql, re.IGNORECASE)
    if match is None:
        return None
    return [int(v) for v in re.findall(r"-?\d+", match.group(1))]


class PermutationServer:
    """One table ``name`` of ``num_rows`` rows whose ``id`` equals its ``_rowid`` and
    its offset, served as LanceDB's server would: ``describe/``, ``count_rows/`` and
    ``query/``; anything else is 404. Every query body is kept in ``query_bodies``.

    A take (``_rowid`` or ``_rowoffset`` IN list) answers each matching row once, in
    ascending order, whatever the order asked for, in batches of ``chunk`` rows; a
    ``columns == ["_rowid"]`` query is the builder's scan (reversed on every other call
    with ``vary_scan_order``, as a distributed scan may be); anything else is answered
    with the rows its ``k`` allows. Columns may be a list or an object and include
    ``_rowid`` / ``_rowoffset``; ``with_row_id`` adds ``_rowid``.
    """

    def __init__(
        self,
        name: str = "remote_data",
        num_rows: int = 8,
        vary_scan_order: bool = False,
        chunk: int = 0,
    ):
        self.name = name
        self.num_rows = num_rows
        self.vary_scan_order = vary_scan_order
        self.chunk = chunk
        self.query_bodies: list[dict[str, Any]] = []
        self.scan_calls = 0
        self._lock = threading.Lock()

    @property
    def scans(self) -> list[dict[str, Any]]:
        return [b for b in self.query_bodies if b.get("columns") == ["_rowid"]]

    @property
    def takes(self) -> list[dict[str, Any]]:
        return [b for b in self.query_bodies if "_row" in (b.get("filter") or "")]

    def __call__(self, request, body: bytes) -> None:
        prefix = f"/v1/table/{self.name}/"
        if request.path == prefix + "describe/":
            return send_json(request, describe_answer({"id": "int64"}))
        if request.path == prefix + "count_rows/":
            return send_json(request, self.num_rows)
        if request.path == prefix + "query/":
            query = json.loads(body)
            with self._lock:
                self.query_bodies.append(query)
            return send_arrow(request, self._answer(query), chunk=self.chunk)
        return send_status(request, 404)

    def _answer(self, query: dict[str, Any]) -> pa.Table:
        filter_sql = query.get("filter") or ""
        ids = in_list(filter_sql, "_rowid")
        if ids is None:
            ids = in_list(filter_sql, "_rowoffset")
        if ids is not None:
            rows = sorted({i for i in ids if 0 <= i < self.num_rows})
        elif query.get("columns") == ["_rowid"]:
            rows = list(range(self.num_rows))
            with self._lock:
                if self.vary_scan_order and self.scan_calls % 2:
                    rows.reverse()
                self.scan_calls += 1
        else:
            k = query.get("k") or NO_LIMIT
            rows = list(range(self.num_rows))[: min(k, self.num_rows)]
        columns = query.get("columns") or ["id"]
        names = list(columns) if isinstance(columns, dict) else columns
        if query.get("with_row_id") and "_rowid" not in names:
            names = [*names, "_rowid"]
        types = {"id": pa.int64(), "_rowid": pa.uint64(), "_rowoffset": pa.uint64()}
        return pa.table({n: pa.array(rows, types[n]) for n in names})


@contextlib.contextmanager
def mock_remote_table(server: PermutationServer, **config):
    """``server`` on a threading HTTP/1.0 mock, and its table opened (a describe)."""
    with MockLanceDB(server, threading_server=True) as mock:
        yield connect(mock.url, **config).open_table(server.name)


# -- DataLoader scenarios (run in hang-detected children) ------------------------------
def _ids_of_table(batch: pa.Table) -> list[int]:
    return batch.column("id").to_pylist()


def _ids_of_rows(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def table_loader_ids(url: str, name: str, context: str) -> list[int]:
    """The ids a DataLoader (2 ``context`` workers, shuffled) reads from the remote
    table itself (a map-style ``Dataset``), in the order it yields them."""
    import torch

    table = connect(url).open_table(name)
    loader = torch.utils.data.DataLoader(
        table,
        batch_size=10,
        shuffle=True,
        num_workers=2,
        multiprocessing_context=context,
        collate_fn=_ids_of_table,
        timeout=60,
    )
    return [i for batch in loader for i in batch]


def permutation_loader_ids(url: str, name: str, context: str) -> list[int]:
    """The ids a DataLoader (2 ``context`` workers, in order) reads from the identity
    permutation of the remote table, in the order it yields them."""
    import torch

    from riffledb.permutation import Permutation

    permutation = Permutation.identity(connect(url).open_table(name))
    loader = torch.utils.data.DataLoader(
        permutation,
        batch_size=10,
        num_workers=2,
        multiprocessing_context=context,
        collate_fn=_ids_of_rows,
        timeout=60,
    )
    return [i for batch in loader for i in batch]


def loader_scenarios(url: str, name: str):
    """LanceDB's three remote DataLoader cases (test_torch.py): the table with spawn
    workers, the identity permutation with spawn workers and with fork workers."""
    yield "table-spawn", functools.partial(table_loader_ids, url, name, "spawn")
    yield (
        "permutation-spawn",
        functools.partial(permutation_loader_ids, url, name, "spawn"),
    )
    yield "permutation-fork", functools.partial(permutation_loader_ids, url, name, "fork")
