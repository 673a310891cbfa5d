"""The ``riffledb`` command: look after a database from a shell or a script.

    riffledb info URI [TABLE]        versions, rows, files and sizes, schema
    riffledb verify URI [TABLE]      check every file of every version, report damage
    riffledb restore URI TABLE N     commit a new version equal to version N
    riffledb optimize URI TABLE      compact small fragments, materialise deletions
    riffledb cleanup URI TABLE --older-than 7d [--delete-unverified]
                                     remove old versions and unreferenced files
    riffledb serve URI [--host H] [--port P] [--api-key K] [--threads N]
                       [--max-body-bytes N] [--max-decoded-bytes N]
                       [--tls-cert PEM --tls-key PEM] [--busy-poll-us N]
                                     serve the database over LanceDB's REST protocol

Exit codes a script can use: 0 success; 1 damage found (verify) or the operation failed;
2 bad usage (unknown table, bad arguments).

``verify`` checks every version: its manifest and segment files against their checksums,
every data and deletion file it references read in full and compared with the CRC-32C
its manifest records (each file once, however many versions share it), and then the
version opened and validated as a read would (structure, offsets, row counts). Files of
versions written before format 2 carry no checksum and get the structural checks only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import sys
import threading
from typing import Any, TextIO

from . import _riffledb, connect
from .db import native_database
from .errors import RiffledbError, TableNotFoundError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _directory_size(path: str) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                size += os.stat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass  # removed meanwhile (another process cleaning up)
    return files, size


def _table_info(db, name: str) -> dict[str, Any]:
    table = db.open_table(name)
    versions = table.list_versions()
    info: dict[str, Any] = {
        "name": name,
        "versions": len(versions),
        "latest_version": table.version,
        "damaged_versions": [v["version"] for v in versions if "damaged" in v],
    }
    try:
        info["rows"] = table.count_rows()
        info["schema"] = str(table.schema)
    except RiffledbError as e:
        info["error"] = str(e)
    path = os.path.join(db.uri, f"{name}.riffle")
    if os.path.isdir(path):
        for part in ("data", "_versions", "_segments", "_deletions"):
            files, size = _directory_size(os.path.join(path, part))
            info[f"{part.strip('_')}_files"] = files
            info[f"{part.strip('_')}_bytes"] = size
    return info


def _print_info(info: dict[str, Any], out: TextIO) -> None:
    print(f"table {info['name']}", file=out)
    damaged = info["damaged_versions"]
    print(
        f"  versions: {info['versions']} (latest {info['latest_version']})"
        + (f", damaged: {damaged}" if damaged else ""),
        file=out,
    )
    if "rows" in info:
        print(f"  rows: {info['rows']:,}", file=out)
    if "error" in info:
        print(f"  error: {info['error']}", file=out)
    for part in ("data", "versions", "segments", "deletions"):
        if f"{part}_files" in info:
            files, size = info[f"{part}_files"], info[f"{part}_bytes"]
            print(f"  {part}: {files} files, {size:,} bytes", file=out)
    if "schema" in info:
        print("  schema:", file=out)
        for line in info["schema"].splitlines():
            print(f"    {line}", file=out)


def _tables(db, table: str | None) -> list[str]:
    names = list(db.table_names(limit=None)) if table is None else [table]
    if table is not None and table not in db:
        raise TableNotFoundError(f"Table '{table}' was not found in database '{db.uri}'")
    return names


def cmd_info(args, out: TextIO, err: TextIO) -> int:
    db = connect(args.uri)
    infos = [_table_info(db, name) for name in _tables(db, args.table)]
    if args.json:
        json.dump(infos, out, indent=2)
        print(file=out)
    else:
        for info in infos:
            _print_info(info, out)
    return EXIT_OK


def cmd_verify(args, out: TextIO, err: TextIO) -> int:
    db = connect(args.uri)
    problems = 0
    checked = 0
    names = _tables(db, args.table)
    for t, name in enumerate(names, 1):
        table = db.open_table(name)
        versions = table.list_versions()
        for i, version in enumerate(versions, 1):
            # Progress on stderr, one line rewritten in place.
            print(
                f"\r[{t}/{len(names)}] {name}: version {i}/{len(versions)}",
                end="",
                file=err,
                flush=True,
            )
            number = version["version"]
            if "damaged" in version:
                problems += 1
                print(f"\n{name} version {number}: {version['damaged']}", file=out)
                continue
            try:
                table.verify(number)
                checked += 1
            except RiffledbError as e:
                problems += 1
                print(f"\n{name} version {number}: {e}", file=out)
    print(file=err)
    print(
        f"checked {checked} versions of {len(names)} tables: "
        + (f"{problems} damaged" if problems else "no damage found"),
        file=out,
    )
    return EXIT_FAILED if problems else EXIT_OK


def cmd_restore(args, out: TextIO, err: TextIO) -> int:
    db = connect(args.uri)
    _tables(db, args.table)
    version = db.open_table(args.table).restore(args.version)
    print(f"restored {args.table} version {args.version} as version {version}", file=out)
    return EXIT_OK


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> datetime.timedelta:
    """``30s``, ``15m``, ``2h``, ``7d`` or ``0`` as a timedelta (ArgumentTypeError
    otherwise, which argparse reports as a usage error)."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if text.strip() == "0":
        return datetime.timedelta(0)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a whole number and a unit s, m, h or d "
            "(30s, 15m, 2h, 7d), or 0"
        )
    return datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


class _Progress:
    """A one-line progress display on ``err`` when it is a terminal (nothing
    otherwise): ``progress(stage, done, total)`` rewrites the line in place."""

    def __init__(self, err: TextIO, label: str):
        isatty = getattr(err, "isatty", None)
        self._err = err if isatty is not None and isatty() else None
        self._label = label
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._err is None:
            return
        percent = f" ({100 * done // total}%)" if total else ""
        line = f"{self._label}: {stage} {done:,}/{total:,}{percent}"
        print(f"\r{line:<72}", end="", file=self._err, flush=True)
        self._shown = True

    def close(self) -> None:
        if self._shown:
            print(file=self._err, flush=True)
            self._shown = False


def _describe_cleanup(stats) -> str:
    return (
        f"removed {stats.old_versions} old versions, {stats.files_removed} files, "
        f"{stats.bytes_removed:,} bytes"
    )


def cmd_optimize(args, out: TextIO, err: TextIO) -> int:
    db = connect(args.uri)
    _tables(db, args.table)
    table = db.open_table(args.table)
    progress = _Progress(err, f"optimize {args.table}")
    try:
        stats = table.optimize(
            cleanup_older_than=args.cleanup_older_than,
            delete_unverified=args.delete_unverified,
            target_rows_per_fragment=args.target_rows,
            progress=progress,
        )
    finally:
        progress.close()
    c = stats.compaction
    if c.fragments_removed == 0:
        summary = f"optimized {args.table}: nothing to compact (version {table.version})"
    else:
        summary = (
            f"optimized {args.table}: {c.fragments_removed} fragments rewritten as "
            f"{c.fragments_added} (version {table.version})"
        )
    if args.cleanup_older_than is not None:
        summary += "; cleanup " + _describe_cleanup(stats.prune)
    print(summary, file=out)
    return EXIT_OK


def cmd_cleanup(args, out: TextIO, err: TextIO) -> int:
    db = connect(args.uri)
    _tables(db, args.table)
    table = db.open_table(args.table)
    progress = _Progress(err, f"cleanup {args.table}")
    try:
        stats = table.cleanup_old_versions(
            args.older_than,
            delete_unverified=args.delete_unverified,
            progress=progress,
        )
    finally:
        progress.close()
    print(f"cleaned up {args.table}: {_describe_cleanup(stats)}", file=out)
    return EXIT_OK


API_KEY_ENV = "RIFFLEDB_API_KEY"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_serve(args, out: TextIO, err: TextIO) -> int:
    """Serves the database until SIGTERM or SIGINT, then stops gracefully: requests
    already received are answered, writes commit whole or not at all."""
    api_key = args.api_key
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV, "")
    db = connect(args.uri)
    # This process only serves: keep megabyte answer buffers mapped between requests.
    _riffledb.tune_allocator_for_serving()
    server = _riffledb.Server.start(
        native_database(db),
        args.host,
        args.port,
        api_key,
        args.threads,
        args.max_body_bytes,
        args.max_decoded_bytes,
        args.tls_cert or "",
        args.tls_key or "",
        args.busy_poll_us,
        args.version_check_interval_ms,
        args.head_timeout_ms,
    )
    stop = threading.Event()
    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        host = f"[{args.host}]" if ":" in args.host else args.host
        if not api_key and args.host not in _LOOPBACK:
            print(
                f"riffledb serve: warning: listening on {args.host} without an API key "
                f"(--api-key or ${API_KEY_ENV})",
                file=err,
                flush=True,
            )
        # One line with the port, flushed: scripts and tests read it.
        print(
            f"riffledb serve: listening on {server.scheme}://{host}:{server.port}",
            file=out,
            flush=True,
        )
        # Short waits, so that the signal handlers (which run between them) are seen.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("riffledb serve: stopped", file=out, flush=True)
    return EXIT_OK


def _int_in(text: str, low: int, high: int | None, expected: str) -> int:
    """``text`` as an int in [low, high] (no upper bound if ``high`` is None); else the
    argparse error "expected <expected>, got '<text>'"."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _port(text: str) -> int:
    return _int_in(text, 0, 65535, "a port 0..65535")


def _positive_int(text: str) -> int:
    return _int_in(text, 1, None, "a positive integer")


def _busy_poll_us(text: str) -> int:
    return _int_in(text, 0, 1_000_000, "microseconds from 0 to 1000000")


def _non_negative_int(text: str) -> int:
    return _int_in(text, 0, None, "an integer of at least 0")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riffledb", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, rows, files, sizes and schema")
    info.add_argument("uri")
    info.add_argument("table", nargs="?")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=cmd_info)
    verify = sub.add_parser("verify", help="open every version, report damage")
    verify.add_argument("uri")
    verify.add_argument("table", nargs="?")
    verify.set_defaults(run=cmd_verify)
    restore = sub.add_parser("restore", help="commit a new version equal to VERSION")
    restore.add_argument("uri")
    restore.add_argument("table")
    restore.add_argument("version", type=int)
    restore.set_defaults(run=cmd_restore)
    optimize = sub.add_parser(
        "optimize", help="compact small fragments and materialise deletions"
    )
    optimize.add_argument("uri")
    optimize.add_argument("table")
    optimize.add_argument(
        "--target-rows",
        type=_positive_int,
        default=None,
        help="rows per compacted fragment (default 1048576)",
    )
    optimize.add_argument(
        "--cleanup-older-than",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="then remove versions older than this (30s, 15m, 2h, 7d, 0)",
    )
    optimize.add_argument("--delete-unverified", action="store_true")
    optimize.set_defaults(run=cmd_optimize)
    cleanup = sub.add_parser(
        "cleanup", help="remove old versions and the files no version uses"
    )
    cleanup.add_argument("uri")
    cleanup.add_argument("table")
    cleanup.add_argument(
        "--older-than",
        type=parse_duration,
        default=datetime.timedelta(days=7),
        metavar="DURATION",
        help="remove versions older than this (30s, 15m, 2h, 7d, 0; default 7d)",
    )
    cleanup.add_argument(
        "--delete-unverified",
        action="store_true",
        help="also remove unreferenced files younger than 7 days (only when nothing "
        "else writes to the table)",
    )
    cleanup.set_defaults(run=cmd_cleanup)
    serve = sub.add_parser(
        "serve", help="serve the database over LanceDB's REST protocol (db://)"
    )
    serve.add_argument("uri")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    serve.add_argument(
        "--port", type=_port, default=0, help="port (default 0: any free port)"
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require this key in the x-api-key header (default ${API_KEY_ENV}; "
        "none: no key required)",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=16,
        help="connection threads, i.e. clients served at once (default 16)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=256 << 20,
        help="largest request body accepted (default 256 MiB); larger ones get 413",
    )
    serve.add_argument(
        "--max-decoded-bytes",
        type=_positive_int,
        default=1 << 30,
        help="what the compressed buffers of one create or insert body may decompress "
        "to (default 1 GiB); more gets 413",
    )
    serve.add_argument(
        "--tls-cert",
        default=None,
        help="serve HTTPS with this PEM certificate (chain); needs --tls-key",
    )
    serve.add_argument(
        "--tls-key", default=None, help="the PEM private key of --tls-cert"
    )
    serve.add_argument(
        "--busy-poll-us",
        type=_busy_poll_us,
        default=_riffledb.DEFAULT_SERVE_BUSY_POLL_US,
        help="after each reply, poll for the connection's next request this long "
        f"before sleeping (default {_riffledb.DEFAULT_SERVE_BUSY_POLL_US}; 0: never): "
        "back-to-back requests are answered by a thread still on its CPU",
    )
    serve.add_argument(
        "--version-check-interval-ms",
        type=_non_negative_int,
        default=-1,
        help="look for versions committed by other writers at most this often, in ms "
        "(0: at every request; default: 0 for a directory, 1000 on object storage, "
        "where a look is a few requests); commits made through the server are seen at "
        "once",
    )
    serve.add_argument(
        "--head-timeout-ms",
        type=_positive_int,
        default=_riffledb.DEFAULT_SERVE_HEAD_TIMEOUT_MS,
        help="close a connection whose request head (or TLS handshake) has not come "
        "whole this long after it began, in ms (default "
        f"{_riffledb.DEFAULT_SERVE_HEAD_TIMEOUT_MS}): a client trickling bytes would "
        "hold a connection thread",
    )
    serve.set_defaults(run=cmd_serve)
    return parser


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse printed the usage
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        return args.run(args, out, err)
    except TableNotFoundError as e:
        print(f"riffledb: {e}", file=err)
        return EXIT_USAGE
    except (RiffledbError, OSError, ValueError) as e:
        print(f"riffledb: {e}", file=err)
        return EXIT_FAILED


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
