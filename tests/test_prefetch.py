"""Permutation.iter(..., prefetch=N): batches read ahead by riffledb's native threads
(the cpp loader layer) are the batches of a plain iteration, in every format and view;
stats, early close, argument errors, and fork."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pytest
from harness.hang import wait_child

import riffledb
from riffledb import _riffledb
from riffledb.permutation import Permutation, permutation_builder

ROWS = 1000


@pytest.fixture
def permutation(tmp_path):
    ids = np.arange(ROWS)
    table = riffledb.connect(tmp_path).create_table(
        "t",
        pa.table(
            {
                "id": ids,
                "x": ids / 2,
                "flag": ids % 3 == 0,
                "name": [f"row{i}" for i in ids],
                "emb": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.repeat(ids, 4).astype(np.float32)), 4
                ),
            }
        ),
    )
    perm = permutation_builder(table).shuffle(seed=3).execute()
    return Permutation.from_tables(table, perm)


def ids_of(batches, fmt):
    out = []
    for batch in batches:
        if fmt == "arrow":
            out.extend(batch.column("id").to_pylist())
        elif fmt == "python":
            out.extend(row["id"] for row in batch)
        elif fmt in ("numpy_dict", "torch_col_dict", "torch"):
            column = batch["id"] if isinstance(batch, dict) else [r["id"] for r in batch]
            out.extend(int(v) for v in column)
        elif fmt == "pandas":
            out.extend(batch["id"].tolist())
        else:
            raise AssertionError(fmt)
    return out


@pytest.mark.parametrize("fmt", ["arrow", "python", "numpy_dict", "pandas"])
@pytest.mark.parametrize(
    "batch_size, drop_last", [(64, False), (64, True), (1000, False)]
)
def test_prefetched_batches_are_the_plain_batches(
    permutation, fmt, batch_size, drop_last
):
    p = permutation.with_format(fmt)
    plain = list(p.iter(batch_size, skip_last_batch=drop_last))
    fetched = list(p.iter(batch_size, skip_last_batch=drop_last, prefetch=3))
    assert len(fetched) == len(plain)
    assert ids_of(fetched, fmt) == ids_of(plain, fmt)
    expected = permutation.row_ids().to_pylist()
    if drop_last:
        expected = expected[: len(expected) // batch_size * batch_size]
    assert ids_of(fetched, fmt) == expected


def test_prefetch_follows_the_view_and_selection(permutation):
    p = (
        permutation.with_skip(100)
        .with_take(500)
        .with_repeat(2)
        .select_columns(["emb", "id"])
        .with_format("numpy_dict")
    )
    plain = list(p.iter(128))
    fetched = list(p.iter(128, prefetch=2, prefetch_threads=3))
    assert (
        [list(b) for b in fetched]
        == [["emb", "id"]] * len(plain)
        == [list(b) for b in plain]
    )
    for a, b in zip(plain, fetched, strict=True):
        np.testing.assert_array_equal(a["id"], b["id"])
        np.testing.assert_array_equal(a["emb"], b["emb"])
    assert sum(len(b["id"]) for b in fetched) == 1000


@pytest.mark.parametrize("fmt", ["arrow", "python", "numpy_dict", "torch"])
@pytest.mark.parametrize("batch_size, drop_last", [(64, False), (64, True), (300, False)])
def test_coalesced_reads_are_split_into_the_plain_batches(
    permutation, monkeypatch, fmt, batch_size, drop_last
):
    # The path of a remote table (reads of REMOTE_READ_ROWS // batch_size batches,
    # handed out as zero-copy slices), taken here over a local one: the slices of the
    # fixed-size list column "emb" too are the plain batches' rows.
    import riffledb.permutation as module

    p = permutation.with_skip(10).with_format(fmt)
    if fmt == "torch":
        p = p.select_columns(["id", "emb", "x"])
    plain = list(p.iter(batch_size, skip_last_batch=drop_last))
    monkeypatch.setattr(module, "is_remote", lambda table: True)
    it = p.iter(batch_size, skip_last_batch=drop_last, prefetch=2)
    fetched = list(it)
    assert len(fetched) == len(plain)
    assert ids_of(fetched, fmt) == ids_of(plain, fmt)
    for a, b in zip(plain, fetched, strict=True):
        if fmt == "arrow":
            assert a.equals(b)
        elif fmt == "python":
            assert a == b
        elif fmt == "numpy_dict":
            np.testing.assert_array_equal(a["emb"], b["emb"])
        else:  # torch: a dict of tensors per row
            assert [r["emb"].tolist() for r in a] == [r["emb"].tolist() for r in b]
    assert it.stats["batches"] == len(plain)
    assert it.stats["rows"] == len(ids_of(plain, fmt))


def test_a_native_batch_slices_without_a_copy(permutation):
    reader = permutation._view()
    bound, schema, _ = permutation._selection()
    batch = reader.read_batch(0, 10, False, bound)
    ids = batch.to_arrow(schema)["id"].to_pylist()
    assert batch.slice(3, 4).to_arrow(schema)["id"].to_pylist() == ids[3:7]
    assert batch.slice(8, 100).num_rows == 2  # clamped to the batch
    assert batch.slice(10, 1).num_rows == batch.slice(50, 1).num_rows == 0
    with pytest.raises(IndexError, match="must be >= 0"):
        batch.slice(-1, 2)


def test_stats_and_close(permutation):
    it = permutation.with_format("arrow").iter(100, prefetch=2)
    assert it.stats["batches"] == 0  # nothing read before the first next
    first = next(it)
    assert first.num_rows == 100
    stats = it.stats
    assert stats["batches"] == 1 and stats["rows"] == 100
    assert stats["bytes"] > 100 * 8 and stats["io_s"] > 0
    assert set(stats) == {
        "io_s", "wait_s", "convert_s", "transform_s", "batches", "rows", "bytes",
        "queued_batches", "queued_rows", "queued_bytes",
    }  # fmt: skip
    it.close()
    assert list(it) == []
    assert it.stats["queued_batches"] == 0


def test_a_small_byte_bound_still_reads_everything(permutation):
    batches = list(
        permutation.with_format("arrow").iter(10, prefetch=8, prefetch_bytes=1)
    )
    assert sum(b.num_rows for b in batches) == ROWS


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"prefetch": -1},
            ValueError,
            r"prefetch must be in \[0, 9223372036854775807\], got -1",
        ),
        (
            {"prefetch": 2, "prefetch_bytes": 0},
            ValueError,
            r"prefetch_bytes must be in \[1, ",
        ),
        (
            {"prefetch": 2, "prefetch_threads": 0},
            ValueError,
            r"prefetch_threads must be in \[1, ",
        ),
        ({"prefetch": 1.5}, TypeError, "prefetch must be an integer, got float 1.5"),
        ({"prefetch": True}, TypeError, "prefetch must be an integer, got bool True"),
    ],
)
def test_bad_prefetch_arguments(permutation, kwargs, error, message):
    with pytest.raises(error, match=message):
        permutation.iter(10, **kwargs)


def test_the_wait_holds_the_gil_for_a_switch_interval(permutation):
    # A release beside a thread busy in Python costs a switch interval, so next() holds
    # the GIL (asleep) that long before it lets go of it: the interpreter's setting.
    it = permutation.with_format("arrow").iter(10, prefetch=2)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.002)
    try:
        next(it)
    finally:
        sys.setswitchinterval(before)
    assert it._prefetch.native.hold_us == 2000
    reads = [(permutation._view(), permutation._selection()[0], 0, 10, 0)]
    with pytest.raises(ValueError, match="hold_us must be >= 0"):
        _riffledb.Prefetcher.start(reads, 1, 1, 1 << 20, -1)
    for hold_us, hold in ((0, True), (5000, False)):
        # No hold (none configured, or not this call's): it waits without the GIL.
        native = _riffledb.Prefetcher.start(reads, 1, 1, 1 << 20, hold_us)
        tag, batch = native.next(hold=hold)
        assert tag == 0 and batch.to_arrow(permutation._selection()[1]).num_rows == 10
        assert native.next(hold=hold) is None


def test_a_transform_error_comes_with_its_batch(permutation):
    def fails_on_the_third(batch):
        fails_on_the_third.calls += 1
        if fails_on_the_third.calls == 3:
            raise RuntimeError("bad batch")
        return batch

    fails_on_the_third.calls = 0
    it = permutation.with_transform(fails_on_the_third).iter(100, prefetch=4)
    assert next(it).num_rows == 100 and next(it).num_rows == 100
    with pytest.raises(RuntimeError, match="bad batch"):
        next(it)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_must_start_its_own(permutation):
    it = permutation.with_format("arrow").iter(50, prefetch=2)
    next(it)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            try:
                next(it)
            except ValueError as error:
                if "started in another process" in str(error):
                    # A new iterator in the child works.
                    fresh = permutation.with_format("arrow").iter(50, prefetch=2)
                    code = 0 if sum(b.num_rows for b in fresh) == ROWS else 2
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    assert sum(b.num_rows for b in it) == ROWS - 50
