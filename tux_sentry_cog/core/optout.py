"""Opt-outs: runs in some guilds, by some users, or that the owner's code refuses, stay out.

A run that is opted out sends no error event, no transaction and no breadcrumb, and no
message the cog raises about it (spikes, anomalies); nothing about it enters the window of
related errors. Metrics without ids (``errors.total``, ``commands.executed``, ...) and
the status report still count it.

The policy is asked when a run starts (``exception`` is ``None``), before its
transaction opens, and again for each error of a run that was not opted out (with the
exception), before its event is built: a run refused then sends neither the event nor its
transaction. Listener errors, which have no run, are asked once, with the exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "OPTED_OUT_GUILD",
    "OptOutPolicy",
    "RunDescription",
    "drop_transaction",
    "parse_snowflake",
]

_log = logging.getLogger(__name__)


#: The ``guild_id`` attribute of ``user_activity`` for activity of an opted-out guild or user.
OPTED_OUT_GUILD = "opted_out"


def parse_snowflake(value: object) -> int | None:
    """An id given as an int or a string of digits, else ``None`` (``"dm"``, ``"none"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def drop_transaction(transaction: Any) -> None:
    """Make a run's open transaction go unsent when it finishes (the run opted out late).

    An unsampled transaction is discarded by the SDK at ``finish``; its child spans go
    with it. A streamed span (``trace_lifecycle="stream"``) has no such switch: it is
    sent, and only the start-of-run question keeps a run out of span streaming.
    """
    if transaction is not None and hasattr(transaction, "sampled"):
        try:
            transaction.sampled = False
        except Exception:  # a span type that does not take it (streamed spans)
            _log.debug("could not drop an opted-out run's transaction", exc_info=True)


@dataclass(frozen=True, slots=True)
class RunDescription:
    """What ``SentryCogConfig.should_report`` is told about a run.

    Attributes:
        source_type: The ``command.type``: ``prefix``, ``hybrid``, ``slash``,
            ``context_menu``, ``autocomplete``, ``component``, ``modal``, ``event`` or
            ``task``.
        command: The qualified command name (``<Cog>.<method>`` for a task loop, the
            event's name for a listener).
        guild_id: The guild's id; ``None`` in DMs and where there is no guild.
        user_id: The invoking user's id, if there is one.
        exception: The error, when asked about one; ``None`` when the run starts.
    """

    source_type: str
    command: str
    guild_id: int | None = None
    user_id: int | None = None
    exception: BaseException | None = None


class OptOutPolicy:
    """Decides whether a run may send anything.

    Args:
        guild_ids: Guilds whose runs send nothing.
        user_ids: Users whose runs send nothing.
        should_report: The owner's callable; ``False`` opts the run out. If it raises,
            the fault is logged and the run is opted out (when the owner's own rule
            cannot say, nothing is sent rather than something it meant to keep out).
    """

    __slots__ = ("_faults", "_guild_ids", "_should_report", "_user_ids", "active")

    def __init__(
        self,
        guild_ids: Iterable[int] = (),
        user_ids: Iterable[int] = (),
        should_report: Callable[[RunDescription], object] | None = None,
    ) -> None:
        """Keep the lists as sets."""
        self._guild_ids = frozenset(guild_ids)
        self._user_ids = frozenset(user_ids)
        self._should_report = should_report
        self._faults = 0
        #: True when anything can opt a run out (the lists never change after this).
        self.active = bool(self._guild_ids or self._user_ids or should_report is not None)

    def refuses(self, sending: bool, describe: Callable[[], RunDescription]) -> bool:
        """True when the run ``describe`` tells of is to send nothing.

        Asked only while something is sent (``sending``): in local mode nothing leaves,
        and the owner's rule then costs nothing; ``describe`` is called only when a rule
        could refuse.
        """
        return self.active and sending and not self.allows(describe())

    @property
    def faults(self) -> int:
        """How many times ``should_report`` raised."""
        return self._faults

    def allows(self, description: RunDescription) -> bool:
        """True when the run described may send what is about it."""
        if description.guild_id is not None and description.guild_id in self._guild_ids:
            return False
        if description.user_id is not None and description.user_id in self._user_ids:
            return False
        should_report = self._should_report
        if should_report is None:
            return True
        try:
            return bool(should_report(description))
        except Exception:
            self._faults += 1
            # Logged in full the first time, then briefly: a broken rule runs per command.
            if self._faults == 1:
                _log.exception("tux_sentry_cog: should_report raised; the run is not reported")
            else:
                _log.warning(
                    "tux_sentry_cog: should_report raised again (%d times); the run is "
                    "not reported",
                    self._faults,
                )
            return False
