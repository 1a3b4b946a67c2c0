"""A real ``commands.Bot`` driven by dpytest, with the cog loaded against a loopback Sentry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands, tasks
from loguru import logger as loguru_logger
from sentry_relay.processing import StoreNormalizer

from tux_sentry_cog import (
    EnhancedTransactionManager,
    SentryCogConfig,
    get_correlation_id,
    track_database_operation,
    track_external_api_call,
)
from tux_sentry_cog.testing import InteractionDriver, SentryEndpoint, reset_sentry_sdk
from tux_sentry_cog.testing.sharding import configure as configure_dpytest

# The fixtures of tux_sentry_cog.testing.plugin come from its pytest11 entry point: listing
# it in pytest_plugins as well would register it twice.

BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"


async def _choices(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    raise LookupError("no choices today")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this error fails")

    def __repr__(self) -> str:
        raise RuntimeError("repr() of this error fails")


class FakeResponse:
    """What discord.HTTPException reads off an aiohttp response."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class Sample(commands.Cog):
    """Commands that succeed, fail, and sleep, for the tests."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, BaseException]] = []
        self.seen_ids: list[str | None] = []

    @commands.command()
    async def ping(self, ctx: commands.Context[Any]) -> None:
        await ctx.send("pong")

    @commands.command()
    async def boom(self, ctx: commands.Context[Any], *, text: str = "") -> None:
        raise RuntimeError(f"boom for user {ctx.author.id}")

    @commands.group()
    async def tools(self, ctx: commands.Context[Any]) -> None:
        return None

    @tools.command()
    async def hammer(self, ctx: commands.Context[Any]) -> None:
        raise IsADirectoryError("the hammer broke")

    @commands.command()
    async def leak(self, ctx: commands.Context[Any], *, text: str) -> None:
        # Everything a careless bot could put in an exception: the token, the text, and
        # text derived from it (no longer equal to the message, so only shapes catch it).
        raise RuntimeError(f"token {ctx.bot.http.token} failed on {text} / {text.upper()}")

    @commands.command()
    async def unprintable(self, ctx: commands.Context[Any]) -> None:
        raise UnprintableError

    @commands.command()
    async def forbidden(self, ctx: commands.Context[Any]) -> None:
        body = {"code": 50013, "message": "Missing Permissions"}
        raise discord.Forbidden(FakeResponse(403, "Forbidden"), body)

    @commands.command()
    async def add(self, ctx: commands.Context[Any], a: int, b: int) -> None:
        await ctx.send(str(a + b))

    @commands.command()
    async def nap(self, ctx: commands.Context[Any], ms: int, fail: bool = False) -> None:
        await asyncio.sleep(ms / 1000)
        if fail:
            raise LookupError(f"failed after {ms} ms")
        await ctx.send(f"slept {ms}")

    @commands.command()
    async def handled(self, ctx: commands.Context[Any]) -> None:
        raise ValueError("the local handler takes this")

    @handled.error
    async def handled_error(self, ctx: commands.Context[Any], error: Exception) -> None:
        self.handled.append(("local", error))

    @commands.command()
    async def query(self, ctx: commands.Context[Any], email: str) -> None:
        sql = f"SELECT * FROM users WHERE email = '{email}'"  # noqa: S608 - a query's text
        async with track_database_operation("select", "users", query=sql):
            await asyncio.sleep(0.01)
        with track_database_operation("update", "users"):
            pass
        await self._decorated_insert()
        async with track_external_api_call("github", "/repos") as call:
            call.set_status_code(503)
        self.seen_ids.append(get_correlation_id())
        await ctx.send("queried")

    @track_database_operation("insert", "audit")
    async def _decorated_insert(self) -> None:
        await asyncio.sleep(0)

    @commands.command()
    async def logs(self, ctx: commands.Context[Any]) -> None:
        loguru_logger.info("inside the command")
        self.seen_ids.append(get_correlation_id())

    @commands.command()
    async def child(self, ctx: commands.Context[Any]) -> None:
        span = EnhancedTransactionManager().start_child_transaction(None, "cache.get", "lookup")
        self.seen_ids.append(None if span is None else span.op)
        if span is not None:
            span.finish()

    @commands.hybrid_command(name="hybrid")
    async def hybrid(self, ctx: commands.Context[Any], word: str) -> None:
        raise ZeroDivisionError(f"hybrid failed on {word}")

    @app_commands.command(name="slash-ok")
    async def slash_ok(self, interaction: discord.Interaction[Any], text: str) -> None:
        await interaction.response.send_message(f"ok {len(text)}")

    @app_commands.command(name="slash-boom")
    async def slash_boom(self, interaction: discord.Interaction[Any], text: str) -> None:
        raise KeyError(f"slash failed for {interaction.user.id}")

    @app_commands.command(name="pick")
    @app_commands.autocomplete(fruit=_choices)
    async def pick(self, interaction: discord.Interaction[Any], fruit: str) -> None:
        await interaction.response.send_message(fruit)

    @app_commands.command(name="slash-nap")
    async def slash_nap(self, interaction: discord.Interaction[Any], ms: int) -> None:
        await interaction.response.defer()
        await asyncio.sleep(ms / 1000)
        await interaction.followup.send(f"slept {ms}")


class FailingView(discord.ui.View):
    """A persistent view whose button fails, with the bot's own error handler."""

    def __init__(self, seen: list[BaseException]) -> None:
        super().__init__(timeout=None)
        self.seen = seen

    @discord.ui.button(label="Explode", custom_id="sample:explode")
    async def explode(self, interaction: discord.Interaction[Any], button: Any) -> None:
        raise OSError(f"button failed for {interaction.user.id}")

    @discord.ui.button(label="Fine", custom_id="sample:fine")
    async def fine(self, interaction: discord.Interaction[Any], button: Any) -> None:
        await interaction.response.send_message("fine")

    async def on_error(
        self, interaction: discord.Interaction[Any], error: Exception, item: Any
    ) -> None:
        self.seen.append(error)


class FailingModal(discord.ui.Modal, title="Feedback"):
    """A modal whose submission fails; the default on_error logs it."""

    text: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Text", custom_id="text")

    def __init__(self) -> None:
        super().__init__(custom_id="sample:modal", timeout=None)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        raise ValueError(f"cannot store feedback of {len(self.text.value)} characters")


class Background(commands.Cog):
    """A listener and a task loop that fail, with the bot's own loop error handler."""

    def __init__(self) -> None:
        self.loop_errors: list[BaseException] = []

    @commands.Cog.listener()
    async def on_explode(self, guild: discord.Guild) -> None:
        raise RuntimeError(f"listener failed in guild {guild.id}")

    @tasks.loop(count=1)
    async def failing_loop(self) -> None:
        raise ValueError("the loop found corrupt data")

    @failing_loop.error
    async def failing_loop_error(self, error: BaseException) -> None:
        self.loop_errors.append(error)


@app_commands.context_menu(name="Inspect")
async def inspect_member(interaction: discord.Interaction[Any], member: discord.Member) -> None:
    raise PermissionError(f"cannot inspect {member.id}")


class BotHarness:
    """One bot, its sample cog, what its own handlers saw, and the interaction driver."""

    def __init__(self, bot: commands.Bot, sample: Sample) -> None:
        self.bot = bot
        self.sample = sample
        self.bot_errors: list[BaseException] = []
        self.tree_errors: list[BaseException] = []
        self.view_errors: list[BaseException] = []
        self.event_errors: list[str] = []
        self.interactions = InteractionDriver(bot)

    @property
    def member(self) -> discord.Member:
        return dpytest.get_config().members[0]

    async def message(self, content: str, **kwargs: Any) -> None:
        """Send a message; errors the bot's handler re-raises through dpytest are swallowed."""
        with contextlib.suppress(commands.CommandError):
            await dpytest.message(content, **kwargs)

    async def slash(self, name: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("member", self.member)
        return await self.interactions.slash(name, options, **kwargs)


MakeBot = Callable[..., Awaitable[BotHarness]]


@pytest_asyncio.fixture
async def make_bot(sentry_endpoint: SentryEndpoint) -> AsyncIterator[MakeBot]:
    """Return a factory of configured bots with the cog loaded; unloads and closes after."""
    bots: list[commands.Bot] = []

    async def factory(
        config: SentryCogConfig | None = None,
        *,
        load: bool = True,
        shard_count: int | None = None,
        **config_fields: Any,
    ) -> BotHarness:
        intents = discord.Intents.all()
        bot: commands.Bot
        if shard_count is None:
            bot = commands.Bot(command_prefix="!", intents=intents)
        else:  # one guild per shard, two members in each
            bot = commands.AutoShardedBot(
                command_prefix="!", intents=intents, shard_count=shard_count
            )
        await bot._async_setup_hook()
        sample = Sample()
        await bot.add_cog(sample)
        await bot.add_cog(Background())
        bot.tree.add_command(inspect_member)
        configure_dpytest(bot, guilds=shard_count or 1, members=2)
        bot.http.token = BOT_TOKEN
        harness = BotHarness(bot, sample)
        harness.endpoint = sentry_endpoint

        @bot.event
        async def on_command_error(ctx: commands.Context[Any], error: BaseException) -> None:
            harness.bot_errors.append(error)

        @bot.event
        async def on_error(event_method: str, /, *args: Any, **kwargs: Any) -> None:
            harness.event_errors.append(event_method)

        @bot.tree.error
        async def on_tree_error(
            interaction: discord.Interaction[Any], error: app_commands.AppCommandError
        ) -> None:
            harness.tree_errors.append(error)

        if config is None:
            config_fields.setdefault("dsn", sentry_endpoint.dsn)
            config = SentryCogConfig(**config_fields)
        bot.sentry_cog_config = config  # type: ignore[attr-defined]
        if load:
            await bot.load_extension("tux_sentry_cog")
        bots.append(bot)
        return harness

    yield factory
    for bot in bots:
        with contextlib.suppress(Exception):
            await bot.unload_extension("tux_sentry_cog")
    await dpytest.empty_queue()
    reset_sentry_sdk()


_NORMALIZER = StoreNormalizer(project_id=1, enable_trimming=True)


def _trimmed(meta: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(meta, dict):
        for key, value in meta.items():
            if key == "" and isinstance(value, dict):
                rem = value.get("rem") or []
                if any(r and r[0] == "!limit" for r in rem) or value.get("err"):
                    found.append(path or "<root>")
            else:
                found.extend(_trimmed(value, f"{path}.{key}" if path else str(key)))
    return found


def assert_sentry_accepts(event: dict[str, Any]) -> dict[str, Any]:
    """Run Sentry's own normaliser on ``event``: no errors, nothing trimmed."""
    normalized = _NORMALIZER.normalize_event(event)
    assert not normalized.get("errors"), normalized.get("errors")
    trimmed = _trimmed(normalized.get("_meta") or {})
    assert not trimmed, f"Sentry would trim or reject: {trimmed}"
    return normalized  # type: ignore[no-any-return]
