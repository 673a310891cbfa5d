"""What test_streaming.py runs in hang-detected children: StreamingDataset under real
DataLoader workers of one start method."""

from __future__ import annotations

from dataclasses import dataclass

import riffledb
from riffledb.streaming import StreamingDataLoader, StreamingDataset

from .stacks import arm_worker

SPLITS = 12
BATCH = 6
SEED = 3


@dataclass
class WorkerInfo:
    id: int
    num_workers: int


def _dataset(db_uri: str, **kwargs) -> StreamingDataset:
    table = riffledb.connect(db_uri).open_table("data")
    return StreamingDataset(table, num_splits=SPLITS, shuffle_seed=SEED, **kwargs)


def _loader(ds, method: str, loader_class=None, **kwargs):
    """A DataLoader (or ``loader_class``) over ``ds``: 2 workers of ``method``, batches
    of BATCH, a deadline, stack dumps armed."""
    import torch

    cls = loader_class or torch.utils.data.DataLoader
    return cls(
        ds,
        batch_size=BATCH,
        num_workers=2,
        multiprocessing_context=method,
        timeout=60,
        worker_init_fn=arm_worker,
        **kwargs,
    )


def _passes(ds, loader, count: int, db_uri: str) -> dict:
    """``count`` passes of ``loader``: the ids of each, what 2 workers should deliver,
    and the epoch the main process's dataset reports after each."""
    epochs, epoch_after = [], []
    for _ in range(count):
        epochs.append(_ids(loader))
        epoch_after.append(ds.epoch)
    return {
        "epochs": epochs,
        "expected": [_expected(db_uri, e, 2) for e in range(count)],
        "epoch_after": epoch_after,
    }


def _ids(batches) -> list[int]:
    return [int(v) for batch in batches for v in batch["id"]]


def _expected(db_uri: str, epoch: int, workers: int) -> list[int]:
    """What a DataLoader with ``workers`` workers delivers: each worker's rows in
    batches of BATCH, the workers taking turns."""
    per_worker = [
        [
            row["id"]
            for row in _dataset(
                db_uri, epoch=epoch, worker_info_override=WorkerInfo(w, workers)
            )
        ]
        for w in range(workers)
    ]
    out = []
    for start in range(0, len(per_worker[0]), BATCH):
        for rows in per_worker:
            out.extend(rows[start : start + BATCH])
    return out


def workers_two_epochs(db_uri: str, method: str) -> dict:
    """Two passes of a plain DataLoader with 2 workers over one dataset."""
    ds = _dataset(db_uri)
    out = _passes(ds, _loader(ds, method), 2, db_uri)
    out.update(consumed_rows=ds.consumed_rows, bytes_loaded=ds.bytes_loaded)
    return out


def loader_break_and_resume(db_uri: str, method: str) -> dict:
    """A StreamingDataLoader with 2 workers stopped after 5 batches; its checkpoint,
    the rest read by iterating it again, and the rest read by a new dataset loaded from
    the checkpoint. Also the positions a plain DataLoader's dataset reports after the
    same 5 batches (what the workers had read, prefetch included)."""
    ds = _dataset(db_uri)
    loader = _loader(ds, method, StreamingDataLoader)
    taken = []
    for i, batch in enumerate(loader):
        taken.extend(int(v) for v in batch["id"])
        if i == 4:
            break
    state = loader.state_dict()
    again = _ids(loader)
    resumed_ds = _dataset(db_uri)
    resumed_ds.load_state_dict(state)
    resumed = [row["id"] for row in resumed_ds]

    plain_ds = _dataset(db_uri)
    plain = _loader(plain_ds, method)
    iterator = iter(plain)
    for _ in range(5):
        next(iterator)
    plain_positions = plain_ds.state_dict()["positions_consumed_per_split"]
    del iterator
    return {
        "taken": taken,
        "positions": state["positions_consumed_per_split"],
        "again": again,
        "resumed": resumed,
        "plain_loader_positions": plain_positions,
    }


def loader_epochs(db_uri: str, method: str) -> dict:
    """Three passes of a StreamingDataLoader with 2 workers."""
    ds = _dataset(db_uri)
    return _passes(ds, _loader(ds, method, StreamingDataLoader), 3, db_uri)


def one_buffer_epoch(db_uri: str, method: str, fmt: str) -> dict:
    """An epoch of a Permutation in format ``fmt`` through 2 workers of ``method`` with
    one_buffer_collate: ids, and per batch the column names, dtypes and shapes, whether
    the tensors share one storage, and the emb/x values checked against the ids."""
    import numpy as np
    import torch

    from riffledb.permutation import Permutation
    from riffledb.util import one_buffer_collate

    table = riffledb.connect(db_uri).open_table("data")
    loader = torch.utils.data.DataLoader(
        Permutation.identity(table).with_format(fmt),
        batch_size=BATCH * 5,
        shuffle=True,
        num_workers=2,
        multiprocessing_context=method,
        collate_fn=one_buffer_collate,
        timeout=60,
        worker_init_fn=arm_worker,
    )
    import glob

    before = set(glob.glob("/dev/shm/riffledb-*"))
    ids, layouts, shared, good = [], set(), [], True
    for batch in loader:
        ids.extend(int(v) for v in batch["id"])
        layouts.add(
            tuple((k, str(v.dtype), tuple(v.shape[1:])) for k, v in batch.items())
        )
        pointers = {v.untyped_storage().data_ptr() for v in batch.values()}
        shared.append(len(pointers) == 1)
        expected = batch["id"].numpy()[:, None] + np.arange(4)[None, :]
        good &= bool(np.array_equal(batch["emb"].numpy(), expected.astype(np.float32)))
        good &= bool(np.array_equal(batch["x"].numpy(), batch["id"].numpy() / 2 + 1))
    left = sorted(set(glob.glob("/dev/shm/riffledb-*")) - before)
    return {
        "ids": ids,
        "layouts": sorted(layouts),
        "shared": shared,
        "values": good,
        "left_in_dev_shm": left,
    }


def loader_takes_every_batch_then_stops(db_uri: str, method: str) -> dict:
    """A StreamingDataLoader with 2 workers whose loop takes every batch of the pass
    but never asks for one more (``zip`` with a step count), then iterates again."""
    ds = _dataset(db_uri)
    loader = _loader(ds, method, StreamingDataLoader)
    steps = len(ds) // BATCH
    pairs = zip(range(steps), loader, strict=False)  # the loader is never exhausted
    first = [int(v) for _, batch in pairs for v in batch["id"]]
    epoch_after = ds.epoch
    second = _ids(loader)
    return {
        "first": first,
        "epoch_after": epoch_after,
        "second": second,
        "expected_second": _expected(db_uri, 1, 2),
    }
