"""Related errors: what else went wrong recently that shares something with this error.

A bounded window (the plan's last 100 errors, 5 minutes) is searched on every reported
error; the relations found go on the event as the ``correlation`` context and the
``error.related`` tag, so a responder sees "this user hit three other errors in the last
minute" without searching.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ErrorRecord", "RelatedError", "RelatedErrorDetector"]

#: At most this many related errors go on one event (SPEC.md).
MAX_RELATED_ON_EVENT = 10


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
        """The shape SPEC.md gives for ``correlation.related_errors`` items."""
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
    """

    def __init__(
        self,
        max_errors: int = 100,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty window."""
        self.recent_errors: deque[ErrorRecord] = deque(maxlen=max_errors)
        self._window = window_seconds
        self._clock = clock

    def record_error(
        self, error: BaseException, context: Mapping[str, Any]
    ) -> list[RelatedError]:
        """Record ``error`` and return the earlier errors related to it, newest first.

        ``context`` is shaped like the event contexts: ``fingerprint`` (a list or a
        string), ``correlation_id``, ``user.id``, ``guild.id`` and ``command.name`` are
        read when present.
        """
        fingerprint = context.get("fingerprint")
        if isinstance(fingerprint, Sequence) and not isinstance(fingerprint, str):
            fingerprint = "|".join(str(part) for part in fingerprint)
        record = ErrorRecord(
            timestamp=self._clock(),
            fingerprint=str(fingerprint or type(error).__name__),
            error_type=type(error).__name__,
            correlation_id=context.get("correlation_id"),
            user_id=_section(context, "user", "id"),
            guild_id=_section(context, "guild", "id"),
            command=_section(context, "command", "name"),
        )
        related = self._find_related(record)
        self.recent_errors.append(record)
        return related

    def _find_related(self, current: ErrorRecord) -> list[RelatedError]:
        related: list[RelatedError] = []
        for earlier in reversed(self.recent_errors):
            age = current.timestamp - earlier.timestamp
            if age > self._window:
                break  # the deque is in time order: everything further is older
            relation = self._relation(current, earlier)
            if relation is not None:
                related.append(RelatedError(earlier.fingerprint, earlier.command, age, relation))
        return related

    @staticmethod
    def _relation(current: ErrorRecord, earlier: ErrorRecord) -> str | None:
        # Strongest relation first: the same run, then the same cause, then who and where.
        if current.correlation_id and current.correlation_id == earlier.correlation_id:
            return "same_run"
        if current.fingerprint == earlier.fingerprint:
            return "same_fingerprint"
        if current.user_id and current.user_id == earlier.user_id:
            return "same_user"
        if current.command and current.command == earlier.command:
            return "same_command"
        if current.guild_id and current.guild_id != "dm" and (
            current.guild_id == earlier.guild_id
        ):
            return "same_guild"
        return None
