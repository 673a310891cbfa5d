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

import pyarrow as _pa  # loads libarrow before the extension needs it


def _load_arrow_s3() -> None:
    """Loads pyarrow's ``libarrow_s3`` (S3 and the AWS SDK) by path, as ``import pyarrow``
    loads libarrow: the extension links it, but ``import pyarrow`` does not load it, and
    the extension's rpath (``$ORIGIN/../pyarrow``) finds pyarrow's libraries only when
    riffledb is installed next to pyarrow (not in a virtualenv that sees pyarrow through
    its system site-packages)."""
    import ctypes

    name = f"libarrow_s3.so.{_pa.cpp_build_info.so_version}"
    for directory in _pa.get_library_dirs():
        path = os.path.join(directory, name)
        if os.path.exists(path):
            ctypes.CDLL(path)
            return


_load_arrow_s3()

from . import _riffledb, errors  # noqa: E402
from ._args import check_storage_options, describe  # noqa: E402
from .db import DBConnection  # noqa: E402
from .errors import RiffledbError  # noqa: E402
from .fragments import FragmentDescription, commit_fragments, write_fragments  # noqa: E402
from .table import Table  # noqa: E402


def deserialize_conn(data, for_worker: bool = False):
    """Reopens a remote connection from its ``serialize()`` (LanceDB's
    ``lancedb.deserialize_conn``); see :func:`riffledb.remote.db.deserialize_conn`."""
    from .remote.db import deserialize_conn as deserialize

    return deserialize(data, for_worker=for_worker)


__version__ = "0.1.0"

__all__ = [
    "connect",
    "deserialize_conn",
    "commit_fragments",
    "write_fragments",
    "DBConnection",
    "FragmentDescription",
    "RiffledbError",
    "Table",
    "errors",
    "io_stats",
    "__version__",
]


#: LanceDB's deprecated ``connect`` keywords of remote connections: where each goes in
#: the ClientConfig's ``timeout_config`` (None: ignored).
_DEPRECATED_REMOTE_KWARGS = {
    "connection_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "request_thread_pool": None,
}


def _deprecated_remote_kwargs(client_config, kwargs):
    """``client_config`` with LanceDB's deprecated ``connect`` keywords applied, each
    with a DeprecationWarning (as LanceDB's ``connect``)."""
    import dataclasses
    import warnings

    from .remote import ClientConfig, TimeoutConfig

    given = [name for name in _DEPRECATED_REMOTE_KWARGS if kwargs.get(name) is not None]
    if not given:
        return client_config
    config = ClientConfig.coerce(client_config)
    timeouts = dataclasses.replace(config.timeout_config or TimeoutConfig())
    for name in given:
        field = _DEPRECATED_REMOTE_KWARGS[name]
        if field is None:
            warnings.warn(
                f"{name} is no longer used and will be removed",
                DeprecationWarning,
                stacklevel=3,
            )
            continue
        warnings.warn(
            f"{name} is deprecated: use client_config's timeout_config.{field}",
            DeprecationWarning,
            stacklevel=3,
        )
        setattr(timeouts, field, kwargs[name])
    timeouts.__post_init__()  # numbers of seconds -> timedelta
    return dataclasses.replace(config, timeout_config=timeouts)


def connect(
    uri: str | os.PathLike,
    *,
    storage_options: Mapping[str, str] | None = None,
    api_key: str | None = None,
    region: str = "us-east-1",
    host_override: str | None = None,
    client_config=None,
    **kwargs,
):
    """Connects to a database.

    Args:
        uri: A directory (created if missing; tables are subdirectories), ``"memory://"``
            for a fresh database private to this call, or ``"s3://bucket/prefix"`` (an
            S3 bucket or a prefix in one; see docs/object-storage.md).
            ``"file:///data/db"`` is the directory ``/data/db``. A NUL byte, a malformed
            URI (``"memory:/"``) or an unknown scheme (``"xyz://..."``) is an
            InvalidError naming the uri; ``gs://`` and ``az://`` raise
            NotSupportedError for now. ``"db://name"``: a remote database served over
            LanceDB's REST protocol (``riffledb serve``, docs/remote.md); returns a
            :class:`riffledb.remote.db.RemoteDBConnection`.
        storage_options: Object store options, LanceDB's names, all values strings:
            ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
            ``region`` (or ``aws_region``), ``endpoint`` (or ``aws_endpoint``),
            ``allow_http``. They win over the environment (``AWS_ACCESS_KEY_ID``, ...).
            riffledb's own: ``cache_dir``, where data read from the bucket is cached
            (default ``$RIFFLEDB_CACHE_DIR``, ``$XDG_CACHE_HOME/riffledb`` or
            ``~/.cache/riffledb``), and ``cache_size``, the bytes it may keep (default
            10 GiB); see docs/object-storage.md.
            An unknown key is an InvalidError naming it. Ignored for directories and
            ``memory://``. Tables pickle with them (spawn workers reconnect), secrets
            included.
        api_key: ``db://`` only: sent as ``x-api-key`` (default ``$LANCEDB_API_KEY``;
            required, an empty string sends none). Ignored for local databases.
        region: ``db://`` only: the region of LanceDB Cloud's host name.
        host_override: ``db://`` only: the server's URL (``http://127.0.0.1:8000``),
            to which every route is appended.
        client_config: ``db://`` only: a :class:`riffledb.remote.ClientConfig` or a
            dict of its fields (retries, timeouts, extra headers).
        **kwargs: Accepted for LanceDB compatibility (``read_consistency_interval``)
            and ignored: tables are strongly consistent for their own writes and reopen
            the newest version on ``checkout_latest()``. ``db://`` also takes
            LanceDB's deprecated ``connection_timeout`` and ``read_timeout`` (seconds,
            into ``client_config``'s ``timeout_config``) and ``request_thread_pool``
            (ignored), each with a DeprecationWarning.

    Returns:
        The connection.
    """
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    remote = isinstance(uri, str) and uri.startswith("db://")
    allowed = {"read_consistency_interval"}
    if remote:
        allowed |= set(_DEPRECATED_REMOTE_KWARGS)
    unknown = set(kwargs) - allowed
    if unknown:
        raise errors.RiffledbTypeError(
            f"connect() got unexpected keyword arguments: {sorted(unknown)}"
        )
    if not isinstance(uri, str):
        raise errors.RiffledbTypeError(
            f"uri must be a str or os.PathLike, got {describe(uri)}"
        )
    if remote:
        from .remote.db import RemoteDBConnection

        client_config = _deprecated_remote_kwargs(client_config, kwargs)
        return RemoteDBConnection(
            uri,
            api_key=api_key,
            region=region,
            host_override=host_override,
            client_config=client_config,
        )
    if host_override is not None or client_config is not None:
        raise errors.InvalidError(
            f"host_override and client_config are for db:// URIs, not {uri!r}"
        )
    options = check_storage_options(storage_options)
    return DBConnection(_riffledb.Database.connect(uri, options), options)


def io_stats(reset: bool = False) -> dict[str, int]:
    """What this process fetched from object stores for table data so far.

    Takes and scans of an ``s3://`` table fetch the byte ranges of the rows they read
    with ranged GETs and keep them in the local cache (docs/object-storage.md); reads
    that find their bytes in the cache send nothing.

    Args:
        reset: Zero the counters after reading them (to measure one take).

    Returns:
        ``{"requests": ranged GETs sent, "bytes": bytes they returned,
        "corrupt_blocks": cached blocks that failed their CRC-32C and were fetched
        again, "shared_blocks": missing blocks a read found another read of this
        process (a prefetching thread, say) already fetching, and waited for instead of
        fetching them again}``. Counters are per process (a DataLoader worker counts
        its own).
    """
    return _riffledb.io_stats(bool(reset))
