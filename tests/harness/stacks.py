"""Stack dumps across a harness child's process group, for the hang detector.

A harness child arms itself (:func:`arm`): SIGUSR1 makes faulthandler write the stack of
every thread into ``<dir>/stacks.<pid>``; the arming is repeated after each ``fork``, so a
DataLoader fork worker or a forked grandchild writes a file of its own, and spawned or
forkserver workers arm themselves with :func:`arm_worker` as their ``worker_init_fn``.
A crash prints every thread's stack to stderr.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time

STACKS_ENV = "RIFFLEDB_TEST_STACKS_DIR"  # how spawned workers find the directory
STACKS_GRACE = 10.0  # at most this long to wait for the stack dumps of a hung group

_dir: str | None = None  # set once this process is armed
_file = None


def arm(stacks_dir: str) -> None:
    """Arms this process and every process forked from it."""
    global _dir
    _dir = stacks_dir
    os.environ[STACKS_ENV] = stacks_dir
    faulthandler.enable()
    _arm_this_process()
    os.register_at_fork(after_in_child=_arm_this_process)


def arm_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` that arms spawn and forkserver workers (fork
    workers are armed by the at-fork hook already)."""
    global _dir
    if _dir is None and os.environ.get(STACKS_ENV):
        _dir = os.environ[STACKS_ENV]
        _arm_this_process()


def _arm_this_process() -> None:
    global _file
    path = os.path.join(_dir, f"stacks.{os.getpid()}")
    _file = open(path, "w")  # kept open: faulthandler writes to it on SIGUSR1
    faulthandler.register(signal.SIGUSR1, file=_file, all_threads=True)


def dump_group(pgid: int, stacks_dir: str) -> str:
    """Asks every process of the group for its stacks; returns what they wrote."""
    try:
        os.killpg(pgid, signal.SIGUSR1)
    except (ProcessLookupError, PermissionError):
        return "(the process group was gone before its stacks could be dumped)"
    return _collect(stacks_dir, f"stacks.{pgid}")


def dump_process(pid: int) -> str:
    """The stacks of ``pid``, a process forked from this armed one ("" if unarmed)."""
    if _dir is None:
        return ""
    os.kill(pid, signal.SIGUSR1)
    return _collect(_dir, f"stacks.{pid}")


def _collect(stacks_dir: str, wanted: str) -> str:
    """Every non-empty dump, once ``wanted`` has written and the files stopped growing
    (or after STACKS_GRACE seconds): this waiting only decides how much of the
    diagnosis is shown, never a test's outcome."""
    deadline = time.monotonic() + STACKS_GRACE
    sizes: dict[str, int] = {}
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = {
            f: os.path.getsize(os.path.join(stacks_dir, f))
            for f in os.listdir(stacks_dir)
        }
        if now == sizes and now.get(wanted):
            break
        sizes = now
    parts = []
    for name in sorted(os.listdir(stacks_dir)):
        with open(os.path.join(stacks_dir, name)) as f:
            text = f.read().strip()
        if text:
            parts.append(f"--- process {name.split('.')[1]} ---\n{text}")
    return "\n".join(parts) if parts else "(no process dumped its stacks)"
