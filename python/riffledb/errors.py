"""The exceptions riffledb raises (docs/errors.md).

Every class derives from :class:`RiffledbError` and from the builtin exception that
callers already catch (``ValueError``, ``KeyError``, ``IndexError``, ``OSError``,
``NotImplementedError``, ``TypeError``, ``MemoryError``, ``RuntimeError``), the way
pyarrow's ``ArrowInvalid`` is also a ``ValueError``: ``except ValueError`` keeps working,
and ``except riffledb.errors.RiffledbError`` catches everything riffledb raised itself.

The native module raises these classes too: it looks them up once, when it is imported,
and turns each failed ``arrow::Status`` into one of them in one place
(``python/src/errors.cc``). An exception raised by the caller's own code (a data source,
a transform) is never converted: it reaches the caller as itself.

Every class takes one argument, the message, so that an instance pickles and is rebuilt
by ``type(e)(str(e))`` (what torch's ``DataLoader`` does with a worker's exception).
"""

from __future__ import annotations

__all__ = [
    "RiffledbError",
    "InvalidError",
    "TableNotFoundError",
    "TableExistsError",
    "RiffledbTypeError",
    "RiffledbKeyError",
    "RiffledbIndexError",
    "RiffledbIOError",
    "CorruptionError",
    "CommitOutcomeUnknownError",
    "NotSupportedError",
    "RiffledbMemoryError",
    "InternalError",
]


class RiffledbError(Exception):
    """Base class of every exception riffledb raises itself."""


class InvalidError(RiffledbError, ValueError):
    """A bad argument value or bad input data: an invalid filter, name, mode, schema or
    split, a value out of its range, data that does not fit the table."""


class TableNotFoundError(InvalidError):
    """``open_table`` / ``drop_table`` of a table that does not exist. A ``ValueError``,
    as in LanceDB."""


class TableExistsError(InvalidError):
    """``create_table(mode="create")`` of a name that is taken. A ``ValueError``, as in
    LanceDB."""


class RiffledbTypeError(RiffledbError, TypeError):
    """An argument of the wrong type (the message names the argument, and the position for
    a sequence), or a column type a format cannot express."""


class RiffledbKeyError(RiffledbError, KeyError):
    """A name that is not there: a column, a split name, a metadata key."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (quotes, escaped newlines); a
        # riffledb message is prose.
        return Exception.__str__(self)


class RiffledbIndexError(RiffledbError, IndexError):
    """A row offset, row id or split index outside its range (the message names the value
    and its position)."""


class RiffledbIOError(RiffledbError, OSError):
    """The storage failed: a file that cannot be read, written or created, a path that is
    not a directory, a commit lost to another writer."""


class CorruptionError(RiffledbIOError, InvalidError):
    """A damaged file: a manifest, fragment or deletion file that does not parse or does
    not agree with its manifest. The message names the file.

    It is an ``OSError`` because the fault is in the storage, not in the call (retrying
    with other arguments cannot help; restoring the file can), and a ``ValueError``
    because riffledb raised ``ValueError`` for it before this class existed. The standard
    library's ``io.UnsupportedOperation`` is both in the same way.
    """


class CommitOutcomeUnknownError(RiffledbIOError):
    """A commit failed in a way that leaves its outcome unknown: the storage failed and
    could not be read back, so the new version may be visible or not. Every file the
    commit wrote is kept. The message names the table and the version.

    Committing the same fragment descriptions again is safe
    (:meth:`Table.commit_fragments`): it commits them if the first commit did not land,
    and is refused naming the version that references them if it did.
    """


class NotSupportedError(RiffledbError, NotImplementedError):
    """Something riffledb does not do (vector search, a type it cannot store)."""


class RiffledbMemoryError(RiffledbError, MemoryError):
    """An allocation failed or a result exceeds Arrow's capacity (a 2 GiB ``string``
    column)."""


class InternalError(RiffledbError, RuntimeError):
    """A failure that is riffledb's fault, not the caller's: please report it."""
