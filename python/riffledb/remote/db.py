"""A connection to a remote database (``db://``), LanceDB's ``RemoteDBConnection``."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from .. import _riffledb
from .._args import check_bool, check_int, check_str
from .._data import _Source, to_arrow_stream
from ..db import check_create_table_args
from ..errors import (
    InvalidError,
    NotSupportedError,
    TableExistsError,
    TableNotFoundError,
)
from . import ClientConfig, native_client_arguments
from .errors import HttpError, NotFoundError, server_words

if TYPE_CHECKING:
    from .table import RemoteTable

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def table_path(name: str) -> str:
    """The path of a table's routes, with its trailing slash."""
    return f"/v1/table/{urllib.parse.quote(name, safe='$')}/"


def _user_agent() -> str:
    from .. import __version__

    return f"riffledb-Python-Client/{__version__}"


def ipc_stream_bytes(data: Any, schema: pa.Schema | None = None) -> bytes:
    """``data`` (anything ``create_table`` takes) as an Arrow IPC stream body; with
    ``schema``, the data's columns matched to it by name and cast, a nullable column the
    data lacks all nulls (as a local create fills it); no data: ``schema`` and one
    zero-row batch, as LanceDB's client sends an empty create."""
    stream = None if data is None else to_arrow_stream(data)
    if stream is None:
        if schema is None:
            raise InvalidError("Cannot send empty data without a schema: pass schema=")
        table = schema.empty_table()
    elif isinstance(stream, _Source):
        table = pa.Table.from_batches(list(stream), stream.schema)
    else:
        table = pa.RecordBatchReader.from_stream(stream).read_all()
    if schema is not None and stream is not None:
        missing = [f for f in schema if f.name not in table.column_names]
        required = [f"'{f.name}' ({f.type})" for f in missing if not f.nullable]
        if required:
            raise InvalidError(
                "The data does not match the schema: missing non-nullable columns: "
                + ", ".join(required)
            )
        for field in missing:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        try:
            table = table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise InvalidError(f"data does not fit the schema: {error}") from error
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        if table.num_rows == 0:
            writer.write_batch(pa.RecordBatch.from_pylist([], schema=table.schema))
        else:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_ipc(body: bytes, content_type: str | None) -> pa.Table:
    """A query answer: an IPC file, or a stream when labelled so (spec §2.6)."""
    buffer = pa.py_buffer(body)
    if content_type and content_type.split(";")[0].strip() == ARROW_STREAM:
        return pa.ipc.open_stream(buffer).read_all()
    return pa.ipc.open_file(buffer).read_all()


def _server_message(error: HttpError, name: str, uri: str) -> str:
    """The server's own words for a 404 (``{"error": ...}``), else LanceDB's."""
    return server_words(error) or f"Table '{name}' was not found in {uri}"


class RemoteDBConnection:
    """A connection to a database served over LanceDB's REST protocol (``riffledb
    serve``, or LanceDB Cloud's subset of it). Thread-safe and fork-safe: a forked
    child keeps using it (its requests go over connections of its own). Pickles with its
    connection settings, API key included (as LanceDB's), unless it has a
    ``header_provider``.

    Connecting sends nothing; every method is one or more requests.
    """

    def __init__(
        self,
        db_url: str,
        api_key: str | None = None,
        region: str = "us-east-1",
        host_override: str | None = None,
        client_config: ClientConfig | dict[str, Any] | None = None,
        *,
        _worker: bool = False,
    ):
        check_str(db_url, "uri")
        check_str(region, "region")
        check_str(host_override, "host_override", none_ok=True)
        if api_key is None:
            api_key = os.environ.get("LANCEDB_API_KEY")
        if api_key is None:
            raise InvalidError(
                f"api_key is required to connect to {db_url!r}: pass api_key= (an "
                "empty string sends none) or set LANCEDB_API_KEY"
            )
        check_str(api_key, "api_key")
        config = ClientConfig.coerce(client_config)
        parsed = urllib.parse.urlparse(db_url)
        if parsed.scheme != "db" or not parsed.netloc:
            raise InvalidError(
                f"Invalid remote database URI {db_url!r}: expected db://name[/prefix]"
            )
        if config.id_delimiter not in (None, "$"):
            raise InvalidError(
                f"id_delimiter {config.id_delimiter!r} is not supported: only '$'"
            )
        self.db_name = parsed.netloc
        prefix = parsed.path.strip("/")
        if host_override is not None:
            base_url = host_override
        else:
            host = f"{self.db_name}.{region}.api.lancedb.com"
            if len(host) > 253 or not all(_DNS_LABEL.match(p) for p in host.split(".")):
                raise InvalidError(
                    f"Invalid remote database URI {db_url!r}: {host!r} is not a valid "
                    "host name (DNS labels must contain 1 to 63 bytes of letters, "
                    "digits and '-')"
                )
            base_url = f"https://{host}"
        headers = [("User-Agent", config.user_agent or _user_agent())]
        if api_key:
            headers.append(("x-api-key", api_key))
        if host_override is not None:
            headers.append(("x-lancedb-database", self.db_name))
        if prefix:
            headers.append(("x-lancedb-database-prefix", prefix))
        if region == "local":
            headers.append(("Host", f"{self.db_name}.local.api.lancedb.com"))
        user_id = config.user_id or os.environ.get("LANCEDB_USER_ID")
        if user_id is None and os.environ.get("LANCEDB_USER_ID_ENV_KEY"):
            user_id = os.environ.get(os.environ["LANCEDB_USER_ID_ENV_KEY"])
        if user_id:
            headers.append(("x-lancedb-user-id", user_id))
        for name, value in (config.extra_headers or {}).items():
            headers.append((check_str(name, "extra_headers key"), str(value)))
        # An extra header replaces a default of the same name (names without case), as
        # in LanceDB's header map; a header_provider's replace both, per request.
        merged: dict[str, tuple[str, str]] = {}
        for name, value in headers:
            merged.pop(name.lower(), None)
            merged[name.lower()] = (name, value)
        headers = list(merged.values())
        self._client = _riffledb.RemoteClient.make(
            base_url=base_url,
            headers=headers,
            **native_client_arguments(config, worker=_worker),
        )
        self._config = config
        self._header_provider = config.header_provider
        self._state = {
            "db_url": db_url,
            "api_key": api_key,
            "region": region,
            "host_override": host_override,
        }
        self.uri = db_url

    # -- state ---------------------------------------------------------------------------
    @property
    def client_config(self) -> ClientConfig:
        """The connection's :class:`~riffledb.remote.ClientConfig`."""
        return self._config

    def _state_dict(self) -> dict[str, Any]:
        """What reopens this connection in another process (``connect(**state)``).

        Raises:
            ValueError: the connection has a ``header_provider``.
        """
        return {**self._state, "client_config": self._config.to_dict()}

    def serialize(self) -> str:
        """This connection's settings as JSON (LanceDB's ``serialize``), API key
        included; :func:`riffledb.deserialize_conn` reopens it.

        Raises:
            ValueError: the connection has a ``header_provider``.
        """
        return json.dumps(self._state_dict())

    def __getstate__(self) -> dict[str, Any]:
        return {**self._state_dict(), "_pid": os.getpid()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**reopen_arguments(state))

    def __repr__(self) -> str:
        return f"RemoteConnect(name={self.db_name})"

    # -- requests ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "",
        retry: bool = True,
    ) -> tuple[int, dict[str, str], bytes, str]:
        # The header_provider is asked before each attempt, natively (a retry after a
        # token expired sends a fresh one); what it raises is raised here.
        try:
            return self._client.send(
                method, path, body, content_type, retry, self._header_provider
            )
        except NotFoundError as error:
            # The native client's 404 says "table not found" (the reads of a
            # permutation); here it is of any route: _table_send says which are a
            # table's.
            raise HttpError(str(error), error.request_id, error.status_code) from None

    def _table_send(
        self,
        name: str,
        action: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "",
        retry: bool = True,
        query: str = "",
    ) -> tuple[int, dict[str, str], bytes, str]:
        """A request to a table route; a 404 is TableNotFoundError."""
        path = f"{table_path(name)}{action}/{query}"
        if body is not None:
            raw = json.dumps(body).encode()
            content_type = "application/json"
        try:
            return self._send("POST", path, raw, content_type, retry)
        except HttpError as error:
            not_found = self._not_found(error, name)
            if not_found is not None:
                raise not_found from error
            raise

    def _not_found(self, error: HttpError, name: str) -> TableNotFoundError | None:
        """The TableNotFoundError a 404 from table ``name``'s routes is (None for any
        other error): for _table_send and the native takes."""
        if error.status_code != 404:
            return None
        return TableNotFoundError(_server_message(error, name, self.uri))

    def stats(self) -> dict[str, int]:
        """This process's use of the connection's HTTP client: ``requests`` (attempts),
        ``connections`` opened, ``reused`` (attempts on a pooled connection),
        ``abandoned_fds`` / ``abandoned_conns`` (inherited through fork, left to the
        parent), ``busy_polls`` (waits for an answer that began with a busy-poll,
        ``ClientConfig.busy_poll_us``) and ``busy_poll_hits`` (those the answer ended)."""
        return self._client.stats()

    # -- catalog -------------------------------------------------------------------------
    def table_names(
        self, page_token: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Names of the tables, sorted: after ``page_token``, at most ``limit`` (every
        page is fetched when ``limit`` is None)."""
        check_str(page_token, "page_token", none_ok=True)
        check_int(limit, "limit", none_ok=True)
        names: list[str] = []
        token = page_token
        while True:
            params = {}
            if limit is not None:
                params["limit"] = str(limit - len(names))
            if token is not None:
                params["page_token"] = token
            query = ("?" + urllib.parse.urlencode(params)) if params else ""
            _, _, body, _ = self._send("GET", f"/v1/table/{query}")
            answer = json.loads(body)
            names.extend(answer.get("tables", []))
            token = answer.get("page_token")
            if token is None or (limit is not None and len(names) >= limit):
                return names

    def list_tables(self, page_token: str | None = None, limit: int | None = None):
        return self.table_names(page_token=page_token, limit=limit)

    def __contains__(self, name: str) -> bool:
        return check_str(name, "table name") in self.table_names()

    def __len__(self) -> int:
        return len(self.table_names())

    def create_table(
        self,
        name: str,
        data: Any = None,
        schema: pa.Schema | None = None,
        mode: Literal["create", "overwrite"] = "create",
        exist_ok: bool = False,
    ) -> RemoteTable:
        """Creates a table on the server (one request, not retried).

        Raises:
            riffledb.errors.TableExistsError: it exists and ``mode="create"`` without
                ``exist_ok``.
            riffledb.errors.InvalidError: the server refused the data or the name.
        """
        from .table import RemoteTable

        exist_ok, schema = check_create_table_args(name, mode, exist_ok, schema)
        if data is None and schema is None:
            raise InvalidError(
                f"Cannot create table '{name}' from empty data without a schema: "
                "pass schema="
            )
        body = ipc_stream_bytes(data, schema)
        wire_mode = "exist_ok" if (mode == "create" and exist_ok) else mode
        try:
            self._table_send(
                name,
                "create",
                raw=body,
                content_type=ARROW_STREAM,
                retry=False,
                query=f"?mode={wire_mode}",
            )
        except HttpError as error:
            if error.status_code == 400 and "already exists" in str(error):
                raise TableExistsError(f"Table '{name}' already exists") from error
            if error.status_code == 400:
                raise InvalidError(str(error)) from error
            if error.status_code == 501:  # a type the protocol's schema cannot name
                raise NotSupportedError(server_words(error) or str(error)) from error
            raise
        return RemoteTable(self, name)

    def open_table(self, name: str, *, version: int | None = None) -> RemoteTable:
        """Opens a table (one describe request: TableNotFoundError if it is not there).

        Args:
            version: Read this version (as :meth:`RemoteTable.checkout`).
        """
        from .table import RemoteTable

        check_str(name, "name")
        _riffledb.Database.validate_table_name(name)
        table = RemoteTable(self, name)
        if version is None:
            table._describe(None, open_request=True)
        else:
            table.checkout(version)
        return table

    def drop_table(self, name: str, ignore_missing: bool = False) -> None:
        """Drops a table (not retried).

        Raises:
            riffledb.errors.TableNotFoundError: the server answered 404 and
                ``ignore_missing`` is False.
        """
        check_str(name, "name")
        ignore_missing = check_bool(ignore_missing, "ignore_missing")
        _riffledb.Database.validate_table_name(name)
        try:
            self._table_send(name, "drop", retry=False)
        except TableNotFoundError:
            if not ignore_missing:
                raise


def reopen_arguments(state: dict[str, Any]) -> dict[str, Any]:
    """The ``RemoteDBConnection`` arguments of a pickled connection's state
    (``__getstate__``): unpickled in another process (a spawn DataLoader worker, a Ray
    task), it is a worker's connection, which does not busy-poll by default."""
    state = dict(state)
    pid = state.pop("_pid", None)
    return {**state, "_worker": pid is not None and pid != os.getpid()}


def deserialize_conn(data: str | dict[str, Any], for_worker: bool = False):
    """Reopens a connection from :meth:`RemoteDBConnection.serialize` (LanceDB's
    ``deserialize_conn``). ``for_worker``: the connection is for one of several worker
    processes, and does not busy-poll unless its ``busy_poll_us`` (or
    ``$RIFFLEDB_BUSY_POLL_US``) says so.

    Raises:
        riffledb.errors.InvalidError: ``data`` is not a serialized connection.
    """
    check_bool(for_worker, "for_worker")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as error:
            raise InvalidError(f"Not a serialized connection: {error}") from error
    if not isinstance(data, dict) or not str(data.get("db_url", "")).startswith("db://"):
        raise InvalidError("Not a serialized remote connection (no db:// db_url)")
    known = {"db_url", "api_key", "region", "host_override", "client_config"}
    return RemoteDBConnection(
        **{k: v for k, v in data.items() if k in known}, _worker=for_worker
    )
