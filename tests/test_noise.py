"""Noise control through a real bot: the event budget, outage grouping, the ignore list
and the opt-outs, over the real SDK to the loopback endpoint (docs/discord-limits-and-noise.md)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
import sentry_sdk
from conftest import FailingModal, FailingView, FakeResponse, assert_sentry_accepts
from discord.ext import commands

from tux_sentry_cog import RunDescription, SentryCogConfig
from tux_sentry_cog.core.noise import EventBudget, IgnoredErrors
from tux_sentry_cog.status import build_status_embed


class Clock:
    """Our monotonic clock for the budget's windows, moved by hand."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class QuietError(Exception):
    """An error a bot raises on purpose and does not want in Sentry."""


class QuieterError(QuietError):
    pass


class Outage(commands.Cog):
    """Five commands that all meet Discord's 5xx, and one that meets another status."""

    def _fail(self, status: int = 503) -> None:
        reason = "Service Unavailable" if status == 503 else "Internal Server Error"
        raise discord.DiscordServerError(FakeResponse(status, reason), {"code": 0, "message": ""})

    @commands.command()
    async def one(self, ctx: commands.Context[Any]) -> None:
        self._fail()

    @commands.command()
    async def two(self, ctx: commands.Context[Any]) -> None:
        self._fail()

    @commands.command()
    async def three(self, ctx: commands.Context[Any]) -> None:
        self._fail()

    @commands.command()
    async def four(self, ctx: commands.Context[Any]) -> None:
        await ctx.send("about to fail")
        self._fail()

    @commands.command()
    async def five(self, ctx: commands.Context[Any], *, text: str = "") -> None:
        self._fail()

    @commands.command()
    async def other(self, ctx: commands.Context[Any]) -> None:
        self._fail(500)


class Quiets(commands.Cog):
    @commands.command()
    async def quiet(self, ctx: commands.Context[Any]) -> None:
        raise QuietError("expected, and not worth an issue")

    @commands.command()
    async def quieter(self, ctx: commands.Context[Any]) -> None:
        raise QuieterError("expected too")


def _errors(endpoint) -> list[dict[str, Any]]:
    return [e for e in endpoint.events() if "exception" in e]


def _error_total(endpoint) -> int:
    return sum(int(m["value"]) for m in endpoint.metrics() if m["name"] == "tux.errors.total")


def _field(embed: discord.Embed, name: str) -> str:
    return next(f.value for f in embed.fields if f.name == name) or ""


# --- the budget ---------------------------------------------------------------------------


async def test_a_flood_of_500_sends_the_budget_and_counts_the_rest(make_bot, sentry_endpoint):
    # No transactions: 500 of them in a few seconds would overflow the SDK's transport
    # queue (100 envelopes) and take metrics down with them; they are not the subject.
    harness = await make_bot(events_per_group_per_hour=50, traces_sample_rate=0.0)
    cog = harness.bot.get_cog("Sentry")
    clock = Clock()
    cog.reporter.budget = EventBudget(limit=50, clock=clock)
    flood_started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for _ in range(500):
        await harness.message("!boom")
    snapshot = cog.status_snapshot()
    assert snapshot.errors_reported == 500
    assert snapshot.errors_held_back == 450
    assert snapshot.held_back_groups[0][1] == 450
    errors_field = _field(build_status_embed(snapshot), "Errors")
    assert "**Held back by the budget:** 450" in errors_field
    assert "RuntimeError" in errors_field  # the group, with its count
    # An hour later (our clock), the next failure is sent and says what was held back.
    clock.now += 3600
    await harness.message("!boom")
    await harness.bot.unload_extension("tux_sentry_cog")  # flushes metrics and events
    endpoint = sentry_endpoint
    errors = _errors(endpoint)
    assert len(errors) == 51
    assert all("noise" not in e["contexts"] for e in errors[:50])
    last = errors[-1]
    assert last["fingerprint"] == errors[0]["fingerprint"]
    noise = last["contexts"]["noise"]
    assert noise["suppressed"] == 450
    since = dt.datetime.fromisoformat(noise["since"])
    assert flood_started <= since <= dt.datetime.now(dt.UTC)
    assert_sentry_accepts(last)
    assert _error_total(endpoint) == 501  # every failure counted, sent or not
    # The spike message is about the flood, not held back by it.
    spikes = [e for e in endpoint.events() if "Error spike" in str(e.get("logentry"))]
    assert len(spikes) == 1


async def test_the_owners_before_send_dropping_an_event_spends_no_budget(
    make_bot, sentry_flush
):
    dropped: list[str] = []

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if len(dropped) < 3 and "exception" in event:
            dropped.append(event["event_id"])
            return None
        return event

    harness = await make_bot(load=False)
    sentry_sdk.init(dsn=harness.endpoint.dsn, before_send=before_send)
    harness.bot.sentry_cog_config = SentryCogConfig(events_per_group_per_hour=5)
    await harness.bot.load_extension("tux_sentry_cog")
    for _ in range(10):
        await harness.message("!boom")
    endpoint = sentry_flush()
    assert len(dropped) == 3
    assert len(_errors(endpoint)) == 5  # the budget, after the three the owner dropped
    assert harness.bot.get_cog("Sentry").reporter.budget.held_back == 2


async def test_zero_is_unlimited(make_bot, sentry_flush):
    harness = await make_bot(events_per_group_per_hour=0, traces_sample_rate=0.0)
    for _ in range(60):
        await harness.message("!boom")
    assert len(_errors(sentry_flush())) == 60  # past the default budget of 50


def test_the_budget_table_is_bounded_and_an_evicted_group_starts_afresh():
    clock = Clock()
    budget = EventBudget(limit=1, max_groups=100, clock=clock)
    assert budget.admit("a") is not None
    assert budget.admit("a") is None
    for i in range(1000):
        budget.admit(f"g{i}")
    assert len(budget) == 100
    assert budget.admit("a") is not None  # evicted: a fresh window
    assert budget.held_back == 1  # the total never forgets


# --- Discord's outages --------------------------------------------------------------------


async def test_discord_server_errors_from_five_commands_are_one_group(make_bot, sentry_flush):
    harness = await make_bot(events_per_group_per_hour=0)
    await harness.bot.add_cog(Outage())
    for name in ("one", "two", "three", "four", "five"):
        for _ in range(4):
            await harness.message(f"!{name}")
    await harness.message("!other")
    errors = _errors(sentry_flush())
    assert len(errors) == 21
    fingerprints = [tuple(e["fingerprint"]) for e in errors]
    assert fingerprints.count(("discord-server-error", "503")) == 20
    assert fingerprints.count(("discord-server-error", "500")) == 1
    assert {e["tags"]["command.name"] for e in errors} == {
        "one",
        "two",
        "three",
        "four",
        "five",
        "other",
    }
    assert_sentry_accepts(errors[0])


async def test_an_outage_spends_one_budget_not_one_per_command(make_bot, sentry_flush):
    harness = await make_bot(events_per_group_per_hour=3)
    await harness.bot.add_cog(Outage())
    for name in ("one", "two", "three", "four", "five"):
        await harness.message(f"!{name}")
    assert len(_errors(sentry_flush())) == 3


# --- the ignore list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["QuietError", f"{QuietError.__module__}.QuietError"], ids=["bare", "qualified"]
)
async def test_ignored_errors_are_counted_not_sent(make_bot, sentry_endpoint, name):
    harness = await make_bot(ignore_errors=(name,))
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()  # none from earlier tests
    await harness.bot.add_cog(Quiets())
    await harness.message("!quiet")
    await harness.message("!quieter")  # a subclass matches too
    await harness.message("!boom")  # not ignored
    cog = harness.bot.get_cog("Sentry")
    assert cog.reporter.stats.ignored == 2
    assert "2 ignored" in _field(build_status_embed(cog.status_snapshot()), "Errors")
    await harness.bot.unload_extension("tux_sentry_cog")
    errors = _errors(sentry_endpoint)
    assert [e["exception"]["values"][-1]["type"] for e in errors] == ["RuntimeError"]
    assert _error_total(sentry_endpoint) == 3
    # Like any error the cog does not send, they stay breadcrumbs of their own runs.
    crumbs = errors[0]["breadcrumbs"]["values"]
    assert not [c for c in crumbs if c["category"] == "error"]


def test_ignore_names_match_bare_qualified_and_bases_only():
    assert IgnoredErrors(["ValueError"]).matches(UnicodeDecodeError("utf-8", b"", 0, 1, "x"))
    assert IgnoredErrors(["builtins.KeyError"]).matches(KeyError("k"))
    assert not IgnoredErrors(["other.module.QuietError"]).matches(QuietError())
    assert not IgnoredErrors(["QuieterError"]).matches(QuietError())  # a base is not its subclass
    assert not IgnoredErrors(["Quie"]).matches(QuietError())
    assert not IgnoredErrors().matches(QuietError())


# --- opt-outs -----------------------------------------------------------------------------


async def _every_source(harness) -> int:
    """Fail once on every source a guild member can reach; return the failures."""
    bot = harness.bot
    member = harness.member
    await harness.message("!boom")
    await harness.message("!add 1 two")  # a user error: a breadcrumb, normally
    await harness.slash("slash-boom", {"text": "hello"})
    await harness.interactions.user_context_menu(
        "Inspect", dpytest.get_config().members[1], member=member
    )
    bot.add_view(FailingView(harness.view_errors))
    await harness.interactions.component("sample:explode", member=member)
    bot._connection.store_view(FailingModal())
    await harness.interactions.modal_submit("sample:modal", {"text": "words"}, member=member)
    await harness.interactions.autocomplete("pick", {"fruit": "pe"}, "fruit", member=member)
    bot.dispatch("explode", member.guild)
    await dpytest.run_all_events()
    return 8


def _assert_nothing_about(endpoint, ids: list[int], commands_: set[str]) -> None:
    raw = endpoint.raw_bytes()
    for snowflake in ids:
        assert str(snowflake).encode() not in raw, snowflake
    assert not _errors(endpoint)
    assert not [t for t in endpoint.transactions() if t["transaction"] in commands_]
    for event in endpoint.events() + endpoint.transactions():
        crumbs = (event.get("breadcrumbs") or {}).get("values", [])
        for crumb in crumbs:
            data = crumb.get("data") or {}
            assert data.get("command") not in commands_, crumb
            assert not any(name in (crumb.get("message") or "") for name in commands_), crumb


_SOURCES = {"boom", "add", "slash-boom", "Inspect", "FailingView.explode", "FailingModal",
            "pick", "on_explode"}


async def test_an_opted_out_guild_sends_nothing_on_any_source(make_bot, sentry_endpoint, caplog):
    harness = await make_bot(load=False)
    guild = harness.member.guild
    harness.bot.sentry_cog_config = SentryCogConfig(
        dsn=harness.endpoint.dsn, ignore_guild_ids=(guild.id,)
    )
    await harness.bot.load_extension("tux_sentry_cog")
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()  # none from earlier tests
    failures = await _every_source(harness)
    # A later event of the bot (outside any run) carries the scope's breadcrumbs.
    sentry_sdk.capture_message("later, outside the opted-out runs")
    cog = harness.bot.get_cog("Sentry")
    assert cog.reporter.stats.opted_out == failures
    # The bot's own handlers ran.
    assert harness.bot_errors
    assert harness.tree_errors
    assert harness.view_errors
    await harness.bot.unload_extension("tux_sentry_cog")
    endpoint = sentry_endpoint
    [later] = endpoint.events()
    assert later["message"].startswith("later")
    _assert_nothing_about(endpoint, [guild.id, harness.member.id], _SOURCES)
    assert _error_total(endpoint) == failures  # aggregate metrics still count them
    executed = [m for m in endpoint.metrics() if m["name"] == "tux.commands.duration"]
    assert len(executed) >= 6  # runs counted without their ids


async def test_an_opted_out_user_leaks_into_no_later_event(make_bot, sentry_flush):
    harness = await make_bot(load=False)
    opted, other = dpytest.get_config().members[:2]
    harness.bot.sentry_cog_config = SentryCogConfig(
        dsn=harness.endpoint.dsn, ignore_user_ids=(opted.id,)
    )
    await harness.bot.load_extension("tux_sentry_cog")
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()  # none from earlier tests
    await harness.message("!add 1 two", member=opted)  # user error: no breadcrumb left
    await harness.message("!nap 1 true", member=opted)
    await harness.slash("slash-boom", {"text": "x"}, member=opted)
    await harness.message("!boom", member=other)  # sent, after the opted-out runs
    endpoint = sentry_flush()
    [event] = _errors(endpoint)
    assert event["user"]["id"] == str(other.id)
    assert str(opted.id).encode() not in endpoint.raw_bytes()
    crumbs = event.get("breadcrumbs", {}).get("values", [])
    assert not [c for c in crumbs if (c.get("data") or {}).get("command") in ("add", "nap")]
    assert {t["transaction"] for t in endpoint.transactions()} == {"boom"}


async def test_should_report_sees_the_run_and_can_refuse_it(make_bot, sentry_flush):
    seen: list[RunDescription] = []

    def should_report(run: RunDescription) -> bool:
        seen.append(run)
        # Refuse the whole boom command, and any KeyError once it is raised.
        return run.command != "boom" and not isinstance(run.exception, KeyError)

    harness = await make_bot(should_report=should_report)
    await harness.message("!boom")
    await harness.slash("slash-boom", {"text": "x"})  # refused when it fails
    await harness.message("!tools hammer")  # reported
    endpoint = sentry_flush()
    [event] = _errors(endpoint)
    assert event["tags"]["command.name"] == "tools hammer"
    crumbs = event.get("breadcrumbs", {}).get("values", [])
    assert not [c for c in crumbs if "boom" in json.dumps(c)]
    names = {t["transaction"] for t in endpoint.transactions()}
    assert "boom" not in names
    assert "slash-boom" not in names  # its transaction was dropped with the refusal
    assert "tools hammer" in names
    start = seen[0]
    assert (start.source_type, start.command, start.guild_id, start.user_id, start.exception) == (
        "prefix",
        "boom",
        harness.member.guild.id,
        harness.member.id,
        None,
    )
    late = [d for d in seen if d.exception is not None]
    assert [type(d.exception).__name__ for d in late] == ["KeyError", "IsADirectoryError"]
    assert late[0].source_type == "slash"


async def test_a_failing_should_report_is_logged_and_reports_nothing(
    make_bot, sentry_flush, caplog
):
    def should_report(run: RunDescription) -> bool:
        raise RuntimeError("the owner's rule is broken")

    harness = await make_bot(should_report=should_report)
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog"):
        await harness.message("!boom")
        await harness.message("!boom")
    endpoint = sentry_flush()
    assert not _errors(endpoint)
    assert not endpoint.transactions()
    assert len(harness.bot_errors) == 2  # the bot's own handler saw both, unchanged
    assert all(isinstance(e.original, RuntimeError) for e in harness.bot_errors)
    assert any("should_report raised" in r.getMessage() for r in caplog.records)
    assert harness.bot.get_cog("Sentry").status_snapshot().instrumentation_faults >= 2


async def test_a_task_loop_refused_by_should_report_sends_nothing(make_bot, sentry_flush):
    harness = await make_bot(should_report=lambda run: run.source_type != "task")
    background = harness.bot.get_cog("Background")
    task = background.failing_loop.start()
    import asyncio  # noqa: PLC0415

    await asyncio.gather(task, return_exceptions=True)
    endpoint = sentry_flush()
    assert not _errors(endpoint)
    assert not [t for t in endpoint.transactions() if "failing_loop" in t["transaction"]]
    assert len(background.loop_errors) == 1
    assert harness.bot.get_cog("Sentry").reporter.stats.opted_out == 1


async def test_activity_of_an_opted_out_guild_is_counted_without_its_id(
    make_bot, sentry_endpoint
):
    harness = await make_bot(load=False)
    guild = harness.member.guild
    harness.bot.sentry_cog_config = SentryCogConfig(
        dsn=harness.endpoint.dsn, track_activity=True, ignore_guild_ids=(guild.id,)
    )
    await harness.bot.load_extension("tux_sentry_cog")
    await harness.message("hello there")
    await harness.message("!ping")
    await harness.bot.unload_extension("tux_sentry_cog")
    activity = [m for m in sentry_endpoint.metrics() if m["name"] == "tux.user_activity"]
    assert len(activity) == 2
    assert {m["attributes"]["guild_id"]["value"] for m in activity} == {"opted_out"}
    assert str(guild.id).encode() not in sentry_endpoint.raw_bytes()
    assert not [t for t in sentry_endpoint.transactions() if t["transaction"] == "ping"]
