"""What test_dataloader.py runs in its children: every DataLoader scenario of one start
method, in one spawn child (one torch import per method)."""

from __future__ import annotations

import multiprocessing as mp
import os

import riffledb

from .data import BATCH, KINDS, dataset, memory_table
from .stacks import arm_worker

STORES = {"fork": ["dir", "memory"], "spawn": ["dir"], "forkserver": ["dir", "memory"]}


def _loader(ds, collate, method: str, seed: int, **kwargs):
    import torch

    return torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=2,
        multiprocessing_context=method,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=arm_worker,
        **kwargs,
    )


def _epoch(ds, collate, expected, method, seed):
    batches = list(_loader(ds, collate, method, seed))
    return {"batches": batches, "expected": expected, "parent": os.getpid()}


def _persistent(ds, collate, expected, method):
    loader = _loader(ds, collate, method, 3, persistent_workers=True)
    epochs = [list(loader) for _ in range(2)]
    return {"epochs": epochs, "expected": expected, "parent": os.getpid()}


def _distributed(ds, collate, expected, method, num_replicas):
    import torch

    per_rank = []
    for rank in range(num_replicas):
        sampler = torch.utils.data.DistributedSampler(
            ds,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=5,
            drop_last=False,
        )
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=BATCH,
            sampler=sampler,
            num_workers=2,
            multiprocessing_context=method,
            collate_fn=collate,
            worker_init_fn=arm_worker,
        )
        per_rank.append({"batches": list(loader), "indices": list(sampler)})
    return {"ranks": per_rank, "expected": expected, "parent": os.getpid()}


def dataloader_scenarios(method: str, db_path: str):
    """Every DataLoader scenario of one start method (see harness.hang.Child)."""
    import torch  # noqa: F401  (before the forkserver starts, so its preload is cheap)

    if method == "forkserver":
        mp.set_forkserver_preload(
            ["torch", "riffledb", "riffledb.permutation", "harness.data", __name__]
        )
    tables = {}

    def table(store):
        if store not in tables:
            if store == "dir":
                tables[store] = riffledb.connect(db_path).open_table("t")
            else:
                tables[store] = memory_table()
        return tables[store]

    for store in STORES[method]:
        for kind in KINDS:

            def run(store=store, kind=kind):
                ds, collate, expected = dataset(table(store), kind)
                return _epoch(ds, collate, expected, method, seed=11)

            yield f"{store}-{kind}", run

    def persistent():
        ds, collate, expected = dataset(table("dir"), "split")
        return _persistent(ds, collate, expected, method)

    yield "persistent", persistent

    if method == "fork":

        def distributed():
            ds, collate, expected = dataset(table("dir"), "split")
            return _distributed(ds, collate, expected, method, 2)

        yield "distributed", distributed
