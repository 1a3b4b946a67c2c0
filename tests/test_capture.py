"""Command errors through a real bot: the event contract of docs/events.md, end to end."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
import sentry_sdk
from conftest import BOT_TOKEN, assert_sentry_accepts
from discord.ext import commands

from tux_sentry_cog import SentryCogConfig
from tux_sentry_cog.testing import PUBLIC_KEY

SPEC_TAGS = {
    "command.name",
    "command.type",
    "cog",
    "guild.id",
    "correlation_id",
    "error.category",
    "error.severity",
    "error.related",
}
SPEC_CONTEXTS = {
    "error",
    "command",
    "discord_user",
    "guild",
    "channel",
    "system",
    "performance",
    "correlation",
}


def _outside_sampling_context(endpoint) -> str:
    """Everything sent, less the trace's sampling context, where the SDK puts the DSN's
    public key by protocol (and the same key authenticates every request)."""
    parts = []
    for envelope in endpoint.envelopes:
        header = json.loads(envelope.raw.split(b"\n", 1)[0])
        header.pop("trace", None)
        parts.append(json.dumps(header))
        for _, payload in envelope.items:
            if isinstance(payload, dict):
                item = copy.deepcopy(payload)
                item.get("contexts", {}).get("trace", {}).pop("dynamic_sampling_context", None)
                parts.append(json.dumps(item, default=str))
            else:
                parts.append(repr(payload))
    return "\n".join(parts)


def _the_event(endpoint):
    events = endpoint.events()
    assert len(events) == 1, [e.get("exception") for e in events]
    return events[0]


async def test_prefix_error_event_contract(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!boom some private words")
    event = _the_event(sentry_flush())

    assert assert_sentry_accepts(event)
    exc = event["exception"]["values"][-1]
    assert exc["type"] == "RuntimeError"
    assert exc["mechanism"] == {"type": "tux_sentry_cog", "handled": False}
    assert set(event["tags"]) >= SPEC_TAGS
    assert event["tags"]["command.name"] == "boom"
    assert event["tags"]["command.type"] == "prefix"
    assert event["tags"]["cog"] == "Sample"
    assert event["tags"]["guild.id"] == str(harness.member.guild.id)
    assert event["tags"]["error.category"] == "internal"
    assert event["tags"]["error.severity"] == "error"
    assert event["tags"]["error.related"] == "no"
    assert event["level"] == "error"
    assert set(event["contexts"]) >= SPEC_CONTEXTS
    command = event["contexts"]["command"]
    assert command["name"] == command["qualified_name"] == "boom"
    assert command["cog_name"] == "Sample"
    assert command["parameters"] == {"text": {"type": "str"}}
    assert event["contexts"]["guild"]["name"] == "Test Guild 0"
    assert event["contexts"]["channel"]["name"] == "TextChannel_0"
    assert event["contexts"]["discord_user"]["bot"] is False
    assert isinstance(event["contexts"]["discord_user"]["permissions"], list)
    assert event["contexts"]["system"]["discord_py_version"] == discord.__version__
    assert event["contexts"]["performance"]["response_time_ms"] >= 0
    correlation = event["contexts"]["correlation"]
    assert correlation["correlation_id"] == event["tags"]["correlation_id"]
    assert event["user"] == {"id": str(harness.member.id)}
    # The user's id is normalised out of the grouping; the location has no line number.
    assert event["fingerprint"] == [
        "RuntimeError",
        "boom for user <ID>",
        "boom",
        "Sample",
        "conftest:boom",
    ]
    # The bot's own handler still ran, with discord.py's wrapper around the error.
    assert len(harness.bot_errors) == 1
    assert isinstance(harness.bot_errors[0], commands.CommandInvokeError)


async def test_nothing_secret_leaves(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!boom tell alice@example.com the plan")
    endpoint = sentry_flush()
    _the_event(endpoint)
    sent = endpoint.raw_bytes()
    assert b"alice@example.com" not in sent
    assert b"the plan" not in sent  # message content
    assert BOT_TOKEN.encode() not in sent
    assert PUBLIC_KEY not in _outside_sampling_context(endpoint)
    assert not sentry_sdk.get_client().should_send_default_pii()


async def test_parameter_values_only_with_pii(make_bot, sentry_flush):
    harness = await make_bot(send_pii=True)
    await harness.message("!boom tell alice@example.com the plan")
    event = _the_event(sentry_flush())
    assert event["contexts"]["command"]["parameters"]["text"] == {
        "type": "str",
        "value": "tell alice@example.com the plan",
    }
    assert event["user"]["username"] == harness.member.name


async def test_hybrid_command_as_prefix_and_as_slash(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!hybrid apples")
    await harness.slash("hybrid", {"word": "pears"})
    events = sentry_flush().events()
    assert len(events) == 2
    for event in events:
        assert_sentry_accepts(event)
        assert event["tags"]["command.type"] == "hybrid"
        assert event["tags"]["command.name"] == "hybrid"
        # Unwrapped from CommandInvokeError / HybridCommandError: the bot's own error.
        assert event["exception"]["values"][-1]["type"] == "ZeroDivisionError"
        # The user's word is a parameter value: scrubbed, so both runs group together.
        assert event["fingerprint"][:2] == ["ZeroDivisionError", "hybrid failed on [Filtered]"]
    assert events[0]["fingerprint"] == events[1]["fingerprint"]
    # Both forms reach the bot's on_command_error, once each.
    assert len(harness.bot_errors) == 2


async def test_slash_error_captured_once_and_tree_handler_runs(make_bot, sentry_flush):
    harness = await make_bot()
    result = await harness.slash("slash-boom", {"text": "hello"})
    assert result.requests == []  # the command failed before answering
    endpoint = sentry_flush()
    event = _the_event(endpoint)
    assert_sentry_accepts(event)
    assert event["tags"]["command.type"] == "slash"
    assert event["tags"]["command.name"] == "slash-boom"
    assert event["exception"]["values"][-1]["type"] == "KeyError"
    assert event["contexts"]["command"]["parameters"] == {"text": {"type": "str"}}
    assert len(harness.tree_errors) == 1
    [transaction] = [t for t in endpoint.transactions() if t["transaction"] == "slash-boom"]
    assert transaction["contexts"]["trace"]["op"] == "discord.app_command"
    assert transaction["contexts"]["trace"]["status"] == "internal_error"
    assert transaction["contexts"]["trace"]["trace_id"] == event["contexts"]["trace"]["trace_id"]


async def test_tree_handler_set_after_load_is_chained(make_bot, sentry_flush):
    harness = await make_bot()
    late: list[BaseException] = []

    @harness.bot.tree.error
    async def late_handler(interaction, error):
        late.append(error)

    await harness.slash("slash-boom", {"text": "x"})
    assert len(_the_event(sentry_flush())["exception"]["values"]) >= 1
    assert len(late) == 1


async def test_successful_commands_send_no_event(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!ping")
    assert dpytest.verify().message().content("pong")
    result = await harness.slash("slash-ok", {"text": "abc"})
    assert result.first_response["content"] == "ok 3"
    endpoint = sentry_flush()
    assert endpoint.events() == []
    assert {t["transaction"] for t in endpoint.transactions()} == {"ping", "slash-ok"}


async def test_user_errors_are_breadcrumbs_not_events(make_bot, sentry_flush):
    """A user's mistake is no event: a breadcrumb in its own run's scope, which what the
    bot sends from that run (its error handler) shows, and no other run's event does."""
    harness = await make_bot()

    async def on_command_error(ctx: commands.Context[Any], error: BaseException) -> None:
        harness.bot_errors.append(error)
        if isinstance(error, commands.UserInputError):
            sentry_sdk.capture_message(f"handler saw {type(error).__name__}")

    harness.bot.on_command_error = on_command_error
    dpytest.configure(harness.bot, members=2)
    await harness.message("!add one 2")  # BadArgument
    await harness.message("!nosuchcommand")  # CommandNotFound
    await harness.message("!boom")  # a real error, in a run of its own
    endpoint = sentry_flush()
    (handled,) = [e for e in endpoint.events() if e.get("message") == "handler saw BadArgument"]
    crumbs = [b for b in handled["breadcrumbs"]["values"] if b["category"] == "error"]
    assert [b["data"]["category"] for b in crumbs] == ["user_input"]
    assert crumbs[0]["message"].startswith("BadArgument")
    (boom,) = [e for e in endpoint.events() if "exception" in e]
    assert not [b for b in boom["breadcrumbs"]["values"] if b["category"] == "error"]
    cog = harness.bot.get_cog("Sentry")
    assert cog.reporter.stats.user_errors == 2
    assert len(harness.bot_errors) == 3


async def test_user_errors_sent_when_asked(make_bot, sentry_flush):
    harness = await make_bot(capture_user_errors=True)
    await harness.message("!add one 2")
    event = _the_event(sentry_flush())
    assert_sentry_accepts(event)
    assert event["tags"]["error.category"] == "user_input"
    assert event["level"] == "info"
    assert event["exception"]["values"][-1]["type"] == "BadArgument"


async def test_local_handler_still_runs_and_marks_handled(make_bot, sentry_flush):
    harness = await make_bot()
    await harness.message("!handled")
    event = _the_event(sentry_flush())
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    assert [kind for kind, _ in harness.sample.handled] == ["local"]
    assert len(harness.bot_errors) == 1  # discord.py dispatches on_command_error anyway


async def test_concurrent_commands_keep_their_own_context(make_bot, sentry_flush):
    # PII on, so each event names its own arguments and can be matched to its run.
    harness = await make_bot(send_pii=True)
    members = dpytest.get_config().members
    runs = [(ms, members[ms % 2]) for ms in range(20, 220, 10)]  # 20 overlapping runs
    await asyncio.gather(
        *(harness.message(f"!nap {ms} true", member=member) for ms, member in runs)
    )
    sent = sentry_flush().events()
    events = [e for e in sent if "exception" in e]
    # Twenty failures of one cause in seconds are also one error spike.
    spikes = [e["logentry"]["message"] for e in sent if "exception" not in e]
    assert spikes == ["Error spike: LookupError in nap"]
    assert len(events) == len(runs)
    by_ms = {e["contexts"]["command"]["parameters"]["ms"]["value"]: e for e in events}
    assert sorted(by_ms) == [ms for ms, _ in runs]
    correlation_ids = {e["tags"]["correlation_id"] for e in events}
    assert len(correlation_ids) == len(runs)
    for ms, member in runs:
        event = by_ms[ms]
        assert event["user"]["id"] == str(member.id)
        assert event["contexts"]["performance"]["response_time_ms"] >= ms
        # Each command's breadcrumbs are its own: one start, with its own id.
        starts = [
            b for b in event["breadcrumbs"]["values"] if b["message"] == "Started command: nap"
        ]
        assert [b["data"]["correlation_id"] for b in starts] == [event["tags"]["correlation_id"]]


async def test_default_integrations_give_one_event_per_failure(make_bot, sentry_flush, caplog):
    """discord.py logs every unhandled failure; the SDK's logging integration must not
    turn that log line into a second event."""
    harness = await make_bot()
    del harness.bot.on_command_error  # back to discord.py's default handler, which logs
    dpytest.configure(harness.bot, members=2)  # re-wrap dpytest's error queue
    with caplog.at_level(logging.ERROR, logger="discord.ext.commands.bot"):
        await harness.message("!boom")
        await dpytest.run_all_events()
    endpoint = sentry_flush()
    _the_event(endpoint)
    assert any("Ignoring exception in command boom" in r.getMessage() for r in caplog.records)


async def test_logged_duplicate_is_never_built(make_bot, sentry_flush, caplog):
    """The SDK's logging integration builds an event (traceback formatted, each frame's
    source read from disk) and a breadcrumb (traceback formatted again) for every failure a
    bot logs. The cog reports that failure itself, so neither is built: no event processor
    sees a log event, and a later event of the same handler has no breadcrumb of it. The
    bot's own handlers still get the line, and other log lines still make breadcrumbs."""
    harness = await make_bot()
    mine = logging.getLogger("mybot.errors")

    async def on_command_error(ctx: commands.Context[Any], error: BaseException) -> None:
        mine.error("command failed", exc_info=error)
        mine.warning("a plain warning")
        sentry_sdk.capture_message("handled it")

    harness.bot.on_command_error = on_command_error
    dpytest.configure(harness.bot, members=2)
    built: list[str] = []

    def processor(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") != "transaction":
            built.append("log" if "log_record" in hint else "cog")
        return event

    with sentry_sdk.isolation_scope() as scope, caplog.at_level(logging.INFO):
        scope.add_event_processor(processor)
        await harness.message("!boom")
        await dpytest.run_all_events()
    endpoint = sentry_flush()
    assert built == ["cog", "cog"]  # the failure's event and the handler's message
    failures = [e for e in endpoint.events() if "exception" in e]
    assert [e["exception"]["values"][-1]["type"] for e in failures] == ["RuntimeError"]
    assert [r.getMessage() for r in caplog.records if r.name == "mybot.errors"] == [
        "command failed",
        "a plain warning",
    ]
    (handled,) = [e for e in endpoint.events() if e.get("message") == "handled it"]
    crumbs = [b.get("message") for b in handled["breadcrumbs"]["values"]]
    assert "a plain warning" in crumbs
    assert "command failed" not in crumbs


@pytest.mark.parametrize("with_cog", [False, True], ids=["bare-bot", "with-cog"])
async def test_error_still_reaches_the_log(make_bot, caplog, with_cog):
    harness = await make_bot(load=with_cog)
    del harness.bot.on_command_error
    dpytest.configure(harness.bot, members=2)
    with caplog.at_level(logging.ERROR, logger="discord.ext.commands.bot"):
        await harness.message("!boom")
        await dpytest.run_all_events()
    logged = [r for r in caplog.records if "Ignoring exception in command boom" in r.getMessage()]
    assert len(logged) == 1
    assert isinstance(logged[0].exc_info[1], commands.CommandInvokeError)


async def test_owner_initialised_sdk_gets_one_event_per_failure(
    make_bot, sentry_flush, sentry_endpoint
):
    """The owner called sentry_sdk.init with every default integration (logging included)
    before loading the cog: each failure is still one event, from every source."""
    sentry_sdk.init(dsn=sentry_endpoint.dsn)
    harness = await make_bot(SentryCogConfig())
    del harness.bot.on_command_error
    del harness.bot.on_error
    harness.bot.tree.on_error = type(harness.bot.tree).on_error.__get__(harness.bot.tree)
    dpytest.configure(harness.bot, members=2)
    harness.interactions = type(harness.interactions)(harness.bot)
    await harness.message("!boom")
    await harness.slash("slash-boom", {"text": "x"})
    harness.bot.dispatch("explode", dpytest.get_config().guilds[0])
    await dpytest.run_all_events()
    events = [e for e in sentry_flush().events() if "exception" in e]
    assert sorted(e["tags"]["command.type"] for e in events) == ["event", "prefix", "slash"]
    mechanisms = {e["exception"]["values"][-1]["mechanism"]["type"] for e in events}
    assert mechanisms == {"tux_sentry_cog"}  # none came from the logging integration
