"""Fork safety (DESIGN.md decision 9) with real processes.

Each test runs its scenario (harness.fork_scenarios, harness.fork_torch_scenarios) in a
``spawn`` child (harness.hang.Child) that reports progress through a pipe; a scenario
without progress for harness.hang.PROGRESS_TIMEOUT seconds fails the test with the stacks
of the child's threads, and its whole process group is killed. Children made with
``os.fork()`` inside a scenario are reaped with a deadline too (harness.hang.wait_child)
and report through their exit code or a pipe.
"""

import collections
import sys

import pytest
from harness import fork_scenarios, fork_torch_scenarios
from harness.data import N_ROWS, check_rows, rows
from harness.hang import Child, run_scenarios

import riffledb

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork() on Linux only")

BUSY_ROUNDS = 50
BUSY_THREADS = 3
APPEND_FORKS = 30


@pytest.fixture
def db_path(tmp_path):
    riffledb.connect(tmp_path).create_table("t", rows(0, N_ROWS))
    return str(tmp_path)


@pytest.fixture(scope="module")
def torch_children(tmp_path_factory):
    """The two children that import torch start together on first use (the import takes
    seconds; in parallel processes it overlaps)."""
    pytest.importorskip("torch")
    nested_db = tmp_path_factory.mktemp("nested")
    riffledb.connect(nested_db).create_table("t", rows(0, N_ROWS))
    children = {
        "busy": Child(
            fork_torch_scenarios.fork_while_busy_scenarios,
            str(tmp_path_factory.mktemp("busy")),
            BUSY_ROUNDS,
            BUSY_THREADS,
            what="fork while busy",
        ),
        "nested": Child(
            fork_torch_scenarios.nested_fork_scenarios, str(nested_db), what="nested fork"
        ),
    }
    yield children
    for child in children.values():  # kill any no test waited for (-k, -x)
        child.close()


@pytest.mark.slow
def test_fork_dataloader_while_threads_read(torch_children):
    """3 threads take 16k rows at a time (parallel gathers in the C++ pool) from the very
    Permutation a fork DataLoader reads; 50 DataLoaders in a row start while they do."""
    outcome = torch_children["busy"].outcome()
    takes = outcome.get("threads")  # first: a reader thread's error explains the rest
    takes_before = [outcome.get(f"round-{r:02d}") for r in range(BUSY_ROUNDS)]
    assert all(t > 0 for t in takes), takes
    # The readers kept taking while the DataLoaders ran (not a timing bound: the first
    # round only starts after every thread finished a take).
    assert takes_before[0] >= BUSY_THREADS


@pytest.mark.slow
def test_nested_fork_from_dataloader_worker(torch_children):
    """A fork worker forks a grandchild in worker_init_fn (before its first read) and in
    every __getitems__; the grandchild reads through the same Permutation object and
    reports its rows through a pipe; the worker compares them with its own."""
    outcome = torch_children["nested"].outcome()
    result = outcome.get("nested")
    batches, expected = result["batches"], result["expected"]
    got = collections.Counter(i for b in batches for i in b["id"])
    assert got == collections.Counter(expected)
    assert [len(b["id"]) for b in batches] == [100] * 6 + [99]
    for b in batches:
        check_rows(b["id"], b["x"])
    workers = {b["pid"] for b in batches}
    grandchildren = {b["grandchild"] for b in batches}
    assert len(workers) == 2 and result["parent"] not in workers
    assert len(grandchildren) == len(batches)
    assert not grandchildren & (workers | {result["parent"]})


def test_fork_while_another_thread_appends(db_path):
    """A thread appends 10 rows at a time while the main thread forks 30 children; each
    child reads through an inherited Table object (after checkout_latest and as forked)
    and a fresh connection: always a whole version. (The writer's own object: next
    test.)"""
    riffledb.connect(db_path).open_table("t").delete("id >= 0")  # start from 0 rows
    riffledb.connect(db_path).open_table("t").add(rows(0, 10))
    outcome = run_scenarios(
        fork_scenarios.fork_mid_append_scenarios,
        db_path,
        APPEND_FORKS,
        what="fork mid-append",
    )
    for i in range(APPEND_FORKS):
        outcome.get(f"fork-{i:02d}")
    appends = outcome.get("writer")
    assert appends >= 1
    table = riffledb.connect(db_path).open_table("t")
    assert table.to_arrow()["id"].to_pylist() == list(range(10 * (appends + 1)))


@pytest.mark.slow
def test_fork_while_threads_use_the_same_table(db_path):
    """One Table object is appended to and refreshed (checkout_latest, len) by three
    threads while the main thread forks up to 300 children; each child uses that same
    object (checkout_latest, to_arrow) and must see a whole version. DESIGN.md decision 9:
    objects inherited by a forked child keep working."""
    table = riffledb.connect(db_path).open_table("t")
    table.delete("id >= 10")
    outcome = run_scenarios(
        fork_scenarios.fork_shared_table_scenarios, db_path, 300, what="shared table"
    )
    assert outcome.get("forks") == 300


def test_objects_made_before_fork_work_in_child(db_path):
    """A directory Table, a memory Table, used Permutations (native readers built), a
    half-consumed Permutation.iter and a half-consumed scan, all made in the parent and
    used after a raw os.fork(); then the parent's own objects carry on unaffected."""
    outcome = run_scenarios(
        fork_scenarios.objects_after_fork_scenarios, db_path, what="objects after fork"
    )
    code = outcome.get("objects")
    steps = fork_scenarios.OBJECT_STEPS
    step = steps[code - 10] if 10 <= code < 10 + len(steps) else code
    assert code == 0, f"child failed at step {step!r} (traceback on stderr)"
