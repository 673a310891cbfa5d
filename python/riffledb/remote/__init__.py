"""Remote tables (``riffledb.connect("db://name", ...)``): the configuration of the
client, with LanceDB's names (``lancedb.remote``).

The connection is :class:`riffledb.remote.db.RemoteDBConnection`, its tables
:class:`riffledb.remote.table.RemoteTable`, its errors :mod:`riffledb.remote.errors`.
The HTTP client is native (``cpp/src/riffledb/remote/client/``): a keep-alive pool that
a forked child never shares with its parent (docs/remote.md).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from typing import Any

from .. import _riffledb
from .header import HeaderProvider, StaticHeaderProvider

__all__ = [
    "ClientConfig",
    "HeaderProvider",
    "RetryConfig",
    "StaticHeaderProvider",
    "TimeoutConfig",
    "TlsConfig",
]


def _seconds(value: Any, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise ValueError(
        f"Invalid value for {name}: {value!r}, must be a timedelta or number of seconds"
    )


@dataclasses.dataclass
class TimeoutConfig:
    """Timeouts of the remote client (LanceDB's ``TimeoutConfig``); numbers are seconds.

    Attributes:
        timeout: The whole request, retries included (default none;
            ``LANCE_CLIENT_TIMEOUT``).
        connect_timeout: Connecting (default 120 s; ``LANCE_CLIENT_CONNECT_TIMEOUT``).
        read_timeout: Each read or write on the socket (default 300 s;
            ``LANCE_CLIENT_READ_TIMEOUT``).
        pool_idle_timeout: How long an idle keep-alive connection is kept (default 300
            s; ``LANCE_CLIENT_CONNECTION_TIMEOUT``).
    """

    timeout: timedelta | None = None
    connect_timeout: timedelta | None = None
    read_timeout: timedelta | None = None
    pool_idle_timeout: timedelta | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, _seconds(getattr(self, field.name), field.name))


@dataclasses.dataclass
class RetryConfig:
    """When reads are sent again (LanceDB's ``RetryConfig``; spec §1.5).

    Attributes:
        retries: Attempts answered with a status in ``statuses`` before giving up
            (default 3; ``LANCE_CLIENT_MAX_RETRIES``).
        connect_retries: Failed connection attempts before giving up (default 3).
        read_retries: Failed reads (timeouts, connections lost) before giving up
            (default 3).
        backoff_factor: The wait before the next attempt is ``backoff_factor *
            2**failures`` seconds (default 0.25) ...
        backoff_jitter: ... plus a random ``[0, backoff_jitter]`` seconds (default 0.25).
        statuses: The statuses worth a retry (default 409, 429, 500, 502, 503, 504).

    Writes (create, insert, drop) are sent once whatever happens.
    """

    retries: int | None = None
    connect_retries: int | None = None
    read_retries: int | None = None
    backoff_factor: float | None = None
    backoff_jitter: float | None = None
    statuses: list[int] | None = None


@dataclasses.dataclass
class TlsConfig:
    """TLS of ``https://`` servers (LanceDB's ``TlsConfig``). riffledb's client verifies
    the server's certificate (against ``ssl_ca_cert`` if given) unless
    ``assert_hostname`` is False, which turns verification off entirely; client
    certificates (``cert_file``, ``key_file``) are not supported yet."""

    cert_file: str | None = None
    key_file: str | None = None
    ssl_ca_cert: str | None = None
    assert_hostname: bool = True


@dataclasses.dataclass
class ClientConfig:
    """The remote client's configuration (LanceDB's ``ClientConfig``).

    Attributes:
        user_agent: The User-Agent header (default ``riffledb-Python-Client/<version>``).
        retry_config: A :class:`RetryConfig` (or a dict of its fields).
        timeout_config: A :class:`TimeoutConfig` (or a dict of its fields).
        extra_headers: Headers sent with every request.
        id_delimiter: Only ``"$"`` (or None) is supported.
        tls_config: A :class:`TlsConfig` (or a dict of its fields).
        header_provider: An object whose ``get_headers()`` gives a dict of headers,
            asked before every request (permutation reads included). A connection or
            table with one cannot be pickled (ValueError).
        user_id: Sent as ``x-lancedb-user-id`` (default ``$LANCEDB_USER_ID``).
        busy_poll_us: riffledb's own: before blocking for an answer, poll the socket for
            up to this many microseconds, 0 to 1,000,000 (default
            ``$RIFFLEDB_BUSY_POLL_US``, else 1,000 in the process that connected and 0 in
            workers: forked children, processes started by ``multiprocessing``
            (DataLoader workers), and connections unpickled in another process or
            deserialized ``for_worker``). An answer that comes meanwhile is read by a
            thread still on its CPU: on loopback, 256-row takes ran 1.8-2.5x faster in
            benchmark runs. It backs off where answers come later, and never spins with
            one usable CPU (docs/remote.md, "Busy-polling").
    """

    user_agent: str | None = None
    retry_config: RetryConfig = dataclasses.field(default_factory=RetryConfig)
    timeout_config: TimeoutConfig | None = dataclasses.field(
        default_factory=TimeoutConfig
    )
    extra_headers: dict[str, str] | None = None
    id_delimiter: str | None = None
    tls_config: TlsConfig | None = None
    header_provider: Any = None
    user_id: str | None = None
    busy_poll_us: int | None = None

    def __post_init__(self):
        if isinstance(self.retry_config, dict):
            self.retry_config = RetryConfig(**self.retry_config)
        if self.retry_config is None:
            self.retry_config = RetryConfig()
        if isinstance(self.timeout_config, dict):
            self.timeout_config = TimeoutConfig(**self.timeout_config)
        if isinstance(self.tls_config, dict):
            self.tls_config = TlsConfig(**self.tls_config)
        if self.busy_poll_us is not None:
            _busy_poll_us(self.busy_poll_us)

    @classmethod
    def coerce(cls, config: ClientConfig | dict[str, Any] | None) -> ClientConfig:
        if config is None:
            return cls()
        if isinstance(config, dict):
            return cls(**config)
        if isinstance(config, cls):
            return config
        raise TypeError(
            f"client_config must be a ClientConfig, a dict or None, got "
            f"{type(config).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A picklable, JSON-able form (what a pickled remote table carries).

        Raises:
            ValueError: a ``header_provider`` cannot travel (LanceDB's message).
        """
        if self.header_provider is not None:
            raise ValueError(
                "Cannot serialize a remote connection with a header_provider. "
                "Use static api_key/extra_headers or provide a worker-side "
                "connection factory instead."
            )

        def seconds(value):
            return None if value is None else value.total_seconds()

        timeouts = self.timeout_config
        return {
            "user_agent": self.user_agent,
            "retry_config": dataclasses.asdict(self.retry_config),
            "timeout_config": None
            if timeouts is None
            else {
                f.name: seconds(getattr(timeouts, f.name))
                for f in dataclasses.fields(timeouts)
            },
            "extra_headers": dict(self.extra_headers or {}) or None,
            "id_delimiter": self.id_delimiter,
            "tls_config": None
            if self.tls_config is None
            else dataclasses.asdict(self.tls_config),
            "user_id": self.user_id,
            "busy_poll_us": self.busy_poll_us,
        }


# The client's busy-poll before each answer, in µs (ClientConfig.busy_poll_us).
DEFAULT_BUSY_POLL_US: int = _riffledb.DEFAULT_CLIENT_BUSY_POLL_US
MAX_BUSY_POLL_US = 1_000_000


def _busy_poll_us(value: Any) -> int:
    """``value`` if it is a busy-poll time; else a ValueError saying what is allowed."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_BUSY_POLL_US
    ):
        raise ValueError(
            f"busy_poll_us must be a whole number of microseconds from 0 to "
            f"{MAX_BUSY_POLL_US}, not {value!r}"
        )
    return value


def _env(name: str, parse, default):
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return parse(text)
    except ValueError as error:
        raise ValueError(f"Invalid value for {name}: {text!r}") from error


def _pick(value, env: str, parse, default):
    return value if value is not None else _env(env, parse, default)


def native_client_arguments(config: ClientConfig, worker: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``_riffledb.RemoteClient.make`` but the URL and headers:
    the config's values, else the environment's (``LANCE_CLIENT_*``), else LanceDB's
    defaults. ``worker``: the connection is a worker's (unpickled, or deserialized
    ``for_worker``), which does not busy-poll unless told to."""
    retry = config.retry_config
    timeouts = config.timeout_config or TimeoutConfig()
    tls = config.tls_config or TlsConfig()
    if tls.cert_file or tls.key_file:
        from ..errors import NotSupportedError

        raise NotSupportedError(
            "tls_config cert_file/key_file (client certificates) are not supported by "
            "riffledb's remote client yet"
        )

    def secs(value: timedelta | None, env: str, default: float | None):
        if value is not None:
            return value.total_seconds()
        return _env(env, float, default)

    return {
        "connect_timeout": secs(
            timeouts.connect_timeout, "LANCE_CLIENT_CONNECT_TIMEOUT", 120.0
        ),
        "read_timeout": secs(timeouts.read_timeout, "LANCE_CLIENT_READ_TIMEOUT", 300.0),
        "timeout": secs(timeouts.timeout, "LANCE_CLIENT_TIMEOUT", None),
        "pool_idle_timeout": secs(
            timeouts.pool_idle_timeout, "LANCE_CLIENT_CONNECTION_TIMEOUT", 300.0
        ),
        "retries": _pick(retry.retries, "LANCE_CLIENT_MAX_RETRIES", int, 3),
        "connect_retries": _pick(
            retry.connect_retries, "LANCE_CLIENT_CONNECT_RETRIES", int, 3
        ),
        "read_retries": _pick(retry.read_retries, "LANCE_CLIENT_READ_RETRIES", int, 3),
        "backoff_factor": _pick(
            retry.backoff_factor, "LANCE_CLIENT_RETRY_BACKOFF_FACTOR", float, 0.25
        ),
        "backoff_jitter": _pick(
            retry.backoff_jitter, "LANCE_CLIENT_RETRY_BACKOFF_JITTER", float, 0.25
        ),
        "statuses": list(
            _pick(
                retry.statuses,
                "LANCE_CLIENT_RETRY_STATUSES",
                lambda t: [int(s) for s in t.split(",")],
                [409, 429, 500, 502, 503, 504],
            )
        ),
        "verify_tls": bool(tls.assert_hostname),
        "ca_cert_path": tls.ssl_ca_cert or "",
        **_busy_poll_arguments(config, worker),
    }


def _busy_poll_arguments(config: ClientConfig, worker: bool) -> dict[str, int]:
    """The busy-poll of the connecting process and of its forked children: the same
    when set (config, environment); by default ``DEFAULT_BUSY_POLL_US`` (1,000 µs) in
    a process that connected for itself, 0 in workers: ``worker``, or any process
    multiprocessing started (a DataLoader worker, a Pool's), whose waits overlap its
    siblings' work."""
    import multiprocessing

    worker = worker or multiprocessing.parent_process() is not None
    told = _pick(
        config.busy_poll_us,
        "RIFFLEDB_BUSY_POLL_US",
        lambda text: _busy_poll_us(int(text)),
        None,
    )
    if told is not None:
        return {"busy_poll_us": told, "forked_busy_poll_us": told}
    return {
        "busy_poll_us": 0 if worker else DEFAULT_BUSY_POLL_US,
        "forked_busy_poll_us": 0,
    }
