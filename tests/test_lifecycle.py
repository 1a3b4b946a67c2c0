"""Loading, configuration, client handling, unloading, and faults of the cog itself."""

from __future__ import annotations

import logging
import socket

import discord.ext.test as dpytest
import pytest
import sentry_sdk
from discord.ext import commands
from sentry_sdk.tracing_utils import should_propagate_trace

from tux_sentry_cog import SentryCogConfig
from tux_sentry_cog.core.client import ClientMode

DISCORD_URLS = [
    "https://discord.com/api/v10/channels/1/messages",
    "https://canary.discord.com/api/v10/users/@me",
    "https://discordapp.com/api/gateway",
    "https://cdn.discordapp.net/attachments/1/2/x.png",
    "wss://gateway.discord.gg/?v=10",
]
OTHER_URLS = ["https://api.example.com/v1/things", "http://127.0.0.1:8080/discord.com"]


# unload_extension drops the package's modules from sys.modules, so the cog of a test may
# come from a later import than this file's: compare enum values, not identities.


def _cog(harness):
    return harness.bot.get_cog("Sentry")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TUX_SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("TUX_SENTRY_FLUSH_INTERVAL", "-3"),
        ("TUX_SENTRY_SEND_PII", "perhaps"),
        ("TUX_SENTRY_STATUS_GUILD_IDS", "12,abc"),
    ],
    ids=["rate-above-1", "negative-interval", "not-a-bool", "bad-guild-id"],
)
async def test_bad_environment_value_fails_the_load(make_bot, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    harness = await make_bot(load=False)
    harness.bot.sentry_cog_config = None
    with pytest.raises(commands.ExtensionFailed) as failure:
        await harness.bot.load_extension("tux_sentry_cog")
    message = str(failure.value)
    assert variable in message
    assert value in message
    assert harness.bot.get_cog("Sentry") is None
    assert "invoke" not in harness.bot.__dict__  # nothing was wrapped


async def test_environment_is_read_when_no_config_is_set(make_bot, monkeypatch, sentry_endpoint):
    monkeypatch.setenv("SENTRY_DSN", sentry_endpoint.dsn)
    monkeypatch.setenv("TUX_SENTRY_TRACES_SAMPLE_RATE", "0.25")
    harness = await make_bot(load=False)
    harness.bot.sentry_cog_config = None
    await harness.bot.load_extension("tux_sentry_cog")
    cog = _cog(harness)
    assert cog.config.traces_sample_rate == 0.25
    assert cog.connection.mode == ClientMode.OWNED
    assert sentry_sdk.get_client().options["traces_sample_rate"] == 0.25


async def test_local_mode_tracks_but_sends_nothing(make_bot, sentry_endpoint):
    harness = await make_bot(SentryCogConfig())
    cog = _cog(harness)
    assert cog.connection.mode == ClientMode.LOCAL
    assert not sentry_sdk.get_client().is_active()
    await harness.message("!ping")
    await harness.message("!boom")
    await harness.slash("slash-boom", {"text": "x"})
    assert dpytest.verify().message().content("pong")
    assert cog.reporter.stats.reported == 2
    assert cog.reporter.stats.queued == 0
    assert cog.connection.ledger.watched_delivered == 0
    assert cog.instrumentation.completed_runs == 3
    assert cog.instrumentation.failed_runs == 2
    assert len(cog.reporter.related.recent_errors) == 2
    assert len(harness.bot_errors) == 1
    assert len(harness.tree_errors) == 1
    sentry_sdk.flush(timeout=1)
    assert sentry_endpoint.requests == 0


async def test_an_active_client_is_reused_not_reinitialised(
    make_bot, sentry_flush, sentry_endpoint
):
    seen: list[str] = []

    def owners_before_send(event, hint):
        seen.append(event["event_id"])
        event.setdefault("tags", {})["owner"] = "yes"
        return event

    sentry_sdk.init(dsn=sentry_endpoint.dsn, before_send=owners_before_send)
    client = sentry_sdk.get_client()
    harness = await make_bot(SentryCogConfig(dsn="http://" + "f" * 32 + "@127.0.0.9:1/2"))
    cog = _cog(harness)
    assert cog.connection.mode == ClientMode.EXTERNAL
    assert sentry_sdk.get_client() is client
    await harness.message("!boom")
    [event] = sentry_flush().events()
    assert event["tags"]["owner"] == "yes"  # the owner's hook still runs
    assert event["tags"]["command.name"] == "boom"
    assert len(seen) == 1
    await harness.bot.unload_extension("tux_sentry_cog")
    assert sentry_sdk.get_client() is client
    assert client.is_active()  # the owner's client stays open
    assert client.options["before_send"] is owners_before_send


async def test_no_trace_headers_to_discord(make_bot):
    await make_bot()
    client = sentry_sdk.get_client()
    for url in DISCORD_URLS:
        assert not should_propagate_trace(client, url), url
    for url in OTHER_URLS:
        assert should_propagate_trace(client, url), url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sentry_unreachable_commands_still_work(make_bot):
    dsn = f"http://{'a' * 32}@127.0.0.1:{_closed_port()}/1"
    harness = await make_bot(SentryCogConfig(dsn=dsn))
    await harness.message("!boom")
    await harness.message("!ping")
    assert dpytest.verify().message().content("pong")
    result = await harness.slash("slash-ok", {"text": "hi"})
    assert result.first_response["content"] == "ok 2"
    assert len(harness.bot_errors) == 1
    assert isinstance(harness.bot_errors[0].original, RuntimeError)
    assert _cog(harness).reporter.stats.reported == 1
    await harness.bot.unload_extension("tux_sentry_cog")  # flushing into the void is fine


async def test_sentry_answering_500_changes_nothing_for_the_bot(make_bot, sentry_endpoint):
    sentry_endpoint.respond_with(500)
    harness = await make_bot()
    await harness.message("!boom")
    await harness.message("!ping")
    assert dpytest.verify().message().content("pong")
    sentry_sdk.flush(timeout=2)
    assert sentry_endpoint.wait_for(lambda e: e.requests >= 1)


async def test_load_and_unload_leave_the_bot_as_it_was(make_bot):
    harness = await make_bot(load=False)
    bot = harness.bot
    before = {
        "invoke": bot.invoke,
        "dispatch": bot.dispatch,
        "tree_call": bot.tree._call,
        "tree_on_error": bot.tree.on_error,
    }
    own = set(bot.__dict__)
    await bot.load_extension("tux_sentry_cog")
    # discord.py is patched on its classes, once; the bot's instance is never touched.
    assert set(bot.__dict__) == own
    assert bot.tree.on_error is before["tree_on_error"]
    await bot.unload_extension("tux_sentry_cog")
    assert set(bot.__dict__) == own
    assert bot.invoke == before["invoke"]
    assert bot.dispatch == before["dispatch"]
    assert bot.tree._call == before["tree_call"]
    assert bot.tree.on_error is before["tree_on_error"]
    assert not sentry_sdk.get_client().is_active()  # the cog's own client is closed


async def test_reload_keeps_working(make_bot, sentry_flush):
    harness = await make_bot()
    for _ in range(3):
        await harness.bot.reload_extension("tux_sentry_cog")
    await harness.message("!boom")
    events = sentry_flush().events()
    assert len(events) == 1  # hooks were not stacked by the reloads
    assert len(harness.bot_errors) == 1


async def test_a_fault_in_the_cog_never_breaks_the_command(make_bot, caplog, sentry_flush):
    harness = await make_bot()
    cog = _cog(harness)

    def broken(*args, **kwargs):
        raise RuntimeError("context collection exploded")

    cog.collector.build_report = broken
    with caplog.at_level(logging.ERROR, logger="tux_sentry_cog"):
        await harness.message("!boom")
        await harness.message("!ping")
        await harness.slash("slash-boom", {"text": "x"})
    assert dpytest.verify().message().content("pong")
    # The user's exception reached the bot's own handlers unchanged.
    assert isinstance(harness.bot_errors[0], commands.CommandInvokeError)
    assert str(harness.bot_errors[0].original) == f"boom for user {harness.member.id}"
    assert len(harness.tree_errors) == 1
    faults = [r for r in caplog.records if r.name.startswith("tux_sentry_cog")]
    assert faults, "the fault must be logged"
    assert all("exploded" in str(r.exc_info[1]) for r in faults if r.exc_info)
    assert sentry_flush().events() == []


async def test_local_mode_leaves_the_process_scope_untouched(make_bot):
    harness = await make_bot(SentryCogConfig())
    await harness.message("!tools hammer")
    assert "command.name" not in sentry_sdk.get_isolation_scope()._tags
    assert harness.bot.get_cog("Sentry").reporter.stats.reported == 1
