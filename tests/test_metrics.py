"""Metrics through a real bot: what the SDK really sent, read back from the endpoint."""

from __future__ import annotations

import asyncio
import gc

import sentry_sdk

from tux_sentry_cog import SentryCogConfig, record_user_activity
from tux_sentry_cog.core.metrics import HANDOFF_ITEMS
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
    await harness.bot.unload_extension("tux_sentry_cog")  # the last flush, then close
    endpoint = sentry_endpoint

    executed = _named(endpoint, "tux.commands.executed")
    assert sum(m["value"] for m in executed) == 7
    by_status = {}
    for metric in executed:
        attrs = _attrs(metric)
        key = (attrs["command_name"], attrs["status"])
        by_status[key] = by_status.get(key, 0) + metric["value"]
    assert by_status == {
        ("ping", "ok"): 3,
        ("boom", "internal_error"): 1,
        ("add", "invalid_argument"): 1,
        ("query", "ok"): 1,
        ("slash-ok", "ok"): 1,
    }
    assert all(m["type"] == "counter" for m in executed)
    durations = _named(endpoint, "tux.commands.duration")
    assert len(durations) == 7
    assert all(m["unit"] == "millisecond" and m["value"] >= 0 for m in durations)
    performance = _named(endpoint, "tux.command.performance")
    assert len(performance) == 7
    for metric in performance:
        assert _attrs(metric)["performance_tier"] == performance_tier(metric["value"])

    errors = _named(endpoint, "tux.errors.total")
    assert sorted((_attrs(m)["error_category"], _attrs(m)["severity"]) for m in errors) == [
        ("internal", "error"),
        ("user_input", "info"),
    ]
    assert all(_attrs(m)["command_type"] == "prefix" for m in errors)
    rate = _named(endpoint, "tux.errors.rate")
    assert rate
    assert _attrs(rate[-1]) == {"time_window": "1m"}
    assert rate[-1]["value"] == 2.0

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

    [memory] = _named(endpoint, "tux.system.memory_usage")
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
    assert "mybot.commands.executed" in names
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
    assert cog.telemetry.flushes == 1
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


async def test_a_big_flush_reaches_sentry_in_small_batches(make_bot, sentry_endpoint):
    """The flush hands metrics to the transport every HANDOFF_ITEMS, so the SDK never
    encodes a batch of 1,000 in one GIL-holding call; every metric still arrives."""
    harness = await make_bot()
    cog = harness.bot.get_cog("Sentry")
    for i in range(450):
        cog.telemetry.buffer.count("bulk", attributes={"n": str(i)})
    collector_was_on = gc.isenabled()
    sent = await cog.telemetry.flush()
    assert sent >= 450
    # The flush pauses automatic collection while it sends, and only while it sends.
    assert gc.isenabled() == collector_was_on
    assert sentry_endpoint.wait_for(lambda e: len(_named(e, "tux.bulk")) == 450)
    sizes = [len(payload["items"]) for payload in sentry_endpoint.items("trace_metric")]
    assert sum(sizes) == sent
    assert max(sizes) <= HANDOFF_ITEMS
    assert len(sizes) >= sent // HANDOFF_ITEMS


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
