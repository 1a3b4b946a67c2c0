"""Metrics buffered in-process and sent to Sentry in chunks, off the hot path.

``sentry_sdk.metrics.count`` costs ~10-15 µs per call (NOTES.md) and a busy bot records
a handful of metrics per command. :class:`MetricsBuffer` takes the recording instead:
counts are summed, gauges keep their last value and distributions keep a bounded
sample, all keyed by ``(name, attributes)``. The cog's flush loop calls
:meth:`MetricsBuffer.drain` every flush interval and hands the batch to :func:`emit`,
which calls the SDK in small chunks so the event loop keeps running between them.

Bounds, so a bug or a flood cannot grow memory:

- at most ``max_keys`` series (all kinds together) per interval; a new series beyond
  that is dropped and counted in :attr:`MetricsBuffer.stats`;
- at most ``max_values_per_key`` kept values per distribution series per interval;
  beyond that the kept values are a uniform reservoir sample of everything recorded
  (Algorithm R), while count, sum, min and max stay exact.

So one flush sends at most ``max_keys * max_values_per_key`` items, and never more
items than were recorded: buffering never costs more SDK calls than calling it inline.
A buffer full at the defaults is ~500,000 items, about a minute of SDK work; a bot
that gets near that wants a smaller ``max_values_per_key``.

What Sentry sees: every metric carries the time :func:`emit` sent it and the trace of
the task that runs the flush, not those of the command that recorded it. Time
resolution in Sentry is therefore the flush interval.

Keys and attribute order: the key of a series is the name followed by the attribute
keys and then their values, in the mapping's iteration order, so that no sorting is
done on the hot path. ``{"a": "1", "b": "2"}`` and ``{"b": "2", "a": "1"}`` are two
series. Callers build their attribute dicts in one fixed order (a literal in one place
per metric), which is what the cog does.

Threads: recording is meant for the event-loop thread. A call from another thread does
not corrupt the buffer (every step is a single dict, array or attribute operation under
the GIL), but an update racing another one on the same series, or racing
:meth:`MetricsBuffer.drain`, may be lost. The buffer takes no lock: uncontended it
would add a sizeable part of the cost of a recording, for metrics that tolerate a rare
lost update.

Sampled distributions: Sentry receives only the kept values, so for a series that hit
the cap within one interval, Sentry's count and sum for that interval are those of the
sample. The exact figures stay available locally on :class:`Distribution`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import time
from array import array
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeAlias

import sentry_sdk.metrics

from tux_sentry_cog.core.client import flush_off_loop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping

__all__ = [
    "DEFAULT_MAX_KEYS",
    "DEFAULT_MAX_VALUES_PER_KEY",
    "GC_PAUSE_LIMIT",
    "HANDOFF_ITEMS",
    "Distribution",
    "MetricKey",
    "MetricKind",
    "MetricPoint",
    "MetricsBatch",
    "MetricsBuffer",
    "MetricsSink",
    "MetricsStats",
    "SlidingWindowCounter",
    "emit",
    "hand_off",
    "split_key",
]

_log = logging.getLogger(__name__)

#: Series kept per interval, all kinds together.
DEFAULT_MAX_KEYS = 10_000
#: Values kept per distribution series per interval. At one flush a minute that is
#: enough for Sentry's percentiles, and bounds a flush of a hot command to 100 SDK calls.
DEFAULT_MAX_VALUES_PER_KEY = 100

#: Items :func:`emit` sends between two hand-offs to the transport. The SDK encodes a
#: metric in ~13 µs on the benchmark machine (each carries ~11 attributes), so a batch
#: of 100 holds the GIL ~1.3 ms where the SDK's own batch of 1,000 holds it 13 ms.
HANDOFF_ITEMS = 100

#: Longest time :func:`emit` keeps the cyclic garbage collector paused (seconds). A
#: busy bot's flush takes tens of milliseconds; a full buffer, the extreme, ~40 s.
GC_PAUSE_LIMIT = 60.0

#: ``(name, *attribute_keys, *attribute_values)``: flat, so building it allocates one
#: tuple, and unambiguous because its length is always ``1 + 2 * len(attributes)``.
MetricKey: TypeAlias = tuple[str, ...]

MetricKind: TypeAlias = Literal["count", "gauge", "distribution"]


def split_key(key: MetricKey) -> tuple[str, dict[str, str]]:
    """Return the name and the attributes of a series key.

    Args:
        key: A key of :attr:`MetricsBatch.counts`, ``gauges`` or ``distributions``.

    Returns:
        The metric name (without prefix) and a new attributes dict, in recorded order.
    """
    half = (len(key) - 1) // 2
    return key[0], dict(zip(key[1 : 1 + half], key[1 + half :], strict=True))


class Distribution:
    """One distribution series within one interval: exact summary and kept values.

    While every value is kept, the summary is computed from :attr:`values` when read;
    from the first value beyond the cap on, running figures are kept instead. That keeps
    the common case (a series under its cap) at one ``append`` per recording.

    Attributes:
        unit: The unit given when the series was first recorded in the interval.
        values: The kept values: all of them up to the cap, a uniform sample beyond.
    """

    __slots__ = ("_count", "_max", "_min", "_total", "unit", "values")

    def __init__(self, unit: str | None) -> None:
        """Start an empty series."""
        self.unit = unit
        self.values = array("d")
        # Running figures; _count stays 0 while every value is kept in ``values``.
        self._count = 0
        self._total = 0.0
        self._min = math.inf
        self._max = -math.inf

    def _add_beyond_cap(self, value: float, cap: int, random01: Callable[[], float]) -> None:
        """Take a value when ``cap`` values are kept already (the buffer's slow path)."""
        values = self.values
        seen = self._count
        if not seen:
            # First value beyond the cap: the kept values are still every value recorded,
            # so the running figures start from them.
            seen = len(values)
            self._total = math.fsum(values)
            self._min = min(values, default=math.inf)
            self._max = max(values, default=-math.inf)
        self._total += value  # first: a non-number raises before anything changes
        seen += 1
        self._count = seen
        if value < self._min:  # noqa: PLR1730 - a compare is cheaper than min() per value
            self._min = value
        if value > self._max:  # noqa: PLR1730
            self._max = value
        # Algorithm R: the seen-th value replaces a kept one with probability cap / seen,
        # so the kept values stay a uniform sample of every value recorded.
        slot = int(random01() * seen)
        if slot < cap:
            values[slot] = value

    @property
    def count(self) -> int:
        """How many values were recorded (exact)."""
        return self._count or len(self.values)

    @property
    def total(self) -> float:
        """The sum of every value recorded (exact)."""
        return self._total if self._count else math.fsum(self.values)

    @property
    def min(self) -> float:
        """The smallest value recorded (exact)."""
        return self._min if self._count else min(self.values, default=math.nan)

    @property
    def max(self) -> float:
        """The largest value recorded (exact)."""
        return self._max if self._count else max(self.values, default=math.nan)

    @property
    def mean(self) -> float:
        """The exact mean of every value recorded."""
        count = self.count
        return self.total / count if count else math.nan

    @property
    def sampled(self) -> bool:
        """Whether more values were recorded than kept."""
        return self.count > len(self.values)

    def __repr__(self) -> str:
        """Summary figures, not the values."""
        return (
            f"Distribution(count={self.count}, total={self.total}, min={self.min}, "
            f"max={self.max}, kept={len(self.values)}, unit={self.unit!r})"
        )


class MetricPoint(NamedTuple):
    """One item :func:`emit` sends: one SDK call."""

    kind: MetricKind
    name: str
    value: float
    unit: str | None
    attributes: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class MetricsBatch:
    """What one interval recorded, handed over by :meth:`MetricsBuffer.drain`.

    The mappings are the buffer's own, swapped out: nothing records into them any
    more, and nothing should write to them.

    Attributes:
        counts: Sum per count series.
        gauges: Last value per gauge series.
        gauge_units: Unit per gauge series (the one given first in the interval).
        distributions: Summary and kept values per distribution series.
        recorded: Recordings taken into the batch.
        dropped: Recordings refused because the buffer held ``max_keys`` series.
        started: ``time.monotonic()`` when the interval began.
        ended: ``time.monotonic()`` when it was drained.
    """

    counts: Mapping[MetricKey, float]
    gauges: Mapping[MetricKey, float]
    gauge_units: Mapping[MetricKey, str | None]
    distributions: Mapping[MetricKey, Distribution]
    recorded: int
    dropped: int
    started: float
    ended: float

    @property
    def keys(self) -> int:
        """Number of series in the batch."""
        return len(self.counts) + len(self.gauges) + len(self.distributions)

    def __len__(self) -> int:
        """Number of items :func:`emit` would send (kept distribution values count each)."""
        return (
            len(self.counts)
            + len(self.gauges)
            + sum(len(d.values) for d in self.distributions.values())
        )

    def points(self) -> Iterator[MetricPoint]:
        """Every item to send: counts, then gauges, then each kept distribution value.

        Attribute dicts are built once per series and shared by its points; treat them
        as read-only.
        """
        # Snapshots (list(...)) so a straggling write from another thread cannot make
        # the iteration fail with "dictionary changed size".
        for key, total in list(self.counts.items()):
            name, attributes = split_key(key)
            yield MetricPoint("count", name, total, None, attributes or None)
        units = self.gauge_units
        for key, last in list(self.gauges.items()):
            name, attributes = split_key(key)
            yield MetricPoint("gauge", name, last, units.get(key), attributes or None)
        for key, dist in list(self.distributions.items()):
            name, attributes = split_key(key)
            for value in dist.values:
                yield MetricPoint("distribution", name, value, dist.unit, attributes or None)


@dataclass(frozen=True, slots=True)
class MetricsStats:
    """Counters of a :class:`MetricsBuffer`.

    Attributes:
        recorded: Recordings taken since the buffer was created.
        dropped: Recordings refused (buffer full) since the buffer was created.
        keys: Series held in the current interval.
        max_keys: The bound on ``keys``.
        interval_recorded: Recordings taken in the current interval.
        interval_dropped: Recordings refused in the current interval.
        drains: How many times the buffer was drained.
    """

    recorded: int
    dropped: int
    keys: int
    max_keys: int
    interval_recorded: int
    interval_dropped: int
    drains: int


class MetricsBuffer:
    """A bounded in-process buffer that metrics are recorded into on the hot path.

    Names are given without the prefix (``"commands.executed"``); :func:`emit` adds it.
    See the module docstring for keys, bounds and threads.

    Args:
        max_keys: Most series (counts, gauges and distributions together) per interval.
        max_values_per_key: Most kept values per distribution series per interval.
        rng: Source of randomness for reservoir sampling; give a seeded one in tests.

    Raises:
        ValueError: If a bound is negative.
    """

    __slots__ = (
        "_counts",
        "_dists",
        "_drains",
        "_dropped",
        "_gauge_units",
        "_gauges",
        "_keys",
        "_max_keys",
        "_max_values",
        "_random",
        "_recorded",
        "_started",
        "_total_dropped",
        "_total_recorded",
    )

    def __init__(
        self,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_values_per_key: int = DEFAULT_MAX_VALUES_PER_KEY,
        rng: random.Random | None = None,
    ) -> None:
        """Create an empty buffer."""
        if max_keys < 0 or max_values_per_key < 0:
            raise ValueError("max_keys and max_values_per_key must not be negative")
        self._max_keys = max_keys
        self._max_values = max_values_per_key
        # Bound method looked up once: the reservoir path calls it per value.
        self._random = (rng or random.Random()).random
        self._counts: dict[MetricKey, float] = {}
        self._gauges: dict[MetricKey, float] = {}
        self._gauge_units: dict[MetricKey, str | None] = {}
        self._dists: dict[MetricKey, Distribution] = {}
        self._keys = 0
        self._recorded = 0
        self._dropped = 0
        self._total_recorded = 0
        self._total_dropped = 0
        self._drains = 0
        self._started = time.monotonic()

    # recording (hot path) ---------------------------------------------------------------
    #
    # Each method builds the key inline, does one dict lookup and one store. No sorting,
    # no locks, no calls that can be avoided: this runs several times per command.

    def count(
        self, name: str, value: float = 1.0, attributes: Mapping[str, str] | None = None
    ) -> None:
        """Add ``value`` to the count series ``(name, attributes)``.

        Args:
            name: Metric name without prefix.
            value: Amount to add.
            attributes: Attribute values; their order is part of the key.
        """
        key = (name, *attributes, *attributes.values()) if attributes else (name,)
        counts = self._counts
        try:
            old = counts.get(key)
            if old is None:
                if self._keys >= self._max_keys:
                    self._drop(name)
                    return
                counts[key] = value + 0.0  # a non-number fails here, before the key is kept
                self._keys += 1
            else:
                counts[key] = old + value
        except TypeError:
            self._record_odd("count", name, value, None, attributes)
            return
        self._recorded += 1

    def gauge(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Set the gauge series ``(name, attributes)`` to ``value`` (last one wins).

        Args:
            name: Metric name without prefix.
            value: Current value.
            unit: Unit (``"mebibyte"``, ``"percent"``, ``"millisecond"``); the first
                one given in an interval is kept for the series.
            attributes: Attribute values; their order is part of the key.
        """
        key = (name, *attributes, *attributes.values()) if attributes else (name,)
        gauges = self._gauges
        try:
            if key not in gauges:
                if self._keys >= self._max_keys:
                    self._drop(name)
                    return
                gauges[key] = value + 0.0
                self._gauge_units[key] = unit
                self._keys += 1
            else:
                gauges[key] = value + 0.0
        except TypeError:
            self._record_odd("gauge", name, value, unit, attributes)
            return
        self._recorded += 1

    def distribution(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """Add ``value`` to the distribution series ``(name, attributes)``.

        Args:
            name: Metric name without prefix.
            value: The observation (a duration in milliseconds, say).
            unit: Unit; the first one given in an interval is kept for the series.
            attributes: Attribute values; their order is part of the key.
        """
        key = (name, *attributes, *attributes.values()) if attributes else (name,)
        try:
            dist = self._dists.get(key)
            if dist is None:
                if self._keys >= self._max_keys:
                    self._drop(name)
                    return
                # A non-number fails here, before the key is kept.
                value + 0.0
                dist = self._dists[key] = Distribution(unit)
                self._keys += 1
            values = dist.values
            if len(values) < self._max_values:
                values.append(value)  # a non-number fails here (array of doubles)
            else:
                dist._add_beyond_cap(value, self._max_values, self._random)  # noqa: SLF001
        except TypeError:
            self._record_odd("distribution", name, value, unit, attributes)
            return
        self._recorded += 1

    def _drop(self, name: str) -> None:
        if not self._dropped:
            # Once per interval: a full buffer is worth a line, not one per recording.
            _log.warning(
                "metrics buffer holds %d series; new series (first: %r) are dropped "
                "until the next flush",
                self._max_keys,
                name,
            )
        self._dropped += 1

    def _record_odd(
        self,
        kind: MetricKind,
        name: str,
        value: object,
        unit: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        """Retry a recording that raised TypeError, with strings and a float.

        Unhashable attribute values or a value that is not a number land here; the
        instrumentation must never break the command that recorded the metric.
        """
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            _log.debug("metric %r: value %r is not a number; dropped", name, value)
            self._dropped += 1
            return
        clean = {str(k): str(v) for k, v in attributes.items()} if attributes else None
        if kind == "count":
            self.count(name, number, clean)
        elif kind == "gauge":
            self.gauge(name, number, unit, clean)
        else:
            self.distribution(name, number, unit, clean)

    # handing over -----------------------------------------------------------------------

    def drain(self) -> MetricsBatch:
        """Swap the buffer out and return what it aggregated; the buffer starts empty.

        O(1): the dicts are handed over, not copied.
        """
        now = time.monotonic()
        batch = MetricsBatch(
            counts=self._counts,
            gauges=self._gauges,
            gauge_units=self._gauge_units,
            distributions=self._dists,
            recorded=self._recorded,
            dropped=self._dropped,
            started=self._started,
            ended=now,
        )
        self._counts = {}
        self._gauges = {}
        self._gauge_units = {}
        self._dists = {}
        self._keys = 0
        self._total_recorded += self._recorded
        self._total_dropped += self._dropped
        self._recorded = 0
        self._dropped = 0
        self._drains += 1
        self._started = now
        return batch

    @property
    def stats(self) -> MetricsStats:
        """Recorded and dropped counters, lifetime and current interval."""
        return MetricsStats(
            recorded=self._total_recorded + self._recorded,
            dropped=self._total_dropped + self._dropped,
            keys=self._keys,
            max_keys=self._max_keys,
            interval_recorded=self._recorded,
            interval_dropped=self._dropped,
            drains=self._drains,
        )

    def __len__(self) -> int:
        """Number of series currently held."""
        return self._keys


class MetricsSink(Protocol):
    """Where :func:`emit` sends: the ``sentry_sdk.metrics`` module has this shape."""

    def count(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Send a counter increment."""

    def gauge(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Send a gauge value."""

    def distribution(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Send one distribution value."""


async def hand_off(client: Any, wait_seconds: float) -> bool:
    """Let the SDK send what :func:`emit` queued so far, off the event loop.

    Left alone, the SDK would wait for 1,000 metrics and encode them in one call that
    holds the GIL (13-19 ms on the benchmark machine); handed off every
    :data:`HANDOFF_ITEMS` they take ~1.5 ms each. The thread waits for the transport,
    so this is also backpressure: emit never queues faster than Sentry takes.

    Returns:
        ``False`` when the transport did not drain within ``wait_seconds`` or the flush
        failed: emit then sends the rest unpaced.
    """
    started = time.monotonic()
    try:
        await flush_off_loop(client, wait_seconds)
    except Exception:
        _log.exception("metrics emit: could not hand metrics to the transport")
        return False
    return time.monotonic() - started < wait_seconds


class _Pacer:
    """When :func:`emit` yields to the event loop, and when it hands off to the transport."""

    __slots__ = ("_budget", "_chunk_size", "_every", "_gc_until", "_handoff", "_in_chunk",
                 "_started", "sent")

    def __init__(
        self,
        chunk_size: int,
        chunk_seconds: float | None,
        handoff: Callable[[], Awaitable[bool]] | None,
        every: int,
    ) -> None:
        self._chunk_size = chunk_size
        self._budget = math.inf if chunk_seconds is None else chunk_seconds
        self._handoff = handoff
        self._every = every
        self._in_chunk = 0
        self._started = time.perf_counter()
        #: When the collector pause ends (perf_counter); None while the collector runs.
        self._gc_until: float | None = None
        #: Items sent since the last hand-off.
        self.sent = 0

    def pause_gc(self) -> None:
        """Take over garbage collection until :meth:`resume_gc` or the pause limit.

        A collection of the oldest generation walks every object of the process (20-36
        ms on the benchmark machine for a process the size of a small bot), and the
        SDK's objects for the metrics in flight are what sets such collections off
        during an emit: waiting in the transport's queue, they outlive two young
        collections and get promoted. So the collector's automatic runs are paused and
        the youngest generation is collected by hand right after each hand-off, when
        the transport has sent what was in flight: young cycles (a failed send's
        exceptions, say) are freed as before, nothing of ours is promoted to the oldest
        generation, and no collection of the whole heap is due because of the emit.
        Only cycles among old objects wait, for at most :data:`GC_PAUSE_LIMIT`. A
        collector someone else turned off is left as it is.
        """
        if gc.isenabled():
            gc.disable()
            self._gc_until = time.perf_counter() + GC_PAUSE_LIMIT

    def resume_gc(self) -> None:
        """End the pause :meth:`pause_gc` began, if it is still on."""
        if self._gc_until is not None:
            self._gc_until = None
            gc.enable()

    async def before_call(self) -> None:
        if self.sent >= self._every and (
            self._handoff is not None or self._gc_until is not None
        ):
            self.sent = 0
            if self._handoff is not None and not await self._handoff():
                self._handoff = None  # the transport is behind: stop waiting for it
            if self._gc_until is not None:
                if time.perf_counter() < self._gc_until:
                    # Generation 0 only: what was allocated since the last hand-off. Its
                    # survivors go to generation 1, so no survivor counts towards a
                    # collection of the whole heap (a collection of 1 would).
                    gc.collect(0)
                else:
                    self.resume_gc()
            if self._handoff is None:
                await asyncio.sleep(0)
        elif (
            self._in_chunk >= self._chunk_size
            or time.perf_counter() - self._started >= self._budget
        ):
            await asyncio.sleep(0)
        else:
            self._in_chunk += 1
            return
        self._in_chunk = 1
        self._started = time.perf_counter()

    async def finish(self) -> None:
        if self._handoff is not None and self.sent:
            await self._handoff()


async def emit(
    batch: MetricsBatch,
    prefix: str,
    sink: MetricsSink | None = None,
    *,
    chunk_size: int = 250,
    chunk_seconds: float | None = 0.001,
    handoff: Callable[[], Awaitable[bool]] | None = None,
    handoff_every: int = HANDOFF_ITEMS,
    pause_gc: bool = False,
) -> int:
    """Send every item of ``batch`` to ``sink``, yielding to the event loop between chunks.

    A chunk ends after ``chunk_size`` sink calls or ``chunk_seconds``, whichever comes
    first; then ``await asyncio.sleep(0)`` lets other tasks run.

    With the real SDK the calls are only half of it. The SDK queues metrics and, at
    1,000, its flusher thread JSON-encodes them in one C call that holds the GIL (13 ms
    on the benchmark machine, 19 ms measured as an event-loop stall): no chunking on
    our side helps with that. ``handoff`` is awaited after every ``handoff_every``
    items and at the end, to hand what the SDK queued to its transport while the batch
    is still small (the cog flushes the client in a worker thread), so no single
    encoding is long enough to stall the loop. When it returns ``False`` (the transport
    is not keeping up), the rest of the batch goes without hand-offs and the SDK's own
    batching takes over.

    With ``pause_gc``, automatic garbage collection is paused while the batch is sent
    (at most :data:`GC_PAUSE_LIMIT`): without it, the SDK's objects in flight set off
    collections of the whole process's heap, each a stall of tens of milliseconds.

    A sink call that raises is skipped and the failure logged once for the whole emit;
    it never propagates. Non-finite values (NaN, infinity) are skipped. If the task is
    cancelled mid-way the rest of the batch is not sent.

    Args:
        batch: What :meth:`MetricsBuffer.drain` returned.
        prefix: Prepended to every name with a dot (``"tux"``); empty for none.
        sink: Receiver of the calls; ``sentry_sdk.metrics`` when not given.
        chunk_size: Most sink calls between two yields to the event loop.
        chunk_seconds: Longest time between two yields (checked after each call);
            ``None`` for no time limit.
        handoff: Awaited after every ``handoff_every`` items sent and after the last.
        handoff_every: Items between two hand-offs.
        pause_gc: Pause automatic garbage collection while sending (see above).

    Returns:
        The number of items the sink accepted (calls that did not raise).

    Raises:
        ValueError: If ``chunk_size`` or ``handoff_every`` is not positive, or
            ``chunk_seconds`` is negative.
    """
    if chunk_size <= 0 or handoff_every <= 0:
        raise ValueError("chunk_size and handoff_every must be positive")
    if chunk_seconds is not None and chunk_seconds < 0:
        raise ValueError("chunk_seconds must not be negative")
    target: MetricsSink = sentry_sdk.metrics if sink is None else sink
    calls = {
        "count": target.count,
        "gauge": target.gauge,
        "distribution": target.distribution,
    }
    head = f"{prefix}." if prefix else ""
    isfinite = math.isfinite
    pacer = _Pacer(chunk_size, chunk_seconds, handoff, handoff_every)
    sent = failed = skipped = 0
    first_error: Exception | None = None
    if pause_gc:
        pacer.pause_gc()
    try:
        for kind, name, value, unit, attributes in batch.points():
            if not isfinite(value):
                # NaN or infinity would serialise as invalid JSON and could cost Sentry
                # the whole envelope item, i.e. up to 1,000 good metrics with it.
                skipped += 1
                continue
            await pacer.before_call()
            try:
                calls[kind](head + name, value, unit=unit, attributes=attributes)
            except Exception as exc:  # a sink fault must not end the flush loop
                failed += 1
                first_error = first_error or exc
                continue
            sent += 1
            pacer.sent += 1
        await pacer.finish()
    finally:
        pacer.resume_gc()
        if first_error is not None or skipped:
            _log.warning(
                "metrics emit: sink failed on %d and %d non-finite values were skipped, "
                "of %d items",
                failed,
                skipped,
                failed + skipped + sent,
                exc_info=first_error,
            )
    return sent


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
