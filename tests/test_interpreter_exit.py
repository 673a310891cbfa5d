"""Interpreter exit: nanobind reports no leaked objects, in any process.

nanobind checks at exit that every instance, type and function it created was freed, and
prints "nanobind: leaked N instances!" otherwise: the sign of a native object kept alive
by a module-level cache or an uncollected reference cycle, or held by a Python object
the interpreter never frees (a spawn DataLoader worker's dataset, held by torch's
`_worker_info` and multiprocessing's `current_process()._args`). riffledb releases its
native handles at exit (riffledb._lifetime). Each session runs in a child interpreter so
that its exit, not pytest's, is what is checked; DataLoader workers print to the same
stderr.

Only nanobind's report is checked, not every line with "leaked": Python's multiprocessing
resource tracker sometimes reports one of a spawn DataLoader's own semaphores as leaked at
exit ("There appear to be 1 leaked semaphore objects", then "No such file or directory"
as it removes it: the semaphore was removed, but its removal never reached the tracker).
That comes from torch's queues and CPython, not from riffledb, which makes no semaphores:
the same DataLoaders over a plain Python dataset, without riffledb, show it too (once in a
few dozen runs on a loaded machine). riffledb's own shared memory is checked separately.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SESSION = textwrap.dedent(
    """
    import sys

    import pyarrow as pa
    import torch

    import riffledb
    from riffledb.permutation import Permutation, Permutations, permutation_builder

    root = sys.argv[1]
    data = pa.table({"id": list(range(100)), "x": [i * 0.5 for i in range(100)]})
    for uri in (root, "memory://"):
        db = riffledb.connect(uri)
        table = db.create_table("t", data, mode="overwrite")
        table.add(pa.table({"id": [100], "x": [50.0]}))
        assert table.take_offsets([100, 0]).to_arrow()["id"].to_pylist() == [100, 0]
        assert table.search().where("id < 3").to_arrow().num_rows == 3
        splits = (
            permutation_builder(table)
            .split_random(ratios=[0.8, 0.2], seed=1, split_names=["train", "test"])
            .shuffle(seed=2)
            .execute()
        )
        train = Permutations(table, splits)["train"]
        assert len(train) == 81
        assert len(train.take_offsets([0, 5])) == 2
        loader = torch.utils.data.DataLoader(
            train.with_format("torch"), batch_size=16, num_workers=0
        )
        assert sum(len(batch["id"]) for batch in loader) == 81
        identity = Permutation.identity(table).with_format("arrow")
        assert sum(batch.num_rows for batch in identity.iter(32)) == 101
    print("session done")
    """
)


# A script file, not `-c`: spawn and forkserver workers re-import the main module.
DATALOADER_SESSION = textwrap.dedent(
    """
    import os
    import sys

    import pyarrow as pa
    import torch

    import riffledb
    from riffledb.permutation import Permutation, Permutations, permutation_builder
    from riffledb.util import one_buffer_collate


    # Opens the table in each worker (LanceDB's pattern for custom datasets).
    class OpensInWorker:

        def __init__(self, uri):
            self.uri, self.table = uri, None

        def __len__(self):
            return 50

        def __getitems__(self, offsets):
            if self.table is None:
                self.table = riffledb.connect(self.uri).open_table("t")
            return self.table.take_offsets(offsets).to_arrow().to_pydict()


    def collate(batch):
        return batch


    def note_pid(_=None):
        # The processes whose shared-memory segments the test looks for (argv[3]).
        with open(sys.argv[3], "a") as pids:
            print(os.getpid(), file=pids)


    def read_all(dataset, method, collate_fn=None):
        if collate_fn is None and not isinstance(dataset, Permutation):
            collate_fn = collate
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=16,
            num_workers=2,
            multiprocessing_context=method,
            timeout=120,
            collate_fn=collate_fn,
            worker_init_fn=note_pid,
        )
        return sum(len(batch["id"]) for batch in loader)


    if __name__ == "__main__":
        method, root = sys.argv[1], sys.argv[2]
        note_pid()
        data = pa.table({"id": list(range(100)), "x": [i * 0.5 for i in range(100)]})
        counts = []
        for uri in (root, "memory://"):
            table = riffledb.connect(uri).create_table("t", data)
            table.add(pa.table({"id": [100], "x": [50.0]}))
            splits = (
                permutation_builder(table)
                .split_random(ratios=[0.8, 0.2], seed=1, split_names=["a", "b"])
                .shuffle(seed=2)
                .execute()
            )
            train = Permutations(table, splits)["a"].with_format("torch")
            counts.append(read_all(train, method))
            identity = Permutation.identity(table).with_format("torch").with_skip(1)
            counts.append(read_all(identity, method))
        counts.append(read_all(OpensInWorker(root), method))
        # Batches cross as riffledb's shared-memory segments (checked by the test).
        table = riffledb.connect(root).open_table("t")
        dicts = Permutation.identity(table).with_format("torch_dict")
        counts.append(read_all(dicts, method, one_buffer_collate))
        print("done", counts)
    """
)

# Objects the interpreter never frees (a reference no one gives back): riffledb still
# releases their native handles at exit. With argv[2] == "use", a callback that runs
# after the release uses them: a directory table reopens (and then stays open: nanobind
# may report it), a memory:// table is gone.
UNFREED_SESSION = textwrap.dedent(
    """
    import atexit
    import ctypes
    import sys


    def after_release():
        local, memory, split, local_db, memory_db, _ = OBJECTS
        print("local", local.take_offsets([2, 0]))
        print("local_db", local_db.table_names())
        for use in (lambda: len(memory), lambda: len(split), memory_db.table_names):
            try:
                use()
            except InternalError as error:
                print(error)


    # Registered before riffledb is imported, so it runs after riffledb's release.
    if sys.argv[2] == "use":
        atexit.register(after_release)

    import pyarrow as pa

    import riffledb
    from riffledb.errors import InternalError
    from riffledb.permutation import Permutation, Permutations, permutation_builder

    data = pa.table({"id": list(range(10))})
    local_table = riffledb.connect(sys.argv[1]).create_table("t", data)
    local = Permutation.identity(local_table).with_skip(3).with_format("python_col")
    memory = Permutation.identity(riffledb.connect("memory://").create_table("m", data))
    builder = permutation_builder(local_table).split_random(counts=[4, 6], seed=3)
    split = Permutations(local_table, builder.execute())[1]  # a memory:// perm table
    assert (len(local), len(memory), len(split)) == (7, 10, 6)  # readers are open
    local_db, memory_db = riffledb.connect(sys.argv[1]), riffledb.connect("memory://")
    assert local_db.table_names() == ["t"] and memory_db.table_names() == []
    unused_builder = permutation_builder(local_table).shuffle(seed=1)
    OBJECTS = (local, memory, split, local_db, memory_db, unused_builder)
    for obj in OBJECTS:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))  # never freed
    print("expected", local.take_offsets([2, 0]))
    """
)


def nanobind_reports(stderr: str) -> list[str]:
    """The lines of nanobind's exit report ("nanobind: leaked 2 instances!", ...)."""
    return [line for line in stderr.splitlines() if "nanobind" in line]


def shared_memory_segments(pids: set[int]) -> set[str]:
    """riffledb's DataLoader hand-off segments in /dev/shm (riffledb.formats._pack,
    ``riffledb-<pid>-<random>``) made by the processes ``pids``: other riffledb
    processes on the machine may hold segments of their own meanwhile."""
    return {
        name
        for name in os.listdir("/dev/shm")
        if name.startswith("riffledb-") and int(name.split("-")[1]) in pids
    }


def run_python(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "python"), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow
def test_typical_session_leaks_nothing_at_exit(tmp_path: Path):
    result = run_python(["-c", SESSION, str(tmp_path / "db")])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "session done"
    assert nanobind_reports(result.stderr) == [], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_leak_nothing_at_exit(tmp_path: Path, method: str):
    pytest.importorskip("torch")
    script = tmp_path / "session.py"
    script.write_text(DATALOADER_SESSION)
    pid_file = tmp_path / "pids"
    result = run_python(
        [str(script), method, str(tmp_path / "db"), str(pid_file)], timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done [81, 100, 81, 100, 50, 101]"
    assert nanobind_reports(result.stderr) == [], result.stderr
    pids = {int(line) for line in pid_file.read_text().split()}
    assert len(pids) == 1 + 2 * 6  # the session, then 2 workers for each of 6 loaders
    assert shared_memory_segments(pids) == set()


def test_objects_never_freed_release_their_handles_at_exit(tmp_path: Path):
    result = run_python(["-c", UNFREED_SESSION, str(tmp_path / "db"), "idle"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "expected {'id': [5, 3]}\n"
    assert nanobind_reports(result.stderr) == [], result.stderr


def test_objects_used_after_the_release_at_exit(tmp_path: Path):
    result = run_python(["-c", UNFREED_SESSION, str(tmp_path / "db"), "use"])
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert result.stdout.splitlines() == [
        "expected {'id': [5, 3]}",
        "local {'id': [5, 3]}",
        "local_db ['t']",
        "Table 'm' was released at interpreter exit: a memory:// table cannot be "
        "reopened",
        "Table 'permutation' was released at interpreter exit: a memory:// table "
        "cannot be reopened",
        "This memory:// database was released at interpreter exit",
    ]
