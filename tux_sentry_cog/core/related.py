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
        record = self._record(error, context)
        _, related = self._scan(record, None)
        self.recent_errors.append(record)
        return related

    def relate(
        self, error: BaseException, context: Mapping[str, Any], limit: int = MAX_RELATED_ON_EVENT
    ) -> tuple[int, list[RelatedError]]:
        """Record ``error``; return how many earlier errors relate to it and the newest few.

        The few are distinct: the newest one per fingerprint, command and relation, at
        most ``limit``. A burst of one error fills the window with copies that differ
        only in their age; ten of them on an event say less than the count does, cost
        the event ~50 fields to serialise, and crowd out every other relation.
        ``context`` is read as in :meth:`record_error`.
        """
        record = self._record(error, context)
        result = self._scan(record, limit)
        self.recent_errors.append(record)
        return result

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

    def _scan(  # noqa: C901 - the relation rules are inlined (see below)
        self, current: ErrorRecord, limit: int | None
    ) -> tuple[int, list[RelatedError]]:
        """Count the related errors; keep all of them (``limit=None``) or the newest distinct.

        Every reported error scans the whole window, so the relation rules are inlined
        here with the current error's fields in locals. Strongest relation first: the same
        run, then the same cause, then who and where ("dm" is no guild to share).
        """
        correlation_id = current.correlation_id
        fingerprint = current.fingerprint
        user_id = current.user_id
        command = current.command
        guild_id = current.guild_id if current.guild_id != "dm" else None
        now = current.timestamp
        window = self._window
        related: list[RelatedError] = []
        seen: set[tuple[str, str | None, str]] = set()
        count = 0
        for earlier in reversed(self.recent_errors):
            age = now - earlier.timestamp
            if age > window:
                break  # the deque is in time order: everything further is older
            if correlation_id and correlation_id == earlier.correlation_id:
                relation = "same_run"
            elif fingerprint == earlier.fingerprint:
                relation = "same_fingerprint"
            elif user_id and user_id == earlier.user_id:
                relation = "same_user"
            elif command and command == earlier.command:
                relation = "same_command"
            elif guild_id and guild_id == earlier.guild_id:
                relation = "same_guild"
            else:
                continue
            count += 1
            if limit is None:
                related.append(RelatedError(earlier.fingerprint, earlier.command, age, relation))
            elif len(related) < limit:
                key = (earlier.fingerprint, earlier.command, relation)
                if key not in seen:
                    seen.add(key)
                    related.append(
                        RelatedError(earlier.fingerprint, earlier.command, age, relation)
                    )
        return count, related
