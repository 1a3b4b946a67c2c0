"""A loopback HTTP server that stands in for Sentry, and reads what the SDK sent.

The SDK is given a real DSN pointing at this server; its transport posts real envelopes
over HTTP; the server decodes them with the SDK's own envelope parser. Nothing in the
SDK is patched, so what a test sees is exactly what Sentry would have received.

The server can also misbehave on purpose (refuse with 500, rate-limit with 429, answer
slowly) to test what the bot does when Sentry is in trouble. :meth:`SentryEndpoint.rate_limit`
behaves like Sentry's own per-category quotas: an envelope that holds an item of a limited
category is answered 429 with ``X-Sentry-Rate-Limits`` naming the categories and how long
the limit lasts, while the other envelopes are accepted as usual.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

import sentry_sdk
from sentry_sdk.envelope import Envelope

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PUBLIC_KEY", "ReceivedEnvelope", "SentryEndpoint", "reset_sentry_sdk"]

#: The key in the endpoint's DSN; tests assert it never appears in what was sent.
PUBLIC_KEY = "0123456789abcdef0123456789abcdef"

#: Most envelopes kept; a runaway test must not eat the machine's memory.
MAX_ENVELOPES = 10_000


def reset_sentry_sdk() -> None:
    """Close the active SDK client, if any, and leave the SDK inactive."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2.0)
    sentry_sdk.get_global_scope().set_client(None)


_POLL_INTERVAL = 0.02  # seconds


@dataclass(frozen=True, slots=True)
class ReceivedEnvelope:
    """One envelope as it arrived: the raw (decompressed) bytes and its parsed items."""

    raw: bytes
    items: list[tuple[str, Any]]  # (item type, JSON payload or raw bytes)
    received_at: float
    status: int = 200  # what the endpoint answered

    @property
    def accepted(self) -> bool:
        """Whether the endpoint answered 2xx (Sentry took the envelope)."""
        return 200 <= self.status < 300  # noqa: PLR2004 - HTTP success range


@dataclass
class _Behaviour:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


#: Envelope item type -> the rate-limit category Sentry files it under.
_ITEM_CATEGORIES: dict[str, str] = {
    "event": "error",
    "transaction": "transaction",
    "span": "span",
    "trace_metric": "trace_metric",
    "log": "log_item",
    "check_in": "monitor",
    "attachment": "attachment",
    "session": "session",
    "sessions": "session",
    "client_report": "internal",
}


@dataclass(frozen=True, slots=True)
class _RateLimit:
    categories: frozenset[str]
    until: float  # time.monotonic()


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # noqa: PLC0415 - only if the SDK chose it

        return bytes(brotli.decompress(body))
    return body


class SentryEndpoint:
    """A Sentry stand-in on 127.0.0.1 with a random port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self) -> None:
        """Create the server; it listens once started."""
        self._lock = threading.Lock()
        self._envelopes: list[ReceivedEnvelope] = []
        self._behaviour = _Behaviour()
        self._rate_limit: _RateLimit | None = None
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening; returns ``self``."""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers = endpoint._received(
                    body, self.headers.get("Content-Encoding", "")
                )
                behaviour = endpoint._behaviour
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = b"{}"
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Stay quiet; tests read envelopes, not access logs."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # stop() waits for the serving loop to see the shutdown, which it checks once per
        # poll interval: the default 0.5 s made every test's teardown half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="sentry-endpoint",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        """Start on entering the block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop on leaving the block."""
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the endpoint is not started")
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        """A DSN that sends to this endpoint (project 1)."""
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/1"

    # misbehaviour ----------------------------------------------------------------------

    def respond_with(
        self, status: int = 200, delay: float = 0.0, headers: dict[str, str] | None = None
    ) -> None:
        """Answer later requests with ``status`` after ``delay`` seconds."""
        self._behaviour = _Behaviour(status, delay, dict(headers or {}))

    def rate_limit(self, categories: str, seconds: int = 60) -> None:
        """Rate-limit ``categories`` (``"transaction"``, ``"error;transaction"``) for ``seconds``.

        Like Sentry: an envelope with an item of a limited category is answered 429 with
        ``X-Sentry-Rate-Limits: <seconds>:<categories>:organization`` (the seconds left),
        and every other envelope is accepted. ``seconds=0`` lifts the limit.
        """
        if seconds <= 0:
            self._rate_limit = None
            return
        wanted = frozenset(c for c in categories.split(";") if c)
        self._rate_limit = _RateLimit(wanted, time.monotonic() + seconds)

    def _answer(self, items: list[tuple[str, Any]]) -> tuple[int, dict[str, str]]:
        limit = self._rate_limit
        if limit is not None:
            left = limit.until - time.monotonic()
            hit = {_ITEM_CATEGORIES.get(kind, "default") for kind, _ in items} & limit.categories
            if left > 0 and hit:
                header = f"{max(1, round(left))}:{';'.join(sorted(limit.categories))}:organization"
                return 429, {"X-Sentry-Rate-Limits": header, "Retry-After": str(round(left))}
        behaviour = self._behaviour
        return behaviour.status, dict(behaviour.headers)

    # what arrived ----------------------------------------------------------------------

    def _received(self, body: bytes, encoding: str) -> tuple[int, dict[str, str]]:
        raw = _decode(body, encoding)
        envelope = Envelope.deserialize(raw)
        items: list[tuple[str, Any]] = []
        for item in envelope.items:
            payload = item.payload
            parsed: Any = payload.json
            if parsed is None:
                # Metrics arrive as "application/vnd.sentry.items.trace-metric+json",
                # which the SDK's parser leaves as bytes.
                try:
                    parsed = json.loads(payload.bytes or b"")
                except (ValueError, TypeError):
                    parsed = payload.bytes
            items.append((str(item.type), parsed))
        status, headers = self._answer(items)
        with self._lock:
            self.requests += 1
            if len(self._envelopes) < MAX_ENVELOPES:
                self._envelopes.append(ReceivedEnvelope(raw, items, time.time(), status))
        return status, headers

    @property
    def envelopes(self) -> list[ReceivedEnvelope]:
        """Every envelope received so far."""
        with self._lock:
            return list(self._envelopes)

    def items(self, item_type: str, *, accepted_only: bool = False) -> list[Any]:
        """Payloads of every item of ``item_type`` (``event``, ``transaction``, ...).

        With ``accepted_only``, only those of envelopes the endpoint answered with 2xx.
        """
        return [
            payload
            for envelope in self.envelopes
            if envelope.accepted or not accepted_only
            for kind, payload in envelope.items
            if kind == item_type
        ]

    def client_reports(self) -> dict[tuple[str, str], int]:
        """What the SDK's client reports said it lost, summed by ``(category, reason)``."""
        lost: dict[tuple[str, str], int] = {}
        for report in self.items("client_report"):
            for entry in (report or {}).get("discarded_events", []):
                key = (str(entry["category"]), str(entry["reason"]))
                lost[key] = lost.get(key, 0) + int(entry["quantity"])
        return lost

    def events(self) -> list[dict[str, Any]]:
        """Error and message events."""
        return self.items("event")

    def transactions(self) -> list[dict[str, Any]]:
        """Transaction events."""
        return self.items("transaction")

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric in every ``trace_metric`` item, flattened."""
        return self._batched("trace_metric")

    def logs(self) -> list[dict[str, Any]]:
        """Every Sentry Logs record in every ``log`` item, flattened."""
        return self._batched("log")

    def spans(self) -> list[dict[str, Any]]:
        """Every streamed span in every ``span`` item (span streaming), flattened."""
        return self._batched("span")

    def _batched(self, item_type: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for payload in self.items(item_type):
            if isinstance(payload, dict):
                found.extend(payload.get("items", []))
        return found

    def raw_bytes(self) -> bytes:
        """Everything received, decompressed, for "this must never appear" checks."""
        return b"\n".join(envelope.raw for envelope in self.envelopes)

    def clear(self) -> None:
        """Forget what arrived so far."""
        with self._lock:
            self._envelopes.clear()

    def wait_for(
        self, predicate: Callable[[SentryEndpoint], bool], timeout: float = 5.0
    ) -> bool:
        """Poll until ``predicate(self)`` holds or ``timeout`` passes (blocking).

        Blocks the calling thread, the event loop too if called from it: for what the
        SDK's own threads send. For what a task on the loop has yet to send (the cog's
        metric flushes, an asyncio transport), use :meth:`wait_for_async`.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)

    async def wait_for_async(self, predicate: Callable[[SentryEndpoint], bool]) -> None:
        """Poll until ``predicate(self)`` holds, letting the event loop run in between.

        No limit of its own: bound it the asyncio way, ``async with asyncio.timeout(5):``.
        """
        # Polled: envelopes arrive on the server's thread, and the predicate is any
        # question about all of them, so there is no single event to wait on.
        while not predicate(self):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def dump_json(self) -> str:
        """Every item received, as JSON (the demo's ``--json``)."""
        return json.dumps(
            [
                {"type": kind, "payload": payload if not isinstance(payload, bytes) else None}
                for envelope in self.envelopes
                for kind, payload in envelope.items
            ],
            indent=2,
            default=str,
        )
