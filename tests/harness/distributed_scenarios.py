"""What test_streaming.py runs on real process groups: ``world`` ranks started with
``torch.multiprocessing.spawn``, joined on gloo over 127.0.0.1, each reading a
:class:`riffledb.streaming.StreamingDataset` that takes its rank and world size from the
group. Each rank writes what it saw to ``<out>/rank<r>.json``; the test compares ranks,
world sizes and checkpoints. :func:`launch` runs in a hang-detected child (harness.hang).
"""

from __future__ import annotations

import json
import os
import uuid

import riffledb
from riffledb.streaming import StreamingDataset

NUM_ROWS = 480
NUM_SPLITS = 12
GLOBAL_BATCH = 24  # two rows per split per global step
SEED = 5
CHECKPOINT_STEP = 7  # of NUM_ROWS // GLOBAL_BATCH = 20


def launch(world: int, db_uri: str, out: str, plan: list[str]) -> list[dict]:
    """Runs ``plan`` (scenario names, in order) on ``world`` ranks; returns each rank's
    results."""
    import torch.multiprocessing as mp

    # The ranks meet through a file of their own, not a port picked beforehand (freed,
    # then bound by rank 0, another process, pytest's other worker say, could take it in
    # between); gloo's connections between them bind ports of their own choosing.
    rendezvous = os.path.join(out, f"rendezvous-{uuid.uuid4().hex}")
    mp.spawn(
        _rank_main, args=(world, rendezvous, db_uri, out, plan), nprocs=world, join=True
    )
    results = []
    for rank in range(world):
        with open(os.path.join(out, f"rank{rank}.json")) as f:
            results.append(json.load(f))
    return results


def _rank_main(
    rank: int, world: int, rendezvous: str, db_uri: str, out: str, plan
) -> None:
    import torch.distributed as dist

    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world
    )
    try:
        table = riffledb.connect(db_uri).open_table("data")
        results = {}
        for name in plan:
            results[name] = SCENARIOS[name](table, rank, world, out)
            dist.barrier()
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


def _dataset(table, **kwargs) -> StreamingDataset:
    # No rank or world size: they come from the process group.
    return StreamingDataset(table, num_splits=NUM_SPLITS, shuffle_seed=SEED, **kwargs)


def _steps(iterator, micro: int, steps: int | None = None) -> list[list[int]]:
    """Micro-batches of ``micro`` ids until the iterator ends (or ``steps`` of them)."""
    out = []
    while steps is None or len(out) < steps:
        batch = []
        for row in iterator:
            batch.append(row["id"])
            if len(batch) == micro:
                break
        if len(batch) < micro:
            assert not batch, f"a short micro-batch {batch}"
            break
        out.append(batch)
    return out


def epoch(table, rank: int, world: int, out: str) -> dict:
    """One epoch: the rank's micro-batches, and what the group told the dataset."""
    ds = _dataset(table)
    return {
        "rank": ds.rank,
        "world_size": ds.world_size,
        "steps": _steps(iter(ds), GLOBAL_BATCH // world),
    }


def checkpoint(table, rank: int, world: int, out: str) -> dict:
    """CHECKPOINT_STEP global steps, then the merged state of every rank, saved by
    rank 0 to ``<out>/checkpoint.json``."""
    import torch.distributed as dist

    ds = _dataset(table)
    iterator = iter(ds)
    steps = _steps(iterator, GLOBAL_BATCH // world, CHECKPOINT_STEP)
    states = [None] * world
    dist.all_gather_object(states, ds.state_dict())
    merged = StreamingDataset.merge_state_dicts(states)
    if rank == 0:
        with open(os.path.join(out, "checkpoint.json"), "w") as f:
            json.dump(merged, f)
    return {"steps": steps, "state": merged}


def resume(table, rank: int, world: int, out: str) -> dict:
    """Loads ``<out>/checkpoint.json`` (written by another world size) and reads the
    rest of the epoch."""
    ds = _dataset(table)
    with open(os.path.join(out, "checkpoint.json")) as f:
        ds.load_state_dict(json.load(f))
    return {"steps": _steps(iter(ds), GLOBAL_BATCH // world)}


def ddp(table, rank: int, world: int, out: str) -> dict:
    """A short DistributedDataParallel run: a linear model fit to y = 2x + 1 over
    StreamingDataLoader batches, two epochs (the second by iterating again)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from riffledb.streaming import StreamingDataLoader

    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(1, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    ds = _dataset(table, columns=["x", "y"])
    loader = StreamingDataLoader(ds, batch_size=GLOBAL_BATCH // world)
    losses = []
    steps = 0
    for _ in range(2):
        for batch in loader:
            x = batch["x"].float().unsqueeze(1)
            y = batch["y"].float().unsqueeze(1)
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss))
            steps += 1
    weight = [float(p) for p in model.module.parameters() for p in p.detach().flatten()]
    return {
        "steps": steps,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "params": weight,
        "epoch": ds.epoch,
    }


SCENARIOS = {"epoch": epoch, "checkpoint": checkpoint, "resume": resume, "ddp": ddp}
