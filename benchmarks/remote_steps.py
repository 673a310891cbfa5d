"""Where a one-at-a-time remote take's time goes, beside a local take's (issue #13).

``make bench-remote-steps`` or::

    PYTHONPATH=python .venv/bin/python benchmarks/remote_steps.py [--rows 100000]

One process, one table (``benchmarks/remote.py``'s: ``id`` + 128 float32, 520 bytes a
row) served by ``riffledb serve`` on 127.0.0.1, and the same shuffled batches of 256
offsets taken locally and remotely in alternating rounds of ``--takes``, each step
timed with ``perf_counter_ns`` (medians, µs):

- ``index``: ``offsets.tolist()`` and the ``index_array`` a take makes of it;
- ``call``: the native take (``_riffledb.remote_take``: request, server, answer, IPC
  read, without the GIL; locally the table's take, the gather of the rows);
- ``import``: the C-data batch into pyarrow; ``table``: ``pa.Table.from_batches``;
- ``check``: what ``benchmarks/remote.py`` does with each answer (the ``id`` column to
  numpy, compared with the offsets);

and the **bare** exchange on its own connection: the same take request, sent
pre-built, its answer read whole into a reused buffer and nothing done with it (the
server and the kernel's share of ``call``). The bare client blocks in ``recv``: it pays
the wake-up that riffledb's client, polling by default, does not, so the remote ``call``
minus the bare exchange understates what the client adds (``--busy-poll-us 0`` makes
both block). The bare exchange beyond the local ``call`` is what the server and the
exchange add. Rounds of 1,000 takes or more would meet the server's keep-alive limit
(the bare client connects anew each round). Figures are this machine's at this minute:
compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "python"))

from remote import BATCH, SEED, make_table, take_request  # noqa: E402
from remote_load import start_server, stop_server  # noqa: E402

STEPS = ("index", "call", "import", "table", "check")


class BareClient:
    """A blocking socket that sends pre-built requests and reads whole answers."""

    def __init__(self, url: str) -> None:
        self._where = urlsplit(url)
        self._buf = bytearray(1 << 21)
        self._view = memoryview(self._buf)
        self._sock = None

    def connect(self) -> None:
        # Anew before each round: the server closes a keep-alive connection after 1,000
        # requests.
        if self._sock is not None:
            self._sock.close()
        self._sock = socket.create_connection((self._where.hostname, self._where.port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, request: bytes) -> int:
        buf, view, sock = self._buf, self._view, self._sock
        sock.sendall(request)
        n = 0
        while True:
            got = sock.recv_into(view[n:])
            if not got:
                raise RuntimeError("the server closed the connection")
            n += got
            end = buf.find(b"\r\n\r\n", 0, n)
            if end >= 0:
                break
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"take failed: {bytes(buf[:200])!r}")
        head = bytes(view[:end]).lower()
        at = head.find(b"content-length: ")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        at += 16
        total = end + 4 + int(head[at : head.find(b"\r\n", at)])
        while n < total:
            got = sock.recv_into(view[n:])
            if not got:
                raise RuntimeError("the server closed the connection")
            n += got
        return total


def time_takes(table, batches: np.ndarray, remote: bool) -> np.ndarray:
    """Per take, the ns of each of STEPS."""
    from riffledb import _riffledb
    from riffledb._args import index_array

    clock = time.perf_counter_ns
    out = np.zeros((len(batches), len(STEPS)), np.int64)
    if remote:
        conn = table._conn
        fixed = (table._name, table._path, table._checkout_version)
    for i, offsets in enumerate(batches):
        t0 = clock()
        keys = index_array(offsets.tolist(), "offsets", np.int64)
        t1 = clock()
        if remote:
            batch = _riffledb.remote_take(
                conn._client,
                *fixed,
                keys.view(np.uint64),
                False,
                [],
                False,
                conn._header_provider,
            )
        else:
            batch = table._inner.take_offsets(keys, [], False)
        t2 = clock()
        batch = pa.RecordBatch._import_from_c_capsule(*batch)
        t3 = clock()
        got = pa.Table.from_batches([batch])
        t4 = clock()
        if not np.array_equal(got["id"].to_numpy(), offsets):
            raise AssertionError("wrong rows")
        t5 = clock()
        out[i] = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--takes", type=int, default=900, help="a round's, at most 999")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--busy-poll-us",
        type=int,
        help="the server's --busy-poll-us and the client's ClientConfig.busy_poll_us "
        "(default: their defaults)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.takes <= 999:
        parser.error("--takes must be 1 to 999 (the server's keep-alive limit: 1,000)")

    import riffledb

    with tempfile.TemporaryDirectory(prefix="riffledb-remote-steps-") as tmp:
        path = str(Path(tmp) / "db")
        make_table(path, args.rows)
        rng = np.random.default_rng(SEED)
        every = rng.permutation(args.rows)[: (args.rows // BATCH) * BATCH]
        batches = every.reshape(-1, BATCH).astype(np.int64)[: args.takes]
        poll = args.busy_poll_us
        proc, url = start_server(
            path, 4, args=() if poll is None else ("--busy-poll-us", str(poll))
        )
        try:
            local = riffledb.connect(path).open_table("bench")
            remote = riffledb.connect(
                "db://bench",
                api_key="",
                host_override=url,
                client_config={} if poll is None else {"busy_poll_us": poll},
            ).open_table("bench")
            bare = BareClient(url)
            requests = [take_request(url, b) for b in batches]
            # Warm-up: lazy imports, the first maps and connections.
            time_takes(local, batches[:50], False)
            time_takes(remote, batches[:50], True)
            rows = {"local": [], "remote": [], "bare": []}
            for _ in range(args.rounds):
                rows["local"].append(time_takes(local, batches, False))
                rows["remote"].append(time_takes(remote, batches, True))
                bare.connect()
                bare.exchange(requests[-1])  # untimed, as the takes' warm-up
                clock = time.perf_counter_ns
                times = []
                for request in requests:
                    t0 = clock()
                    bare.exchange(request)
                    times.append(clock() - t0)
                rows["bare"].append(np.asarray(times))
        finally:
            stop_server(proc)

    print(
        f"One take of {BATCH} rows at a time, {args.rows:,} rows, "
        f"{args.rounds} rounds of {len(batches)}: medians in µs"
    )
    print("| take | " + " | ".join(STEPS) + " | all |")
    print("|---" * (len(STEPS) + 2) + "|")
    for name in ("local", "remote"):
        med = np.median(np.concatenate(rows[name]), axis=0) / 1000
        total = np.median(np.concatenate(rows[name]).sum(axis=1)) / 1000
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in med) + f" | {total:.1f} |")
    bare_us = np.median(np.concatenate(rows["bare"])) / 1000
    print(f"| bare exchange | | {bare_us:.1f} | | | | {bare_us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
