"""Command transactions, child spans and correlation ids, through a real bot."""

from __future__ import annotations

import asyncio
from datetime import datetime

import discord.ext.test as dpytest
import sentry_sdk
from loguru import logger as loguru_logger

from tux_sentry_cog import SentryCogConfig, get_correlation_id


def _seconds(value) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value).timestamp()


def _duration_ms(transaction) -> float:
    return (_seconds(transaction["timestamp"]) - _seconds(transaction["start_timestamp"])) * 1000


def _by_name(endpoint, name):
    return [t for t in endpoint.transactions() if t["transaction"] == name]


async def test_concurrent_runs_of_one_command_are_timed_apart(make_bot, sentry_flush):
    harness = await make_bot(send_pii=True)
    sleeps = [300, 30, 200, 60, 120]
    await asyncio.gather(*(harness.message(f"!nap {ms}") for ms in sleeps))
    naps = _by_name(sentry_flush(), "nap")
    assert len(naps) == len(sleeps)
    durations = sorted(_duration_ms(t) for t in naps)
    for expected, measured in zip(sorted(sleeps), durations, strict=True):
        # Each run lasts its own sleep, not its neighbour's (a dict keyed by command
        # name would give them all the same start).
        assert expected <= measured < expected + 100, (expected, measured)
    assert len({t["tags"]["correlation_id"] for t in naps}) == len(sleeps)
    assert all(t["contexts"]["trace"]["status"] == "ok" for t in naps)


async def test_slash_command_is_timed_from_invocation_to_completion(make_bot, sentry_flush):
    harness = await make_bot()
    result = await harness.slash("slash-nap", {"ms": 150})
    assert result.responses[-1]["content"] == "slept 150"
    [transaction] = _by_name(sentry_flush(), "slash-nap")
    assert transaction["contexts"]["trace"]["op"] == "discord.app_command"
    assert _duration_ms(transaction) >= 150


async def test_database_span_is_a_child_with_the_correlation_id(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!query bob@example.com")
    endpoint = sentry_flush()
    [transaction] = _by_name(endpoint, "query")
    correlation_id = transaction["tags"]["correlation_id"]
    trace = transaction["contexts"]["trace"]
    spans = {span["description"]: span for span in transaction["spans"]}
    assert {"select users", "update users", "insert audit", "github /repos"} <= set(spans)
    for name in ("select users", "update users", "insert audit"):
        span = spans[name]
        assert span["op"] == "db.query"
        assert span["parent_span_id"] == trace["span_id"]
        assert span["trace_id"] == trace["trace_id"]
        assert span["tags"]["correlation_id"] == correlation_id
    select = spans["select users"]
    assert select["data"]["db.operation"] == "select"
    assert select["data"]["db.collection.name"] == "users"
    assert "bob@example.com" not in select["data"]["db.query"]  # scrubbed, PII is off
    assert select["timestamp"] > select["start_timestamp"]
    api = spans["github /repos"]
    assert api["op"] == "http.client"
    assert api["data"]["http.response.status_code"] == 503
    assert harness.sample.seen_ids == [correlation_id]
    assert b"bob@example.com" not in endpoint.raw_bytes()


async def test_fifty_concurrent_commands_keep_their_own_tags(make_bot, sentry_flush):
    harness = await make_bot()
    members = dpytest.get_config().members
    await asyncio.gather(
        *(harness.message(f"!nap {10 + i % 7}", member=members[i % 2]) for i in range(50))
    )
    naps = _by_name(sentry_flush(), "nap")
    assert len(naps) == 50
    assert len({t["tags"]["correlation_id"] for t in naps}) == 50
    users = {str(m.id) for m in members}
    for transaction in naps:
        assert transaction["tags"]["command.name"] == "nap"
        assert transaction["user"]["id"] in users
    # Who ran what: each member ran exactly half.
    per_user = [sum(t["user"]["id"] == str(m.id) for t in naps) for m in members]
    assert per_user == [25, 25]


async def test_local_handler_does_not_leave_the_transaction_open(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!handled")
    await harness.message("!add one 2")
    endpoint = sentry_flush()
    [handled] = _by_name(endpoint, "handled")
    assert handled["contexts"]["trace"]["status"] == "internal_error"
    [add] = _by_name(endpoint, "add")
    assert add["contexts"]["trace"]["status"] == "invalid_argument"


async def test_loguru_records_carry_the_correlation_id(make_bot, sentry_flush):
    harness = await make_bot()
    records = []
    sink_id = loguru_logger.add(records.append, format="{message}")
    try:
        await harness.message("!logs")
    finally:
        loguru_logger.remove(sink_id)
    [transaction] = _by_name(sentry_flush(), "logs")
    inside = [r for r in records if "inside the command" in r]
    assert len(inside) == 1
    correlation_id = transaction["tags"]["correlation_id"]
    assert inside[0].record["extra"]["correlation_id"] == correlation_id
    assert harness.sample.seen_ids == [correlation_id]
    assert get_correlation_id() is None  # outside any command


async def test_child_transaction_of_the_running_command(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!child")
    [transaction] = _by_name(sentry_flush(), "child")
    [span] = [s for s in transaction["spans"] if s["op"] == "cache.get"]
    assert span["tags"]["correlation_id"] == transaction["tags"]["correlation_id"]
    assert span["tags"]["parent_operation"] == "discord.command"
    assert harness.sample.seen_ids == ["cache.get"]


async def test_sample_rate_zero_sends_errors_but_no_transactions(
    make_bot, sentry_flush, sentry_endpoint
):
    harness = await make_bot(SentryCogConfig(dsn=sentry_endpoint.dsn, traces_sample_rate=0.0))
    await harness.message("!ping")
    await harness.message("!boom")
    endpoint = sentry_flush()
    assert endpoint.transactions() == []
    assert len(endpoint.events()) == 1


async def test_a_parent_trace_decides_sampling(make_bot, sentry_flush, sentry_endpoint):
    harness = await make_bot(SentryCogConfig(dsn=sentry_endpoint.dsn, traces_sample_rate=0.0))
    with sentry_sdk.start_transaction(name="outer", op="test", sampled=True) as outer:
        await harness.message("!ping")
    [ping] = _by_name(sentry_flush(), "ping")
    # The command continues the bot's own trace and follows its sampling decision.
    assert ping["contexts"]["trace"]["trace_id"] == outer.trace_id
    assert ping["contexts"]["trace"]["parent_span_id"] == outer.span_id


async def test_subcommands_are_named_by_their_qualified_name(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!tools hammer")
    endpoint = sentry_flush()
    [event] = [e for e in endpoint.events() if "exception" in e]
    assert event["tags"]["command.name"] == "tools hammer"
    assert event["contexts"]["command"]["name"] == "tools hammer"
    [transaction] = endpoint.transactions()
    assert transaction["transaction"] == "tools hammer"
    assert transaction["tags"]["command.name"] == "tools hammer"
