"""Related errors: what else went wrong recently that shares something with this error.

A bounded window (the last 100 errors, 5 minutes) is searched on every reported error;
the relations found go on the event as the ``correlation`` context and the
``error.related`` tag, so a responder sees "this command broke in another way a minute
ago" without searching.

The rules, so that ``error.related=yes`` means something:

- an earlier error relates through the same run (``same_run``), the same command
  (``same_command``) or, within :data:`SAME_GUILD_SECONDS`, the same guild
  (``same_guild``); the first of these that holds is named. Sharing a user is no
  relation: a user who meets two unrelated bugs connects nothing.
- repeats of the same group (the same fingerprint) are not related errors: they are the
  same error again, counted by the group (the status's top groups, spike detection);
- user-caused errors (a typo, a missing permission, a cooldown) never make an error
  related: they are not kept in the window at all.

The window holds at most ``max_errors`` records, so a scan is at most that many
comparisons of short strings, next to the milliseconds the SDK takes to capture the event.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_RELATED_ON_EVENT",
    "RELATIONS",
    "SAME_GUILD_SECONDS",
    "ErrorRecord",
    "RelatedError",
    "RelatedErrorDetector",
]

#: At most this many related errors go on one event.
MAX_RELATED_ON_EVENT = 10

#: An error of the same guild relates only if it is at most this old (seconds).
SAME_GUILD_SECONDS = 60.0

#: The relations, strongest first.
RELATIONS = ("same_run", "same_command", "same_guild")


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """What the window keeps of one error: no exception object, no message text."""

    timestamp: float
    fingerprint: str
    error_type: str
    correlation_id: str | None
    user_id: str | None
    guild_id: str | None
    command: str | None


@dataclass(frozen=True, slots=True)
class RelatedError:
    """One earlier error and how it relates to the current one."""

    fingerprint: str
    command: str | None
    seconds_ago: float
    relation: str

    def as_context(self) -> dict[str, Any]:
        """The shape of one ``correlation.related_errors`` item."""
        return {
            "fingerprint": self.fingerprint,
            "command": self.command,
            "seconds_ago": round(self.seconds_ago, 3),
            "relation": self.relation,
        }


def _section(context: Mapping[str, Any], group: str, key: str) -> str | None:
    section = context.get(group)
    if isinstance(section, Mapping) and section.get(key) is not None:
        return str(section[key])
    return None


class RelatedErrorDetector:
    """Keeps a bounded window of recent errors and relates new ones to it.

    Args:
        max_errors: Most errors kept (oldest dropped first).
        window_seconds: Errors older than this are never related.
        clock: Monotonic clock in seconds; injectable for tests.
        same_guild_seconds: An error of the same guild relates only within this.
    """

    def __init__(
        self,
        max_errors: int = 100,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        same_guild_seconds: float = SAME_GUILD_SECONDS,
    ) -> None:
        """Create an empty window."""
        self.recent_errors: deque[ErrorRecord] = deque(maxlen=max_errors)
        self._window = window_seconds
        self._same_guild = same_guild_seconds
        self._clock = clock

    def record_error(
        self, error: BaseException, context: Mapping[str, Any]
    ) -> list[RelatedError]:
        """Record ``error`` and return every earlier error related to it, newest first.

        ``context`` is shaped like the event contexts: ``fingerprint`` (a list or a
        string), ``correlation_id``, ``guild.id`` and ``command.name`` are read when
        present; ``user_caused: True`` keeps the error out of the window.
        """
        return self._relate(error, context, None)[1]

    def relate(
        self, error: BaseException, context: Mapping[str, Any], limit: int = MAX_RELATED_ON_EVENT
    ) -> tuple[int, list[RelatedError]]:
        """Record ``error``; return how many earlier errors relate to it and the newest few.

        The few are distinct: the newest one per fingerprint, command and relation, at
        most ``limit``. ``context`` is read as in :meth:`record_error`.
        """
        return self._relate(error, context, limit)

    def _relate(
        self, error: BaseException, context: Mapping[str, Any], limit: int | None
    ) -> tuple[int, list[RelatedError]]:
        record = self._record(error, context)
        window = self.recent_errors
        now = record.timestamp
        while window and now - window[0].timestamp > self._window:
            window.popleft()
        count, related = self._scan(record, limit)
        if not context.get("user_caused"):
            window.append(record)
        return count, related

    def _scan(
        self, current: ErrorRecord, limit: int | None
    ) -> tuple[int, list[RelatedError]]:
        """Count the related errors; keep all of them (``limit=None``) or the newest distinct.

        The relations, strongest first, written out in the loop: in an error storm the
        window is a hundred repeats of one group, each skipped by one comparison.
        """
        now = current.timestamp
        fingerprint = current.fingerprint
        run = current.correlation_id
        command = current.command
        guild = current.guild_id if current.guild_id != "dm" else None  # DMs share no guild
        guild_since = now - self._same_guild
        related: list[RelatedError] = []
        seen: set[tuple[str, str | None, str]] = set()
        count = 0
        for earlier in reversed(self.recent_errors):
            if earlier.fingerprint == fingerprint:
                continue  # a repeat of the group, not a related error
            if run and run == earlier.correlation_id:
                relation = "same_run"
            elif command and command == earlier.command:
                relation = "same_command"
            elif guild and guild == earlier.guild_id and earlier.timestamp >= guild_since:
                relation = "same_guild"
            else:
                continue
            count += 1
            if limit is not None:
                key = (earlier.fingerprint, earlier.command, relation)
                if key in seen or len(related) >= limit:
                    continue
                seen.add(key)
            related.append(
                RelatedError(
                    earlier.fingerprint, earlier.command, now - earlier.timestamp, relation
                )
            )
        return count, related

    def _record(self, error: BaseException, context: Mapping[str, Any]) -> ErrorRecord:
        fingerprint = context.get("fingerprint")
        if isinstance(fingerprint, Sequence) and not isinstance(fingerprint, str):
            fingerprint = "|".join(str(part) for part in fingerprint)
        return ErrorRecord(
            timestamp=self._clock(),
            fingerprint=str(fingerprint or type(error).__name__),
            error_type=type(error).__name__,
            correlation_id=context.get("correlation_id"),
            user_id=_section(context, "user", "id"),
            guild_id=_section(context, "guild", "id"),
            command=_section(context, "command", "name"),
        )
