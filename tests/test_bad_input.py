"""Bad input gives a complete event, never a crash: unprintable errors, errors with no
traceback, DMs, Discord API errors."""

from __future__ import annotations

import discord.ext.test as dpytest
from conftest import assert_sentry_accepts
from discord.ext import commands


def _only_event(endpoint):
    events = [e for e in endpoint.events() if "exception" in e]
    assert len(events) == 1, events
    assert_sentry_accepts(events[0])
    return events[0]


async def test_unprintable_exception(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!unprintable")
    event = _only_event(sentry_flush())
    # discord.py itself fails formatting the error (CommandInvokeError calls str() on it),
    # so what escapes the command is that RuntimeError, chained to the original.
    values = event["exception"]["values"]
    assert [v["type"] for v in values] == ["UnprintableError", "RuntimeError"]
    assert event["fingerprint"][:2] == ["RuntimeError", "str() of this error fails"]
    assert event["fingerprint"][-1] == "conftest:__str__"
    # It reached the bot's on_error (through on_message), not on_command_error, and the
    # cog reported it once although both hooks saw it.
    assert harness.event_errors == ["on_message"]
    assert harness.bot_errors == []


async def test_error_without_traceback(make_bot, sentry_flush):
    harness = await make_bot()
    config = dpytest.get_config()
    message = dpytest.backend.make_message("!ping", config.members[0], config.channels[0])
    ctx = await harness.bot.get_context(message)
    never_raised = commands.CommandInvokeError(LookupError("never raised"))
    harness.bot.dispatch("command_error", ctx, never_raised)  # outside any command run
    await dpytest.run_all_events()
    event = _only_event(sentry_flush())
    assert event["exception"]["values"][-1]["type"] == "LookupError"
    assert event["tags"]["command.name"] == "ping"
    # No frames, so no location: the fingerprint simply has one part fewer.
    assert event["fingerprint"] == ["LookupError", "never raised", "ping", "Sample"]


async def test_slash_command_in_a_dm(make_bot, sentry_flush):
    harness = await make_bot()
    user = harness.member._user
    await harness.interactions.slash("slash-boom", {"text": "x"}, member=user)
    event = _only_event(sentry_flush())
    assert event["tags"]["guild.id"] == "dm"
    assert event["contexts"]["guild"] == {"id": "dm"}
    assert event["user"]["id"] == str(user.id)


async def test_discord_api_error_keeps_its_code(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!forbidden")
    event = _only_event(sentry_flush())
    assert event["tags"]["error.category"] == "discord_api"
    assert event["tags"]["error.severity"] == "warning"
    assert event["level"] == "warning"
    assert event["contexts"]["error"]["http_status"] == 403
    assert event["contexts"]["error"]["api_code"] == 50013
    assert "error code: 50013" in event["fingerprint"][1]
