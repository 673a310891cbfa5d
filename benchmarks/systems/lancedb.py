"""LanceDB 0.40 through the same public surface riffledb mirrors."""

from __future__ import annotations

import os
from pathlib import Path

import lancedb
import numpy as np
from common import (
    FILTER,
    HASH_WEIGHTS,
    LANCEDB_MEMORY_LIMIT,
    LANCEDB_MEMORY_VAR,
    SPLIT_NAMES,
    SPLIT_RATIOS,
    arrow_to_torch,
)
from lancedb.permutation import Permutations, permutation_builder

from .base import Adapter as Base
from .base import files_under

# Also set by run.env() for every worker; set here too for the adapter used on its own.
os.environ.setdefault(LANCEDB_MEMORY_VAR, str(LANCEDB_MEMORY_LIMIT))


class Adapter(Base):
    name = "lancedb"

    def __init__(self, root: Path):
        self.root = root / "lancedb"
        self.db = lancedb.connect(str(self.root))
        self.splits: dict = {}
        self._formatted: dict = {}

    def versions(self) -> dict:
        return {"lancedb": lancedb.__version__}

    def build(self, variant: str, seed: int) -> int:
        builder = permutation_builder(self.db.open_table("small"))
        if variant == "filter":
            builder = builder.filter(FILTER)
        if variant == "hash":
            builder = builder.split_hash(
                ["id"], HASH_WEIGHTS, discard_weight=0, split_names=SPLIT_NAMES
            )
        else:
            builder = builder.split_random(
                ratios=SPLIT_RATIOS, seed=seed, split_names=SPLIT_NAMES
            )
        return builder.shuffle(seed=seed).execute().count_rows()

    def open_train(self, table: str, seed: int) -> int:
        base = self.db.open_table(table)
        perm = (
            permutation_builder(base)
            .split_random(ratios=SPLIT_RATIOS, seed=seed, split_names=SPLIT_NAMES)
            .shuffle(seed=seed)
            .execute()
        )
        train = Permutations(base, perm)["train"]
        self.splits[table] = (base, perm, train)
        return len(train)

    def _train(self, table: str, format: str):
        key = (table, format)
        if key not in self._formatted:
            train = self.splits[table][2]
            # with_format("torch") cannot convert fixed-size lists or binary (DLPack), so
            # the torch format uses the harness's common transform, as for riffledb.
            self._formatted[key] = (
                train.with_transform(arrow_to_torch)
                if format == "torch"
                else train.with_format(format)
            )
        return self._formatted[key]

    def take(self, table: str, offsets, format: str):
        return self._train(table, format).__getitems__(offsets)

    def loader_dataset(self):
        return self._train("vectors", "torch")

    def split_ids(self, table: str) -> np.ndarray:
        train = self._train(table, "arrow").select_columns(["id"])
        ids = np.concatenate([b.column(0).to_numpy() for b in train.iter(1 << 16)])
        return np.sort(ids)

    def pickle_targets(self) -> dict:
        base, perm, train = self.splits["vectors"]
        stored = self.db.create_table("bench_perm", perm.to_arrow(), mode="overwrite")
        persisted = Permutations(base, stored)["train"].with_transform(arrow_to_torch)
        return {"as built": self.loader_dataset(), "persisted": persisted}

    def files(self, table: str) -> list[Path]:
        return files_under(self.root / f"{table}.lance")

    def torch_via(self) -> str:
        return "with_transform(arrow_to_torch)"
