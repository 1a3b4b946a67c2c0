"""pytest fixtures for bots that use tux_sentry_cog.

Installed as a ``pytest11`` entry point, so pytest loads it wherever the package is
installed (``-p no:tux_sentry_cog`` turns it off); the fixtures only run when a test asks.

- ``sentry_endpoint``: a started :class:`SentryEndpoint`; the SDK's isolation and current
  scopes are emptied before the test (no breadcrumb or tag of an earlier test shows), and
  after it any SDK client still open is closed, so tests never send to each other's
  endpoints.
- ``sentry_flush``: flushes the SDK and waits until the endpoint has what was sent.
- ``sentry_bot``: a factory of real ``commands.Bot`` instances configured for dpytest,
  with your cogs added and ``tux_sentry_cog`` loaded against ``sentry_endpoint``; each is
  unloaded and dpytest's queue emptied after the test. Needs the ``testing`` extra
  (dpytest, pytest-asyncio).
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk

from tux_sentry_cog.testing.server import SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

    from discord.ext import commands

__all__ = ["sentry_endpoint", "sentry_flush"]


def _empty_scopes() -> None:
    # A test's tasks copy the main context, and with it the isolation and current scopes
    # the SDK created there on first use: the same objects for every test of the process.
    # Breadcrumbs, tags and user an earlier test left on them would show in this test's
    # events (and whether they do would depend on the order the tests ran in).
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


@pytest.fixture
def sentry_endpoint() -> Iterator[SentryEndpoint]:
    """A loopback Sentry, empty scopes to start; the SDK is reset after the test."""
    _empty_scopes()
    with SentryEndpoint() as endpoint:
        try:
            yield endpoint
        finally:
            reset_sentry_sdk()


@pytest.fixture
def sentry_flush(sentry_endpoint: SentryEndpoint) -> Callable[[], SentryEndpoint]:
    """Return a function that flushes the SDK and returns the endpoint."""

    def flush() -> SentryEndpoint:
        # flush returns once the transport's queue is done, and a queued envelope is done
        # only after the endpoint answered it; the endpoint records before it answers.
        # So everything captured before this call is recorded, with no wait on top.
        sentry_sdk.flush(timeout=5.0)
        return sentry_endpoint

    return flush


async def _make_bots(endpoint: SentryEndpoint) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    import discord  # noqa: PLC0415 - the testing extra, only when the fixture runs
    import discord.ext.test as dpytest  # noqa: PLC0415
    from discord.ext import commands  # noqa: PLC0415

    from tux_sentry_cog.config import SentryCogConfig  # noqa: PLC0415
    from tux_sentry_cog.testing.sharding import configure  # noqa: PLC0415

    bots: list[commands.Bot] = []

    async def factory(
        cogs: Iterable[commands.Cog] = (),
        *,
        bot: commands.Bot | None = None,
        config: SentryCogConfig | None = None,
        members: int = 2,
        guilds: int = 1,
    ) -> commands.Bot:
        """A bot with ``cogs`` and the cog loaded, configured for dpytest.

        Args:
            cogs: Your cogs, added before the Sentry cog loads.
            bot: Your own bot (a ``commands.Bot`` or ``commands.AutoShardedBot`` with
                a ``shard_count``, or a subclass); by default a
                ``commands.Bot(command_prefix="!", intents=discord.Intents.all())``.
            config: The cog's configuration; by default one sending to
                ``sentry_endpoint``.
            members: Members of each of dpytest's guilds.
            guilds: How many guilds; on a sharded bot guild ``i`` is on shard
                ``i % shard_count``.
        """
        if bot is None:
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
        await bot._async_setup_hook()  # what Bot.start does before login
        for cog in cogs:
            await bot.add_cog(cog)
        configure(bot, guilds=guilds, members=members)
        bot.sentry_cog_config = config or SentryCogConfig(dsn=endpoint.dsn)  # type: ignore[attr-defined]
        await bot.load_extension("tux_sentry_cog")
        bots.append(bot)
        return bot

    try:
        yield factory
    finally:
        for bot in bots:
            with contextlib.suppress(Exception):
                await bot.unload_extension("tux_sentry_cog")
        await dpytest.empty_queue()


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def sentry_bot(
        sentry_endpoint: SentryEndpoint,
    ) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
        """A factory of bots with your cogs and the Sentry cog loaded (see the module)."""
        async for factory in _make_bots(sentry_endpoint):
            yield factory

    __all__ += ["sentry_bot"]
