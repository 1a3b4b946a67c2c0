"""Sentry Logs linked to commands: what the SDK sends as ``log`` items, read off the wire.

The owner's own client has Sentry Logs on (``enable_logs=True``); the cog reuses it. Every
record a run emits (stdlib logging or loguru) carries the run's ``correlation_id``,
``command.name``, ``guild.id`` (and ``shard.id`` on a sharded bot); discord.py's own
INFO chatter is not sent unless ``discord_logs_level`` asks for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord.ext.test as dpytest
import pytest
import sentry_sdk
from discord.ext import commands
from loguru import logger as loguru_logger

from tux_sentry_cog import SentryCogConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

_bot_log = logging.getLogger("mybot.shop")


@pytest.fixture(autouse=True)
def _root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


class Shop(commands.Cog):
    """A cog whose command logs as bots do: logging, loguru, and discord.py's loggers."""

    @commands.command()
    async def buy(self, ctx: commands.Context[Any], item: str = "apple") -> None:
        _bot_log.info("selling an item")
        loguru_logger.info("stock lowered")
        logging.getLogger("discord.gateway").info("Shard ID None has sent the HEARTBEAT")
        logging.getLogger("discord.http").warning("We are being rate limited")
        await ctx.send("sold")


def _attributes(log: dict[str, Any]) -> dict[str, Any]:
    return {key: value.get("value") for key, value in log["attributes"].items()}


def _by_body(logs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {log["body"]: _attributes(log) for log in logs}


async def _shop_bot(
    make_bot: Any, sentry_endpoint: Any, shard_count: int | None = None, **config: Any
) -> Any:
    # A bot that logs at INFO: the records exist, so the SDK sees them.
    logging.getLogger().setLevel(logging.INFO)
    sentry_sdk.init(dsn=sentry_endpoint.dsn, enable_logs=True, traces_sample_rate=1.0)
    harness = await make_bot(SentryCogConfig(**config), shard_count=shard_count)
    await harness.bot.add_cog(Shop())
    sentry_endpoint.clear()
    return harness


async def test_log_lines_inside_a_run_carry_the_run(make_bot, sentry_endpoint, sentry_flush):
    harness = await _shop_bot(make_bot, sentry_endpoint)
    await dpytest.message("!buy pear")
    _bot_log.info("between commands")
    logs = _by_body(sentry_flush().logs())
    guild = str(harness.member.guild.id)
    for body in ("selling an item", "stock lowered"):
        attributes = logs[body]
        assert attributes["command.name"] == "buy", attributes
        assert attributes["guild.id"] == guild
        assert len(attributes["correlation_id"]) == 32
        assert "shard.id" not in attributes  # not a sharded bot, as for the run's tags
    # One run, one correlation id: the stdlib and the loguru line are the same run's.
    assert logs["selling an item"]["correlation_id"] == logs["stock lowered"]["correlation_id"]
    # Through the SDK's stdlib and loguru integrations (their origin names vary by SDK).
    assert "loguru" not in logs["selling an item"]["sentry.origin"]
    assert "loguru" in logs["stock lowered"]["sentry.origin"]
    # Outside a run nothing is made up.
    outside = logs["between commands"]
    assert "correlation_id" not in outside
    assert "command.name" not in outside


async def test_each_run_has_its_own_correlation_id(make_bot, sentry_endpoint, sentry_flush):
    await _shop_bot(make_bot, sentry_endpoint)
    await dpytest.message("!buy pear")
    await dpytest.message("!buy plum")
    ids = [
        _attributes(log)["correlation_id"]
        for log in sentry_flush().logs()
        if log["body"] == "selling an item"
    ]
    assert len(ids) == 2
    assert ids[0] != ids[1]


async def test_log_lines_of_a_sharded_bot_carry_the_shard(
    make_bot, sentry_endpoint, sentry_flush
):
    await _shop_bot(make_bot, sentry_endpoint, shard_count=2)  # an AutoShardedBot
    member = dpytest.get_config().members[2]  # of the guild on shard 1
    assert member.guild.shard_id == 1
    await dpytest.message("!buy pear", channel=member.guild.text_channels[0], member=member)
    attributes = _by_body(sentry_flush().logs())["selling an item"]
    assert attributes["shard.id"] == "1"
    assert attributes["command.name"] == "buy"


async def test_discord_info_chatter_is_not_sent_unless_asked(
    make_bot, sentry_endpoint, sentry_flush
):
    await _shop_bot(make_bot, sentry_endpoint)
    await dpytest.message("!buy pear")
    logging.getLogger("discord.client").info("logging in using static token")
    bodies = {log["body"] for log in sentry_flush().logs()}
    assert "selling an item" in bodies  # the bot's own lines go out
    assert "We are being rate limited" in bodies  # discord.py's warnings too
    assert "Shard ID None has sent the HEARTBEAT" not in bodies
    assert "logging in using static token" not in bodies


async def test_discord_info_logs_sent_when_the_owner_asks(
    make_bot, sentry_endpoint, sentry_flush
):
    await _shop_bot(make_bot, sentry_endpoint, discord_logs_level="INFO")
    await dpytest.message("!buy pear")
    logs = _by_body(sentry_flush().logs())
    assert logs["Shard ID None has sent the HEARTBEAT"]["command.name"] == "buy"
