"""Discord's limits as signals, through discord.py's own code and the real SDK.

- REST 429s: discord.py's ``HTTPClient`` talks to a loopback server that answers 429
  (route and global) with Discord's headers, so discord.py itself logs the rate limit.
- Heartbeats: discord.py's ``KeepAliveHandler`` logs "can't keep up" from its own code;
  the blocked line, which needs a 10 s blocked loop, is logged as discord.py words it.
- Reconnects: discord.py's public connect and resume events.
- The 3 s deadline: an interaction answered late, and one whose answer fails with 10062.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
import types
from typing import TYPE_CHECKING, Any

import discord
import sentry_sdk
from aiohttp import web
from conftest import BOT_TOKEN, FakeResponse, assert_sentry_accepts
from discord import app_commands
from discord.ext import commands
from discord.webhook import async_ as webhook_async

from tux_sentry_cog.adapter import discord_limits, patches
from tux_sentry_cog.core.discord_limits import DiscordLimitsWindow, route_template
from tux_sentry_cog.shared import SHARED
from tux_sentry_cog.status import build_status_embed

if TYPE_CHECKING:
    import pytest

INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpTZWNyZXRUb2tlbkhlcmU"
WEBHOOK_TOKEN = "WebhookSecretToken_abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFGHIJ"


def _attrs(metric: dict[str, Any]) -> dict[str, Any]:
    raw = metric.get("attributes") or {}
    return {key: value.get("value") for key, value in raw.items() if "." not in key}


def _named(endpoint: Any, name: str) -> list[dict[str, Any]]:
    return [m for m in endpoint.metrics() if m["name"] == name]


def _messages(endpoint: Any, text: str) -> list[dict[str, Any]]:
    return [e for e in endpoint.events() if (e.get("logentry") or {}).get("message") == text]


class _Capture(logging.Handler):
    """The owner's own handler: what it sees must not change."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Discord's exact content type: discord.py reads JSON only for this one.
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


class FakeDiscord:
    """A loopback Discord REST API: each listed path answers 429 once, then succeeds."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.global_paths: set[str] = set()
        self._limited: set[str] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits.append(f"{request.method} {path}")
        if path.endswith("/users/@me"):
            return _json({"id": "1", "username": "bot", "discriminator": "0", "avatar": None})
        if path not in self._limited:
            self._limited.add(path)
            is_global = path in self.global_paths
            headers = {
                "Via": "1.1 google",
                "Retry-After": "1",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": "0.02",
                "X-RateLimit-Bucket": "abcd1234",
                "X-RateLimit-Scope": "global" if is_global else "user",
            }
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {"message": "You are being rate limited.", "retry_after": 0.02,
                    "global": is_global}
            return _json(body, 429, headers)
        # Every path answered once is allowed again next time (a new limit per test step).
        self._limited.discard(path)
        return _json({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _rest_client(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> discord.http.HTTPClient:
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{fake.port}/api/v10")
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login(BOT_TOKEN)
    return http


async def test_rest_429s_are_counted_by_scope_and_route_and_the_global_one_is_a_message(
    make_bot, sentry_endpoint, monkeypatch
):
    harness = await make_bot()
    capture = _Capture()
    logging.getLogger("discord.http").addHandler(capture)
    fake = FakeDiscord()
    await fake.start()
    # A scope of its own (as a bot's task has): the hits' breadcrumbs stay in this test.
    scope = sentry_sdk.isolation_scope()
    scope.__enter__()
    http = await _rest_client(fake, monkeypatch)
    callback = f"/interactions/123456789012345678/{INTERACTION_TOKEN}/callback"
    webhook = f"/webhooks/223456789012345678/{WEBHOOK_TOKEN}"
    fake.global_paths.add(f"/api/v10{webhook}")
    try:
        await http.request(
            discord.http.Route(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                interaction_id=123456789012345678,
                interaction_token=INTERACTION_TOKEN,
            ),
            json={"type": 5},
        )
        for _ in range(2):  # two global limits: one message in 15 minutes
            await http.request(
                discord.http.Route(
                    "POST",
                    "/webhooks/{webhook_id}/{webhook_token}",
                    webhook_id=223456789012345678,
                    webhook_token=WEBHOOK_TOKEN,
                ),
                json={"content": "hi"},
            )
        await asyncio.sleep(0)  # the last hit settles one loop iteration later
        cog = harness.bot.get_cog("Sentry")
        summary = cog.status_snapshot().discord_limits
        embed = build_status_embed(cog.status_snapshot())
    finally:
        logging.getLogger("discord.http").removeHandler(capture)
        await http.close()
        await fake.stop()
        scope.__exit__(None, None, None)
    # discord.py really was limited, retried, and succeeded: three 429s, three retries.
    assert fake.hits.count(f"POST /api/v10{callback}") == 2
    assert fake.hits.count(f"POST /api/v10{webhook}") == 4
    # The owner's handler saw discord.py's lines unchanged (URL and all).
    limited = [line for line in capture.lines if line.startswith("We are being rate limited")]
    assert len(limited) == 3
    assert INTERACTION_TOKEN in limited[0]
    assert sum(line.startswith("Global rate limit has been hit") for line in capture.lines) == 2

    assert summary.rate_limits_5m == {"route": 1, "global": 2}
    [gateway] = [f for f in embed.fields if f.name == "Gateway"]
    assert "REST 429s (5 min):** global 2, route 1" in gateway.value

    await harness.bot.unload_extension("tux_sentry_cog")
    hits = [_attrs(m) for m in _named(sentry_endpoint, "tux.discord.rate_limited")]
    assert sorted((a["scope"], a["route"]) for a in hits) == [
        ("global", "POST /webhooks/{id}/{token}"),
        ("global", "POST /webhooks/{id}/{token}"),
        ("route", "POST /interactions/{id}/{token}/callback"),
    ]
    [message] = _messages(sentry_endpoint, "Discord global rate limit")
    assert message["level"] == "warning"
    assert message["fingerprint"] == ["discord-global-rate-limit"]
    assert "message" not in message
    assert message["contexts"]["rate_limit"] == {
        "scope": "global",
        "route": "POST /webhooks/{id}/{token}",
        "retry_after_s": 0.02,
    }
    crumbs = [
        c for c in message["breadcrumbs"]["values"] if c.get("category") == "discord.rate_limit"
    ]
    assert [c["message"] for c in crumbs] == [
        "Discord rate limit (route): POST /interactions/{id}/{token}/callback",
        "Discord rate limit (global): POST /webhooks/{id}/{token}",
    ]
    assert crumbs[0]["level"] == "warning"
    assert crumbs[0]["data"]["retry_after_s"] == 0.02
    assert_sentry_accepts(message)
    sent = sentry_endpoint.raw_bytes()
    for secret in (INTERACTION_TOKEN, WEBHOOK_TOKEN, BOT_TOKEN):
        assert secret.encode() not in sent


def test_route_templates_keep_no_id_token_or_value():
    base = "https://discord.com/api/v10"
    assert route_template("get", f"{base}/channels/1234/messages?limit=5") == (
        "GET /channels/{id}/messages"
    )
    assert route_template(
        "PATCH", f"{base}/webhooks/1/{WEBHOOK_TOKEN}/messages/@original"
    ) == "PATCH /webhooks/{id}/{token}/messages/@original"
    assert route_template("PUT", f"{base}/channels/1/messages/2/reactions/%F0%9F%91%8D/@me") == (
        "PUT /channels/{id}/messages/{id}/reactions/{emoji}/@me"
    )
    assert route_template("GET", f"{base}/invites/lowercasecode") == "GET /invites/{code}"
    # A token that looks like nothing known is still no static segment.
    assert route_template("GET", f"{base}/oauth2/Some-Mixed_Case") == "GET /oauth2/{value}"


class _Ws:
    """What ``KeepAliveHandler`` reads off its websocket, nothing more."""

    def __init__(self) -> None:
        self.thread_id = 0
        self._max_heartbeat_timeout = 60.0
        self.loop = asyncio.get_event_loop()


async def test_heartbeat_warnings_and_reconnects_per_shard(make_bot, sentry_endpoint):
    harness = await make_bot()
    bot = harness.bot
    with sentry_sdk.isolation_scope():  # the breadcrumbs stay in this test
        # discord.py's own code: an ack more than 10 s after the beat logs "Can't keep up".
        keep_alive = discord.gateway.KeepAliveHandler(ws=_Ws(), interval=41.25, shard_id=3)
        keep_alive._last_send = time.perf_counter() - 12
        keep_alive.ack()
        # The blocked line needs the loop blocked for 10 s; logged as discord.py words it,
        # plain (2.4-2.6) and with the loop's traceback appended (2.7).
        gateway_log = logging.getLogger("discord.gateway")
        gateway_log.warning(keep_alive.block_msg, 3, 10)
        gateway_log.warning(f"{keep_alive.block_msg}\nLoop thread traceback:\n  ...", 3, 20)
        # Not a heartbeat warning: the voice keep-alive's line.
        gateway_log.warning("Shard ID %s voice heartbeat blocked for more than %s seconds", 3, 10)

        bot.dispatch("connect")  # the first session: not a reconnect
        bot.dispatch("resumed")
        bot.dispatch("connect")
        bot.dispatch("shard_connect", 1)
        bot.dispatch("shard_resumed", 1)
        await asyncio.sleep(0.05)

    cog = bot.get_cog("Sentry")
    summary = cog.status_snapshot().discord_limits
    assert summary.heartbeat_warnings == 3
    assert summary.heartbeat_warnings_5m == 3
    assert summary.reconnects == {None: 2, 1: 1}
    [gateway] = [f for f in build_status_embed(cog.status_snapshot()).fields if f.name == "Gateway"]
    assert "**Heartbeat warnings:** 3 in 5 min, 3 in all" in gateway.value
    assert "**Reconnects:** gateway 2, shard 1 1" in gateway.value

    await bot.unload_extension("tux_sentry_cog")
    beats = [_attrs(m) for m in _named(sentry_endpoint, "tux.gateway.heartbeat_blocked")]
    assert beats == [{"shard_id": "3"}] * 3
    reconnects = [_attrs(m) for m in _named(sentry_endpoint, "tux.gateway.reconnects")]
    assert sorted(a["shard_id"] for a in reconnects) == ["1", "none", "none"]


async def test_reconnects_of_a_sharded_bot_count_per_shard(make_bot, sentry_endpoint):
    """A real AutoShardedBot dispatches each gateway event twice (``connect`` and
    ``shard_connect``, ``resumed`` and ``shard_resumed``): only the per-shard ones count,
    each shard's first session is no reconnect, and the count is per shard."""
    harness = await make_bot(shard_count=2)
    bot = harness.bot
    assert isinstance(bot, commands.AutoShardedBot)
    with sentry_sdk.isolation_scope():
        for shard_id in (0, 1):  # the first sessions
            bot.dispatch("connect")
            bot.dispatch("shard_connect", shard_id)
        bot.dispatch("resumed")
        bot.dispatch("shard_resumed", 1)
        bot.dispatch("connect")
        bot.dispatch("shard_connect", 0)  # shard 0's second session
        await asyncio.sleep(0.05)
    summary = bot.get_cog("Sentry").status_snapshot().discord_limits
    assert summary.reconnects == {0: 1, 1: 1}
    await bot.unload_extension("tux_sentry_cog")
    reconnects = [_attrs(m) for m in _named(sentry_endpoint, "tux.gateway.reconnects")]
    assert sorted(a["shard_id"] for a in reconnects) == ["0", "1"]


class _UnknownInteractionAdapter(webhook_async.AsyncWebhookAdapter):
    """discord.py's webhook adapter as Discord answers a response past the deadline."""

    async def request(self, route: Any, *args: Any, **kwargs: Any) -> Any:
        raise discord.NotFound(
            FakeResponse(404, "Not Found"), {"code": 10062, "message": "Unknown interaction"}
        )


def _add_deadline_commands(bot: discord.Client) -> None:
    @app_commands.command(name="slow-reply")
    async def slow_reply(interaction: discord.Interaction[Any]) -> None:
        await asyncio.sleep(0.08)
        await interaction.response.send_message("late")

    @app_commands.command(name="too-late")
    async def too_late(interaction: discord.Interaction[Any]) -> None:
        # Discord answers 10062 to a response it no longer expects.
        webhook_async.async_context.set(_UnknownInteractionAdapter())
        await interaction.response.send_message("gone")

    bot.tree.add_command(slow_reply)
    bot.tree.add_command(too_late)


async def test_a_late_first_response_is_a_missed_deadline(make_bot, sentry_endpoint, monkeypatch):
    harness = await make_bot()
    # Only our constant is shortened (3 s per test run would be slow); the SDK is real.
    # The loaded generation of the package is the one to patch (a reload imports anew).
    loaded = importlib.import_module("tux_sentry_cog.adapter.discord_limits")
    monkeypatch.setattr(loaded, "INTERACTION_DEADLINE_MS", 50.0)
    _add_deadline_commands(harness.bot)
    await harness.slash("slash-ok", {"text": "hi"})  # answered at once: no miss
    for _ in range(2):
        result = await harness.slash("slow-reply")
        assert result.first_response["content"] == "late"  # the bot's reply stands
    cog = harness.bot.get_cog("Sentry")
    summary = cog.status_snapshot().discord_limits
    assert (summary.deadline_misses, summary.deadline_misses_5m) == (2, 2)
    await harness.bot.unload_extension("tux_sentry_cog")

    misses = [_attrs(m) for m in _named(sentry_endpoint, "tux.interactions.deadline_missed")]
    assert misses == [{"interaction_type": "slash", "command_name": "slow-reply"}] * 2
    [message] = _messages(sentry_endpoint, "Interaction deadline missed: slow-reply")
    assert message["fingerprint"] == ["interaction-deadline", "slow-reply"]
    assert message["level"] == "warning"
    context = message["contexts"]["interaction_deadline"]
    assert context["deadline_ms"] == 50.0
    assert context["interaction_type"] == "slash"
    assert context["first_response_ms"] > 50.0
    assert message["tags"]["command.name"] == "slow-reply"
    assert_sentry_accepts(message)
    assert not _messages(sentry_endpoint, "Interaction deadline missed: slash-ok")


async def test_unknown_interaction_is_a_missed_deadline_and_its_event_says_so(
    make_bot, sentry_endpoint
):
    harness = await make_bot()
    _add_deadline_commands(harness.bot)
    await harness.slash("too-late")
    [error] = harness.tree_errors
    assert isinstance(error.original, discord.NotFound)  # the bot's handler saw it as ever
    await harness.bot.unload_extension("tux_sentry_cog")

    [event] = [e for e in sentry_endpoint.events() if e.get("exception")]
    assert event["exception"]["values"][-1]["type"] == "NotFound"
    assert event["contexts"]["interaction_deadline"] == {
        "missed": True,
        "reason": "unknown_interaction",
        "first_response_ms": None,
        "deadline_ms": 3000.0,
        "interaction_type": "slash",
    }
    assert_sentry_accepts(event)
    [message] = _messages(sentry_endpoint, "Interaction deadline missed: too-late")
    assert message["contexts"]["interaction_deadline"] == {
        "first_response_ms": None,
        "deadline_ms": 3000.0,
        "interaction_type": "slash",
    }
    assert_sentry_accepts(message)
    misses = [_attrs(m) for m in _named(sentry_endpoint, "tux.interactions.deadline_missed")]
    assert misses == [{"interaction_type": "slash", "command_name": "too-late"}]


def test_a_missing_log_format_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(SHARED, "patched", set(SHARED.patched) - {"discord limits filters"})
    changed = types.SimpleNamespace(request=lambda: None)
    monkeypatch.setattr(discord.http, "HTTPClient", changed)
    added: list[Any] = []
    monkeypatch.setattr(logging.Logger, "addFilter", lambda _self, f: added.append(f))
    with caplog.at_level(logging.WARNING, logger="tux_sentry_cog"):
        discord_limits.install_log_watch(patches._lost)
        discord_limits.install_log_watch(patches._lost)
    warnings = [r.getMessage() for r in caplog.records if "rate-limit log format" in r.getMessage()]
    assert len(warnings) == 1
    assert discord.__version__ in warnings[0]
    assert "discord.rate_limited metric is off" in warnings[0]
    assert not [r for r in caplog.records if "heartbeat log format" in r.getMessage()]
    assert len(added) == 2  # the filters still go on: heartbeats are read as before


def test_a_429_storm_is_counted_whole_in_the_status_window():
    """However many hits arrive in 5 minutes, the status counts them all, in bounded memory."""
    now = [1000.0]
    window = DiscordLimitsWindow(clock=lambda: now[0])
    for i in range(5000):
        now[0] = 1000.0 + i * 0.05  # 250 s of hits
        window.rate_limited("global")
        window.heartbeat_warning()
    window.rate_limited("route")
    summary = window.summary()
    assert summary.rate_limits_5m == {"global": 5000, "route": 1}
    assert summary.heartbeat_warnings_5m == summary.heartbeat_warnings == 5000
    now[0] += 301.0
    later = window.summary()
    assert later.rate_limits_5m == {}
    assert later.heartbeat_warnings_5m == 0
    assert later.heartbeat_warnings == 5000
