"""Spans the bot's own code opens: database operations and external API calls.

``track_database_operation`` and ``track_external_api_call`` work as sync and async
context managers and as decorators. Inside a command they are children of the command's
own transaction, whatever the scope's current span is (tasks a command gathers share
one scope), and carry its correlation id;
they also record the database and external-API metrics of docs/metrics.md. With Sentry inactive
no span is made; the metrics and the run's query count are still kept (local mode).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar, cast

import sentry_sdk

from tux_sentry_cog.core.reporters import BusinessMetricsReporter
from tux_sentry_cog.core.runs import current_run
from tux_sentry_cog.core.streaming import end_span, is_streamed, start_streamed_span, streaming

__all__ = [
    "MAX_QUERY_CHARS",
    "DatabaseTransactionTracker",
    "TrackedOperation",
    "track_database_operation",
    "track_external_api_call",
]

#: Queries are cut to this many characters before they go on a span.
MAX_QUERY_CHARS = 500

_F = TypeVar("_F", bound=Callable[..., Any])

#: Records into whatever cog is loaded when the operation finishes.
_BUSINESS = BusinessMetricsReporter()


class TrackedOperation:
    """One tracked operation: a span (when Sentry is active) and its metrics.

    Use it once per ``with``; as a decorator it makes a fresh copy for every call, so a
    decorated function may run concurrently.
    """

    def __init__(
        self,
        kind: str,
        op: str,
        name: str,
        data: Mapping[str, Any],
        attributes: Mapping[str, str],
    ) -> None:
        """Describe the operation; nothing starts before it is entered."""
        self.kind = kind
        self.op = op
        self.name = name
        self.data = dict(data)
        self.attributes = dict(attributes)
        self.status_code: int | None = None
        self.span: Any = None
        self._entered = False
        self._started = 0.0

    def _copy(self) -> TrackedOperation:
        return TrackedOperation(self.kind, self.op, self.name, self.data, self.attributes)

    def set_status_code(self, status_code: int) -> None:
        """Record the HTTP status of an external API call."""
        self.status_code = int(status_code)

    # context manager ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Start the span (if Sentry is active) and the clock."""
        self._started = time.perf_counter()
        run = current_run.get()
        if self.kind == "database" and run is not None:
            run.db_queries += 1
        if not sentry_sdk.get_client().is_active():
            return self
        try:
            transaction = run.transaction if run is not None else None
            if streaming():
                self.span = self._start_streamed(run, transaction)
                return self
            if transaction is not None:
                # A child of the run's own transaction, never made the scope's current
                # span: tasks of one command (asyncio.gather) share that scope, so the
                # current span is whichever of them started last.
                span = transaction.start_child(op=self.op, name=self.name)
                self._entered = False
            else:
                span = sentry_sdk.start_span(op=self.op, name=self.name)
                self._entered = True
            for key, value in self.data.items():
                span.set_data(key, value)
            if run is not None:
                span.set_tag("correlation_id", run.correlation_id)
                span.set_data("correlation_id", run.correlation_id)
            if self._entered:
                span.__enter__()
            self.span = span
        except Exception:
            self.span = None  # tracing trouble never stops the bot's own work
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        """Finish the span and record the metrics."""
        duration_ms = (time.perf_counter() - self._started) * 1000.0
        # Instrumentation must never mask the bot's own outcome.
        with contextlib.suppress(Exception):
            self._finish(duration_ms, exc)

    async def __aenter__(self) -> Self:
        """Same as ``with``; nothing here awaits."""
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        """Same as ``with``."""
        self.__exit__(exc_type, exc, tb)

    def _start_streamed(self, run: Any, parent: Any) -> Any:
        """The streamed span of this operation: a child of the run's span, as above."""
        attributes = dict(self.data)
        if run is not None:
            attributes["correlation_id"] = run.correlation_id
        if parent is not None:
            return start_streamed_span(self.name, self.op, attributes, parent, active=False)
        self._entered = True  # no run: the span is current while the operation runs
        return start_streamed_span(self.name, self.op, attributes, active=True)

    def _finish(self, duration_ms: float, exc: BaseException | None) -> None:
        span = self.span
        status = self.status_code
        if self.kind == "database":
            _BUSINESS.record_database_operation(
                self.attributes["operation"], self.attributes["table"], duration_ms
            )
        else:
            # A call that raised before any answer has no status: it counts as failed.
            _BUSINESS.record_external_api_call(
                self.attributes["service"], self.attributes["endpoint"], status, duration_ms
            )
            if span is not None and status is not None:
                if is_streamed(span):
                    span.set_attribute("http.response.status_code", status)
                else:
                    span.set_data("http.response.status_code", status)
                    span.set_http_status(status)
        if span is not None and is_streamed(span):
            if exc is not None or (status is not None and status >= 400):  # noqa: PLR2004
                span.status = "error"
            end_span(span)
            self.span = None
            return
        if span is not None:
            if exc is not None and span.status is None:
                span.set_status("internal_error")
            elif span.status is None:
                span.set_status("ok")
            if self._entered:
                span.__exit__(None, None, None)
            else:
                span.finish()
            self.span = None

    # decorator ---------------------------------------------------------------------------

    def __call__(self, func: _F) -> _F:
        """Track every call of ``func`` (sync or async) as its own operation."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._copy():
                    return await func(*args, **kwargs)

            return cast("_F", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return cast("_F", wrapper)


class DatabaseTransactionTracker:
    """The database tracker; :func:`track_database_operation` uses one."""

    def track_database_operation(
        self, operation: str, table: str, query: str | None = None
    ) -> TrackedOperation:
        """Track one database operation (``op="db.query"``).

        Args:
            operation: What is done ("select", "insert", ...).
            table: The table or collection.
            query: The query text; cut to 500 characters. Queries may hold values: the
                cog's scrubber removes e-mails and the run's argument text from it.
        """
        data: dict[str, Any] = {"db.operation": operation, "db.collection.name": table}
        if query is not None:
            data["db.query"] = query[:MAX_QUERY_CHARS]
        return TrackedOperation(
            "database",
            "db.query",
            f"{operation} {table}",
            data,
            {"operation": operation, "table": table},
        )


_TRACKER = DatabaseTransactionTracker()


def track_database_operation(
    operation: str, table: str, query: str | None = None
) -> TrackedOperation:
    """Track a database operation: ``with``, ``async with`` or ``@decorator``.

    Example::

        async with track_database_operation("select", "warnings", query=sql):
            rows = await db.fetch(sql, user_id)
    """
    return _TRACKER.track_database_operation(operation, table, query)


def track_external_api_call(service: str, endpoint: str) -> TrackedOperation:
    """Track a call to another service (``op="http.client"``).

    Call ``set_status_code(code)`` on the yielded handle once the answer is in::

        async with track_external_api_call("github", "/repos") as call:
            response = await session.get(url)
            call.set_status_code(response.status)
    """
    return TrackedOperation(
        "external_api",
        "http.client",
        f"{service} {endpoint}",
        {"service": service, "endpoint": endpoint},
        {"service": service, "endpoint": endpoint},
    )
