"""riffledb.streaming beyond LanceDB's tests (test_elastic_dataloader.py): passes and
epochs, progress followed through DataLoader workers of every start method,
StreamingDataLoader's exact checkpoints, pickling, argument errors, and real process
groups (gloo on 127.0.0.1, 2 and 4 ranks) with a short DDP run."""

from __future__ import annotations

import os
import pickle

import pyarrow as pa
import pytest
from harness.hang import run_in_child

import riffledb

torch = pytest.importorskip("torch")
streaming = pytest.importorskip("riffledb.streaming")
StreamingDataset = streaming.StreamingDataset
StreamingDataLoader = streaming.StreamingDataLoader

ROWS = 120
SPLITS = 12


@pytest.fixture
def table(tmp_path):
    db = riffledb.connect(tmp_path)
    return db.create_table("data", pa.table({"id": list(range(ROWS))}))


def ids(rows) -> list[int]:
    return [row["id"] for row in rows]


def one_pass(ds) -> list[int]:
    return ids(ds)


# -- passes and epochs -------------------------------------------------------------------


def test_iterating_again_reads_the_next_epoch(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    assert ds.epoch == 0
    first = one_pass(ds)
    assert ds.epoch == 1
    second = one_pass(ds)
    assert ds.epoch == 2
    assert sorted(first) == sorted(second) == list(range(ROWS))
    assert first != second
    # The second pass is what a dataset built for epoch 1 reads.
    assert second == one_pass(
        StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3, epoch=1)
    )


def test_set_epoch_chooses_the_pass(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    expected = one_pass(
        StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3, epoch=4)
    )
    ds.set_epoch(4)
    assert ds.epoch == 4
    assert one_pass(ds) == expected
    # Setting the epoch whose pass is over starts it again.
    ds.set_epoch(4)
    assert one_pass(ds) == expected


def test_set_epoch_of_the_current_epoch_keeps_its_progress(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    full = one_pass(StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3))
    it = iter(ds)
    head = [next(it)["id"] for _ in range(30)]
    it.close()
    ds.set_epoch(0)  # a resumed loop calls set_epoch as usual
    assert head + one_pass(ds) == full


def test_a_broken_off_pass_resumes_where_it_stopped(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    full = one_pass(StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3))
    seen = []
    for row in ds:
        seen.append(row["id"])
        if len(seen) == 17:  # mid-cycle: the position of each split is exact
            break
    assert ds.state_dict()["positions_consumed_per_split"] == [2] * 5 + [1] * 7
    assert seen + one_pass(ds) == full
    assert ds.epoch == 1


def _fails_on_multiples_of_7(batch):
    values = batch.column("id").to_pylist()
    if any(v % 7 == 0 for v in values):
        raise ValueError("bad row")
    return batch.to_pylist()


def test_a_mid_cycle_checkpoint_with_skipped_rows_resumes_exactly(table):
    kwargs = dict(
        num_splits=SPLITS,
        shuffle_seed=3,
        transform=_fails_on_multiples_of_7,
        on_transform_error="skip",
    )
    full = one_pass(StreamingDataset(table, **kwargs))
    assert not any(v % 7 == 0 for v in full)
    ds = StreamingDataset(table, **kwargs)
    it = iter(ds)
    head = [next(it)["id"] for _ in range(41)]
    state = ds.state_dict()
    it.close()
    # Skipped rows the loop has passed (the pipeline has skipped more, read ahead).
    assert 0 < sum(state["rows_skipped_per_split"]) <= ds.rows_skipped
    resumed = StreamingDataset(table, **kwargs)
    resumed.load_state_dict(state)
    assert head + one_pass(resumed) == full


def test_state_dict_after_a_pass_is_the_next_epoch(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    one_pass(ds)
    assert ds.state_dict() == {
        "shuffle_seed": 3,
        "num_splits": SPLITS,
        "epoch": 1,
        "samples_consumed_per_split": [0] * SPLITS,
        "positions_consumed_per_split": [0] * SPLITS,
        "rows_skipped_per_split": [0] * SPLITS,
        "rows_per_split": 10,
        "table_version": 1,
    }


def test_load_state_dict_takes_the_checkpoint_epoch(table):
    source = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3, epoch=2)
    it = iter(source)
    head = [next(it)["id"] for _ in range(24)]
    state = source.state_dict()
    it.close()
    assert state["epoch"] == 2 and state["samples_consumed_per_split"] == [2] * SPLITS
    resumed = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)  # epoch 0
    resumed.load_state_dict(state)
    assert resumed.epoch == 2
    full = one_pass(StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3, epoch=2))
    assert head + one_pass(resumed) == full


def test_the_table_version_is_pinned(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    table.add(pa.table({"id": list(range(ROWS, ROWS + 60))}))
    assert len(ds) == ROWS
    assert sorted(one_pass(ds)) == list(range(ROWS))
    assert sorted(one_pass(ds)) == list(range(ROWS))  # epoch 1 is rebuilt at the pin


def test_len_is_the_rows_of_this_rank(table):
    assert len(StreamingDataset(table, num_splits=SPLITS, rank=1, world_size=4)) == 30
    ds = StreamingDataset(table, num_splits=7)  # 120 = 7 * 17 + 1
    assert ds.rows_per_split == 17 and len(ds) == 119
    assert len(one_pass(ds)) == 119


# -- argument errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"rank": 4, "world_size": 4},
            ValueError,
            r"rank \(4\) must be less than world_size \(4\)",
        ),
        (
            {"world_size": 0},
            ValueError,
            r"world_size must be in \[1, 9223372036854775807\], got 0",
        ),
        (
            {"rank": -1, "world_size": 2},
            ValueError,
            r"rank must be in \[0, 9223372036854775807\], got -1",
        ),
        (
            {"num_splits": 10, "world_size": 4},
            ValueError,
            r"num_splits \(10\) must be divisible by world_size \(4\)",
        ),
        ({"num_splits": "4"}, TypeError, "num_splits must be an integer, got str '4'"),
        (
            {"read_batch_size": 0},
            ValueError,
            r"read_batch_size must be in \[1, 9223372036854775807\], got 0",
        ),
        (
            {"prefetch_batches": 0},
            ValueError,
            r"prefetch_batches must be in \[1, 9223372036854775807\], got 0",
        ),
        (
            {"shuffle_clump_size": 0},
            ValueError,
            r"shuffle_clump_size must be in \[1, 9223372036854775807\], got 0",
        ),
        ({"columns": "id"}, TypeError, "columns must be a list of str, got str 'id'"),
        ({"filter": 3}, TypeError, "filter must be a str or None, got int 3"),
        ({"transform": 3}, TypeError, "transform must be callable, got int"),
        (
            {"on_transform_error": "ignore"},
            ValueError,
            "on_transform_error must be 'raise', 'skip', 'warn', or a callable, "
            "got 'ignore'",
        ),
        ({"num_splits": 121}, ValueError, "at least 1 row per split"),
    ],
)
def test_bad_arguments(table, kwargs, error, message):
    with pytest.raises(error, match=message):
        StreamingDataset(table, **kwargs)


def test_not_a_table():
    with pytest.raises(
        TypeError, match="StreamingDataset needs a riffledb Table, got list"
    ):
        StreamingDataset([1, 2, 3])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"samples_consumed_per_split": [1] * 3}, r"must be a list of 12 counts"),
        (
            {"positions_consumed_per_split": [0] * SPLITS},
            r"split 0 has position 0 below its 1",
        ),
        ({"samples_consumed_per_split": [-1] * SPLITS}, r"\[0\] must be a count, got -1"),
        ({"epoch": "one"}, r"state\['epoch'\] must be an integer, got str 'one'"),
    ],
)
def test_load_state_dict_rejects_malformed_states(table, change, message):
    ds = StreamingDataset(table, num_splits=SPLITS)
    state = {
        "shuffle_seed": 0,
        "num_splits": SPLITS,
        "epoch": 0,
        "samples_consumed_per_split": [1] * SPLITS,
        "positions_consumed_per_split": [1] * SPLITS,
    }
    state.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        ds.load_state_dict(state)


def test_load_state_dict_names_a_missing_key(table):
    ds = StreamingDataset(table, num_splits=SPLITS)
    with pytest.raises(ValueError, match="state has no 'shuffle_seed'"):
        ds.load_state_dict({"num_splits": SPLITS})


# -- pickling ----------------------------------------------------------------------------


def test_pickle_copies_the_progress(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=9)
    it = iter(ds)
    head = [next(it)["id"] for _ in range(36)]
    it.close()
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.state_dict() == ds.state_dict()
    rest = one_pass(copy)
    assert sorted(head + rest) == list(range(ROWS))
    # The copy's progress is its own.
    assert ds.state_dict()["samples_consumed_per_split"] == [3] * SPLITS


def test_pickle_while_iterating_is_refused(table):
    ds = StreamingDataset(table, num_splits=SPLITS)
    it = iter(ds)
    next(it)
    with pytest.raises(RuntimeError, match="while it is iterating"):
        pickle.dumps(ds)
    it.close()
    pickle.dumps(ds)


# -- DataLoader workers (in a hang-detected child) ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_read_each_row_once_and_the_main_process_follows(tmp_path, method):
    from harness import streaming_scenarios

    riffledb.connect(tmp_path).create_table("data", pa.table({"id": list(range(ROWS))}))
    result = run_in_child(
        streaming_scenarios.workers_two_epochs,
        str(tmp_path),
        method,
        what=f"StreamingDataset with 2 {method} workers",
    )
    first, second = result["epochs"]
    assert sorted(first) == sorted(second) == list(range(ROWS))
    assert first != second
    assert result["expected"] == [first, second]
    # The main process saw both passes end, and the workers' counters.
    assert result["epoch_after"] == [1, 2]
    assert result["consumed_rows"] == ROWS
    assert result["bytes_loaded"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_streaming_dataloader_checkpoints_are_exact_with_workers(tmp_path, method):
    from harness import streaming_scenarios

    riffledb.connect(tmp_path).create_table("data", pa.table({"id": list(range(ROWS))}))
    result = run_in_child(
        streaming_scenarios.loader_break_and_resume,
        str(tmp_path),
        method,
        what=f"StreamingDataLoader with 2 {method} workers",
    )
    taken, again, resumed = result["taken"], result["again"], result["resumed"]
    # 5 batches of 6 from alternating workers: 3 from worker 0, 2 from worker 1.
    assert len(taken) == 30
    assert result["positions"] == [3] * 6 + [2] * 6
    # Iterating the loader again, and a new dataset from the checkpoint, both carry on
    # with exactly the rows the loop had not taken.
    assert sorted(taken + again) == list(range(ROWS))
    assert sorted(taken + resumed) == list(range(ROWS))
    # A plain DataLoader's dataset follows what the workers read, which is at least
    # what the loop took (more when they had prefetched).
    plain = result["plain_loader_positions"]
    assert all(p >= q for p, q in zip(plain, result["positions"], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_streaming_dataloader_runs_epoch_after_epoch(tmp_path, method):
    # Regression: workers used to adopt the main process's record of what its loop had
    # taken, overwriting the shared progress; the second pass then never ended its
    # epoch.
    from harness import streaming_scenarios

    riffledb.connect(tmp_path).create_table("data", pa.table({"id": list(range(ROWS))}))
    result = run_in_child(
        streaming_scenarios.loader_epochs,
        str(tmp_path),
        method,
        what=f"3 passes of a StreamingDataLoader with 2 {method} workers",
    )
    assert result["epochs"] == result["expected"]
    assert all(sorted(ids) == list(range(ROWS)) for ids in result["epochs"])
    assert result["epoch_after"] == [1, 2, 3]


@pytest.mark.slow
def test_example_ddp_train_resumes_on_another_world_size(tmp_path):
    """examples/ddp_train.py under torchrun: stopped after 30 steps on 2 ranks, resumed
    on 3 ranks with 2 DataLoader workers each, it ends both epochs at step 100."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "ddp_train.py"
    env = dict(os.environ, PYTHONPATH=str(example.parent.parent / "python"))

    def torchrun(ranks: int, *args: str) -> str:
        command = [
            sys.executable, "-m", "torch.distributed.run",
            "--standalone", f"--nproc_per_node={ranks}", str(example),
            "--data", str(tmp_path / "data"), "--rows", "4800",
            "--steps-per-checkpoint", "10", *args,
        ]  # fmt: skip
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = torchrun(2, "--stop-after", "30")
    assert "step 30: loss" in first and "stopping at step 30" in first
    second = torchrun(3, "--workers", "2")
    lines = [line for line in second.splitlines() if not line.startswith("step")]
    assert lines == [
        "resumed at step 30, epoch 0, on 3 ranks",
        "epoch 0 done at step 50",
        "epoch 1 done at step 100",
        "learned y = 3.00 x0 + -2.00 x1 + 0.50",
    ]


# -- torch.distributed: real process groups ---------------------------------------------


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory):
    """One epoch on 2 and on 4 ranks; a checkpoint on 2 ranks resumed on 4; a short
    DDP run on 2 ranks. Two launches (ranks start slowly: each imports torch)."""
    import numpy as np
    from harness import distributed_scenarios as ds

    root = tmp_path_factory.mktemp("distributed")
    n = ds.NUM_ROWS
    x = np.linspace(-1, 1, n)
    riffledb.connect(root / "db").create_table(
        "data", pa.table({"id": np.arange(n), "x": x, "y": 2 * x + 1})
    )
    out = root / "out"
    out.mkdir()
    two = run_in_child(
        ds.launch,
        2,
        str(root / "db"),
        str(out),
        ["epoch", "checkpoint", "ddp"],
        what="2 ranks on gloo",
        timeout=240,
    )
    four = run_in_child(
        ds.launch,
        4,
        str(root / "db"),
        str(out),
        ["epoch", "resume"],
        what="4 ranks on gloo",
        timeout=240,
    )
    table = riffledb.connect(root / "db").open_table("data")
    return {2: two, 4: four, "table": table}


def _global_steps(ranks: list[dict], key: str) -> list[list[int]]:
    per_rank = [rank[key]["steps"] for rank in ranks]
    assert len({len(steps) for steps in per_rank}) == 1, "ranks ran different step counts"
    return [
        sorted(sum((steps[k] for steps in per_rank), [])) for k in range(len(per_rank[0]))
    ]


@pytest.mark.slow
def test_distributed_rank_and_world_size_come_from_the_group(distributed_runs):
    for world in (2, 4):
        ranks = distributed_runs[world]
        assert [(r["epoch"]["rank"], r["epoch"]["world_size"]) for r in ranks] == [
            (rank, world) for rank in range(world)
        ]


@pytest.mark.slow
def test_distributed_epoch_reads_every_row_once_with_the_same_global_batches(
    distributed_runs,
):
    from harness import distributed_scenarios as ds

    reference = StreamingDataset(
        distributed_runs["table"],
        num_splits=ds.NUM_SPLITS,
        shuffle_seed=ds.SEED,
        rank=0,
        world_size=1,
    )
    rows = ids(reference)
    single = [
        sorted(rows[k : k + ds.GLOBAL_BATCH])
        for k in range(0, len(rows), ds.GLOBAL_BATCH)
    ]
    assert len(single) == ds.NUM_ROWS // ds.GLOBAL_BATCH
    for world in (2, 4):
        steps = _global_steps(distributed_runs[world], "epoch")
        assert sorted(sum(steps, [])) == list(range(ds.NUM_ROWS))
        assert steps == single, f"world size {world} made other global batches"


@pytest.mark.slow
def test_distributed_checkpoint_resumes_on_another_world_size(distributed_runs):
    from harness import distributed_scenarios as ds

    before = _global_steps(distributed_runs[2], "checkpoint")
    after = _global_steps(distributed_runs[4], "resume")
    assert len(before) == ds.CHECKPOINT_STEP
    assert len(before) + len(after) == ds.NUM_ROWS // ds.GLOBAL_BATCH
    assert sorted(sum(before + after, [])) == list(range(ds.NUM_ROWS))
    # ... and the steps after the checkpoint are the ones an uninterrupted run reads.
    assert before + after == _global_steps(distributed_runs[2], "epoch")
    state = distributed_runs[2][0]["checkpoint"]["state"]
    assert state["samples_consumed_per_split"] == [ds.CHECKPOINT_STEP * 2] * ds.NUM_SPLITS


@pytest.mark.slow
def test_distributed_ddp_run_trains_in_step(distributed_runs):
    from harness import distributed_scenarios as ds

    runs = [rank["ddp"] for rank in distributed_runs[2]]
    assert [run["steps"] for run in runs] == [2 * ds.NUM_ROWS // ds.GLOBAL_BATCH] * 2
    assert runs[0]["params"] == runs[1]["params"]  # DDP kept the replicas equal
    assert runs[0]["last_loss"] < runs[0]["first_loss"] / 10
    assert [run["epoch"] for run in runs] == [2, 2]


def test_numpy_rows_collate_into_typed_tensors(tmp_path):
    import numpy as np

    from riffledb.formats import Transforms

    emb = np.arange(ROWS * 3, dtype=np.float32).reshape(ROWS, 3)
    table = riffledb.connect(tmp_path).create_table(
        "emb",
        pa.table(
            {
                "id": np.arange(ROWS),
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 3),
            }
        ),
    )
    ds = StreamingDataset(
        table, num_splits=SPLITS, shuffle_seed=1, transform=Transforms.arrow2numpyrows
    )
    batches = list(torch.utils.data.DataLoader(ds, batch_size=24))
    assert [b["emb"].dtype for b in batches] == [torch.float32] * 5
    assert [tuple(b["emb"].shape) for b in batches] == [(24, 3)] * 5
    ids = torch.cat([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(ROWS))
    np.testing.assert_array_equal(
        torch.cat([b["emb"] for b in batches]).numpy(), emb[ids]
    )


# -- regressions from review -------------------------------------------------------------


def test_streaming_dataloader_refuses_persistent_workers_and_positional_args(table):
    ds = StreamingDataset(table, num_splits=SPLITS)
    with pytest.raises(ValueError, match="does not take persistent_workers=True"):
        StreamingDataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    with pytest.raises(TypeError, match="other arguments by keyword"):
        StreamingDataLoader(ds, 4, False)


def test_a_loop_that_takes_every_row_without_asking_for_more_ends_the_pass(table):
    import itertools

    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    taken = ids(itertools.islice(ds, ROWS))  # the generator is left suspended, then freed
    assert sorted(taken) == list(range(ROWS))
    assert ds.epoch == 1
    expected = one_pass(
        StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3, epoch=1)
    )
    assert one_pass(ds) == expected


@pytest.mark.slow
def test_a_loader_loop_that_takes_every_batch_ends_the_pass(tmp_path):
    from harness import streaming_scenarios

    riffledb.connect(tmp_path).create_table("data", pa.table({"id": list(range(ROWS))}))
    result = run_in_child(
        streaming_scenarios.loader_takes_every_batch_then_stops,
        str(tmp_path),
        "fork",
        what="StreamingDataLoader, every batch taken by zip",
    )
    assert sorted(result["first"]) == list(range(ROWS))
    assert result["epoch_after"] == 1
    assert result["second"] == result["expected_second"]


def test_splits_whose_pass_is_over_are_left_out_and_the_rest_read(table):
    ds = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    full = StreamingDataset(table, num_splits=SPLITS, shuffle_seed=3)
    by_split = [full._permutations(0)[1][s].row_ids().to_pylist() for s in range(SPLITS)]
    # Splits 0 and 1 were read to their end by a loop that stopped (another worker
    # layout, say): a pass reads the other ten, then the epoch is over.
    ds._progress.write(0, 0, 10, 10, 1)
    ds._progress.write(1, 0, 10, 10, 1)
    rest = one_pass(ds)
    assert sorted(rest) == sorted(sum(by_split[2:], []))
    assert ds.epoch == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_records_are_read_whole_while_another_process_writes_them(table):
    from harness.hang import wait_child

    ds = StreamingDataset(table, num_splits=2)
    progress = ds._progress
    pid = os.fork()
    if pid == 0:
        try:
            for n in range(1, 200_000):
                progress.write(1, n, n, n, n % 2)
        finally:
            os._exit(0)
    torn = 0
    reads = 0
    while reads < 200_000:
        epoch, consumed, position, done = progress.record(1)
        torn += not (epoch == consumed == position and done == epoch % 2)
        reads += 1
    assert wait_child(pid) == 0
    assert torn == 0
    # The records end where the counters begin: no split past them is read or written.
    with pytest.raises(IndexError, match="split 2 of 2"):
        progress.record(2)
    with pytest.raises(IndexError, match="split -1 of 2"):
        progress.write(-1, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rows_per_split": 11}, r"rows_per_split mismatch: checkpoint has 11, current "),
        ({"table_version": 7}, r"table_version mismatch: checkpoint has 7, .*checkout"),
        (
            {"positions_consumed_per_split": [11] * SPLITS},
            "split 0 has position 11, past its 10 rows",
        ),
    ],
)
def test_load_state_dict_refuses_another_table(table, change, message):
    ds = StreamingDataset(table, num_splits=SPLITS)
    state = ds.state_dict()
    state.update(change)
    with pytest.raises(ValueError, match=message):
        ds.load_state_dict(state)


def test_numpy_integers_are_integers(table):
    import numpy as np

    ds = StreamingDataset(
        table, num_splits=np.int64(SPLITS), rank=np.int32(1), world_size=np.int64(2)
    )
    assert ds.rank_splits == list(range(6, 12)) and len(ds) == 60
