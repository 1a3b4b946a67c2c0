"""``python -m tux_sentry_cog demo``: a real bot, a simulated Discord, a local Sentry.

The bot is a plain ``commands.Bot`` with the cog loaded through ``load_extension``;
dpytest stands in for the gateway (prefix commands) and the interaction driver for slash
commands and components. Events go to a Sentry endpoint started in-process (or to
``--dsn``, or also to Spotlight with ``--spotlight``), and the report at the end is read
back from what the SDK really sent.

The workload shows every capability: commands that work and fail (one of each error
category), a slash command, a component, a database span, an error spike, a command
that slows down until it is reported as an anomaly, the event budget holding a flood
back (and the ``noise`` context of the group's next event an hour later: the demo moves
the budget's clock), ``tasks`` loops (one that fails, one that discord.py retries) with
their Crons check-ins, Discord's limits (an answer Discord refuses with 10062 because the
deadline passed, and REST 429s on a route and the global limit, met by discord.py's own
HTTP client against a loopback API), and the owner's status embed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import discord
import sentry_sdk
from discord import app_commands
from discord.ext import commands, tasks
from discord.webhook import async_ as webhook_async

from tux_sentry_cog.config import SentryCogConfig
from tux_sentry_cog.core.noise import EventBudget
from tux_sentry_cog.core.tracing import track_database_operation
from tux_sentry_cog.testing.interactions import InteractionDriver
from tux_sentry_cog.testing.server import MAX_ENVELOPES, SentryEndpoint, reset_sentry_sdk

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = [
    "DEMO_BOT_TOKEN",
    "DemoCommands",
    "TransportTap",
    "message_text",
    "run_demo",
    "spotlight_dsn",
]

#: The demo's fake Discord API error: what a bot gets when it lacks a permission.
_MISSING_PERMISSIONS = {"code": 50013, "message": "Missing Permissions"}

#: The demo bot's token: shaped like a real one, valid nowhere. What the demo sends
#: (and what a server stores) must never hold it.
#: The demo's event budget per group and hour: small, so the spike's flood meets it.
DEMO_BUDGET = 3

DEMO_BOT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAwMA.GdEmOx.demo-token-that-is-valid-nowhere-0000"  # noqa: S105


class _Response:
    status = 403
    reason = "Forbidden"


class _NotFound:
    status = 404
    reason = "Not Found"


#: What Discord answers to a first response after its 3 s deadline.
_UNKNOWN_INTERACTION = {"code": 10062, "message": "Unknown interaction"}


class _TooLateAdapter(webhook_async.AsyncWebhookAdapter):
    """The webhook adapter as Discord answers once an interaction's deadline passed."""

    async def request(self, *_: Any, **__: Any) -> Any:
        """Refuse, as Discord does: 404, code 10062."""
        raise discord.NotFound(_NotFound(), _UNKNOWN_INTERACTION)


class _RateLimitingApi:
    """A loopback Discord REST API: each path's first request gets a 429, then 200.

    The 429 carries Discord's headers (``X-RateLimit-*``, ``Retry-After``, ``Via``), so
    discord.py's own ``HTTPClient`` handles it as it would Discord's: it logs it, waits
    and retries. A plain ``http.server`` on a thread of its own: the SDK's aiohttp server
    integration would trace an aiohttp one as the bot's own transactions.
    """

    def __init__(self, global_paths: set[str]) -> None:
        """``global_paths`` answer with the global limit; the others with a route's."""
        self._global_paths = global_paths
        self._limited: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _answer(self, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if path.endswith("/users/@me"):
            return 200, headers, {"id": "1", "username": "demo", "discriminator": "0"}
        with self._lock:
            first = path not in self._limited
            self._limited.add(path)
        if not first:
            return 200, headers, {}
        is_global = path in self._global_paths
        headers.update({
            "Via": "1.1 google",
            "Retry-After": "1",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": "0.05",
            "X-RateLimit-Bucket": "demo-bucket",
            "X-RateLimit-Scope": "global" if is_global else "user",
        })
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": 0.05,
                "global": is_global}
        return 429, headers, body

    def start(self) -> str:
        """Serve on a free loopback port; return the API's base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, headers, body = api._answer(urlsplit(self.path).path)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _reply  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v10"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


async def _rate_limits() -> None:
    """A message send limited on its route, then an interaction answer hitting the global limit."""
    interaction_id = 1_000_000_000_000_000_001
    token = "demo-interaction-token-that-must-never-leave-0000000000000000"  # noqa: S105
    api = _RateLimitingApi({f"/api/v10/interactions/{interaction_id}/{token}/callback"})
    base = await asyncio.to_thread(api.start)
    original = discord.http.Route.BASE
    discord.http.Route.BASE = base  # a Route reads it when made: restored at once below
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    # A scope of its own, as a bot's background work has: the hits' breadcrumbs stay here.
    with sentry_sdk.isolation_scope():
        try:
            await _limited_calls(http, interaction_id, token)
        finally:
            discord.http.Route.BASE = original
            await http.close()
            await asyncio.to_thread(api.stop)


async def _limited_calls(http: discord.http.HTTPClient, interaction_id: int, token: str) -> None:
    await http.static_login(DEMO_BOT_TOKEN)
    await http.request(
        discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=42),
        json={"content": "daily digest"},
    )
    await http.request(
        discord.http.Route(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interaction_id=interaction_id,
            interaction_token=token,
        ),
        json={"type": 5},
    )


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
        """The slowdown switch for the anomaly step, the export attempts, the budget's clock."""
        self.lookup_ms = 2.0
        self.exports = 0
        self.budget_clock: _MovableClock | None = None

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
    async def export(self, ctx: commands.Context[Any]) -> None:
        """Fail twice in two ways: storage times out, then the retry cannot write."""
        self.exports += 1
        if self.exports == 1:
            msg = "archive storage did not answer"
            raise TimeoutError(msg)
        msg = "archive folder is read-only"
        raise PermissionError(msg)

    @commands.command()
    async def lookup(self, ctx: commands.Context[Any]) -> None:
        """Take lookup_ms; the demo slows it down to trigger an anomaly."""
        await asyncio.sleep(self.lookup_ms / 1000)

    @app_commands.command(name="greet")
    async def greet(self, interaction: discord.Interaction[Any], name: str) -> None:
        """Answer a slash command, with a button row."""
        await interaction.response.send_message(f"hello {name}", view=DemoView())

    @app_commands.command(name="search")
    async def search(self, interaction: discord.Interaction[Any], query: str) -> None:
        """Answer after Discord gave up waiting: Discord refuses with 10062."""
        # This task only: the next response goes through an adapter that refuses it.
        webhook_async.async_context.set(_TooLateAdapter())  # type: ignore[no-untyped-call]
        await interaction.response.send_message(f"{len(query)} results")

    @app_commands.command(name="report")
    async def report(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Defer, work, then fail: a slash command's error and duration."""
        await interaction.response.defer(ephemeral=True)
        await asyncio.sleep(0.05)
        msg = "report storage is unavailable"
        raise ConnectionError(msg)


class DemoLoops(commands.Cog, name="Jobs"):
    """Background loops: a cleanup that fails and a feed that discord.py retries."""

    def __init__(self) -> None:
        """The feed fails once."""
        self.feed_attempts = 0

    @tasks.loop(minutes=10)
    async def cleanup(self) -> None:
        """Fail: a corrupt row."""
        msg = "row 41 of the reminders table is corrupt"
        raise ValueError(msg)

    @tasks.loop(minutes=5)
    async def feed(self) -> None:
        """Fail with a reconnect-class error once (discord.py retries), then work."""
        self.feed_attempts += 1
        if self.feed_attempts == 1:
            msg = "feed server reset the connection"
            raise ConnectionResetError(msg)


async def _loops(bot: commands.Bot) -> None:
    """Run each loop's first iteration (it runs on start) and stop them."""
    jobs = DemoLoops()
    await bot.add_cog(jobs)
    with contextlib.suppress(ValueError):
        await jobs.cleanup.start()
    feed = jobs.feed.start()
    for _ in range(400):  # discord.py's first retry waits up to 2 s
        if jobs.feed.current_loop >= 1:
            break
        await asyncio.sleep(0.01)
    jobs.feed.cancel()
    await asyncio.gather(feed, return_exceptions=True)


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


#: The demo's guilds: each failing step runs in a guild of its own, as on a bot in many
#: servers, so the only related errors are the ones that are (the export run twice).
GUILDS = ("Main", "Ops", "Weather", "Profiles", "Reports", "Polls", "Archive", "Search")


class _MovableClock:
    """The budget's monotonic clock, which the demo moves an hour on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def _spike_and_slowdown(
    message: Callable[[str], Awaitable[Any]], demo: DemoCommands, number: int, labelled: int
) -> None:
    _say(
        f"  [{number + 1:>2}/{labelled}] an error spike: !divide 2 0 six times "
        f"(the event budget sends {DEMO_BUDGET} an hour per group)"
    )
    for _ in range(6):
        await _quiet(lambda: message("!divide 2 0"))
    budget_clock = demo.budget_clock
    if budget_clock is not None:
        _say("       an hour later (the budget's clock moved): !divide 3 0")
        budget_clock.offset += 3600.0
        await _quiet(lambda: message("!divide 3 0"))
    _say(f"  [{number + 2:>2}/{labelled}] a slowdown: !lookup 60 times at 2 ms, then at 60 ms")
    for _ in range(60):
        await _quiet(lambda: message("!lookup"))
    demo.lookup_ms = 60.0
    for _ in range(12):
        await _quiet(lambda: message("!lookup"))


def _members_by_guild(test: Any) -> dict[str, list[discord.Member]]:
    config = test.get_config()
    return {g.name: [m for m in config.members if m.guild == g] for g in config.guilds}


async def _drain() -> None:
    # The SDK queues at most 100 envelopes and drops the rest ("queue_overflow"). A server
    # that answers slower than the spike's burst (a loaded machine, a self-hosted Sentry)
    # would lose the events that come after it: let the queue empty between phases.
    await asyncio.to_thread(sentry_sdk.flush, 10.0)


async def _workload(
    bot: commands.Bot, test: Any, demo: DemoCommands, *, remote: bool = False
) -> discord.Embed | None:
    driver = InteractionDriver(bot)
    members = _members_by_guild(test)
    owner, stranger = members["Main"][:2]
    bot.owner_id = owner.id
    bot.add_view(DemoView())
    message = test.message

    def in_guild(name: str, content: str) -> Callable[[], Awaitable[Any]]:
        member = members[name][0]
        return lambda: message(content, channel=member.guild.text_channels[0], member=member)

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
        ("Discord API error 50013: !purge (guild Ops)", in_guild("Ops", "!purge")),
        ("timeout: !weather (guild Weather)", in_guild("Weather", "!weather")),
        (
            "a database span, a private argument, an id in the error: !profile call me",
            in_guild("Profiles", "!profile call me at 555-0100"),
        ),
        (
            "a slash command that works: /greet",
            lambda: driver.slash("greet", {"name": "ana"}, member=owner),
        ),
        (
            "a slash command that fails after 50 ms: /report (guild Reports)",
            lambda: driver.slash("report", {"text": "quarterly"}, member=members["Reports"][0]),
        ),
        (
            "a button that works and one that fails (guild Polls)",
            lambda: driver.component("demo:vote", member=members["Polls"][0]),
        ),
        ("", lambda: driver.component("demo:results", member=members["Polls"][0])),
        (
            "a related pair: !export times out, the retry fails another way (guild Archive)",
            in_guild("Archive", "!export"),
        ),
        ("", in_guild("Archive", "!export")),
        (
            "a slash command answered past Discord's 3 s deadline: /search (guild Search)",
            lambda: driver.slash("search", {"query": "cats"}, member=members["Search"][0]),
        ),
        ("REST 429s: discord.py's HTTP client limited on a route, then globally", _rate_limits),
    ]
    number = 0
    labelled = sum(1 for label, _ in steps if label) + 4
    for label, step in steps:
        if label:
            number += 1
            _say(f"  [{number:>2}/{labelled}] {label}")
        await _quiet(step)

    if remote:
        await _drain()
    await _spike_and_slowdown(message, demo, number, labelled)
    if remote:
        await _drain()
    _say(f"  [{labelled - 1:>2}/{labelled}] task loops: one fails, one retried (Crons check-ins)")
    await _loops(bot)
    _say(f"  [{labelled:>2}/{labelled}] the owner asks: !sentry status (answered in a DM)")
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


class TransportTap:
    """What the SDK handed its transport: the report's source when events go elsewhere.

    With ``--dsn`` or ``--spotlight`` the envelopes go to a server the demo cannot read
    back, so the demo keeps a copy of each envelope as the SDK hands it to the transport
    (``Transport.capture_envelope``, public API); what Sentry answered is the cog's
    delivery ledger's to say. Bounded like the local endpoint.
    """

    def __init__(self) -> None:
        """Start empty; :meth:`install` starts the copying."""
        self._items: list[tuple[str, Any]] = []

    def install(self, transport: Any) -> None:
        """Copy every envelope ``transport`` is given from now on."""
        original = transport.capture_envelope
        items = self._items

        def capture_envelope(envelope: Any) -> Any:
            with contextlib.suppress(Exception):  # the copy must never cost the envelope
                for item in envelope.items:
                    payload: Any = item.payload.json
                    if payload is None:
                        payload = json.loads(item.payload.get_bytes() or b"null")
                    if len(items) < MAX_ENVELOPES:
                        items.append((str(item.type), payload))
            return original(envelope)

        transport.capture_envelope = capture_envelope

    def items(self, item_type: str) -> list[Any]:
        """Payloads of every item of ``item_type``."""
        return [payload for kind, payload in self._items if kind == item_type]

    def events(self) -> list[dict[str, Any]]:
        """Error and message events."""
        return self.items("event")

    def transactions(self) -> list[dict[str, Any]]:
        """Transaction events."""
        return self.items("transaction")

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric of every ``trace_metric`` item."""
        return [m for p in self.items("trace_metric") if isinstance(p, dict) for m in p["items"]]

    def dump_json(self) -> str:
        """Every item, as JSON (the shape of the local endpoint's dump)."""
        return json.dumps(
            [{"type": kind, "payload": payload} for kind, payload in self._items],
            indent=2,
            default=str,
        )


def message_text(event: dict[str, Any]) -> str | None:
    """The text of a message event: its ``logentry`` (or a bare ``message``, if any)."""
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        return str(logentry.get("formatted") or logentry.get("message") or "")
    message = event.get("message")
    return str(message) if message is not None else None


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _transaction_rows(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per transaction name: count, op, statuses, p50 and p95, span kinds."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for txn in transactions:
        by_name.setdefault(str(txn.get("transaction")), []).append(txn)
    rows: list[dict[str, Any]] = []
    for name, runs in by_name.items():
        durations = [(_ts(t["timestamp"]) - _ts(t["start_timestamp"])) * 1000 for t in runs]
        statuses = Counter(str(t["contexts"]["trace"].get("status")) for t in runs)
        spans = sorted(
            {f"{s['op']} {s.get('description')}" for t in runs for s in t.get("spans", [])}
        )
        rows.append(
            {
                "name": name,
                "op": runs[0]["contexts"]["trace"].get("op"),
                "count": len(runs),
                "p50_ms": _percentile(durations, 0.5),
                "p95_ms": _percentile(durations, 0.95),
                "statuses": dict(statuses),
                "spans": spans,
            }
        )
    return sorted(rows, key=lambda row: (-row["count"], row["name"]))


def _report(
    sent: SentryEndpoint | TransportTap, cog: Any, embed: discord.Embed | None
) -> dict[str, Any]:
    events = sent.events()
    errors = [e for e in events if "exception" in e]
    messages = [e for e in events if "exception" not in e]
    transactions = sent.transactions()
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
    related = [e for e in errors if e.get("tags", {}).get("error.related") == "yes"]
    _say(f"\nRelated errors (error.related=yes): {len(related)}")
    for event in related:
        correlation = event["contexts"]["correlation"]
        for earlier in correlation["related_errors"]:
            _say(
                f"  - {event['exception']['values'][-1]['type']} in "
                f"{event['tags'].get('command.name')} <- {earlier['fingerprint']} "
                f"({earlier['relation']}, {earlier['seconds_ago']:.1f} s before)"
            )
    stats = cog.reporter.stats
    _say(f"User-caused errors kept as breadcrumbs and metrics, not sent: {stats.user_errors}")
    noise = _report_budget(errors, cog)
    _say(f"\nMessages the cog raised: {len(messages)}")
    for event in messages:
        _say(f"  - [{event.get('level')}] {message_text(event)}  {event.get('fingerprint')}")
    _say("\nError groups sent (fingerprint: count):")
    for group, count in cog.reporter.top_groups(5):
        _say(f"  {count:>3}  {group}")
    rows = _transaction_rows(transactions)
    _say(f"\nTransactions sent: {len(transactions)} in {len(rows)} names")
    _say(f"  {'name':<22} {'op':<20} {'count':>5} {'p50':>9} {'p95':>9}  statuses")
    for row in rows:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(row["statuses"].items()))
        _say(
            f"  {row['name']:<22} {row['op']:<20} {row['count']:>5} "
            f"{row['p50_ms']:>6.1f} ms {row['p95_ms']:>6.1f} ms  {statuses}"
        )
        if row["spans"]:
            _say(f"  {'':<22} spans: {', '.join(row['spans'][:3])}")
    check_ins = _report_check_ins(sent)
    _report_metrics(sent)
    _report_delivery(cog)
    if embed is not None:
        _say(f"\nThe status embed the owner saw (in a DM): {embed.title}")
        for field in embed.fields:
            text = str(field.value).replace("\n", " | ")
            _say(f"  {field.name}: {text[:200]}")
    return {
        "events": len(errors),
        "messages": len(messages),
        "related": len(related),
        "transactions": len(transactions),
        "transaction_names": len(rows),
        "metrics": sum(1 for _ in sent.metrics()),
        "status_embed": embed is not None,
        "check_ins": len(check_ins),
        "task_events": sum(1 for e in errors if e.get("tags", {}).get("command.type") == "task"),
        "held_back": cog.reporter.budget.held_back,
        "noise_events": len(noise),
    }


def _report_budget(errors: list[dict[str, Any]], cog: Any) -> list[dict[str, Any]]:
    noise = [e for e in errors if "noise" in e.get("contexts", {})]
    _say(
        f"Held back by the event budget (counted, not sent): {cog.reporter.budget.held_back}"
    )
    for event in noise:
        context = event["contexts"]["noise"]
        _say(
            f"  - the next {event['exception']['values'][-1]['type']} event says: "
            f"noise.suppressed={context['suppressed']} since {context['since']}"
        )
    return noise


def _report_delivery(cog: Any) -> None:
    ledger = cog.connection.ledger
    delivered = ", ".join(f"{n:,} {c}" for c, n in sorted(ledger.delivered.items())) or "nothing"
    _say(f"\nWhat Sentry answered: accepted {delivered}")
    if ledger.refused:
        refused = ", ".join(f"{n:,} {c}" for c, n in sorted(ledger.refused.items()))
        _say(f"  refused (429): {refused}")
    if ledger.lost:
        _say(
            "  lost: "
            + ", ".join(f"{n:,} {c} ({r})" for (c, r), n in sorted(ledger.lost.items()))
        )


def _report_check_ins(sent: SentryEndpoint | TransportTap) -> list[Any]:
    check_ins = sent.items("check_in")
    _say(f"\nCrons check-ins sent: {len(check_ins)}")
    for item in check_ins:
        _say(f"  - {item['monitor_slug']:<28} {item['status']:<12} {item.get('duration')}")
    return check_ins


def _report_metrics(sent: SentryEndpoint | TransportTap) -> None:
    totals: Counter[str] = Counter()
    for metric in sent.metrics():
        if metric.get("type") == "counter":
            totals[metric["name"]] += int(metric["value"])
        else:
            totals[f"{metric['name']} ({metric.get('type')})"] += 1
    _say("\nMetrics sent (counters summed; gauges and distributions counted):")
    for name, total in sorted(totals.items()):
        _say(f"  {name:<48} {total}")


def spotlight_dsn(url: str | None) -> str:
    """A DSN that sends to the Spotlight sidecar at ``url`` (its default address if none).

    The SDK's ``spotlight=`` option posts every envelope on the calling thread (the event
    loop, in a bot) and records an ``http.client`` span for each; a DSN goes through the
    transport's worker thread like any Sentry.
    """
    parsed = urlsplit(url or "http://127.0.0.1:8969")
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or 8969
    return f"{parsed.scheme or 'http'}://spotlight@{host}:{port}/1"


async def run_demo(
    dsn: str | None = None, json_path: Path | None = None, spotlight: str | None = None
) -> dict[str, Any]:
    """Run the scripted workload and print the report; return its totals.

    Args:
        dsn: Send to this Sentry instead of a local endpoint.
        json_path: Write every item sent there, as JSON.
        spotlight: Send to the Spotlight sidecar at this URL (``""``: its default).
    """
    try:
        import discord.ext.test as dpytest  # noqa: PLC0415 - an optional dependency
    except ImportError:
        _say('The demo needs dpytest: python -m pip install "tux-sentry-cog[testing]"')
        raise SystemExit(2) from None
    started = time.perf_counter()
    if spotlight is not None:
        dsn = spotlight_dsn(spotlight)
    with _endpoint(dsn) as endpoint:
        target = endpoint.dsn if endpoint is not None else str(dsn)
        if spotlight is not None:
            where = f"Spotlight ({_host_of(target)})"
        elif endpoint is None:
            where = f"your Sentry ({_host_of(target)})"
        else:
            where = f"a local Sentry on port {endpoint.port}"
        _say(f"tux_sentry_cog demo: a real discord.py bot, a simulated Discord, {where}")
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.all())
        await bot._async_setup_hook()  # noqa: SLF001 - what Bot.start would do, without login
        demo = DemoCommands()
        await bot.add_cog(demo)
        dpytest.configure(bot, guilds=list(GUILDS), members=2)
        bot.http.token = DEMO_BOT_TOKEN
        cog = await _load(bot, target, demo)
        tap: TransportTap | None = None
        if endpoint is None:
            tap = TransportTap()
            tap.install(sentry_sdk.get_client().transport)
        _say("Loaded with: await bot.load_extension('tux_sentry_cog')\nWorkload:")
        embed = await _workload(bot, dpytest, demo, remote=endpoint is None)
        await bot.unload_extension("tux_sentry_cog")  # the last metric flush, then close
        sent: SentryEndpoint | TransportTap
        if endpoint is not None:
            await asyncio.to_thread(endpoint.wait_for, lambda e: bool(e.metrics()), 3)
            sent = endpoint
        else:
            assert tap is not None  # noqa: S101 - set just above for this case
            sent = tap
            _say("\n(What the SDK handed its transport; Sentry's answers follow the report.)")
        totals = _report(sent, cog, embed)
        if json_path is not None:
            await asyncio.to_thread(json_path.write_text, sent.dump_json())
            _say(f"\nEnvelopes written to {json_path}")
        await dpytest.empty_queue()
        reset_sentry_sdk()
    _say(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return totals


async def _load(bot: commands.Bot, target: str, demo: DemoCommands) -> Any:
    """Load the cog into ``bot``, with a budget on a clock the demo can move."""
    bot.sentry_cog_config = SentryCogConfig(  # type: ignore[attr-defined]
        dsn=target, monitor_loops=True, events_per_group_per_hour=DEMO_BUDGET
    )
    await bot.load_extension("tux_sentry_cog")
    cog: Any = bot.get_cog("Sentry")
    demo.budget_clock = _MovableClock()
    cog.reporter.budget = EventBudget(limit=DEMO_BUDGET, clock=demo.budget_clock)
    return cog


def _host_of(dsn: str) -> str:
    return urlsplit(dsn).hostname or "?"


def main(argv: list[str]) -> int:
    """Parse the demo's arguments and run it."""
    import argparse  # noqa: PLC0415 - the CLI only

    parser = argparse.ArgumentParser(prog="python -m tux_sentry_cog demo")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--dsn", help="send to this Sentry DSN instead of a local endpoint")
    target.add_argument(
        "--spotlight",
        nargs="?",
        const="",
        help="send to the Sentry Spotlight sidecar (optionally at this URL) as a DSN",
    )
    parser.add_argument("--json", type=Path, help="write the envelopes sent to this file")
    args = parser.parse_args(argv)
    totals = asyncio.run(run_demo(args.dsn, args.json, args.spotlight))
    if not totals.get("events"):
        _say("No event arrived: something is wrong.")
        return 1
    return 0
