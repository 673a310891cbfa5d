"""Atomic drop_table (issue #10, item 6) with real processes.

A drop racing appenders in other processes, or killed with SIGKILL at a random point,
leaves the whole table listed or none of it; an appender of a dropped table gets
TableNotFoundError ("was dropped"), never recreates the table, and never reports failure
for rows that are in the table.
"""

import os
import random
import shutil
import signal
import time
import traceback

import pyarrow as pa
import pytest
from harness.hang import wait_child
from harness.soak import SoakLoop

import riffledb
from riffledb.errors import TableNotFoundError

ROWS = 5  # per append
INITIAL = 3  # versions before the drop, ROWS rows each


def _create(path):
    db = riffledb.connect(path)
    tbl = db.create_table("t", pa.table({"id": pa.array(range(ROWS), pa.int64())}))
    for v in range(1, INITIAL):
        tbl.add(pa.table({"id": pa.array(range(v * ROWS, (v + 1) * ROWS), pa.int64())}))
    return db


def _fork(fn, *args):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def _append_loop(path, writer, log, appends, stop_after_errors, ready_fd=None):
    """Appends `appends` batches of unique ids, one line per outcome in `log`:
    ``ok <first id>`` or ``err <first id> <class> <message>``. Writes a byte to
    `ready_fd` once the table is open."""
    tbl = riffledb.connect(path).open_table("t")
    if ready_fd is not None:
        os.write(ready_fd, b"r")
    errors = 0
    with open(log, "w", buffering=1) as out:
        for i in range(appends):
            first = 1_000_000 * (writer + 1) + i * ROWS
            ids = pa.array(range(first, first + ROWS), pa.int64())
            try:
                tbl.add(pa.table({"id": ids}))
                out.write(f"ok {first}\n")
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                message = str(e).replace("\n", " ")
                out.write(f"err {first} {type(e).__name__} {message}\n")
                errors += 1
                if errors >= stop_after_errors:
                    return


def _outcomes(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [line.rstrip("\n").split(" ", 3) for line in f if line.endswith("\n")]


def _batch_ids(first):
    return set(range(int(first), int(first) + ROWS))


def _check_whole_or_absent(path, outcomes, loop=None):
    """The table is either absent (and so is its directory's `_versions/`) or whole:
    every version opens, and the latest holds exactly the initial rows and the rows of
    every append that succeeded, none of an append that failed. Counts what it checked
    in `loop` (a harness.soak.SoakLoop), if given."""
    loop = loop or SoakLoop("unreported", rounds=0)
    db = riffledb.connect(path)
    names = db.table_names()
    if names == []:
        assert not (path / "t.riffle" / "_versions").exists()
        with pytest.raises(TableNotFoundError):
            db.open_table("t")
        return False
    assert names == ["t"]
    tbl = db.open_table("t")
    for v in [v["version"] for v in tbl.list_versions()]:
        tbl.checkout(v)
        tbl.to_arrow()  # every file of every version reads
        loop.add("versions_checked")
    tbl.checkout_latest()
    expected = set(range(INITIAL * ROWS))
    for outcome in outcomes:
        if outcome[0] == "ok":
            expected |= _batch_ids(outcome[1])
    ids = tbl.to_arrow()["id"].to_pylist()
    loop.add("rows_checked", len(ids))
    loop.add("lost_rows", len(expected - set(ids)))
    loop.add("unacknowledged_rows", len(set(ids) - expected))
    assert sorted(ids) == sorted(expected)
    return True


def _drop(path):
    riffledb.connect(path).drop_table("t")


def _no_tombstones(path):
    riffledb.connect(path)  # removes what a killed drop left
    return [p.name for p in path.iterdir() if p.name.startswith(".riffle-dropped-")]


def test_drop_racing_appenders_in_other_processes(tmp_path):
    # One race; `make soak` repeats it (harness.soak).
    with SoakLoop("drop racing 3 appenders", rounds=1) as loop:
        for round_ in loop:
            path = tmp_path / f"db{round_}"
            _race_drop_with_appenders(path, tmp_path / f"logs{round_}", loop)
            shutil.rmtree(tmp_path / f"logs{round_}")
            shutil.rmtree(path)


def _race_drop_with_appenders(path, log_dir, loop):
    db = _create(path)
    log_dir.mkdir()
    logs = [log_dir / f"writer{w}.log" for w in range(3)]
    pids = [_fork(_append_loop, path, w, logs[w], 400, 3) for w in range(len(logs))]
    try:
        # Drop once every appender is committing (the sleep only paces the polling).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            len(_outcomes(log)) < 2 for log in logs
        ):
            time.sleep(0.002)
        db.drop_table("t")
        loop.add("drops")
        assert db.table_names() == []
    finally:
        codes = [wait_child(pid, timeout=60) for pid in pids]
    assert codes == [0] * len(pids)
    for log in logs:
        outcomes = _outcomes(log)
        loop.add("appends_ok", sum(o[0] == "ok" for o in outcomes))
        loop.add("appends_failed", sum(o[0] == "err" for o in outcomes))
        assert len(outcomes) >= 2, log
        failed = [o for o in outcomes if o[0] == "err"]
        # Once dropped, dropped for good: every later append failed, cleanly.
        assert failed, f"{log}: no append saw the drop"
        first_error = outcomes.index(failed[0])
        assert all(o[0] == "err" for o in outcomes[first_error:]), log
        for o in failed:
            assert o[2] == "TableNotFoundError", o
            assert "was dropped" in o[3] and "t.riffle" in o[3], o
    # No appender brought the table back.
    assert not _check_whole_or_absent(path, [], loop)
    assert _no_tombstones(path) == []


@pytest.mark.parametrize("seed", [1])
def test_drop_killed_at_random_points(tmp_path, seed):
    rng = random.Random(seed)
    kept = dropped = 0
    # 20 rounds; `make soak` runs rounds for as long as it is told (harness.soak).
    with SoakLoop("drop killed at random points", rounds=20) as loop:
        for round_ in loop:
            path = tmp_path / f"db{round_}"
            _create(path)
            log = tmp_path / f"appender{round_}.log"
            ready_r, ready_w = os.pipe()
            appender = _fork(_append_loop, path, 0, log, 8, 1, ready_w)
            os.close(ready_w)
            # The appender holds the table open before the drop starts (EOF if it died).
            assert os.read(ready_r, 1) == b"r"
            os.close(ready_r)
            dropper = _fork(_drop, path)
            time.sleep(rng.uniform(0, 0.004))  # a random point of the drop
            os.kill(dropper, signal.SIGKILL)
            assert wait_child(dropper, timeout=60) in (0, -signal.SIGKILL)
            loop.add("kills")
            assert wait_child(appender, timeout=60) == 0
            outcomes = _outcomes(log)
            loop.add("appends_ok", sum(o[0] == "ok" for o in outcomes))
            loop.add("appends_failed", sum(o[0] == "err" for o in outcomes))
            if _check_whole_or_absent(path, outcomes, loop):
                kept += 1
                loop.add("kept")
                # A drop that did not happen failed no append.
                assert all(o[0] == "ok" for o in outcomes), outcomes
            else:
                dropped += 1
                loop.add("dropped")
                for o in outcomes:
                    if o[0] == "err":
                        assert o[2] == "TableNotFoundError", o
            assert _no_tombstones(path) == []
            shutil.rmtree(path)
    assert kept + dropped == loop.done


def _create_racer(path, creator, log, exist_ok, ready_r):
    os.read(ready_r, 1)  # start together
    ids = pa.array(range(1000 * creator, 1000 * creator + ROWS), pa.int64())
    with open(log, "w") as out:
        try:
            tbl = riffledb.connect(path).create_table(
                "t", pa.table({"id": ids}), exist_ok=exist_ok
            )
            seen = ",".join(str(i) for i in tbl.to_arrow()["id"].to_pylist())
            out.write(f"ok {tbl.version} {seen}\n")
        except Exception as e:  # noqa: BLE001 - every failure is recorded
            out.write(f"err {type(e).__name__}\n")


@pytest.mark.parametrize("exist_ok", [True, False])
def test_creators_racing_in_processes(tmp_path, exist_ok):
    for round_ in range(2):
        path = tmp_path / f"db{round_}"
        riffledb.connect(path)
        go_r, go_w = os.pipe()
        logs = [tmp_path / f"creator{round_}-{c}.log" for c in range(4)]
        pids = [
            _fork(_create_racer, path, c, logs[c], exist_ok, go_r)
            for c in range(len(logs))
        ]
        os.write(go_w, b"g" * len(pids))
        os.close(go_w)
        os.close(go_r)
        assert [wait_child(pid, timeout=60) for pid in pids] == [0] * len(pids)
        results = [log.read_text().split() for log in logs]
        won = [r for r in results if r[0] == "ok"]
        table = riffledb.connect(path).open_table("t")
        assert [v["version"] for v in table.list_versions()] == [1]
        ids = ",".join(str(i) for i in table.to_arrow()["id"].to_pylist())
        if exist_ok:
            # Every creator got the one table that was created.
            assert won == [["ok", "1", ids]] * len(pids)
        else:
            assert won == [["ok", "1", ids]]
            assert sorted(r for r in results if r[0] == "err") == [
                ["err", "TableExistsError"]
            ] * (len(pids) - 1)


@pytest.mark.parametrize("new_versions", [1, INITIAL, INITIAL + 2])
def test_handles_of_a_table_dropped_and_created_again_see_the_new_one(
    tmp_path, new_versions
):
    """Regression: a handle opened before another connection dropped the table and
    created it again with as many versions appended to the old table's fragment list
    (its store's cached manifest) as the new table's next version, whose files were
    gone: the new table's newest version no longer read ("No such file"). And
    checkout_latest() stayed on the old table."""
    path = str(tmp_path)
    db = _create(path)
    writer, reader = db.open_table("t"), db.open_table("t")
    other = riffledb.connect(path)
    other.drop_table("t")
    new = other.create_table("t", pa.table({"id": pa.array([100, 101], pa.int64())}))
    for v in range(1, new_versions):
        new.add(pa.table({"id": pa.array([100 + 2 * v, 101 + 2 * v], pa.int64())}))
    new_ids = list(range(100, 100 + 2 * new_versions))

    reader.checkout_latest()
    assert reader.version == new_versions
    assert reader.to_arrow()["id"].to_pylist() == new_ids

    writer.add(pa.table({"id": pa.array([7], pa.int64())}))
    assert writer.version == new_versions + 1
    fresh = riffledb.connect(path).open_table("t")
    assert fresh.version == new_versions + 1
    assert fresh.to_arrow()["id"].to_pylist() == new_ids + [7]
    versions = fresh.list_versions()
    assert [v["version"] for v in versions] == list(range(1, new_versions + 2))
    assert not any("damaged" in v for v in versions)
