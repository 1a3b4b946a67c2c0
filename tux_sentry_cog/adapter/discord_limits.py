"""Discord's limits as signals: REST 429s, heartbeat warnings, reconnects, the 3 s deadline.

discord.py has no public hook for a rate limit or a blocked heartbeat; it logs them at
WARNING (``discord.http``, ``discord.gateway``). A :class:`logging.Filter` on each of the
two loggers reads those records synchronously inside the logging call and always lets
them through unchanged, so the owner's handlers see exactly what they saw before. The
formats are probed at load (they are string constants of discord.py's code); a missing
one logs one warning naming what is lost.

The filters are installed once per process and hand each record to whatever
:class:`DiscordLimits` the loaded cog published (``SHARED.active["discord_limits"]``),
so a reload never stacks filters. Reconnects come from discord.py's public events
(``on_connect``, ``on_resumed`` and their ``on_shard_*`` forms); the deadline from the
time of an interaction's first response, which the cog already measures.

A 429 is logged in two records when it is the global limit: the route line, then
"Global rate limit has been hit". Nothing runs between the two (no ``await``), so the
route line's hit is settled one loop iteration later, by which time the global line, if
any, has marked it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
import sentry_sdk

from tux_sentry_cog.core import discord_limits as formats
from tux_sentry_cog.core.discord_limits import (
    DiscordLimitsWindow,
    MessageThrottle,
    route_template,
)
from tux_sentry_cog.core.limits import clamp_tags
from tux_sentry_cog.core.payload import OwnCrumbData
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from collections.abc import Callable

    from tux_sentry_cog.adapter.context import SourceInfo
    from tux_sentry_cog.core.client import SentryConnection
    from tux_sentry_cog.core.metrics import MetricsRecorder
    from tux_sentry_cog.core.runs import CommandRun

__all__ = [
    "INTERACTION_DEADLINE_MS",
    "SHARED_KEY",
    "DiscordLimits",
    "deadline_context",
    "install_log_watch",
    "is_unknown_interaction",
]

_log = logging.getLogger(__name__)

#: Discord's limit for the first response to an interaction, in milliseconds.
INTERACTION_DEADLINE_MS = 3000.0
#: Discord's error code for an interaction answered too late (or twice).
UNKNOWN_INTERACTION = 10062
#: Least seconds between two messages of one kind (per command for the deadline).
MESSAGE_INTERVAL_SECONDS = 15 * 60.0
#: Where the loaded cog publishes its :class:`DiscordLimits` for the log filters.
SHARED_KEY = "discord_limits"

#: Run types answered through an interaction (a hybrid command only when invoked so).
INTERACTION_TYPES = frozenset({"slash", "context_menu", "component", "modal", "hybrid"})

_HTTP_LOGGER = "discord.http"
_GATEWAY_LOGGER = "discord.gateway"


def is_unknown_interaction(error: BaseException) -> bool:
    """True for discord.py's error of an interaction Discord no longer knows (10062)."""
    return isinstance(error, discord.HTTPException) and error.code == UNKNOWN_INTERACTION


@dataclass(slots=True)
class _Hit:
    method: str
    url: str
    retry_after: float | None
    scope: str = "route"


def _float(value: Any) -> float | None:
    try:
        return round(float(value), 3)
    except (TypeError, ValueError):
        return None


def _shard(value: Any) -> str:
    return str(value) if isinstance(value, int) else "none"


class DiscordLimits:
    """One bot's view of Discord's limits: metrics, breadcrumbs, messages, status figures.

    Args:
        connection: The Sentry connection (events and breadcrumbs only when active).
        metrics: The cog's metrics recorder.
    """

    def __init__(self, connection: SentryConnection, metrics: MetricsRecorder) -> None:
        """Create the windows; nothing is watched until the cog publishes it."""
        self.connection = connection
        self.metrics = metrics
        self.window = DiscordLimitsWindow()
        self.failures = 0
        self._global_messages = MessageThrottle(MESSAGE_INTERVAL_SECONDS, max_keys=1)
        self._deadline_messages = MessageThrottle(MESSAGE_INTERVAL_SECONDS)
        self._last_route_hit: _Hit | None = None

    # discord.py's log records ----------------------------------------------------------

    def observe_log(self, record: logging.LogRecord) -> None:
        """Read one record of ``discord.http`` or ``discord.gateway``; never raises."""
        try:
            if record.name == _HTTP_LOGGER:
                self._http_record(record)
            elif record.name == _GATEWAY_LOGGER:
                self._gateway_record(record)
        except Exception:
            self.failures += 1
            _log.exception("tux_sentry_cog could not read a discord.py log record")

    def _http_record(self, record: logging.LogRecord) -> None:
        msg, args = record.msg, record.args
        if not isinstance(args, tuple):
            return
        if msg == formats.ROUTE_429_FORMAT and len(args) == 3:  # noqa: PLR2004 - the format's
            hit = _Hit(str(args[0]), str(args[1]), _float(args[2]))
            self._last_route_hit = hit
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._settle(hit)
            else:
                # In the failing task's context: its breadcrumb goes to that run's scope.
                loop.call_soon(self._settle, hit, context=contextvars.copy_context())
        elif msg == formats.ROUTE_429_TOO_LONG_FORMAT and len(args) == 3:  # noqa: PLR2004
            # discord.py raises RateLimited at once, before it reads the global flag.
            self._settle(_Hit(str(args[0]), str(args[1]), _float(args[2])))
        elif msg == formats.GLOBAL_429_FORMAT:
            last = self._last_route_hit
            if last is not None:
                last.scope = "global"
            self._last_route_hit = None

    def _settle(self, hit: _Hit) -> None:
        try:
            self._rate_limited(hit)
        except Exception:
            self.failures += 1
            _log.exception("tux_sentry_cog could not record a Discord rate limit")

    def _rate_limited(self, hit: _Hit) -> None:
        if self._last_route_hit is hit:
            self._last_route_hit = None
        route = route_template(hit.method, hit.url)
        self.window.rate_limited(hit.scope)
        self.metrics.count("discord.rate_limited", 1, {"scope": hit.scope, "route": route})
        if not self.connection.active:
            return
        sentry_sdk.add_breadcrumb(
            category="discord.rate_limit",
            level="warning",
            message=f"Discord rate limit ({hit.scope}): {route}",
            data=OwnCrumbData(scope=hit.scope, route=route, retry_after_s=hit.retry_after),
        )
        if hit.scope == "global" and self._global_messages.allow("global"):
            sentry_sdk.capture_event(
                {
                    "logentry": {"message": "Discord global rate limit"},
                    "level": "warning",
                    "fingerprint": ["discord-global-rate-limit"],
                    "contexts": {
                        "rate_limit": {
                            "scope": hit.scope,
                            "route": route,
                            "retry_after_s": hit.retry_after,
                        }
                    },
                }
            )

    def _gateway_record(self, record: logging.LogRecord) -> None:
        msg, args = record.msg, record.args
        if not isinstance(msg, str) or not isinstance(args, tuple) or not args:
            return
        # 2.7 appends the event loop's traceback to the blocked line: match its start.
        if msg.startswith(formats.HEARTBEAT_BLOCKED_FORMAT):
            kind, seconds = "blocked", _float(args[1]) if len(args) > 1 else None
        elif msg == formats.HEARTBEAT_BEHIND_FORMAT:
            kind, seconds = "behind", _float(args[1]) if len(args) > 1 else None
        else:
            return
        shard_id = args[0] if isinstance(args[0], int) else None
        self.window.heartbeat_warning()
        self.metrics.count("gateway.heartbeat_blocked", 1, {"shard_id": _shard(shard_id)})
        if self.connection.active:
            where = f"shard {shard_id}" if shard_id is not None else "gateway"
            sentry_sdk.add_breadcrumb(
                category="gateway",
                level="warning",
                message=f"heartbeat {kind} ({where})",
                data=OwnCrumbData(shard_id=shard_id, kind=kind, seconds=seconds),
            )

    # gateway sessions ---------------------------------------------------------------------

    def connected(self, shard_id: int | None) -> None:
        """A new gateway session; every one after the first of a shard is a reconnect."""
        if self.window.connected(shard_id):
            self.metrics.count("gateway.reconnects", 1, {"shard_id": _shard(shard_id)})

    def resumed(self, shard_id: int | None) -> None:
        """A resumed gateway session: a reconnect."""
        self.window.resumed(shard_id)
        self.metrics.count("gateway.reconnects", 1, {"shard_id": _shard(shard_id)})

    # interactions ---------------------------------------------------------------------------

    def interaction_finished(self, run: CommandRun, info: SourceInfo) -> bool:
        """Flag a run whose first response missed Discord's deadline; True if it did."""
        if run.command_type not in INTERACTION_TYPES:
            return False
        first = run.first_response_ms
        late = first is not None and first > INTERACTION_DEADLINE_MS
        if not late and not any(is_unknown_interaction(e) for e in run.errors):
            return False
        command = run.name or "unknown"
        self.window.deadline_missed()
        self.metrics.count(
            "interactions.deadline_missed",
            1,
            {"interaction_type": run.command_type, "command_name": command},
        )
        # An opted-out run's guild tag goes in no message; the metric still counts it.
        if (
            self.connection.active
            and not run.opted_out
            and self._deadline_messages.allow(command)
        ):
            sentry_sdk.capture_event(
                {
                    "logentry": {"message": f"Interaction deadline missed: {command}"},
                    "level": "warning",
                    "fingerprint": ["interaction-deadline", command],
                    "tags": clamp_tags(info.tags()),
                    "contexts": {
                        "interaction_deadline": {
                            "first_response_ms": _ms(first),
                            "deadline_ms": INTERACTION_DEADLINE_MS,
                            "interaction_type": run.command_type,
                        }
                    },
                }
            )
        return True


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def deadline_context(run: CommandRun, error: BaseException) -> dict[str, Any] | None:
    """The ``interaction_deadline`` context of a 10062 error event, else ``None``.

    The error event of an "Unknown interaction" says it is the deadline that was missed,
    so it is not read as noise.
    """
    if not is_unknown_interaction(error):
        return None
    return {
        "missed": True,
        "reason": "unknown_interaction",
        "first_response_ms": _ms(run.first_response_ms),
        "deadline_ms": INTERACTION_DEADLINE_MS,
        "interaction_type": run.command_type,
    }


class _DiscordLogFilter(logging.Filter):
    """Hands discord.py's records to the loaded cog; never drops or changes one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            target = SHARED.active.get(SHARED_KEY)
            if target is not None and record.levelno >= logging.WARNING:
                target.observe_log(record)
        except Exception:  # a cog of another generation; never break the owner's logging
            sys.stderr.write("tux_sentry_cog: could not read a discord.py log record\n")
        return True


def _constants(function: Any) -> frozenset[Any]:
    code = getattr(function, "__code__", None)
    return frozenset(getattr(code, "co_consts", ()))


def install_log_watch(lost: Callable[[str, str], None]) -> None:
    """Probe discord.py's log formats and add the filters; once per process.

    Args:
        lost: Logs the one warning for a format that is not found (what, capability).
    """
    if "discord limits filters" in SHARED.patched:
        return
    SHARED.patched.add("discord limits filters")
    request = getattr(getattr(discord.http, "HTTPClient", None), "request", None)
    found = _constants(request)
    if not {formats.ROUTE_429_FORMAT, formats.GLOBAL_429_FORMAT} <= found:
        lost("HTTPClient.request rate-limit log format", "the discord.rate_limited metric is off")
    keep_alive = getattr(discord.gateway, "KeepAliveHandler", None)
    if not {formats.HEARTBEAT_BLOCKED_FORMAT, formats.HEARTBEAT_BEHIND_FORMAT} <= _constants(
        getattr(keep_alive, "__init__", None)
    ):
        lost(
            "KeepAliveHandler heartbeat log format",
            "the gateway.heartbeat_blocked metric is off",
        )
    log_filter = _DiscordLogFilter()
    logging.getLogger(_HTTP_LOGGER).addFilter(log_filter)
    logging.getLogger(_GATEWAY_LOGGER).addFilter(log_filter)
