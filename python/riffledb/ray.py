"""Ray Data integration: write datasets into tables, read tables into datasets.

Needs the ``ray`` extra (``pip install 'riffledb[ray]'``, Ray Data 2.60)::

    import ray
    from riffledb.ray import RiffleDatasink, read_riffledb

    ds = ray.data.range(1_000_000).map_batches(featurize)
    ds.write_datasink(RiffleDatasink("/data/db", "features", mode="create"))

    ds = read_riffledb("/data/db", "features", filter="label = 3")

Writes go through the two-step API of :mod:`riffledb.fragments`: each write task writes
fragment files and returns their descriptions, and the driver commits all of them in one
commit when every task has succeeded, so the whole dataset appears in one new version or
not at all. Reads split the table (or a filtered scan of it, or one split of a
permutation) into row ranges read by parallel tasks, all at one pinned version.

A local directory is written and read by tasks on the driver's node only (Ray is told
``supports_distributed_writes`` / ``_reads`` = False). An ``s3://`` uri is written and
read from every node (``memory://`` is refused: it lives in one process). See
``docs/ray.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
import pyarrow as pa

try:
    import ray.data
    from ray.data.block import BlockAccessor, BlockMetadata
    from ray.data.datasource import Datasink, Datasource, ReadTask
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "riffledb.ray needs Ray Data: install the extra with "
        "pip install 'riffledb[ray]' (ray[data]==2.60.0)"
    ) from error

from . import connect
from ._args import check_int, check_storage_options, check_str, check_str_list, describe
from .errors import (
    CommitOutcomeUnknownError,
    InvalidError,
    NotSupportedError,
    RiffledbTypeError,
)
from .fragments import FragmentDescription
from .permutation import Permutation
from .query import _projection, native_reader
from .table import Table, reference

__all__ = ["RiffleDatasink", "RiffleDatasource", "read_riffledb"]

logger = logging.getLogger(__name__)

#: Rows each read task reads at least (a smaller table is read by fewer tasks).
MIN_ROWS_PER_READ_TASK = 1024
#: Rows per block a read task yields (at most).
ROWS_PER_BLOCK = 65536
#: Rows sampled to estimate the in-memory size of a row.
_SAMPLE_ROWS = 256


def _uri(uri: Any) -> str:
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str):
        raise RiffledbTypeError(f"uri must be a str or os.PathLike, got {describe(uri)}")
    if uri.startswith("memory://"):
        raise InvalidError(
            f"Cannot use {uri!r} with Ray: a memory:// database lives in one process, "
            "and Ray tasks run in others"
        )
    return uri


def _is_local(uri: str) -> bool:
    """Whether ``uri`` is a directory on this machine: tasks on other nodes would not see
    it."""
    return "://" not in uri or uri.startswith("file://")


def _check_storage_options(value: Any) -> dict[str, str] | None:
    return check_storage_options(value) or None


def _connect(uri: str, storage_options: dict[str, str] | None):
    if storage_options:
        return connect(uri, storage_options=storage_options)
    return connect(uri)


# -- writing ----------------------------------------------------------------------------


def _arrow_blocks(blocks: Iterable[Any]) -> Iterator[pa.Table]:
    for block in blocks:
        table = BlockAccessor.for_block(block).to_arrow()
        if table.num_rows:
            yield table


class RiffleDatasink(Datasink):
    """Writes a Ray dataset into a riffledb table in one commit.

    Each write task writes its blocks as fragment files of the table
    (:meth:`Table.write_fragments`) and returns their descriptions; once every task
    has succeeded, the driver commits all of them in one new version
    (:meth:`Table.commit_fragments`). If any task fails, nothing is committed and the
    table keeps its version; the files finished tasks wrote are never referenced and
    :meth:`Table.cleanup_old_versions` removes them after its grace period.

    Usage: ``ds.write_datasink(RiffleDatasink(uri, "table"))``. After the write,
    :attr:`committed_version` is the version the write made (None if it made none:
    an empty dataset appended).

    If the final commit fails with :class:`~riffledb.errors.CommitOutcomeUnknownError`
    (the storage failed and the new version may be visible or not), the driver commits
    the same descriptions once more. That is safe: the second commit lands them if the
    first did not, and is refused with an InvalidError naming the version that
    references them if it did (then the dataset is committed, and that error is
    raised, chained to the first).

    Args:
        uri: The database: any uri :func:`riffledb.connect` accepts except
            ``memory://``: a directory, or ``s3://bucket/prefix`` with
            ``storage_options``.
        table_name: The table.
        mode: ``"append"`` (the table must exist, checked before any task runs; rows
            are matched to its schema as :meth:`Table.add` does; an empty dataset
            commits nothing), ``"overwrite"`` (every row and the schema replaced by the
            dataset's; the table is created, empty, first if it does not exist; an
            empty dataset commits an empty overwrite, with ``schema`` or else the
            table's, or only creates a missing table, which needs ``schema``) or
            ``"create"`` (the table must not exist: it is created empty, with
            ``schema`` or the first block's, before the tasks write, then the rows are
            appended; an empty dataset only creates it, and needs ``schema``: Ray gives
            the sink no block to take one from).
        schema: The schema to create or overwrite with (default: the first block's).
        storage_options: Passed to :func:`riffledb.connect` in the driver and tasks.
        min_rows_per_write: Rows Ray gives each write task at least (fewer, larger
            fragment files); None lets Ray choose.
    """

    def __init__(
        self,
        uri: str | os.PathLike,
        table_name: str,
        mode: Literal["append", "overwrite", "create"] = "append",
        schema: pa.Schema | None = None,
        storage_options: dict[str, str] | None = None,
        *,
        min_rows_per_write: int | None = None,
    ):
        self.uri = _uri(uri)
        self.table_name = check_str(table_name, "table_name")
        check_str(mode, "mode")
        if mode not in ("append", "overwrite", "create"):
            raise InvalidError(
                f"Invalid mode {mode!r}: expected 'append', 'overwrite' or 'create'"
            )
        self.mode = mode
        if schema is not None and not isinstance(schema, pa.Schema):
            raise RiffledbTypeError(
                f"schema must be a pyarrow.Schema or None, got {describe(schema)}"
            )
        self.schema = schema
        self.storage_options = _check_storage_options(storage_options)
        self._min_rows = check_int(
            min_rows_per_write, "min_rows_per_write", minimum=1, none_ok=True
        )
        # Set in the driver by on_write_start, before the tasks are sent (Ray pickles
        # the sink into them after it): the schema an overwrite writes with, and
        # whether it ran (Ray skips it for a dataset without blocks) and created the
        # table (its version).
        self._write_schema: pa.Schema | None = None
        self._started = False
        self._created_version: int | None = None
        #: The version the write made (None until a write completes, and if it made
        #: none).
        self.committed_version: int | None = None

    def _db(self):
        return _connect(self.uri, self.storage_options)

    @property
    def supports_distributed_writes(self) -> bool:
        return not _is_local(self.uri)

    @property
    def min_rows_per_write(self) -> int | None:
        return self._min_rows

    def get_name(self) -> str:
        return "Riffle"

    def _create(self, schema: pa.Schema | None) -> None:
        if schema is None:
            raise InvalidError(
                f"Cannot create table '{self.table_name}': the dataset gave no schema "
                "(it has no blocks, or blocks without one); pass schema= to "
                "RiffleDatasink"
            )
        table = self._db().create_table(self.table_name, schema=schema)
        self._created_version = table.version

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        """Creates the table (``"create"``, or ``"overwrite"`` of a missing table), or
        checks that it exists (``"append"``), before any task writes."""
        self._started = True
        db = self._db()
        if self.schema is not None:
            schema = self.schema
        if self.mode == "create":
            self._create(schema)
        elif self.mode == "append":
            db.open_table(self.table_name)  # TableNotFoundError before any task runs
        else:
            if self.table_name not in db:
                self._create(schema)
            self._write_schema = schema

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[str]:
        """Writes this task's blocks as fragment files; returns their descriptions as
        JSON (small, and plain strings for Ray to carry)."""
        table = self._db().open_table(self.table_name)
        descriptions = table.write_fragments(
            _arrow_blocks(blocks), schema=self._write_schema
        )
        return [description.to_json() for description in descriptions]

    def on_write_complete(self, write_result: Any) -> None:
        """Commits every task's fragments in one new version."""
        try:
            self._complete(write_result)
        finally:
            self._reset()

    def _reset(self) -> None:
        # A sink may be used for another write.
        self._write_schema = None
        self._started = False
        self._created_version = None

    def _complete(self, write_result: Any) -> None:
        self.committed_version = None
        texts = [
            text for returned in write_result.write_returns or [] for text in returned
        ]
        if not texts:
            self._complete_without_tasks()
            return
        descriptions = [FragmentDescription.from_json(text) for text in texts]
        table = self._db().open_table(self.table_name)
        mode = "overwrite" if self.mode == "overwrite" else "append"
        try:
            self.committed_version = table.commit_fragments(descriptions, mode=mode)
        except CommitOutcomeUnknownError as error:
            # Safe to repeat: a commit of descriptions a version already references is
            # refused, so the rows land once either way.
            logger.warning(
                "Committing to riffledb table '%s' failed with an unknown outcome (%s); "
                "committing the same descriptions again",
                self.table_name,
                error,
            )
            self.committed_version = table.commit_fragments(descriptions, mode=mode)

    def _complete_without_tasks(self) -> None:
        """What the mode means for a dataset that no task wrote: Ray gives a dataset
        without blocks no write task, and calls no on_write_start either."""
        if not self._started:
            # The checks and the creation on_write_start makes: append to a missing
            # table, create of an existing one, or without a schema, fail here.
            self.on_write_start(None)
        if self._created_version is not None:
            # A new, empty table is all the write makes.
            self.committed_version = self._created_version
        elif self.mode == "overwrite":
            table = self._db().open_table(self.table_name)
            schema = (
                self._write_schema if self._write_schema is not None else table.schema
            )
            table.add(schema.empty_table(), mode="overwrite")
            self.committed_version = table.version
        # "append": no rows, no version.

    def on_write_failed(self, error: Exception) -> None:
        self._reset()
        logger.warning(
            "Writing to riffledb table '%s' failed (%s). Nothing was committed, unless "
            "the error says that a version already references the files (a commit "
            "whose outcome was unknown landed); files that no version references are "
            "removed by cleanup_old_versions after its grace period",
            self.table_name,
            error,
        )


# -- reading ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ReadSpec:
    """What a read task needs to open what it reads (pickled into each task)."""

    uri: str
    table_name: str
    version: int
    storage_options: dict[str, str] | None
    columns: list[str] | None
    filter: str | None
    permutation: Permutation | None
    permutation_table: str | None
    permutation_version: int | None
    split: str | int | None

    def open_table(self) -> Table:
        db = _connect(self.uri, self.storage_options)
        return db.open_table(self.table_name, version=self.version)

    def open_permutation(self) -> Permutation | None:
        permutation = self.permutation
        if self.permutation_table is not None:
            db = _connect(self.uri, self.storage_options)
            permutation_table = db.open_table(
                self.permutation_table, version=self.permutation_version
            )
            permutation = Permutation.from_tables(
                self.open_table(), permutation_table, self.split
            )
        if permutation is None:
            return None
        if self.columns is not None:
            permutation = permutation.select_columns(self.columns)
        return permutation.with_format("arrow")


def _read_table_range(spec: _ReadSpec, begin: int, end: int) -> Iterator[pa.Table]:
    native = reference(spec.open_table()).native()
    stream = native.scan(
        spec.filter,
        _projection(spec.columns),
        False,
        0,
        None,
        ROWS_PER_BLOCK,
        range_begin=begin,
        range_end=end,
    )
    reader = native_reader(stream)
    empty = True
    for batch in reader:
        if batch.num_rows:
            empty = False
            yield pa.Table.from_batches([batch])
    if empty:
        # A range the filter left empty still gives a block of the right schema: a task
        # without blocks gives Ray one without columns, which concatenates with nothing.
        yield reader.schema.empty_table()


def _read_permutation_range(spec: _ReadSpec, begin: int, end: int) -> Iterator[pa.Table]:
    permutation = spec.open_permutation()
    for start in range(begin, end, ROWS_PER_BLOCK):
        stop = min(start + ROWS_PER_BLOCK, end)
        batch = permutation.take_offsets(np.arange(start, stop, dtype=np.int64))
        yield pa.Table.from_batches([batch])


def _empty(schema: pa.Schema) -> Iterator[pa.Table]:
    yield schema.empty_table()


class RiffleDatasource(Datasource):
    """Reads a riffledb table, a filtered scan of it, or one split of a permutation, in
    parallel row ranges.

    Everything is read at one version, pinned when the datasource is made: the
    table's newest (or ``version``), and the permutation table's. A table is cut into
    ranges of its rows, each read by one task (zero-copy slices of the stored batches;
    a version of more than 64 fragments opens only those in the task's range, a smaller
    one opens them all); with a ``filter``, each task
    filters its own range, so the rows come in table order and no task scans rows
    outside its range. A permutation is cut into ranges of its positions, each
    gathered by one task in permutation order.

    Args:
        uri: The database: any uri :func:`riffledb.connect` accepts except
            ``memory://``.
        table_name: The table (the base table of a permutation; a Permutation object
            must read this table, or InvalidError).
        columns: Columns to read (default: all).
        filter: A SQL filter (riffledb's dialect, as ``Table.search().where``); not
            with a permutation (build the permutation with a filter instead).
        version: The table version to read (default: the newest). A Permutation
            object reads the version it was made at: ``version``, if given, must be
            that one (InvalidError otherwise).
        permutation: A :class:`~riffledb.permutation.Permutation` (its view: split,
            skip, take, repeat and selection; it is pickled into every task), or the
            name of a permutation table in the same database (then ``split`` picks the
            split, by name or index; default split 0).
        split: With a permutation table name, the split to read.
        storage_options: Passed to :func:`riffledb.connect`.
    """

    def __init__(
        self,
        uri: str | os.PathLike,
        table_name: str,
        columns: list[str] | None = None,
        filter: str | None = None,
        version: int | None = None,
        permutation: Permutation | str | None = None,
        split: str | int | None = None,
        storage_options: dict[str, str] | None = None,
    ):
        super().__init__()
        uri = _uri(uri)
        check_str(table_name, "table_name")
        if columns is not None:
            columns = check_str_list(columns, "columns")
        check_str(filter, "filter", none_ok=True)
        version = check_int(version, "version", minimum=1, none_ok=True)
        storage_options = _check_storage_options(storage_options)
        if permutation is not None and not isinstance(permutation, (Permutation, str)):
            raise RiffledbTypeError(
                "permutation must be a Permutation, the name of a permutation table, "
                f"or None, got {describe(permutation)}"
            )
        if split is not None and not isinstance(permutation, str):
            raise InvalidError(
                "split is for a permutation given by its table's name; select the "
                "split of a Permutation object with Permutation.from_tables"
            )
        if permutation is not None and filter is not None:
            raise NotSupportedError(
                "Cannot filter a permutation: build the permutation with the filter "
                "(permutation_builder(table).filter(...))"
            )
        if isinstance(permutation, Permutation):
            # The object carries its base table and version (pickled into the tasks):
            # arguments that disagree would be ignored, so they are refused.
            base = permutation.base_table.name
            if table_name != base:
                raise InvalidError(
                    f"table_name is '{table_name}', but the permutation reads table "
                    f"'{base}'"
                )
            if version is not None and version != permutation.base_version:
                raise InvalidError(
                    f"version is {version}, but the permutation reads version "
                    f"{permutation.base_version} of table '{base}'"
                )
        self._local = _is_local(uri)
        db = _connect(uri, storage_options)
        table = db.open_table(table_name, version=version)
        permutation_version = None
        permutation_table = None
        if isinstance(permutation, str):
            permutation_table = permutation
            permutation_version = db.open_table(permutation).version
        self._spec = _ReadSpec(
            uri=uri,
            table_name=table_name,
            version=table.version,
            storage_options=storage_options,
            columns=columns,
            filter=filter,
            permutation=permutation if isinstance(permutation, Permutation) else None,
            permutation_table=permutation_table,
            permutation_version=permutation_version,
            split=split,
        )
        # Checked here, in the driver: a bad column, filter or split fails now.
        source = self._spec.open_permutation()
        if source is None:
            query = table.search().limit(_SAMPLE_ROWS)
            if columns is not None:
                query = query.select(columns)
            if filter is not None:
                query = query.where(filter)
            sample = query.to_arrow()
            self._num_rows = len(table)  # the rows the ranges cut; filtered in tasks
        else:
            self._num_rows = len(source)
            n = min(_SAMPLE_ROWS, self._num_rows)
            sample = pa.Table.from_batches(
                [source.take_offsets(np.arange(n, dtype=np.int64))]
            )
        self._schema = sample.schema
        self._row_bytes = sample.nbytes / sample.num_rows if sample.num_rows else 0.0

    @property
    def supports_distributed_reads(self) -> bool:
        return not self._local

    def get_name(self) -> str:
        return "Riffle"

    def estimate_inmemory_data_size(self) -> int | None:
        return int(self._num_rows * self._row_bytes)

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        spec = self._spec
        filtered = spec.filter is not None
        if spec.permutation is None and spec.permutation_table is None:
            read = _read_table_range
        else:
            read = _read_permutation_range
        n = self._num_rows
        if n == 0:
            metadata = BlockMetadata(
                num_rows=0, size_bytes=0, input_files=None, exec_stats=None
            )
            return [
                ReadTask(
                    functools.partial(_empty, self._schema),
                    metadata,
                    schema=self._schema,
                    per_task_row_limit=per_task_row_limit,
                )
            ]
        tasks = max(1, min(parallelism, math.ceil(n / MIN_ROWS_PER_READ_TASK)))
        bounds = [n * i // tasks for i in range(tasks + 1)]
        read_tasks = []
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            rows = end - begin
            metadata = BlockMetadata(
                num_rows=None if filtered else rows,
                size_bytes=int(rows * self._row_bytes),
                input_files=None,
                exec_stats=None,
            )
            read_tasks.append(
                ReadTask(
                    functools.partial(read, spec, begin, end),
                    metadata,
                    schema=self._schema,
                    per_task_row_limit=per_task_row_limit,
                )
            )
        return read_tasks


def read_riffledb(
    uri: str | os.PathLike,
    table_name: str,
    *,
    columns: list[str] | None = None,
    filter: str | None = None,
    version: int | None = None,
    permutation: Permutation | str | None = None,
    split: str | int | None = None,
    storage_options: dict[str, str] | None = None,
    **read_args: Any,
) -> ray.data.Dataset:
    """A Ray dataset reading a riffledb table (see :class:`RiffleDatasource`).

    ``read_args`` go to :func:`ray.data.read_datasource` (``override_num_blocks``,
    ``concurrency``, ``ray_remote_args``, ...).
    """
    datasource = RiffleDatasource(
        uri,
        table_name,
        columns=columns,
        filter=filter,
        version=version,
        permutation=permutation,
        split=split,
        storage_options=storage_options,
    )
    return ray.data.read_datasource(datasource, **read_args)
