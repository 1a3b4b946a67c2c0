"""Discord's limits as plain values: route templates, discord.py's log lines, windows.

discord.py has no public hook for a REST rate limit or a slow heartbeat: it logs them,
at WARNING, from ``discord.http`` and ``discord.gateway``. The adapter reads those
records (:mod:`tux_sentry_cog.adapter.discord_limits`); this module knows the exact
formats they are logged with (the same in every supported discord.py, 2.4 to 2.7), turns
a request URL into a route template that carries no id and no token, and keeps the
bounded windows ``/sentry status`` shows.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tux_sentry_cog.core.metrics import SlidingWindowCounter

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "GLOBAL_429_FORMAT",
    "HEARTBEAT_BEHIND_FORMAT",
    "HEARTBEAT_BLOCKED_FORMAT",
    "ROUTE_429_FORMAT",
    "ROUTE_429_TOO_LONG_FORMAT",
    "DiscordLimitsSummary",
    "DiscordLimitsWindow",
    "MessageThrottle",
    "route_template",
]

#: discord.py's ``HTTPClient.request`` on a 429 it waits out (method, url, retry_after).
ROUTE_429_FORMAT = "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds."
#: The same when ``max_ratelimit_timeout`` is exceeded and it raises ``RateLimited``.
ROUTE_429_TOO_LONG_FORMAT = (
    "We are being rate limited. %s %s responded with 429. "
    "Timeout of %.2f was too long, erroring instead."
)
#: Logged right after :data:`ROUTE_429_FORMAT` when the 429 was the global limit.
GLOBAL_429_FORMAT = "Global rate limit has been hit. Retrying in %.2f seconds."
#: ``KeepAliveHandler.block_msg`` (shard_id, seconds); 2.7 appends the loop's traceback.
HEARTBEAT_BLOCKED_FORMAT = "Shard ID %s heartbeat blocked for more than %s seconds."
#: ``KeepAliveHandler.behind_msg`` (shard_id, seconds behind).
HEARTBEAT_BEHIND_FORMAT = "Can't keep up, shard ID %s websocket is %.1fs behind."

#: The window of the status figures, in seconds.
STATUS_WINDOW_SECONDS = 300.0
#: Most shards whose reconnects are counted apart; more share the ``other`` row.
MAX_SHARDS = 256
#: Longest route template kept (a metric attribute stays short).
MAX_ROUTE = 200

_API_PREFIX = re.compile(r"^/api(?:/v\d+)?(?=/|$)")
# A static segment of a discord.py route: lower-case words, ``@me``, ``@original``.
_STATIC = re.compile(r"^@?[a-z][a-z0-9_-]{0,39}$")
# Segments that are always data whatever they look like: the one after these names.
_VALUE_AFTER = {"reactions": "{emoji}", "invites": "{code}", "templates": "{code}"}
# Interaction and webhook tokens follow the id: /interactions/{id}/{token}/callback.
_TOKEN_AFTER = frozenset({"interactions", "webhooks"})


def route_template(method: str, url: str) -> str:
    """``METHOD /path/template`` of a Discord REST call: ids as ``{id}``, tokens as ``{token}``.

    Only static lower-case segments of Discord's API are kept as they are; every other
    segment becomes a placeholder, so no id, token, emoji or code ever leaves in a route.
    """
    path = urlsplit(url).path or "/"
    path = _API_PREFIX.sub("", path) or "/"
    parts: list[str] = []
    previous: list[str] = []
    for segment in path.split("/")[1:]:
        if not segment:
            continue
        if previous[-2:-1] and previous[-2] in _TOKEN_AFTER and previous[-1] == "{id}":
            part = "{token}"
        elif previous and previous[-1] in _VALUE_AFTER:
            part = _VALUE_AFTER[previous[-1]]
        elif segment.isdigit():
            part = "{id}"
        elif _STATIC.match(segment):
            part = segment
        else:
            part = "{value}"
        parts.append(part)
        previous.append(part)
    template = f"{method.upper()[:10]} /{'/'.join(parts)}"
    return template[:MAX_ROUTE]


class MessageThrottle:
    """At most one message per key per interval; a bounded table of keys.

    Args:
        interval_seconds: Least time between two messages of one key.
        max_keys: Most keys remembered; the oldest is forgotten first.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        interval_seconds: float,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty throttle."""
        self._interval = interval_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """True (and remembered) when ``key`` had no message in the last interval."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._last.pop(key, None)
            self._last[key] = now
            while len(self._last) > self._max_keys:
                del self._last[next(iter(self._last))]
            return True


@dataclass(frozen=True, slots=True)
class DiscordLimitsSummary:
    """Discord's limits as the status shows them.

    Attributes:
        rate_limits_5m: REST 429s in the last five minutes, by scope (``route``, ``global``).
        heartbeat_warnings_5m: discord.py's heartbeat warnings in the last five minutes.
        heartbeat_warnings: The same since load.
        reconnects: Reconnects (resumes and new sessions after the first) since load,
            by shard (``None`` for an unsharded bot).
        deadline_misses_5m: Interactions that missed Discord's 3 s deadline, last five minutes.
        deadline_misses: The same since load.
    """

    rate_limits_5m: dict[str, int] = field(default_factory=dict)
    heartbeat_warnings_5m: int = 0
    heartbeat_warnings: int = 0
    reconnects: dict[int | None, int] = field(default_factory=dict)
    deadline_misses_5m: int = 0
    deadline_misses: int = 0


class DiscordLimitsWindow:
    """Bounded, thread-safe record of Discord's limits for the status report.

    Heartbeat warnings arrive on discord.py's keep-alive thread, everything else on the
    event loop: one lock guards the lot (each update is a few operations).

    Args:
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Create an empty window."""
        self._clock = clock
        self._lock = threading.Lock()
        # Exact counts in one-second buckets, bounded by the window, not by the hits: a
        # 429 storm is counted whole. Scopes are the two this module names.
        self._rate_limits = {scope: self._window() for scope in ("route", "global")}
        self._heartbeats = self._window()
        self._deadlines = self._window()
        self.heartbeat_warnings = 0
        self.deadline_misses = 0
        self._reconnects: dict[int | None, int] = {}
        self._connected: set[int | None] = set()

    def rate_limited(self, scope: str) -> None:
        """Count a 429 of ``scope``."""
        with self._lock:
            self._rate_limits[scope if scope in self._rate_limits else "route"].add()

    def heartbeat_warning(self) -> None:
        """Count one of discord.py's heartbeat warnings."""
        with self._lock:
            self._heartbeats.add()
            self.heartbeat_warnings += 1

    def deadline_missed(self) -> None:
        """Count an interaction that missed its deadline."""
        with self._lock:
            self._deadlines.add()
            self.deadline_misses += 1

    def connected(self, shard_id: int | None) -> bool:
        """Note a new gateway session; True (and counted) when it is a reconnect."""
        with self._lock:
            if shard_id not in self._connected and len(self._connected) < MAX_SHARDS:
                self._connected.add(shard_id)
                return False
            self._count_reconnect(shard_id)
            return True

    def resumed(self, shard_id: int | None) -> None:
        """Note a resumed session: always a reconnect."""
        with self._lock:
            if len(self._connected) < MAX_SHARDS:
                self._connected.add(shard_id)
            self._count_reconnect(shard_id)

    def _count_reconnect(self, shard_id: int | None) -> None:
        if shard_id not in self._reconnects and len(self._reconnects) >= MAX_SHARDS:
            shard_id = -1  # the ``other`` row
        self._reconnects[shard_id] = self._reconnects.get(shard_id, 0) + 1

    def summary(self) -> DiscordLimitsSummary:
        """The figures now."""
        with self._lock:
            scopes = {s: n for s, c in self._rate_limits.items() if (n := c.total())}
            return DiscordLimitsSummary(
                rate_limits_5m=scopes,
                heartbeat_warnings_5m=self._heartbeats.total(),
                heartbeat_warnings=self.heartbeat_warnings,
                reconnects=dict(self._reconnects),
                deadline_misses_5m=self._deadlines.total(),
                deadline_misses=self.deadline_misses,
            )

    def _window(self) -> SlidingWindowCounter:
        return SlidingWindowCounter(STATUS_WINDOW_SECONDS, 1.0, clock=self._clock)
