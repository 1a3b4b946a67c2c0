"""Metrics, recorded through the SDK's own API where the figure is measured.

:class:`MetricsRecorder` calls ``sentry_sdk.metrics.count / gauge / distribution`` at
once, in the task that measured the figure: inside a command run, so each item carries
the time it was recorded and the run's trace id (the SDK stamps both at the call), and
Sentry links the metric to the command's transaction. Every value is sent: counts are
exact, no distribution is sampled, and nothing waits in a buffer of ours for a crash to
lose. The SDK batches the items in its own thread (every few seconds, or at 1,000) and
sends them with its transport; the cog never flushes the owner's client for them and
touches no process-wide state.

The cost is the SDK's, ~10-15 µs per call on the benchmark machine, three calls per
command; ``benchmarks/bench_commands.py`` keeps it inside the overhead budget and
``benchmarks/bench_load.py`` shows what it does to the event loop under load.

With Sentry inactive (local mode) a recording is one attribute check and nothing more.
A value that is not a finite number (NaN, infinity) is not sent: it would serialise as
invalid JSON and could cost Sentry the whole batch it rides in.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import sentry_sdk.metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["STRUCTURAL", "MetricsRecorder", "SlidingWindowCounter"]

#: Attribute key marking a metric whose attributes the cog built from names and
#: statuses only (no text of the bot's or a user's): the cog's ``before_send_metric``
#: removes it and skips scrubbing that metric's attributes. Never sent.
STRUCTURAL = "tux_sentry_cog.structural"

_log = logging.getLogger(__name__)


class MetricsRecorder:
    """Records the cog's metrics through ``sentry_sdk.metrics``, with the cog's prefix.

    Names are given without the prefix (``"commands.executed"``).

    Args:
        prefix: Prepended with a dot to every name (``"tux"``); empty for none.
        active: Asked at each recording; nothing is sent while it returns ``False``.

    Attributes:
        recorded: Items handed to the SDK.
        skipped: Non-finite values not sent.
        failures: Recordings the SDK raised on (logged once, then counted).
    """

    __slots__ = ("_active", "_head", "failures", "recorded", "skipped")

    def __init__(self, prefix: str, active: Callable[[], bool]) -> None:
        """Bind to a prefix and to the question "is Sentry active?"."""
        self._head = f"{prefix}." if prefix else ""
        self._active = active
        self.recorded = 0
        self.skipped = 0
        self.failures = 0

    def count(
        self, name: str, value: float = 1.0, attributes: Mapping[str, str] | None = None
    ) -> None:
        """Add ``value`` to the counter ``name``."""
        self._send(sentry_sdk.metrics.count, name, value, None, attributes)

    def gauge(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Set the gauge ``name`` to ``value``."""
        self._send(sentry_sdk.metrics.gauge, name, value, unit, attributes)

    def distribution(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Record one value of the distribution ``name``."""
        self._send(sentry_sdk.metrics.distribution, name, value, unit, attributes)

    def _send(
        self,
        call: Callable[..., None],
        name: str,
        value: float,
        unit: str | None,
        attributes: Mapping[str, str] | None,
    ) -> None:
        if not self._active():
            return
        try:
            number = float(value)
            if not math.isfinite(number):
                self.skipped += 1
                return
            call(self._head + name, number, unit=unit, attributes=_plain(attributes))
        except Exception:
            # The instrumentation must never break the command that recorded the metric.
            self.failures += 1
            if self.failures == 1:
                _log.warning("tux_sentry_cog could not record metric %r", name, exc_info=True)
            return
        self.recorded += 1


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return attributes if isinstance(attributes, dict) else dict(attributes)


class SlidingWindowCounter:
    """Events counted in fixed time buckets over a sliding window.

    Memory is bounded: at most ``window_seconds / bucket_seconds`` buckets are kept,
    older ones fall off as new ones are added. Used for ``errors.rate`` (errors per
    minute) and the status command's error rate over 1 and 5 minutes.

    Args:
        window_seconds: The longest span :meth:`total` can look back over.
        bucket_seconds: Bucket width; totals are exact to one bucket.
        clock: Monotonic seconds; injectable for tests.

    Raises:
        ValueError: If the window or bucket is not positive, or the bucket is wider
            than the window.
    """

    __slots__ = ("_bucket", "_buckets", "_clock", "_window")

    def __init__(
        self,
        window_seconds: float = 300,
        bucket_seconds: float = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty counter."""
        if window_seconds <= 0 or bucket_seconds <= 0 or bucket_seconds > window_seconds:
            raise ValueError("need 0 < bucket_seconds <= window_seconds")
        self._window = window_seconds
        self._bucket = bucket_seconds
        self._clock = clock
        # [bucket index, count] pairs, oldest first.
        self._buckets: deque[list[int]] = deque(maxlen=math.ceil(window_seconds / bucket_seconds))

    @property
    def window_seconds(self) -> float:
        """The longest span the counter remembers."""
        return self._window

    def add(self, n: int = 1) -> None:
        """Count ``n`` events now."""
        index = int(self._clock() // self._bucket)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= index:
            # Same bucket (or a clock that stepped back): add to the newest one.
            buckets[-1][1] += n
        else:
            buckets.append([index, n])

    def total(self, last_seconds: float | None = None) -> int:
        """Events in the last ``last_seconds`` (the whole window when ``None``).

        The current, partly elapsed bucket counts as one of them, so the span covered is
        between ``last_seconds - bucket_seconds`` and ``last_seconds``. Spans longer than
        the window are cut to it.
        """
        span = self._window if last_seconds is None else min(last_seconds, self._window)
        if span <= 0:
            return 0
        now = int(self._clock() // self._bucket)
        oldest = now - math.ceil(span / self._bucket) + 1
        total = 0
        for index, count in reversed(self._buckets):
            if index < oldest:
                break
            total += count
        return total

    def rate_per_minute(self, last_seconds: float | None = None) -> float:
        """Events per minute over the last ``last_seconds`` (the whole window if ``None``)."""
        span = self._window if last_seconds is None else min(last_seconds, self._window)
        if span <= 0:
            return 0.0
        return self.total(span) * 60.0 / span
