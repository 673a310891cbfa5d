# SPDX-License-Identifier: Apache-2.0
# SPDX-FileCopyrightText: Copyright The LanceDB Authors
# Adapted from lancedb/python/python/tests/test_torch.py (the seed). The pickling and
# multiprocessing Permutation tests come with the pickling issue.

import functools
import pickle
import sys

import pyarrow as pa
import pytest
from harness.data import open_table
from harness.hang import run_in_child
from harness.torch_scenarios import fork_dataloader_batches, spawn_dataloader_ids

import riffledb
from riffledb.permutation import Permutation, Permutations, permutation_builder
from riffledb.util import tbl_to_tensor

torch = pytest.importorskip("torch")


def _one_epoch(batches, values) -> None:
    """The loops below assert on each batch, which an empty loader would pass: the
    epoch must also hold every row once (``values(batch)`` gives a batch's ``a``)."""
    assert len(batches) == 100
    assert sorted(int(v) for b in batches for v in values(b)) == list(range(1000))


def test_table_dataloader(mem_db):
    table = mem_db.create_table("test_table", pa.table({"a": range(1000)}))
    dataloader = torch.utils.data.DataLoader(
        table, collate_fn=tbl_to_tensor, batch_size=10, shuffle=True
    )
    batches = list(dataloader)
    for batch in batches:
        assert batch.size(0) == 1
        assert batch.size(1) == 10
    _one_epoch(batches, lambda b: b[0])


def test_permutation_dataloader(mem_db):
    table = mem_db.create_table("test_table", pa.table({"a": range(1000)}))
    permutation = Permutation.identity(table)
    dataloader = torch.utils.data.DataLoader(permutation, batch_size=10, shuffle=True)
    batches = list(dataloader)
    for batch in batches:
        assert batch["a"].size(0) == 10
    _one_epoch(batches, lambda b: b["a"])

    # The seed's "torch" assertions are those of the later "torch_row" format: at the
    # spec's HEAD "torch" is a list of row dicts (HuggingFace's set_format("torch")),
    # which the default collate turns into a dict of (batch,) tensors.
    permutation = permutation.with_format("torch")
    dataloader = torch.utils.data.DataLoader(permutation, batch_size=10, shuffle=True)
    batches = list(dataloader)
    for batch in batches:
        assert batch["a"].size(0) == 10
        assert batch["a"].dtype == torch.int64
    _one_epoch(batches, lambda b: b["a"])

    permutation = permutation.with_format("torch_row")
    dataloader = torch.utils.data.DataLoader(permutation, batch_size=10, shuffle=True)
    batches = list(dataloader)
    for batch in batches:
        assert batch.size(0) == 10
        assert batch.size(1) == 1
    _one_epoch(batches, lambda b: b[:, 0])

    permutation = permutation.with_format("torch_col")
    dataloader = torch.utils.data.DataLoader(
        permutation, collate_fn=lambda x: x, batch_size=10, shuffle=True
    )
    batches = list(dataloader)
    for batch in batches:
        assert batch.size(0) == 1
        assert batch.size(1) == 10
    _one_epoch(batches, lambda b: b[0])


# riffledb additions: the rows of each batch are exactly the sampled rows, in order.


def _identity(batch):
    return batch


def _shuffled_loaders(dataset, seed: int, collate_fn):
    """A shuffling DataLoader over `dataset` and one over plain indices, same seed."""
    kwargs = {"batch_size": 10, "shuffle": True}
    got = torch.utils.data.DataLoader(
        dataset,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
    indices = torch.utils.data.DataLoader(
        list(range(len(dataset))),
        collate_fn=list,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
    return got, indices


@pytest.mark.parametrize("db_fixture", ["mem_db", "tmp_db"])
def test_table_dataloader_honours_sampled_order(request, db_fixture):
    db = request.getfixturevalue(db_fixture)
    # Values differ from offsets so a row/offset mix-up cannot pass.
    table = db.create_table("t", pa.table({"a": [1000 + i for i in range(1000)]}))
    got, expected = _shuffled_loaders(table, seed=7, collate_fn=_identity)
    batches = list(got)
    expected_batches = list(expected)
    assert len(batches) == len(expected_batches) == 100
    for batch, idx in zip(batches, expected_batches, strict=True):
        assert isinstance(batch, pa.Table)
        assert batch.column_names == ["a"]
        assert batch["a"].to_pylist() == [1000 + i for i in idx]
    seen = sorted(v for b in batches for v in b["a"].to_pylist())
    assert seen == [1000 + i for i in range(1000)]
    # The shuffle is real: the sampled order is not the storage order.
    assert [v for b in batches for v in b["a"].to_pylist()] != seen


def test_table_dataloader_tensor_order(mem_db):
    table = mem_db.create_table(
        "t", pa.table({"a": range(1000), "b": [2 * i for i in range(1000)]})
    )
    got, expected = _shuffled_loaders(table, seed=3, collate_fn=tbl_to_tensor)
    for batch, idx in zip(got, expected, strict=True):
        assert batch.shape == (2, 10)
        assert batch[0].tolist() == idx
        assert batch[1].tolist() == [2 * i for i in idx]


class _FixedSampler(torch.utils.data.Sampler):
    def __init__(self, indices):
        self.indices = indices

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def test_table_dataloader_custom_sampler_with_duplicates(mem_db):
    table = mem_db.create_table("t", pa.table({"a": range(100)}))
    order = [99, 0, 0, 57, 3, 99, 42, 42, 42, 1, 12]
    loader = torch.utils.data.DataLoader(
        table, sampler=_FixedSampler(order), batch_size=4, collate_fn=_identity
    )
    batches = [b["a"].to_pylist() for b in loader]
    assert batches == [[99, 0, 0, 57], [3, 99, 42, 42], [42, 1, 12]]


def test_table_dataloader_after_delete(mem_db):
    table = mem_db.create_table("t", pa.table({"a": range(100)}))
    table.delete("a % 2 = 0")
    assert len(table) == 50
    loader = torch.utils.data.DataLoader(
        table, sampler=_FixedSampler([49, 0, 10]), batch_size=3, collate_fn=tbl_to_tensor
    )
    assert [b.tolist() for b in loader] == [[[99, 1, 21]]]


# Upstream bug (spec §4.5): a shuffling DataLoader over an identity permutation got rows
# in ascending offset order, not the sampled ones.
@pytest.mark.parametrize("db_fixture", ["mem_db", "tmp_db"])
def test_permutation_dataloader_honours_sampled_order(request, db_fixture):
    db = request.getfixturevalue(db_fixture)
    table = db.create_table("t", pa.table({"a": [1000 + i for i in range(1000)]}))
    permutation = Permutation.identity(table).with_skip(100).with_format("torch")
    got, expected = _shuffled_loaders(permutation, seed=11, collate_fn=None)
    batches = list(got)
    expected_batches = list(expected)
    assert len(batches) == len(expected_batches) == 90
    for batch, idx in zip(batches, expected_batches, strict=True):
        assert batch["a"].tolist() == [1100 + i for i in idx]


def test_permutation_dataloader_duplicates_and_embeddings(mem_db):
    emb = pa.list_(pa.float32(), 4)
    table = mem_db.create_table(
        "t",
        pa.table(
            {
                "label": pa.array(range(100), pa.int16()),
                "emb": pa.array([[i, i, i, -i] for i in range(100)], emb),
            }
        ),
    )
    order = [99, 0, 0, 57, 3, 99, 42, 42, 42, 1, 12]
    loader = torch.utils.data.DataLoader(
        Permutation.identity(table).with_format("torch"),
        sampler=_FixedSampler(order),
        batch_size=4,
    )
    batches = list(loader)
    assert [b["label"].tolist() for b in batches] == [
        [99, 0, 0, 57],
        [3, 99, 42, 42],
        [42, 1, 12],
    ]
    assert batches[0]["label"].dtype == torch.int16
    assert batches[0]["emb"].shape == (4, 4)
    assert batches[0]["emb"].dtype == torch.float32
    assert batches[0]["emb"][0].tolist() == [99, 99, 99, -99]


# -- pickling and multi-process DataLoaders (the seed's tests, riffledb names) -----------


def test_permutation_is_picklable(tmp_db):
    """A Permutation must be picklable so it can be used with PyTorch's
    DataLoader when num_workers > 0 (which uses multiprocessing and pickles
    the dataset to pass it to worker processes)."""
    table = tmp_db.create_table("test_table", pa.table({"a": range(1000)}))
    permutation = Permutation.identity(table)

    pickled = pickle.dumps(permutation)
    restored = pickle.loads(pickled)

    assert len(restored) == 1000
    rows = restored.__getitems__([0, 1, 2])
    assert rows == [{"a": 0}, {"a": 1}, {"a": 2}]


def test_permutation_with_memory_base_is_picklable(mem_db):
    """An in-memory base table is inlined into the pickle as Arrow IPC bytes
    and rebuilt on the other side as an in-memory Table, so the
    Permutation round-trips even though the original database can't be
    reopened across processes."""
    table = mem_db.create_table("test_table", pa.table({"a": range(50)}))
    permutation = Permutation.identity(table)

    restored = pickle.loads(pickle.dumps(permutation))

    assert len(restored) == 50
    assert restored.__getitems__([0, 10, 49]) == [{"a": 0}, {"a": 10}, {"a": 49}]


def test_permutation_dataloader_multiprocessing(tmp_path):
    """Using a Permutation with a PyTorch DataLoader that has num_workers > 0
    must work end-to-end. Each worker process gets a pickled copy of the
    dataset and reads batches from it. (Run in a spawned child, so that a hang is
    detected and killed.)"""
    db_uri = str(tmp_path / "db")
    riffledb.connect(db_uri).create_table("test_table", pa.table({"a": range(1000)}))
    seen = run_in_child(
        spawn_dataloader_ids, db_uri, what="A spawn-worker DataLoader", timeout=180
    )
    assert seen == list(range(1000))


def test_permutation_pickle_with_connection_factory(tmp_path):
    """When the user provides a connection_factory, pickling should round-trip
    through that factory rather than introspecting the connection URI. Useful
    for remote / cloud connections where the URI alone isn't reopenable."""
    db = riffledb.connect(tmp_path)
    db.create_table("test_table", pa.table({"a": range(50)}))

    factory = functools.partial(open_table, str(tmp_path))
    permutation = Permutation.identity(factory("test_table")).with_connection_factory(
        factory
    )

    restored = pickle.loads(pickle.dumps(permutation))

    assert len(restored) == 50
    # The factory survives pickling and is what powered base-table reopen.
    assert restored.connection_factory is not None
    assert restored.connection_factory.func is open_table
    assert restored.__getitems__([0, 1, 2]) == [{"a": 0}, {"a": 1}, {"a": 2}]


def test_permutation_with_builder_is_picklable(tmp_db):
    """A Permutation built from a non-identity permutation table must round-trip
    through pickle while preserving the row order defined by the permutation."""
    table = tmp_db.create_table("test_table", pa.table({"a": range(100)}))
    perm_tbl = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=42, split_names=["train", "test"])
        .shuffle(seed=42)
        .execute()
    )
    permutations = Permutations(table, perm_tbl)
    permutation = permutations["train"]
    indices = list(range(len(permutation)))
    expected = permutation.__getitems__(indices)

    restored = pickle.loads(pickle.dumps(permutation))

    assert len(restored) == len(permutation)
    assert restored.__getitems__(indices) == expected


@pytest.mark.skipif(
    sys.platform != "linux",
    reason=(
        "fork() is unavailable on Windows and unsafe on macOS "
        "(Apple frameworks/TLS are not fork-safe)"
    ),
)
def test_permutation_dataloader_fork_workers(tmp_path):
    """A Permutation used by a fork-based DataLoader should not hang.

    PyTorch's DataLoader uses fork-based multiprocessing by default on Linux. The
    permutation's native reader (and Arrow's thread pool) must be usable in, or rebuilt
    by, each forked worker.
    """
    db_uri = str(tmp_path / "db")
    db = riffledb.connect(db_uri)
    db.create_table("test_table", pa.table({"a": list(range(1000))}))

    count = run_in_child(
        fork_dataloader_batches,
        db_uri,
        what="Permutation iterated in a fork-based DataLoader worker",
    )
    assert count == 100
