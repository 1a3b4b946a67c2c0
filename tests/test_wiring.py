"""The wiring: discord.py patched once per process, inert without a loaded cog.

Each test here is one way a bot, another library or discord.py itself can change the
ground under the cog: wrappers added after load, class patches of other libraries,
``on_error`` set late, runs in flight while the cog goes away, concurrent spans, handlers
that raise, sharded bots, and discord.py versions that lack a name or a slot.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
import sentry_sdk
from conftest import assert_sentry_accepts
from discord import app_commands
from discord.ext import commands, tasks

from tux_sentry_cog import DiscordIntegration, SentryCogConfig, track_database_operation


def _exception_events(endpoint):
    return [e for e in endpoint.events() if "exception" in e]


async def test_wrapper_on_invoke_added_after_load_survives_reload(make_bot, sentry_flush):
    harness = await make_bot()
    bot = harness.bot
    seen: list[str] = []
    inner = bot.invoke

    async def owners_invoke(ctx, /):
        seen.append(ctx.invoked_with)
        await inner(ctx)

    bot.invoke = owners_invoke  # another extension's wrapper, put on after the cog
    await bot.reload_extension("tux_sentry_cog")
    await harness.message("!boom")
    assert seen == ["boom"]
    events = _exception_events(sentry_flush())
    assert len(events) == 1, "the reloaded cog must see the command through the wrapper"
    assert events[0]["tags"]["command.name"] == "boom"
    assert len(harness.bot_errors) == 1


async def test_a_class_patch_added_after_ours_survives_unload(make_bot):
    harness = await make_bot()
    before = tasks.Loop.__dict__["_loop"]
    calls: list[str] = []

    async def their_loop(self, *args, **kwargs):
        calls.append("theirs")
        return await before(self, *args, **kwargs)

    tasks.Loop._loop = their_loop  # another library patches after the cog loaded
    try:
        await harness.bot.unload_extension("tux_sentry_cog")
        assert tasks.Loop.__dict__["_loop"] is their_loop
        background = harness.bot.get_cog("Background")
        await asyncio.gather(background.failing_loop.start(), return_exceptions=True)
        assert calls == ["theirs"]
        assert len(background.loop_errors) == 1  # the loop itself still works
    finally:
        tasks.Loop._loop = before


async def test_on_error_set_after_load_still_reports_gateway_listener_errors(
    make_bot, sentry_flush
):
    harness = await make_bot()
    late: list[str] = []

    @harness.bot.event
    async def on_error(event_method, /, *args, **kwargs):
        late.append(event_method)

    # The way a gateway event arrives: through the dispatch ConnectionState holds.
    harness.bot._connection.dispatch("explode", harness.member.guild)
    await dpytest.run_all_events()
    events = _exception_events(sentry_flush())
    assert [e["tags"]["command.name"] for e in events] == ["on_explode"]
    assert late == ["on_explode"]


@pytest.mark.parametrize("action", ["reload", "unload"])
async def test_a_run_in_flight_keeps_its_error_and_status(make_bot, sentry_flush, action):
    harness = await make_bot()
    bot = harness.bot
    command = asyncio.create_task(harness.message("!nap 300 true"))
    cog = bot.get_cog("Sentry")
    for _ in range(200):
        if cog.instrumentation.active_runs:
            break
        await asyncio.sleep(0.005)
    assert cog.instrumentation.active_runs == 1
    if action == "reload":
        await bot.reload_extension("tux_sentry_cog")
    else:
        await bot.unload_extension("tux_sentry_cog")
    await command
    assert len(harness.bot_errors) == 1
    endpoint = sentry_flush()
    [event] = _exception_events(endpoint)
    assert event["tags"]["command.name"] == "nap"
    assert event["exception"]["values"][-1]["type"] == "LookupError"
    [transaction] = [t for t in endpoint.transactions() if t["transaction"] == "nap"]
    assert transaction["contexts"]["trace"]["status"] == "internal_error"


class Concurrent(commands.Cog):
    """A command that opens spans from tasks running at the same time."""

    @commands.command()
    async def fanout(self, ctx: commands.Context[Any]) -> None:
        async def lookup(table: str, ms: int) -> None:
            async with track_database_operation("select", table):
                await asyncio.sleep(ms / 1000)

        # The bot's own span is the scope's current one while the lookups start.
        with sentry_sdk.start_span(op="bot.work", name="own span"):
            await asyncio.gather(lookup("a", 30), lookup("b", 10), lookup("c", 20))
        await ctx.send("done")


async def test_concurrent_spans_are_children_of_the_command_transaction(make_bot, sentry_flush):
    harness = await make_bot(traces_sample_rate=1.0)
    await harness.bot.add_cog(Concurrent())
    await harness.message("!fanout")
    assert dpytest.verify().message().content("done")
    [transaction] = [t for t in sentry_flush().transactions() if t["transaction"] == "fanout"]
    root = transaction["contexts"]["trace"]["span_id"]
    lookups = [s for s in transaction["spans"] if s["op"] == "db.query"]
    assert sorted(s["description"] for s in lookups) == ["select a", "select b", "select c"]
    assert {s["parent_span_id"] for s in lookups} == {root}


async def test_on_command_error_raising_from_error_is_reported(make_bot, sentry_flush):
    harness = await make_bot()

    @harness.bot.event
    async def on_command_error(ctx, error):
        raise RuntimeError("the error handler itself failed") from error

    await harness.message("!boom")
    await dpytest.run_all_events()
    events = _exception_events(sentry_flush())
    values = sorted(e["exception"]["values"][-1]["value"] for e in events)
    assert len(events) == 2, values
    assert any("error handler itself failed" in v for v in values)
    handler = next(e for e in events if e["tags"]["command.type"] == "event")
    assert handler["tags"]["command.name"] == "on_command_error"
    assert_sentry_accepts(handler)


class Listening(commands.Cog, name="Listening"):
    """A listener that fails on one message."""

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.content == "listen-fail":
            raise ValueError("the listener tripped")


async def test_listener_error_carries_shard_cog_user_and_channel(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)  # an AutoShardedBot, a guild on each shard
    bot = harness.bot
    await bot.add_cog(Listening())
    member = dpytest.get_config().members[2]  # of the guild on shard 1
    channel = member.guild.text_channels[0]
    await dpytest.message("listen-fail", channel=channel, member=member)
    await dpytest.run_all_events()
    [event] = _exception_events(sentry_flush())
    assert event["tags"]["command.name"] == "on_message"
    assert event["tags"]["cog"] == "Listening"
    assert event["tags"]["shard.id"] == "1"
    assert event["user"]["id"] == str(member.id)
    assert event["contexts"]["channel"]["id"] == str(channel.id)
    assert_sentry_accepts(event)


async def test_user_error_breadcrumbs_stay_in_their_run(make_bot, sentry_flush):
    """Runs come from one scope, the whole bot's: a breadcrumb left there would show in
    every later event of any user or guild (up to a hundred of them, each event)."""
    harness = await make_bot()
    for _ in range(3):
        await harness.message("!add 1 notanumber")  # BadArgument: a breadcrumb, no event
    await harness.message("!boom")
    [event] = _exception_events(sentry_flush())
    crumbs = [b.get("message", "") for b in event["breadcrumbs"]["values"]]
    assert not [c for c in crumbs if "BadArgument" in c], crumbs
    assert harness.bot.get_cog("Sentry").reporter.stats.user_errors == 3


@pytest.mark.parametrize("track_activity", [False, True], ids=["off", "on"])
async def test_activity_listeners_exist_only_when_turned_on(make_bot, track_activity):
    harness = await make_bot(track_activity=track_activity)
    cog = harness.bot.get_cog("Sentry")

    def ours(event: str) -> list[Any]:
        listeners = harness.bot.extra_events.get(event, [])
        return [f for f in listeners if getattr(f, "__self__", None) is cog]

    for event in ("on_message", "on_reaction_add"):
        assert len(ours(event)) == (1 if track_activity else 0), event
    await harness.bot.unload_extension("tux_sentry_cog")
    assert not ours("on_message")


async def test_tree_call_by_keyword_is_forwarded(make_bot, sentry_flush):
    harness = await make_bot()
    tree = harness.bot.tree

    def from_interaction(interaction):
        # A discord.py that passes the interaction by keyword.
        harness.bot.loop.create_task(tree._call(interaction=interaction))

    tree._from_interaction = from_interaction
    result = await harness.slash("slash-ok", {"text": "abc"})
    assert result.first_response["content"] == "ok 3"
    await harness.slash("slash-boom", {"text": "x"})
    [event] = _exception_events(sentry_flush())
    assert event["tags"]["command.name"] == "slash-boom"


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importable_without_base_view():
    # discord.py 2.4 and 2.5 have View only; BaseView came with 2.6.
    done = _run_python(
        """
        import discord.ui.view
        owner = next(k for k in discord.ui.View.__mro__ if "_scheduled_task" in k.__dict__)
        if hasattr(discord.ui.view, "BaseView"):  # as on discord.py 2.4 and 2.5
            del discord.ui.view.BaseView
        import tux_sentry_cog
        tux_sentry_cog.DiscordIntegration.setup_once()
        wrapper = owner.__dict__["_scheduled_task"]
        assert getattr(wrapper, "__tux_sentry_patch__", False), wrapper
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_missing_response_slot_costs_one_metric_and_one_warning():
    done = _run_python(
        """
        import asyncio, logging
        import discord
        from discord.ext import commands
        import discord.ext.test as dpytest

        del discord.InteractionResponse._response_type
        warnings = []
        class Keep(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.WARNING and record.name.startswith("tux_sentry_cog"):
                    warnings.append(record.getMessage())
        logging.getLogger("tux_sentry_cog").addHandler(Keep())

        async def main():
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
            await bot._async_setup_hook()

            @bot.command()
            async def ping(ctx):
                await ctx.send("pong")

            dpytest.configure(bot)
            await bot.load_extension("tux_sentry_cog")
            await dpytest.message("!ping")
            assert dpytest.verify().message().content("pong")
            assert bot.get_cog("Sentry").instrumentation.completed_runs == 1
            await bot.unload_extension("tux_sentry_cog")

        asyncio.run(main())
        assert len(warnings) == 1, warnings
        assert "interactions.response_time" in warnings[0], warnings
        assert discord.__version__ in warnings[0], warnings
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def test_app_command_errors_recorded_without_tree_on_error_override(make_bot, sentry_flush):
    # A bot whose tree keeps discord.py's own on_error still has its errors reported once.
    harness = await make_bot()
    bot = harness.bot
    del bot.tree.on_error  # back to CommandTree.on_error, which logs

    @app_commands.command(name="plain-boom")
    async def plain_boom(interaction: discord.Interaction[Any]) -> None:
        raise ArithmeticError("plain tree failed")

    bot.tree.add_command(plain_boom)
    await harness.slash("plain-boom")
    [event] = _exception_events(sentry_flush())
    assert event["tags"]["command.name"] == "plain-boom"


async def test_an_owner_lists_the_integration_in_init(make_bot, sentry_flush, sentry_endpoint):
    sentry_sdk.init(
        dsn=sentry_endpoint.dsn,
        integrations=[DiscordIntegration(SentryCogConfig(capture_user_errors=True))],
    )
    client = sentry_sdk.get_client()
    assert client.get_integration("discord") is not None
    harness = await make_bot(load=False)
    harness.bot.sentry_cog_config = None  # the bot sets none: the integration's is used
    await harness.bot.load_extension("tux_sentry_cog")
    cog = harness.bot.get_cog("Sentry")
    assert cog.config.capture_user_errors is True
    await harness.message("!add 1 notanumber")
    [event] = _exception_events(sentry_flush())
    assert event["tags"]["error.category"] == "user_input"
    assert "discord" in event["sdk"]["integrations"]


async def test_the_cog_adds_the_integration_to_an_owners_client(
    make_bot, sentry_flush, sentry_endpoint
):
    sentry_sdk.init(dsn=sentry_endpoint.dsn)
    client = sentry_sdk.get_client()
    assert client.get_integration("discord") is None
    harness = await make_bot()
    assert client.get_integration("discord") is not None
    await harness.message("!boom")
    [event] = _exception_events(sentry_flush())
    assert "discord" in event["sdk"]["integrations"]


def test_setup_is_idempotent_across_generations():
    # A second generation of the package (as reload_extension imports it) patches nothing
    # again: each entry point is wrapped exactly once.
    done = _run_python(
        """
        import sys
        from discord.ext.commands.bot import BotBase
        from discord import app_commands
        import tux_sentry_cog
        tux_sentry_cog.DiscordIntegration.setup_once()
        first = (BotBase.invoke, BotBase.dispatch, app_commands.CommandTree._call)
        for name in [m for m in sys.modules if m.split(".")[0] == "tux_sentry_cog"]:
            del sys.modules[name]
        import tux_sentry_cog as again
        assert again is not tux_sentry_cog
        again.DiscordIntegration.setup_once()
        assert (BotBase.invoke, BotBase.dispatch, app_commands.CommandTree._call) == first
        assert not getattr(BotBase.invoke.__wrapped__, "__tux_sentry_patch__", False)
        from tux_sentry_cog.core.runs import current_run as second_var
        assert second_var is getattr(BotBase, "__tux_sentry_cog__").current_run
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
