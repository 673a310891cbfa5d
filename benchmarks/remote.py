"""Remote tables on loopback (issue #13, Benchmarks): shuffled takes, DataLoader epochs.

``make bench-remote`` (``REMOTE_ROWS=N``, ``QUICK=1``) or::

    PYTHONPATH=python .venv/bin/python benchmarks/remote.py \\
        --lancedb-python .venv-bench/bin/python [--rows 100000] [--repeats 3]

A table of ``--rows`` rows (``id`` int64 = offset, ``vec`` 128 float32: 520 bytes a
row) in a local directory, served by ``riffledb serve`` on 127.0.0.1. Cells, each a
fresh process per pass (imports, connect and ``open_table`` untimed), visited in rotated
order in each of ``--repeats`` rounds:

- **takes**: the rows in a shuffled order (fixed seed), cut into ``take_offsets`` of 256
  (the first ``--takes`` of them, after one untimed take of the last batch that warms
  the process's lazy imports), every ``id`` returned checked against its offset:
  riffledb local (the directory), riffledb's client -> ``riffledb serve``, the same
  with busy-polling off on both sides (``riffledb-remote-blocking``: a server started
  with ``--busy-poll-us 0``, ``ClientConfig(busy_poll_us=0)``), LanceDB 0.40's client
  (``--lancedb-python``, ``host_override``) -> ``riffledb serve``;
- **DataLoader**: an epoch of ``torch.utils.data.DataLoader(table, batch_size=256,
  sampler=RandomSampler(seeded), collate_fn=identity)`` over the first ``--epoch-rows``
  rows (the table is a Dataset with ``__getitems__``), ``num_workers=0`` and 2 fork
  workers, riffledb local and remote; every row seen exactly once.

- **prefetched iteration**: a shuffled permutation (``permutation_builder(table)
  .shuffle(seed)``, built untimed) read as ``iter(256, prefetch=8)`` in Arrow, every
  row seen once: riffledb local and remote (two takes in flight, the prefetcher's
  threads);
- **one CPU**: riffledb local, riffledb remote and bare HTTP takes again, the client
  process and a second server both pinned to CPU 0 (``sched_setaffinity``), so that no
  answer waits for a sleeping CPU to be woken: the cost of the exchange itself;
- **floors** of this machine, beside the remote cells: **bare HTTP**, the same take
  requests as riffledb's client sends, from a minimal blocking socket client that reads
  each answer whole into a 2 MiB buffer and does nothing with it (the fastest any
  client of this server could be, one take at a time; polling a non-blocking socket
  from Python made it slower); **TCP round trip**, a 64-byte ping-pong between two
  processes on loopback (no server, no data), as rows/s if each 256-row take cost only
  that round trip; **take-sized exchange**, the same ping-pong with a take's request
  and answer sizes (the bare HTTP cell's request, ~1.7 kB, and the server's answer to it,
  ~134 kB, measured once), the
  kernel's cost of moving a take's bytes with nothing computed on either side; and the
  same exchange with **both ends polling** non-blocking sockets (no thread sleeps, so
  none is woken: riffledb's client and server busy-poll too).

Below the table, the **ceiling** of one-at-a-time remote takes on this machine: a
remote take still does what the local one does (the gather, on the server; the rest,
in the client), and moves the bytes besides, so it cannot take less than the local
take's time plus the faster of the two exchanges'.

Figures: median [min-max] of rows/s. Results: a Markdown table on stdout and
``benchmarks/results/remote-<rows>.json`` (git-ignored). The issue's target: remote
takes >= 0.5x local rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from remote_load import start_server, stop_server  # noqa: E402

DIM = 128
SEED = 42
BATCH = 256
# The suffix of a system whose cell runs with its server on CPU 0 only, and pinned there.
ONE_CPU = " (1 CPU)"
# riffledb's client and server with busy-polling off (--busy-poll-us 0, ClientConfig
# busy_poll_us=0): the remote takes as they were before it.
BLOCKING = "riffledb-remote-blocking"

# Runs in a fresh process: argv = json of {kind, uri, url, offsets file, ...}; prints a
# JSON line {"seconds": ..., "rows": ...}.
CHILD = r"""
import json, sys, time
import numpy as np
p = json.loads(sys.argv[1])
EXCHANGE_ASK, EXCHANGE_ANSWER = p.get("exchange", (0, 0))
if p["kind"] in ("tcp", "exchange", "exchange-spin"):
    import os, socket
    # tcp: 64 bytes each way; exchange: a take's request and answer sizes; -spin: both
    # ends poll non-blocking sockets instead of sleeping in recv, as riffledb's client
    # and server busy-poll (no wake-up of a sleeping thread in the exchange).
    ask, answer = (64, 64) if p["kind"] == "tcp" else (EXCHANGE_ASK, EXCHANGE_ANSWER)
    spin = p["kind"].endswith("-spin")
    def recv_exactly(sock, view, size):
        n = 0
        while n < size:
            try:
                got = sock.recv_into(view[n:])
            except BlockingIOError:
                continue
            if not got:
                return False
            n += got
        return True
    def send_all(sock, data):
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                continue
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    if os.fork() == 0:
        peer, _ = listener.accept()
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer.setblocking(not spin)
        inbox = memoryview(bytearray(ask))
        reply = b"y" * answer
        while recv_exactly(peer, inbox, ask):
            send_all(peer, reply)
        os._exit(0)
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(not spin)
    request = b"x" * ask
    view = memoryview(bytearray(answer))
    times = []
    for i in range(p["takes"] * (10 if p["kind"] == "tcp" else 3)):
        t0 = time.perf_counter()
        send_all(sock, request)
        assert recv_exactly(sock, view, answer)
        times.append(time.perf_counter() - t0)
    sock.close()
    os.wait()
    # rows/s of 256-row takes that would cost the median round trip only
    print(json.dumps({"seconds": float(np.median(times)), "rows": 256}))
    sys.exit(0)
if p["kind"] == "http":
    import socket
    from urllib.parse import urlsplit
    url = urlsplit(p["url"])
    every = np.load(p["offsets"])
    batches = every[: min(p["takes"], len(every) - 1)]
    def body(offsets):
        keys = ",".join(map(str, np.sort(offsets).tolist()))
        return json.dumps({"version": None, "prefilter": True, "k": 2**63 - 1,
                           "vector": [], "filter": f"_rowoffset in ({keys})"}).encode()
    head = (f"POST /v1/table/bench/query/ HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n").encode()
    sock = socket.create_connection((url.hostname, url.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(1 << 21)
    view = memoryview(buf)
    def exchange(request):
        sock.sendall(request)
        n = 0
        while True:
            got = sock.recv_into(view[n:])
            assert got, "the server closed the connection"
            n += got
            end = buf.find(b"\r\n\r\n", 0, n)
            if end >= 0:
                break
        assert buf.startswith(b"HTTP/1.1 200"), bytes(buf[:n])
        head = bytes(view[:end]).lower()
        at = head.find(b"content-length: ") + 16
        total = end + 4 + int(head[at:head.find(b"\r\n", at)])
        while n < total:
            got = sock.recv_into(view[n:])
            assert got, "the server closed the connection"
            n += got
        return total
    requests = [head % len(b) + b for b in map(body, batches)]
    exchange(head % len(body(every[-1])) + body(every[-1]))
    t0 = time.perf_counter()
    for request in requests:
        assert exchange(request) > 256 * 520
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": len(batches) * 256}))
    sys.exit(0)
if p["system"] == "lancedb":
    import lancedb
    db = lancedb.connect("db://bench", api_key="", host_override=p["url"])
else:
    import riffledb
    if p["system"] == "riffledb-local":
        db = riffledb.connect(p["path"])
    else:
        config = {"busy_poll_us": 0} if p["blocking"] else {}
        db = riffledb.connect(
            "db://bench", api_key="", host_override=p["url"], client_config=config
        )
table = db.open_table("bench")
if p["kind"] == "iter":
    from riffledb.permutation import Permutation, permutation_builder
    perm = Permutation.from_tables(
        table, permutation_builder(table).shuffle(seed=7).execute()
    ).with_format("arrow")
    rows = table.count_rows()
    seen = np.zeros(rows, np.int32)
    ids = next(iter(perm.iter(256)))["id"].to_numpy()  # untimed, as the takes' warm-up
    t0 = time.perf_counter()
    n = 0
    for batch in perm.iter(256, prefetch=8):
        ids = batch["id"].to_numpy()
        np.add.at(seen, ids, 1)
        n += len(ids)
    seconds = time.perf_counter() - t0
    assert (seen == 1).all(), "rows not seen exactly once"
    print(json.dumps({"seconds": seconds, "rows": n}))
    sys.exit(0)
if p["kind"] == "takes":
    every = np.load(p["offsets"])
    batches = every[: min(p["takes"], len(every) - 1)]
    # One untimed take of a batch the timed ones do not read, checked as they are: the
    # first take of a process, and the check's to_numpy(), set up what they need lazily
    # (to_numpy imports pyarrow.compute, ~0.2 s), which 300 timed takes would otherwise
    # carry at ~0.6 ms each.
    got = table.take_offsets(every[-1].tolist()).to_arrow()
    assert np.array_equal(got["id"].to_numpy(), every[-1]), "wrong rows"
    t0 = time.perf_counter()
    n = 0
    for offsets in batches:
        got = table.take_offsets(offsets.tolist()).to_arrow()
        assert np.array_equal(got["id"].to_numpy(), offsets), "wrong rows"
        n += len(offsets)
    seconds = time.perf_counter() - t0
else:
    import torch
    from torch.utils.data import DataLoader, RandomSampler, Subset
    rows = p["epoch_rows"]
    g = torch.Generator().manual_seed(7)
    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return rows
        def __getitems__(self, idx):
            return table.__getitems__(idx)
    sampler = RandomSampler(range(rows), generator=g)
    loader = DataLoader(Rows(), batch_size=256, sampler=sampler,
                        collate_fn=lambda x: x, num_workers=p["workers"],
                        multiprocessing_context="fork" if p["workers"] else None)
    seen = np.zeros(rows, np.int32)
    # Untimed, as the takes' warm-up: a batch read and checked as the loop does (the
    # check's first to_numpy() imports pyarrow.compute, ~0.2 s of a ~0.3 s epoch).
    table.__getitems__(list(range(256)))["id"].to_numpy()
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        ids = batch["id"].to_numpy() if hasattr(batch, "column") else np.asarray(
            [r["id"] for r in batch])
        np.add.at(seen, ids, 1)
        n += len(ids)
    seconds = time.perf_counter() - t0
    assert (seen == 1).all(), "rows not seen exactly once"
print(json.dumps({"seconds": seconds, "rows": n}))
"""


def make_table(path: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa

    import riffledb

    rng = np.random.default_rng(SEED)
    db = riffledb.connect(path)
    table = None
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        vec = rng.random(n * DIM, dtype=np.float32)
        batch = pa.table(
            {
                "id": pa.array(np.arange(start, start + n), pa.int64()),
                "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec), DIM),
            }
        )
        if table is None:
            table = db.create_table("bench", batch)
        else:
            table.add(batch)


def run_cell(
    python: str, params: dict, timeout: float, cpus: set[int] | None = None
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    if params["system"] == "lancedb":
        env.pop("PYTHONPATH")
    result = subprocess.run(
        [python, "-c", CHILD, json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def take_request(url: str, offsets) -> bytes:
    """The query riffledb's client sends for a take of ``offsets`` (in that order; spec
    §2.7), as one HTTP request to table ``bench``."""
    from urllib.parse import urlsplit

    where = urlsplit(url)
    keys = ",".join(str(int(o)) for o in offsets)
    body = json.dumps(
        {
            "version": None,
            "prefilter": True,
            "k": 2**63 - 1,
            "vector": [],
            "filter": f"_rowoffset in ({keys})",
        }
    ).encode()
    return (
        f"POST /v1/table/bench/query/ HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def take_sizes(url: str, offsets) -> tuple[int, int]:
    """Bytes of a take request for ``offsets`` (as the bare HTTP cell sends it) and of
    the server's whole answer to it (head and body): the exchange cell's sizes."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    request = take_request(url, sorted(int(o) for o in offsets))
    closing = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    with socket.create_connection((where.hostname, where.port), timeout=60) as sock:
        sock.sendall(closing)
        answer = b""
        while chunk := sock.recv(1 << 20):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"take for the exchange's sizes failed: {answer[:200]!r}")
    # The bare HTTP cell's request; riffledb's client adds some 130 bytes of headers
    # (User-Agent, x-request-id, x-lancedb-database, Accept).
    return len(request), len(answer)


def summary(values: list[float]) -> str:
    if not values:
        return "failed"
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--takes", type=int, default=300)
    parser.add_argument("--epoch-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lancedb-python", default=str(REPO / ".venv-bench/bin/python"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.takes, args.epoch_rows, args.repeats = 20_000, 60, 20_000, 2
    args.epoch_rows = min(args.epoch_rows, args.rows)

    cells = []
    for system in ("riffledb-local", "riffledb-remote", BLOCKING, "lancedb"):
        cells.append(("takes", system, 0))
    for system in ("riffledb-local", "riffledb-remote"):
        for workers in (0, 2):
            cells.append(("dataloader", system, workers))
    for system in ("riffledb-local", "riffledb-remote"):
        cells.append(("iter", system, 0))
    cells.append(("http", "floor", 0))
    cells.append(("tcp", "floor", 0))
    cells.append(("exchange", "floor", 0))
    cells.append(("exchange-spin", "floor", 0))
    # The same takes with the client and a second server on one CPU: where the wake-ups
    # cost (a sleeping vCPU woken for each answer) is taken out of the comparison.
    for system in ("riffledb-local", "riffledb-remote", "floor"):
        cells.append(("takes" if system != "floor" else "http", system + ONE_CPU, 0))
    rates: dict[str, list[float]] = {f"{k} {s} w{w}": [] for k, s, w in cells}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="riffledb-remote-bench-") as tmp:
        path = os.path.join(tmp, "db")
        make_table(path, args.rows)
        offsets = np.random.default_rng(SEED).permutation(args.rows)
        batches = offsets[: (args.rows // BATCH) * BATCH].reshape(-1, BATCH)
        offsets_file = os.path.join(tmp, "offsets.npy")
        np.save(offsets_file, batches)
        proc, url = start_server(path, 16)
        pinned, pinned_url = start_server(path, 16, cpus={0})
        blocking, blocking_url = start_server(path, 16, args=["--busy-poll-us", "0"])
        try:
            exchange = take_sizes(url, batches[0])
            for round_ in range(args.repeats):
                shift = round_ % len(cells)
                for kind, system, workers in cells[shift:] + cells[:shift]:
                    key = f"{kind} {system} w{workers}"
                    python = (
                        args.lancedb_python if system == "lancedb" else sys.executable
                    )
                    if system == "lancedb" and not os.path.exists(python):
                        errors[key] = f"no {python}"
                        continue
                    one_cpu = system.endswith(ONE_CPU)
                    params = {
                        "system": system.removesuffix(ONE_CPU),
                        "kind": kind,
                        "path": path,
                        "url": pinned_url
                        if one_cpu
                        else blocking_url
                        if system == BLOCKING
                        else url,
                        "blocking": system == BLOCKING,
                        "offsets": offsets_file,
                        "takes": args.takes,
                        "epoch_rows": args.epoch_rows,
                        "workers": workers,
                        "exchange": exchange,
                    }
                    out = run_cell(
                        python, params, timeout=600, cpus={0} if one_cpu else None
                    )
                    if "error" in out:
                        errors[key] = out["error"]
                    else:
                        rates[key].append(out["rows"] / out["seconds"])
        finally:
            stop_server(proc)
            stop_server(pinned)
            stop_server(blocking)

    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    print(
        f"\nRemote tables on loopback: {args.rows:,} rows (id + 128 float32), "
        f"{args.repeats} rounds, commit {revision}; rows/s, median [min-max]\n"
    )
    print("| cell | system | rows/s | vs local |")
    print("|---|---|---|---|")
    for kind, system, workers in cells:
        key = f"{kind} {system} w{workers}"
        # the floors are beside the takes: one 256-row take at a time
        base = "takes" if system.startswith("floor") else kind
        local_system = "riffledb-local" + (ONE_CPU if system.endswith(ONE_CPU) else "")
        local = rates.get(f"{base} {local_system} w{workers}") or []
        ratio = (
            f"{statistics.median(rates[key]) / statistics.median(local):.2f}x"
            if rates[key] and local
            else ""
        )
        label = {
            "takes": "takes (batch 256)",
            "dataloader": f"DataLoader, {workers} workers",
            "iter": "prefetched iteration (batch 256)",
            "http": "bare HTTP takes (minimal client)",
            "tcp": "64-byte TCP round trip, as takes",
            "exchange": "take-sized TCP exchange (no server), as takes",
            "exchange-spin": "the same, both ends polling (no wake-ups), as takes",
        }[kind]
        cell = summary(rates[key]) if rates[key] else f"failed: {errors.get(key, '')}"
        print(f"| {label} | {system} | {cell} | {ratio} |")
    local = rates["takes riffledb-local w0"]
    moved = [
        statistics.median(rates[key])
        for key in ("exchange floor w0", "exchange-spin floor w0")
        if rates[key]
    ]
    if local and moved:
        # A take one at a time cannot beat the local take's work plus moving its bytes,
        # the faster way (riffledb's client and server poll, as the -spin exchange does).
        a, b = statistics.median(local), max(moved)
        print(
            f"\nCeiling of a remote take here, one at a time: the local take's time plus "
            f"the faster take-sized exchange's ({exchange[0]:,} -> {exchange[1]:,} "
            f"bytes), {1 / (1 / a + 1 / b):,.0f} rows/s = {b / (a + b):.2f}x local."
        )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = {
        "rows": args.rows,
        "takes": args.takes,
        "epoch_rows": args.epoch_rows,
        "repeats": args.repeats,
        "commit": revision,
        "rates": rates,
        "errors": errors,
        "exchange_bytes": exchange,
    }
    (results / f"remote-{args.rows}.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
