"""Maintenance (issue #10, item 7): cleanup_old_versions and optimize.

Exact statistics; the files of remaining versions are never removed (every remaining
version is read in full afterwards); orphans of crashed writers go only after the grace
period; appends racing cleanup and optimize in another process lose nothing.
"""

import datetime
import multiprocessing as mp
import os
import pathlib
import pickle
import random
import signal
import time

import pyarrow as pa
import pytest
from harness.concurrency_scenarios import KILL_APPENDS, killable_appender_scenarios
from harness.concurrency_scenarios import ROWS as KILL_ROWS
from harness.hang import Child, run_in_child
from harness.maintenance_scenarios import (
    APPENDS,
    BASE,
    ROWS,
    racing_appender_scenarios,
    read_pickled_permutation,
)

import riffledb
from riffledb.errors import InvalidError, RiffledbTypeError
from riffledb.permutation import Permutation
from riffledb.table import CleanupStats, CompactionStats

JOIN_TIMEOUT = 60
ZERO = datetime.timedelta(0)
EIGHT_DAYS = 8 * 24 * 3600


def ids(start, stop):
    return pa.table({"id": pa.array(range(start, stop), pa.int64())})


def table_files(db_path: pathlib.Path, name: str = "t") -> dict[str, int]:
    """Files cleanup may remove (relative path -> bytes)."""
    root = db_path / f"{name}.riffle"
    files = {}
    for part in ("data", "_deletions", "_segments", "_versions"):
        for path in (root / part).glob("*") if (root / part).is_dir() else []:
            if part == "_versions" and not path.name.endswith(".tmp"):
                continue
            files[f"{part}/{path.name}"] = path.stat().st_size
    return files


def age(db_path: pathlib.Path, seconds: float, name: str = "t") -> None:
    """Moves the mtime of every file cleanup may remove `seconds` into the past."""
    root = db_path / f"{name}.riffle"
    then = time.time() - seconds
    for relative in table_files(db_path, name):
        os.utime(root / relative, (then, then))


def tick():
    """Lets the clock pass the last commit's millisecond (timedelta(0) keeps versions
    committed in the millisecond cleanup starts)."""
    time.sleep(0.01)


def read_every_version(table) -> dict[int, pa.Table]:
    out = {}
    for v in table.list_versions():
        assert "damaged" not in v
        table.checkout(v["version"])
        out[v["version"]] = table.to_arrow()
    table.checkout_latest()
    return out


def test_cleanup_exact_stats_and_remaining_versions_read(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 100))  # v1: F1
    t.add(ids(100, 150))  # v2: F1 F2
    t.delete("id < 10")  # v3: F1+D1 F2
    t.add(ids(150, 160), mode="overwrite")  # v4: F3
    t.add(ids(160, 170))  # v5: F3 F4
    before = read_every_version(t)
    files_before = table_files(tmp_path)
    assert len(files_before) == 5
    tick()

    stats = t.cleanup_old_versions(ZERO)
    files_after = table_files(tmp_path)
    gone = set(files_before) - set(files_after)
    assert len(gone) == 3  # F1, F2, D1: only removed versions used them
    assert stats == CleanupStats(
        bytes_removed=sum(files_before[f] for f in gone), old_versions=4, files_removed=3
    )
    assert [v["version"] for v in t.list_versions()] == [5]
    fresh = riffledb.connect(tmp_path).open_table("t")
    assert fresh.to_arrow().equals(before[5])
    assert fresh.to_arrow()["id"].to_pylist() == list(range(150, 170))
    message = (
        "Version 2 of table 't' was removed by cleanup_old_versions; versions: 5..5$"
    )
    with pytest.raises(InvalidError, match=message):
        fresh.checkout(2)
    with pytest.raises(InvalidError, match=message):
        db.open_table("t", version=2)
    # Again: nothing left to remove.
    assert t.cleanup_old_versions(ZERO) == CleanupStats()


def test_cleanup_default_keeps_recent_versions(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 10))
    t.add(ids(10, 20), mode="overwrite")
    assert t.cleanup_old_versions() == CleanupStats()  # 7 days by default
    assert len(t.list_versions()) == 2
    assert t.cleanup_old_versions(datetime.timedelta(hours=1)) == CleanupStats()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"older_than": 7}, RiffledbTypeError, "older_than must be a datetime.timedelta"),
        (
            {"older_than": datetime.timedelta(seconds=-1)},
            InvalidError,
            "older_than must not be negative",
        ),
        ({"delete_unverified": "yes"}, RiffledbTypeError, "delete_unverified must be a"),
        ({"progress": 3}, RiffledbTypeError, "progress must be callable"),
    ],
)
def test_cleanup_bad_arguments(tmp_path, kwargs, error, message):
    t = riffledb.connect(tmp_path).create_table("t", ids(0, 3))
    with pytest.raises(error, match=message):
        t.cleanup_old_versions(**kwargs)


def test_orphans_of_a_killed_writer_go_only_after_the_grace_period(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", schema=pa.schema([("id", pa.int64())]))
    kill_after = random.Random(5).randint(5, KILL_APPENDS - 50)
    done = mp.get_context("spawn").RawValue("i", 0)
    writer = Child(
        killable_appender_scenarios,
        str(tmp_path),
        done,
        what="writer to kill",
        timeout=JOIN_TIMEOUT,
    )
    deadline = time.monotonic() + JOIN_TIMEOUT
    while done.value < kill_after and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert writer.is_alive(), "the writer finished before it could be killed"
    writer.kill()
    assert writer.outcome().exitcode == -signal.SIGKILL
    # Orphans for sure: an uncommitted fragment file and an exclusive create's
    # temporary manifest.
    root = tmp_path / "t.riffle"
    (root / "data" / "0123456789abcdef0123456789abcdef.arrow").write_bytes(b"x" * 100)
    (root / "_versions" / ".00000000000000009999.json.0a1b.tmp").write_bytes(b"{}")

    t.checkout_latest()
    rows = t.count_rows()
    assert rows in (done.value * KILL_ROWS, (done.value + 1) * KILL_ROWS)
    expected = t.to_arrow()
    assert expected["id"].to_pylist() == list(range(rows))
    data_files = {f for f in table_files(tmp_path) if f.startswith("data/")}
    tick()
    first = t.cleanup_old_versions(ZERO)
    assert first.old_versions == len(expected) // KILL_ROWS  # all but the newest
    # Only files of removed versions went (format 2: manifest list segments the newest
    # version rewrote); every orphan is younger than 7 days and stays.
    after_first = table_files(tmp_path)
    assert data_files <= set(after_first)
    assert "_versions/.00000000000000009999.json.0a1b.tmp" in after_first
    # A week later (every file aged, referenced or not): the orphans go, nothing else.
    orphans_and_live = table_files(tmp_path)
    age(tmp_path, EIGHT_DAYS)
    second = t.cleanup_old_versions(ZERO)
    assert second.old_versions == 0
    assert second.files_removed >= 2
    remaining = table_files(tmp_path)
    assert second.bytes_removed == sum(
        size for f, size in orphans_and_live.items() if f not in remaining
    )
    assert riffledb.connect(tmp_path).open_table("t").to_arrow().equals(expected)
    # What is left is referenced: even delete_unverified removes nothing more.
    assert t.cleanup_old_versions(ZERO, delete_unverified=True) == CleanupStats()


def test_delete_unverified_removes_young_orphans(tmp_path):
    t = riffledb.connect(tmp_path).create_table("t", ids(0, 5))
    orphan = tmp_path / "t.riffle" / "data" / "fedcba9876543210fedcba9876543210.arrow"
    orphan.write_bytes(b"y" * 64)
    assert t.cleanup_old_versions(ZERO) == CleanupStats()
    stats = t.cleanup_old_versions(ZERO, delete_unverified=True)
    assert stats == CleanupStats(bytes_removed=64, old_versions=0, files_removed=1)
    assert not orphan.exists()
    assert t.to_arrow()["id"].to_pylist() == list(range(5))


@pytest.mark.parametrize("uri", ["dir", "memory://"])
def test_optimize_keeps_offsets_and_values(tmp_path, uri):
    db = riffledb.connect(tmp_path if uri == "dir" else uri)
    t = db.create_table("t", ids(0, 20))
    for k in range(1, 6):
        t.add(ids(20 * k, 20 * (k + 1)))
    t.delete("id % 7 = 3 OR id BETWEEN 40 AND 59")  # fragment 2 goes entirely
    before = t.to_arrow()
    offsets = list(range(len(before)))
    random.Random(1).shuffle(offsets)
    taken = t.take_offsets(offsets).to_arrow()
    version = t.version

    stats = t.optimize()
    assert stats.compaction == CompactionStats(
        fragments_removed=5, fragments_added=1, files_removed=10, files_added=1
    )
    assert stats.prune == CleanupStats()
    assert t.version == version + 1
    assert t.list_versions()[-1]["metadata"] == {"operation": "optimize"}
    assert t.to_arrow().equals(before)
    assert t.take_offsets(offsets).to_arrow().equals(taken)
    row_ids = t.search().with_row_id(True).to_arrow()["_rowid"].to_pylist()
    assert row_ids == [(6 << 32) + i for i in range(len(before))]  # one new fragment
    # The version before still reads as it was.
    t.checkout(version)
    assert t.to_arrow().equals(before)
    t.checkout_latest()
    # Nothing left to compact.
    again = t.optimize()
    assert again.compaction == CompactionStats()
    assert t.version == version + 1


def test_optimize_then_cleanup(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 10))
    t.add(ids(10, 20))
    t.delete("id = 5")
    tick()
    stats = t.optimize(cleanup_older_than=ZERO)
    assert stats.compaction == CompactionStats(
        fragments_removed=2, fragments_added=1, files_removed=3, files_added=1
    )
    assert stats.prune.old_versions == 3
    assert stats.prune.files_removed == 3
    assert len(table_files(tmp_path)) == 1
    assert t.to_arrow()["id"].to_pylist() == [i for i in range(20) if i != 5]


def test_optimize_target_and_progress(tmp_path):
    t = riffledb.connect(tmp_path).create_table("t", ids(0, 10))
    for k in range(1, 4):
        t.add(ids(10 * k, 10 * (k + 1)))
    reports = []
    stats = t.optimize(target_rows_per_fragment=20, progress=lambda *r: reports.append(r))
    assert stats.compaction.fragments_removed == 4
    assert stats.compaction.fragments_added == 2
    assert reports[0] == ("rewriting rows", 0, 40)
    assert reports[-1] == ("rewriting rows", 40, 40)
    assert t.to_arrow()["id"].to_pylist() == list(range(40))
    with pytest.raises(InvalidError, match="target_rows_per_fragment"):
        t.optimize(target_rows_per_fragment=0)


def test_cleanup_of_a_memory_table():
    db = riffledb.connect("memory://")
    t = db.create_table("t", ids(0, 10))
    t.add(ids(10, 20))
    t.add(ids(20, 25), mode="overwrite")
    tick()
    stats = t.cleanup_old_versions(ZERO)
    assert stats.old_versions == 2
    assert stats.files_removed == 2
    assert stats.bytes_removed >= 20 * 8
    assert [v["version"] for v in t.list_versions()] == [3]
    assert t.to_arrow()["id"].to_pylist() == list(range(20, 25))
    with pytest.raises(
        InvalidError,
        match="Version 1 of table 't' was removed by cleanup_old_versions; "
        "versions: 3..3$",
    ):
        t.checkout(1)


def perm_ids(permutation, offsets):
    return [row["id"] for row in permutation.__getitems__(offsets)]


def test_pinned_permutation_fails_once_its_version_is_cleaned_up(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 10))
    live = Permutation.identity(t)  # pinned to version 1, opened now
    assert perm_ids(live, [0, 9]) == [0, 9]
    blob = pickle.dumps(Permutation.identity(t))
    t.add(ids(10, 20), mode="overwrite")
    # Not cleaned up yet: a pickled copy still reads version 1.
    assert perm_ids(pickle.loads(blob), [3]) == [3]
    tick()
    assert t.cleanup_old_versions(ZERO).old_versions == 1
    # Already open: its files stay mapped.
    assert perm_ids(live, [0, 9]) == [0, 9]
    # Reopened from its pickle (as a spawn worker does): an error naming the version.
    with pytest.raises(
        InvalidError,
        match="Version 1 of table 't' was removed by cleanup_old_versions; "
        "versions: 2..2$",
    ):
        perm_ids(pickle.loads(blob), [3])


@pytest.mark.slow
def test_appender_in_another_process_races_cleanup_and_optimize(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 100))
    go = mp.get_context("spawn").Event()
    writer = Child(
        racing_appender_scenarios,
        str(tmp_path),
        go,
        what="appender",
        timeout=JOIN_TIMEOUT,
    )
    go.set()
    rounds = 0
    while writer.is_alive() or rounds < 2:
        t.checkout_latest()
        t.optimize(cleanup_older_than=ZERO)
        t.cleanup_old_versions(ZERO)
        rounds += 1
    assert writer.outcome().get("append") == APPENDS
    t.checkout_latest()
    expected = list(range(100)) + list(range(BASE, BASE + APPENDS * ROWS))
    # Nothing lost, and scan order is commit order: compaction keeps it.
    assert t.to_arrow()["id"].to_pylist() == expected
    for version, data in read_every_version(t).items():
        assert data.num_rows <= len(expected), version
    t.optimize(cleanup_older_than=ZERO)
    assert (
        riffledb.connect(tmp_path).open_table("t").to_arrow()["id"].to_pylist()
        == expected
    )


def test_pinned_permutation_in_a_spawn_worker(tmp_path):
    db = riffledb.connect(tmp_path)
    t = db.create_table("t", ids(0, 10))
    blob = pickle.dumps(Permutation.identity(t))
    t.add(ids(10, 12))
    t.add(ids(12, 14))
    assert run_in_child(read_pickled_permutation, blob, [3, 4], what="worker") == (
        "ok",
        [3, 4],
    )
    tick()
    t.cleanup_old_versions(ZERO)
    assert run_in_child(read_pickled_permutation, blob, [3], what="worker") == (
        "InvalidError",
        "Version 1 of table 't' was removed by cleanup_old_versions; versions: 3..3",
    )
