"""The hang detector: run code in another process with a deadline, never wait forever.

:class:`Child` runs a *scenario generator* in a fresh ``spawn`` child that leads its own
process group. The generator yields ``(name, fn)`` pairs; the child runs each ``fn()`` and
reports ``start`` / ``ok`` (with ``fn``'s picklable result) / ``error`` (with the
traceback) through a pipe, which a parent thread drains, so several children run at once
and each has its own deadline. If a scenario makes no progress for ``timeout`` seconds,
every process of the group (the child, its DataLoader workers, a forkserver, forked
grandchildren) is asked for the stacks of its threads (harness/stacks.py), which the
failure message quotes. Then the group is SIGKILLed.

:func:`run_in_child` is the one-function case, :func:`wait_child` reaps an ``os.fork()``
child with a deadline (and its stacks), :func:`run_python` runs a script in a fresh
interpreter that dumps its stacks and exits at the deadline. harness/hang_scenarios.py
holds the scenarios that hang on purpose, for the detector's own tests (test_hang.py).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import stacks

PROGRESS_TIMEOUT = 150.0  # seconds without progress before a scenario counts as hung
STARTUP_TIMEOUT = 120.0  # seconds for a child to start its first scenario


@dataclass
class Outcome:
    what: str
    results: dict[str, tuple[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    hung: str | None = None  # the scenario running when the child was killed
    exitcode: int | None = None
    finished: bool = False  # the child reported the end of its scenarios
    exit_hang: bool = False  # ... but then did not exit
    stacks: str = ""  # the thread stacks of the group, when it hung
    pid: int | None = None  # the child's, which leads the group

    def get(self, name: str) -> Any:
        """The result of scenario ``name``; pytest.fail with a precise message if it
        failed, hung or never ran."""
        import pytest

        if name in self.results:
            status, value = self.results[name]
            if status == "ok":
                if self.exit_hang:
                    pytest.fail(
                        f"{self.what}: the child finished every scenario but did not "
                        f"exit (hang at interpreter exit); killed\n{self.stacks}",
                        pytrace=False,
                    )
                if self.hung is None and self.exitcode != 0:
                    pytest.fail(
                        f"{self.what}: scenario {name!r} passed but the child then "
                        f"exited with code {self.exitcode} after {self.order}",
                        pytrace=False,
                    )
                return value
            pytest.fail(f"{self.what}: scenario {name!r} raised in the child:\n{value}")
        if self.hung == name:
            pytest.fail(
                f"{self.what}: scenario {name!r} HUNG (no progress for the deadline); "
                f"process group killed\n{self.stacks}",
                pytrace=False,
            )
        if self.hung is not None:
            pytest.fail(
                f"{self.what}: scenario {name!r} did not run: the child hung in "
                f"{self.hung!r} and was killed\n{self.stacks}",
                pytrace=False,
            )
        pytest.fail(
            f"{self.what}: scenario {name!r} did not run: the child exited with code "
            f"{self.exitcode} after {self.order}",
            pytrace=False,
        )


class Child:
    """A spawn child running ``target(*args)`` (a generator of ``(name, fn)``), watched
    by a parent thread with a progress deadline of ``timeout`` seconds."""

    def __init__(self, target, *args, what: str, timeout: float = PROGRESS_TIMEOUT):
        ctx = mp.get_context("spawn")
        self._stacks = tempfile.mkdtemp(prefix="riffledb-stacks-")
        recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child_main, args=(send, self._stacks, target, args), daemon=False
        )
        self._proc.start()
        send.close()
        self.pid = self._proc.pid
        self._outcome = Outcome(what, pid=self.pid)
        self._error: BaseException | None = None
        self._reap_lock = threading.Lock()
        self._reaped = False  # under _reap_lock; after it, self.pid may be another's
        self._thread = threading.Thread(
            target=self._watch, args=(recv, timeout), daemon=True
        )
        self._thread.start()

    def is_alive(self) -> bool:
        return not _exited(self._proc, 0)

    def kill(self) -> None:
        """SIGKILLs the child's group (for tests that kill a child on purpose)."""
        with self._reap_lock:
            if not self._reaped:
                _kill_group(self._proc)

    def close(self) -> None:
        """Kills the child if it still runs (a fixture's teardown, when a test did not
        wait for it) and waits for the watcher."""
        self.kill()
        self._thread.join()

    def outcome(self) -> Outcome:
        # The watcher cannot take longer than one deadline per message, plus reaping.
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome

    def _watch(self, recv, timeout: float) -> None:
        try:
            self._drain(recv, timeout)
        except BaseException as error:
            self._error = error
        finally:
            recv.close()
            shutil.rmtree(self._stacks, ignore_errors=True)

    def _drain(self, recv, timeout: float) -> None:
        proc, outcome = self._proc, self._outcome
        current = "<startup>"
        # Starting an interpreter on a loaded machine is slow, and a short deadline is
        # meant for the scenarios: startup gets at least STARTUP_TIMEOUT.
        deadline = time.monotonic() + max(timeout, STARTUP_TIMEOUT)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.hung = current
                break
            if not recv.poll(min(remaining, 1.0)):
                if _exited(proc, 0) and not recv.poll(0):
                    break
                continue
            try:
                msg = recv.recv()
            except EOFError:
                break
            deadline = time.monotonic() + timeout
            if msg[0] == "start":
                current = msg[1]
                outcome.order.append(current)
            elif msg[0] in ("ok", "error"):
                outcome.results[msg[1]] = (msg[0], msg[2])
                current = "<between scenarios>"
            elif msg[0] == "end":
                outcome.finished = True
                current = "<exit>"
                break
        if outcome.hung is None and not _exited(proc, 60):
            outcome.exit_hang = outcome.finished
            outcome.hung = current
        if outcome.hung is not None:
            outcome.stacks = stacks.dump_group(self.pid, self._stacks)
        # Also after a clean exit: leftovers (a forkserver, an orphaned worker) must not
        # outlive the test. The watcher has not reaped the child, so its pid (the group
        # id) is still its own (unless another Process.start reaped it: then kill is a
        # no-op, and killpg reaches a reused pid only if that leads a group).
        with self._reap_lock:
            _kill_group(proc)
            proc.join(timeout=10)
            self._reaped = True
        outcome.exitcode = proc.exitcode


def run_scenarios(target, *args, what: str, timeout: float = PROGRESS_TIMEOUT) -> Outcome:
    """Runs ``target(*args)`` in a :class:`Child` and waits for its outcome."""
    return Child(target, *args, what=what, timeout=timeout).outcome()


def run_in_child(fn, *args, what: str, timeout: float = PROGRESS_TIMEOUT) -> Any:
    """``fn(*args)`` in a spawn child: its (picklable) result, or pytest.fail with the
    child's traceback, or with its stacks if it runs past ``timeout`` seconds."""
    outcome = run_scenarios(_one_call, fn, args, what=what, timeout=timeout)
    return outcome.get("call")


def _one_call(fn, args):
    yield "call", functools.partial(fn, *args)


def _child_main(conn, stacks_dir: str, target, args) -> None:
    os.setpgrp()  # the parent signals the whole group on a hang
    stacks.arm(stacks_dir)
    try:
        for name, fn in target(*args):
            conn.send(("start", name))
            try:
                result = fn()
            except BaseException:
                conn.send(("error", name, traceback.format_exc()))
            else:
                conn.send(("ok", name, result))
    except BaseException:
        conn.send(("error", "<generator>", traceback.format_exc()))
    conn.send(("end",))
    conn.close()


def _exited(proc, timeout: float) -> bool:
    """Whether ``proc`` exited (waiting up to ``timeout`` s), without reaping it, so
    that its pid is not reused while the watcher may still signal it."""
    return bool(mp.connection.wait([proc.sentinel], timeout))


def _kill_group(proc) -> None:
    """SIGKILLs the group ``proc`` leads, and ``proc`` itself if it does not lead one
    yet. Called only before ``proc`` is reaped (see _exited)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()  # a no-op once the child is reaped


def wait_child(pid: int, timeout: float = 60.0) -> int:
    """``waitpid`` with a deadline: returns the exit code (negative signal number), or
    kills the ``os.fork()`` child and raises AssertionError with its stacks on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            dump = stacks.dump_process(pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(
                f"forked child {pid} hung for {timeout:.0f}s; killed\n{dump}"
            )
        time.sleep(0.005)


def run_python(code: str, *args: str, timeout: float = 60.0):
    """Runs ``code`` in a fresh interpreter; returns the CompletedProcess. At the
    deadline the child prints every thread's stack to stderr and exits with code 1."""
    watchdog = (
        "import faulthandler; "
        f"faulthandler.dump_traceback_later({timeout!r}, exit=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", watchdog + code, *args],
        capture_output=True,
        text=True,
        # Only if the interpreter cannot even run its watchdog.
        timeout=timeout + 60,
    )
