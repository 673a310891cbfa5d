"""riffledb through its public API: connect, open_table, permutation_builder,
Permutations, Permutation.with_format / with_transform / __getitems__."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import (
    FILTER,
    HASH_WEIGHTS,
    SPLIT_NAMES,
    SPLIT_RATIOS,
    arrow_to_torch,
    git_revision,
)

import riffledb
from riffledb.permutation import Permutations, permutation_builder

from .base import Adapter as Base
from .base import files_under


def _torch(permutation):
    """A dict of batch-first tensors per read: riffledb's own ``"torch_dict"`` format
    where this riffledb has it (gathered straight into tensors), else the harness's
    ``arrow_to_torch`` transform (what LanceDB uses)."""
    try:
        return permutation.with_format("torch_dict")
    except ValueError:  # "Invalid format": an older riffledb
        return permutation.with_transform(arrow_to_torch)


class Adapter(Base):
    name = "riffledb"

    def __init__(self, root: Path):
        self.root = root / "riffledb"
        self.db = riffledb.connect(str(self.root))
        self.splits: dict = {}

    def versions(self) -> dict:
        import pyarrow

        return {"riffledb": f"0.1.0 ({git_revision()})", "pyarrow": pyarrow.__version__}

    def _permutation(self, table: str, seed: int):
        base = self.db.open_table(table)
        perm = (
            permutation_builder(base)
            .split_random(ratios=SPLIT_RATIOS, seed=seed, split_names=SPLIT_NAMES)
            .shuffle(seed=seed)
            .execute()
        )
        return base, perm

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
        base, perm = self._permutation(table, seed)
        train = Permutations(base, perm)["train"]
        self.splits[table] = (base, perm, train)
        return len(train)

    def _train(self, table: str, format: str):
        base, perm, train = self.splits[table]
        key = (table, format)
        cache = self.__dict__.setdefault("_formatted", {})
        if key not in cache:
            cache[key] = _torch(train) if format == "torch" else train.with_format(format)
        return cache[key]

    # take(format="views"): binary columns as binary_view, their values not copied.
    binary_views = True

    def _views(self, table: str):
        """A callable offsets -> the train split's rows with binary views: the
        permutation's own ``with_binary_views()`` where this riffledb has it, else a
        take by row id from the base table (the train split's row ids, in order)."""
        cache = self.__dict__.setdefault("_view_takes", {})
        if table not in cache:
            base, perm, train = self.splits[table]
            if hasattr(train, "with_binary_views"):
                views = train.with_format("arrow").with_binary_views()
                cache[table] = views.__getitems__
            else:
                split = perm.search().where("split_id = 0").select(["row_id"])
                row_ids = split.to_arrow()["row_id"].to_numpy()

                def take(offsets, base=base, row_ids=row_ids):
                    query = base.take_row_ids(row_ids[offsets]).with_binary_views()
                    return query.to_arrow()

                cache[table] = take
            # Fairness check (once, in the untimed warm-up): the same rows as "arrow".
            probe = [0, len(train) - 1, len(train) // 2]
            got = cache[table](probe)["id"].to_pylist()
            want = self._train(table, "arrow").__getitems__(probe)["id"].to_pylist()
            if got != want:
                raise RuntimeError(
                    f"views take of {table} returned ids {got}, not {want}"
                )
        return cache[table]

    def take(self, table: str, offsets, format: str):
        if format == "views":
            return self._views(table)(offsets)
        return self._train(table, format).__getitems__(offsets)

    def loader_dataset(self):
        return self._train("vectors", "torch")

    def split_ids(self, table: str) -> np.ndarray:
        train = self._train(table, "arrow").select_columns(["id"])
        ids = np.concatenate([b.column(0).to_numpy() for b in train.iter(1 << 16)])
        return np.sort(ids)

    def pickle_targets(self) -> dict:
        base, perm, train = self.splits["vectors"]
        # The builder returns a memory:// permutation table, which pickles as its rows;
        # a permutation table stored in the database pickles as a path and a version.
        stored = self.db.create_table("bench_perm", perm.to_arrow(), mode="overwrite")
        persisted = _torch(Permutations(base, stored)["train"])
        return {"as built": self.loader_dataset(), "persisted": persisted}

    def files(self, table: str) -> list[Path]:
        return files_under(self.root / f"{table}.riffle")

    def torch_via(self) -> str:
        fn = self._train("vectors", "torch").transform_fn
        name = getattr(fn, "__name__", "?")
        return (
            "with_format('torch_dict')"
            if name != "arrow_to_torch"
            else ("with_transform(arrow_to_torch)")
        )
