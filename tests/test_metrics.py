"""Metrics through a real bot: what the SDK really sent, read back from the endpoint."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import sentry_sdk

from tux_sentry_cog import SentryCogConfig, record_user_activity
from tux_sentry_cog.core.performance import performance_tier


def _attrs(metric):
    """The metric's own attributes; the SDK adds dotted ones (sentry.release, ...)."""
    raw = metric.get("attributes") or {}
    return {key: value.get("value") for key, value in raw.items() if "." not in key}


def _named(endpoint, name):
    return [m for m in endpoint.metrics() if m["name"] == name]


async def test_commands_errors_and_resources_are_counted_and_flushed_on_unload(
    make_bot, sentry_endpoint
):
    harness = await make_bot()
    for _ in range(3):
        await harness.message("!ping")
    await harness.message("!boom")
    await harness.message("!add one 2")
    await harness.message("!query bob@example.com")
    await harness.slash("slash-ok", {"text": "hi"})
    record_user_activity("message", harness.member.id, harness.member.guild.id)
    cog = harness.bot.get_cog("Sentry")
    await cog.telemetry.sample()
    await harness.bot.unload_extension("tux_sentry_cog")  # the client closes: all is sent
    endpoint = sentry_endpoint

    # One distribution item per run: its count is the runs, by status.
    durations = _named(endpoint, "tux.commands.duration")
    by_status = {}
    for metric in durations:
        attrs = _attrs(metric)
        key = (attrs["command_name"], attrs["status"])
        by_status[key] = by_status.get(key, 0) + 1
    assert by_status == {
        ("ping", "ok"): 3,
        ("boom", "internal_error"): 1,
        ("add", "invalid_argument"): 1,
        ("query", "ok"): 1,
        ("slash-ok", "ok"): 1,
    }
    assert all(m["type"] == "distribution" for m in durations)
    assert all(m["unit"] == "millisecond" and m["value"] >= 0 for m in durations)
    for metric in durations:
        attrs = _attrs(metric)
        assert attrs["performance_tier"] == performance_tier(metric["value"])
        assert attrs["command_type"] in ("prefix", "slash")
        assert attrs["cog_name"] in ("Sample", "none")
    # Gone: the count and the second distribution of the same value.
    assert not _named(endpoint, "tux.commands.executed")
    assert not _named(endpoint, "tux.command.performance")

    errors = _named(endpoint, "tux.errors.total")
    assert sorted((_attrs(m)["error_category"], _attrs(m)["severity"]) for m in errors) == [
        ("internal", "error"),
        ("user_input", "info"),
    ]
    assert all(_attrs(m)["command_type"] == "prefix" for m in errors)
    rate = _named(endpoint, "tux.errors.rate")
    assert rate
    assert _attrs(rate[-1]) == {"time_window": "1m"}
    assert rate[-1]["value"] == 1.0  # failures only: the user's typo is no failure

    assert [_attrs(m)["table"] for m in _named(endpoint, "tux.database.operations")]
    [api] = _named(endpoint, "tux.external_api.calls")
    assert _attrs(api)["status_code"] == "503"
    assert _attrs(api)["success"] == "false"
    [activity] = _named(endpoint, "tux.user_activity")
    assert _attrs(activity) == {
        "activity_type": "message",
        "guild_id": str(harness.member.guild.id),
    }
    [response] = _named(endpoint, "tux.interactions.response_time")
    assert _attrs(response) == {"interaction_type": "slash"}
    assert 0 <= response["value"] < 1000

    # One gauge per sample: the resource loop's first, at load, and the one above.
    *_, memory = _named(endpoint, "tux.system.memory_usage")
    assert memory["unit"] == "mebibyte"
    assert memory["value"] > 0
    assert _named(endpoint, "tux.system.event_loop_lag")

    user_ids = {str(m.id) for m in harness.bot.users}
    for metric in endpoint.metrics():
        raw = metric.get("attributes") or {}
        assert not any(key.startswith("user") for key in raw), metric
        values = {str(value.get("value")) for value in raw.values()}
        assert not (values & user_ids), metric


async def test_prefix_is_configurable(make_bot, sentry_endpoint):
    harness = await make_bot(metric_prefix="mybot")
    await harness.message("!ping")
    await harness.bot.unload_extension("tux_sentry_cog")
    names = {m["name"] for m in sentry_endpoint.metrics()}
    assert "mybot.commands.duration" in names
    assert not any(name.startswith("tux.") for name in names)


async def test_the_bots_own_metrics_never_carry_the_user(make_bot, sentry_endpoint):
    # With PII on in the owner's client, the SDK copies the scope's user (the cog sets it
    # for each command) onto every metric recorded inside the command.
    sentry_sdk.init(dsn=sentry_endpoint.dsn, send_default_pii=True)
    harness = await make_bot(SentryCogConfig())

    @harness.bot.command()
    async def own(ctx):
        # Inside a command the scope holds the user; the SDK would copy it onto metrics.
        sentry_sdk.metrics.count("bot.custom", 1, attributes={"kind": "own"})

    await harness.message("!own")
    await harness.bot.unload_extension("tux_sentry_cog")
    sentry_sdk.flush()
    [custom] = [m for m in sentry_endpoint.metrics() if m["name"] == "bot.custom"]
    assert _attrs(custom) == {"kind": "own"}
    assert not any(key.startswith("user") for key in custom["attributes"])


async def test_local_mode_counts_without_sending(make_bot, sentry_endpoint):
    harness = await make_bot(SentryCogConfig())
    await harness.message("!ping")
    cog = harness.bot.get_cog("Sentry")
    assert await cog.telemetry.flush() == 0
    assert cog.telemetry.rate_gauges == 1
    assert cog.telemetry.metrics.recorded == 0
    await harness.bot.unload_extension("tux_sentry_cog")
    assert sentry_endpoint.requests == 0


async def test_activity_is_counted_only_when_asked(make_bot, sentry_endpoint):
    harness = await make_bot(track_activity=True)
    await harness.message("hello there")
    await harness.message("!ping")
    await harness.bot.unload_extension("tux_sentry_cog")
    activity = _named(sentry_endpoint, "tux.user_activity")
    assert sum(m["value"] for m in activity) == 2
    assert {_attrs(m)["activity_type"] for m in activity} == {"message"}

    quiet = await make_bot()
    sentry_endpoint.clear()
    await quiet.message("hello there")
    await quiet.bot.unload_extension("tux_sentry_cog")
    assert _named(sentry_endpoint, "tux.user_activity") == []


def _seconds(value) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


async def test_each_metric_carries_the_time_and_trace_of_its_run(make_bot, sentry_endpoint):
    harness = await make_bot()
    for ms in (5, 30, 60):
        await harness.message(f"!nap {ms}")
        await asyncio.sleep(0.05)  # the runs apart in time
    await harness.message("!boom")
    await harness.bot.unload_extension("tux_sentry_cog")
    runs = {t["contexts"]["trace"]["trace_id"]: t for t in sentry_endpoint.transactions()}
    assert len(runs) == 4  # four runs, four traces
    recorded = [
        m
        for m in sentry_endpoint.metrics()
        if m["name"] in ("tux.commands.duration", "tux.errors.total")
    ]
    assert len(recorded) == 4 + 1
    for metric in recorded:
        # The run's own trace, so Sentry links the metric to the command it measured.
        run = runs[metric["trace_id"]]
        # Recorded as the run ended: after its start, no later than its transaction's end.
        assert _seconds(run["start_timestamp"]) <= metric["timestamp"]
        assert metric["timestamp"] <= _seconds(run["timestamp"]) + 0.001
    by_trace = {}
    for metric in recorded:
        by_trace.setdefault(metric["trace_id"], set()).add(metric["name"])
    names = {t["transaction"]: by_trace[trace] for trace, t in runs.items()}
    assert names["boom"] == {"tux.commands.duration", "tux.errors.total"}
    durations = sorted(
        m["value"] for m in recorded if m["name"] == "tux.commands.duration"
    )
    assert durations[1] >= 5
    assert durations[2] >= 30
    assert durations[3] >= 60


async def test_counts_are_exact_and_no_distribution_is_sampled(make_bot, sentry_endpoint):
    # No transactions: 300 of them at once would overflow the SDK's transport queue of
    # 100 envelopes, and the metrics' envelope could be the one dropped (the status
    # report shows such losses by category; this test is about what the cog records).
    harness = await make_bot(traces_sample_rate=0.0)
    for _ in range(300):
        await harness.message("!ping")
    await harness.bot.unload_extension("tux_sentry_cog")
    # One item per run: every value, none kept back or sampled away; its count is exact.
    assert len(_named(sentry_endpoint, "tux.commands.duration")) == 300


async def test_metrics_arrive_without_waiting_for_a_flush_or_an_unload(make_bot, sentry_endpoint):
    # With the default 60 s flush interval, nothing the cog holds back could arrive in
    # time: the SDK's own batcher sends what was recorded within seconds, so a crash
    # loses seconds of metrics, not a minute.
    harness = await make_bot()
    for _ in range(5):
        await harness.message("!ping")
    started = time.monotonic()
    async with asyncio.timeout(10):
        await sentry_endpoint.wait_for_async(
            lambda e: len(_named(e, "tux.commands.duration")) == 5
        )
    assert time.monotonic() - started < 10


async def test_the_endpoint_waits_without_blocking_a_task_on_the_loop(sentry_endpoint):
    """wait_for blocks the loop, so a task that has yet to send cannot; wait_for_async
    lets it run (what a test of the cog's metric flushes needs)."""
    sentry_sdk.init(dsn=sentry_endpoint.dsn)

    async def send_later() -> None:
        await asyncio.sleep(0.05)
        sentry_sdk.capture_message("sent from a task on the loop")
        await asyncio.to_thread(sentry_sdk.flush, 2.0)

    task = asyncio.create_task(send_later())
    arrived = lambda e: len(e.events()) == 1  # noqa: E731 - the same check twice
    assert not sentry_endpoint.wait_for(arrived, timeout=0.3)  # the task never ran
    async with asyncio.timeout(5.0):
        await sentry_endpoint.wait_for_async(arrived)
    await task
    assert arrived(sentry_endpoint)


async def test_the_cogs_own_client_sends_metrics_in_batches_of_a_hundred(
    make_bot, sentry_endpoint
):
    # Batches of 1,000 (the SDK's default) keep hundreds of metric objects alive long
    # enough to set off full garbage collections under load (benchmarks/bench_load.py).
    harness = await make_bot(traces_sample_rate=0.0)
    for _ in range(320):  # 320 metrics in about two seconds, before the SDK's 5 s timer
        await harness.message("!ping")
        await asyncio.sleep(0.002)  # a busy bot's pace, not a burst in one loop turn
    async with asyncio.timeout(5):
        await sentry_endpoint.wait_for_async(
            lambda e: sum(len(p["items"]) for p in e.items("trace_metric")) >= 300
        )
    sizes = [len(payload["items"]) for payload in sentry_endpoint.items("trace_metric")]
    # The SDK's flusher thread wakes when the batch reaches 100; a few more get in
    # before it runs. With the SDK's default of 1,000 these would be one batch.
    assert max(sizes) < 200, sizes
    assert len(sizes) >= 3, sizes


async def test_a_reused_client_keeps_its_own_metric_batches(make_bot, sentry_endpoint):
    sentry_sdk.init(dsn=sentry_endpoint.dsn, traces_sample_rate=0.0)
    harness = await make_bot(SentryCogConfig())
    for _ in range(450):
        await harness.message("!ping")
    await asyncio.to_thread(sentry_sdk.flush, 5.0)
    sizes = [len(payload["items"]) for payload in sentry_endpoint.items("trace_metric")]
    assert max(sizes) >= 400  # the owner's client batches as the owner's SDK does
