"""Batches read ahead of the consumer by riffledb's native prefetcher (cpp loader layer).

The reads — the gathers of a permutation's rows — run on C++ threads that never take
the GIL, into a queue bounded in batches and bytes; :meth:`Prefetch.next` takes a batch
that is ready without releasing the GIL, waits for one asleep with the GIL held for up
to the interpreter's switch interval (``sys.getswitchinterval()``, 5 ms), then waits
with it released. What is left for
Python is the format: NumPy / torch column dicts view the gathered buffers, so that is
a few objects per batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import _riffledb
from ._args import check_int

#: Bytes the queue of a prefetching iteration may hold, unless told otherwise.
DEFAULT_PREFETCH_BYTES = 256 << 20
#: Reads running at once.
DEFAULT_PREFETCH_THREADS = 2


def check_prefetch(prefetch: Any, prefetch_bytes: Any, threads: Any) -> None:
    check_int(prefetch, "prefetch")
    check_int(prefetch_bytes, "prefetch_bytes", minimum=1)
    check_int(threads, "prefetch_threads", minimum=1)


_STAT_KEYS = (
    "io_s",
    "wait_s",
    "convert_s",
    "transform_s",
    "batches",
    "rows",
    "bytes",
    "queued_batches",
    "queued_rows",
    "queued_bytes",
)


class Prefetch:
    """A started native prefetcher over a plan of reads ``(reader, selection, start,
    length, tag)``, and the time its consumer spent."""

    def __init__(
        self,
        reads: Sequence[tuple[Any, Any, int, int, int]],
        batches: int,
        max_bytes: int,
        threads: int,
    ):
        # next() waits for a batch holding the GIL for up to a switch interval (see
        # python/src/loader.cc): a release beside a thread busy in Python costs one.
        hold_us = int(sys.getswitchinterval() * 1e6)
        self.native = _riffledb.Prefetcher.start(
            list(reads), threads, batches, max_bytes, hold_us
        )
        self.size = self.native.size
        self.convert_s = 0.0
        self.transform_s = 0.0

    def next(self, hold: bool = True) -> tuple[int, Any] | None:
        """(tag, native batch) of the next read, waiting for it; None after the last.
        ``hold=False`` when other threads of the caller's need the GIL meanwhile (a
        transform pool): the wait then lets go of it at once."""
        return self.native.next(hold)

    def try_next(self) -> tuple[int, Any] | None | bool:
        """(tag, batch) if ready, None if not yet, False after the last."""
        return self.native.try_next()

    def close(self) -> None:
        self.native.close()

    def stats(self) -> dict[str, float | int]:
        """Per stage: ``io_s`` (summed over the read threads), ``wait_s`` (the consumer
        blocked on a read), ``convert_s`` (native batch to the format's buffers),
        ``transform_s`` (the transform), and ``batches``, ``rows``, ``bytes`` taken,
        ``queued_batches`` / ``queued_rows`` / ``queued_bytes`` read ahead."""
        native = self.native.stats()
        return {
            "io_s": native["read_ns"] / 1e9,
            "wait_s": native["wait_ns"] / 1e9,
            "convert_s": self.convert_s,
            "transform_s": self.transform_s,
            "batches": native["batches"],
            "rows": native["rows"],
            "bytes": native["bytes"],
            "queued_batches": native["queued_batches"],
            "queued_rows": native["queued_rows"],
            "queued_bytes": native["queued_bytes"],
        }


class PrefetchingIterator(Iterator[Any]):
    """Batches of a permutation in order, read ahead by native threads.

    What ``Permutation.iter(..., prefetch=N)`` returns: an iterator (nothing is read
    until the first ``next``), with :attr:`stats` to see where the time goes and
    :meth:`close` to stop the reads early (also done when it is exhausted or garbage
    collected). It belongs to the process that made it: after ``fork`` make a new one.
    """

    def __init__(
        self,
        reads: Callable[[], Sequence[tuple[Any, Any, int, int, int]]],
        convert: Callable[[Any], tuple[Any, float]],
        batches: int,
        max_bytes: int,
        threads: int,
        split_rows: int = 0,
    ):
        """``split_rows`` > 0: each read (of several batches, coalesced) is handed out
        as consecutive slices of that many rows (the last one may be shorter), without
        a copy; ``batches`` then bounds the reads ahead, not the slices, and the read
        being handed out is held beside them. In :attr:`stats`, ``batches`` and
        ``rows`` count what was handed out; ``bytes`` and the ``queued_*`` figures
        count reads (a read's bytes once its first slice is out)."""
        self._reads = reads
        self._convert = convert
        self._batches = batches
        self._max_bytes = max_bytes
        self._threads = threads
        self._split_rows = split_rows
        self._rest: Any = None  # the read being sliced, when its rows are not all out
        self._rest_at = 0
        self._handed = 0  # batches handed out (the slices, when reads are split)
        self._handed_rows = 0
        self._prefetch: Prefetch | None = None
        self._done = False

    def __iter__(self) -> PrefetchingIterator:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        prefetch = self._prefetch
        if prefetch is None:
            prefetch = self._prefetch = Prefetch(
                self._reads(), self._batches, self._max_bytes, self._threads
            )
        batch = self._next_batch(prefetch)
        if batch is None:
            self.close()
            raise StopIteration
        began = time.perf_counter()
        out, converted = self._convert(batch)
        done = time.perf_counter()
        prefetch.convert_s += converted - began
        prefetch.transform_s += done - converted
        return out

    def _next_batch(self, prefetch: Prefetch) -> Any:
        """The next native batch: a read, or the next slice of a coalesced one."""
        split = self._split_rows
        rest = self._rest
        if rest is None:
            item = prefetch.next()
            if item is None:
                return None
            rest = item[1]
            if split <= 0 or rest.num_rows <= split:
                self._handed += 1
                self._handed_rows += rest.num_rows
                return rest
            self._rest, self._rest_at = rest, 0
        at = self._rest_at
        self._rest_at = at + split
        if self._rest_at >= rest.num_rows:
            self._rest = None
        batch = rest.slice(at, split)
        self._handed += 1
        self._handed_rows += batch.num_rows
        return batch

    def close(self) -> None:
        """Stops the reads (the ones running finish); the iterator is then exhausted."""
        self._done = True
        self._rest = None
        if self._prefetch is not None:
            self._prefetch.close()

    def __del__(self) -> None:
        prefetch = getattr(self, "_prefetch", None)
        if prefetch is not None:
            try:
                prefetch.close()
            except Exception:  # noqa: BLE001 (a forked copy; nothing to stop)
                pass

    @property
    def stats(self) -> dict[str, float | int]:
        """See :meth:`Prefetch.stats`; zeros before the first ``next``."""
        if self._prefetch is None:
            return dict.fromkeys(_STAT_KEYS, 0)
        stats = self._prefetch.stats()
        stats["batches"] = self._handed
        stats["rows"] = self._handed_rows
        return stats
