"""Single-bit flips in a table's files (issue #10, items 3 and 10): every read of a
damaged copy returns the original values or raises a riffledb error, never crashes or
hangs the process.

Each flip damages its own copy of a table with four versions (create, append, delete,
append): one random bit of one random file, a manifest, a fragment or a deletion file
(whatever files the table's format writes, by their directory). A child interpreter then
reads every version of the copy (scan and take) and compares with the original values;
a crash or a hang is charged to the flip it was reading. Flips go to the child in
batches, and a new child takes over after a crash.

Each flip is classified by the worst thing one of its reads did:

- crash / hang: the child died of a signal, or made no progress for JOB_TIMEOUT;
- foreign: an exception that is not a riffledb error;
- silent: a read returned values that differ from the original, and no check caught
  it (with `Table.verify()`, a flip that verify reports is not silent);
- unnamed: a riffledb error that does not name the damaged file;
- detected: a riffledb error naming the damaged file (or verify reporting it);
- harmless: every read returned the original values (padding, unused bytes).

Crashes, hangs and foreign errors fail the test. Silent wrong values are expected while
fragments carry no checksum: they are counted, and fail the test once `Table.verify()`
exists, which is expected to raise a riffledb error naming the file, or to return the
problems it found (empty when the table is intact).

`make soak` runs batches for minutes (harness.soak) and prints the counts.
"""

from __future__ import annotations

import json
import random
import shutil
import textwrap

import pyarrow as pa
import pyarrow.ipc
from harness.hang import run_python
from harness.soak import SoakLoop

import riffledb
from riffledb.table import Table

FLIPS_PER_BATCH = 32
JOB_TIMEOUT = 60.0  # seconds one flip's reads may take before they count as a hang
SEVERITY = ("crash", "hang", "foreign", "silent", "unnamed", "detected", "harmless")

_CHILD = textwrap.dedent(
    """
    import faulthandler, json, os, sys
    import pyarrow as pa
    import pyarrow.ipc
    import riffledb
    from riffledb.errors import RiffledbError

    with open(sys.argv[1]) as f:
        plan = json.load(f)
    expected = {}
    for v, path in plan["expected"].items():
        with pa.memory_map(path) as source:
            expected[int(v)] = pa.ipc.open_file(source).read_all()

    def error(e, name):
        kind = "named" if name in str(e) else "unnamed"
        if not isinstance(e, RiffledbError):
            kind = "foreign"
        return {"error": kind, "type": type(e).__name__, "message": str(e)[:300]}

    def verify(table, name):
        check = getattr(table, "verify", None)
        if check is None:
            return None
        try:
            problems = check()
        except Exception as e:
            return error(e, name)
        if not problems:
            return {"clean": True}
        return {"error": "named" if name in str(problems) else "unnamed",
                "message": str(problems)[:300]}

    def read(table, version, name):
        try:
            table.checkout(version)
            got = table.to_arrow()
            want = expected[version]
            if not got.equals(want, check_metadata=True):
                return {"different": "scan"}
            n = want.num_rows
            offsets = list(range(0, n, max(1, n // 16)))
            taken = table.take_offsets(offsets).to_arrow()
            if not taken.equals(want.take(offsets), check_metadata=True):
                return {"different": "take"}
            return {"same": True}
        except Exception as e:
            return error(e, name)

    for job in plan["jobs"]:
        print(json.dumps({"start": job["n"]}), flush=True)
        # A job that makes no progress exits with code 1 and every thread's stack.
        faulthandler.dump_traceback_later(plan["job_timeout"], exit=True)
        name = os.path.basename(job["file"])
        result = {"n": job["n"]}
        try:
            table = riffledb.connect(job["db"]).open_table("t")
        except Exception as e:
            result["open"] = error(e, name)
        else:
            result["verify"] = verify(table, name)
            result["reads"] = [read(table, v, name) for v in plan["versions"]]
            del table
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps(result), flush=True)
    """
)


def _make_table(path) -> int:
    """Four versions: create, append, delete (a deletion file), append; with nulls and
    strings so that flips land in offsets and validity bitmaps too. Returns the latest
    version."""

    def rows(start: int, n: int) -> pa.Table:
        ids = range(start, start + n)
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "value": pa.array([i * 0.5 for i in ids], pa.float64()),
                "name": pa.array([f"row-{i}" * (i % 3 + 1) for i in ids], pa.string()),
                "maybe": pa.array([None if i % 5 == 0 else i for i in ids], pa.int32()),
            }
        )

    table = riffledb.connect(path).create_table("t", rows(0, 300))
    table.add(rows(300, 200))
    table.delete("id % 7 = 0")
    table.add(rows(500, 100))
    return table.version


def _expected(db_path, out_dir, versions) -> dict[int, str]:
    """The original values of every version, as Arrow IPC files for the child."""
    table = riffledb.connect(db_path).open_table("t")
    out_dir.mkdir()
    paths = {}
    for v in versions:
        table.checkout(v)
        paths[v] = str(out_dir / f"{v}.arrow")
        data = table.to_arrow()
        with pa.ipc.new_file(paths[v], data.schema) as writer:
            writer.write_table(data)
    return paths


def _files_by_kind(table_dir) -> dict[str, list[str]]:
    """The table's files, by the directory they are in (`data`, `_versions`, ...; a file
    at the top is its own kind), as paths relative to the table directory."""
    kinds: dict[str, list[str]] = {}
    for path in sorted(p for p in table_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(table_dir)
        kind = relative.parts[0] if len(relative.parts) > 1 else relative.name
        kinds.setdefault(kind, []).append(str(relative))
    return kinds


def _flip(path, rng: random.Random) -> tuple[int, int]:
    data = bytearray(path.read_bytes())
    bit = rng.randrange(8 * len(data))
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))
    return bit // 8, bit % 8


def _classify(result: dict) -> str:
    """The worst outcome of one flip's reads (SEVERITY order)."""
    if "open" in result:
        outcomes = [result["open"]]
    else:
        outcomes = list(result["reads"])
    found = set()
    for outcome in outcomes:
        if "different" in outcome:
            found.add("silent")
        elif "error" in outcome:
            found.add({"named": "detected"}.get(outcome["error"], outcome["error"]))
        else:
            found.add("harmless")
    verify = result.get("verify")
    if verify is not None and "error" in verify:
        if verify["error"] == "foreign":
            found.add("foreign")
        elif "silent" in found:
            # verify reported the damage the reads did not.
            found.discard("silent")
            found.add("detected" if verify["error"] == "named" else "unnamed")
    return min(found, key=SEVERITY.index)


def _run_batch(plan_path, plan: dict) -> list[tuple[dict, str, str]]:
    """(job, outcome, detail) for every job of `plan`, restarting the child after a
    crash or a hang."""
    outcomes = []
    jobs = list(plan["jobs"])
    while jobs:
        with open(plan_path, "w") as f:
            json.dump({**plan, "jobs": jobs}, f)
        proc = run_python(_CHILD, str(plan_path), timeout=JOB_TIMEOUT * (len(jobs) + 2))
        started = None
        by_n = {job["n"]: job for job in jobs}
        done = set()
        for line in proc.stdout.splitlines():
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut short by a crash
            if "start" in message:
                started = message["start"]
            else:
                outcomes.append((by_n[message["n"]], _classify(message), line))
                done.add(message["n"])
        if proc.returncode == 0 and len(done) == len(jobs):
            break
        if started is None or started in done:
            raise AssertionError(
                f"the reading child failed outside a job: exit {proc.returncode}\n"
                f"{proc.stderr[-3000:]}"
            )
        # A signal is a crash; exit code 1 is the child's watchdog (harness.hang), or an
        # exception that escaped the job's own handlers.
        if proc.returncode < 0:
            what = "crash"
        elif "Traceback (most recent call last)" in proc.stderr:
            what = "foreign"
        elif "Timeout" in proc.stderr:
            what = "hang"
        else:
            what = "crash"  # died some other way: exit() from native code
        detail = f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
        outcomes.append((by_n[started], what, detail))
        position = [job["n"] for job in jobs].index(started)
        jobs = jobs[position + 1 :]
    return outcomes


def test_bit_flips_never_crash_and_are_counted(tmp_path):
    pristine = tmp_path / "pristine"
    latest = _make_table(pristine)
    versions = list(range(1, latest + 1))
    expected = _expected(pristine, tmp_path / "expected", versions)
    table_dir = pristine / "t.riffle"
    kinds = _files_by_kind(table_dir)
    assert {"data", "_versions", "_deletions"} <= set(kinds), kinds
    verify_exists = hasattr(Table, "verify")
    rng = random.Random(20261203)
    examples: dict[str, list[str]] = {}
    n = 0
    with SoakLoop("bit flips", rounds=1) as loop:
        for round_ in loop:
            work = tmp_path / f"round{round_}"
            work.mkdir()
            jobs = []
            for _ in range(FLIPS_PER_BATCH):
                kind = rng.choice(sorted(kinds))
                relative = rng.choice(kinds[kind])
                db = work / f"flip{n}"
                shutil.copytree(pristine, db)
                flipped = db / "t.riffle" / relative
                at, bit = _flip(flipped, rng)
                jobs.append(
                    {
                        "n": n,
                        "db": str(db),
                        "file": str(flipped),
                        "kind": kind,
                        "byte": at,
                        "bit": bit,
                    }
                )
                n += 1
            plan = {
                "jobs": jobs,
                "versions": versions,
                "expected": expected,
                "job_timeout": JOB_TIMEOUT,
            }
            keep = False  # the copies of a batch with a failure, to reproduce it
            for job, outcome, detail in _run_batch(work / "plan.json", plan):
                loop.add("flips")
                loop.add(f"flips in {job['kind']}")
                loop.add("versions_read", len(versions))
                loop.add(outcome)
                if outcome in ("silent", "unnamed", "foreign", "crash", "hang"):
                    loop.add(f"{outcome} in {job['kind']}")
                    where = f"{job['file']} byte {job['byte']} bit {job['bit']}"
                    if len(examples.setdefault(outcome, [])) < 5:
                        examples[outcome].append(f"{where}: {detail}")
                    keep = keep or outcome in ("foreign", "crash", "hang")
            if not keep:
                shutil.rmtree(work)
        failures = {
            k: examples[k][:3] for k in ("crash", "hang", "foreign") if k in examples
        }
        assert not failures, json.dumps(failures, indent=1)
        if verify_exists:
            assert "silent" not in examples, examples["silent"][:5]
