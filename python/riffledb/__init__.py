"""riffledb: an embedded table store for ML training data.

A C++ core on Apache Arrow with LanceDB's Python surface for training data::

    import riffledb
    db = riffledb.connect("./data")           # or "memory://"
    table = db.create_table("digits", pa_table)
    rows = table.take_offsets([5, 1, 5]).to_arrow()
"""

from __future__ import annotations

import os

import pyarrow as _pa  # noqa: F401  (loads libarrow before the extension needs it)

from . import _riffledb, errors
from ._args import describe
from .db import DBConnection
from .errors import RiffledbError
from .fragments import FragmentDescription, commit_fragments, write_fragments
from .table import Table

__version__ = "0.1.0"

__all__ = [
    "connect",
    "commit_fragments",
    "write_fragments",
    "DBConnection",
    "FragmentDescription",
    "RiffledbError",
    "Table",
    "errors",
    "__version__",
]


def connect(uri: str | os.PathLike, **kwargs) -> DBConnection:
    """Connects to a database.

    Args:
        uri: A directory (created if missing; tables are subdirectories), or
            ``"memory://"`` for a fresh database private to this call
            (``"file:///data/db"`` is the directory ``/data/db``). A NUL byte, a
            malformed URI (``"memory:/"``) or an unknown scheme (``"xyz://..."``) is an
            InvalidError naming the uri; ``s3://``, ``gs://``, ``az://`` and ``db://``
            raise NotSupportedError for now.
        **kwargs: Accepted for LanceDB compatibility (``read_consistency_interval``,
            ``storage_options``) and ignored: local tables are strongly consistent for
            their own writes and reopen the newest version on ``checkout_latest()``.

    Returns:
        The connection.
    """
    unknown = set(kwargs) - {"read_consistency_interval", "storage_options", "api_key"}
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
    return DBConnection(_riffledb.Database.connect(uri))
