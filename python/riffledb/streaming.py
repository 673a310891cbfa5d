"""Elastic, resumable streaming of a table into PyTorch training, on one or many ranks.

LanceDB's ``lancedb.streaming`` surface. :class:`StreamingDataset` is a
``torch.utils.data.IterableDataset`` that

- gives **the same global batches for any world size**: the table's rows are dealt into
  ``num_splits`` equal splits by a permutation seeded with ``shuffle_seed`` and the
  epoch; rank ``r`` of ``W`` reads the contiguous block of splits
  ``[r*S/W, (r+1)*S/W)`` (each DataLoader worker a contiguous part of it), one row per
  split per cycle, so the rows of global step ``k`` do not depend on ``W``;
- **resumes exactly**: :meth:`StreamingDataset.state_dict` records how far each split
  has been read, on any topology, and :meth:`StreamingDataset.load_state_dict` carries
  on from there with any world size that divides ``num_splits``;
- **runs epoch after epoch**: iterating the instance again starts the next pass
  (``epoch + 1``, a new shuffle), or :meth:`StreamingDataset.set_epoch` chooses one, as
  with ``DistributedSampler``;
- **knows what its DataLoader workers read**: the progress lives in shared memory, so
  the main process's ``state_dict()``, ``epoch`` and counters follow its workers
  (:class:`StreamingDataLoader` makes it exact to the batch the training loop took).

Rank and world size come from ``torch.distributed`` when it is initialised and they are
not given. See docs/distributed-training.md.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.context
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.sharedctypes import RawArray
from typing import Any, NamedTuple

from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info

from . import _riffledb
from ._args import check_bool, check_int, check_str, check_str_list
from ._base_table import is_remote
from ._permutation_builder import PermutationBuilder
from ._prefetch import DEFAULT_PREFETCH_BYTES, Prefetch
from .errors import InvalidError, RiffledbTypeError
from .formats import Transforms
from .permutation import Permutation
from .table import Table

__all__ = [
    "DEFAULT_PREFETCH_BATCHES",
    "DEFAULT_READ_BATCH_SIZE",
    "StreamingDataLoader",
    "StreamingDataset",
]

logger = logging.getLogger(__name__)

#: Rows per read of one split (one take).
DEFAULT_READ_BATCH_SIZE = 64
#: Reads in flight per split.
DEFAULT_PREFETCH_BATCHES = 4
# riffledb's row converters: pure Python (and pyarrow's to_pylist), GIL-bound.
_GIL_BOUND = (
    Transforms.arrow2python,
    Transforms.arrow2numpyrows,
    Transforms.arrow2pythoncol,
)
# Native threads reading ahead (a read's gather also uses riffledb's process-wide pool).
_READ_THREADS = 4

# The permutation of epoch e is seeded with shuffle_seed + e * _EPOCH_PRIME (LanceDB's
# rule, so that a seed and epoch give the same split sizes and the same kind of shuffle).
_EPOCH_PRIME = 100003
_SEED_LIMIT = 2**64

# -- shared progress ---------------------------------------------------------------------
# One int64 array per dataset instance, shared with its DataLoader workers (inherited by
# fork, passed to spawn/forkserver workers as they start). Per split: the epoch of the
# record, rows yielded, the position read up to (ahead of the rows yielded when rows
# were skipped), whether the split's pass ended, and a sequence number. Then one slot of
# counters per process (the main process uses slot 0, worker k slot k + 1).
#
# Each split is written by the one process that reads it, so no locks; a record is read
# whole through its sequence number (a seqlock: odd while a write is under way, the
# reader retries until it sees the same even number before and after). The loads and
# stores are native (riffledb/util/seqlock.h): atomics ordered by release/acquire
# fences, so that it holds on any CPU, not only on x86's ordered stores.
_SPLIT_FIELDS = 5
_EPOCH, _CONSUMED, _POSITION, _DONE, _SEQ = range(_SPLIT_FIELDS)
_STAT_SLOTS = 64
_WORD = ctypes.sizeof(ctypes.c_int64)
_STAT_FIELDS = 8
(
    _BYTES,
    _FETCH_US,
    _TRANSFORM_US,
    _SKIPPED,
    _RAW_ROWS,
    _READY_ROWS,
    _UNSCANNED,
    _YIELDED,
) = range(_STAT_FIELDS)

Record = tuple[int, int, int, int]  # (epoch, consumed, position, done)


class _Progress:
    """The shared progress of a dataset: per-split records and per-process counters."""

    def __init__(self, num_splits: int, values: Sequence[int] | None = None):
        self.num_splits = num_splits
        size = num_splits * _SPLIT_FIELDS + _STAT_SLOTS * _STAT_FIELDS
        self.array = RawArray(ctypes.c_int64, size)
        if values is not None:
            if len(values) != size:
                raise InvalidError(
                    f"StreamingDataset pickle state: progress has {len(values)} values, "
                    f"expected {size}"
                )
            self.array[:] = list(values)

    @classmethod
    def shared(cls, num_splits: int, array: Any) -> _Progress:
        progress = cls.__new__(cls)
        progress.num_splits = num_splits
        progress.array = array
        return progress

    # splits: a seqlock per record (native: the fences that make it hold on any CPU)
    def _address(self, split: int) -> int:
        if not 0 <= split < self.num_splits:
            raise IndexError(f"split {split} of {self.num_splits}")
        return ctypes.addressof(self.array) + split * _SPLIT_FIELDS * _WORD

    def record(self, split: int) -> Record:
        address = self._address(split)
        while True:
            values = _riffledb._seqlock_read(address, _SEQ)
            if values is not None:
                return tuple(values)  # type: ignore[return-value]
            time.sleep(0)  # a write is under way in another process

    def write(self, split: int, epoch: int, consumed: int, position: int, done: int):
        _riffledb._seqlock_write(self._address(split), [epoch, consumed, position, done])

    def finish(self, split: int) -> None:
        # This process is the split's one writer: its own record reads back unchanged.
        record = list(self.record(split))
        record[_DONE] = 1
        _riffledb._seqlock_write(self._address(split), record)

    # counters
    def _stat_base(self, slot: int) -> int:
        return self.num_splits * _SPLIT_FIELDS + (slot % _STAT_SLOTS) * _STAT_FIELDS

    def stats(self, slot: int) -> list[int]:
        base = self._stat_base(slot)
        return list(self.array[base : base + _STAT_FIELDS])

    def write_stats(self, slot: int, values: Sequence[int]) -> None:
        base = self._stat_base(slot)
        self.array[base : base + _STAT_FIELDS] = list(values)

    def total(self, field: int) -> int:
        base = self.num_splits * _SPLIT_FIELDS + field
        return sum(self.array[base + slot * _STAT_FIELDS] for slot in range(_STAT_SLOTS))


# -- the read pipeline -------------------------------------------------------------------


class _Chunk(NamedTuple):
    """A transformed read: (position, row) pairs, in split order; rows skipped; the
    seconds the transform took."""

    rows: list[tuple[int, Any]]
    skipped: int
    seconds: float = 0.0


class _Pipeline:
    """Reads the owned splits ahead of the consumer and transforms them.

    The reads — ``read_batch_size`` rows of each split in turn, in the order the rows
    are yielded — run on riffledb's native prefetcher (C++ threads that never take the
    GIL; up to ``prefetch_batches`` reads per split ahead); each batch read is handed
    to a pool of ``transform_parallelism`` threads for the transform. Reads of a split
    come back in order, so its rows stay in order."""

    def __init__(
        self,
        dataset: StreamingDataset,
        permutations: list[Permutation],
        starts: list[int],
        length: int,
        slot: int,
    ):
        self.slot = slot
        self.base = dataset._progress.stats(slot)  # the slot's counters before this pass
        self.yielded = 0
        n = len(permutations)
        batch = dataset._read_batch_size
        self._schemas = []
        reads = []
        self._reads_left = [0] * n
        self._next_start = list(starts)
        views = []
        for permutation in permutations:
            bound, schema, _ = permutation._selection()
            views.append((permutation._view(), bound))
            self._schemas.append(schema)
        rounds = -(-(length - min(starts)) // batch) if n else 0
        for chunk in range(max(0, rounds)):
            for i, (view, bound) in enumerate(views):
                start = starts[i] + chunk * batch
                if start < length:
                    reads.append((view, bound, start, min(batch, length - start), i))
                    self._reads_left[i] += 1
        self._planned_rows = sum(length - start for start in starts)
        ahead = max(1, n * dataset._prefetch_batches)
        self._ahead = ahead
        self._prefetch = Prefetch(
            reads, ahead, DEFAULT_PREFETCH_BYTES, max(1, min(ahead, _READ_THREADS))
        )
        self._pending: list[deque[tuple[Future, int]]] = [deque() for _ in starts]
        self.ready: list[deque[tuple[int, Any]]] = [deque() for _ in starts]
        self._transform = dataset._transform or Transforms.arrow2python
        self._on_error = dataset._on_transform_error
        workers = dataset._transform_parallelism or os.cpu_count() or 1
        # Transforms that hold the GIL all along (riffledb's row converters, unless a
        # parallelism was asked for; any transform with parallelism 1) run in the
        # consumer's thread: threads of their own would only trade the GIL back and
        # forth with it.
        self._inline = workers == 1 or (
            dataset._transform_parallelism is None
            and (dataset._transform is None or dataset._transform in _GIL_BOUND)
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="riffledb-transform")
        self._dispatched = 0  # transforms handed over and not collected
        # Read batches handed to transforms ahead of need: one per split (the reads
        # ahead are the prefetcher's window).
        self._transform_ahead = max(1, n)
        self.transform_time = 0.0  # of the transforms collected
        self.rows_skipped = 0

    # counters
    @property
    def ready_rows(self) -> int:
        return sum(len(ready) for ready in self.ready)

    def counters(self, idle: bool = False) -> list[int]:
        """The slot's counters: the totals of earlier passes plus this one's, and the
        queue depths (0 when ``idle``)."""
        base = self.base
        stats = self._prefetch.native.stats()
        unscanned = self._planned_rows - stats["rows"] - stats["queued_rows"]
        return [
            base[_BYTES] + stats["bytes"],
            base[_FETCH_US] + stats["read_ns"] // 1000,
            base[_TRANSFORM_US] + int(self.transform_time * 1e6),
            base[_SKIPPED] + self.rows_skipped,
            0 if idle else self.raw_rows + stats["queued_rows"],
            0 if idle else self.ready_rows,
            0 if idle else max(0, unscanned),
            self.yielded,
        ]

    # reading
    def _dispatch(self, item: tuple[int, Any]) -> None:
        """Hands a batch read to the transform pool. The counters are the consumer's
        alone (no lock: a lock shared with the transform threads makes the consumer
        wait for them to get the GIL back)."""
        split, native = item
        batch = native.to_arrow(self._schemas[split])
        start = self._next_start[split]
        rows = batch.num_rows
        self._next_start[split] = start + rows
        self._reads_left[split] -= 1
        self._dispatched += 1
        if self._inline:
            future: Future = Future()
            try:
                future.set_result(self._run(start, batch))
            except Exception as error:  # noqa: BLE001 (raised where collected)
                future.set_exception(error)
        else:
            future = self._pool.submit(self._run, start, batch)
        self._pending[split].append((future, rows))

    def _collect(self, split: int) -> None:
        future, _ = self._pending[split].popleft()
        self._dispatched -= 1
        chunk = future.result()
        self.transform_time += chunk.seconds
        self.rows_skipped += chunk.skipped
        self.ready[split].extend(chunk.rows)

    @property
    def raw_rows(self) -> int:
        """Rows handed to the transform pool whose transform has not finished."""
        return sum(
            rows
            for pending in self._pending
            for future, rows in pending
            if not future.done()
        )

    def _transforms_running(self) -> bool:
        return not self._inline and any(
            not future.done() for pending in self._pending for future, _ in pending
        )

    def pump(self) -> None:
        """Hands over the batches already read, while few transforms are queued."""
        while self._dispatched < self._transform_ahead:
            item = self._prefetch.try_next()
            if not item:
                return
            self._dispatch(item)

    def _run(self, start: int, batch: Any) -> _Chunk:
        began = time.perf_counter()
        chunk = self._apply(start, batch)
        return chunk._replace(seconds=time.perf_counter() - began)

    def _apply(self, start: int, batch: Any) -> _Chunk:
        try:
            rows = _rows_of(self._transform(batch), batch.num_rows)
        except Exception as error:  # noqa: BLE001 (the policy decides)
            if not self._skips(error):
                raise
            return self._isolate(start, batch, error)
        return _Chunk([(start + i, row) for i, row in enumerate(rows)], 0)

    def _skips(self, error: Exception) -> bool:
        if isinstance(error, _RowCountError):
            return False  # a broken transform, not a bad row
        policy = self._on_error
        if policy == "raise":
            return False
        if callable(policy):
            return bool(policy(error))
        return True

    def _isolate(self, start: int, batch: Any, batch_error: Exception) -> _Chunk:
        """The batch failed: run the transform row by row and drop the rows that
        fail (the policy allowing)."""
        rows: list[tuple[int, Any]] = []
        first: Exception | None = None
        for i in range(batch.num_rows):
            try:
                out = _rows_of(self._transform(batch.slice(i, 1)), 1)
            except Exception as error:  # noqa: BLE001
                if not self._skips(error):
                    raise
                first = first or error
                continue
            rows.append((start + i, out[0]))
        skipped = batch.num_rows - len(rows)
        if skipped and self._on_error == "warn":
            logger.warning(
                "Skipped %d of %d rows whose transform failed (first error: %r)",
                skipped,
                batch.num_rows,
                first if first is not None else batch_error,
            )
        return _Chunk(rows, skipped)

    def has_row(self, split: int) -> bool:
        """Whether the split has a row left (waiting for its reads as needed)."""
        ready = self.ready[split]
        pending = self._pending[split]
        while not ready:
            if pending:
                self._collect(split)
            elif self._reads_left[split] > 0:
                # In plan order: maybe another split's. Transforms running on the
                # pool need the GIL: the wait must not hold it then.
                item = self._prefetch.next(hold=not self._transforms_running())
                if item is None:
                    return False
                self._dispatch(item)
            else:
                return False
        return True

    def close(self) -> None:
        self._prefetch.close()
        for pending in self._pending:
            for future, _ in pending:
                future.cancel()
            pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _RowCountError(ValueError):
    pass


def _rows_of(output: Any, expected: int) -> list[Any]:
    rows = list(output)
    if len(rows) != expected:
        raise _RowCountError(
            f"transform returned {len(rows)} rows for a batch of {expected}; transforms "
            "must return exactly one output row per input row.  To drop bad rows, raise "
            "inside the transform and pass on_transform_error='skip'."
        )
    return rows


# -- the dataset -------------------------------------------------------------------------


def _distributed() -> tuple[int, int] | None:
    """(rank, world size) of the initialised default process group, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


class StreamingDataset(IterableDataset):
    """An elastic, resumable ``IterableDataset`` over a riffledb table.

    Yields one row at a time (by default a dict of column values; see ``transform``),
    round-robin over the splits this rank (and DataLoader worker) owns, one row per split
    per cycle; a cycle runs only when every owned split has a row, so all splits end
    together.

    Args:
        table: The riffledb table. Its current version is read for the whole run (later
            writes are not seen, and every epoch reads the same rows).
        num_splits: How many equal splits to deal the rows into (default: the world
            size). Must be divisible by ``world_size`` (and, with DataLoader workers, by
            ``world_size * num_workers``). Up to ``num_splits - 1`` surplus rows are left
            out of each epoch.
        shuffle: Deal the rows at random (seeded by ``shuffle_seed`` and the epoch);
            False deals them in storage order (split k is the k-th contiguous block).
        shuffle_seed: The base seed; None draws one now (it is in ``state_dict()``).
        epoch: The epoch to start with.
        rank, world_size: This process's place in the job. None: from the initialised
            ``torch.distributed`` process group, else 0 and 1.
        read_batch_size: Rows per read of a split.
        prefetch_batches: Reads in flight per split.
        columns: The columns to read (default: all).
        shuffle_clump_size: Deal rows in clumps of this many consecutive rows (better
            locality on object storage, less randomness).
        filter: A SQL filter; only matching rows are dealt (split sizes follow it).
        transform: ``f(pyarrow.RecordBatch) -> iterable`` with one item per row, run on
            a thread pool (default: a dict per row).
        transform_parallelism: Transforms running at once on a thread pool (default
            ``os.cpu_count()``). With 1, and by default for riffledb's own row
            converters (the default transform, ``Transforms.arrow2numpyrows``), the
            transform runs in the iterating thread: best for transforms that hold the
            GIL (pure Python); use threads for transforms that release it (decoding
            in C, NumPy).
        on_transform_error: ``"raise"`` (default), ``"skip"`` the rows whose transform
            fails, ``"warn"`` (skip and log), or ``handler(exc) -> bool`` (True skips).
            A failing batch is re-run row by row so only failing rows are dropped.
            Skips make splits uneven: a rank ends at its last complete cycle, which can
            differ between ranks (prefer ``filter``).
        connection_factory: ``factory(table_name) -> Table`` to reopen the table in
            spawn/forkserver workers instead of pickling it.
        worker_info_override: Used instead of ``torch.utils.data.get_worker_info()``
            (``.id``, ``.num_workers``), for tests that simulate workers.

    Raises:
        ValueError: ``num_splits`` not divisible by ``world_size``, a rank outside
            ``[0, world_size)``, fewer rows than splits, a bad ``transform_parallelism``
            or ``on_transform_error``, or a filter that does not parse.
    """

    def __init__(
        self,
        table: Table,
        *,
        num_splits: int | None = None,
        shuffle: bool = True,
        shuffle_seed: int | None = 0,
        epoch: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        read_batch_size: int = DEFAULT_READ_BATCH_SIZE,
        prefetch_batches: int = DEFAULT_PREFETCH_BATCHES,
        columns: list[str] | None = None,
        shuffle_clump_size: int | None = None,
        filter: str | None = None,
        transform: Callable[[Any], Any] | None = None,
        transform_parallelism: int | None = None,
        on_transform_error: str | Callable[[Exception], bool] = "raise",
        connection_factory: Callable[[str], Table] | None = None,
        worker_info_override: Any = None,
    ):
        super().__init__()
        if not isinstance(table, Table) and not is_remote(table):
            raise RiffledbTypeError(
                f"StreamingDataset needs a riffledb Table, got {type(table).__name__}"
            )
        group = _distributed() if rank is None or world_size is None else None
        if world_size is None:
            world_size = group[1] if group else 1
        if rank is None:
            rank = group[0] if group else 0
        world_size = check_int(world_size, "world_size", minimum=1)
        rank = check_int(rank, "rank", minimum=0)
        if rank >= world_size:
            raise InvalidError(
                f"rank ({rank}) must be less than world_size ({world_size})"
            )
        if num_splits is None:
            num_splits = world_size
        num_splits = check_int(num_splits, "num_splits", minimum=1)
        if num_splits % world_size != 0:
            raise InvalidError(
                f"num_splits ({num_splits}) must be divisible by world_size "
                f"({world_size})"
            )
        if shuffle_seed is None:
            shuffle_seed = random.randrange(2**32)
        shuffle_seed = check_int(shuffle_seed, "shuffle_seed", minimum=0)
        epoch = check_int(epoch, "epoch", minimum=0)
        transform_parallelism = check_int(
            transform_parallelism, "transform_parallelism", minimum=-(2**63), none_ok=True
        )
        if transform_parallelism is not None and transform_parallelism <= 0:
            raise InvalidError("transform_parallelism must be greater than 0")
        if on_transform_error not in ("raise", "skip", "warn") and not callable(
            on_transform_error
        ):
            raise InvalidError(
                "on_transform_error must be 'raise', 'skip', 'warn', or a callable, got "
                f"{on_transform_error!r}"
            )
        if transform is not None and not callable(transform):
            raise RiffledbTypeError(
                f"transform must be callable, got {type(transform).__name__}"
            )
        if columns is not None:
            columns = check_str_list(columns, "columns")
        filter = check_str(filter, "filter", none_ok=True)
        if shuffle_clump_size is not None:
            shuffle_clump_size = check_int(
                shuffle_clump_size, "shuffle_clump_size", minimum=1
            )

        self._table = table
        self._version = table.version
        # A remote table's: which table of the name the version is of (the describe
        # behind `version` said), kept beside it for this process and its workers.
        self._table_id = table._table_id(self._version) if is_remote(table) else None
        self._num_splits = num_splits
        self._shuffle = check_bool(shuffle, "shuffle")
        self._shuffle_seed = shuffle_seed
        self._rank = rank
        self._world_size = world_size
        self._read_batch_size = check_int(read_batch_size, "read_batch_size", minimum=1)
        self._prefetch_batches = check_int(
            prefetch_batches, "prefetch_batches", minimum=1
        )
        self._columns = columns
        self._shuffle_clump_size = shuffle_clump_size
        self._filter = filter
        self._transform = transform
        self._transform_parallelism = transform_parallelism
        self._on_transform_error = on_transform_error
        self._connection_factory = connection_factory
        self._worker_info_override = worker_info_override
        self._splits: tuple[int, list[Permutation]] | None = None  # (epoch, splits)
        self._pipeline: _Pipeline | None = None  # while iterating in this process
        # The progress the loop took, per split (StreamingDataLoader with workers).
        self._consumed: dict[int, tuple[int, int, int, int]] = {}
        self._progress = _Progress(num_splits)
        self._set_all(epoch)
        # Build now: errors surface at construction. Every epoch's splits have as many
        # rows (the same rows, dealt anew).
        self._length = self._permutations(epoch)[1][0].num_rows

    # -- configuration ---------------------------------------------------------------
    @property
    def num_splits(self) -> int:
        return self._num_splits

    @property
    def shuffle_seed(self) -> int:
        return self._shuffle_seed

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def rank_splits(self) -> list[int]:
        """The splits this rank reads: a contiguous block of
        ``num_splits // world_size``."""
        per_rank = self._num_splits // self._world_size
        return list(range(self._rank * per_rank, (self._rank + 1) * per_rank))

    @property
    def rows_per_split(self) -> int:
        """Rows in each split (every split has as many, in every epoch)."""
        return self._length

    def __len__(self) -> int:
        """Rows this rank yields in a pass (without skipped rows)."""
        return self.rows_per_split * len(self.rank_splits)

    def __repr__(self) -> str:
        return (
            f"StreamingDataset(table={self._table.name!r}, "
            f"num_splits={self._num_splits}, "
            f"rank={self._rank}, world_size={self._world_size}, epoch={self.epoch}, "
            f"shuffle={self._shuffle}, shuffle_seed={self._shuffle_seed})"
        )

    # -- epochs --------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch being read, or read next: after a whole pass, the next one."""
        return self._next_epoch()

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass reads (``DistributedSampler``'s convention).

        Setting the epoch that is under way keeps its progress (a run resumed from a
        checkpoint can call ``set_epoch`` as usual); any other epoch, or the current one
        once its pass is over, starts from its beginning.
        """
        epoch = check_int(epoch, "epoch", minimum=0)
        self._adopt_consumed()
        if (epoch, False) == self._where():
            return
        self._set_all(epoch)

    def _set_all(self, epoch: int) -> None:
        for split in range(self._num_splits):
            self._progress.write(split, epoch, 0, 0, 0)
        self._consumed.clear()

    def _covered(self) -> list[int]:
        """The splits whose progress this instance's array holds: the rank's, written by
        this process or the DataLoader workers it shares the array with; only its own
        when ``worker_info_override`` simulates a worker in a process of its own."""
        if self._worker_info_override is not None and get_worker_info() is None:
            return self._my_splits()[0]
        return self.rank_splits

    def _records(self) -> dict[int, tuple[int, int, int, int]]:
        records = {s: self._progress.record(s) for s in self._covered()}
        records.update((s, r) for s, r in self._consumed.items() if s in records)
        return records

    def _where(self) -> tuple[int, bool]:
        """(the latest epoch recorded, whether its pass is over), from one reading of
        the records: workers may be writing theirs."""
        records = self._records().values()
        epoch = max(record[_EPOCH] for record in records)
        over = all(record[_EPOCH] == epoch and record[_DONE] for record in records)
        return epoch, over

    def _next_epoch(self) -> int:
        epoch, over = self._where()
        return epoch + 1 if over else epoch

    def _seed(self, epoch: int) -> int:
        return (self._shuffle_seed + epoch * _EPOCH_PRIME) % _SEED_LIMIT

    def _permutations(self, epoch: int) -> tuple[int, list[Permutation]]:
        """The splits of an epoch's permutation (built once per epoch and process)."""
        cached = self._splits
        if cached is not None and cached[0] == epoch:
            return cached
        if self._table_id is not None:
            # Its reads of the version say which table it is of (a worker's table was
            # reopened without it; another describe of the handle may have seen the
            # name's new table at that version): a version of another table is refused.
            self._table._pin_table_id(self._version, self._table_id)
        builder = PermutationBuilder(self._table, version=self._version)
        if self._filter is not None:
            builder.filter(self._filter)
        if self._shuffle:
            builder.split_random(
                fixed=self._num_splits,
                seed=self._seed(epoch),
                clump_size=self._shuffle_clump_size,
            )
        else:
            builder.split_sequential(fixed=self._num_splits)
        native = builder._builder().execute()
        builder._native = None
        splits = [
            Permutation._of_split(self._table, None, native, split, self._version)
            for split in range(self._num_splits)
        ]
        if self._connection_factory is not None:
            splits = [p.with_connection_factory(self._connection_factory) for p in splits]
        self._splits = (epoch, splits)
        return self._splits

    # -- iteration -----------------------------------------------------------------------
    def _worker(self) -> tuple[int, int]:
        """(worker id, number of workers) of this process (0, 1 outside a worker)."""
        real = get_worker_info()
        info = self._worker_info_override
        if info is not None:
            if real is not None:
                logger.warning(
                    "worker_info_override is set but get_worker_info() also returned a "
                    "worker; using the override (workers may read the same rows)"
                )
        else:
            info = real
        if info is None:
            return 0, 1
        return int(info.id), int(info.num_workers)

    def _my_splits(self) -> tuple[list[int], int]:
        """The splits this process reads, and its counter slot."""
        worker, workers = self._worker()
        splits = self.rank_splits
        if len(splits) % workers != 0:
            raise InvalidError(
                f"Number of rank splits ({len(splits)}) must be divisible by "
                f"num_workers ({workers})"
            )
        per_worker = len(splits) // workers
        slot = 0 if workers == 1 and self._worker_info_override is None else worker + 1
        return splits[worker * per_worker : (worker + 1) * per_worker], slot

    def __iter__(self) -> Iterator[Any]:
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        if self._pipeline is not None:
            raise RuntimeError(
                "StreamingDataset does not support concurrent iteration. Only one active "
                "iterator per dataset instance is allowed."
            )
        if get_worker_info() is None:
            self._adopt_consumed()
        else:
            # A worker's copy of the main process's dataset: what the main process's
            # loop took is the main process's to adopt (before it started the workers).
            self._consumed = {}
        mine, slot = self._my_splits()
        epoch = self._next_epoch()
        progress = self._progress
        starts: list[int] = []
        consumed: list[int] = []
        reading = []
        for split in mine:
            record = progress.record(split)
            if record[_EPOCH] != epoch:
                progress.write(split, epoch, 0, 0, 0)
                record = (epoch, 0, 0, 0)
            if record[_DONE]:
                continue  # its pass is over (another loop, or other workers, read it)
            reading.append(split)
            starts.append(record[_POSITION])
            consumed.append(record[_CONSUMED])
        mine = reading
        if not mine:
            return
        _, splits = self._permutations(epoch)
        permutations = []
        for split in mine:
            permutation = splits[split].with_transform(Transforms.arrow2arrow)
            if self._columns is not None:
                permutation = permutation.select_columns(self._columns)
            permutations.append(permutation)
        length = permutations[0].num_rows
        pipeline = _Pipeline(self, permutations, starts, length, slot)
        self._pipeline = pipeline
        finished = False
        # A pass stopped mid-cycle carries on with that cycle: from the first split that
        # has yielded fewer rows than split 0.
        first = next((i for i, c in enumerate(consumed) if c < consumed[0]), 0)
        try:
            n = len(mine)
            ready = pipeline.ready
            array = progress.array
            bases = [split * _SPLIT_FIELDS for split in mine]
            cycles = 0
            while True:
                active = [i for i in range(first, n) if ready[i] or pipeline.has_row(i)]
                if len(active) < n - first:
                    # A split that ran dry after yielding all its rows drops out of the
                    # cycles (splits resumed at uneven positions end one after another);
                    # one that ran dry short of them had rows skipped: then the pass
                    # ends at the last complete cycle (LanceDB's rule for skips).
                    short = [i for i in range(first, n) if consumed[i] < length]
                    if not active or any(i not in active for i in short):
                        finished = True
                        break
                for i in active:
                    position, row = ready[i].popleft()
                    count = consumed[i] = consumed[i] + 1
                    base = bases[i]
                    seq = array[base + _SEQ] + 1
                    array[base + _SEQ] = seq  # odd: being written (see _Progress)
                    array[base + _CONSUMED] = count
                    array[base + _POSITION] = position + 1
                    array[base + _SEQ] = seq + 1
                    pipeline.yielded += 1
                    yield row
                pipeline.pump()
                cycles += 1
                if cycles % 16 == 0:
                    progress.write_stats(slot, pipeline.counters())
                first = 0
        finally:
            # A loop that took every row without asking for one more ended the pass
            # too (islice, zip with a step count).
            if finished or all(
                progress.record(split)[_POSITION] >= length for split in mine
            ):
                for split in mine:
                    progress.finish(split)
            self._pipeline = None
            pipeline.close()
            progress.write_stats(slot, pipeline.counters(idle=True))

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the run is, independent of the topology.

        ``samples_consumed_per_split`` is the number of complete cycles (the rows every
        split of this rank has yielded), the same on every rank at a global step
        boundary. ``positions_consumed_per_split`` is how far each split has been read:
        exact for this rank's splits, a lower bound (the cycle count) for the others;
        with skipped rows, merge every rank's state with :meth:`merge_state_dicts`.
        After a whole pass, the state is the start of the next epoch.

        In the main process of a DataLoader with workers this follows what the workers
        have read (a few batches ahead of the training loop, as the DataLoader
        prefetches); through :class:`StreamingDataLoader` it is what the loop took.
        """
        records = self._records()
        epoch = max(record[_EPOCH] for record in records.values())
        positions = [0] * self._num_splits
        skipped = [0] * self._num_splits
        cycles = 0
        if all(r[_EPOCH] == epoch and r[_DONE] for r in records.values()):
            epoch += 1
        else:
            current = {s: r for s, r in records.items() if r[_EPOCH] == epoch}
            if len(current) == len(records):  # else a split has not started this epoch
                cycles = min(r[_CONSUMED] for r in current.values())
            for split in range(self._num_splits):
                record = current.get(split)
                if record is None:
                    positions[split] = cycles  # another rank's: a lower bound
                else:
                    positions[split] = record[_POSITION]
                    skipped[split] = record[_POSITION] - record[_CONSUMED]
        return {
            "shuffle_seed": self._shuffle_seed,
            "num_splits": self._num_splits,
            "epoch": epoch,
            "samples_consumed_per_split": [cycles] * self._num_splits,
            "positions_consumed_per_split": positions,
            "rows_skipped_per_split": skipped,
            "rows_per_split": self._length,
            "table_version": self._version,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Carries on from ``state`` (from :meth:`state_dict` or
        :meth:`merge_state_dicts`, on any world size): its epoch, and each split from
        its position.

        Raises:
            ValueError: ``num_splits`` or ``shuffle_seed`` differ from this dataset's, or
                the state is malformed (naming the key).
        """
        if not isinstance(state, dict):
            raise RiffledbTypeError(
                f"state must be a dict from state_dict(), got {type(state).__name__}"
            )
        for key in ("num_splits", "shuffle_seed", "samples_consumed_per_split"):
            if key not in state:
                raise InvalidError(f"state has no '{key}' (it is not a state_dict())")
        if state["num_splits"] != self._num_splits:
            raise InvalidError(
                f"num_splits mismatch: checkpoint has {state['num_splits']}, current "
                f"dataset has {self._num_splits}"
            )
        if state["shuffle_seed"] != self._shuffle_seed:
            raise InvalidError(
                f"shuffle_seed mismatch: checkpoint has {state['shuffle_seed']}, current "
                f"dataset has {self._shuffle_seed}"
            )
        # riffledb's keys: the same rows, dealt the same way (LanceDB's states lack them).
        for key, mine, hint in (
            ("rows_per_split", self._length, "the table or the filter changed"),
            (
                "table_version",
                self._version,
                "open the table at the checkpoint's version: table.checkout(version)",
            ),
        ):
            if key in state and state[key] != mine:
                raise InvalidError(
                    f"{key} mismatch: checkpoint has {state[key]}, current dataset has "
                    f"{mine} ({hint})"
                )
        epoch = state.get("epoch", self._where()[0])
        epoch = check_int(epoch, "state['epoch']", minimum=0)
        samples = state["samples_consumed_per_split"]
        if isinstance(samples, int) and not isinstance(samples, bool):
            samples = [samples] * self._num_splits
        samples = self._per_split(samples, "samples_consumed_per_split")
        positions = state.get("positions_consumed_per_split")
        positions = (
            samples
            if positions is None
            else self._per_split(positions, "positions_consumed_per_split")
        )
        for split in range(self._num_splits):
            if positions[split] > self._length:
                raise InvalidError(
                    f"state: split {split} has position {positions[split]}, past its "
                    f"{self._length} rows"
                )
            if positions[split] < samples[split]:
                raise InvalidError(
                    f"state: split {split} has position {positions[split]} below its "
                    f"{samples[split]} consumed samples"
                )
        # The rows each split yielded: its position less its skipped rows. A state
        # without riffledb's rows_skipped_per_split (LanceDB's) counts every row past
        # the cycle count as skipped.
        skipped = state.get("rows_skipped_per_split")
        if skipped is None:
            yielded = samples
        else:
            skipped = self._per_split(skipped, "rows_skipped_per_split")
            yielded = [p - k for p, k in zip(positions, skipped, strict=True)]
            for split, count in enumerate(yielded):
                if count < 0:
                    raise InvalidError(
                        f"state: split {split} skipped {skipped[split]} rows, more than "
                        f"its position {positions[split]}"
                    )
        self._consumed.clear()
        for split in range(self._num_splits):
            self._progress.write(split, epoch, yielded[split], positions[split], 0)

    def _per_split(self, values: Any, key: str) -> list[int]:
        if not isinstance(values, (list, tuple)) or len(values) != self._num_splits:
            raise InvalidError(
                f"state['{key}'] must be a list of {self._num_splits} counts, got "
                f"{values!r}"
            )
        for split, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidError(
                    f"state['{key}'][{split}] must be a count, got {value!r}"
                )
        return [int(v) for v in values]

    @staticmethod
    def merge_state_dicts(states: list[dict[str, Any]]) -> dict[str, Any]:
        """One exact state from every rank's ``state_dict()`` taken at the same global
        step: each split's position is known exactly only to the rank that read it,
        so positions merge by element-wise maximum. Give the result to every rank of
        the resumed run, whatever its world size.

        Raises:
            ValueError: no states, or states of different runs or steps.
        """
        states = list(states)
        if not states:
            raise InvalidError("merge_state_dicts requires at least one state dict")
        first = states[0]
        for state in states[1:]:
            for key in ("shuffle_seed", "num_splits", "epoch"):
                if state.get(key) != first.get(key):
                    raise InvalidError(
                        f"{key} mismatch across state dicts: {first.get(key)} != "
                        f"{state.get(key)}"
                    )
            if state.get("samples_consumed_per_split") != first.get(
                "samples_consumed_per_split"
            ):
                raise InvalidError(
                    "samples_consumed_per_split mismatch across state dicts; "
                    "state_dict() must be called at the same global step boundary on "
                    "every rank"
                )
        merged = dict(first)
        for key, default in (
            ("positions_consumed_per_split", "samples_consumed_per_split"),
            ("rows_skipped_per_split", None),
        ):
            lists = [s.get(key, s.get(default) if default else None) for s in states]
            if all(values is not None for values in lists):
                merged[key] = [max(values) for values in zip(*lists, strict=True)]
        return merged

    # -- StreamingDataLoader's exact progress --------------------------------------------
    def _took(self, records: dict[int, Record]) -> None:
        """The training loop took a batch whose worker had read up to ``records``; a
        split read to its end has ended its pass (its worker may not have noticed yet:
        it notices when asked for one more row)."""
        length = self._length
        for split, (epoch, consumed, position, done) in records.items():
            done = 1 if position >= length else done
            self._consumed[split] = (epoch, consumed, position, done)

    def _adopt_consumed(self) -> None:
        """Rows the workers read but the loop never took are read again: the loop's
        progress becomes the shared progress (before workers start)."""
        for split, record in self._consumed.items():
            self._progress.write(split, *record)
        self._consumed.clear()

    def _worker_records(self) -> dict[int, tuple[int, int, int, int]]:
        mine, _ = self._my_splits()
        return {split: self._progress.record(split) for split in mine}

    # -- observability -------------------------------------------------------------------
    # Each process writes its own counter slot; the main process sums them. While this
    # process iterates, its slot is read from the live pipeline.
    def _counter(self, field: int) -> int:
        total = self._progress.total(field)
        pipeline = self._pipeline
        if pipeline is None:
            return total
        published = self._progress.stats(pipeline.slot)[field]
        return total - published + pipeline.counters()[field]

    @property
    def bytes_loaded(self) -> int:
        """Bytes of Arrow data read (before the transform), over all passes."""
        return self._counter(_BYTES)

    @property
    def fetch_time(self) -> float:
        """Seconds spent in reads (summed over read threads), over all passes."""
        return self._counter(_FETCH_US) / 1e6

    @property
    def transform_time(self) -> float:
        """Seconds spent in the transform (summed over threads), over all passes."""
        return self._counter(_TRANSFORM_US) / 1e6

    @property
    def rows_skipped(self) -> int:
        """Rows dropped by ``on_transform_error``, over all passes."""
        return self._counter(_SKIPPED)

    @property
    def raw_queue_depth(self) -> int:
        """Rows read and waiting for a transform (0 when idle): if it stays high, the
        transform is the bottleneck."""
        return self._counter(_RAW_ROWS)

    @property
    def prefetch_queue_depth(self) -> int:
        """Rows transformed and waiting to be yielded (0 when idle)."""
        return self._counter(_READY_ROWS)

    @property
    def unscanned_rows(self) -> int:
        """Rows of the owned splits not yet asked for (0 when idle)."""
        return self._counter(_UNSCANNED)

    @property
    def consumed_rows(self) -> int:
        """Rows yielded in the current (or last) pass, by this process and its
        workers."""
        return self._counter(_YIELDED)

    # -- pickling ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Plain values for spawn/forkserver workers and ``pickle``: the table pinned at
        its version (or, with a ``connection_factory``, its name) and the progress
        (shared with the new process when it is a DataLoader worker being started, else
        copied). The permutation is not pickled: it is rebuilt from the seed."""
        if self._pipeline is not None:
            raise RuntimeError("Cannot pickle a StreamingDataset while it is iterating")
        state = dict(self.__dict__)
        state.pop("_pipeline", None)
        state["_consumed"] = {}  # the main process's loop
        # Not the permutation: a worker builds the same one (same seed, same version).
        state["_splits"] = None
        if self._connection_factory is not None:
            state["_table"] = None
            state["_table_name"] = self._table.name
        spawning = multiprocessing.context.get_spawning_popen() is not None
        state["_progress"] = (
            ("shared", self._progress.array)
            if spawning
            else ("copy", list(self._progress.array))
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.setdefault("_table_id", None)  # pickled before it was kept
        kind, progress = state.pop("_progress")
        name = state.pop("_table_name", None)
        self.__dict__.update(state)
        if kind == "shared":
            self._progress = _Progress.shared(self._num_splits, progress)
        else:
            self._progress = _Progress(self._num_splits, progress)
        if self._table is None:
            self._table = self._connection_factory(name)
            if not isinstance(self._table, Table) and not is_remote(self._table):
                raise RiffledbTypeError(
                    f"connection_factory({name!r}) returned "
                    f"{type(self._table).__name__}, not a riffledb Table"
                )
        self._pipeline = None


# -- the loader --------------------------------------------------------------------------


class _Taken(NamedTuple):
    """A batch from a worker with the progress of that worker's splits after it."""

    records: dict[int, tuple[int, int, int, int]]
    batch: Any


class _RecordingCollate:
    """Collates as ``collate_fn`` does, then attaches the worker's progress."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any]):
        self.collate_fn = collate_fn

    def __call__(self, samples: list[Any]) -> Any:
        batch = self.collate_fn(samples)
        info = get_worker_info()
        if info is None or not isinstance(info.dataset, StreamingDataset):
            return batch
        return _Taken(info.dataset._worker_records(), batch)


class StreamingDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` over a :class:`StreamingDataset` whose
    ``state_dict()`` is exact with workers: the dataset in the main process records the
    progress that came with each batch the loop took, not the batches the workers
    prefetched. Stop mid-epoch, iterate again (or save and resume), and the rows the
    workers had read ahead are read again; nothing is skipped.

    Takes DataLoader's arguments (``batch_size`` must not be None, positionally or by
    keyword; the others by keyword; not ``persistent_workers=True``). Also
    :meth:`state_dict` / :meth:`load_state_dict` (the dataset's).
    """

    def __init__(self, dataset: StreamingDataset, *args: Any, **kwargs: Any):
        if not isinstance(dataset, StreamingDataset):
            raise RiffledbTypeError(
                f"StreamingDataLoader needs a StreamingDataset, got "
                f"{type(dataset).__name__}"
            )
        if len(args) > 1:
            raise RiffledbTypeError(
                "StreamingDataLoader takes batch_size positionally and DataLoader's "
                "other arguments by keyword"
            )
        if kwargs.get("persistent_workers"):
            raise InvalidError(
                "StreamingDataLoader does not take persistent_workers=True: its workers "
                "would read on past the batches the loop took when a loop stops early. "
                "Use a plain DataLoader (its dataset's state_dict() then follows what "
                "the workers read)"
            )
        collate = kwargs.pop("collate_fn", None) or default_collate
        super().__init__(dataset, *args, collate_fn=_RecordingCollate(collate), **kwargs)
        if self.batch_size is None:
            raise InvalidError("StreamingDataLoader needs a batch_size")

    def __iter__(self) -> Iterator[Any]:
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        dataset._adopt_consumed()
        # Until a batch of a split comes back, the loop has taken nothing of it.
        dataset._consumed = {s: dataset._progress.record(s) for s in dataset.rank_splits}
        for item in super().__iter__():
            if isinstance(item, _Taken):
                dataset._took(item.records)
                yield item.batch
            else:
                yield item
        # The pass ended: the workers' own records (end of pass included) are exact.
        dataset._consumed.clear()

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]
