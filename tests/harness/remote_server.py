"""Servers for the remote-table tests: ``riffledb serve`` as a subprocess on a port it
picks (keep-alive, as in production), and a scripted keep-alive HTTP/1.1 mock in a
thread. Every wait has a deadline."""

from __future__ import annotations

import http.server
import json
import select
import signal
import subprocess
import sys
import threading

import pyarrow as pa

TIMEOUT = 30.0


class RiffledbServer:
    """``python -m riffledb.cli serve URI --port 0``; ``url`` is where it listens."""

    def __init__(self, uri: str = "memory://", *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "riffledb.cli", "serve", uri, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("riffledb serve: listening on http://127.0.0.1:"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=TIMEOUT)
            raise RuntimeError(f"riffledb serve did not start: {line!r}\n{err}")
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.proc.returncode


def arrow_file_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class MockServer:
    """A threading HTTP/1.1 (keep-alive) server whose ``handler(request, body)``
    returns ``(status, content_type, body bytes)``; every request is recorded as
    ``(method, path, headers dict, body bytes)``. Bodies are read through
    Content-Length, so connections stay in sync."""

    def __init__(self, handler):
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer.lock:
                    outer.requests.append(
                        (self.command, self.path, dict(self.headers.items()), body)
                    )
                status, content_type, answer = handler(self, body)
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def json_answer(value, status: int = 200):
    return status, "application/json", json.dumps(value).encode()
