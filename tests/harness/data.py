"""The tables, permutations and collate functions the multi-process suites build.

Every row is checkable from its id alone (:func:`rows`, :func:`check_rows`), so a child
can report ids and values and the parent can tell a torn or foreign row from a right one.
The collate functions run in DataLoader workers and stamp each batch with the worker's
pid and id. torch is imported lazily: children that do not need it do not pay for its
import (seconds on a busy machine).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

import riffledb
from riffledb.permutation import Permutation, Permutations, permutation_builder

# Rows of the DataLoader tables. Odd, so that a 70 % split (699 rows) is odd too (the
# DistributedSampler pads) and neither 999 nor 699 is a multiple of BATCH.
N_ROWS = 999
BATCH = 33
SPLIT_SEED = 7
EMB_DIM = 32  # float32: 128 bytes a row, so a 16k-row take is split across the pool

BUSY_ROWS = 4000
BUSY_SPLIT = 150  # rows the DataLoader reads per round: 4 batches of 32 and one of 22
BUSY_TAKE = 16384  # offsets per reader-thread take: > 1 MiB of emb, so the pool is used

KINDS = ["table", "identity", "split"]


def rows(start: int, n: int, emb_dim: int = 0) -> pa.Table:
    """Rows ``start .. start+n-1``: ``id``, ``x = id / 2 + 1`` and optionally ``emb``
    (``emb[k] = id + k``), so any row's content can be checked from its id."""
    ids = np.arange(start, start + n, dtype=np.int64)
    columns = {"id": pa.array(ids), "x": pa.array(ids / 2 + 1, pa.float64())}
    if emb_dim:
        emb = (ids[:, None] + np.arange(emb_dim)[None, :]).astype(np.float32)
        columns["emb"] = pa.FixedSizeListArray.from_arrays(
            pa.array(emb.reshape(-1)), emb_dim
        )
    return pa.table(columns)


def check_rows(ids, xs) -> None:
    """Every delivered row is a whole row: its ``x`` matches its ``id``."""
    ids = np.asarray(ids, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.float64)
    bad = np.nonzero(xs != ids / 2 + 1)[0]
    if len(bad):
        i = int(bad[0])
        raise AssertionError(f"row id {ids[i]} came with x={xs[i]}, not {ids[i] / 2 + 1}")


def memory_table(name: str = "m"):
    """A ``memory://`` table of N_ROWS rows in three fragments with deleted rows, so its
    row ids are neither offsets nor contiguous."""
    db = riffledb.connect("memory://")
    t = db.create_table(name, rows(0, 400))
    t.add(rows(400, 400))
    t.add(rows(800, N_ROWS - 800 + 30))
    t.delete("id % 37 = 5")  # ids 5, 42, ..., 1004
    cut = t.to_arrow()["id"].to_pylist()[N_ROWS]
    t.delete(f"id >= {cut}")  # leaves the first N_ROWS of the others
    assert len(t) == N_ROWS, len(t)
    return t


def busy_table(db_path: str | None = None):
    """BUSY_ROWS rows with an ``emb`` of EMB_DIM floats, on disk or in memory."""
    db = riffledb.connect(db_path if db_path else "memory://")
    return db.create_table("busy", rows(0, BUSY_ROWS, EMB_DIM))


def open_table(uri: str, name: str):
    """A connection factory (module level, so that pickle finds it by name)."""
    return riffledb.connect(uri).open_table(name)


def split_table(table, seed: int = SPLIT_SEED):
    """A shuffled 70 / 30 split into "train" and "test"."""
    return (
        permutation_builder(table)
        .split_random(ratios=[0.7, 0.3], seed=seed, split_names=["train", "test"])
        .shuffle(seed=seed)
        .execute()
    )


def split_ids(table, permutation_table, split: int = 0) -> list[int]:
    """The ids of a split's rows, in permutation order, computed without the reader."""
    base = table.search().with_row_id(True).to_arrow()
    by_rowid = dict(zip(base["_rowid"].to_pylist(), base["id"].to_pylist(), strict=True))
    perm = permutation_table.to_arrow()
    return [
        by_rowid[r]
        for r, s in zip(
            perm["row_id"].to_pylist(), perm["split_id"].to_pylist(), strict=True
        )
        if s == split
    ]


def all_rows(permutation) -> list[dict]:
    """Every row of ``permutation`` as Python dicts, in order."""
    return permutation.with_format("python").__getitems__(range(len(permutation)))


def dataset(table, kind: str):
    """``(dataset, collate_fn, expected ids)`` for a dataset kind (one of KINDS)."""
    if kind == "table":
        return table, collate_table, table.to_arrow()["id"].to_pylist()
    if kind == "identity":
        return (
            Permutation.identity(table).with_format("torch"),
            collate_torch,
            table.to_arrow()["id"].to_pylist(),
        )
    if kind == "split":
        pt = split_table(table)
        perm = Permutations(table, pt)["train"].with_format("arrow")
        expected = split_ids(table, pt)
        assert len(perm) == len(expected) == round(0.7 * len(table))
        return perm, collate_arrow, expected
    raise ValueError(kind)


# -- collate functions (module level: they run in the workers) ---------------------------


def _stamp(ids, xs) -> dict:
    import torch

    info = torch.utils.data.get_worker_info()
    return {
        "id": [int(i) for i in ids],
        "x": [float(x) for x in xs],
        "pid": os.getpid(),
        "worker": None if info is None else info.id,
    }


def collate_table(batch: pa.Table) -> dict:
    """For ``Table.__getitems__`` (a ``pa.Table``)."""
    assert isinstance(batch, pa.Table), type(batch)
    return _stamp(batch["id"].to_pylist(), batch["x"].to_pylist())


def collate_arrow(batch: pa.RecordBatch) -> dict:
    """For a permutation in the ``"arrow"`` format."""
    assert isinstance(batch, pa.RecordBatch), type(batch)
    if "emb" in batch.schema.names:
        emb = batch["emb"].values.to_numpy().reshape(len(batch), -1)
        ids = batch["id"].to_numpy()
        if not (emb[:, 0] == ids).all():
            raise AssertionError("emb does not match id")
    return _stamp(batch["id"].to_pylist(), batch["x"].to_pylist())


def collate_torch(batch: list) -> dict:
    """For a permutation in the ``"torch"`` format (a list of row dicts of tensors)."""
    from torch.utils.data import default_collate

    out = default_collate(batch)
    return _stamp(out["id"].tolist(), out["x"].tolist())


def collate_nested(item) -> dict:
    """For harness.fork_torch_scenarios.NestedForkDataset: a batch and the pid of the
    grandchild that re-read it."""
    batch, grandchild = item
    out = collate_arrow(batch)
    out["grandchild"] = grandchild
    return out
