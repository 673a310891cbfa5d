"""riffledb demo: train a small model from an embedded database, multi-process loading.

Run with `make demo`. The first run stores scikit-learn's digits dataset (shipped with
the package: no download) as a riffledb table; later runs reuse it. A seeded 80/20 split
with a shuffle is built as a permutation (no data is copied), and a small MLP trains on
the train split through `torch.utils.data.DataLoader(num_workers=2)` on fork workers.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import numpy as np
import pyarrow as pa

import riffledb
from riffledb.permutation import Permutations, permutation_builder

DATA_DIR = os.environ.get(
    "RIFFLEDB_DEMO_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo-data"),
)
EPOCHS = int(os.environ.get("RIFFLEDB_DEMO_EPOCHS", "8"))
BATCH_SIZE = 64
SEED = 42


def load_digits_table() -> pa.Table:
    """The 1,797 8x8 digit images as {id, label, pixels: fixed_size_list<float32, 64>}."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data.astype(np.float32) / 16.0
    return pa.table(
        {
            "id": pa.array(np.arange(len(pixels)), pa.int64()),
            "label": pa.array(digits.target, pa.int32()),
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 64),
        }
    )


def to_tensors(batch: pa.RecordBatch):
    """A batch of rows -> (pixels [B, 64] float32, labels [B] int64). Module-level, so the
    transform pickles by name for spawn workers too."""
    import torch

    pixels = batch.column("pixels").values.to_numpy(zero_copy_only=False)
    images = torch.tensor(pixels.reshape(batch.num_rows, 64))
    labels = torch.tensor(batch.column("label").to_numpy().astype(np.int64))
    return images, labels


def whole_batch(batch):
    """collate_fn: the permutation already returns a whole batch of tensors."""
    return batch


def open_or_create(db) -> riffledb.table.Table:
    if "digits" in db:
        table = db.open_table("digits")
        print(f"reusing table 'digits' (version {table.version}, {len(table)} rows)")
        return table
    start = time.perf_counter()
    table = db.create_table("digits", load_digits_table())
    took = time.perf_counter() - start
    print(
        f"created table 'digits' from scikit-learn's digits: {len(table)} rows "
        f"in {took * 1000:.0f} ms"
    )
    return table


def main() -> int:
    import torch
    from tqdm import tqdm

    torch.manual_seed(SEED)
    # The model is tiny: one intra-op thread beats several fighting the loader's workers
    # for the cores (16x faster on a busy 2-core machine).
    torch.set_num_threads(1)
    db = riffledb.connect(DATA_DIR)
    table = open_or_create(db)
    print(f"data lives in {db.uri}/digits.riffle")

    start = time.perf_counter()
    splits = (
        permutation_builder(table)
        .split_random(ratios=[0.8, 0.2], seed=SEED, split_names=["train", "test"])
        .shuffle(seed=SEED)
        .execute()
    )
    permutations = Permutations(table, splits)
    train = permutations["train"].with_transform(to_tensors)
    test = permutations["test"].with_transform(to_tensors)
    print(
        f"built a seeded 80/20 split with shuffle in "
        f"{(time.perf_counter() - start) * 1000:.1f} ms: {len(train)} train, "
        f"{len(test)} test rows"
    )

    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=2,
        multiprocessing_context=multiprocessing.get_context("fork"),
        collate_fn=whole_batch,
        persistent_workers=True,
    )

    rows = 0
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        progress = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{EPOCHS}",
            unit="batch",
            leave=False,
            disable=not sys.stderr.isatty(),
        )
        total_loss = 0.0
        for images, labels in progress:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            rows += len(labels)
            total_loss += loss.item() * len(labels)
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {total_loss / len(train):.4f}")
    took = time.perf_counter() - start
    if rows != EPOCHS * len(train):
        raise AssertionError(f"expected {EPOCHS * len(train)} rows, got {rows}")

    correct = 0
    with torch.no_grad():
        for images, labels in test.iter(256):
            correct += int((model(images).argmax(dim=1) == labels).sum())
    print(f"test accuracy: {correct / len(test):.1%} on {len(test)} held-out rows")
    print(
        f"trained on {rows} rows in {took:.2f} s ({rows / took:,.0f} rows/s, "
        f"DataLoader with 2 fork workers)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
