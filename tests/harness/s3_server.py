"""An S3 server on loopback for the s3:// tests: moto's, in a thread of this process.

Two things make it stricter than moto's ``ThreadedMotoServer`` out of the box:

- **Signatures are checked.** After the bucket and an IAM user with full S3 access are
  made, moto's authentication is switched on (``/moto-api/reset-auth``), so every request
  must carry a valid SigV4 signature of that user's key: riffledb's own conditional PUT
  is verified like the AWS SDK's requests, and a wrong secret is refused (403
  SignatureDoesNotMatch).
- **Requests are handled one at a time.** moto checks ``If-None-Match: *`` and then
  stores the object in two steps that another request thread can interleave, so two
  racing conditional PUTs could both succeed there, as they never do on S3. A lock around
  moto's application makes each request atomic, as S3's conditional writes are.

``before_conditional_put(key, action)`` runs ``action()`` once, just before the server
handles the next ``If-None-Match: *`` PUT of ``key``: a test's way to land a conflicting
write between a client's checks and its commit.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

BUCKET = "riffle-test"
REGION = "us-east-1"


class S3Server:
    """moto's S3 on 127.0.0.1 (an ephemeral port), a bucket, and a user's keys."""

    def __init__(self) -> None:
        import boto3
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self._lock = threading.Lock()
        # Every request handled, as (method, path, query string), in order: what tests
        # count (test_s3.requests_since).
        self.requests: list[tuple[str, str, str]] = []
        self._hooks: dict[str, Callable[[], None]] = {}
        self._hooks_lock = threading.Lock()
        server = self

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # one line per request on stderr otherwise

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:
                app = DomainDispatcherApplication(create_backend_app)
                self._server = make_server(
                    self._ip_address,
                    self._port,
                    server._serialized(app),
                    True,
                    request_handler=QuietHandler,
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        self._server = Server(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

        # moto's backends and its authentication switch are global to the process: a
        # server started after another (test_ray's, then test_s3's) starts from a clean
        # state with authentication off, to make its bucket and user, then switches it on.
        self._moto_api("/moto-api/reset-auth", str(10**9).encode())
        self._moto_api("/moto-api/reset", b"")
        setup = dict(
            endpoint_url=self.endpoint,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
            region_name=REGION,
        )
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="riffledb")
        iam.put_user_policy(
            UserName="riffledb",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="riffledb")["AccessKey"]
        self.access_key_id: str = key["AccessKeyId"]
        self.secret_access_key: str = key["SecretAccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        self._moto_api("/moto-api/reset-auth", b"0")
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=REGION,
        )

    def _moto_api(self, path: str, data: bytes) -> None:
        request = urllib.request.Request(
            self.endpoint + path,
            data=data,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=30).read()

    def storage_options(self, **overrides: str) -> dict[str, str]:
        """riffledb's storage options for this server (``overrides`` win)."""
        options = {
            "endpoint": self.endpoint,
            "allow_http": "true",
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region": REGION,
        }
        options.update(overrides)
        return options

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix``, sorted."""
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def before_conditional_put(self, key: str, action: Callable[[], None]) -> None:
        """Runs ``action()`` once, before the next ``If-None-Match: *`` PUT of ``key``
        (in the bucket) is handled."""
        with self._hooks_lock:
            self._hooks[f"/{BUCKET}/{key}"] = action

    def stop(self) -> None:
        self._server.stop()

    def _serialized(self, app: Any) -> Any:
        def serialized(environ: dict[str, Any], start_response: Any) -> Any:
            if (
                environ.get("REQUEST_METHOD") == "PUT"
                and environ.get("HTTP_IF_NONE_MATCH") == "*"
            ):
                with self._hooks_lock:
                    hook = self._hooks.pop(environ.get("PATH_INFO", ""), None)
                if hook is not None:
                    hook()  # outside the lock: it sends requests of its own
            with self._lock:
                self.requests.append(
                    (
                        environ.get("REQUEST_METHOD", ""),
                        environ.get("PATH_INFO", ""),
                        environ.get("QUERY_STRING", ""),
                    )
                )
                # The whole body inside the lock: moto builds it eagerly anyway.
                return list(app(environ, start_response))

        return serialized
