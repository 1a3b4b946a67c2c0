"""Related errors: what else went wrong recently that shares something with this error.

A bounded window (the plan's last 100 errors, 5 minutes) is searched on every reported
error; the relations found go on the event as the ``correlation`` context and the
``error.related`` tag, so a responder sees "this user hit three other errors in the last
minute" without searching.

The window is also indexed by signature (fingerprint, user, command, guild): errors
with one signature relate to a new error in the same way, so :meth:`relate` looks at
each signature once instead of at each error. In an error storm, when the error path's
cost matters most, the window is a hundred copies of a few signatures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ErrorRecord", "RelatedError", "RelatedErrorDetector"]

#: What two errors share, or not, with any third one, apart from their run.
_Signature = tuple[str, str | None, str | None, str | None]

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


def _relation(current: _Signature, earlier: _Signature) -> str | None:
    """How an earlier error relates to the current one, apart from sharing its run.

    Strongest first: the same cause, then who and where ("dm" is no guild to share).
    Both signatures are (fingerprint, user id, command, guild id).
    """
    fingerprint, user_id, command, guild_id = current
    if fingerprint == earlier[0]:
        return "same_fingerprint"
    if user_id and user_id == earlier[1]:
        return "same_user"
    if command and command == earlier[2]:
        return "same_command"
    if guild_id and guild_id != "dm" and guild_id == earlier[3]:
        return "same_guild"
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
        # The window by signature: [errors in the window, the newest of them, its
        # sequence number], and by run. Both hold only what ``recent_errors`` holds.
        self._signatures: dict[_Signature, list[Any]] = {}
        self._runs: dict[str, int] = {}
        self._sequence = 0
        self._indexed = 0  # errors the index holds
        self._newest: ErrorRecord | None = None  # the last one it took in

    def record_error(
        self, error: BaseException, context: Mapping[str, Any]
    ) -> list[RelatedError]:
        """Record ``error`` and return the earlier errors related to it, newest first.

        ``context`` is shaped like the event contexts: ``fingerprint`` (a list or a
        string), ``correlation_id``, ``user.id``, ``guild.id`` and ``command.name`` are
        read when present.
        """
        record = self._record(error, context)
        self._sync()
        self._expire(record.timestamp)
        _, related = self._scan(record, None)
        self._append(record)
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
        self._sync()
        self._expire(record.timestamp)
        if record.correlation_id and record.correlation_id in self._runs:
            # An earlier error of the same run relates as "same_run" whatever its
            # signature: rare, and exact only entry by entry.
            result = self._scan(record, limit)
        else:
            result = self._scan_signatures(record, limit)
        self._append(record)
        return result

    @staticmethod
    def _signature(record: ErrorRecord) -> _Signature:
        return (record.fingerprint, record.user_id, record.command, record.guild_id)

    def _sync(self) -> None:
        """Rebuild the index if ``recent_errors`` was changed from outside (cleared, say).

        The window is a public attribute; the index must never answer for errors it
        no longer holds. Checked by its length and its newest error: O(1) per error.
        """
        window = self.recent_errors
        newest = window[-1] if window else None
        if self._indexed == len(window) and self._newest is newest:
            return
        self._signatures.clear()
        self._runs.clear()
        self._indexed = 0
        for record in window:
            self._index(record)

    def _append(self, record: ErrorRecord) -> None:
        window = self.recent_errors
        if window.maxlen == 0:
            return
        if len(window) == window.maxlen:
            self._forget(window[0])  # the append below drops it
        window.append(record)
        self._index(record)

    def _index(self, record: ErrorRecord) -> None:
        self._sequence += 1
        self._indexed += 1
        self._newest = record
        signature = self._signature(record)
        entry = self._signatures.get(signature)
        if entry is None:
            self._signatures[signature] = [1, record, self._sequence]
        else:
            entry[0] += 1
            entry[1] = record
            entry[2] = self._sequence
        if record.correlation_id:
            self._runs[record.correlation_id] = self._runs.get(record.correlation_id, 0) + 1

    def _forget(self, record: ErrorRecord) -> None:
        """Take the oldest error of the window out of the index (oldest first only)."""
        self._indexed -= 1
        signature = self._signature(record)
        entry = self._signatures[signature]
        entry[0] -= 1
        if not entry[0]:
            del self._signatures[signature]
        run = record.correlation_id
        if run:
            left = self._runs[run] - 1
            if left:
                self._runs[run] = left
            else:
                del self._runs[run]

    def _expire(self, now: float) -> None:
        """Drop the errors too old to relate to an error at ``now``, oldest first."""
        window = self.recent_errors
        while window and now - window[0].timestamp > self._window:
            self._forget(window.popleft())

    def _scan_signatures(
        self, current: ErrorRecord, limit: int | None
    ) -> tuple[int, list[RelatedError]]:
        """:meth:`_scan`'s answer, from the signature index.

        Only for an error whose run has no earlier error in the window, so that no
        relation is ``same_run``.
        """
        mine = self._signature(current)
        count = 0
        newest: dict[tuple[str, str | None, str], tuple[int, ErrorRecord]] = {}
        for signature, (errors, record, sequence) in self._signatures.items():
            relation = _relation(mine, signature)
            if relation is None:
                continue
            count += errors
            key = (record.fingerprint, record.command, relation)
            kept = newest.get(key)
            if kept is None or kept[0] < sequence:
                newest[key] = (sequence, record)
        ordered = sorted(newest.items(), key=lambda item: item[1][0], reverse=True)
        now = current.timestamp
        return count, [
            RelatedError(fp, name, now - record.timestamp, relation)
            for (fp, name, relation), (_, record) in ordered[:limit]
        ]

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

    def _scan(
        self, current: ErrorRecord, limit: int | None
    ) -> tuple[int, list[RelatedError]]:
        """Count the related errors; keep all of them (``limit=None``) or the newest distinct.

        Entry by entry, over a window :meth:`_expire` has just cut to the time limit.
        The same run is the strongest relation; the others are :func:`_relation`'s.
        """
        correlation_id = current.correlation_id
        mine = self._signature(current)
        now = current.timestamp
        related: list[RelatedError] = []
        seen: set[tuple[str, str | None, str]] = set()
        count = 0
        for earlier in reversed(self.recent_errors):
            relation = (
                "same_run"
                if correlation_id and correlation_id == earlier.correlation_id
                else _relation(mine, self._signature(earlier))
            )
            if relation is None:
                continue
            count += 1
            age = now - earlier.timestamp
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
