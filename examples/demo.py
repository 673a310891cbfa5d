"""riffledb demo: store a real dataset in an embedded database, read it as a Dataset.

Run with `make demo`. The first run creates the table from scikit-learn's digits dataset
(shipped with the package, no download); later runs reuse it.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pyarrow as pa

import riffledb

DATA_DIR = os.environ.get(
    "RIFFLEDB_DEMO_DIR", os.path.join(os.path.dirname(__file__), "..", "demo-data")
)


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


def collate(batch: pa.Table):
    """A pa.Table of rows -> (pixels [B, 64] float32, labels [B] int64) tensors."""
    import torch

    pixels = batch.column("pixels").combine_chunks()
    flat = pixels.values.to_numpy(zero_copy_only=False)
    images = torch.from_numpy(flat.reshape(len(batch), 64))
    labels = torch.from_numpy(batch.column("label").to_numpy().astype(np.int64))
    return images, labels


def main() -> int:
    import torch

    db = riffledb.connect(DATA_DIR)
    if "digits" in db:
        table = db.open_table("digits")
        print(f"reusing table 'digits' (version {table.version}, {len(table)} rows)")
    else:
        start = time.perf_counter()
        table = db.create_table("digits", load_digits_table())
        took = time.perf_counter() - start
        print(f"created table 'digits' with {len(table)} rows in {took * 1000:.1f} ms")
    print(f"data lives in {os.path.abspath(db.uri)}")
    print(f"schema: {', '.join(f'{f.name}: {f.type}' for f in table.schema)}")

    loader = torch.utils.data.DataLoader(
        table, batch_size=64, shuffle=True, collate_fn=collate
    )
    seen = []
    start = time.perf_counter()
    for epoch in range(3):
        for _images, labels in loader:
            if epoch == 0:
                seen.append(labels)
    took = time.perf_counter() - start
    rows = 3 * len(table)
    labels = torch.cat(seen)
    print(
        f"read 3 shuffled epochs through torch DataLoader: {rows} rows in {took:.3f} s "
        f"({rows / took:,.0f} rows/s)"
    )
    print(
        f"one epoch delivered {len(labels)} rows, label counts: "
        f"{torch.bincount(labels).tolist()}"
    )
    assert len(labels) == len(table), "an epoch must deliver every row exactly once"
    return 0


if __name__ == "__main__":
    sys.exit(main())
