"""`make soak`: the fault-injection, kill -9, drop-race and bit-flip loops of the test
suites and the fuzz targets, which `make test` runs briefly, run for minutes; then their
counts.

Each loop is an existing test whose rounds repeat while RIFFLEDB_SOAK_SECONDS lasts
(tests/harness/soak.py, cpp/src/riffledb/testing/soak.h); the tests append their counts
to the file RIFFLEDB_SOAK_REPORT names. The total time (--minutes, `SOAK_MINUTES`) is
shared among the loops by weight; each finishes the round it is in when its time is up.
A loop whose test fails, or that runs far past its time (a hang), fails the soak, and so
does any lost row, partial version, hang or crash in the counts.

    python scripts/soak.py --minutes 10 [--only kill,bitflips]

Run from the repository root after `make build` (the C++ loops use build/release).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "release")
# Counters that must stay 0 for the soak to pass.
MUST_BE_ZERO = (
    "lost_rows",
    "partial_versions",
    "lost_commits",
    "committed_but_failed",
    "unacknowledged_rows",
    "hangs",
    "crash",
    "hang",
    "foreign",
)
# The summary's columns: (heading, counters summed into it).
COLUMNS = (
    ("rounds", ("rounds",)),
    ("kills", ("kills",)),
    ("faults", ("faults",)),
    ("flips", ("flips",)),
    ("versions", ("versions_checked", "versions_read")),
    ("rows", ("rows_checked",)),
    ("inputs", ("fuzz_inputs",)),
    ("lost rows", ("lost_rows",)),
    ("partial", ("partial_versions",)),
    ("hangs", ("hangs", "hang")),
    ("crashes", ("crash",)),
    ("silent", ("silent",)),
)
# Past its share, a loop gets this long to finish its round before it counts as hung.
GRACE_SECONDS = 300


@dataclass
class Loop:
    key: str  # for --only
    weight: int
    command: list[str]
    parts: int = 1  # test instances that each get the loop's seconds / parts


LOOPS = (
    Loop(
        "faults",
        3,
        [
            os.path.join(BUILD, "cpp", "table_test"),
            "--gtest_filter=Faults/CommitFaultsTest.EveryOperationOfEveryCommit/*",
        ],
        parts=4,
    ),
    Loop(
        "kill",
        3,
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_concurrency.py::test_writer_killed_mid_append[11]",
        ],
    ),
    Loop(
        "drop-kill",
        1,
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_drop.py::test_drop_killed_at_random_points[1]",
        ],
    ),
    Loop(
        "drop-race",
        1,
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_drop.py::test_drop_racing_appenders_in_other_processes",
        ],
    ),
    Loop(
        "bitflips",
        2,
        [sys.executable, "-m", "pytest", "tests/test_bit_flips.py"],
    ),
    Loop(
        "fuzz",
        2,
        [sys.executable, os.path.join("scripts", "fuzz.py")],
    ),
)


def run_loop(loop: Loop, seconds: float, report: str) -> tuple[int, float, str]:
    """Runs one loop; (exit code, wall seconds, output tail). Exit code -1: hung."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    env["RIFFLEDB_SOAK_SECONDS"] = f"{seconds / loop.parts:.1f}"
    env["RIFFLEDB_SOAK_REPORT"] = report
    command = list(loop.command)
    if command[1:3] == ["-m", "pytest"]:
        command += ["-x", "-q", "-p", "no:cacheprovider"]
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: a hang is killed with its children
    )
    try:
        output, _ = proc.communicate(timeout=seconds + GRACE_SECONDS)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = -1
    return code, time.monotonic() - start, output[-6000:]


def summarize(lines: list[dict]) -> Counter:
    total: Counter = Counter()
    for line in lines:
        for key, value in line.items():
            if isinstance(value, int):
                total[key] += value
    return total


def print_table(rows: list[tuple[str, Counter]], out) -> None:
    headings = ["loop"] + [h for h, _ in COLUMNS]
    table = [headings]
    for name, counts in rows:
        table.append([name] + [str(sum(counts[k] for k in keys)) for _, keys in COLUMNS])
    widths = [max(len(row[i]) for row in table) for i in range(len(headings))]
    for i, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells), file=out)
        if i == 0 or i == len(table) - 2:
            print("  ".join("-" * w for w in widths), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", default="", help=",".join(loop.key for loop in LOOPS))
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "build", "soak"), help="results directory"
    )
    args = parser.parse_args(argv)
    keys = [k for k in args.only.split(",") if k] or [loop.key for loop in LOOPS]
    unknown = set(keys) - {loop.key for loop in LOOPS}
    if unknown:
        parser.error(f"--only: unknown loops {sorted(unknown)}")
    loops = [loop for loop in LOOPS if loop.key in keys]
    budget = args.minutes * 60
    weights = sum(loop.weight for loop in loops)
    os.makedirs(args.out, exist_ok=True)

    results = []
    for loop in loops:
        seconds = budget * loop.weight / weights
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as report:
            print(f"soak: {loop.key} for {seconds:.0f} s ...", flush=True)
            code, wall, output = run_loop(loop, seconds, report.name)
            lines = [json.loads(line) for line in report if line.strip()]
        results.append(
            {"loop": loop.key, "exit": code, "seconds": round(wall, 1), "reports": lines}
        )
        status = "ok" if code == 0 else ("HUNG" if code == -1 else f"FAILED ({code})")
        print(f"soak: {loop.key}: {status} in {wall:.0f} s", flush=True)
        if code != 0:
            print(output, flush=True)

    rows = []
    for result in results:
        for line in result["reports"]:
            rows.append((line["loop"], summarize([line])))
        if not result["reports"]:
            rows.append((f"{result['loop']} (no report)", Counter()))
    everything = summarize([line for r in results for line in r["reports"]])
    everything["hangs"] += sum(r["exit"] == -1 for r in results)
    rows.append(("total", everything))
    print()
    print_table(rows, sys.stdout)
    print()
    for name, counts in rows[:-1]:
        shown = {k for _, keys in COLUMNS for k in keys}
        other = {k: v for k, v in sorted(counts.items()) if k not in shown}
        if other:
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in other.items()))

    failed = [r["loop"] for r in results if r["exit"] != 0]
    nonzero = {k: everything[k] for k in MUST_BE_ZERO if everything[k]}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = os.path.join(args.out, f"soak-{stamp}.json")
    with open(path, "w") as f:
        json.dump(
            {"minutes": args.minutes, "results": results, "total": everything},
            f,
            indent=1,
        )
    print(f"\nresults: {os.path.relpath(path, ROOT)}")
    if failed or nonzero:
        print(f"soak FAILED: loops {failed}, non-zero counts {nonzero}")
        return 1
    print("soak passed: no lost rows, partial versions, hangs or crashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
