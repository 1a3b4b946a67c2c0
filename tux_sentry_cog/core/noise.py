"""Noise control: the event budget per fingerprint and the list of ignored errors.

The budget: at most ``limit`` error events of one fingerprint are sent per window (an
hour). The window of a group starts at the first event admitted in it and lasts
``window_seconds``; events past the limit inside it are *held back*, counted here and
never built. The first event admitted once the window is over carries what was held back
(the ``noise`` context: ``suppressed`` and ``since``). A fixed window per group costs
four numbers per group, however large the limit; a sliding one would keep ``limit``
timestamps per group.

The table of groups is bounded (``max_groups``, least recently seen evicted): an
evicted group starts afresh, with a full budget and nothing held back to report; the
total held back (:attr:`EventBudget.held_back`) never forgets.

An admitted event the SDK then does not send gives its slot back (:meth:`EventBudget.refund`),
and what it carried as held back goes back to the group for the next event: the SDK says
so when ``capture_event`` returns no id (the owner's ``before_send`` dropped it, or the
SDK's own ``sample_rate`` / ``ignore_errors`` did). What the transport loses later
(a network failure, Sentry's rate limit) has spent its slot.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "DEFAULT_BUDGET_GROUPS",
    "BudgetTicket",
    "EventBudget",
    "IgnoredErrors",
]

#: Groups the budget tracks at most (least recently seen evicted).
DEFAULT_BUDGET_GROUPS = 1000


@dataclass(slots=True)
class _Group:
    window_start: float
    sent: int = 0
    suppressed: int = 0
    since: float | None = None  # wall time of the first event held back


@dataclass(slots=True)
class BudgetTicket:
    """One admitted event: its group, and the ``noise`` context it carries, if any.

    Attributes:
        budget: The budget that admitted it.
        group: The fingerprint, joined.
        suppressed: Events held back before this one (0: no ``noise`` context).
        since: Wall time (epoch seconds) of the first of them.
        refunded: True once its slot was given back.
    """

    budget: EventBudget
    group: str
    suppressed: int = 0
    since: float | None = None
    refunded: bool = False

    def noise_context(self) -> dict[str, Any] | None:
        """The ``noise`` context of the event, or ``None`` when nothing was held back."""
        if not self.suppressed or self.since is None:
            return None
        since = dt.datetime.fromtimestamp(self.since, tz=dt.UTC)
        return {"suppressed": self.suppressed, "since": since.isoformat(timespec="seconds")}

    def refund(self) -> None:
        """The event was not sent after all; give its slot back (once)."""
        if not self.refunded:
            self.refunded = True
            self.budget.refund(self)


class EventBudget:
    """The event budget per fingerprint.

    Args:
        limit: Events of one group sent per window; ``0`` is unlimited.
        window_seconds: The window (an hour).
        max_groups: Groups tracked at most.
        clock: Monotonic clock in seconds, for the windows; injectable for tests.
        wall_clock: Epoch seconds, for the ``since`` of the ``noise`` context.
    """

    def __init__(
        self,
        limit: int = 50,
        window_seconds: float = 3600.0,
        max_groups: int = DEFAULT_BUDGET_GROUPS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Start with no groups."""
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_groups = max_groups
        self._clock = clock
        self._wall_clock = wall_clock
        self._groups: OrderedDict[str, _Group] = OrderedDict()
        #: Events held back since load, all groups (evicted ones included).
        self.held_back = 0

    def admit(self, group: str) -> BudgetTicket | None:
        """Count one event of ``group``: its ticket if it may be sent, ``None`` if held back."""
        if self.limit <= 0:
            return BudgetTicket(self, group)
        now = self._clock()
        entry = self._groups.get(group)
        if entry is None:
            entry = _Group(window_start=now)
            self._groups[group] = entry
            if len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(group)
            if now - entry.window_start >= self.window_seconds:
                entry.window_start = now
                entry.sent = 0
        if entry.sent >= self.limit:
            entry.suppressed += 1
            if entry.since is None:
                entry.since = self._wall_clock()
            self.held_back += 1
            return None
        entry.sent += 1
        ticket = BudgetTicket(self, group, entry.suppressed, entry.since)
        entry.suppressed = 0
        entry.since = None
        return ticket

    def refund(self, ticket: BudgetTicket) -> None:
        """Give back the slot of ``ticket`` and the held-back count it carried."""
        entry = self._groups.get(ticket.group)
        if entry is None or ticket.budget is not self:
            return  # evicted meanwhile: nothing left to give back to
        entry.sent = max(0, entry.sent - 1)
        if ticket.suppressed:
            entry.suppressed += ticket.suppressed
            if ticket.since is not None and (entry.since is None or ticket.since < entry.since):
                entry.since = ticket.since

    def suppressed(self, n: int = 5) -> list[tuple[str, int]]:
        """Up to ``n`` ``(group, events held back and not yet reported)``, most first."""
        pending = [(group, e.suppressed) for group, e in self._groups.items() if e.suppressed]
        return sorted(pending, key=lambda item: item[1], reverse=True)[:n]

    def __len__(self) -> int:
        """Groups tracked now."""
        return len(self._groups)


class IgnoredErrors:
    """Exception names never sent as events (``TUX_SENTRY_IGNORE_ERRORS``).

    A name matches an exception whose class, or any class it derives from, has that
    name: ``ValueError`` ignores ``UnicodeDecodeError`` too, as ``except ValueError``
    would catch it. A bare name (``Quiet``) is compared with the class's ``__name__``
    and ``__qualname__``; a dotted one (``mybot.errors.Quiet``) with
    ``<module>.<qualname>`` (``builtins.ValueError`` for a built-in).

    Args:
        names: The names, as configured.
    """

    __slots__ = ("_bare", "_qualified")

    def __init__(self, names: Iterable[str] = ()) -> None:
        """Split the names into bare and qualified ones."""
        bare: set[str] = set()
        qualified: set[str] = set()
        for name in names:
            # A dotted name can be a nested class's qualname (``Outer.Inner``) too.
            (qualified if "." in name else bare).add(name)
            bare.add(name)
        self._bare = frozenset(bare)
        self._qualified = frozenset(qualified)

    def __bool__(self) -> bool:
        """True when any name is configured."""
        return bool(self._bare)

    def matches(self, error: BaseException) -> bool:
        """True when ``error`` is to be ignored."""
        if not self._bare:
            return False
        for cls in type(error).__mro__:
            if cls.__name__ in self._bare or cls.__qualname__ in self._bare:
                return True
            if self._qualified and f"{cls.__module__}.{cls.__qualname__}" in self._qualified:
                return True
        return False
