"""``riffledb serve`` streams query answers (issue #13): an IPC file written batch by
batch into a chunked response, so that the server's memory for one answer is bounded by
a batch, not by the answer's size.

A memory:// server holds a 200 MiB table; its peak resident memory (VmHWM, reset through
/proc/PID/clear_refs before each query) may grow by a few batches, not by the answer.
"""

from __future__ import annotations

import http.client
import json

import numpy as np
import pyarrow as pa
import pytest
from harness.remote_server import RiffledbServer

import riffledb

ROWS = 200 * 1024  # 1 KiB rows: 200 MiB, 200 batches of 1024 rows (1 MiB each)
WIDTH = 1024
PART = 25 * 1024  # rows per insert: bodies of 25 MiB
# What a streamed answer may add to the server's peak: the 1 MiB buffered before the
# first byte, a batch or two in flight and allocator slack. A whole answer adds 200 MiB.
BOUND = 48 << 20
QUERY = {"version": None, "prefilter": True, "k": 2**63 - 1, "vector": []}
TIMEOUT = 60


def table(start: int, n: int) -> pa.Table:
    payload = np.random.default_rng(start).integers(0, 256, n * WIDTH, dtype=np.uint8)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "payload": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(WIDTH), n, [None, pa.py_buffer(payload)]
            ),
        }
    )


def ipc_stream(t: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as writer:
        writer.write_table(t)
    return sink.getvalue().to_pybytes()


def post(port: int, path: str, body: bytes, content_type: str):
    """(status, headers, body) of one request on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def query(port: int, name: str, **fields):
    body = json.dumps({**QUERY, **fields}).encode()
    return post(port, f"/v1/table/{name}/query/", body, "application/json")


class Peak:
    """The server's peak resident memory since the last reset (Linux)."""

    def __init__(self, pid: int):
        self.pid = pid

    def reset(self) -> None:
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size

    def __call__(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def big():
    """A memory:// server with table ``big`` (ROWS rows, 8 fragments) and the table."""
    server = RiffledbServer("memory://")
    parts = [table(start, PART) for start in range(0, ROWS, PART)]
    for i, part in enumerate(parts):
        mode = "create" if i == 0 else "insert"
        status, _, data = post(
            server.port,
            f"/v1/table/big/{mode}/",
            ipc_stream(part),
            "application/vnd.apache.arrow.stream",
        )
        assert status == 200, data
    yield server, pa.concat_tables(parts)
    assert server.stop() == 0


def test_big_answer_streams_exactly_in_bounded_memory(big):
    server, expected = big
    peak = Peak(server.proc.pid)
    peak.reset()
    before = peak()
    status, headers, data = query(server.port, "big")
    grown = peak() - before
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apache.arrow.file"
    assert headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in headers
    # LanceDB's client reads the answer as one IPC file.
    reader = pa.ipc.open_file(pa.BufferReader(data))
    assert reader.num_record_batches == ROWS // 1024
    assert {reader.get_batch(i).num_rows for i in range(reader.num_record_batches)} == {
        1024
    }
    assert reader.read_all().equals(expected)
    del data, reader
    assert grown < BOUND, f"the server's peak grew by {grown >> 20} MiB"

    # riffledb's client, through the same server.
    peak.reset()
    before = peak()
    db = riffledb.connect(
        "db://any", api_key="", host_override=f"http://127.0.0.1:{server.port}"
    )
    got = db.open_table("big").to_arrow()
    grown = peak() - before
    assert got.equals(expected)
    assert grown < BOUND, f"the server's peak grew by {grown >> 20} MiB"


def test_small_answers_keep_their_length(big):
    server, expected = big
    status, headers, data = query(server.port, "big", k=3, columns=["id"])
    assert status == 200
    assert headers["Content-Length"] == str(len(data))
    assert pa.ipc.open_file(pa.BufferReader(data)).read_all()["id"].to_pylist() == [
        0,
        1,
        2,
    ]
    # A take of more ids than a batch, in the order asked for, streamed.
    ids = list(range(ROWS - 1, -1, -97))
    status, headers, data = query(
        server.port, "big", filter=f"_rowoffset IN ({', '.join(map(str, ids))})"
    )
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    got = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    assert got.equals(expected.take(ids))


def test_errors_before_the_first_byte_are_still_error_replies(big):
    server, _ = big
    # Fails on the first row: nothing was sent yet.
    status, headers, data = query(server.port, "big", filter="100 / (0 - id) > 0")
    assert status == 400
    assert "divide by zero" in json.loads(data)["error"]
    # An id past the end, after thousands of good ones: every id is checked first.
    ids = [*range(5000), ROWS]
    status, _, data = query(
        server.port, "big", filter=f"_rowoffset IN ({', '.join(map(str, ids))})"
    )
    assert status == 400
    assert str(ROWS) in json.loads(data)["error"]


def test_a_failure_mid_stream_aborts_the_answer(big):
    server, _ = big
    # True (rows sent) up to id 100000, where it divides by zero: about 100 MiB in.
    where = "id / (100000 - id) >= 0"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request(
        "POST",
        "/v1/table/big/query/",
        body=json.dumps({**QUERY, "filter": where}).encode(),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    # The chunked body ends without its last chunk: never a short valid answer.
    with pytest.raises(http.client.IncompleteRead) as truncated:
        response.read()
    partial = truncated.value.partial
    assert len(partial) > 1 << 20
    with pytest.raises(pa.ArrowInvalid):
        pa.ipc.open_file(pa.BufferReader(partial))
    conn.close()

    # riffledb's client raises (after its retries), it returns no rows.
    db = riffledb.connect(
        "db://any", api_key="", host_override=f"http://127.0.0.1:{server.port}"
    )
    with pytest.raises(riffledb.remote.errors.RetryError):
        db.open_table("big").search().where(where).to_arrow()

    # The server lives on.
    status, _, data = query(server.port, "big", k=1, columns=["id"])
    assert status == 200
    assert pa.ipc.open_file(pa.BufferReader(data)).read_all()["id"].to_pylist() == [0]


def test_streamed_answers_over_tls(tmp_path):
    """A streamed (chunked) answer over TLS reaches riffledb's client and Python's own
    TLS stack whole; the keep-alive connection then serves the next request."""
    import ssl

    from test_serve import Server, certificates

    from riffledb.remote import ClientConfig, TlsConfig

    ca, cert, key = certificates(tmp_path)
    rows = 4 * 1024  # 4 MiB of 1 KiB rows: four times the buffered bound
    expected = table(0, rows)
    riffledb.connect(tmp_path / "db").create_table("t", expected)
    server = Server(str(tmp_path / "db"), "--tls-cert", cert, "--tls-key", key)
    try:
        db = riffledb.connect(
            "db://x",
            api_key="",
            host_override=server.url,
            client_config=ClientConfig(tls_config=TlsConfig(ssl_ca_cert=ca)),
        )
        t = db.open_table("t")
        assert t.to_arrow().equals(expected)
        assert t.count_rows() == rows  # the same connection, after the chunked answer

        context = ssl.create_default_context(cafile=ca)
        conn = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=TIMEOUT, context=context
        )
        conn.request(
            "POST",
            "/v1/table/t/query/",
            body=json.dumps(QUERY).encode(),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        data = response.read()
        assert pa.ipc.open_file(pa.BufferReader(data)).read_all().equals(expected)
        conn.close()
    finally:
        assert server.stop() == 0, server.stderr
