"""riffledb: an embedded table store for ML training data.

A C++ core on Apache Arrow with LanceDB's Python surface for training data::

    import riffledb
    db = riffledb.connect("./data")           # or "memory://", "s3://bucket/prefix"
    table = db.create_table("digits", pa_table)
    rows = table.take_offsets([5, 1, 5]).to_arrow()
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pyarrow as _pa  # noqa: F401  (loads libarrow before the extension needs it)

from . import _riffledb, errors
from ._args import check_storage_options, describe
from .db import DBConnection
from .errors import RiffledbError
from .table import Table

__version__ = "0.1.0"

__all__ = ["connect", "DBConnection", "RiffledbError", "Table", "errors", "__version__"]


def connect(
    uri: str | os.PathLike,
    *,
    storage_options: Mapping[str, str] | None = None,
    **kwargs,
) -> DBConnection:
    """Connects to a database.

    Args:
        uri: A directory (created if missing; tables are subdirectories), ``"memory://"``
            for a fresh database private to this call, or ``"s3://bucket/prefix"`` (an
            S3 bucket or a prefix in one; see docs/object-storage.md).
            ``"file:///data/db"`` is the directory ``/data/db``. A NUL byte, a malformed
            URI (``"memory:/"``) or an unknown scheme (``"xyz://..."``) is an
            InvalidError naming the uri; ``gs://``, ``az://`` and ``db://`` raise
            NotSupportedError for now.
        storage_options: Object store options, LanceDB's names, all values strings:
            ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
            ``region`` (or ``aws_region``), ``endpoint`` (or ``aws_endpoint``),
            ``allow_http``. They win over the environment (``AWS_ACCESS_KEY_ID``, ...).
            An unknown key is an InvalidError naming it. Ignored for directories and
            ``memory://``. Tables pickle with them (spawn workers reconnect), secrets
            included.
        **kwargs: Accepted for LanceDB compatibility (``read_consistency_interval``,
            ``api_key``) and ignored: tables are strongly consistent for their own writes
            and reopen the newest version on ``checkout_latest()``.

    Returns:
        The connection.
    """
    unknown = set(kwargs) - {"read_consistency_interval", "api_key"}
    if unknown:
        raise errors.RiffledbTypeError(
            f"connect() got unexpected keyword arguments: {sorted(unknown)}"
        )
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str):
        raise errors.RiffledbTypeError(
            f"uri must be a str or os.PathLike, got {describe(uri)}"
        )
    options = check_storage_options(storage_options)
    return DBConnection(_riffledb.Database.connect(uri, options), options)
