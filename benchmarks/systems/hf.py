"""Hugging Face ``datasets``: ``Dataset.from_file`` on an Arrow cache file (a memory
map), train_test_split + shuffle (index mappings)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from common import FILTER  # noqa: F401  (the same predicate, written for numpy below)

from .base import Adapter as Base
from .base import files_under

datasets.disable_progress_bars()
# Transforms write their index mappings to temporary files, so that no run reuses another
# run's cache.
datasets.disable_caching()


class Batches:
    """A formatted HF dataset as a batch-fetching torch dataset: ``ds[indices]``."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices):
        return self.ds[indices]


def _keep(batch):
    return batch["label"] % 10 != 0  # FILTER


class Adapter(Base):
    name = "hf"

    def __init__(self, root: Path):
        self.root = root / "hf"
        self.splits: dict = {}

    def versions(self) -> dict:
        return {"datasets": datasets.__version__}

    def _splits(self, ds, seed: int):
        first = ds.train_test_split(test_size=0.2, seed=seed)
        rest = first["test"].train_test_split(test_size=0.5, seed=seed)
        train = first["train"].shuffle(seed=seed)
        return train, rest["train"], rest["test"]

    def build(self, variant: str, seed: int) -> int | None:
        if variant == "hash":
            return None  # datasets has no hash split
        ds = datasets.Dataset.from_file(str(self.root / "small.arrow"))
        if variant == "filter":
            ds = (
                ds.with_format("numpy")
                .filter(_keep, batched=True, batch_size=1 << 16)
                .with_format(None)
            )
        return sum(len(s) for s in self._splits(ds, seed))

    def open_train(self, table: str, seed: int) -> int:
        ds = datasets.Dataset.from_file(str(self.root / f"{table}.arrow"))
        train = self._splits(ds, seed)[0]
        self.splits[table] = {
            "python": train.with_format(None),
            "numpy": train.with_format("numpy"),
            "pandas": train.with_format("pandas"),
            "arrow": train.with_format("arrow"),
            "torch": train.with_format("torch"),
        }
        return len(train)

    def take(self, table: str, offsets, format: str):
        out = self.splits[table][format][offsets]
        if format == "python":  # a dict of column lists -> one dict per row
            names = list(out)
            out = [
                dict(zip(names, row, strict=True))
                for row in zip(*out.values(), strict=True)
            ]
        return out

    def loader_dataset(self):
        return Batches(self.splits["vectors"]["torch"])

    def split_ids(self, table: str) -> np.ndarray:
        ds = self.splits[table]["arrow"]
        return np.sort(ds.select_columns(["id"])[:]["id"].to_numpy())

    def files(self, table: str) -> list[Path]:
        return files_under(self.root / f"{table}.arrow")

    def torch_via(self) -> str:
        return "with_format('torch')[idx]"
