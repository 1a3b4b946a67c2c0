"""A real ``commands.AutoShardedBot`` (two shards, a guild on each) through dpytest and the
interaction driver: every source tags ``shard.id`` with the shard its guild is on, a DM
with shard 0, and a task loop (no guild, no shard) with none."""

from __future__ import annotations

import asyncio
import logging

import discord
import discord.ext.test as dpytest
import pytest
from conftest import FailingModal, FailingView, assert_sentry_accepts

from tux_sentry_cog.testing.sharding import configure, guild_id_on_shard


def _on_shard(shard_id):
    """A member of the guild on ``shard_id`` (two members per guild, in guild order)."""
    config = dpytest.get_config()
    [guild] = [g for g in config.guilds if g.shard_id == shard_id]
    return next(m for m in config.members if m.guild == guild)


def _one_event(endpoint, command_type):
    events = [e for e in endpoint.events() if e["tags"].get("command.type") == command_type]
    assert len(events) == 1, [e["tags"] for e in endpoint.events()]
    assert_sentry_accepts(events[0])
    return events[0]


def _transaction(endpoint, name):
    [transaction] = [t for t in endpoint.transactions() if t["transaction"] == name]
    assert_sentry_accepts(transaction)
    return transaction


def test_guild_ids_land_on_the_shard_asked_for():
    for count in (1, 2, 3, 16):
        for shard_id in range(count):
            assert (guild_id_on_shard(shard_id, count) >> 22) % count == shard_id
    with pytest.raises(ValueError, match="not one of 2 shards"):
        guild_id_on_shard(2, 2)


async def test_dpytest_refuses_a_sharded_bot_and_the_kit_takes_it():
    bot = discord.ext.commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.all(), shard_count=2
    )
    await bot._async_setup_hook()
    with pytest.raises(TypeError, match="Sharded clients not yet supported"):
        dpytest.configure(bot)
    config = configure(bot, guilds=3, members=1)
    assert [g.shard_id for g in config.guilds] == [0, 1, 0]
    assert dpytest.get_config() is config
    # The shard table a connected bot has, so bot.shards and latencies read as on Discord.
    assert sorted(bot.shards) == [0, 1]
    assert [shard_id for shard_id, _ in bot.latencies] == [0, 1]
    assert bot.get_shard(1).id == 1
    assert bot._connection.shard_ids == [0, 1]
    await bot.close()  # closing the unconnected shards does nothing


async def test_sentry_bot_fixture_takes_a_sharded_bot(sentry_bot, sentry_flush):
    bot = discord.ext.commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.all(), shard_count=2
    )

    @bot.command()
    async def fail(ctx):
        raise RuntimeError("failed on a shard")

    await sentry_bot(bot=bot, guilds=2)
    member = _on_shard(1)
    with pytest.raises(discord.ext.commands.CommandInvokeError):
        await dpytest.message("!fail", channel=member.guild.text_channels[0], member=member)
    [event] = sentry_flush().events()
    assert event["tags"]["shard.id"] == "1"


@pytest.mark.parametrize("shard_id", [0, 1])
async def test_prefix_command(make_bot, sentry_flush, shard_id):
    harness = await make_bot(shard_count=2)
    member = _on_shard(shard_id)
    await harness.message("!boom", channel=member.guild.text_channels[0], member=member)
    endpoint = sentry_flush()
    event = _one_event(endpoint, "prefix")
    assert event["tags"]["shard.id"] == str(shard_id)
    assert event["tags"]["guild.id"] == str(member.guild.id)
    assert _transaction(endpoint, "boom")["tags"]["shard.id"] == str(shard_id)
    assert harness.bot_errors  # the bot's own handler still ran


async def test_prefix_command_in_a_dm_is_shard_0(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    member = _on_shard(1)  # a member of the guild on shard 1, writing in a DM
    dm = await member.create_dm()
    await harness.message("!boom", channel=dm, member=member)
    endpoint = sentry_flush()
    event = _one_event(endpoint, "prefix")
    assert event["tags"]["guild.id"] == "dm"
    assert event["tags"]["shard.id"] == "0"
    assert _transaction(endpoint, "boom")["tags"]["shard.id"] == "0"


async def test_slash_command(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    await harness.slash("slash-boom", {"text": "x"}, member=_on_shard(1))
    endpoint = sentry_flush()
    assert _one_event(endpoint, "slash")["tags"]["shard.id"] == "1"
    assert _transaction(endpoint, "slash-boom")["tags"]["shard.id"] == "1"
    assert len(harness.tree_errors) == 1


async def test_slash_command_in_a_dm_is_shard_0(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    await harness.slash("slash-boom", {"text": "x"}, member=_on_shard(1)._user)
    event = _one_event(sentry_flush(), "slash")
    assert event["tags"]["guild.id"] == "dm"
    assert event["tags"]["shard.id"] == "0"


async def test_context_menu(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    member = _on_shard(1)
    await harness.interactions.user_context_menu("Inspect", member, member=member)
    endpoint = sentry_flush()
    assert _one_event(endpoint, "context_menu")["tags"]["shard.id"] == "1"
    assert _transaction(endpoint, "Inspect")["tags"]["shard.id"] == "1"


async def test_component(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    harness.bot.add_view(FailingView(harness.view_errors))
    await harness.interactions.component("sample:explode", member=_on_shard(1))
    endpoint = sentry_flush()
    assert _one_event(endpoint, "component")["tags"]["shard.id"] == "1"
    assert _transaction(endpoint, "FailingView.explode")["tags"]["shard.id"] == "1"
    assert len(harness.view_errors) == 1


async def test_modal(make_bot, sentry_flush, caplog):
    harness = await make_bot(shard_count=2)
    harness.bot._connection.store_view(FailingModal())
    with caplog.at_level(logging.ERROR, logger="discord.ui.modal"):
        await harness.interactions.modal_submit(
            "sample:modal", {"text": "feedback"}, member=_on_shard(1)
        )
    assert _one_event(sentry_flush(), "modal")["tags"]["shard.id"] == "1"


async def test_autocomplete(make_bot, sentry_flush, caplog):
    harness = await make_bot(shard_count=2)
    with caplog.at_level(logging.ERROR, logger="discord.app_commands.tree"):
        await harness.interactions.autocomplete(
            "pick", {"fruit": "pe"}, "fruit", member=_on_shard(1)
        )
    assert _one_event(sentry_flush(), "autocomplete")["tags"]["shard.id"] == "1"


@pytest.mark.parametrize("shard_id", [0, 1])
async def test_listener_error(make_bot, sentry_flush, shard_id):
    harness = await make_bot(shard_count=2)
    guild = _on_shard(shard_id).guild
    harness.bot.dispatch("explode", guild)
    await dpytest.run_all_events()
    event = _one_event(sentry_flush(), "event")
    assert event["tags"]["shard.id"] == str(shard_id)
    assert event["tags"]["guild.id"] == str(guild.id)
    assert harness.event_errors == ["on_explode"]


async def test_task_loop_has_no_shard(make_bot, sentry_flush):
    harness = await make_bot(shard_count=2)
    background = harness.bot.get_cog("Background")
    await asyncio.gather(background.failing_loop.start(), return_exceptions=True)
    event = _one_event(sentry_flush(), "task")
    # A loop runs beside the gateway, on no shard and in no guild: no shard.id to give.
    assert "shard.id" not in event["tags"]
    assert len(background.loop_errors) == 1
