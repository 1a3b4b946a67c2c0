"""dpytest for ``AutoShardedBot``: guilds on chosen shards, without touching dpytest.

dpytest 0.7.0's ``configure`` refuses any ``discord.AutoShardedClient`` with
``TypeError("Sharded clients not yet supported")``. The refusal is a blanket one, not a
real incompatibility: its backend (``backend.configure``) works on a sharded client as
it is, and guilds already answer ``guild.shard_id`` from ``shard_count``. What a sharded
bot lacks under dpytest is:

- shards: ``AutoShardedClient`` only fills its shard table when it connects, so
  ``bot.shards``, ``bot.latencies`` and ``bot.get_shard`` stay empty;
- ``shard_ids`` on the connection state (dpytest's state is a plain one);
- guilds on known shards: dpytest's guild ids come from the clock, so the shard each
  lands on (``(id >> 22) % shard_count``) is chance.

:func:`configure` does what ``dpytest.configure`` does (the backend, the error queue
around ``on_command_error``, the message callbacks, guilds with channels and members),
then adds those three. It uses dpytest's backend, callbacks and runner configuration
as they are, so ``dpytest.message``, ``dpytest.get_config`` and the verify helpers work
on the sharded bot, and :class:`~tux_sentry_cog.testing.InteractionDriver` does too.
Any other client goes to ``dpytest.configure`` unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord.shard import Shard

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["configure", "guild_id_on_shard"]


def guild_id_on_shard(shard_id: int, shard_count: int) -> int:
    """A fresh snowflake that Discord routes through ``shard_id`` of ``shard_count``.

    Discord sends a guild's events through shard ``(guild_id >> 22) % shard_count``; the
    id's time part is moved forward (by at most ``shard_count - 1`` milliseconds) until
    that is ``shard_id``.
    """
    if not 0 <= shard_id < shard_count:
        raise ValueError(f"shard {shard_id} is not one of {shard_count} shards")
    from discord.ext.test import factories  # noqa: PLC0415 - the testing extra

    base = factories.make_id()
    step = (shard_id - (base >> 22) % shard_count) % shard_count
    return base + (step << 22)


class _ShardSocket(discord.gateway.DiscordWebSocket):
    """A shard's gateway socket that is never connected (closing it does nothing)."""

    async def close(self, code: int = 4000, reason: bytes = b"") -> None:  # noqa: ARG002
        self._close_code = code


def _install_shards(bot: discord.AutoShardedClient, shard_ids: Sequence[int]) -> None:
    # AutoShardedClient keeps its shards in a name-mangled table that only launch_shard
    # fills; a Shard built on an unconnected socket is enough for bot.shards, .latencies
    # and .get_shard, and it never starts its reading task.
    queue = getattr(bot, "_AutoShardedClient__queue", None)

    def put(item: Any) -> None:
        if queue is not None:
            queue.put_nowait(item)

    if not hasattr(bot, "_reconnect"):  # connect() sets it; a Shard reads it when built
        bot._reconnect = True
    shards: dict[int, Shard] = {}
    for shard_id in shard_ids:
        socket = _ShardSocket(None, loop=bot.loop)  # type: ignore[arg-type]  # never connected
        socket.shard_id = shard_id
        socket.shard_count = bot.shard_count
        shards[shard_id] = Shard(socket, bot, put)
    bot._AutoShardedClient__shards = shards  # type: ignore[attr-defined]


def configure(
    client: discord.Client,
    *,
    guilds: int | Sequence[str] = 1,
    text_channels: int | Sequence[str] = 1,
    voice_channels: int | Sequence[str] = 1,
    members: int | Sequence[str] = 1,
) -> Any:
    """``dpytest.configure``, which also takes an ``AutoShardedBot``.

    On a sharded client (``shard_count`` set), guild ``i`` is on shard
    ``shard_ids[i % len(shard_ids)]`` (``shard_ids`` defaults to every shard), so two
    guilds on a two-shard bot are on shards 0 and 1; every guild has the channels and
    members asked for, and the bot's own member. Direct messages go through shard 0, as
    on Discord.

    Args:
        client: The bot; ``_async_setup_hook`` already run, cogs added.
        guilds: How many guilds, or their names.
        text_channels: Text channels per guild (a count or names).
        voice_channels: Voice channels per guild (a count or names).
        members: Members per guild other than the bot (a count or names).

    Returns:
        dpytest's ``RunnerConfig`` (what ``dpytest.get_config()`` returns).

    Raises:
        ValueError: A sharded client without ``shard_count``.
    """
    import discord.ext.test as dpytest  # noqa: PLC0415 - the testing extra
    from discord.ext.test import backend, callbacks, runner  # noqa: PLC0415

    if not isinstance(client, discord.AutoShardedClient):
        dpytest.configure(
            client,
            guilds=_plain(guilds),
            text_channels=_plain(text_channels),
            voice_channels=_plain(voice_channels),
            members=_plain(members),
        )
        return dpytest.get_config()
    if not client.shard_count:
        raise ValueError("give the AutoShardedBot a shard_count: dpytest has no gateway to ask")
    shard_ids = list(client.shard_ids or range(client.shard_count))

    backend.configure(client)
    state = backend.get_state()
    state.shard_ids = shard_ids  # type: ignore[attr-defined]  # as a sharded state
    _install_shards(client, shard_ids)

    # The rest is what dpytest.configure does after its refusal.
    old_error = getattr(client, "on_command_error", None)

    async def on_command_error(ctx: Any, error: Exception) -> None:
        try:
            if old_error:
                await old_error(ctx, error)
        finally:
            await runner.error_queue.put((ctx, error))

    on_command_error.__old__ = old_error  # type: ignore[attr-defined]
    client.on_command_error = on_command_error  # type: ignore[attr-defined]
    callbacks.set_callback(runner._message_callback, "send_message")
    callbacks.set_callback(runner._edit_member_callback, "edit_member")

    state.stop_dispatch()
    names = [f"Test Guild {n}" for n in range(guilds)] if isinstance(guilds, int) else guilds
    made_guilds: list[discord.Guild] = []
    made_channels: list[Any] = []
    made_members: list[discord.Member] = []
    for index, name in enumerate(names):
        shard_id = shard_ids[index % len(shard_ids)]
        guild = backend.make_guild(name, id_num=guild_id_on_shard(shard_id, client.shard_count))
        made_guilds.append(guild)
        made_channels.extend(
            backend.make_text_channel(channel, guild)
            for channel in _names(text_channels, "TextChannel_")
        )
        made_channels.extend(
            backend.make_voice_channel(channel, guild)
            for channel in _names(voice_channels, "VoiceChannel_")
        )
        for number, member_name in enumerate(_names(members, "TestUser")):
            user = backend.make_user(member_name, f"{number + 1:04}")
            made_members.append(
                backend.make_member(user, guild, nick=f"{user.name}_{number}_nick")
            )
        assert client.user is not None  # noqa: S101 - backend.configure sets it
        backend.make_member(client.user, guild, nick=f"{client.user.name}_nick")
    state.start_dispatch()

    runner._cur_config = runner.RunnerConfig(client, made_guilds, made_channels, made_members)
    return runner._cur_config


def _plain(value: int | Sequence[str]) -> int | list[str]:
    return value if isinstance(value, int) else list(value)


def _names(value: int | Sequence[str], prefix: str) -> list[str]:
    return [f"{prefix}{n}" for n in range(value)] if isinstance(value, int) else list(value)
