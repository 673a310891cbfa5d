"""Formats: what a read of a permutation returns.

A *format* names a transform from the ``pa.RecordBatch`` of a read to what the read
returns (``Permutation.with_format``). This module is their one registry: the
``Transforms`` namespace (LanceDB's), the ``batch_to_*`` converters (re-exported by
:mod:`riffledb.util` under LanceDB's names), and the fast paths that build a dict of
batch-first arrays or tensors straight from a native read, without a ``pa.RecordBatch``.
Every transform is a module-level function, so that a permutation using it pickles.
"""

from __future__ import annotations

import collections
import os
import secrets
from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa

from ._optional import attempt_import_or_raise
from .errors import RiffledbTypeError

__all__ = [
    "FORMATS",
    "Format",
    "Transforms",
    "batch_to_numpy",
    "batch_to_numpy_dict",
    "batch_to_numpy_rows",
    "batch_to_tensor",
    "batch_to_tensor_dict",
    "batch_to_tensor_rows",
    "batch_to_torch_dict",
    "column_builder",
    "one_buffer_collate",
    "transform_of",
]


# -- batches to tensors ----------------------------------------------------------------
#
# Zero-copy where Arrow allows it: a numeric column (int8..int64, uint8..uint64, float16,
# float32, float64) without nulls becomes a tensor sharing the batch's memory (DLPack),
# and a fixed-size list of such values (an embedding column) becomes a 2-D (rows, size)
# view of the same memory. Booleans (bit-packed in Arrow) are copied into a bool tensor.
# Everything else (strings, variable-length lists, structs, timestamps, nulls in numeric
# columns) raises a TypeError naming the column: use ``with_transform`` for those.


def _numeric(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_)


def _list_values(array: pa.FixedSizeListArray) -> pa.Array:
    """The values of a fixed-size list array's rows (zero-copy): ``flatten()`` without its
    cost (it imports pyarrow.compute on first use, a tenth of a second)."""
    size = array.type.list_size
    return array.values.slice(array.offset * size, len(array) * size)


def _unsupported(name: str, type_: pa.DataType, why: str) -> RiffledbTypeError:
    return RiffledbTypeError(
        f"Column '{name}' of type {type_} cannot be converted to a tensor: {why}. "
        "Select other columns or convert it with with_transform()"
    )


def _array_to_tensor(torch: Any, name: str, array: pa.Array, allow_nulls: bool = False):
    """One column as a tensor of shape (rows,) or, for a fixed-size list, (rows, size)."""
    type_ = array.type
    if pa.types.is_fixed_size_list(type_):
        if array.null_count:
            raise _unsupported(name, type_, "it has null lists")
        inner = _array_to_tensor(torch, name, _list_values(array), allow_nulls)
        if inner.dim() != 1:
            return inner.reshape(len(array), type_.list_size, *inner.shape[1:])
        return inner.reshape(len(array), type_.list_size)
    if pa.types.is_boolean(type_):
        if array.null_count:
            raise _unsupported(name, type_, "it has nulls")
        return torch.from_numpy(array.to_numpy(zero_copy_only=False))
    if not _numeric(type_):
        raise _unsupported(
            name, type_, "only numeric, boolean and fixed-size list columns are"
        )
    if array.null_count:
        if not allow_nulls:
            raise _unsupported(name, type_, "it has nulls")
        # Nulls become NaN, as numpy and pandas convert them (a copy, float64).
        return torch.from_numpy(array.to_numpy(zero_copy_only=False).astype("float64"))
    if len(array) == 0:
        return torch.from_numpy(array.to_numpy(zero_copy_only=False).copy())
    return torch.from_dlpack(array)


def _column_tensors(torch: Any, batch: pa.RecordBatch, allow_nulls: bool = False) -> list:
    return [
        _array_to_tensor(torch, name, column, allow_nulls)
        for name, column in zip(batch.schema.names, batch.columns, strict=False)
    ]


def _common_dtype(torch: Any, tensors: list):
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _as_features(tensor):
    """(rows,) -> (rows, 1); (rows, size) stays; deeper shapes flatten to (rows, k)."""
    if tensor.dim() == 1:
        return tensor.unsqueeze(1)
    return tensor.reshape(tensor.shape[0], -1)


def batch_to_tensor(batch: pa.RecordBatch):
    """The ``"torch_col"`` format: a 2-D tensor of shape (features, rows), columns first.

    A numeric or boolean column is one feature row; a fixed-size list column of size ``d``
    (an embedding) is ``d`` consecutive feature rows. Columns of different dtypes are
    promoted to a common dtype (``torch.promote_types``); a batch whose columns share one
    dtype keeps it.

    Copies: the columns are exported zero-copy, but stacking them into one tensor copies.

    Raises:
        TypeError: a column that is not numeric, boolean or a fixed-size list of those, or
            that has nulls.
        ImportError: torch is not installed.
    """
    torch = attempt_import_or_raise("torch")
    if batch.num_columns == 0:
        return torch.empty((0, batch.num_rows))
    tensors = [_as_features(t) for t in _column_tensors(torch, batch)]
    dtype = _common_dtype(torch, tensors)
    return torch.cat([t.to(dtype) for t in tensors], dim=1).T.contiguous()


def batch_to_tensor_rows(batch: pa.RecordBatch) -> list:
    """The ``"torch_row"`` format: a list with one 1-D tensor of features per row.

    A row's tensor holds the row's values in column order, a fixed-size list column
    contributing its ``d`` values. Dtypes are promoted as in :func:`batch_to_tensor`;
    numeric nulls become NaN (float64), as in numpy. torch's default ``collate_fn`` stacks
    the rows of a batch into a (batch, features) tensor.

    Copies: the rows are views of one (rows, features) tensor built by one copy.

    Raises:
        TypeError: a column that is not numeric, boolean or a fixed-size list of those.
        ImportError: torch is not installed.
    """
    torch = attempt_import_or_raise("torch")
    if batch.num_rows == 0:
        return []
    tensors = [_as_features(t) for t in _column_tensors(torch, batch, allow_nulls=True)]
    dtype = _common_dtype(torch, tensors)
    return list(torch.cat([t.to(dtype) for t in tensors], dim=1).unbind(0))


def batch_to_tensor_dict(batch: pa.RecordBatch) -> list:
    """The ``"torch"`` format: a list with one dict per row, column name -> tensor.

    Each value is a view into its column's tensor: a 0-D tensor for a numeric or boolean
    column, a 1-D tensor of size ``d`` for a fixed-size list column (an embedding). Every
    column keeps its own dtype. torch's default ``collate_fn`` turns a list of these into
    a dict of (batch,) and (batch, d) tensors, like HuggingFace's ``set_format("torch")``.

    Copies: none for numeric columns without nulls and fixed-size lists of them (their
    memory is shared with the batch); boolean columns are copied.

    Raises:
        TypeError: a column that is not numeric, boolean or a fixed-size list of those, or
            that has nulls.
        ImportError: torch is not installed.
    """
    torch = attempt_import_or_raise("torch")
    names = batch.schema.names
    columns = [tensor.unbind(0) for tensor in _column_tensors(torch, batch)]
    return [
        dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)
    ]


def batch_to_torch_dict(batch: pa.RecordBatch) -> dict:
    """The ``"torch_dict"`` format (riffledb's own): a dict of column name -> batch-first
    tensor, what HuggingFace's ``with_format("torch")`` returns for a batch.

    A numeric or boolean column becomes a tensor of shape (rows,), a fixed-size list
    column of size ``d`` (an embedding) one of shape (rows, d) (nested fixed-size lists
    add dimensions). Every column keeps its own dtype.

    Copies: applied to a ``pa.RecordBatch``, numeric columns without nulls and fixed-size
    lists of them are zero-copy views of the batch; booleans are copied. A
    :class:`~riffledb.permutation.Permutation` with this format (or transform) gathers its
    reads (``__getitems__``, ``take_offsets``, iteration) straight into tensors instead:
    one copy from the table into memory that each tensor owns alone (writable, shared
    with no other tensor), and no ``pa.RecordBatch`` is built.

    torch's default ``collate_fn`` does not take a dict of whole batches: give the
    ``DataLoader`` a module-level ``collate_fn`` that returns its argument.

    Raises:
        TypeError: a column that is not numeric, boolean or a fixed-size list of those, or
            that has nulls.
        ImportError: torch is not installed.
    """
    torch = attempt_import_or_raise("torch")
    return dict(zip(batch.schema.names, _column_tensors(torch, batch), strict=True))


def batch_to_numpy(batch: pa.RecordBatch):
    """The ``"numpy"`` format: one 2-D ``np.ndarray`` of shape (rows, features).

    A column is one feature column; a fixed-size list column of size ``d`` (an embedding)
    is ``d`` consecutive feature columns. The dtype is the column dtype when all columns
    share one, numpy's promotion of them when all are numeric or boolean, and ``object``
    otherwise (strings, nested values). Numeric nulls become NaN (float64).

    Copies: a batch with one numeric column without nulls is returned as a (rows, 1) view
    of the batch's memory (read-only); otherwise the columns are copied into the result.
    For a dict of per-column arrays (zero-copy where Arrow allows) use
    :func:`batch_to_numpy_dict`.
    """
    np = attempt_import_or_raise("numpy")
    arrays = [_as_numpy_features(np, column) for column in batch.columns]
    if not arrays:
        return np.empty((batch.num_rows, 0))
    if len(arrays) == 1:
        return arrays[0]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) == 1:
        dtype = dtypes.pop()
    elif all(a.dtype.kind in "biuf" for a in arrays):
        dtype = np.result_type(*arrays)
    else:
        dtype = np.dtype(object)
    out = np.empty((batch.num_rows, sum(a.shape[1] for a in arrays)), dtype=dtype)
    at = 0
    for a in arrays:
        out[:, at : at + a.shape[1]] = a
        at += a.shape[1]
    return out


def _column_to_numpy(np: Any, column: pa.Array):
    if pa.types.is_fixed_size_list(column.type) and column.null_count == 0:
        values = _column_to_numpy(np, _list_values(column))
        return values.reshape(len(column), column.type.list_size, *values.shape[1:])
    if column.null_count == 0 and len(column) and _numeric(column.type):
        # The zero-copy, read-only view to_numpy gives, without its first call importing
        # pandas (a third of a second).
        return np.from_dlpack(column)
    return column.to_numpy(zero_copy_only=False)


def _as_numpy_features(np: Any, column: pa.Array):
    array = _column_to_numpy(np, column)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(array.shape[0], -1)


def batch_to_numpy_dict(batch: pa.RecordBatch) -> dict:
    """The ``"numpy_dict"`` format (riffledb's own): a dict of column name ->
    ``np.ndarray``, batch-first.

    Numeric columns without nulls are zero-copy, read-only views of the batch; a
    fixed-size list column of size ``d`` is a (rows, d) view. Others are converted as
    ``pa.Array.to_numpy(zero_copy_only=False)`` does (copies; nulls become NaN or None).

    A :class:`~riffledb.permutation.Permutation` with this format gathers a read whose
    columns are all numeric, boolean or fixed-size lists of numbers, without nulls,
    straight into arrays (same shapes and dtypes, but writable, each owning its memory
    alone); other reads go through this function.
    """
    np = attempt_import_or_raise("numpy")
    return {
        name: _column_to_numpy(np, column)
        for name, column in zip(batch.schema.names, batch.columns, strict=False)
    }


def batch_to_numpy_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """riffledb's per-row form for streaming: a list with one dict per row, column name
    -> a NumPy scalar, or for a fixed-size list column (an embedding) a 1-D array.

    Built from the columns of :func:`batch_to_numpy_dict` (copied once, so that they are
    writable), so an embedding costs one small array object per row instead of one
    Python float per element as with ``"python"`` rows. torch's default collate stacks
    these rows into batch-first tensors. The transform to give ``StreamingDataset`` when
    rows feed a model.
    """
    columns = batch_to_numpy_dict(batch)
    # One copy of the batch so that the rows are writable: torch warns about (and
    # cannot guard) tensors made from read-only arrays.
    columns = {k: v if v.flags.writeable else v.copy() for k, v in columns.items()}
    names = list(columns)
    return [
        dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]


# -- the registry ------------------------------------------------------------------------


def _arrow2polars(batch: pa.RecordBatch):
    pl = attempt_import_or_raise("polars")
    return pl.from_arrow(batch)


class Transforms:
    """Batch converters, the transforms behind ``Permutation.with_format``.

    Each takes the ``pa.RecordBatch`` of a read and returns what the read returns. All are
    module-level functions, so a permutation using them pickles.
    """

    @staticmethod
    def arrow2python(batch: pa.RecordBatch) -> list[dict[str, Any]]:
        """``"python"``: a list with one dict per row (copies into Python objects)."""
        return batch.to_pylist()

    @staticmethod
    def arrow2pythoncol(batch: pa.RecordBatch) -> dict[str, list[Any]]:
        """``"python_col"``: a dict of column name -> list of values (copies)."""
        return batch.to_pydict()

    @staticmethod
    def arrow2numpyrows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
        """riffledb's: one dict per row of NumPy values (see
        :func:`batch_to_numpy_rows`)."""
        return batch_to_numpy_rows(batch)

    @staticmethod
    def arrow2arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
        """``"arrow"``: the ``pa.RecordBatch`` itself (zero-copy)."""
        return batch

    @staticmethod
    def arrow2numpy(batch: pa.RecordBatch):
        """``"numpy"``: one 2-D ``np.ndarray`` of shape (rows, features).

        See :func:`batch_to_numpy`: fixed-size list columns (embeddings) contribute one
        feature per element; mixed numeric dtypes are promoted, other mixes give
        ``object``. For a dict of per-column arrays use the ``"numpy_dict"`` format.
        """
        return batch_to_numpy(batch)

    @staticmethod
    def arrow2pandas(batch: pa.RecordBatch):
        """``"pandas"``: a ``pd.DataFrame`` (zero-copy for numeric columns where pandas
        allows it)."""
        attempt_import_or_raise("pandas")
        return batch.to_pandas()

    @staticmethod
    def arrow2polars(batch: pa.RecordBatch | None = None):
        """``"polars"``: a ``pl.DataFrame`` (zero-copy).

        Called without a batch (LanceDB's spelling, ``Transforms.arrow2polars()``)
        it returns the converter itself, a module-level function that pickles by name.
        """
        if batch is None:
            attempt_import_or_raise("polars")
            return _arrow2polars
        return _arrow2polars(batch)


#: Format name -> (transform, the optional module it needs).
FORMATS: dict[str, tuple[Callable[[pa.RecordBatch], Any], str | None]] = {
    "python": (Transforms.arrow2python, None),
    "python_col": (Transforms.arrow2pythoncol, None),
    "numpy": (Transforms.arrow2numpy, None),
    "pandas": (Transforms.arrow2pandas, "pandas"),
    "arrow": (Transforms.arrow2arrow, None),
    "polars": (_arrow2polars, "polars"),
    "torch": (batch_to_tensor_dict, "torch"),
    "torch_row": (batch_to_tensor_rows, "torch"),
    "torch_col": (batch_to_tensor, "torch"),
    # riffledb's own: a dict of batch-first columns (gathered straight into arrays)
    "numpy_dict": (batch_to_numpy_dict, None),
    "torch_dict": (batch_to_torch_dict, "torch"),
}

Format = Literal[
    "python",
    "python_col",
    "numpy",
    "pandas",
    "arrow",
    "polars",
    "torch",
    "torch_row",
    "torch_col",
    "numpy_dict",
    "torch_dict",
]


def transform_of(format: str) -> Callable[[pa.RecordBatch], Any]:
    """The transform of a format name, after importing the module it needs.

    Raises:
        ValueError: an unknown format ("Invalid format: ...").
        ImportError: the format's library is not installed.
    """
    entry = FORMATS.get(format) if isinstance(format, str) else None
    if entry is None:
        raise ValueError(f"Invalid format: {format}")
    transform, module = entry
    if module is not None:
        attempt_import_or_raise(module)
    return transform


def _numpy_columns(names: list[str], arrays: list) -> dict[str, Any]:
    return dict(zip(names, arrays, strict=True))


def _torch_columns(names: list[str], arrays: list) -> dict[str, Any]:
    import torch

    from_numpy = torch.from_numpy
    return {name: from_numpy(array) for name, array in zip(names, arrays, strict=True)}


def column_builder(
    transform: Callable[[pa.RecordBatch], Any],
) -> Callable[[list[str], list], Any] | None:
    """For a transform that makes a dict of batch-first columns, the function building
    that same dict from a native read's NumPy arrays (no ``pa.RecordBatch`` in between);
    None for other transforms."""
    if transform is batch_to_torch_dict:
        return _torch_columns
    if transform is batch_to_numpy_dict:
        return _numpy_columns
    return None


# -- the DataLoader hand-off -------------------------------------------------------------

_ALIGN = 64  # every column starts on a cache line (and any dtype's alignment)


class _OneBuffer:
    """A batch of columns packed in one POSIX shared-memory segment, as a DataLoader
    worker sends it: pickling sends the segment's name and the layout (a few hundred
    bytes, no file descriptor); unpickling in the main process maps the segment, removes
    its name, and gives the dict of tensors back, each a view of the mapping."""

    __slots__ = ("name", "size", "layout")

    def __init__(self, name: str, size: int, layout: list):
        self.name = name
        self.size = size
        self.layout = layout

    def __reduce__(self):
        return _attach_one_buffer, (self.name, self.size, self.layout)


def _views(torch: Any, buffer: Any, layout: list) -> dict[str, Any]:
    out = {}
    for name, dtype, shape, offset in layout:
        count = 1
        for extent in shape:
            count *= extent
        size = count * dtype.itemsize
        out[name] = buffer[offset : offset + size].view(dtype).view(shape)
    return out


def _attach_one_buffer(name: str, size: int, layout: list) -> dict[str, Any]:
    import _posixshmem
    import mmap

    import torch

    fd = _posixshmem.shm_open(name, os.O_RDWR, mode=0o600)
    try:
        mapping = mmap.mmap(fd, size)
    finally:
        os.close(fd)
        _posixshmem.shm_unlink(name)  # the mapping lives on as long as the tensors do
    return _views(torch, torch.frombuffer(mapping, dtype=torch.uint8), layout)


# The last segments this process made, which the main process may not have attached
# yet: removed at exit (a worker stopped before the main process took its batches).
# Older ones were taken long ago (a worker has prefetch_factor batches in flight).
_SENT: collections.deque[str] = collections.deque(maxlen=1024)


def _remove_unattached() -> None:
    import _posixshmem

    for name in list(_SENT):
        try:
            _posixshmem.shm_unlink(name)
        except FileNotFoundError:
            pass
    _SENT.clear()


def _pack(torch: Any, tensors: dict[str, Any]) -> _OneBuffer:
    import _posixshmem
    import mmap

    layout = []
    total = 0
    for name, tensor in tensors.items():
        total = -(-total // _ALIGN) * _ALIGN
        layout.append((name, tensor.dtype, tuple(tensor.shape), total))
        total += tensor.numel() * tensor.element_size()
    size = max(total, 1)
    if not _SENT:
        from multiprocessing.util import Finalize

        Finalize(None, _remove_unattached, exitpriority=0)
    while True:
        # Random names: processes of other jobs (containers sharing /dev/shm) can have
        # this pid.
        name = f"/riffledb-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            fd = _posixshmem.shm_open(
                name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600
            )
        except FileExistsError:
            continue
        break
    try:
        try:
            # Allocated now: a full /dev/shm is an OSError here, not a SIGBUS later.
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size)
        finally:
            os.close(fd)
    except BaseException:
        _posixshmem.shm_unlink(name)
        raise
    _SENT.append(name)
    buffer = torch.frombuffer(mapping, dtype=torch.uint8)
    for target, tensor in zip(
        _views(torch, buffer, layout).values(), tensors.values(), strict=True
    ):
        if tensor.numel():
            target.copy_(tensor)
    return _OneBuffer(name, size, layout)


def _as_tensors(torch: Any, batch: Any) -> dict[str, Any]:
    """A batch of columns as a dict of tensors (no copy where the input allows)."""
    if isinstance(batch, (pa.RecordBatch, pa.Table)):
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None
        return {} if batch is None else batch_to_torch_dict(batch)
    if not isinstance(batch, dict):
        raise RiffledbTypeError(
            "one_buffer_collate takes a whole batch as a dict of columns (formats "
            "'torch_dict' or 'numpy_dict') or a pyarrow RecordBatch/Table, got "
            f"{type(batch).__name__}"
        )
    out = {}
    for name, column in batch.items():
        if isinstance(column, torch.Tensor):
            out[name] = column
            continue
        np = attempt_import_or_raise("numpy")
        array = np.asarray(column)
        if array.dtype.kind not in "biuf":
            raise RiffledbTypeError(
                f"one_buffer_collate: column '{name}' is not numeric or boolean "
                f"({array.dtype})"
            )
        out[name] = torch.from_numpy(np.ascontiguousarray(array))
    return out


def one_buffer_collate(batch: Any) -> Any:
    """``collate_fn`` for DataLoader workers: a riffledb batch crosses to the main
    process as one shared-memory buffer instead of one segment per tensor.

    Give it datasets whose ``__getitems__`` returns a whole batch of columns: a
    :class:`~riffledb.permutation.Permutation` (or table) with format ``"torch_dict"``
    or ``"numpy_dict"``, or Arrow batches. The training loop gets a dict of column name
    -> batch-first tensor either way; with workers, each tensor is a view of the one
    buffer (read-only use is the norm; writes go to the shared buffer). In the main
    process (``num_workers=0``) it returns the dict as it is, without packing.

    torch sends every tensor of a worker's batch through a shared-memory segment of its
    own, whose file descriptor the main process fetches over a socket connection of its
    own. Here the batch is copied once into one POSIX shared-memory segment, which the
    main process opens by name (and removes at once: nothing is left in /dev/shm).

    Raises:
        TypeError: a batch that is not a dict of numeric columns or an Arrow batch.
    """
    torch = attempt_import_or_raise("torch")
    tensors = _as_tensors(torch, batch)
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return tensors
    return _pack(torch, tensors)
