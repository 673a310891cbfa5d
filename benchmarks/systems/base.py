"""The interface every system adapter implements.

An adapter is made from the scale's data directory and is used by one worker process:

- ``build(variant, seed) -> int``: build a permutation of ``small`` (variants ``random``:
  split 80/10/10 at random + shuffle; ``hash``: hash split on ``id`` 8:1:1 + shuffle;
  ``filter``: ``label % 10 != 0``, then as ``random``) and return its row count. ``None``
  when the system has no such operation.
- ``open_train(table, seed) -> int``: prepare the shuffled train split of ``table`` for
  :meth:`take`; returns its length.
- ``take(table, offsets, format)``: the rows at ``offsets`` (a list of positions in the
  shuffled train split), as ``"arrow"`` (the system's Arrow batch; numpy: the arrays of
  fancy indexing), ``"torch"`` (a dict of batch-first tensors, the same for every
  system), or the system's own ``"python"`` (one dict per row), ``"numpy"`` and
  ``"pandas"`` formats (workload 5); where ``binary_views`` is set, also ``"views"``
  (the Arrow batch with binary columns as ``binary_view``, values not copied).
- ``loader_dataset()``: the train split of ``vectors`` as a map-style torch dataset whose
  ``__getitems__`` returns a dict of batch-first tensors (``collate_fn=identity``).
- ``split_ids(table)``: the sorted ``id`` values of the train split (exactly-once check).
- ``pickle_targets()``: name -> object whose pickled size is reported.
- ``files(table)``: the files holding ``table`` (read once before the DataLoader epochs,
  so that every system starts them from the page cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Adapter:
    name = "base"
    # Whether take() has a "views" format (binary columns as Arrow views, no copy).
    binary_views = False

    def build(self, variant: str, seed: int) -> int | None:
        raise NotImplementedError

    def open_train(self, table: str, seed: int) -> int:
        raise NotImplementedError

    def take(self, table: str, offsets: list[int], format: str):
        raise NotImplementedError

    def loader_dataset(self):
        raise NotImplementedError

    def split_ids(self, table: str) -> np.ndarray:
        raise NotImplementedError

    def pickle_targets(self) -> dict:
        return {"as built": self.loader_dataset()}

    def torch_via(self) -> str:
        """How this adapter makes its dict of batch-first tensors (for the report)."""
        return ""

    def files(self, table: str) -> list[Path]:
        raise NotImplementedError

    def versions(self) -> dict:
        return {}


def files_under(path: Path) -> list[Path]:
    """Every regular file under ``path`` (or ``path`` itself), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())
