"""Performance anomalies, resource alerts and gateway health through a real bot."""

from __future__ import annotations

import psutil
from conftest import assert_sentry_accepts

from tux_sentry_cog.core.resources import ResourceSampler


def _messages(endpoint, prefix):
    found = [
        e for e in endpoint.events() if e.get("logentry", {}).get("message", "").startswith(prefix)
    ]
    for event in found:
        # A logentry, never a bare top-level message (strict servers reject that form).
        assert "message" not in event
    return found


async def test_a_sustained_slowdown_is_reported_once(make_bot, sentry_flush):
    harness = await make_bot()
    for _ in range(60):  # the baseline: ~5 ms
        await harness.message("!nap 5")
    for _ in range(15):  # then 12x slower, for good
        await harness.message("!nap 60")
    endpoint = sentry_flush()
    [anomaly] = _messages(endpoint, "Performance anomaly")
    assert anomaly["logentry"] == {"message": "Performance anomaly: nap"}
    assert anomaly["level"] == "warning"
    assert anomaly["fingerprint"] == ["performance-anomaly", "nap"]
    context = anomaly["contexts"]["performance_anomaly"]
    assert set(context) >= {"observed_ms", "baseline_p50_ms", "baseline_p95_ms", "samples",
                            "threshold_ms"}
    assert context["observed_ms"] >= 60 > context["baseline_p50_ms"]
    assert_sentry_accepts(anomaly)
    snapshot = harness.bot.get_cog("Sentry").status_snapshot()
    assert [a.command for a in snapshot.anomalies] == ["nap"]


async def test_one_slow_run_is_not_an_anomaly(make_bot, sentry_flush):
    harness = await make_bot()
    for index in range(70):
        await harness.message("!nap 80" if index == 65 else "!nap 5")
    assert _messages(sentry_flush(), "Performance anomaly") == []


async def test_high_resource_usage_sustained_three_samples(make_bot, sentry_flush):
    harness = await make_bot(memory_threshold_mb=1)
    telemetry = harness.bot.get_cog("Sentry").telemetry
    for _ in range(5):
        await telemetry.sample()
    endpoint = sentry_flush()
    [alert] = _messages(endpoint, "High resource usage")
    assert alert["logentry"] == {"message": "High resource usage"}
    assert alert["fingerprint"] == ["high-resource-usage"]
    assert alert["contexts"]["resources"]["memory_mb"] > 1
    assert_sentry_accepts(alert)


class BrokenProcess:
    """A process whose psutil calls fail, as on locked-down hosts."""

    def memory_info(self):
        raise psutil.AccessDenied

    def cpu_percent(self, interval=None):
        raise NotImplementedError

    def num_threads(self):
        return 7

    def num_fds(self):
        raise psutil.AccessDenied

    def open_files(self):
        raise psutil.AccessDenied


async def test_psutil_failures_degrade_one_figure_not_the_loop(make_bot, sentry_flush):
    harness = await make_bot()
    telemetry = harness.bot.get_cog("Sentry").telemetry
    telemetry.sampler = ResourceSampler(process=BrokenProcess())
    sample = await telemetry.sample()
    assert sample.memory_mb is None
    assert sample.cpu_percent is None
    assert sample.threads == 7
    assert sample.event_loop_lag_ms is not None
    assert sample.asyncio_tasks >= 1
    await harness.message("!ping")  # the bot carries on


async def test_gateway_events_are_breadcrumbs_and_status(make_bot, sentry_flush):
    harness = await make_bot()
    harness.bot.dispatch("disconnect")
    harness.bot.dispatch("resumed")
    await harness.message("!boom")
    [event] = [e for e in sentry_flush().events() if "exception" in e]
    snapshot = harness.bot.get_cog("Sentry").status_snapshot()
    assert [e.split(" ", 1)[1] for e in snapshot.gateway_events] == [
        "disconnect (gateway)",
        "resume (gateway)",
    ]
    # Outside any command the listeners add to the process's scope, which every later
    # command's scope is forked from: the error shows the reconnection before it.
    gateway = [b["message"] for b in event["breadcrumbs"]["values"] if b["category"] == "gateway"]
    assert gateway == ["disconnect (gateway)", "resume (gateway)"]
