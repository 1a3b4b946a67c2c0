"""``python -m tux_sentry_cog demo``: a real bot, a simulated Discord, a local Sentry.

The bot is a plain ``commands.Bot`` with the cog loaded through ``load_extension``;
dpytest stands in for the gateway (prefix commands) and the interaction driver for slash
commands and components. Events go to a Sentry endpoint started in-process (or to
``--dsn``, or also to Spotlight with ``--spotlight``), and the report at the end is read
back from what the SDK really sent.

The workload shows every capability: commands that work and fail (one of each error
category), a slash command, a component, a database span, an error spike, a command
that slows down until it is reported as an anomaly, and the owner's status embed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import sentry_sdk
from discord import app_commands
from discord.ext import commands

from tux_sentry_cog.config import SentryCogConfig
from tux_sentry_cog.core.tracing import track_database_operation
from tux_sentry_cog.testing.interactions import InteractionDriver
from tux_sentry_cog.testing.server import SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["DEMO_BOT_TOKEN", "DemoCommands", "run_demo"]

#: The demo's fake Discord API error: what a bot gets when it lacks a permission.
_MISSING_PERMISSIONS = {"code": 50013, "message": "Missing Permissions"}

#: The demo bot's token: shaped like a real one, valid nowhere. What the demo sends
#: (and what a server stores) must never hold it.
DEMO_BOT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAwMA.GdEmOx.demo-token-that-is-valid-nowhere-0000"  # noqa: S105


class _Response:
    status = 403
    reason = "Forbidden"


class DemoView(discord.ui.View):
    """A persistent view: one button works, one fails."""

    def __init__(self) -> None:
        """No timeout, so the view can be persistent."""
        super().__init__(timeout=None)

    @discord.ui.button(label="Vote", custom_id="demo:vote")
    async def vote(self, interaction: discord.Interaction[Any], _: Any) -> None:
        """Answer a button press."""
        await interaction.response.send_message("vote counted", ephemeral=True)

    @discord.ui.button(label="Results", custom_id="demo:results")
    async def results(self, interaction: discord.Interaction[Any], _: Any) -> None:
        """Fail: the results store is broken."""
        msg = f"results for poll {interaction.message or 'unknown'} are corrupt"
        raise KeyError(msg)


class DemoCommands(commands.Cog):
    """What a small bot has: commands that work, and commands that fail."""

    def __init__(self) -> None:
        """The slowdown switch for the anomaly step."""
        self.lookup_ms = 2.0

    @commands.command()
    async def ping(self, ctx: commands.Context[Any]) -> None:
        """Answer quickly."""
        await ctx.send("pong")

    @commands.command()
    async def divide(self, ctx: commands.Context[Any], a: int, b: int) -> None:
        """Fail with ZeroDivisionError when b is 0 (internal); BadArgument on words."""
        await ctx.send(str(a / b))

    @commands.command()
    async def profile(self, ctx: commands.Context[Any], *, note: str) -> None:
        """Fail with a message that holds an id; the argument is private."""
        async with track_database_operation(
            "select", "profiles", query="SELECT * FROM profiles WHERE user_id = $1"
        ):
            await asyncio.sleep(0.005)
        msg = f"profile of user {ctx.author.id} is missing"
        raise LookupError(msg)

    @commands.command()
    @commands.is_owner()
    async def shutdown(self, ctx: commands.Context[Any]) -> None:
        """Owner only: a permission error for anyone else."""
        await ctx.send("bye")

    @commands.command()
    @commands.cooldown(1, 60, commands.BucketType.user)
    async def daily(self, ctx: commands.Context[Any]) -> None:
        """Once a minute: a cooldown error the second time."""
        await ctx.send("here is your daily reward")

    @commands.command()
    async def purge(self, ctx: commands.Context[Any]) -> None:
        """Fail as Discord does when the bot lacks a permission (code 50013)."""
        raise discord.Forbidden(_Response(), _MISSING_PERMISSIONS)

    @commands.command()
    async def weather(self, ctx: commands.Context[Any]) -> None:
        """Fail with a timeout, as a slow external API would."""
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)

    @commands.command()
    async def lookup(self, ctx: commands.Context[Any]) -> None:
        """Take lookup_ms; the demo slows it down to trigger an anomaly."""
        await asyncio.sleep(self.lookup_ms / 1000)

    @app_commands.command(name="greet")
    async def greet(self, interaction: discord.Interaction[Any], name: str) -> None:
        """Answer a slash command, with a button row."""
        await interaction.response.send_message(f"hello {name}", view=DemoView())

    @app_commands.command(name="report")
    async def report(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Defer, work, then fail: a slash command's error and duration."""
        await interaction.response.defer(ephemeral=True)
        await asyncio.sleep(0.05)
        msg = "report storage is unavailable"
        raise ConnectionError(msg)


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _endpoint(dsn: str | None) -> Iterator[SentryEndpoint | None]:
    if dsn is not None:
        yield None
        return
    with SentryEndpoint() as endpoint:
        yield endpoint


async def _quiet(step: Callable[[], Awaitable[Any]]) -> None:
    with contextlib.suppress(commands.CommandError):
        await step()


async def _workload(bot: commands.Bot, test: Any, demo: DemoCommands) -> discord.Embed | None:
    driver = InteractionDriver(bot)
    owner, stranger = test.get_config().members[:2]
    bot.owner_id = owner.id
    bot.add_view(DemoView())
    message = test.message

    async def as_stranger(content: str) -> None:
        await message(content, member=stranger)

    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("a prefix command that works: !ping", lambda: message("!ping")),
        ("internal error: !divide 1 0", lambda: message("!divide 1 0")),
        ("user input error: !divide one 2", lambda: message("!divide one 2")),
        ("not found: !nope", lambda: message("!nope")),
        ("permission: a stranger runs !shutdown", lambda: as_stranger("!shutdown")),
        ("cooldown: !daily twice", lambda: message("!daily")),
        ("", lambda: message("!daily")),
        ("Discord API error 50013: !purge", lambda: message("!purge")),
        ("timeout: !weather", lambda: message("!weather")),
        (
            "a database span, a private argument, an id in the error: !profile call me",
            lambda: message("!profile call me at 555-0100"),
        ),
        (
            "a slash command that works: /greet",
            lambda: driver.slash("greet", {"name": "ana"}, member=owner),
        ),
        (
            "a slash command that fails after 50 ms: /report",
            lambda: driver.slash("report", {"text": "quarterly"}, member=owner),
        ),
        (
            "a button that works and one that fails",
            lambda: driver.component("demo:vote", member=owner),
        ),
        ("", lambda: driver.component("demo:results", member=owner)),
    ]
    number = 0
    labelled = sum(1 for label, _ in steps if label) + 3
    for label, step in steps:
        if label:
            number += 1
            _say(f"  [{number:>2}/{labelled}] {label}")
        await _quiet(step)

    number += 1
    _say(f"  [{number:>2}/{labelled}] an error spike: !divide 2 0 six times")
    for _ in range(6):
        await _quiet(lambda: message("!divide 2 0"))

    number += 1
    _say(f"  [{number:>2}/{labelled}] a slowdown: !lookup 60 times at 2 ms, then at 60 ms")
    for _ in range(60):
        await _quiet(lambda: message("!lookup"))
    demo.lookup_ms = 60.0
    for _ in range(12):
        await _quiet(lambda: message("!lookup"))

    number += 1
    _say(f"  [{number:>2}/{labelled}] the owner asks: !sentry status")
    while not test.sent_queue.empty():
        test.get_message()
    await _quiet(lambda: message("!sentry status", member=owner))
    embed: discord.Embed | None = None
    while not test.sent_queue.empty():
        sent = test.get_message()
        if sent.embeds:
            embed = sent.embeds[0]
    return embed


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def _report(endpoint: SentryEndpoint, cog: Any, embed: discord.Embed | None) -> dict[str, Any]:
    events = endpoint.events()
    errors = [e for e in events if "exception" in e]
    messages = [e for e in events if "exception" not in e]
    transactions = endpoint.transactions()
    _say(f"\nError events sent: {len(errors)}")
    for event in errors:
        exc = event["exception"]["values"][-1]
        tags = event.get("tags", {})
        _say(f"  - {exc.get('type')}: {exc.get('value')}")
        _say(
            f"    command={tags.get('command.name')} type={tags.get('command.type')} "
            f"category={tags.get('error.category')} severity={tags.get('error.severity')} "
            f"related={tags.get('error.related')}"
        )
        _say(f"    fingerprint={event.get('fingerprint')}")
    stats = cog.reporter.stats
    _say(
        f"User-caused errors kept as breadcrumbs and metrics, not sent: {stats.user_errors}"
    )
    _say(f"\nMessages the cog raised: {len(messages)}")
    for event in messages:
        _say(f"  - [{event.get('level')}] {event.get('message')}  {event.get('fingerprint')}")
    _say("\nError groups (fingerprint: count):")
    for group, count in cog.reporter.top_groups(5):
        _say(f"  {count:>3}  {group}")
    _say(f"\nTransactions sent: {len(transactions)} (by name, op, status, duration, spans)")
    shown: set[tuple[str, str]] = set()
    for txn in transactions:
        trace = txn["contexts"]["trace"]
        key = (txn["transaction"], str(trace.get("status")))
        if key in shown:
            continue
        shown.add(key)
        duration_ms = (_ts(txn["timestamp"]) - _ts(txn["start_timestamp"])) * 1000
        spans = ", ".join(f"{s['op']} {s.get('description')}" for s in txn.get("spans", []))
        _say(
            f"  - {txn['transaction']:<22} {trace['op']:<20} {trace.get('status'):<18}"
            f"{duration_ms:8.1f} ms  {spans}"
        )
    _report_metrics(endpoint)
    if embed is not None:
        _say(f"\nThe status embed the owner saw: {embed.title}")
        for field in embed.fields:
            text = str(field.value).replace("\n", " | ")
            _say(f"  {field.name}: {text[:160]}")
    return {
        "events": len(errors),
        "messages": len(messages),
        "transactions": len(transactions),
        "metrics": sum(1 for _ in endpoint.metrics()),
        "status_embed": embed is not None,
    }


def _report_metrics(endpoint: SentryEndpoint) -> None:
    totals: Counter[str] = Counter()
    for metric in endpoint.metrics():
        if metric.get("type") == "counter":
            totals[metric["name"]] += int(metric["value"])
        else:
            totals[f"{metric['name']} ({metric.get('type')})"] += 1
    _say("\nMetrics sent (counters summed; gauges and distributions counted):")
    for name, total in sorted(totals.items()):
        _say(f"  {name:<48} {total}")


async def run_demo(
    dsn: str | None = None, json_path: Path | None = None, spotlight: str | None = None
) -> dict[str, Any]:
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
        if spotlight is not None:
            # The bot's own init, as a bot owner would write it; the cog reuses it.
            sentry_sdk.init(dsn=target, spotlight=spotlight or True, traces_sample_rate=1.0)
            _say(f"Also sending to Spotlight at {spotlight or 'its default address'}")
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
        await bot._async_setup_hook()  # noqa: SLF001 - what Bot.start would do, without login
        demo = DemoCommands()
        await bot.add_cog(demo)
        dpytest.configure(bot, members=2)
        bot.http.token = DEMO_BOT_TOKEN
        bot.sentry_cog_config = SentryCogConfig(dsn=target)  # type: ignore[attr-defined]
        await bot.load_extension("tux_sentry_cog")
        cog = bot.get_cog("Sentry")
        _say("Loaded with: await bot.load_extension('tux_sentry_cog')\nWorkload:")
        embed = await _workload(bot, dpytest, demo)
        await bot.unload_extension("tux_sentry_cog")  # the last metric flush, then close
        totals: dict[str, Any] = {}
        if endpoint is not None:
            endpoint.wait_for(lambda e: bool(e.metrics()), timeout=3)
            totals = _report(endpoint, cog, embed)
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
    parser.add_argument(
        "--spotlight",
        nargs="?",
        const="",
        help="also send to Sentry Spotlight (optionally at this URL)",
    )
    args = parser.parse_args(argv)
    totals = asyncio.run(run_demo(args.dsn, args.json, args.spotlight))
    if args.dsn is None and not totals.get("events"):
        _say("No event arrived: something is wrong.")
        return 1
    return 0
