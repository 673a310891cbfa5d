"""Random takes from S3 (issue #11): shuffled 256-row takes from the loopback S3 server.

``make bench-s3`` (``S3_ROWS=N`` to change N, ``QUICK=1`` for a short run) or::

    PYTHONPATH=python:tests .venv/bin/python benchmarks/s3_take.py \\
        --lancedb-python .venv-bench/bin/python [--rows 100000] [--quick]

An epoch of shuffled takes over the train split of ``vectors`` (the rows of
``benchmarks/data.py``: ``id`` int64, ``label`` int32, ``vec`` 512 float32, 2,060 bytes a
row; its first ``--rows`` rows, the same bytes at any scale): the train split is 80% of
the rows drawn at random from a fixed seed, in a shuffled order, cut into takes of
``--batch`` (256) offsets; every system takes the same offsets in the same order with
``table.take_offsets(offsets).to_arrow()`` (the ``id`` of every row returned is checked).
Cells:

- **riffledb local**: the table in a local directory (in the page cache: just written);
- **riffledb S3 cold**: ``riffledb.connect("s3://...", storage_options={..., "cache_dir":
  <a fresh empty directory>, "cache_size": ...})``, the first pass;
- **riffledb S3 warm**: a second pass over the same offsets in a new process with the
  same ``cache_dir``: reads from the local cache;
- **LanceDB** (0.40, from ``--lancedb-python``, make bench's virtualenv) on the same
  server and bucket, a fresh process (nothing cached) per pass. At ~0.6 s a take on moto,
  a pass stops taking once its takes have lasted ``--peer-budget`` seconds (60) and its
  rate so far counts (LanceDB caches no data: its rate is flat over an epoch);
- **riffledb S3, no cache** (``--cells ...,nocache``, not in the default set): an s3://
  connection without the cache options, on a riffledb from before the cache (its reads
  fetch whole record batches on first use). Skipped on a riffledb with ``io_stats``,
  which caches without the options too, in ``$RIFFLEDB_CACHE_DIR`` (each child process
  here gets a fresh empty one in the run's temp directory: nothing lands in ``~/.cache``,
  and no pass finds another's cache).

Every pass runs in a fresh process (imports, connect and ``open_table`` untimed, the open
reported apart), so a cold pass starts with nothing in memory. The S3 server is moto
(``tests/harness/s3_server.py``: a Python server in this process, one request at a time,
signatures checked), so the S3 figures measure moto's cost per request (~3 ms here) as
much as the client's: requests per take is the figure that carries over to real S3. moto
5.2 reads a whole object for every ranged GET; this script makes it read the range alone
(:func:`serve_ranges_in_place`), or the cost of a request would grow with the size of the
file it reads from. Requests and bytes per take are counted twice: by the client
(``riffledb.io_stats()``: ranged GETs of table data) and by the server (every request it
handled during the timed pass, and the bytes of its GET replies). The riffledb S3 cold
and warm cells need the cache options and ``riffledb.io_stats``; a riffledb without them
skips the two cells and says so.

Each cell runs ``--repeats`` passes (rounds visit the cells in rotated order, a cold pass
always followed by its warm pass); figures are the median [min-max] of rows/s. Results: a
Markdown table on stdout and ``benchmarks/results/s3-take-<rows>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "python"))
sys.path.insert(2, str(REPO / "tests"))

import data  # noqa: E402
from common import DIM, LABELS, SEED, git_revision, machine  # noqa: E402

TABLE = "vectors"
ROW_BYTES = 8 + 4 + 4 * DIM
TRAIN = 0.8
CELLS = ("local", "cold", "warm", "lancedb", "nocache")
LABEL = {
    "local": "riffledb, local directory",
    "cold": "riffledb S3, cold cache",
    "warm": "riffledb S3, warm cache",
    "lancedb": "LanceDB S3",
    "nocache": "riffledb S3, no cache options",
}


# -- the data and the offsets ------------------------------------------------------------


def vector_batches(rows: int):
    """The first ``rows`` rows of data.py's ``vectors`` as record batches: the same
    chunk seeds and draws as ``data._generate_npy``, generated on the fly (a last
    partial chunk is drawn whole and cut, so the rows are those of any larger scale)."""
    chunk = data.CHUNK[TABLE]
    schema = data.schema(TABLE)
    for c, start in enumerate(range(0, rows, chunk)):
        stop = min(start + chunk, rows)
        rng = data._rng(TABLE, c)
        label = rng.integers(0, LABELS, chunk, dtype=np.int32)[: stop - start]
        vec = rng.standard_normal((chunk, DIM), dtype=np.float32)[: stop - start]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(start, stop, dtype=np.int64)),
                pa.array(label),
                pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), DIM),
            ],
            schema=schema,
        )


def train_offsets(rows: int) -> np.ndarray:
    """The shuffled train split: 80% of the offsets, drawn and ordered from SEED."""
    return np.random.default_rng(SEED).permutation(rows)[: int(rows * TRAIN)]


# -- the child process: loads a table, or runs one timed pass ----------------------------


def child(spec: dict) -> None:
    system = spec["system"]
    if system == "lancedb":
        import lancedb

        def connect(uri, options):
            return lancedb.connect(uri, storage_options=options)

        version = lancedb.__version__
        stats = None
    else:
        import riffledb

        def connect(uri, options):
            if options:
                return riffledb.connect(uri, storage_options=options)
            return riffledb.connect(uri)

        version = git_revision()
        stats = getattr(riffledb, "io_stats", None)
        try:
            stats = stats if stats is not None and "requests" in stats() else None
        except Exception:  # a tree half-way through adding it (no native counters)
            stats = None

    if spec["mode"] == "load":
        out = {"version": version, "io_stats": stats is not None, "seconds": {}}
        for uri, options in spec["targets"]:
            reader = pa.RecordBatchReader.from_batches(
                data.schema(TABLE), vector_batches(spec["rows"])
            )
            t0 = time.perf_counter()
            connect(uri, options).create_table(TABLE, reader, mode="overwrite")
            out["seconds"][uri] = time.perf_counter() - t0
        print("RESULT " + json.dumps(out), flush=True)
        return

    offsets = np.load(spec["offsets"])
    batch = spec["batch"]
    batches = [offsets[i : i + batch] for i in range(0, len(offsets), batch)]
    # What each system's take_offsets is handed, made before the clock starts.
    args = [b.tolist() for b in batches] if system == "lancedb" else batches
    t0 = time.perf_counter()
    table = connect(spec["uri"], spec["options"]).open_table(TABLE)
    open_s = time.perf_counter() - t0
    # What the open fetched (reported apart), then zero: the pass counts its takes alone.
    opened = stats(reset=True) if stats is not None else None
    print("READY", flush=True)
    sys.stdin.readline()

    times = []
    wrong = 0
    budget = spec.get("budget")
    for b, arg in zip(batches, args, strict=True):
        if budget is not None and sum(times) >= budget:
            break  # a slow peer's pass: the takes so far
        start = time.perf_counter()
        out = table.take_offsets(arg).to_arrow()
        times.append(time.perf_counter() - start)
        ids = out.column("id").to_numpy()
        if len(ids) != len(b) or not np.array_equal(np.sort(ids), np.sort(b)):
            wrong += 1
    io = stats() if stats is not None else None
    result = {
        "version": version,
        "open_s": open_s,
        "takes": len(times),
        "epoch_takes": len(batches),
        "rows": int(sum(len(b) for b in batches[: len(times)])),
        "seconds": sum(times),
        "take_ms": [1000 * t for t in times],
        "wrong_takes": wrong,
        "io_stats": {k: io[k] for k in ("requests", "bytes")} if io else None,
        "io_stats_open": {k: opened[k] for k in ("requests", "bytes")} if io else None,
    }
    print("RESULT " + json.dumps(result), flush=True)


# -- the driver -------------------------------------------------------------------------


def serve_ranges_in_place() -> None:
    """Makes moto serve a ranged GET by reading the range alone. moto 5.2 reads the
    whole object (``FakeKey.value``) for every GET and slices the range out of it, so a
    ranged GET of a 2 KB row from a 100 MB file reads 100 MB (~80 ms here) and the
    benchmark would measure object sizes. During a GET with a ``Range`` header the key's
    ``value`` is a stand-in whose slices read the spooled file; any reply that is not a
    range (a multi-range or unparsable header) gets the whole value, as before."""
    import moto.s3.models as models
    import moto.s3.responses as responses

    whole = models.FakeKey.value
    ranged = threading.local()

    class Stored:
        def __init__(self, key) -> None:
            self.key = key

        def __len__(self) -> int:
            return self.key.size

        def __getitem__(self, where: slice) -> bytes:
            start, stop, step = where.indices(self.key.size)
            assert step == 1
            with self.key.lock:
                self.key._value_buffer.seek(start)
                return self.key._value_buffer.read(max(0, stop - start))

    def value(key):
        return Stored(key) if getattr(ranged, "on", False) else whole.fget(key)

    key_response = responses.S3Response.key_response

    def key_response_by_range(self, request, full_url, headers):
        ranged.on = request.method == "GET" and bool(request.headers.get("range"))
        try:
            status, out_headers, body = key_response(self, request, full_url, headers)
        finally:
            ranged.on = False
        if isinstance(body, Stored):
            body = body[:]
        return status, out_headers, body

    models.FakeKey.value = property(value, whole.fset)
    responses.S3Response.key_response = key_response_by_range


def counting_server(S3Server, bucket: str):
    """The tests' S3Server, also counting the requests it handles and the bytes of its
    GET replies (on every request: the driver reads the counts around a timed pass)."""

    class CountingS3Server(S3Server):
        def __init__(self) -> None:
            # Before the server thread starts (in S3Server.__init__), which wraps the app.
            self.counts: collections.Counter = collections.Counter()
            self._counts_lock = threading.Lock()
            super().__init__()

        def _serialized(self, app):
            inner = super()._serialized(app)

            def counted(environ, start_response):
                body = inner(environ, start_response)
                method = environ.get("REQUEST_METHOD", "")
                with self._counts_lock:
                    self.counts["requests"] += 1
                    if method == "GET":
                        self.counts["get_bytes"] += sum(len(part) for part in body)
                        if environ.get("HTTP_RANGE"):
                            self.counts["ranged_gets"] += 1
                return body

            return counted

        def snapshot(self) -> collections.Counter:
            with self._counts_lock:
                return collections.Counter(self.counts)

        def stored_bytes(self, prefix: str) -> tuple[int, int]:
            objects = size = 0
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    objects += 1
                    size += item["Size"]
            return objects, size

    return CountingS3Server


class Child:
    """One fresh interpreter running :func:`child`; its stderr goes to a file."""

    def __init__(self, python: str, spec: dict, log_dir: Path, name: str):
        self.log = log_dir / f"{name}.stderr"
        # riffledb caches s3:// reads in a default directory under ~/.cache when no
        # cache_dir is given: each child gets an empty one in the run's temp directory.
        self.default_cache = log_dir / f"{name}.cache"
        env = dict(os.environ, RIFFLEDB_CACHE_DIR=str(self.default_cache))
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [python, __file__, "--child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        # The spec (with the server's keys) on stdin, not in the process list.
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> str:
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            self.proc.kill()
            self.proc.wait()
            tail = self.log.read_text()[-2000:]
            raise RuntimeError(f"child said {line!r}, expected {word}:\n{tail}")
        return line[len(word) :].strip()

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        out = json.loads(self.expect("RESULT "))
        self.proc.stdin.close()
        self.proc.wait(timeout=120)
        shutil.rmtree(self.default_cache, ignore_errors=True)
        return out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rotate(items: list, r: int) -> list:
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def median_range(values) -> str:
    values = list(values)
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}–{max(values):,.0f}]"


def summarize(runs: list[dict]) -> dict:
    pooled = sorted(ms for r in runs for ms in r["take_ms"])
    out = {
        "repeats": len(runs),
        "rows_per_s": [r["rows"] / r["seconds"] for r in runs],
        # A pass cut short by the peer budget counts as its rate over a whole epoch.
        "epoch_s": statistics.median(
            r["seconds"] * r["epoch_takes"] / r["takes"] for r in runs
        ),
        "takes": [r["takes"] for r in runs],
        "epoch_takes": runs[0]["epoch_takes"],
        "open_s": statistics.median(r["open_s"] for r in runs),
        "take_ms_p50": pooled[len(pooled) // 2],
        "take_ms_p99": pooled[min(len(pooled) - 1, int(len(pooled) * 0.99))],
        "wrong_takes": sum(r["wrong_takes"] for r in runs),
    }
    out["rows_per_s_median"] = statistics.median(out["rows_per_s"])
    if "server" in runs[0]:
        out["server_open_requests"] = statistics.median(
            r["server_open"].get("requests", 0) for r in runs
        )
        out["server_open_get_bytes"] = statistics.median(
            r["server_open"].get("get_bytes", 0) for r in runs
        )
        out["server_requests_per_take"] = statistics.median(
            r["server"]["requests"] / r["takes"] for r in runs
        )
        out["server_get_bytes_per_take"] = statistics.median(
            r["server"]["get_bytes"] / r["takes"] for r in runs
        )
    if runs[0].get("io_stats"):
        out["requests_per_take"] = statistics.median(
            r["io_stats"]["requests"] / r["takes"] for r in runs
        )
        out["bytes_per_take"] = statistics.median(
            r["io_stats"]["bytes"] / r["takes"] for r in runs
        )
        out["open_requests"] = statistics.median(
            r["io_stats_open"]["requests"] for r in runs
        )
        out["open_bytes"] = statistics.median(r["io_stats_open"]["bytes"] for r in runs)
    if "cache_bytes" in runs[0]:
        out["cache_bytes"] = statistics.median(r["cache_bytes"] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 100,000")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    parser.add_argument(
        "--quick", action="store_true", help="20,000 rows and 1 repeat (unless given)"
    )
    parser.add_argument(
        "--cells",
        default="local,cold,warm,lancedb",
        help=f"comma-separated, of {', '.join(CELLS)}",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=None,
        help="riffledb's cache_size in bytes (default: twice the table's bytes)",
    )
    parser.add_argument(
        "--lancedb-python",
        default=str(REPO / ".venv-bench" / "bin" / "python"),
        help="the interpreter with lancedb installed (make bench's virtualenv)",
    )
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=60.0,
        help="seconds after which a LanceDB pass stops taking (its rate so far counts; "
        "0: whole epochs)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(sys.stdin.readline()))
        return
    rows = args.rows or (20_000 if args.quick else 100_000)
    repeats = args.repeats or (1 if args.quick else 3)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if unknown := set(cells) - set(CELLS):
        parser.error(f"unknown cells: {', '.join(sorted(unknown))}")
    if "warm" in cells and "cold" not in cells:
        cells.append("cold")  # a warm pass reads the cache its cold pass filled
    cache_size = args.cache_size or 2 * rows * ROW_BYTES
    lancedb_python = args.lancedb_python
    if "lancedb" in cells and not Path(lancedb_python).exists():
        print(f"no {lancedb_python} (make bench's virtualenv): LanceDB not measured")
        cells.remove("lancedb")

    from harness.s3_server import BUCKET, S3Server

    # Killed (make's ^C, a timeout): still stop the server and remove the temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="riffledb-s3-take-"))
    offsets_path = tmp / "offsets.npy"
    np.save(offsets_path, train_offsets(rows))
    serve_ranges_in_place()
    server = counting_server(S3Server, BUCKET)()
    base_options = server.storage_options()
    lance_options = {
        "aws_access_key_id": base_options["aws_access_key_id"],
        "aws_secret_access_key": base_options["aws_secret_access_key"],
        "aws_endpoint": server.endpoint,
        "aws_region": base_options["region"],
        "allow_http": "true",
    }
    uris = {
        "local": str(tmp / "local"),
        "riffledb": f"s3://{BUCKET}/riffledb",
        "lancedb": f"s3://{BUCKET}/lancedb",
    }
    spec = {"rows": rows, "batch": args.batch, "offsets": str(offsets_path)}
    notes: list[str] = []
    runs: dict[str, list[dict]] = {c: [] for c in cells}
    loads: dict = {}
    versions: dict = {"riffledb": git_revision()}
    counter = 0

    def run_child(python: str, child_spec: dict, name: str) -> dict:
        nonlocal counter
        counter += 1
        start = server.snapshot()
        proc = Child(python, {**spec, **child_spec}, tmp, f"{counter:03d}-{name}")
        if child_spec["mode"] == "load":
            return proc.result()
        proc.expect("READY")
        before = server.snapshot()
        proc.go()
        result = proc.result()
        after = server.snapshot()
        result["server_open"] = dict(before - start)
        result["server"] = dict(after - before)
        return result

    try:
        riffle_targets = []
        if "local" in cells:
            riffle_targets.append((uris["local"], None))
        if {"cold", "nocache"} & set(cells):
            riffle_targets.append((uris["riffledb"], base_options))
        if riffle_targets:
            res = run_child(
                sys.executable,
                {"mode": "load", "system": "riffledb", "targets": riffle_targets},
                "load-riffledb",
            )
            loads["riffledb"] = res["seconds"]
            if not res["io_stats"] and "cold" in cells:
                notes.append(
                    "riffledb S3 cold and warm cache: not measured, this riffledb has "
                    "no working `io_stats()` (nor, then, the cache options)"
                )
                cells = [c for c in cells if c not in ("cold", "warm")]
            if res["io_stats"] and "nocache" in cells:
                notes.append(
                    "riffledb S3, no cache options: not measured, this riffledb caches "
                    "s3:// reads without them (in its default cache directory)"
                )
                cells.remove("nocache")
        if "lancedb" in cells:
            res = run_child(
                lancedb_python,
                {
                    "mode": "load",
                    "system": "lancedb",
                    "targets": [(uris["lancedb"], lance_options)],
                },
                "load-lancedb",
            )
            loads["lancedb"] = res["seconds"]
            versions["lancedb"] = res["version"]
        for what, seconds in loads.items():
            for uri, s in seconds.items():
                print(f"wrote {rows:,} rows to {uri} ({what}) in {s:.1f} s", flush=True)
        stored = {}
        for what in ("riffledb", "lancedb"):
            prefix = uris[what].split(f"{BUCKET}/", 1)[1] + "/"
            if server.stored_bytes(prefix)[0]:
                stored[what] = server.stored_bytes(prefix)

        units = [[c] for c in ("local", "lancedb", "nocache") if c in cells]
        if "cold" in cells:
            units.insert(1, [c for c in ("cold", "warm") if c in cells])
        for r in range(repeats):
            for unit in rotate(units, r):
                cache_dir = tmp / f"cache-{r}"
                for cell in unit:
                    if cell == "local":
                        python, system, uri, options = (
                            sys.executable,
                            "riffledb",
                            uris["local"],
                            None,
                        )
                    elif cell == "lancedb":
                        python, system = lancedb_python, "lancedb"
                        uri, options = uris["lancedb"], lance_options
                    else:
                        python, system, uri = sys.executable, "riffledb", uris["riffledb"]
                        options = dict(base_options)
                        if cell in ("cold", "warm"):
                            cache_dir.mkdir(exist_ok=True)
                            options["cache_dir"] = str(cache_dir)
                            options["cache_size"] = str(cache_size)
                    res = run_child(
                        python,
                        {
                            "mode": "take",
                            "system": system,
                            "uri": uri,
                            "options": options,
                            # riffledb's passes are whole epochs; a peer's may stop early.
                            "budget": (args.peer_budget or None)
                            if cell == "lancedb"
                            else None,
                        },
                        cell,
                    )
                    if cell in ("cold", "warm"):
                        res["cache_bytes"] = du(cache_dir)
                    if cell != "local":
                        res["server"].setdefault("requests", 0)
                        res["server"].setdefault("get_bytes", 0)
                    else:
                        del res["server"], res["server_open"]
                    runs[cell].append(res)
                    line = (
                        f"round {r + 1}/{repeats} {LABEL[cell]:32} "
                        f"{res['seconds']:7.2f} s {res['rows'] / res['seconds']:10,.0f} "
                        "rows/s"
                    )
                    if res.get("server"):
                        line += (
                            f", {res['server']['requests'] / res['takes']:.1f} req/take"
                        )
                    if res["takes"] < res["epoch_takes"]:
                        line += f", {res['takes']} of {res['epoch_takes']} takes (budget)"
                    if res["wrong_takes"]:
                        line += f", {res['wrong_takes']} WRONG takes"
                    print(line, flush=True)
                shutil.rmtree(cache_dir, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {c: summarize(runs[c]) for c in cells if runs.get(c)}
    if "lancedb" in versions:
        LABEL["lancedb"] = f"LanceDB {versions['lancedb']} S3"
    train = len(train_offsets(rows))
    takes = -(-train // args.batch)
    print(
        f"\n`vectors`: {rows:,} rows ({rows * ROW_BYTES / 1e6:,.0f} MB), train split "
        f"{train:,} rows, {takes:,} shuffled takes of {args.batch} rows as Arrow per "
        f"epoch; rows/s median [min–max] of {repeats} passes, each in a fresh process; "
        f"moto on loopback; riffledb cache_size {cache_size:,} bytes\n"
    )
    print(
        "| cell | rows/s | epoch s | take ms p50 / p99 | requests / take "
        "(client, server) | MB / take (client, server) | open: s, requests, MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")

    def fmt(value, scale=1.0, digits=1):
        return "–" if value is None else f"{value / scale:,.{digits}f}"

    for cell, s in summary.items():
        label = LABEL[cell]
        if min(s["takes"]) < s["epoch_takes"]:
            label += f" ({min(s['takes'])}–{max(s['takes'])} of {s['epoch_takes']} takes)"
        print(
            f"| {label} | {median_range(s['rows_per_s'])} | {s['epoch_s']:.2f} | "
            f"{s['take_ms_p50']:.2f} / {s['take_ms_p99']:.2f} | "
            f"{fmt(s.get('requests_per_take'))}, "
            f"{fmt(s.get('server_requests_per_take'))} | "
            f"{fmt(s.get('bytes_per_take'), 1e6, 2)}, "
            f"{fmt(s.get('server_get_bytes_per_take'), 1e6, 2)} | "
            f"{s['open_s']:.2f}, {fmt(s.get('server_open_requests'), 1, 0)}, "
            f"{fmt(s.get('server_open_get_bytes'), 1e6, 1)} |"
        )
    wrong = {c: s["wrong_takes"] for c, s in summary.items() if s["wrong_takes"]}
    if wrong:
        notes.append(f"takes that returned the wrong rows: {wrong}")

    def ratio(a, b):
        if a in summary and b in summary:
            return summary[a]["rows_per_s_median"] / summary[b]["rows_per_s_median"]
        return None

    targets = [
        ("riffledb S3 cold ÷ LanceDB S3", ratio("cold", "lancedb"), 2.0),
        ("riffledb S3 warm ÷ riffledb local", ratio("warm", "local"), 0.8),
    ]
    print("\n| target | measured | met |")
    print("|---|---:|---|")
    for what, value, goal in targets:
        met = "–" if value is None else ("yes" if value >= goal else "**no**")
        shown = "not measured" if value is None else f"{value:.2f}×"
        print(f"| {what} ≥ {goal}× | {shown} | {met} |")
    cold = summary.get("cold", {})
    print(
        f"| requests per {args.batch}-row take, riffledb S3 cold (reported) | "
        f"{fmt(cold.get('requests_per_take'))} | |"
    )
    for a, b in (("nocache", "lancedb"), ("local", "lancedb")):
        if (value := ratio(a, b)) is not None:
            print(f"\n{LABEL[a]} ÷ {LABEL[b]}: {value:.2f}×")
    if "cold" in summary and "cache_bytes" in summary["cold"]:
        print(
            f"\nriffledb's cache_dir after a cold pass: "
            f"{summary['cold']['cache_bytes'] / 1e6:,.1f} MB on disk"
        )
    if stored:
        print(
            "\nstored on the server: "
            + "; ".join(
                f"{what} {objects} objects, {size / 1e6:,.0f} MB"
                for what, (objects, size) in stored.items()
            )
        )
    for note in notes:
        print(f"\nnote: {note}")

    out = HERE / "results" / f"s3-take-{rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "rows": rows, "repeats": repeats, "cells": cells},
                "cache_size": cache_size,
                "machine": machine(),
                "versions": versions,
                "load_seconds": loads,
                "stored": stored,
                "summary": summary,
                "targets": {what: value for what, value, _ in targets},
                "notes": notes,
                "runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
