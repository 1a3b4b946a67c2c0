"""Every figure ``/sentry status`` shows is one the owner could verify by counting.

Run against the real SDK and the loopback endpoint, which can refuse envelopes of some
categories with 429 and ``X-Sentry-Rate-Limits`` as Sentry does. The figures are checked
against what the endpoint received and against the SDK's own client reports.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands

from tux_sentry_cog.core.resources import ResourceSampler
from tux_sentry_cog.status import DM_FAILED_TEXT, NOT_OWNER_TEXT, build_status_embed


def _non_owner() -> discord.Member:
    return dpytest.get_config().members[1]


async def _owned_bot(make_bot, **fields_):
    harness = await make_bot(**fields_)
    harness.bot.owner_id = harness.member.id
    return harness


async def _status(harness) -> dict[str, str]:
    result = await harness.slash("sentry status")
    [embed] = result.first_response["embeds"]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def _settle(predicate, seconds: float = 5.0) -> None:
    """Wait, letting the loop run, until the transport thread made ``predicate`` true."""
    deadline = time.monotonic() + seconds
    # Polled: the transport's thread changes what the predicate reads; no event to await.
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert predicate()


def _field(cog, name: str) -> str:
    embed = build_status_embed(cog.status_snapshot())
    return next(field.value for field in embed.fields if field.name == name)


def _limited(endpoint) -> bool:
    return any(envelope.status == 429 for envelope in endpoint.envelopes)


def _flush_sdk() -> None:
    import sentry_sdk  # noqa: PLC0415

    sentry_sdk.flush(timeout=5.0)


# losses and rate limits --------------------------------------------------------------


async def test_lost_transactions_are_counted_by_quantity_and_category(
    make_bot, sentry_endpoint
):
    harness = await _owned_bot(make_bot)
    cog = harness.bot.get_cog("Sentry")
    sentry_endpoint.rate_limit("transaction", 60)
    await harness.message("!ping")  # its transaction is refused and sets the limit
    dpytest.get_message()
    await _settle(lambda: _limited(sentry_endpoint))
    await _settle(lambda: "rate limited" in (cog.status_snapshot().transport_problem or ""))
    for _ in range(5):  # each transaction is now dropped by the SDK itself
        await harness.message("!query a@example.com")
        dpytest.get_message()
    await asyncio.to_thread(_flush_sdk)  # sends the SDK's client report
    await _settle(
        lambda: ("transaction", "ratelimit_backoff") in sentry_endpoint.client_reports()
    )
    problem = cog.status_snapshot().transport_problem
    reported = sentry_endpoint.client_reports()
    transactions = reported[("transaction", "ratelimit_backoff")]
    spans = reported[("span", "ratelimit_backoff")]
    assert transactions == 5
    assert spans > transactions  # each transaction's spans, its own included
    assert problem is not None
    # The figures of the SDK's own accounting, category by category, never doubled.
    assert f"{transactions:,} transaction (ratelimit_backoff)" in problem
    assert f"{spans:,} span (ratelimit_backoff)" in problem
    # The first transaction reached Sentry and was refused there: shown apart.
    assert "refused by Sentry (429): 1 span, 1 transaction" in problem


async def test_a_transaction_limit_is_shown_for_transactions_only_and_only_while_it_lasts(
    make_bot, sentry_endpoint
):
    harness = await _owned_bot(make_bot)
    cog = harness.bot.get_cog("Sentry")
    sentry_endpoint.rate_limit("transaction", 2)
    await harness.message("!ping")
    dpytest.get_message()
    await _settle(lambda: _limited(sentry_endpoint))
    await _settle(lambda: "rate limited" in (cog.status_snapshot().transport_problem or ""))
    problem = cog.status_snapshot().transport_problem or ""
    assert "rate limited by Sentry: transaction for " in problem
    assert "all categories" not in problem
    await harness.message("!boom")  # errors still arrive while transactions are limited
    await _settle(lambda: "**Sent:** 1 " in _field(cog, "Errors"))
    assert [e["exception"]["values"][-1]["type"] for e in sentry_endpoint.items(
        "event", accepted_only=True
    )] == ["RuntimeError"]
    await asyncio.sleep(2.1)
    assert "rate limited" not in (cog.status_snapshot().transport_problem or "")


# sent means delivered -------------------------------------------------------------------


async def test_sent_counts_what_sentry_accepted_not_what_was_captured(make_bot, sentry_endpoint):
    harness = await _owned_bot(make_bot)
    cog = harness.bot.get_cog("Sentry")
    await harness.message("!boom")
    await _settle(lambda: "**Sent:** 1 " in _field(cog, "Errors"))
    sentry_endpoint.rate_limit("error", 60)
    await harness.message("!boom")
    await _settle(lambda: _limited(sentry_endpoint))
    await _settle(lambda: "Not delivered" in _field(cog, "Errors"), seconds=2.0)
    errors = (await _status(harness))["Errors"]
    accepted = sentry_endpoint.items("event", accepted_only=True)
    assert len(accepted) == 1
    assert "**Sent:** 1 (accepted by Sentry, of 2 queued)" in errors
    assert "**Not delivered:** 1" in errors
    assert accepted[0]["event_id"] in errors  # the last id is one Sentry has


async def test_sentry_test_says_when_sentry_refused_the_event(make_bot, sentry_endpoint):
    harness = await _owned_bot(make_bot)
    sentry_endpoint.rate_limit("error", 1)
    result = await harness.slash("sentry test")
    answer = result.responses[-1]["content"]
    assert "did not arrive" in answer
    assert "429" in answer
    assert result.is_ephemeral()
    await asyncio.sleep(1.1)  # the limit is over, for Sentry and for the SDK
    result = await harness.slash("sentry test")
    answer = result.responses[-1]["content"]
    event_id = answer.split("`")[1]
    assert answer.startswith("Sentry accepted the test event")
    assert event_id in [e["event_id"] for e in sentry_endpoint.items("event", accepted_only=True)]


# failures and user errors -------------------------------------------------------------------


async def test_failed_and_error_rate_count_failures_with_user_errors_apart(make_bot):
    harness = await _owned_bot(make_bot)
    await harness.message("!ping")
    dpytest.get_message()
    for _ in range(3):
        await harness.message("!add 1 x")  # BadArgument: the user's typo
    await harness.message("!boom")
    commands_field = (await _status(harness))["Commands"]
    assert "**Executed:** 5" in commands_field
    assert "**Failed:** 1 (20.0%)" in commands_field
    assert "**User errors:** 3 (60.0%, not failures)" in commands_field
    assert "1.00/min (1 min)" in commands_field  # one failure in the last minute


async def test_top_error_groups_are_groups_that_are_sent(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot)
    for _ in range(4):
        await harness.message("!add 1 x")
    await harness.message("!boom")
    groups = (await _status(harness))["Top error groups"]
    events = [e for e in sentry_flush().events() if "exception" in e]
    assert "BadArgument" not in groups
    assert "RuntimeError" in groups
    assert "**1**" in groups
    assert [e["fingerprint"][0] for e in events] == ["RuntimeError"]


async def test_user_error_groups_are_listed_when_they_are_sent(make_bot, sentry_flush):
    harness = await _owned_bot(make_bot, capture_user_errors=True)
    await harness.message("!add 1 x")
    groups = (await _status(harness))["Top error groups"]
    assert "BadArgument" in groups
    assert [e["fingerprint"][0] for e in sentry_flush().events()] == ["BadArgument"]


# CPU -----------------------------------------------------------------------------------------


class _BusyProcess:
    """psutil's figures for a process keeping 3.59 of 4 cores busy."""

    def memory_info(self) -> Any:
        return type("Memory", (), {"rss": 100 * 1_048_576})()

    def cpu_percent(self, interval: float | None = None) -> float:
        return 359.0

    def num_threads(self) -> int:
        return 4

    def open_files(self) -> list[Any]:
        return []


def test_cpu_is_percent_of_the_whole_machine() -> None:
    sample = ResourceSampler(_BusyProcess(), cpu_count=4).sample()
    assert sample.cpu_percent == pytest.approx(89.75)


def test_cpu_count_defaults_to_the_machines() -> None:
    import psutil  # noqa: PLC0415

    sample = ResourceSampler(_BusyProcess()).sample()
    assert sample.cpu_percent == pytest.approx(min(100.0, 359.0 / (psutil.cpu_count() or 1)))
    assert 0 <= sample.cpu_percent <= 100


# who sees it ----------------------------------------------------------------------------------


async def test_prefix_status_goes_to_the_owner_in_a_dm(make_bot):
    harness = await _owned_bot(make_bot)
    await harness.message("!sentry status")
    message = dpytest.get_message()
    assert isinstance(message.channel, discord.DMChannel)
    assert message.guild is None
    assert message.embeds
    assert dpytest.verify().message().nothing()  # nothing in the guild channel


async def test_slash_group_is_for_administrators_once_synced(make_bot):
    harness = await make_bot()
    group = harness.bot.tree.get_command("sentry")
    assert group.default_permissions == discord.Permissions(administrator=True)
    assert int(group.to_dict(harness.bot.tree)["default_member_permissions"]) == 8


class _ChattyHandlers(commands.Cog):
    """A bot whose own error handler answers every failed check, as many bots do."""

    @commands.Cog.listener()
    async def on_command_error(self, ctx: commands.Context[Any], error: Exception) -> None:
        if isinstance(error, commands.CheckFailure):
            await ctx.send("You may not do that.", ephemeral=True)


@pytest.mark.parametrize("form", ["prefix", "slash"])
async def test_a_non_owner_gets_one_refusal_whatever_the_bots_handler(make_bot, form):
    harness = await _owned_bot(make_bot)
    await harness.bot.add_cog(_ChattyHandlers())
    if form == "prefix":
        await harness.message("!sentry status", member=_non_owner())
        assert dpytest.get_message().content == NOT_OWNER_TEXT
        assert dpytest.verify().message().nothing()
    else:
        result = await harness.slash("sentry status", member=_non_owner())
        assert [r.get("content") for r in result.responses] == [NOT_OWNER_TEXT]
        assert result.is_ephemeral()
        assert dpytest.verify().message().nothing()
    assert harness.bot_errors == []
    assert harness.tree_errors == []


async def test_closed_dms_get_one_line_in_the_channel_and_no_figures(make_bot, monkeypatch):
    harness = await _owned_bot(make_bot)

    class _Closed:
        status = 403
        reason = "Forbidden"

    async def closed_dms(self, *args: Any, **kwargs: Any) -> None:
        raise discord.Forbidden(_Closed(), {"code": 50007, "message": "Cannot send messages"})

    monkeypatch.setattr(discord.Member, "send", closed_dms)
    await harness.message("!sentry status")
    message = dpytest.get_message()
    assert message.content == DM_FAILED_TEXT
    assert message.embeds == []
    assert not isinstance(message.channel, discord.DMChannel)
    assert dpytest.verify().message().nothing()
    assert harness.bot_errors == []
