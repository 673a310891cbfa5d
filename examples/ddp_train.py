"""Distributed training from a riffledb table, resumable on any number of ranks.

Run it on 2 processes of this machine (gloo, CPU):

    torchrun --nproc_per_node 2 examples/ddp_train.py --steps-per-checkpoint 20

then stop it (Ctrl-C) and start it again with another ``--nproc_per_node``: it carries
on from the last checkpoint with nothing read twice and nothing skipped. Every rank
reads its share of the same global batches whatever the world size
(riffledb.streaming.StreamingDataset; docs/distributed-training.md).

The data is a made-up regression problem (y = 3 x0 - 2 x1 + 0.5, plus noise) written to
``--data`` on the first run.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import riffledb
from riffledb.streaming import StreamingDataLoader, StreamingDataset

NUM_SPLITS = 24  # divisible by every world size we expect to run on: 1, 2, 3, 4, 6, 8


def make_table(uri: str, rows: int):
    db = riffledb.connect(uri)
    if "points" in db:
        return db.open_table("points")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 + rng.normal(scale=0.05, size=rows)
    return db.create_table(
        "points",
        pa.table({"x0": x[:, 0], "x1": x[:, 1], "y": y.astype(np.float32)}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ddp-data", help="database directory")
    parser.add_argument("--rows", type=int, default=48_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=96)
    parser.add_argument("--steps-per-checkpoint", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument(
        "--stop-after", type=int, default=0, help="stop after this step (to resume)"
    )
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, ...
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.global_batch % world:
        raise SystemExit(f"--global-batch must be divisible by the world size {world}")
    checkpoint_path = os.path.join(args.data, "checkpoint.json")
    if rank == 0:
        make_table(args.data, args.rows)
    dist.barrier()
    table = riffledb.connect(args.data).open_table("points")

    # Rank and world size come from the process group.
    dataset = StreamingDataset(table, num_splits=NUM_SPLITS, shuffle_seed=1234)
    model = torch.nn.Linear(2, 1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    step = 0
    if os.path.exists(checkpoint_path):
        with open(checkpoint_path) as f:
            saved = json.load(f)
        dataset.load_state_dict(saved["data"])
        model.load_state_dict({k: torch.tensor(v) for k, v in saved["model"].items()})
        step = saved["step"]
        if rank == 0:
            print(f"resumed at step {step}, epoch {dataset.epoch}, on {world} ranks")
    model = DistributedDataParallel(model)
    loader = StreamingDataLoader(
        dataset, batch_size=args.global_batch // world, num_workers=args.workers
    )

    while dataset.epoch < args.epochs:
        epoch = dataset.epoch
        for batch in loader:
            # Rows are dicts of Python values: default_collate makes float64 tensors.
            x = torch.stack([batch["x0"], batch["x1"]], dim=1).float()
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"].float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            if step % args.steps_per_checkpoint == 0:
                # Every rank knows its own splits exactly: merge them all.
                states = [None] * world
                dist.all_gather_object(states, dataset.state_dict())
                if rank == 0:
                    saved = {
                        "step": step,
                        "data": StreamingDataset.merge_state_dicts(states),
                        "model": {
                            k: v.tolist() for k, v in model.module.state_dict().items()
                        },
                    }
                    with open(checkpoint_path + ".tmp", "w") as f:
                        json.dump(saved, f)
                    os.replace(checkpoint_path + ".tmp", checkpoint_path)
                    print(f"step {step}: loss {loss.item():.4f} (checkpoint saved)")
            if step == args.stop_after:
                if rank == 0:
                    print(f"stopping at step {step}")
                dist.destroy_process_group()
                return
        if rank == 0:
            print(f"epoch {epoch} done at step {step}")
    if rank == 0:
        weight = model.module.weight.detach().flatten().tolist()
        bias = model.module.bias.item()
        print(f"learned y = {weight[0]:.2f} x0 + {weight[1]:.2f} x1 + {bias:.2f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
