"""Tensor helpers (LanceDB's ``lancedb.util``).

The batch converters live in :mod:`riffledb.formats`; they are re-exported here under
LanceDB's names.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ._optional import attempt_import_or_raise
from .errors import RiffledbError
from .formats import (
    batch_to_numpy,
    batch_to_numpy_dict,
    batch_to_tensor,
    batch_to_tensor_dict,
    batch_to_tensor_rows,
    batch_to_torch_dict,
    one_buffer_collate,
)

__all__ = [
    "attempt_import_or_raise",
    "batch_to_numpy",
    "batch_to_numpy_dict",
    "batch_to_tensor",
    "batch_to_tensor_dict",
    "batch_to_tensor_rows",
    "batch_to_torch_dict",
    "one_buffer_collate",
    "tbl_to_tensor",
]


def _column_to_tensor(torch: Any, column: pa.ChunkedArray):
    if column.num_chunks > 1:
        # LanceDB raises a bare Exception with this text; ours is one of its subclasses.
        raise RiffledbError("Single batch was too large to fit into a one-chunk table")
    array = column.chunk(0) if column.num_chunks == 1 else pa.array([], type=column.type)
    return torch.from_dlpack(array)


def tbl_to_tensor(tbl: pa.Table):
    """Converts a table of numeric columns to a 2-D tensor of shape (columns, rows).

    Each column is exported zero-copy through DLPack (so it must have one chunk, no nulls
    and a numeric type) and the columns are stacked (which copies). This is the
    ``collate_fn`` that makes a table a torch ``Dataset``::

        DataLoader(table, collate_fn=tbl_to_tensor, batch_size=10, shuffle=True)

    Raises:
        Exception: a column has more than one chunk.
        TypeError: a column cannot be exported through DLPack (nulls, bool, strings, ...).
    """
    torch = attempt_import_or_raise("torch")
    return torch.stack(
        [_column_to_tensor(torch, tbl.column(i)) for i in range(tbl.num_columns)]
    )
