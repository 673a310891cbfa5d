"""What test_hang.py runs in its children: scenarios that hang on purpose."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from .hang import STARTUP_TIMEOUT, wait_child
from .stacks import STACKS_ENV, arm_worker


def sleep_forever() -> None:
    time.sleep(3600)


def sleeper_scenarios():
    yield "quick", lambda: True
    yield "forever", sleep_forever


def forked_sleeper_scenarios(timeout: float):
    """An ``os.fork()`` child that never exits, reaped by wait_child."""

    def fork_and_wait():
        pid = os.fork()
        if pid == 0:
            try:
                sleep_forever()
            finally:
                os._exit(1)
        return wait_child(pid, timeout=timeout)

    yield "forked", fork_and_wait


def failing_scenarios():
    yield "raises", _raise
    yield "after", lambda: "ran"


def _raise() -> None:
    raise ValueError("the scenario's own error")


def crash_at_exit_scenarios():
    """Finishes its scenario, then the child dies of SIGKILL instead of exiting."""
    yield "done", lambda: 42
    os.kill(os.getpid(), 9)


def armed_sleeper() -> None:
    """A spawned process (like a spawn DataLoader worker) armed by arm_worker."""
    arm_worker(0)
    sleep_forever()


def spawned_sleeper_scenarios():
    """A spawned grandchild that hangs; its stacks come from arm_worker."""
    proc = mp.get_context("spawn").Process(target=armed_sleeper, daemon=True)
    proc.start()
    # Before the first scenario, under the startup deadline: wait until the grandchild
    # is armed (arming creates its file), so its dump cannot be missed.
    armed = os.path.join(os.environ[STACKS_ENV], f"stacks.{proc.pid}")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not os.path.exists(armed) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield "join", lambda: proc.join()
