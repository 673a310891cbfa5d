"""What test_torch.py runs in its children: the seed's multi-process DataLoader tests."""

from __future__ import annotations

import riffledb
from riffledb.permutation import Permutation

from .stacks import arm_worker


def spawn_dataloader_ids(db_uri: str) -> list[int]:
    """Every value of column ``a`` read through two spawn workers, sorted."""
    import torch

    table = riffledb.connect(db_uri).open_table("test_table")
    permutation = Permutation.identity(table)
    dataloader = torch.utils.data.DataLoader(
        permutation,
        batch_size=10,
        shuffle=True,
        num_workers=2,
        multiprocessing_context="spawn",
        timeout=60,
        worker_init_fn=arm_worker,
    )
    seen = []
    for batch in dataloader:
        assert batch["a"].size(0) == 10
        seen.extend(batch["a"].tolist())
    return sorted(seen)


def fork_dataloader_batches(db_uri: str) -> int:
    """The number of batches of 10 read through two fork workers."""
    import torch

    db = riffledb.connect(db_uri)
    table = db.open_table("test_table")
    permutation = Permutation.identity(table)
    dataloader = torch.utils.data.DataLoader(
        permutation,
        batch_size=10,
        num_workers=2,
        multiprocessing_context="fork",
    )
    count = 0
    for batch in dataloader:
        assert batch["a"].size(0) == 10
        count += 1
    return count
