"""Span streaming (``sentry_sdk.init(trace_lifecycle="stream")``): runs as streamed spans.

In that mode ``start_transaction`` returns spans that are never sent, so a run's trace
goes through ``sentry_sdk.traces.start_span`` instead: the run is a root span (a
segment) with the transaction's name, ``sentry.op``, the cog's tags as attributes and
its status; the tracked operations are its children. Streamed spans know two statuses,
``ok`` and ``error``; the transaction's finer status (``cancelled``,
``permission_denied``...) is kept in the ``command.status`` attribute.

SDKs without ``sentry_sdk.traces`` (before span streaming) never stream.
"""

from __future__ import annotations

import importlib
from typing import Any

import sentry_sdk

_traces: Any
try:
    _traces = importlib.import_module("sentry_sdk.traces")
except ImportError:  # an SDK from before span streaming
    _traces = None

__all__ = ["end_span", "is_streamed", "set_outcome", "start_streamed_span", "streaming"]

#: The attribute holding a run's status as a transaction would have it.
STATUS_ATTRIBUTE = "command.status"


def streaming(options: dict[str, Any] | None = None) -> bool:
    """True when the active client streams spans (``trace_lifecycle="stream"``)."""
    if _traces is None:
        return False
    if options is None:
        options = sentry_sdk.get_client().options
    lifecycle = options.get("trace_lifecycle")
    if lifecycle is None:
        lifecycle = (options.get("_experiments") or {}).get("trace_lifecycle")
    return lifecycle == "stream"


def is_streamed(span: Any) -> bool:
    """True for a span of span streaming (it has attributes, not tags and data)."""
    return _traces is not None and isinstance(span, _traces.StreamedSpan)


def start_streamed_span(
    name: str, op: str, attributes: dict[str, Any], parent: Any = None, *, active: bool
) -> Any:
    """Start a streamed span (a no-op one when the SDK decided not to sample it).

    ``parent`` ``None`` means the current span, if any (a run's own span: the root of
    its tree unless the bot started one itself). An unsampled run keeps its no-op span
    current, so what starts inside it is not sampled on its own either.
    """
    assert _traces is not None  # noqa: S101 - callers check streaming() first
    merged = {"sentry.op": op, **attributes}
    if parent is None:
        span = _traces.start_span(name=name, attributes=merged, active=active)
    else:
        span = _traces.start_span(name=name, attributes=merged, parent_span=parent, active=active)
    return span


def set_outcome(span: Any, status: str) -> None:
    """Give a streamed span a transaction's ``status``, as ``ok``/``error`` plus the detail."""
    span.status = "ok" if status == "ok" else "error"
    span.set_attribute(STATUS_ATTRIBUTE, status)


def end_span(span: Any) -> None:
    """End a streamed span (it is queued for sending)."""
    span.end()
