"""MetricsBuffer, emit and SlidingWindowCounter with plain values, plus one real-SDK run."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import random
import time
import tracemalloc
import weakref
from typing import Any

import pytest
import sentry_sdk

from tux_sentry_cog.core import metrics as metrics_module
from tux_sentry_cog.core.metrics import (
    MetricsBatch,
    MetricsBuffer,
    SlidingWindowCounter,
    emit,
    hand_off,
    split_key,
)
from tux_sentry_cog.testing import SentryEndpoint, reset_sentry_sdk

ATTRS = {"command_name": "ping", "command_type": "prefix", "status": "success"}


class RecordingSink:
    """Has the shape of ``sentry_sdk.metrics``; keeps every call."""

    def __init__(self, fail_on: set[str] | None = None, ticks: list[int] | None = None):
        self.calls: list[tuple[str, str, float, str | None, dict[str, Any] | None]] = []
        self.fail_on = fail_on or set()
        self.ticks = ticks  # a one-item list another task increments
        self.ticks_seen: list[int] = []

    def _record(self, kind: str, name: str, value: float, unit: Any, attributes: Any) -> None:
        if self.ticks is not None:
            self.ticks_seen.append(self.ticks[0])
        if kind in self.fail_on:
            raise RuntimeError(f"sink refuses {kind}")
        self.calls.append((kind, name, value, unit, attributes))

    def count(self, name, value, unit=None, attributes=None):
        self._record("count", name, value, unit, attributes)

    def gauge(self, name, value, unit=None, attributes=None):
        self._record("gauge", name, value, unit, attributes)

    def distribution(self, name, value, unit=None, attributes=None):
        self._record("distribution", name, value, unit, attributes)


def only(mapping):
    (item,) = mapping.items()
    return item


# counts, gauges, distributions ---------------------------------------------------------


def test_counts_sum_per_name_and_attributes():
    buf = MetricsBuffer()
    for _ in range(5):
        buf.count("commands.executed", attributes=ATTRS)
    buf.count("commands.executed", 2.5, attributes=ATTRS)
    buf.count("commands.executed", attributes={**ATTRS, "status": "error"})
    buf.count("user_activity")
    buf.count("user_activity", 3)

    batch = buf.drain()

    assert sorted(batch.counts.values()) == [1.0, 4.0, 7.5]
    key = ("commands.executed", *ATTRS, *ATTRS.values())
    assert batch.counts[key] == 7.5
    assert batch.counts[("user_activity",)] == 4.0
    assert split_key(key) == ("commands.executed", ATTRS)
    assert batch.recorded == 9
    assert batch.keys == 3


def test_attribute_order_is_part_of_the_key():
    # Documented: no sorting on the hot path; callers keep one order per metric.
    buf = MetricsBuffer()
    buf.count("x", attributes={"a": "1", "b": "2"})
    buf.count("x", attributes={"b": "2", "a": "1"})
    assert len(buf.drain().counts) == 2


def test_empty_attributes_are_the_same_series_as_none():
    buf = MetricsBuffer()
    buf.count("x")
    buf.count("x", attributes={})
    assert dict(buf.drain().counts) == {("x",): 2.0}


def test_gauges_keep_the_last_value_and_the_first_unit():
    buf = MetricsBuffer()
    buf.gauge("system.memory_usage", 100.0, unit="mebibyte")
    buf.gauge("system.memory_usage", 120.0, unit="mebibyte")
    buf.gauge("system.memory_usage", 110.5, unit="mebibyte")
    buf.gauge("gateway.latency", 40, unit="millisecond", attributes={"shard_id": "0"})
    buf.gauge("gateway.latency", 55, unit="millisecond", attributes={"shard_id": "1"})

    batch = buf.drain()

    assert batch.gauges[("system.memory_usage",)] == 110.5
    assert batch.gauge_units[("system.memory_usage",)] == "mebibyte"
    assert batch.gauges[("gateway.latency", "shard_id", "0")] == 40.0
    assert batch.gauges[("gateway.latency", "shard_id", "1")] == 55.0
    assert batch.keys == 3


def test_distribution_keeps_every_value_up_to_the_cap():
    buf = MetricsBuffer(max_values_per_key=10)
    values = [5.0, 1.0, 9.0, 3.0, 7.0]
    for v in values:
        buf.distribution("commands.duration", v, unit="millisecond", attributes=ATTRS)

    (_, dist) = only(buf.drain().distributions)

    assert list(dist.values) == values
    assert dist.count == 5
    assert dist.total == 25.0
    assert dist.min == 1.0
    assert dist.max == 9.0
    assert dist.mean == 5.0
    assert dist.unit == "millisecond"
    assert not dist.sampled


def test_distribution_beyond_the_cap_keeps_exact_summary_and_a_sample():
    buf = MetricsBuffer(max_values_per_key=50, rng=random.Random(1))
    values = [float(i) for i in range(1, 1001)]
    random.Random(2).shuffle(values)
    for v in values:
        buf.distribution("d", v)

    (_, dist) = only(buf.drain().distributions)

    assert dist.count == 1000
    assert dist.total == sum(values)
    assert dist.min == 1.0
    assert dist.max == 1000.0
    assert dist.sampled
    assert len(dist.values) == 50
    assert set(dist.values) <= set(values)
    assert len(set(dist.values)) == 50  # each recorded value kept at most once


def test_summary_is_exact_across_the_cap():
    buf = MetricsBuffer(max_values_per_key=3, rng=random.Random(6))
    for v in (4.0, -2.0, 8.0):  # exactly at the cap: summary from the kept values
        buf.distribution("d", v)
    (_, dist) = only(buf._dists)
    assert (dist.count, dist.total, dist.min, dist.max, dist.sampled) == (3, 10.0, -2.0, 8.0, False)
    buf.distribution("d", 1.0)  # beyond: running figures start from the kept values
    buf.distribution("d", -5.0)
    assert (dist.count, dist.total, dist.min, dist.max, dist.sampled) == (5, 6.0, -5.0, 8.0, True)
    assert dist.mean == pytest.approx(1.2)


def test_reservoir_stays_at_the_cap():
    buf = MetricsBuffer(max_values_per_key=100, rng=random.Random(3))
    for i in range(100_000):
        buf.distribution("d", float(i))
        if i in (99, 150, 5_000, 99_999):
            (_, dist) = only(buf._dists)
            assert len(dist.values) == 100
    assert buf.stats.interval_recorded == 100_000


def test_reservoir_is_a_uniform_sample():
    # Algorithm R: every recorded value is kept with the same probability, so each
    # tenth of the stream holds about a tenth of the sample (seeded: deterministic).
    buf = MetricsBuffer(max_values_per_key=1000, rng=random.Random(4))
    for i in range(20_000):
        buf.distribution("d", float(i))
    (_, dist) = only(buf.drain().distributions)
    per_tenth = [0] * 10
    for v in dist.values:
        per_tenth[int(v) // 2000] += 1
    assert all(70 <= n <= 130 for n in per_tenth), per_tenth


def test_no_values_kept_with_a_zero_cap_but_summary_is_exact():
    buf = MetricsBuffer(max_values_per_key=0)
    for v in (1.0, 2.0, 3.0):
        buf.distribution("d", v)
    (_, dist) = only(buf.drain().distributions)
    assert (dist.count, dist.total, dist.min, dist.max, len(dist.values)) == (3, 6.0, 1.0, 3.0, 0)


# bounds --------------------------------------------------------------------------------


def test_buffer_stays_bounded_under_many_distinct_names():
    buf = MetricsBuffer(max_keys=10_000, max_values_per_key=5)
    recordings = 100_000
    for i in range(recordings):
        name = f"metric.{i % 12_000}"  # 12,000 distinct names, more than the bound
        kind = i % 3
        if kind == 0:
            buf.count(name, attributes={"status": "ok"})
        elif kind == 1:
            buf.gauge(name, float(i))
        else:
            buf.distribution(name, float(i), unit="millisecond")

    stats = buf.stats
    assert len(buf) == stats.keys == 10_000
    assert stats.recorded + stats.dropped == recordings
    assert stats.dropped > 0
    batch = buf.drain()
    assert batch.keys == 10_000
    assert batch.dropped == stats.dropped
    assert all(len(d.values) <= 5 for d in batch.distributions.values())


def test_a_full_buffer_still_records_into_existing_series():
    buf = MetricsBuffer(max_keys=2)
    buf.count("a")
    buf.distribution("b", 1.0)
    buf.count("c")  # new series: dropped
    buf.count("a")
    buf.distribution("b", 2.0)
    stats = buf.stats
    assert (stats.recorded, stats.dropped, stats.keys) == (4, 1, 2)
    batch = buf.drain()
    assert dict(batch.counts) == {("a",): 2.0}
    assert batch.distributions[("b",)].count == 2


def test_the_bound_is_per_interval():
    buf = MetricsBuffer(max_keys=1)
    buf.count("a")
    buf.count("b")
    assert buf.drain().dropped == 1
    buf.count("b")
    batch = buf.drain()
    assert dict(batch.counts) == {("b",): 1.0}
    assert batch.dropped == 0
    stats = buf.stats
    assert (stats.recorded, stats.dropped, stats.drains, stats.interval_recorded) == (2, 1, 2, 0)


def test_a_full_buffer_warns_once_per_interval(caplog):
    buf = MetricsBuffer(max_keys=1)
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog.core.metrics"):
        for i in range(50):
            buf.count(f"n{i}")
        buf.drain()
        buf.count("x")
        buf.count("y")
    assert len(caplog.records) == 2


def test_memory_stays_flat_across_intervals():
    buf = MetricsBuffer()
    names = [f"cmd{i}" for i in range(50)]

    def interval():
        for i in range(20_000):
            attrs = {"command_name": names[i % 50], "status": "ok"}
            buf.count("commands.executed", attributes=attrs)
            buf.distribution("commands.duration", float(i % 997), "millisecond", attrs)
        return buf.drain()

    interval()
    gc.collect()
    tracemalloc.start()
    try:
        sizes = []
        for _ in range(5):
            batch = interval()
            del batch
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert max(sizes) - min(sizes) < 64 * 1024, sizes


def test_odd_values_never_raise():
    buf = MetricsBuffer()
    buf.count("a", attributes={"tags": ["x", "y"]})  # unhashable value: kept as a string
    buf.distribution("b", "not a number")  # dropped, counted
    buf.gauge("c", None)  # dropped, counted
    buf.count("d", "2")  # a numeric string still counts
    stats = buf.stats
    assert (stats.recorded, stats.dropped) == (2, 2)
    batch = buf.drain()
    assert batch.counts[("a", "tags", "['x', 'y']")] == 1.0
    assert batch.counts[("d",)] == 2.0


def test_bounds_must_not_be_negative():
    with pytest.raises(ValueError, match="negative"):
        MetricsBuffer(max_keys=-1)


# drain ---------------------------------------------------------------------------------


def test_drain_hands_over_and_leaves_an_empty_buffer():
    buf = MetricsBuffer()
    buf.count("a")
    buf.gauge("b", 1.0)
    buf.distribution("c", 1.0)
    batch = buf.drain()
    assert isinstance(batch, MetricsBatch)
    assert (len(batch.counts), len(batch.gauges), len(batch.distributions)) == (1, 1, 1)
    assert len(buf) == 0

    buf.count("a")  # records into the new interval, not into the handed-over batch
    assert dict(batch.counts) == {("a",): 1.0}
    empty = buf.drain()
    assert dict(empty.counts) == {("a",): 1.0}
    assert len(buf.drain()) == 0
    assert empty.started >= batch.ended


# emit ----------------------------------------------------------------------------------


def sample_batch() -> MetricsBatch:
    buf = MetricsBuffer()
    buf.count("commands.executed", attributes=ATTRS)
    buf.count("commands.executed", attributes=ATTRS)
    buf.gauge("system.cpu_usage", 12.5, unit="percent")
    buf.distribution("commands.duration", 10.0, "millisecond", {"command_name": "ping"})
    buf.distribution("commands.duration", 30.0, "millisecond", {"command_name": "ping"})
    return buf.drain()


async def test_emit_prefixes_names_and_passes_units_and_attributes():
    sink = RecordingSink()
    sent = await emit(sample_batch(), "tux", sink)
    assert sent == 4
    assert sink.calls == [
        ("count", "tux.commands.executed", 2.0, None, ATTRS),
        ("gauge", "tux.system.cpu_usage", 12.5, "percent", None),
        ("distribution", "tux.commands.duration", 10.0, "millisecond", {"command_name": "ping"}),
        ("distribution", "tux.commands.duration", 30.0, "millisecond", {"command_name": "ping"}),
    ]


async def test_emit_with_an_empty_prefix_sends_bare_names():
    sink = RecordingSink()
    await emit(sample_batch(), "", sink)
    assert {name for _, name, *_ in sink.calls} == {
        "commands.executed",
        "system.cpu_usage",
        "commands.duration",
    }


async def test_emit_sends_one_call_per_kept_value():
    buf = MetricsBuffer(max_values_per_key=20, rng=random.Random(5))
    for i in range(500):
        buf.distribution("d", float(i), "millisecond")
    batch = buf.drain()
    sink = RecordingSink()
    assert await emit(batch, "p", sink) == len(batch) == 20
    assert all(call[0] == "distribution" for call in sink.calls)


async def test_emit_yields_to_the_event_loop_between_chunks():
    buf = MetricsBuffer()
    for i in range(2_000):
        buf.count(f"n{i}")
    batch = buf.drain()
    ticks = [0]
    sink = RecordingSink(ticks=ticks)
    running = True

    async def other_task():
        while running:
            ticks[0] += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    await asyncio.sleep(0)  # let it start
    start = ticks[0]
    try:
        # No time limit and no hand-offs: chunks are exactly 250 calls.
        sent = await emit(batch, "tux", sink, chunk_size=250, chunk_seconds=None)
    finally:
        running = False
        await task

    assert sent == 2_000
    ran_during_emit = ticks[0] - start
    assert ran_during_emit >= 7  # 8 chunks: at least one turn between each two
    seen = sink.ticks_seen
    # Inside a chunk nothing else runs; between chunks the other task did.
    for chunk_start in range(0, 2_000, 250):
        chunk = seen[chunk_start : chunk_start + 250]
        assert len(set(chunk)) == 1
    assert len(set(seen)) == 8


async def test_emit_ends_a_chunk_when_its_time_is_up():
    ticks = [0]
    clock_sink = RecordingSink(ticks=ticks)
    slow = clock_sink.count

    def count(name, value, unit=None, attributes=None):
        time.sleep(0.002)  # an SDK call slowed by its flusher thread, say
        slow(name, value, unit, attributes)

    clock_sink.count = count
    buf = MetricsBuffer()
    for i in range(20):
        buf.count(f"n{i}")

    async def other_task():
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    try:
        sent = await emit(buf.drain(), "tux", clock_sink, chunk_size=250, chunk_seconds=0.005)
    finally:
        task.cancel()
    assert sent == 20
    # 2 ms per call, 5 ms per chunk: at most 3 calls between two turns of the other task.
    runs = [clock_sink.ticks_seen.count(t) for t in sorted(set(clock_sink.ticks_seen))]
    assert max(runs) <= 3, runs
    assert len(runs) >= 7


async def test_emit_hands_off_every_so_many_items_and_at_the_end():
    buf = MetricsBuffer()
    for i in range(1_050):
        buf.count(f"n{i}")
    sink = RecordingSink()
    seen_at: list[int] = []

    async def handoff() -> bool:
        seen_at.append(len(sink.calls))
        return True

    sent = await emit(buf.drain(), "tux", sink, chunk_size=40, handoff=handoff, handoff_every=300)
    assert sent == 1_050
    assert seen_at == [300, 600, 900, 1_050]


async def test_emit_stops_handing_off_once_the_transport_falls_behind():
    buf = MetricsBuffer()
    for i in range(1_000):
        buf.count(f"n{i}")
    answers = iter([True, False])
    calls: list[int] = []
    sink = RecordingSink()

    async def handoff() -> bool:
        calls.append(len(sink.calls))
        return next(answers)

    assert await emit(buf.drain(), "tux", sink, handoff=handoff, handoff_every=200) == 1_000
    assert calls == [200, 400]  # nothing after the False, not even at the end


class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


class CollectorSink(RecordingSink):
    """Notes, per call, whether automatic collection is on; makes a cycle at call 50."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled: list[bool] = []
        self.cycle: weakref.ref[_Cycle] | None = None

    def _record(self, kind: str, name: str, value: float, unit: Any, attributes: Any) -> None:
        self.enabled.append(gc.isenabled())
        if len(self.calls) == 50:
            self.cycle = weakref.ref(_Cycle())
        super()._record(kind, name, value, unit, attributes)


@pytest.fixture
def collector_on():
    """Automatic collection on for the test, whatever the runner had; restored after."""
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def _counts(n: int) -> MetricsBatch:
    buf = MetricsBuffer()
    for i in range(n):
        buf.count(f"n{i}")
    return buf.drain()


async def test_emit_pauses_the_collector_and_collects_the_young_at_each_hand_off(collector_on):
    sink = CollectorSink()
    alive_at_handoff: list[bool] = []

    async def handoff() -> bool:
        alive_at_handoff.append(sink.cycle is not None and sink.cycle() is not None)
        return True

    sent = await emit(_counts(300), "tux", sink, handoff=handoff, handoff_every=100, pause_gc=True)
    assert sent == 300
    assert not any(sink.enabled)  # paused for every call
    assert gc.isenabled()  # and on again after
    # The cycle made at call 50 is still there at the first hand-off (nothing collects
    # automatically) and gone by the second: the young generation was collected by hand.
    assert alive_at_handoff == [True, False, False]


async def test_emit_without_pause_gc_leaves_the_collector_alone(collector_on):
    sink = CollectorSink()
    await emit(_counts(100), "tux", sink)
    assert all(sink.enabled)


async def test_emit_leaves_a_collector_someone_turned_off_off(collector_on):
    gc.disable()
    sink = CollectorSink()
    await emit(_counts(300), "tux", sink, handoff_every=100, pause_gc=True)
    assert not gc.isenabled()
    assert sink.cycle is not None
    assert sink.cycle() is not None  # emit collected nothing


async def test_emit_resumes_the_collector_after_the_pause_limit(collector_on, monkeypatch):
    monkeypatch.setattr(metrics_module, "GC_PAUSE_LIMIT", 0.0)
    sink = CollectorSink()
    await emit(_counts(300), "tux", sink, handoff_every=100, pause_gc=True)
    # Paused from the start, on again from the first hand-off: the limit has passed.
    assert sink.enabled[:100] == [False] * 100
    assert all(sink.enabled[100:])


async def test_emit_resumes_the_collector_when_cancelled(collector_on):
    started = asyncio.Event()

    class Stalling(RecordingSink):
        def _record(self, *args: Any) -> None:
            started.set()
            super()._record(*args)

    async def handoff() -> bool:
        await asyncio.sleep(3600)  # a transport that never drains
        return True

    task = asyncio.create_task(
        emit(_counts(300), "tux", Stalling(), handoff=handoff, handoff_every=100, pause_gc=True)
    )
    await started.wait()
    assert not gc.isenabled()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gc.isenabled()


class SlowClient:
    """Stands in for a client whose transport takes ``seconds`` to drain (or raises)."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.waits: list[float] = []

    def flush(self, timeout: float | None = None) -> None:
        self.waits.append(timeout)
        if self.fail:
            raise OSError("transport gone")
        time.sleep(min(self.seconds, timeout or self.seconds))


async def test_hand_off_waits_off_the_loop_and_reports_a_transport_behind(caplog):
    loop = asyncio.get_running_loop()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    try:
        start = loop.time()
        # A transport that drains within the wait: keep pacing.
        assert await hand_off(SlowClient(seconds=0.05), 1.0) is True
        # One that needs longer than the wait: stop pacing.
        assert await hand_off(SlowClient(seconds=5.0), 0.2) is False
        elapsed = loop.time() - start
    finally:
        task.cancel()
    assert elapsed < 1.0  # the second wait ended at its 0.2 s, not at 5 s
    assert ticks >= 20  # the loop kept turning while the worker thread waited
    with caplog.at_level(logging.ERROR, logger="tux_sentry_cog.core.metrics"):
        failing = SlowClient(fail=True)
        assert await hand_off(failing, 1.0) is False
    assert failing.waits == [1.0]
    assert len(caplog.records) == 1


async def test_emit_survives_a_raising_sink_and_logs_once(caplog):
    sink = RecordingSink(fail_on={"count", "distribution"})
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog.core.metrics"):
        sent = await emit(sample_batch(), "tux", sink)
    assert sent == 1
    assert [c[0] for c in sink.calls] == ["gauge"]
    assert len(caplog.records) == 1
    assert "3" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None


async def test_emit_skips_non_finite_values(caplog):
    buf = MetricsBuffer()
    buf.gauge("g", math.nan)
    buf.distribution("d", math.inf)
    buf.distribution("d", 1.0)
    sink = RecordingSink()
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog.core.metrics"):
        assert await emit(buf.drain(), "tux", sink) == 1
    assert sink.calls == [("distribution", "tux.d", 1.0, None, None)]
    assert len(caplog.records) == 1


async def test_emit_rejects_bad_bounds():
    with pytest.raises(ValueError, match="chunk_size"):
        await emit(sample_batch(), "tux", RecordingSink(), chunk_size=0)
    with pytest.raises(ValueError, match="handoff_every"):
        await emit(sample_batch(), "tux", RecordingSink(), handoff_every=0)
    with pytest.raises(ValueError, match="negative"):
        await emit(sample_batch(), "tux", RecordingSink(), chunk_seconds=-1)


# SlidingWindowCounter ------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_window_counts_and_rates():
    clock = FakeClock()
    counter = SlidingWindowCounter(window_seconds=300, bucket_seconds=1, clock=clock)
    counter.add()
    counter.add(2)
    clock.now += 30
    counter.add(3)
    assert counter.total(60) == 6
    assert counter.total() == 6
    assert counter.rate_per_minute(60) == 6.0
    assert counter.rate_per_minute(300) == pytest.approx(6 * 60 / 300)
    assert counter.total(10) == 3  # the first three are 30 s old


def test_window_expiry():
    clock = FakeClock()
    counter = SlidingWindowCounter(window_seconds=300, bucket_seconds=1, clock=clock)
    counter.add(5)
    clock.now += 59
    assert counter.total(60) == 5
    clock.now += 1
    assert counter.total(60) == 0  # left the 1-minute span
    assert counter.total(300) == 5
    clock.now += 240
    assert counter.total(300) == 0  # left the window
    assert counter.rate_per_minute(300) == 0.0


def test_window_memory_is_bounded():
    clock = FakeClock()
    counter = SlidingWindowCounter(window_seconds=60, bucket_seconds=1, clock=clock)
    for _ in range(10_000):
        counter.add()
        clock.now += 0.5
    assert len(counter._buckets) == 60
    # 2 events a second; the clock has just entered a new, still empty bucket, so the
    # last minute is that bucket and 59 full ones.
    assert counter.total(60) == 118
    assert counter.rate_per_minute(60) == pytest.approx(118.0)


def test_window_spans_longer_than_the_window_are_cut():
    clock = FakeClock()
    counter = SlidingWindowCounter(window_seconds=60, bucket_seconds=5, clock=clock)
    counter.add(12)
    assert counter.total(3600) == 12
    assert counter.rate_per_minute(3600) == 12.0
    assert counter.total(0) == 0


def test_window_clock_stepping_back_adds_to_the_newest_bucket():
    clock = FakeClock()
    counter = SlidingWindowCounter(clock=clock)
    counter.add()
    clock.now -= 10
    counter.add()
    assert len(counter._buckets) == 1
    clock.now += 10
    assert counter.total(1) == 2


def test_window_arguments_are_checked():
    with pytest.raises(ValueError, match="bucket_seconds"):
        SlidingWindowCounter(window_seconds=1, bucket_seconds=5)
    with pytest.raises(ValueError, match="bucket_seconds"):
        SlidingWindowCounter(window_seconds=0)


# the real SDK --------------------------------------------------------------------------


def sent_metrics(endpoint: SentryEndpoint) -> list[dict[str, Any]]:
    """Metric items as sent, from ``trace_metric`` items.

    The SDK sends them as ``application/vnd.sentry.items.trace-metric+json``, which the
    envelope parser leaves as bytes, so they are decoded here.
    """
    found: list[dict[str, Any]] = []
    for payload in endpoint.items("trace_metric"):
        data = json.loads(payload) if isinstance(payload, bytes | bytearray) else payload
        found.extend(data["items"])
    return found


async def test_emit_through_the_real_sdk_reaches_sentry():
    with SentryEndpoint() as endpoint:
        try:
            sentry_sdk.init(dsn=endpoint.dsn)
            sent = await emit(sample_batch(), "tux")  # default sink: sentry_sdk.metrics
            assert sent == 4
            sentry_sdk.flush(timeout=5.0)
            assert endpoint.wait_for(lambda e: len(sent_metrics(e)) >= 4)
        finally:
            reset_sentry_sdk()

    metrics = sent_metrics(endpoint)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for item in metrics:
        by_name.setdefault(item["name"], []).append(item)
    assert set(by_name) == {
        "tux.commands.executed",
        "tux.system.cpu_usage",
        "tux.commands.duration",
    }

    (executed,) = by_name["tux.commands.executed"]
    assert executed["type"] == "counter"
    assert executed["value"] == 2.0
    assert "unit" not in executed
    for key, value in ATTRS.items():
        assert executed["attributes"][key] == {"value": value, "type": "string"}

    (cpu,) = by_name["tux.system.cpu_usage"]
    assert (cpu["type"], cpu["value"], cpu["unit"]) == ("gauge", 12.5, "percent")

    durations = by_name["tux.commands.duration"]
    assert sorted(d["value"] for d in durations) == [10.0, 30.0]
    for d in durations:
        assert d["type"] == "distribution"
        assert d["unit"] == "millisecond"
        assert d["attributes"]["command_name"] == {"value": "ping", "type": "string"}
        assert isinstance(d["timestamp"], float)
    assert not sentry_sdk.get_client().is_active()
