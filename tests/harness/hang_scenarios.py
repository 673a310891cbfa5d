"""What test_hang.py runs in its children: scenarios that hang on purpose."""

from __future__ import annotations

import os
import time

from .hang import wait_child


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
