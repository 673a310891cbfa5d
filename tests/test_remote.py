"""riffledb's client for remote tables (``db://``, issue #13): the surface against
``riffledb serve`` (keep-alive, so that pooled connections are really reused), fork and
pickling, retries and errors against a scripted keep-alive mock, and the request shapes
of LanceDB's tests (spec/remote-protocol.md §2, §4)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import re
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest
from harness import hang
from harness.remote_server import (
    MockServer,
    RiffledbServer,
    arrow_file_bytes,
    json_answer,
)

import riffledb
from riffledb.remote import ClientConfig, RetryConfig, TimeoutConfig
from riffledb.remote.db import RemoteDBConnection
from riffledb.remote.errors import HttpError, RetryError
from riffledb.remote.table import RemoteTable

N = 200
FAST = {"retry_config": {"backoff_factor": 0.001, "backoff_jitter": 0.001}}


@pytest.fixture(scope="module")
def server():
    s = RiffledbServer("memory://")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def rows(server):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    data = pa.table(
        {"id": pa.array(range(N), pa.int64()), "x": pa.array(np.arange(N) * 0.5)}
    )
    db.create_table("rows", data)
    return data


def connect(url: str, **config) -> RemoteDBConnection:
    return riffledb.connect(
        "db://test", api_key="k", host_override=url, client_config={**FAST, **config}
    )


# -- connect ---------------------------------------------------------------------------
def test_connect_makes_no_request_and_checks_arguments(monkeypatch):
    monkeypatch.delenv("LANCEDB_API_KEY", raising=False)
    db = riffledb.connect("db://x", api_key="k", host_override="http://127.0.0.1:9")
    assert isinstance(db, RemoteDBConnection)
    with pytest.raises(ValueError, match="api_key is required"):
        riffledb.connect("db://x", host_override="http://127.0.0.1:9")
    monkeypatch.setenv("LANCEDB_API_KEY", "from-env")
    assert riffledb.connect("db://x")._state["api_key"] == "from-env"
    with pytest.raises(ValueError, match="DNS labels"):
        riffledb.connect("db://" + "a" * 64, api_key="k")
    with pytest.raises(ValueError, match="for db:// URIs"):
        riffledb.connect("memory://", host_override="http://h")
    with pytest.raises(ValueError, match="Invalid remote URL"):
        riffledb.connect("db://x", api_key="k", host_override="ftp://h")
    config = ClientConfig(
        retry_config=RetryConfig(retries=1), timeout_config=TimeoutConfig(read_timeout=2)
    )
    assert riffledb.connect("db://x", api_key="k", client_config=config) is not None


# -- the surface against riffledb serve ------------------------------------------------
def test_tables_read_like_local_ones(server, rows):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    assert "rows" in db.table_names()
    t = db.open_table("rows")
    assert isinstance(t, RemoteTable) and t.name == "rows"
    assert t.schema == rows.schema
    assert len(t) == N and t.count_rows("id >= 150") == 50
    assert t.to_arrow() == rows
    assert t.head(3) == rows.slice(0, 3)
    assert t.take_offsets([7, 3, 7]).to_arrow() == rows.take([7, 3, 7])
    assert t.take_offsets([]).to_arrow().schema == rows.schema
    got = t.take_row_ids([9, 2]).select(["id"]).with_row_id().to_arrow()
    assert got.to_pydict() == {"id": [9, 2], "_rowid": [9, 2]}
    q = (
        t.search()
        .where("id > 10")
        .select(["x", "id"])
        .limit(4)
        .offset(2)
        .with_row_id(True)
    )
    assert q.to_arrow().to_pydict() == {
        "x": [6.5, 7.0, 7.5, 8.0],
        "id": [13, 14, 15, 16],
        "_rowid": [13, 14, 15, 16],
    }
    assert t.search().select({"d": "id * 2"}).limit(2).to_pandas()["d"].tolist() == [0, 2]
    assert [b.num_rows for b in t.search().where("id < 10").to_batches(4)] == [4, 4, 2]
    assert t.search().limit(0).to_arrow().num_rows == 0
    assert t.__getitems__([5, 0]) == rows.take([5, 0])
    # Ascending distinct offsets come back as the server sent them; repeats and any
    # order are put in place natively; the projection is the server's.
    assert t.take_offsets(list(range(N))).to_arrow() == rows
    order = np.random.default_rng(3).permutation(N)
    assert t.take_offsets(order).select(["x"]).to_arrow() == rows.select(["x"]).take(
        order
    )
    # Offsets outside the table: an IndexError naming the first one and its position.
    with pytest.raises(IndexError, match=r"^Offset -1 at position 1 is out of range"):
        t.take_offsets([3, -1]).to_arrow()
    # Past the end: the server's 400 names it at its place in the sorted request; the
    # client names it at the caller's position, as a local take does.
    with pytest.raises(
        IndexError,
        match=rf"^Offset {N + 5} at position 2 is out of range for table 'rows' of "
        rf"{N} rows$",
    ) as caught:
        t.take_offsets([7, 2, N + 5, N]).to_arrow()
    assert isinstance(caught.value.__cause__, HttpError)
    assert caught.value.__cause__.status_code == 400
    with pytest.raises(IndexError, match=rf"^Offset {N} at position 0 is out "):
        t.__getitems__([N, 1])
    # A 400 for another reason stands: the count finds no offset past the end.
    with pytest.raises(HttpError, match="400 Bad Request: .*nope"):
        t.take_offsets([1, 2]).select(["nope"]).to_arrow()


FIRST_TAKES = """
import sys

import riffledb

db = riffledb.connect("db://test", api_key="", host_override=sys.argv[1])
table = db.open_table("rows")
print(table.take_offsets([7, 3, 7]).to_arrow()["id"].to_pylist())
print(table.take_row_ids([9, 2, 9]).with_row_id().to_arrow()["_rowid"].to_pylist())
print(table.__getitems__([5, 0])["id"].to_pylist())
print(sorted(name for name in ("pandas", "pyarrow.compute") if name in sys.modules))
"""


def test_first_takes_of_a_fresh_process_import_neither_pandas_nor_compute(server, rows):
    # Importing pyarrow.compute (pandas with it) costs ~0.2 s: every DataLoader worker
    # paid it on its first take of a remote table, through pa.Table.take.
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", FIRST_TAKES, server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[7, 3, 7]", "[9, 2, 9]", "[5, 0]", "[]"]


def test_writes_versions_and_errors(server):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    t = db.create_table("w", schema=pa.schema([("id", pa.int64())]))
    assert len(t) == 0 and t.version == 1
    t.add([{"id": 1}, {"id": 2}])
    t.add(pa.table({"id": pa.array([3], pa.int32())}))  # the server casts
    assert t.to_arrow()["id"].to_pylist() == [1, 2, 3]
    assert [v["version"] for v in t.list_versions()] == [1, 2, 3]
    t.checkout(2)
    assert len(t) == 2 and t.version == 2
    with pytest.raises(ValueError, match="fixed at version 2"):
        t.add([{"id": 4}])
    t.checkout_latest()
    t.add(pa.table({"id": [9]}), mode="overwrite")
    assert t.to_arrow()["id"].to_pylist() == [9]
    with pytest.raises(riffledb.errors.TableExistsError):
        db.create_table("w", pa.table({"id": [1]}))
    assert db.create_table("w", pa.table({"id": [1]}), exist_ok=True).name == "w"
    db.drop_table("w")
    with pytest.raises(riffledb.errors.TableNotFoundError) as info:
        db.open_table("w")
    assert isinstance(info.value.__cause__, HttpError)
    assert info.value.__cause__.status_code == 404
    db.drop_table("w", ignore_missing=True)
    with pytest.raises(riffledb.errors.TableNotFoundError):
        db.drop_table("w")
    with pytest.raises(ValueError):
        db.open_table("../etc")  # never sent


def test_pickle_reconnects_and_header_provider_is_refused(server, rows):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    t = db.open_table("rows")
    copy = pickle.loads(pickle.dumps(t))
    assert copy._conn is not t._conn and len(copy) == N
    assert copy.take_offsets([1]).to_arrow() == rows.slice(1, 1)

    class Provider:
        def get_headers(self):
            return {"x-token": "t"}

    db2 = riffledb.connect(
        "db://test",
        api_key="",
        host_override=server.url,
        client_config={"header_provider": Provider()},
    )
    t2 = db2.open_table("rows")
    assert len(t2) == N
    with pytest.raises(ValueError, match="header_provider"):
        pickle.dumps(t2)


# -- fork ------------------------------------------------------------------------------
def _fork_child(url, queue):
    db = riffledb.connect(
        "db://dev",
        api_key="fake",
        host_override=url,
        client_config={
            "retry_config": {"retries": 0},
            "timeout_config": {"connect_timeout": 2, "read_timeout": 2},
        },
    )
    queue.put(db.table_names())


@pytest.mark.skipif(sys.platform != "linux", reason="fork is Linux-only here")
def test_remote_connection_after_fork():
    # The seed's test (LanceDB PR #3339), against a keep-alive server.
    with MockServer(lambda request, body: json_answer({"tables": []})) as mock:
        config = {
            "retry_config": {"retries": 0},
            "timeout_config": {"connect_timeout": 2, "read_timeout": 2},
        }
        db = riffledb.connect(
            "db://dev", api_key="fake", host_override=mock.url, client_config=config
        )
        assert db.table_names() == []
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_fork_child, args=(mock.url, queue))
        proc.start()
        proc.join(timeout=15)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
            pytest.fail("Remote connection hung after fork")
        assert proc.exitcode == 0
        assert queue.get(timeout=5) == []
        assert db.table_names() == []


def _inherited_child(table, queue):
    queue.put((table.count_rows(), table._conn.stats()["abandoned_fds"]))


@pytest.mark.skipif(sys.platform != "linux", reason="fork is Linux-only here")
def test_inherited_remote_table_works_after_fork(server, rows):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    table = db.open_table("rows")
    assert table.count_rows() == N  # a pooled keep-alive connection now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_inherited_child, args=(table, queue))
    proc.start()
    count, abandoned = queue.get(timeout=15)
    proc.join(15)
    assert proc.exitcode == 0
    assert count == N and abandoned >= 1  # the child closed its copy of the socket
    before = db.stats()
    assert table.count_rows() == N
    after = db.stats()
    assert after["connections"] == before["connections"]  # the parent's socket lives on
    assert after["reused"] == before["reused"] + 1


@pytest.mark.skipif(sys.platform != "linux", reason="fork is Linux-only here")
def test_fifty_forks_while_the_parent_is_taking(server, rows):
    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    table = db.open_table("rows")
    ids = rows.column("id").to_numpy()
    stop = threading.Event()
    errors: list[BaseException] = []
    done = [0]

    def take_forever():
        rng = np.random.default_rng(1)
        while not stop.is_set():
            offsets = rng.integers(0, N, 32)
            try:
                got = table.take_offsets(offsets).to_arrow().column("id").to_numpy()
                assert np.array_equal(got, ids[offsets])
                done[0] += 1
            except BaseException as error:  # reported by the main thread
                errors.append(error)
                return

    busy = threading.Thread(target=take_forever)
    busy.start()
    try:
        for i in range(50):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    offsets = np.arange(i, N, 7)[::-1]
                    got = table.take_offsets(offsets).to_arrow().column("id").to_numpy()
                    code = 0 if np.array_equal(got, ids[offsets]) else 2
                finally:
                    os._exit(code)
            assert hang.wait_child(pid, timeout=30) == 0, f"fork {i}"
    finally:
        stop.set()
        busy.join(30)
    assert not errors, errors[0]
    assert done[0] > 0
    assert table.take_offsets([3]).to_arrow() == rows.slice(3, 1)


def test_dataloader_workers_read_every_row_once(server, rows):
    pytest.importorskip("torch")
    from harness.remote_scenarios import dataloader_scenarios

    outcome = hang.run_scenarios(
        dataloader_scenarios, server.url, "rows", what="remote DataLoader", timeout=90
    )
    for context in ("fork", "spawn", "forkserver"):
        assert sorted(outcome.get(context)) == list(range(N)), context


# -- retries and errors against a scripted mock ----------------------------------------
def test_reads_retry_listed_statuses_with_one_request_id():
    answers = [503, 429, 200]

    def handler(request, body):
        return json_answer({"tables": ["a"]}, answers.pop(0))

    with MockServer(handler) as mock:
        assert connect(mock.url).table_names() == ["a"]
        ids = {headers["x-request-id"] for _, _, headers, _ in mock.requests}
        assert len(mock.requests) == 3 and len(ids) == 1


def test_retry_error_fields_and_cause():
    with MockServer(lambda r, b: (429, "text/plain", b"Try again later")) as mock:
        db = connect(mock.url, retry_config={"retries": 2, "backoff_factor": 0.001})
        with pytest.raises(RetryError, match="Hit retry limit") as info:
            db.table_names()
    error = info.value
    assert error.request_failures == 2 and error.max_request_failures == 2
    assert error.status_code == 429
    assert isinstance(error.__cause__, HttpError)
    assert "429 Too Many Requests: Try again later" in str(error.__cause__)
    assert error.__cause__.request_id == error.request_id
    copy = pickle.loads(pickle.dumps(error))
    assert copy.request_failures == 2 and copy.request_id == error.request_id
    assert isinstance(type(error)(str(error)), RetryError)  # DataLoader's re-raise


def test_writes_are_sent_once_and_404_is_table_not_found():
    def handler(request, body):
        if "/insert/" in request.path:
            return 500, "text/plain", b"boom"
        if "/describe/" in request.path:
            return json_answer(
                {
                    "version": 1,
                    "schema": {
                        "fields": [
                            {"name": "id", "type": {"type": "int64"}, "nullable": True}
                        ]
                    },
                }
            )
        return 404, "text/plain", b"no such table"

    with MockServer(handler) as mock:
        db = connect(mock.url)
        t = db.open_table("test")
        with pytest.raises(HttpError) as info:
            t.add(pa.table({"id": [1]}))
        assert info.value.status_code == 500 and not isinstance(info.value, RetryError)
        assert sum("/insert/" in path for _, path, _, _ in mock.requests) == 1
        with pytest.raises(riffledb.errors.TableNotFoundError):
            t.count_rows()
        # 404 is not retried either.
        assert sum("/count_rows/" in path for _, path, _, _ in mock.requests) == 1
        # Takes go through the native path: the same error, named after the table.
        with pytest.raises(riffledb.errors.TableNotFoundError, match="test"):
            t.take_offsets([0]).to_arrow()
        with pytest.raises(riffledb.errors.TableNotFoundError):
            t.__getitems__([0])


def test_request_shapes_of_lancedbs_tests():
    def handler(request, body):
        if "/describe/" in request.path:
            return json_answer(
                {
                    "version": 1,
                    "schema": {
                        "fields": [
                            {"name": "id", "type": {"type": "int64"}, "nullable": True}
                        ]
                    },
                }
            )
        if "/count_rows/" in request.path:
            return json_answer(7)
        if "/query/" in request.path:
            query = json.loads(body)
            match = re.search(r"_rowoffset in \((.*)\)", query.get("filter", ""))
            ids = [int(v) for v in match.group(1).split(",")] if match else [0, 1]
            table = pa.table({"id": pa.array(ids, pa.int64())})
            return 200, "application/vnd.apache.arrow.file", arrow_file_bytes(table)
        if "/create/" in request.path or "/insert/" in request.path:
            return json_answer({"version": 2})
        return json_answer({"tables": []})

    with MockServer(handler) as mock:
        db = riffledb.connect(
            "db://dev", api_key="fake", host_override=mock.url, client_config=FAST
        )
        t = db.open_table("test")
        assert t.count_rows("id > 1") == 7
        t.search().where("id > 0").select(["id"]).limit(5).offset(2).with_row_id(
            True
        ).to_arrow()
        assert t.take_offsets([0, 2, 4]).to_arrow()["id"].to_pylist() == [0, 2, 4]
        db.create_table("new", pa.table({"id": [1]}))
        t.add(pa.table({"id": [2]}))
        requests = {path: (headers, body) for _, path, headers, body in mock.requests}

    headers, body = requests["/v1/table/test/describe/"]
    assert body == b""
    assert headers["x-api-key"] == "fake" and headers["x-lancedb-database"] == "dev"
    assert headers["User-Agent"].startswith("riffledb-Python-Client/")
    assert json.loads(requests["/v1/table/test/count_rows/"][1]) == {
        "version": None,
        "predicate": "id > 1",
    }
    queries = [
        json.loads(b) for _, p, _, b in mock.requests if p == "/v1/table/test/query/"
    ]
    assert queries[0] == {
        "version": None,
        "prefilter": True,
        "k": 5,
        "vector": [],
        "offset": 2,
        "filter": "id > 0",
        "columns": ["id"],
        "with_row_id": True,
    }
    assert queries[1]["filter"] == "_rowoffset in (0,2,4)"
    assert queries[1]["k"] == 9223372036854775807
    create_headers, create_body = requests["/v1/table/new/create/?mode=create"]
    assert create_headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    assert pa.ipc.open_stream(create_body).read_all() == pa.table({"id": [1]})
    assert "/v1/table/test/insert/" in requests


# -- permutations ----------------------------------------------------------------------
def test_identity_permutation_over_a_remote_table(server, rows):
    from riffledb.permutation import Permutation

    db = riffledb.connect("db://test", api_key="", host_override=server.url)
    perm = Permutation.identity(db.open_table("rows"))
    assert len(perm) == N and perm.schema == rows.schema
    assert perm.take_offsets([3, 0]) == [{"id": 3, "x": 1.5}, {"id": 0, "x": 0.0}]
    arrow = perm.with_format("arrow").select_columns(["id"])
    assert [b.num_rows for b in arrow.iter(64)] == [64, 64, 64, 8]
    assert [b.num_rows for b in arrow.with_batch_size(64)] == [64, 64, 64]
    ids = np.concatenate([b.column(0).to_numpy() for b in arrow.iter(64)])
    assert ids.tolist() == list(range(N))
    copy = pickle.loads(pickle.dumps(arrow))
    assert copy.__getitems__([5, 1]).column(0).to_pylist() == [5, 1]
    with pytest.raises(IndexError):
        perm.take_offsets([N])


def _minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])  # field 10: minflt


def _allocator_is_tunable() -> bool:
    """Whether `riffledb serve` can set glibc's thresholds here (see
    remote.TuneAllocatorForServing): glibc, no other allocator preloaded, and no
    threshold set by the environment."""
    import platform

    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return (
        sys.platform.startswith("linux")
        and platform.libc_ver()[0] == "glibc"
        and not os.environ.get("LD_PRELOAD")
        and "MALLOC_MMAP_THRESHOLD_" not in os.environ
        and "MALLOC_TRIM_THRESHOLD_" not in os.environ
        and "mmap_threshold" not in tunables
        and "trim_threshold" not in tunables
    )


@pytest.mark.skipif(not _allocator_is_tunable(), reason="glibc's malloc, untuned")
def test_megabyte_answers_reuse_the_servers_memory():
    # Regression: each take answered with about a megabyte (2,048 rows of 520 bytes,
    # streamed) mapped its buffers anew, ~1,150 page faults a request; `riffledb serve`
    # now keeps such blocks for reuse (remote.TuneAllocatorForServing).
    server = RiffledbServer("memory://")
    try:
        db = riffledb.connect("db://test", api_key="", host_override=server.url)
        rows = 4096
        vectors = np.arange(rows * 128, dtype=np.float32)
        table = db.create_table(
            "vectors",
            pa.table(
                {
                    "id": pa.array(np.arange(rows), pa.int64()),
                    "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors), 128),
                }
            ),
        )
        offsets = np.random.default_rng(5).permutation(rows)[:2048]
        for _ in range(5):  # warm-up: the arenas grow to what a request needs
            table.take_offsets(offsets).to_arrow()
        before = _minor_faults(server.proc.pid)
        for _ in range(20):
            got = table.take_offsets(offsets).to_arrow()
        per_request = (_minor_faults(server.proc.pid) - before) / 20
        assert got["id"].to_numpy().tolist() == offsets.tolist()
        assert per_request < 100, per_request
    finally:
        assert server.stop() == 0
