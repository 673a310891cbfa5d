"""The in-memory limit: ``.npy`` files opened with ``np.load(mmap_mode="r")``, a
permutation from ``rng.permutation`` + slicing, and fancy indexing on the memory maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import HASH_WEIGHTS, SPLIT_RATIOS

from .base import Adapter as Base


def _split(index: np.ndarray, rng: np.random.Generator):
    """Random 80/10/10 split of ``index`` (permutation + slicing), train shuffled
    again."""
    n = len(index)
    perm = index[rng.permutation(n)]
    a = int(n * SPLIT_RATIOS[0])
    b = a + int(n * SPLIT_RATIOS[1])
    train, val, test = perm[:a], perm[a:b], perm[b:]
    rng.shuffle(train)
    return train, val, test


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Rows:
    """Rows of a table's .npy columns at positions given by ``index``."""

    def __init__(self, npy: Path, table: str, index: np.ndarray):
        self.npy, self.table, self.index = str(npy), table, index
        self._cols = None

    def __getstate__(self):
        return {"npy": self.npy, "table": self.table, "index": self.index}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cols = None

    def _columns(self):
        if self._cols is None:
            npy, t = Path(self.npy), self.table
            names = ["id", "label", "vec"] if t == "vectors" else ["id", "label"]
            if t == "blobs":
                self._cols = {
                    "id": np.load(npy / "blobs_id.npy", mmap_mode="r"),
                    "offsets": np.load(npy / "blobs_offsets.npy", mmap_mode="r"),
                    "data": np.load(npy / "blobs_data.npy", mmap_mode="r"),
                }
            else:
                self._cols = {
                    c: np.load(npy / f"{t}_{c}.npy", mmap_mode="r") for c in names
                }
        return self._cols

    def __len__(self) -> int:
        return len(self.index)

    def take(self, offsets) -> dict:
        rows = self.index[offsets]
        cols = self._columns()
        if self.table == "blobs":
            offs = cols["offsets"]
            starts, stops = offs[rows], offs[rows + 1]
            data = cols["data"]
            image = np.concatenate(
                [data[a:b] for a, b in zip(starts, stops, strict=True)]
            )
            return {"id": cols["id"][rows], "image": image, "sizes": stops - starts}
        return {name: col[rows] for name, col in cols.items()}

    def __getitems__(self, offsets) -> dict:
        import torch

        return {k: torch.from_numpy(v) for k, v in self.take(offsets).items()}


class Adapter(Base):
    name = "numpy"

    def __init__(self, root: Path):
        self.npy = root / "npy"
        self.splits: dict = {}

    def versions(self) -> dict:
        return {"numpy": np.__version__}

    def build(self, variant: str, seed: int) -> int:
        rng = np.random.default_rng(seed)
        label = np.load(self.npy / "small_label.npy", mmap_mode="r")
        index = np.arange(len(label), dtype=np.int64)
        if variant == "filter":
            index = np.flatnonzero(np.asarray(label) % 10 != 0)
        if variant == "hash":
            ids = np.load(self.npy / "small_id.npy", mmap_mode="r")
            bucket = _splitmix64(np.asarray(ids)) % np.uint64(sum(HASH_WEIGHTS))
            cuts = np.cumsum(HASH_WEIGHTS)
            parts = [
                np.flatnonzero(bucket < cuts[0]),
                np.flatnonzero((bucket >= cuts[0]) & (bucket < cuts[1])),
                np.flatnonzero(bucket >= cuts[1]),
            ]
            parts = [p[rng.permutation(len(p))] for p in parts]
        else:
            parts = _split(index, rng)
        return sum(len(p) for p in parts)

    def open_train(self, table: str, seed: int) -> int:
        n = len(np.load(self.npy / f"{table}_id.npy", mmap_mode="r"))
        train = _split(np.arange(n, dtype=np.int64), np.random.default_rng(seed))[0]
        self.splits[table] = Rows(self.npy, table, train)
        return len(train)

    def take(self, table: str, offsets, format: str):
        rows = self.splits[table]
        if format == "torch":
            return rows.__getitems__(offsets)
        cols = rows.take(offsets)
        if format == "python":  # one dict per row, Python values
            lists = {k: v.tolist() for k, v in cols.items()}
            return [
                dict(zip(lists, row, strict=True))
                for row in zip(*lists.values(), strict=True)
            ]
        if format == "pandas":
            import pandas as pd

            return pd.DataFrame(
                {k: list(v) if v.ndim > 1 else v for k, v in cols.items()}
            )
        return cols  # "arrow" and "numpy": the arrays of fancy indexing

    def loader_dataset(self):
        return self.splits["vectors"]

    def split_ids(self, table: str) -> np.ndarray:
        return np.sort(self.splits[table].index)

    def files(self, table: str) -> list[Path]:
        return sorted(self.npy.glob(f"{table}_*.npy"))

    def torch_via(self) -> str:
        return "torch.from_numpy of the fancy-indexed arrays"
