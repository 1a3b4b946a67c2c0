"""The with-cog pytest plugin, run on a small suite of its own in a fresh pytest process."""

from __future__ import annotations

import json

pytest_plugins = ["pytester"]

SUITE = """
import discord
import discord.ext.test as dpytest
import pytest_asyncio
from discord.ext import commands


@pytest_asyncio.fixture
async def bot():
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())

    @bot.command()
    async def ping(ctx):
        await ctx.send("pong")

    @bot.command()
    async def fail(ctx):
        raise RuntimeError("the bot's own failure")

    await bot._async_setup_hook()
    dpytest.configure(bot)
    yield bot
    await dpytest.empty_queue()


async def test_ping(bot):
    await dpytest.message("!ping")
    assert dpytest.verify().message().content("pong")


async def test_failure_reaches_the_bot(bot):
    seen = []

    @bot.event
    async def on_command_error(ctx, error):
        seen.append(type(error.original).__name__)

    await dpytest.message("!fail")
    await dpytest.run_all_events()
    assert seen == ["RuntimeError"]


async def test_that_notices_the_cog(bot):
    # Stands for a bot whose behaviour the cog would change.
    assert bot.get_cog("Sentry") is None
"""


def _run(pytester, *args):
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest_subprocess(
        "-p", "tux_sentry_cog.testing.with_cog", "-o", "asyncio_mode=auto", *args
    )


def test_reports_bots_outcomes_and_what_changed(pytester):
    without = pytester.path / "without.json"
    off = _run(pytester, "--sentry-cog=off", f"--sentry-cog-record={without}")
    off.assert_outcomes(passed=3)
    assert json.loads(without.read_text()) == {
        "test_suite.py::test_failure_reaches_the_bot": "passed",
        "test_suite.py::test_ping": "passed",
        "test_suite.py::test_that_notices_the_cog": "passed",
    }
    on = _run(pytester, f"--sentry-cog-compare={without}")
    on.assert_outcomes(passed=2, failed=1)
    assert on.ret != 0
    on.stdout.fnmatch_lines(
        [
            "cog loaded into 3 bots",
            "sent to the loopback Sentry: 1 events, * transactions",
            "faults the cog logged: 0",
            "tests whose outcome changed: 1",
            "  test_suite.py::test_that_notices_the_cog: passed -> call failed",
        ]
    )
