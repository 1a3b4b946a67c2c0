"""``python -m tux_sentry_cog demo``: a real bot, a simulated Discord, a local Sentry.

The bot is a plain ``commands.Bot`` with the cog loaded through ``load_extension``; dpytest
stands in for the gateway (prefix commands) and the interaction driver for slash
commands. Events go to a Sentry endpoint started in-process (or to ``--dsn``), and the
report at the end is read back from what the SDK really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import sentry_sdk
from discord import app_commands
from discord.ext import commands

from tux_sentry_cog.config import SentryCogConfig
from tux_sentry_cog.testing.interactions import InteractionDriver
from tux_sentry_cog.testing.server import SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DemoCommands", "run_demo"]


class DemoCommands(commands.Cog):
    """What a small bot has: commands that work, and commands that fail."""

    @commands.command()
    async def ping(self, ctx: commands.Context[Any]) -> None:
        """Answer quickly."""
        await ctx.send("pong")

    @commands.command()
    async def divide(self, ctx: commands.Context[Any], a: int, b: int) -> None:
        """Fail with ZeroDivisionError when b is 0."""
        await ctx.send(str(a / b))

    @commands.command()
    async def profile(self, ctx: commands.Context[Any], *, note: str) -> None:
        """Fail with a message that holds an id; the argument is private."""
        msg = f"profile of user {ctx.author.id} is missing"
        raise LookupError(msg)

    @app_commands.command(name="greet")
    async def greet(self, interaction: discord.Interaction[Any], name: str) -> None:
        """Answer a slash command."""
        await interaction.response.send_message(f"hello {name}")

    @app_commands.command(name="report")
    async def report(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Defer, work, then fail: a slash command's error and duration."""
        await interaction.response.defer(ephemeral=True)
        await asyncio.sleep(0.05)
        msg = "report storage is unavailable"
        raise ConnectionError(msg)


def _say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _endpoint(dsn: str | None) -> Iterator[SentryEndpoint | None]:
    if dsn is not None:
        yield None
        return
    with SentryEndpoint() as endpoint:
        yield endpoint


async def _workload(bot: commands.Bot, test: Any) -> None:
    driver = InteractionDriver(bot)
    member = test.get_config().members[0]
    steps: list[tuple[str, Any]] = [
        ("prefix command that works: !ping", lambda: test.message("!ping")),
        ("prefix command that fails: !divide 1 0", lambda: test.message("!divide 1 0")),
        ("bad argument (a user error): !divide one 2", lambda: test.message("!divide one 2")),
        ("unknown command (a user error): !nope", lambda: test.message("!nope")),
        (
            "private argument, error with an id: !profile call me at 555-0100",
            lambda: test.message("!profile call me at 555-0100"),
        ),
        (
            "slash command that works: /greet",
            lambda: driver.slash("greet", {"name": "ana"}, member=member),
        ),
        (
            "slash command that fails after 50 ms: /report",
            lambda: driver.slash("report", {"text": "quarterly"}, member=member),
        ),
    ]
    for number, (label, step) in enumerate(steps, 1):
        _say(f"  [{number}/{len(steps)}] {label}")
        with contextlib.suppress(commands.CommandError):
            await step()


def _report(endpoint: SentryEndpoint) -> dict[str, Any]:
    events = endpoint.events()
    transactions = endpoint.transactions()
    _say(f"\nEvents sent: {len(events)}")
    for event in events:
        exc = event.get("exception", {}).get("values", [{}])[-1]
        tags = event.get("tags", {})
        _say(f"  - {exc.get('type')}: {exc.get('value')}")
        _say(
            f"    command={tags.get('command.name')} type={tags.get('command.type')} "
            f"category={tags.get('error.category')} severity={tags.get('error.severity')} "
            f"correlation_id={tags.get('correlation_id')}"
        )
        _say(f"    fingerprint={event.get('fingerprint')}")
        _say(f"    contexts={sorted(event.get('contexts', {}))}")
    _say(f"\nTransactions sent: {len(transactions)}")
    for txn in transactions:
        trace = txn["contexts"]["trace"]
        start = _ts(txn["start_timestamp"])
        duration_ms = (_ts(txn["timestamp"]) - start) * 1000
        _say(
            f"  - {txn['transaction']:<10} op={trace['op']:<20} status={trace.get('status'):<18}"
            f" {duration_ms:7.1f} ms"
        )
    return {"events": len(events), "transactions": len(transactions)}


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    from datetime import datetime  # noqa: PLC0415 - only for the report

    return datetime.fromisoformat(str(value)).timestamp()


async def run_demo(dsn: str | None = None, json_path: Path | None = None) -> dict[str, Any]:
    """Run the scripted workload and print the report; return its totals."""
    try:
        import discord.ext.test as dpytest  # noqa: PLC0415 - an optional dependency
    except ImportError:
        _say('The demo needs dpytest: python -m pip install "tux-sentry-cog[testing]"')
        raise SystemExit(2) from None
    started = time.perf_counter()
    with _endpoint(dsn) as endpoint:
        target = endpoint.dsn if endpoint is not None else str(dsn)
        where = "your Sentry" if endpoint is None else f"a local Sentry on port {endpoint.port}"
        _say(f"tux_sentry_cog demo: a real discord.py bot, a simulated Discord, {where}")
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
        await bot._async_setup_hook()  # noqa: SLF001 - what Bot.start would do, without login
        await bot.add_cog(DemoCommands())
        dpytest.configure(bot, members=2)
        bot.sentry_cog_config = SentryCogConfig(dsn=target)  # type: ignore[attr-defined]
        await bot.load_extension("tux_sentry_cog")
        _say("Loaded with: await bot.load_extension('tux_sentry_cog')\nWorkload:")
        await _workload(bot, dpytest)
        sentry_sdk.flush(timeout=5)
        await bot.unload_extension("tux_sentry_cog")
        totals: dict[str, Any] = {}
        if endpoint is not None:
            endpoint.wait_for(lambda e: bool(e.transactions()), timeout=2)
            totals = _report(endpoint)
            if json_path is not None:
                await asyncio.to_thread(json_path.write_text, endpoint.dump_json())
                _say(f"\nEnvelopes written to {json_path}")
        else:
            _say("\nSent to your Sentry; look for the events tagged command.type.")
        await dpytest.empty_queue()
        reset_sentry_sdk()
    _say(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return totals


def main(argv: list[str]) -> int:
    """Parse the demo's arguments and run it."""
    import argparse  # noqa: PLC0415 - the CLI only

    parser = argparse.ArgumentParser(prog="python -m tux_sentry_cog demo")
    parser.add_argument("--dsn", help="send to this Sentry DSN instead of a local endpoint")
    parser.add_argument("--json", type=Path, help="write the captured envelopes to this file")
    args = parser.parse_args(argv)
    totals = asyncio.run(run_demo(args.dsn, args.json))
    if args.dsn is None and not totals.get("events"):
        _say("No event arrived: something is wrong.")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
