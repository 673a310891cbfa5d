"""The hang detector (harness/hang.py) itself: hangs fail fast, with the stacks."""

import sys

import pytest
from harness import hang
from harness.hang_scenarios import (
    crash_at_exit_scenarios,
    failing_scenarios,
    forked_sleeper_scenarios,
    sleeper_scenarios,
    spawned_sleeper_scenarios,
)


def test_harness_reports_a_hang_instead_of_hanging():
    """A scenario that sleeps forever fails fast."""
    outcome = hang.run_scenarios(sleeper_scenarios, what="sleeper", timeout=3)
    assert outcome.results["quick"] == ("ok", True)
    assert outcome.hung == "forever"
    # faulthandler's dump of the child's main thread, quoted in the failure.
    assert "in sleep_forever" in outcome.stacks
    with pytest.raises(
        pytest.fail.Exception, match="(?s)'forever' HUNG.*in sleep_forever"
    ):
        outcome.get("forever")


@pytest.mark.skipif(sys.platform != "linux", reason="fork() on Linux only")
def test_hung_fork_child_is_killed_with_its_stacks():
    """wait_child, in a harness child: the forked child's own stack dump (armed again
    after the fork) is in the error, and the scenario fails instead of hanging."""
    outcome = hang.run_scenarios(forked_sleeper_scenarios, 2.0, what="forked sleeper")
    status, error = outcome.results["forked"]
    assert status == "error"
    assert "AssertionError: forked child" in error and "hung for 2s; killed" in error
    assert "in sleep_forever" in error and "in fork_and_wait" in error
    assert outcome.hung is None and outcome.exitcode == 0


def test_hung_spawned_worker_dumps_its_stacks_once_armed():
    """arm_worker (a DataLoader worker_init_fn) arms a spawned process, which the
    at-fork hook cannot: the group's dump then has the grandchild's stack too."""
    outcome = hang.run_scenarios(spawned_sleeper_scenarios, what="spawned", timeout=3)
    assert outcome.hung == "join"
    dumps = outcome.stacks.split("--- process ")[1:]
    assert len(dumps) == 2, outcome.stacks
    # The child waits in join; the grandchild sleeps in armed_sleeper.
    child = next(d for d in dumps if d.startswith(f"{outcome.pid} "))
    grandchild = next(d for d in dumps if not d.startswith(f"{outcome.pid} "))
    assert "in join" in child and "in armed_sleeper" not in child
    assert "in sleep_forever" in grandchild and "in armed_sleeper" in grandchild


def test_scenario_error_carries_the_child_traceback_and_the_rest_run():
    outcome = hang.run_scenarios(failing_scenarios, what="failing")
    assert outcome.order == ["raises", "after"]
    assert outcome.get("after") == "ran"
    with pytest.raises(
        pytest.fail.Exception, match="(?s)'raises' raised.*ValueError: the scenario's"
    ):
        outcome.get("raises")


def test_child_dying_after_its_scenarios_fails():
    outcome = hang.run_scenarios(crash_at_exit_scenarios, what="crash at exit")
    assert outcome.results["done"] == ("ok", 42)
    assert outcome.exitcode == -9 and not outcome.finished
    with pytest.raises(pytest.fail.Exception, match="then exited with code -9"):
        outcome.get("done")


def test_run_in_child_returns_the_result():
    assert hang.run_in_child(divmod, 17, 5, what="divmod") == (3, 2)


def test_run_python_dumps_stacks_at_the_deadline():
    out = hang.run_python(
        "import time\ndef stuck():\n    time.sleep(60)\nstuck()", timeout=1
    )
    assert out.returncode == 1
    assert "Timeout (0:00:01)!" in out.stderr and "in stuck" in out.stderr
