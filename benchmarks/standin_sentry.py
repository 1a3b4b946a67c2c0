"""A Sentry stand-in in a process of its own, for benchmarks that time the bot's loop.

The test suite's ``SentryEndpoint`` serves from a thread of the bot's process, so its
parsing competes with the bot for the GIL: fine for checking what arrived, wrong for
timing the bot. This one runs in a child process, answers every POST at once with 200
and keeps the bodies; it decodes them only when asked (``GET /``), so its CPU use while
the benchmark runs is the least a server can have.

Use: ``with StandinSentry() as sentry: sentry_sdk.init(dsn=sentry.dsn); ...;
sentry.metric_items()``.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one write: no Nagle / delayed-ACK wait
    bodies: ClassVar[list[tuple[str | None, bytes]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *_args: Any) -> None:
        return None

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.bodies.append((self.headers.get("Content-Encoding"), body))
        self._answer(b'{"id":"00000000000000000000000000000000"}')

    def do_GET(self) -> None:
        envelopes = items = 0
        with self.lock:
            kept, self.bodies[:] = list(self.bodies), []
        for encoding, raw in kept:
            body = gzip.decompress(raw) if encoding == "gzip" else raw
            lines = body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if b'"trace_metric"' in header:
                    items += len(json.loads(payload)["items"])
            envelopes += 1
        self._answer(json.dumps({"envelopes": envelopes, "metric_items": items}).encode())


def _serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class StandinSentry:
    """The stand-in, started in a child process for the ``with`` block."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(  # noqa: S603 - this file, fixed arguments
            [sys.executable, __file__], stdout=subprocess.PIPE, text=True
        )
        if self._process.stdout is None:
            raise RuntimeError("the stand-in's output is not piped")
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    @property
    def dsn(self) -> str:
        return f"http://0123456789abcdef0123456789abcdef@127.0.0.1:{self.port}/1"

    def received(self) -> dict[str, int]:
        """Envelopes and trace_metric items received since the last call."""
        url = f"http://127.0.0.1:{self.port}/"
        with urllib.request.urlopen(url, timeout=60) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]


if __name__ == "__main__":
    _serve()
