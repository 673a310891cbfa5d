"""Scenarios over remote tables run in a hang-detected child (harness/hang.py): torch
DataLoader workers (fork, spawn, forkserver) reading a table of ``riffledb serve``."""

from __future__ import annotations

import functools

import numpy as np

import riffledb


def _ids_collate(table):
    return table.column("id").to_numpy().copy()


def dataloader_ids(url: str, name: str, context: str, workers: int) -> list[int]:
    """Every id a DataLoader over the remote table yields, in the order it yields them."""
    import torch

    db = riffledb.connect(
        "db://test",
        api_key="",
        host_override=url,
        client_config={"retry_config": {"retries": 2}},
    )
    table = db.open_table(name)
    len(table)  # the parent's connection is warm (and pooled) before the workers start
    loader = torch.utils.data.DataLoader(
        table,
        batch_size=16,
        shuffle=True,
        num_workers=workers,
        multiprocessing_context=context,
        collate_fn=_ids_collate,
        timeout=60,
    )
    ids = np.concatenate(list(loader)).tolist()
    assert len(table) == len(ids)  # the parent's connection still works
    return ids


def dataloader_scenarios(url: str, name: str):
    for context, workers in (("fork", 2), ("spawn", 1), ("forkserver", 1)):
        yield context, functools.partial(dataloader_ids, url, name, context, workers)


def _perm_ids_collate(rows):
    return np.asarray([row["id"] for row in rows], dtype=np.int64)


def permutation_loader_ids(url: str, name: str, context: str, workers: int) -> dict:
    """What a DataLoader over a shuffled split of the remote table yields (ids in
    order), and that split's ids read in the parent."""
    import torch

    from riffledb.permutation import Permutation, permutation_builder

    db = riffledb.connect("db://test", api_key="", host_override=url)
    table = db.open_table(name)
    perm_table = (
        permutation_builder(table)
        .split_random(ratios=[0.75, 0.25], seed=3, split_names=["train", "test"])
        .shuffle(seed=11)
        .execute()
    )
    perm = Permutation.from_tables(table, perm_table, "train").select_columns(["id"])
    expected = [row["id"] for row in perm.take_offsets(list(range(len(perm))))]
    loader = torch.utils.data.DataLoader(
        perm,
        batch_size=16,
        shuffle=False,
        num_workers=workers,
        multiprocessing_context=context,
        collate_fn=_perm_ids_collate,
        timeout=60,
    )
    got = np.concatenate(list(loader)).tolist()
    assert len(perm.take_offsets([0])) == 1  # the parent's reader still works
    return {"got": got, "expected": expected}


def permutation_loader_scenarios(url: str, name: str):
    for context, workers in (("fork", 2), ("spawn", 2), ("forkserver", 1)):
        yield (
            context,
            functools.partial(permutation_loader_ids, url, name, context, workers),
        )


def streaming_rank_ids(url: str, name: str, rank: int, workers: int) -> list[int]:
    """Every id rank ``rank`` of 2 reads from a StreamingDataset over the remote table
    (through ``workers`` spawn DataLoader workers when > 0)."""
    import torch

    from riffledb.streaming import StreamingDataset

    db = riffledb.connect("db://test", api_key="", host_override=url)
    dataset = StreamingDataset(
        db.open_table(name),
        rank=rank,
        world_size=2,
        num_splits=4,
        shuffle_seed=5,
        read_batch_size=8,
        columns=["id"],
    )
    if workers == 0:
        return [row["id"] for row in dataset]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        multiprocessing_context="spawn",
        timeout=60,
    )
    return [int(row["id"]) for row in loader]


def streaming_scenarios(url: str, name: str):
    yield "rank0", functools.partial(streaming_rank_ids, url, name, 0, 0)
    yield "rank1", functools.partial(streaming_rank_ids, url, name, 1, 2)
