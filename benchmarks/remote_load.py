"""Load test of ``riffledb serve`` (issue #13, item 6): N client processes on loopback.

    PYTHONPATH=python .venv/bin/python benchmarks/remote_load.py \\
        [--clients 4] [--seconds 20] [--rows 20000] [--append-share 0.2] [--json PATH]

Starts ``riffledb serve`` (``python -m riffledb.cli serve``) on a fresh directory with a
table of ``--rows`` rows (``id`` int64 = its offset, ``val`` = 7 * id), then runs
``--clients`` processes (multiprocessing, spawn: each builds its own
``riffledb.connect("db://...")``) for ``--seconds``. Each picks, per request, an append
(share ``--append-share``) of ``--append-rows`` rows with ids of its own (``(client + 1)
* 10**12 + sequence``: unique across the run) or a take of ``--take`` (256) random offsets
below ``--rows`` (rows whose offset never changes: appends go after them), checked on
arrival (``id == offset`` and ``val == 7 * id``, in the order asked for).

Reported: requests/s and rows/s per operation and in total, p50/p99 latency per
operation, errors. At the end the table is scanned once: every acknowledged append must
be there exactly once, no id twice, nothing else beside the appends that failed (their
rows may or may not be there: the client does not retry a write, spec 1.5); ``lost``,
``duplicated``, ``wrong_takes`` and ``errors`` must all be 0 (exit code 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
TABLE = "load"
ID_BASE = 10**12


def start_server(
    path: str, threads: int, cpus: set[int] | None = None, args: Sequence[str] = ()
) -> tuple[subprocess.Popen, str]:
    """``riffledb serve path [args]`` on a free loopback port, with its threads on
    ``cpus`` (all when None); (process, url)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "riffledb.cli", "serve", path, "--port", "0"]
        + ["--threads", str(threads), *args],
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"riffledb serve did not start: {line!r} {proc.stderr.read()}")
    return proc, line.strip().rsplit(" ", 1)[1]


def stop_server(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return -1
    return proc.returncode


def rows(ids: np.ndarray) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.int64()), "val": pa.array(ids * 7, pa.int64())}
    )


def client(index: int, url: str, args: dict, start_at: float, queue) -> None:
    import riffledb

    db = riffledb.connect(
        "db://load",
        api_key="",
        host_override=url,
        client_config={"retry_config": {"retries": 0}},
    )
    table = db.open_table(TABLE)
    rng = np.random.default_rng(1000 + index)
    out = {
        "take_ms": [],
        "append_ms": [],
        "acked": [],
        "failed": [],
        "errors": {},
        "wrong_takes": 0,
    }
    seq = 0
    time.sleep(max(0.0, start_at - time.time()))  # a common start, not synchronisation
    deadline = start_at + args["seconds"]
    while time.time() < deadline:
        if rng.random() < args["append_share"]:
            first = (index + 1) * ID_BASE + seq
            seq += args["append_rows"]
            ids = np.arange(first, first + args["append_rows"], dtype=np.int64)
            t0 = time.perf_counter()
            try:
                table.add(rows(ids))
            except Exception as e:  # noqa: BLE001 - counted and reported
                out["failed"].append([int(first), args["append_rows"]])
                out["errors"][type(e).__name__] = (
                    out["errors"].get(type(e).__name__, 0) + 1
                )
                continue
            out["append_ms"].append((time.perf_counter() - t0) * 1e3)
            out["acked"].append([int(first), args["append_rows"]])
        else:
            offsets = rng.integers(0, args["rows"], args["take"]).tolist()
            t0 = time.perf_counter()
            try:
                got = table.take_offsets(offsets).to_arrow()
            except Exception as e:  # noqa: BLE001 - counted and reported
                out["errors"][type(e).__name__] = (
                    out["errors"].get(type(e).__name__, 0) + 1
                )
                continue
            out["take_ms"].append((time.perf_counter() - t0) * 1e3)
            ids = got["id"].to_numpy()
            if not (
                np.array_equal(ids, np.asarray(offsets))
                and np.array_equal(got["val"].to_numpy(), ids * 7)
            ):
                out["wrong_takes"] += 1
    queue.put(out)


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def run(args) -> dict:
    import riffledb

    with tempfile.TemporaryDirectory(prefix="riffledb-load-") as tmp:
        path = os.path.join(tmp, "db")
        riffledb.connect(path).create_table(TABLE, rows(np.arange(args.rows)))
        proc, url = start_server(path, args.threads)
        try:
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            params = {
                "seconds": args.seconds,
                "rows": args.rows,
                "take": args.take,
                "append_rows": args.append_rows,
                "append_share": args.append_share,
            }
            start_at = time.time() + 2.0 + 0.5 * args.clients  # time to import
            procs = [
                ctx.Process(target=client, args=(i, url, params, start_at, queue))
                for i in range(args.clients)
            ]
            for p in procs:
                p.start()
            results = []
            for _ in procs:
                results.append(queue.get(timeout=args.seconds + 120))
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
                    raise RuntimeError("a load client did not exit")
            elapsed = args.seconds
            final = riffledb.connect(
                "db://load", api_key="", host_override=url
            ).open_table(TABLE)
            ids = final.search().select(["id"]).to_arrow()["id"].to_numpy()
        finally:
            server_exit = stop_server(proc)

    appended = ids[ids >= ID_BASE]
    unique, counts = np.unique(appended, return_counts=True)
    present = set(unique.tolist())
    acked = {
        i for r in results for first, n in r["acked"] for i in range(first, first + n)
    }
    maybe = {
        i for r in results for first, n in r["failed"] for i in range(first, first + n)
    }
    takes = [ms for r in results for ms in r["take_ms"]]
    appends = [ms for r in results for ms in r["append_ms"]]
    errors: dict[str, int] = {}
    for r in results:
        for name, n in r["errors"].items():
            errors[name] = errors.get(name, 0) + n
    report = {
        "clients": args.clients,
        "seconds": elapsed,
        "rows": args.rows,
        "take": args.take,
        "append_rows": args.append_rows,
        "server_threads": args.threads,
        "takes": len(takes),
        "appends": len(appends),
        "requests_per_s": round((len(takes) + len(appends)) / elapsed, 1),
        "take_requests_per_s": round(len(takes) / elapsed, 1),
        "take_rows_per_s": round(len(takes) * args.take / elapsed, 1),
        "append_requests_per_s": round(len(appends) / elapsed, 1),
        "append_rows_per_s": round(len(appends) * args.append_rows / elapsed, 1),
        "take_p50_ms": percentile(takes, 50),
        "take_p99_ms": percentile(takes, 99),
        "append_p50_ms": percentile(appends, 50),
        "append_p99_ms": percentile(appends, 99),
        "errors": errors,
        "wrong_takes": sum(r["wrong_takes"] for r in results),
        "lost": len(acked - present),
        "duplicated": int((counts > 1).sum()),
        "unexpected": len(present - acked - maybe),
        "initial_rows_intact": int((ids < ID_BASE).sum()) == args.rows,
        "server_exit": server_exit,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--take", type=int, default=256)
    parser.add_argument("--append-rows", type=int, default=8)
    parser.add_argument("--append-share", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=16, help="server threads")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    report = run(args)
    print(f"riffledb serve load: {args.clients} clients, {args.seconds:g} s, loopback")
    for op in ("take", "append"):
        print(
            f"  {op:6s} {report[f'{op}_requests_per_s']:8.1f} req/s "
            f"{report[f'{op}_rows_per_s']:10.1f} rows/s  "
            f"p50 {report[f'{op}_p50_ms']} ms  p99 {report[f'{op}_p99_ms']} ms"
        )
    print(
        f"  total {report['requests_per_s']} req/s; errors {report['errors'] or 0}; "
        f"wrong takes {report['wrong_takes']}; lost {report['lost']}; "
        f"duplicated {report['duplicated']}; unexpected {report['unexpected']}"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = (
        not report["errors"]
        and report["wrong_takes"] == 0
        and report["lost"] == 0
        and report["duplicated"] == 0
        and report["unexpected"] == 0
        and report["initial_rows_intact"]
        and report["server_exit"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
