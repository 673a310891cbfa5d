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
