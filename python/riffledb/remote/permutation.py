"""``Permutation.identity(remote_table)``: every row of a remote table in storage order,
read by offsets (``_rowoffset in (...)`` takes, spec §2.9), with the formats of local
permutations.

A Python stand-in until the native ``PermutationReader`` can take rows from a remote
source (it reads local snapshots only): no shuffled or split permutations, no
``permutation_builder`` over remote tables, no prefetching.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .._args import index_array
from ..errors import InvalidError, RiffledbIndexError
from ..formats import transform_of
from .table import RemoteTable


class RemoteIdentityPermutation:
    """All rows of a :class:`RemoteTable`, as a map-style torch ``Dataset``: ``len``,
    ``take_offsets`` / ``__getitem__`` / ``__getitems__`` (one take request each),
    ``iter(batch_size)`` in order, ``with_format`` / ``with_transform`` /
    ``with_batch_size`` / ``select_columns``. The row count is read once, when built.
    Pickles (spawn workers reconnect) and keeps working in forked workers."""

    def __init__(self, table: RemoteTable, num_rows: int | None = None):
        self.base_table = table
        self.num_rows = table.count_rows() if num_rows is None else num_rows
        if self.num_rows == 0:
            raise InvalidError(
                "No rows found in the permutation table for the given split"
            )
        self.batch_size = 100
        self.transform_fn = transform_of("python")
        self.columns: list[str] = []

    def _copy(self, **changes: Any) -> RemoteIdentityPermutation:
        copy = RemoteIdentityPermutation.__new__(RemoteIdentityPermutation)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def with_format(self, format: str) -> RemoteIdentityPermutation:
        return self._copy(transform_fn=transform_of(format))

    def with_transform(self, transform) -> RemoteIdentityPermutation:
        return self._copy(transform_fn=transform)

    def with_batch_size(self, batch_size: int) -> RemoteIdentityPermutation:
        if batch_size < 1:
            raise InvalidError(f"batch_size must be at least 1, got {batch_size}")
        return self._copy(batch_size=int(batch_size))

    def select_columns(self, columns: list[str]) -> RemoteIdentityPermutation:
        return self._copy(columns=list(columns))

    @property
    def schema(self) -> pa.Schema:
        schema = self.base_table.schema
        return (
            pa.schema([schema.field(c) for c in self.columns]) if self.columns else schema
        )

    def __len__(self) -> int:
        return self.num_rows

    def _read(self, offsets: np.ndarray) -> pa.RecordBatch:
        return self.base_table._take(offsets, False, self.columns, False)

    def take_offsets(self, offsets: Sequence[int]) -> Any:
        keys = index_array(offsets, "offsets", np.int64)
        bad = np.flatnonzero((keys < 0) | (keys >= self.num_rows))
        if len(bad):
            raise RiffledbIndexError(
                f"Offset {int(keys[bad[0]])} at position {int(bad[0])} is out of range "
                f"for a permutation of {self.num_rows} rows"
            )
        return self.transform_fn(self._read(keys))

    def __getitem__(self, index: int) -> Any:
        return self.take_offsets([index])

    def __getitems__(self, indices: Sequence[int]) -> Any:
        return self.take_offsets(indices)

    def __iter__(self) -> Iterator[Any]:
        return self.iter(self.batch_size, skip_last_batch=True)

    def iter(self, batch_size: int, skip_last_batch: bool = False) -> Iterator[Any]:
        if batch_size < 1:
            raise InvalidError(f"batch_size must be at least 1, got {batch_size}")
        for start in range(0, self.num_rows, batch_size):
            stop = min(start + batch_size, self.num_rows)
            if skip_last_batch and stop - start < batch_size:
                return
            yield self.transform_fn(self._read(np.arange(start, stop, dtype=np.int64)))
