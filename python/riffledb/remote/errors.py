"""The errors of remote tables, with the fields of LanceDB's
``lancedb.remote.errors`` (spec/remote-protocol.md §1.5).

The native client raises them (``python/src/errors.cc``): ``HttpError`` for a request
that failed once and is not worth a retry (a non-2xx status not in the retried list, a
write, a transport error of a write), ``RetryError`` when a retried request exhausted
its retries; its ``__cause__`` is the last attempt's ``HttpError``. Table routes turn a
404 into :class:`riffledb.errors.TableNotFoundError` (a ``ValueError``, as LanceDB's
``TableNotFound``), chained to the ``HttpError``; reads of the native reader (a
permutation's, a ``StreamingDataset``'s) raise :class:`NotFoundError` for one, which is
both.

Every class can be built from its message alone, so that torch's ``DataLoader``
re-raises a worker's error as the same class (``type(e)(str(e))``); instances pickle
with all their fields.
"""

from __future__ import annotations

import json

from ..errors import InvalidError, RiffledbError, TableNotFoundError

__all__ = [
    "LanceDBClientError",
    "RemoteError",
    "HttpError",
    "BadRequestError",
    "NotFoundError",
    "RetryError",
]


class RemoteError(RiffledbError, RuntimeError):
    """A request to a remote database failed.

    Attributes:
        request_id: The request's ``x-request-id`` (the same on every retry).
        status_code: The HTTP status of the last response; None if none came back.
    """

    def __init__(
        self, message: str, request_id: str | None = None, status_code: int | None = None
    ):
        super().__init__(message)
        self.request_id = request_id
        self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self)

    def __reduce__(self):
        return (type(self), (str(self), self.request_id, self.status_code))


#: LanceDB's name for the base class.
LanceDBClientError = RemoteError


class HttpError(RemoteError):
    """A request got a response it cannot use (or none): ``"Http error:
    (request_id=...) 404 Not Found: <body>"``."""


class BadRequestError(HttpError, InvalidError):
    """A 400: the server refused what the request asks (a filter it cannot parse, a
    column the table does not have, rows that do not fit the table's schema): an
    :class:`HttpError` with LanceDB's fields, and a ``ValueError`` as the
    :class:`riffledb.errors.InvalidError` a local table raises for the same call."""


class NotFoundError(HttpError, TableNotFoundError):
    """A 404 to a read of the native reader (a permutation's, a ``StreamingDataset``'s;
    other requests raise :class:`HttpError`, or ``TableNotFoundError`` for a table's):
    the table, or the version read, is not there (a version of a table dropped and
    created again since it was pinned among them). An :class:`HttpError` with LanceDB's
    fields, and the :class:`riffledb.errors.TableNotFoundError` (a ``ValueError``) that
    the remote table's own methods raise for a 404."""


class RetryError(RemoteError):
    """A retried request gave up: ``"Hit retry limit for request_id=...
    (request_failures=3/3, connect_failures=0/3, read_failures=0/3)"``.

    Attributes:
        request_failures, connect_failures, read_failures: Failures of each kind.
        max_request_failures, max_connect_failures, max_read_failures: Their limits
            (``RetryConfig.retries``, ``connect_retries``, ``read_retries``).
    """

    def __init__(
        self,
        message: str,
        request_id: str | None = None,
        request_failures: int = 0,
        connect_failures: int = 0,
        read_failures: int = 0,
        max_request_failures: int = 0,
        max_connect_failures: int = 0,
        max_read_failures: int = 0,
        status_code: int | None = None,
    ):
        super().__init__(message, request_id, status_code)
        self.request_failures = request_failures
        self.connect_failures = connect_failures
        self.read_failures = read_failures
        self.max_request_failures = max_request_failures
        self.max_connect_failures = max_connect_failures
        self.max_read_failures = max_read_failures

    def __reduce__(self):
        return (
            type(self),
            (
                str(self),
                self.request_id,
                self.request_failures,
                self.connect_failures,
                self.read_failures,
                self.max_request_failures,
                self.max_connect_failures,
                self.max_read_failures,
                self.status_code,
            ),
        )


def server_words(error: RemoteError) -> str | None:
    """The ``{"error": ...}`` of an error's answer body (a server's own words), if
    its message holds one."""
    text = str(error)
    at = text.find(": {")
    if at < 0:
        return None
    try:
        words = json.loads(text[at + 2 :]).get("error")
    except (ValueError, AttributeError):
        return None
    return words if isinstance(words, str) and words else None
