"""MetricsRecorder against the real SDK and a loopback endpoint; SlidingWindowCounter."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import sentry_sdk

from tux_sentry_cog.core import metrics as metrics_module
from tux_sentry_cog.core.metrics import MetricsRecorder, SlidingWindowCounter
from tux_sentry_cog.testing import SentryEndpoint, reset_sentry_sdk

ATTRS = {"command_name": "ping", "command_type": "prefix", "status": "ok"}


def _record_through_the_sdk(record) -> list[dict[str, Any]]:
    """Run ``record(recorder)`` with the SDK on a loopback endpoint; return what arrived."""
    with SentryEndpoint() as endpoint:
        try:
            sentry_sdk.init(dsn=endpoint.dsn)
            recorder = MetricsRecorder("tux", lambda: True)
            record(recorder)
            sentry_sdk.flush(timeout=5.0)
            endpoint.wait_for(lambda e: bool(e.metrics()), timeout=2.0)
        finally:
            reset_sentry_sdk()
        return endpoint.metrics()


def test_each_kind_reaches_sentry_with_prefix_unit_and_attributes():
    def record(recorder: MetricsRecorder) -> None:
        recorder.count("commands.executed", 1, ATTRS)
        recorder.count("commands.executed", 1, ATTRS)
        recorder.gauge("system.cpu_usage", 12.5, "percent")
        recorder.distribution("commands.duration", 10.0, "millisecond", {"command_name": "ping"})
        recorder.distribution("commands.duration", 30.0, "millisecond", {"command_name": "ping"})

    metrics = _record_through_the_sdk(record)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for item in metrics:
        by_name.setdefault(item["name"], []).append(item)
    assert set(by_name) == {
        "tux.commands.executed",
        "tux.system.cpu_usage",
        "tux.commands.duration",
    }
    executed = by_name["tux.commands.executed"]
    assert [(m["type"], m["value"]) for m in executed] == [("counter", 1.0), ("counter", 1.0)]
    for key, value in ATTRS.items():
        assert executed[0]["attributes"][key] == {"value": value, "type": "string"}
    [cpu] = by_name["tux.system.cpu_usage"]
    assert (cpu["type"], cpu["value"], cpu["unit"]) == ("gauge", 12.5, "percent")
    durations = by_name["tux.commands.duration"]
    assert [d["value"] for d in durations] == [10.0, 30.0]  # every value, in order
    assert all(d["unit"] == "millisecond" for d in durations)
    # Stamped at the call: the two recordings are two moments, not one flush time.
    stamps = [m["timestamp"] for m in metrics]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_an_empty_prefix_sends_bare_names():
    def record(recorder: MetricsRecorder) -> None:
        MetricsRecorder("", lambda: True).count("bare")

    assert [m["name"] for m in _record_through_the_sdk(record)] == ["bare"]


def test_non_finite_values_are_not_sent_and_are_counted():
    recorders: list[MetricsRecorder] = []

    def record(recorder: MetricsRecorder) -> None:
        recorders.append(recorder)
        recorder.gauge("lag", float("nan"))
        recorder.distribution("duration", float("inf"))
        recorder.distribution("duration", 3.0)

    metrics = _record_through_the_sdk(record)
    assert [(m["name"], m["value"]) for m in metrics] == [("tux.duration", 3.0)]
    assert (recorders[0].skipped, recorders[0].recorded) == (2, 1)


def test_nothing_is_sent_while_sentry_is_inactive():
    with SentryEndpoint() as endpoint:
        try:
            sentry_sdk.init(dsn=endpoint.dsn)
            recorder = MetricsRecorder("tux", lambda: False)
            recorder.count("commands.executed")
            sentry_sdk.flush(timeout=5.0)
        finally:
            reset_sentry_sdk()
        assert endpoint.metrics() == []
    assert recorder.recorded == 0


def test_a_value_that_is_no_number_never_raises_and_is_logged_once(caplog):
    recorder = MetricsRecorder("tux", lambda: True)
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog.core.metrics"):
        recorder.count("odd", "not a number")  # type: ignore[arg-type]
        recorder.count("odd", object())  # type: ignore[arg-type]
    assert recorder.failures == 2
    assert recorder.recorded == 0
    assert [r.getMessage() for r in caplog.records] == [
        "tux_sentry_cog could not record metric 'odd'"
    ]


def test_the_module_touches_no_process_wide_state():
    # No buffer, no collector pause, no flush of the owner's client: the SDK's API only.
    assert not hasattr(metrics_module, "gc")
    assert not hasattr(metrics_module, "flush_off_loop")


async def test_recording_inside_a_transaction_carries_its_trace():
    with SentryEndpoint() as endpoint:
        try:
            sentry_sdk.init(dsn=endpoint.dsn, traces_sample_rate=1.0)
            recorder = MetricsRecorder("tux", lambda: True)
            with sentry_sdk.start_transaction(op="test", name="inside") as transaction:
                await asyncio.sleep(0)
                recorder.count("inside")
            recorder.count("outside")
            sentry_sdk.flush(timeout=5.0)
            endpoint.wait_for(lambda e: len(e.metrics()) == 2, timeout=2.0)
        finally:
            reset_sentry_sdk()
        metrics = {m["name"]: m for m in endpoint.metrics()}
    assert metrics["tux.inside"]["trace_id"] == transaction.trace_id
    assert metrics["tux.inside"]["span_id"] == transaction.span_id


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


