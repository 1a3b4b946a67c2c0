"""``discord.ext.tasks`` loops on a real bot, the real SDK over HTTP: every failure once,
tagged, whenever the loop started; each iteration of a cog's loop a run; Crons check-ins.

``sentry_relay`` (the Python package) has no check-in normaliser, so check-in items are
checked against the protocol's fields here by hand; events and transactions go through
relay's ``StoreNormalizer``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import discord
import pytest
from conftest import assert_sentry_accepts
from discord.ext import commands, tasks

from tux_sentry_cog import track_database_operation
from tux_sentry_cog.core.monitors import (
    interval_monitor_config,
    monitor_slug,
    time_monitor_config,
)
from tux_sentry_cog.status import build_status_embed

ROOT = Path(__file__).resolve().parent.parent


class Chores(commands.Cog):
    """Loops a bot owner writes, none with an error handler unless said."""

    def __init__(self) -> None:
        self.handled: list[BaseException] = []
        self.retries = 0

    @tasks.loop(seconds=0.05, count=1)
    async def broken(self) -> None:
        raise ValueError("row 918273645546372819 is corrupt")

    @tasks.loop(seconds=0.05, count=2)
    async def flaky_network(self) -> None:
        self.retries += 1
        if self.retries == 1:
            raise OSError("connection reset by peer")

    @tasks.loop(seconds=0.05, count=1)
    async def handled_loop(self) -> None:
        raise KeyError("missing")

    @handled_loop.error
    async def handled_loop_error(self, error: BaseException) -> None:
        self.handled.append(error)

    @tasks.loop(seconds=0.05, count=2)
    async def with_queries(self) -> None:
        async with track_database_operation("select", "reminders"):
            await asyncio.sleep(0)


@tasks.loop(seconds=0.05, count=1)
async def loose_loop() -> None:
    raise RuntimeError("a loop outside any cog failed")


def _task_events(endpoint: Any) -> list[dict[str, Any]]:
    return [e for e in endpoint.events() if e.get("tags", {}).get("command.type") == "task"]


async def _run(loop: Any) -> None:
    await asyncio.gather(loop.start(), return_exceptions=True)


async def test_a_failure_without_handler_is_one_tagged_event(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)  # a cog added after the Sentry cog
    await _run(chores.broken)
    endpoint = sentry_flush()
    # Only ours: the logging integration's copy of "Unhandled exception ..." is dropped.
    assert len(endpoint.events()) == 1, [e.get("logger") for e in endpoint.events()]
    [event] = _task_events(endpoint)
    assert_sentry_accepts(event)
    tags = event["tags"]
    assert tags["command.name"] == "Chores.broken"
    assert tags["cog"] == "Chores"
    assert tags["error.category"] == "internal"
    assert re.fullmatch(r"[0-9a-f]{32}", tags["correlation_id"])
    task = event["contexts"]["task"]
    assert task["cog"] == "Chores"
    assert task["interval_seconds"] == 0.05
    assert task["iteration"] == 0
    assert task["will_retry"] is False
    assert event["fingerprint"][0] == "ValueError"
    assert "<ID>" in event["fingerprint"][1]
    assert "Chores.broken" in event["fingerprint"]


async def test_a_retried_oserror_is_an_event_and_the_loop_goes_on(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)
    await _run(chores.flaky_network)
    # discord.py retried after the OSError (a failed iteration does not count).
    assert chores.retries == 3
    endpoint = sentry_flush()
    assert len(endpoint.events()) == 1, [e.get("logger") for e in endpoint.events()]
    [event] = _task_events(endpoint)
    assert_sentry_accepts(event)
    assert event["tags"]["command.name"] == "Chores.flaky_network"
    assert event["exception"]["values"][-1]["type"] == "OSError"
    assert event["contexts"]["task"]["will_retry"] is True


async def test_a_loop_with_its_own_handler(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)
    await _run(chores.handled_loop)
    [event] = _task_events(sentry_flush())
    assert_sentry_accepts(event)
    assert event["tags"]["command.name"] == "Chores.handled_loop"
    assert event["contexts"]["task"]["will_retry"] is False
    assert len(chores.handled) == 1  # the bot's handler still ran


async def test_a_loop_outside_any_cog(make_bot, sentry_flush):
    await make_bot()
    await _run(loose_loop)
    endpoint = sentry_flush()
    assert len(endpoint.events()) == 1
    [event] = _task_events(endpoint)
    assert_sentry_accepts(event)
    assert event["tags"]["command.name"] == "loose_loop"
    assert event["tags"]["cog"] == "none"


async def test_each_iteration_is_a_run_with_spans_and_metrics(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)
    await _run(chores.with_queries)
    await harness.bot.get_cog("Sentry").telemetry.flush()
    endpoint = sentry_flush()
    # Two iterations of a 50 ms loop: one sampled transaction within the minute.
    transactions = [t for t in endpoint.transactions() if t["transaction"] == "Chores.with_queries"]
    assert len(transactions) == 1
    [transaction] = transactions
    assert_sentry_accepts(transaction)
    assert transaction["contexts"]["trace"]["op"] == "discord.task"
    assert transaction["tags"]["command.type"] == "task"
    [span] = [s for s in transaction["spans"] if s["op"].startswith("db")]
    assert span["parent_span_id"] == transaction["contexts"]["trace"]["span_id"]
    durations = [m for m in endpoint.metrics() if m["name"] == "tux.tasks.duration"]
    # One item per iteration, each with its status; the cog's own loops are not runs.
    assert len(durations) == 2
    assert {m["attributes"]["task_name"]["value"] for m in durations} == {"Chores.with_queries"}
    assert {m["attributes"]["status"]["value"] for m in durations} == {"ok"}
    assert all(m["type"] == "distribution" and m["value"] >= 0 for m in durations)


_NEVER_WRAPPED_SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    import discord
    import sentry_sdk
    from discord.ext import commands, tasks
    from tux_sentry_cog import SentryCogConfig
    from tux_sentry_cog.testing import SentryEndpoint

    attempts = []

    # discord.py only calls _get_next_sleep_time after a success: a loop that keeps
    # failing is never wrapped, so its retries are seen in the log line, and its last
    # error in Loop._call_loop_function("error").
    @tasks.loop(seconds=0.05)
    async def always_down():
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("upstream is down")
        raise ValueError("gave up on upstream")

    async def main():
        with SentryEndpoint() as endpoint:
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
            await bot._async_setup_hook()
            task = always_down.start()
            while not attempts:
                await asyncio.sleep(0.01)
            bot.sentry_cog_config = SentryCogConfig(dsn=endpoint.dsn)
            await bot.load_extension("tux_sentry_cog")
            await asyncio.gather(task, return_exceptions=True)
            sentry_sdk.flush(5)
            endpoint.wait_for(lambda e: len(e.events()) >= 2, timeout=1)
            print(json.dumps({"events": endpoint.events(), "attempts": len(attempts)}))
            await bot.unload_extension("tux_sentry_cog")

    asyncio.run(main())
    """
)


def _run_script(script: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SENTRY_DSN", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


#: discord.py logs a retried loop error ("Retrying in Ns") from 2.6 on; 2.4 and 2.5 retry
#: silently, so a loop that has not succeeded once since the cog loaded shows its retries
#: nowhere (docs/task-loops.md).
LOGS_RETRIES = discord.version_info >= (2, 6)


def test_a_loop_never_wrapped_is_reported_from_its_log_line_and_its_error_hook():
    result = _run_script(_NEVER_WRAPPED_SCRIPT)
    assert result["attempts"] == 3
    events = result["events"]
    # The first OSError came before the cog loaded; the second from the log line; the
    # ValueError from the error hook. The log lines themselves are not sent again.
    assert len(events) == (2 if LOGS_RETRIES else 1), [e.get("tags") for e in events]
    final = events[-1]
    assert final["exception"]["values"][-1]["type"] == "ValueError"
    if not LOGS_RETRIES:
        return
    retried = events[0]
    for event in events:
        assert_sentry_accepts(event)
        assert event["tags"]["command.type"] == "task"
        assert event["tags"]["command.name"] == "always_down"
    assert retried["exception"]["values"][-1]["type"] == "OSError"
    assert retried["contexts"]["task"]["will_retry"] is True
    assert final["exception"]["values"][-1]["type"] == "ValueError"
    assert final["contexts"]["task"]["will_retry"] is False
    assert final["contexts"]["task"]["interval_seconds"] == 0.05


_EARLY_LOOP_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import discord
    from discord.ext import commands, tasks
    from tux_sentry_cog import SentryCogConfig
    from tux_sentry_cog.testing import SentryEndpoint

    class Early(commands.Cog):
        def __init__(self):
            self.n = 0
            self.handled = []

        async def cog_load(self):
            self.ticker.start()
            self.retrier.start()

        @tasks.loop(seconds=0.05)
        async def ticker(self):
            self.n += 1
            if self.n == 8:
                raise ValueError("failed after the Sentry cog loaded")

        @ticker.error
        async def ticker_error(self, error):
            self.handled.append(error)

        @tasks.loop(seconds=0.05)
        async def retrier(self):
            if self.n == 6:
                raise OSError("network down")

    async def main():
        with SentryEndpoint() as endpoint:
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
            await bot._async_setup_hook()
            early = Early()
            await bot.add_cog(early)  # an extension loaded before ours starts its loops
            await asyncio.sleep(0.12)
            bot.sentry_cog_config = SentryCogConfig(dsn=endpoint.dsn)
            await bot.load_extension("tux_sentry_cog")
            for _ in range(100):
                if early.handled:
                    break
                await asyncio.sleep(0.05)
            early.retrier.cancel()
            import sentry_sdk
            sentry_sdk.flush(5)
            endpoint.wait_for(lambda e: len(e.events()) >= 2, timeout=2)
            print(json.dumps({"events": endpoint.events(), "handled": len(early.handled)}))
            await bot.unload_extension("tux_sentry_cog")

    asyncio.run(main())
    """
)


def test_loops_started_before_the_cog_loaded():
    result = _run_script(_EARLY_LOOP_SCRIPT)
    assert result["handled"] == 1
    events = result["events"]
    by_name = {e["tags"].get("command.name"): e for e in events}
    assert len(events) == 2, [(e.get("logger"), e.get("tags")) for e in events]
    for name in ("Early.ticker", "Early.retrier"):
        assert by_name[name]["tags"]["command.type"] == "task"
        assert_sentry_accepts(by_name[name])
    assert by_name["Early.retrier"]["contexts"]["task"]["will_retry"] is True
    assert by_name["Early.ticker"]["contexts"]["task"]["will_retry"] is False


# Crons ------------------------------------------------------------------------------

_SLUG = re.compile(r"[a-z0-9_-]{1,50}")


class Scheduled(commands.Cog, name="Night Jobs"):
    """Minute-, hour- and time-scale loops; their first iteration runs on start."""

    def __init__(self) -> None:
        self.fail = False

    @tasks.loop(minutes=5)
    async def every_five_minutes(self) -> None:
        if self.fail:
            raise RuntimeError("the feed did not answer")

    @tasks.loop(hours=2)
    async def every_two_hours(self) -> None:
        return

    @tasks.loop(seconds=10)
    async def too_fast(self) -> None:
        return


def _checkins(endpoint: Any, slug: str) -> list[dict[str, Any]]:
    found = [c for c in endpoint.items("check_in") if c["monitor_slug"] == slug]
    for item in found:
        assert _SLUG.fullmatch(item["monitor_slug"])
        assert item["status"] in {"in_progress", "ok", "error"}
        assert re.fullmatch(r"[0-9a-f]{32}", item["check_in_id"])
    return found


async def _one_iteration(loop: Any) -> None:
    """Start a loop (its first iteration runs at once) and stop it after that one."""
    task = loop.start()
    for _ in range(300):
        if loop.current_loop >= 1 or task.done():
            break
        await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_minute_and_hour_loops_send_check_ins(make_bot, sentry_flush):
    harness = await make_bot(monitor_loops=True)
    jobs = Scheduled()
    await harness.bot.add_cog(jobs)
    await _one_iteration(jobs.every_five_minutes)
    await _one_iteration(jobs.every_two_hours)
    await _one_iteration(jobs.too_fast)
    endpoint = sentry_flush()
    five = _checkins(endpoint, "tux-night-jobs-every_five_minutes")
    assert [c["status"] for c in five] == ["in_progress", "ok"]
    assert five[0]["check_in_id"] == five[1]["check_in_id"]
    assert isinstance(five[1]["duration"], float)
    assert five[1]["monitor_config"] == {
        "schedule": {"type": "interval", "value": 5, "unit": "minute"},
        "checkin_margin": 1,
        "max_runtime": 5,
    }
    two = _checkins(endpoint, "tux-night-jobs-every_two_hours")
    assert [c["status"] for c in two] == ["in_progress", "ok"]
    assert two[0]["monitor_config"]["schedule"] == {"type": "interval", "value": 2, "unit": "hour"}
    assert two[0]["monitor_config"]["checkin_margin"] == 12
    assert two[0]["monitor_config"]["max_runtime"] == 120
    # Under a minute: no monitor (Sentry's smallest unit is a minute).
    assert not [c for c in endpoint.items("check_in") if "too_fast" in c["monitor_slug"]]


async def test_a_failed_iteration_sends_error(make_bot, sentry_flush):
    harness = await make_bot(monitor_loops=True)
    jobs = Scheduled()
    jobs.fail = True
    await harness.bot.add_cog(jobs)
    await _run(jobs.every_five_minutes)
    endpoint = sentry_flush()
    five = _checkins(endpoint, "tux-night-jobs-every_five_minutes")
    assert [c["status"] for c in five] == ["in_progress", "error"]
    [event] = _task_events(endpoint)
    assert event["tags"]["command.name"] == "Night Jobs.every_five_minutes"


async def test_a_time_loop_sends_a_crontab_monitor(make_bot, sentry_flush):
    harness = await make_bot(monitor_loops=True)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)).time().replace(tzinfo=dt.UTC)

    class Daily(commands.Cog):
        @tasks.loop(time=[soon])
        async def report(self) -> None:
            return

    daily = Daily()
    await harness.bot.add_cog(daily)
    await _one_iteration(daily.report)
    endpoint = sentry_flush()
    checkins = _checkins(endpoint, "tux-daily-report")
    assert [c["status"] for c in checkins] == ["in_progress", "ok"]
    assert checkins[0]["monitor_config"] == {
        "schedule": {"type": "crontab", "value": f"{soon.minute} {soon.hour} * * *"},
        "timezone": "UTC",
        "checkin_margin": 5,
        "max_runtime": 60,
    }


async def test_no_check_ins_unless_turned_on(make_bot, sentry_flush):
    harness = await make_bot()
    jobs = Scheduled()
    await harness.bot.add_cog(jobs)
    await _one_iteration(jobs.every_five_minutes)
    endpoint = sentry_flush()
    assert not endpoint.items("check_in")
    # The iteration was still a run.
    names = {t["transaction"]: t["contexts"]["trace"]["op"] for t in endpoint.transactions()}
    assert names["Night Jobs.every_five_minutes"] == "discord.task"


@pytest.mark.parametrize(
    ("seconds", "schedule", "margin", "max_runtime"),
    [
        (60, (1, "minute"), 1, 1),
        (90, (2, "minute"), 1, 2),
        (300, (5, "minute"), 1, 5),
        (1800, (30, "minute"), 3, 30),
        (3600, (1, "hour"), 6, 60),
        (7200, (2, "hour"), 12, 120),
        (86400, (1, "day"), 30, 1440),
    ],
    ids=["1min", "90s", "5min", "30min", "1h", "2h", "1d"],
)
def test_interval_monitor_configs_are_the_documented_table(seconds, schedule, margin, max_runtime):
    config = interval_monitor_config(seconds)
    assert config == {
        "schedule": {"type": "interval", "value": schedule[0], "unit": schedule[1]},
        "checkin_margin": margin,
        "max_runtime": max_runtime,
    }


def test_no_monitor_under_a_minute_or_for_times_that_are_no_crontab():
    assert interval_monitor_config(30) is None
    assert (
        time_monitor_config([dt.time(9, 15, tzinfo=dt.UTC), dt.time(17, 45, tzinfo=dt.UTC)]) is None
    )
    assert time_monitor_config([dt.time(9, tzinfo=dt.UTC), dt.time(21, tzinfo=dt.UTC)]) == {
        "schedule": {"type": "crontab", "value": "0 9,21 * * *"},
        "timezone": "UTC",
        "checkin_margin": 5,
        "max_runtime": 60,
    }


def test_slugs_are_cut_and_cleaned():
    slug = monitor_slug("tux", "My Cog!", "a" * 80)
    assert slug.startswith("tux-my-cog--aaa")
    assert len(slug) == 50


async def test_status_shows_each_loop(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)
    await _run(chores.broken)
    await _run(chores.with_queries)
    embed = build_status_embed(harness.bot.get_cog("Sentry").status_snapshot())
    tasks_field = {f.name: f.value for f in embed.fields}["Tasks"]
    lines = tasks_field.splitlines()
    assert lines[0].startswith("Chores.with\\_queries: 0s ago, ok, 0 failed in 1h")
    assert lines[1].startswith("Chores.broken: 0s ago, internal_error, 1 failed in 1h")
    assert "Telemetry" not in tasks_field  # the cog's own loops are not listed


async def test_a_retried_failure_sends_error_for_that_iteration(make_bot, sentry_flush):
    harness = await make_bot(monitor_loops=True)

    class Feed(commands.Cog):
        def __init__(self) -> None:
            self.attempts = 0

        @tasks.loop(minutes=2)
        async def poll(self) -> None:
            self.attempts += 1
            if self.attempts == 1:
                raise OSError("feed server reset the connection")

    feed = Feed()
    await harness.bot.add_cog(feed)
    await _one_iteration(feed.poll)  # the retry comes within discord.py's first backoff
    endpoint = sentry_flush()
    checkins = _checkins(endpoint, "tux-feed-poll")
    assert [c["status"] for c in checkins] == ["in_progress", "error", "in_progress", "ok"]
    assert checkins[0]["check_in_id"] == checkins[1]["check_in_id"]
    assert checkins[2]["check_in_id"] == checkins[3]["check_in_id"] != checkins[0]["check_in_id"]
    [event] = _task_events(endpoint)
    assert event["contexts"]["task"]["will_retry"] is True


async def test_an_iteration_cancelled_on_purpose_is_no_failure(make_bot, sentry_flush):
    harness = await make_bot(monitor_loops=True)
    started = asyncio.Event()

    class Slow(commands.Cog):
        @tasks.loop(minutes=3)
        async def crawl(self) -> None:
            started.set()
            await asyncio.sleep(30)

    slow = Slow()
    await harness.bot.add_cog(slow)
    task = slow.crawl.start()
    await asyncio.wait_for(started.wait(), 5)
    slow.crawl.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await harness.bot.get_cog("Sentry").telemetry.flush()
    endpoint = sentry_flush()
    assert [c["status"] for c in _checkins(endpoint, "tux-slow-crawl")] == ["in_progress", "ok"]
    assert not _task_events(endpoint)
    statuses = {
        m["attributes"]["status"]["value"]
        for m in endpoint.metrics()
        if m["name"] == "tux.tasks.duration"
    }
    assert statuses == {"cancelled"}
    # Only the loops of the bot's cogs are monitors, never the Sentry cog's own.
    assert {c["monitor_slug"] for c in endpoint.items("check_in")} == {"tux-slow-crawl"}


async def test_failures_of_two_loops_are_not_related_by_their_missing_guild(make_bot, sentry_flush):
    harness = await make_bot()
    chores = Chores()
    await harness.bot.add_cog(chores)
    await _run(chores.broken)
    await _run(chores.handled_loop)
    events = _task_events(sentry_flush())
    assert len(events) == 2
    assert {e["tags"]["error.related"] for e in events} == {"no"}
