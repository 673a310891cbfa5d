"""Metadata that scales (issue #10, item 8): N one-row appends to one table.

``make bench-metadata`` (``APPENDS=N`` to change N) or::

    PYTHONPATH=python .venv/bin/python benchmarks/metadata.py --appends 10000

Creates a table of one row, then appends one row N times, timing every ``add``, and
reports:

- the median and p90 latency of the first 100 and of the last 100 ``add`` calls, and
  the ratio last / first (target <= 1.5), with the median of every block of appends;
- ``list_versions()`` at the end, in the writing process (median of ``--repeats``);
- opening the latest version from a fresh process: ``connect`` + ``open_table`` +
  ``count_rows``, then separately a first ``take`` and a ``list_versions()`` (median of
  ``--repeats`` fresh interpreters; the import of riffledb is not counted);
- the bytes under ``_versions/`` and every other metadata directory against the data
  (``data/``, ``_deletions/``).

Format version 1 rewrites every fragment into every manifest, so its metadata grows
quadratically (3,000 appends: ~500 MB): the run stops early once the metadata exceeds
``--max-metadata-gb`` (2 GB) and says so. Results: a table on stdout and
``benchmarks/results/metadata-<N>.json`` (git-ignored). Method and figures:
docs/benchmarks/README.md, "Metadata".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "python"))

import pyarrow as pa  # noqa: E402
from common import RESULTS, git_revision, machine  # noqa: E402

import riffledb  # noqa: E402

EDGE = 100  # the first and last appends compared
TARGET_RATIO = 1.5
TARGET_SECONDS = 0.1  # list_versions() and opening the latest version
TARGET_METADATA_BYTES = 50_000_000  # at 10,000 appends, before cleanup
DATA_DIRS = ("data", "_deletions")  # everything else in a table directory is metadata

# Run in a fresh interpreter: the figures of opening the latest version.
_OPEN_SCRIPT = """
import json, sys, time
import riffledb
start = time.perf_counter()
db = riffledb.connect(sys.argv[1])
table = db.open_table("t")
rows = table.count_rows()
opened = time.perf_counter()
first = table.take_offsets([rows - 1]).to_arrow()
taken = time.perf_counter()
versions = table.list_versions()
listed = time.perf_counter()
assert first.num_rows == 1
print(json.dumps({"rows": rows, "version": table.version, "versions": len(versions),
                  "open_s": opened - start, "first_take_s": taken - opened,
                  "list_versions_s": listed - taken}))
"""


def directory_sizes(table_dir: Path, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """{top-level entry: {"files", "bytes"}} under `table_dir`, leaving out `skip`."""
    sizes: dict[str, dict] = {}
    for entry in sorted(os.scandir(table_dir), key=lambda e: e.name):
        if entry.name in skip:
            continue
        files = size = 0
        if entry.is_dir(follow_symlinks=False):
            for root, _dirs, names in os.walk(entry.path):
                for name in names:
                    try:
                        size += os.stat(os.path.join(root, name)).st_size
                        files += 1
                    except FileNotFoundError:
                        pass
        else:
            files, size = 1, entry.stat().st_size
        sizes[entry.name] = {"files": files, "bytes": size}
    return sizes


def metadata_bytes(sizes: dict[str, dict]) -> int:
    return sum(v["bytes"] for k, v in sizes.items() if k not in DATA_DIRS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median_s": statistics.median(values),
        "p90_s": percentile(values, 0.9),
        "min_s": min(values),
        "max_s": max(values),
    }


def fresh_open(db_path: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", _OPEN_SCRIPT, str(db_path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(riffledb.__file__).parent.parent)},
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {"runs": runs}
    for key in ("open_s", "first_take_s", "list_versions_s"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


def fmt_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def run(args) -> dict:
    db_path = (
        Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="riffledb-md-"))
    )
    table_dir = db_path / "t.riffle"
    if table_dir.exists():
        raise SystemExit(f"{table_dir} exists: give a fresh --dir")
    limit = int(args.max_metadata_gb * 1e9)
    result: dict = {
        "benchmark": "metadata",
        "appends_requested": args.appends,
        "git": git_revision(),
        "riffledb": getattr(riffledb, "__version__", "unknown"),
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    db = riffledb.connect(db_path)
    table = db.create_table(
        "t", pa.table({"id": pa.array([0], pa.int64()), "x": pa.array([0.0])})
    )
    times: list[float] = []
    stopped = None
    started = time.perf_counter()
    for i in range(1, args.appends + 1):
        row = pa.table({"id": pa.array([i], pa.int64()), "x": pa.array([i * 0.5])})
        t0 = time.perf_counter()
        table.add(row)
        times.append(time.perf_counter() - t0)
        if i % args.check_every == 0 or i == args.appends:
            md = metadata_bytes(directory_sizes(table_dir, skip=DATA_DIRS))
            elapsed = time.perf_counter() - started
            print(
                f"  {i:>6} appends, {elapsed:7.1f} s, last add {fmt_s(times[-1])}, "
                f"metadata {fmt_bytes(md)}",
                file=sys.stderr,
                flush=True,
            )
            if md > limit:
                stopped = (
                    f"metadata {fmt_bytes(md)} > {fmt_bytes(limit)} after {i} appends"
                )
                break
    result["append_seconds"] = time.perf_counter() - started
    result["appends_done"] = len(times)
    result["stopped_early"] = stopped
    result["version"] = table.version
    result["first"] = latency(times[:EDGE])
    result["last"] = latency(times[-EDGE:])
    result["ratio_median"] = result["last"]["median_s"] / result["first"]["median_s"]
    result["ratio_p90"] = result["last"]["p90_s"] / result["first"]["p90_s"]
    block = max(EDGE, len(times) // 20)
    result["blocks"] = [
        {"from": k + 1, "to": k + len(chunk), "median_s": statistics.median(chunk)}
        for k in range(0, len(times), block)
        if (chunk := times[k : k + block])
    ]

    listing = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        versions = table.list_versions()
        listing.append(time.perf_counter() - t0)
    result["list_versions"] = {
        "versions": len(versions),
        "median_s": statistics.median(listing),
        "runs_s": listing,
    }
    result["fresh_process"] = fresh_open(db_path, args.repeats)
    sizes = directory_sizes(table_dir)
    result["sizes"] = sizes
    result["metadata_bytes"] = metadata_bytes(sizes)
    result["data_bytes"] = sum(sizes.get(d, {"bytes": 0})["bytes"] for d in DATA_DIRS)
    result["loadavg_end"] = os.getloadavg()
    if args.dir is None and not args.keep:
        shutil.rmtree(db_path)
    else:
        result["dir"] = str(db_path)
    return result


def report(r: dict) -> str:
    first, last = r["first"], r["last"]
    fresh = r["fresh_process"]
    lines = [
        f"metadata benchmark: {r['appends_done']:,} one-row appends to one table "
        f"(riffledb {r['git']}, load average {r['loadavg_start'][0]:.1f} at start, "
        f"{r['loadavg_end'][0]:.1f} at end)",
    ]
    if r["stopped_early"]:
        lines.append(f"STOPPED EARLY: {r['stopped_early']}")
    rows = [
        (
            "add, first 100: median / p90",
            f"{fmt_s(first['median_s'])} / {fmt_s(first['p90_s'])}",
            "",
        ),
        (
            "add, last 100: median / p90",
            f"{fmt_s(last['median_s'])} / {fmt_s(last['p90_s'])}",
            "",
        ),
        (
            "last / first: median, p90",
            f"{r['ratio_median']:.2f}, {r['ratio_p90']:.2f}",
            f"<= {TARGET_RATIO}",
        ),
        (
            "list_versions(), writer process",
            fmt_s(r["list_versions"]["median_s"]),
            f"< {fmt_s(TARGET_SECONDS)}",
        ),
        (
            "fresh process: connect + open_table + count_rows",
            fmt_s(fresh["open_s"]),
            f"< {fmt_s(TARGET_SECONDS)}",
        ),
        ("fresh process: first take (1 row)", fmt_s(fresh["first_take_s"]), ""),
        (
            "fresh process: list_versions()",
            fmt_s(fresh["list_versions_s"]),
            f"< {fmt_s(TARGET_SECONDS)}",
        ),
        (
            "metadata bytes",
            fmt_bytes(r["metadata_bytes"]),
            f"< {fmt_bytes(TARGET_METADATA_BYTES)} at 10,000",
        ),
        ("data bytes", fmt_bytes(r["data_bytes"]), ""),
        ("all appends", fmt_s(r["append_seconds"]), ""),
    ]
    for name, size in r["sizes"].items():
        rows.append(
            (f"  {name}/", f"{size['files']:,} files, {fmt_bytes(size['bytes'])}", "")
        )
    width = max(len(a) for a, _, _ in rows)
    vwidth = max(len(b) for _, b, _ in rows)
    lines += [f"{a.ljust(width)}  {b.rjust(vwidth)}  {c}".rstrip() for a, b, c in rows]
    lines.append(
        "add median by block: "
        + ", ".join(f"{b['to']:,}: {fmt_s(b['median_s'])}" for b in r["blocks"])
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=10_000)
    parser.add_argument("--max-metadata-gb", type=float, default=2.0)
    parser.add_argument("--check-every", type=int, default=100, help="appends")
    parser.add_argument("--repeats", type=int, default=3, help="of the end figures")
    parser.add_argument("--dir", help="database directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary one")
    parser.add_argument("--out", help="JSON path (default: results/metadata-<N>.json)")
    args = parser.parse_args(argv)
    if args.appends < 2 * EDGE:
        parser.error(f"--appends must be at least {2 * EDGE}")
    result = run(args)
    print(report(result))
    out = Path(args.out) if args.out else RESULTS / f"metadata-{args.appends}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
