"""What the SDK's transport really did with what it was given: delivered, refused, lost.

``capture_event`` returning an id means the event was queued, not that Sentry has it: the
transport may still drop it (Sentry unreachable, a 5xx, the queue full, a rate limit) or
Sentry may refuse it with 429. The status report shows figures an owner can verify by
counting, so they are read here, where the transport says what happened:

- deliveries and refusals from the transport's response handling (2xx: delivered; 429:
  refused by Sentry, which the SDK itself does not count as a loss because Sentry
  records that outcome on its side);
- losses from ``record_lost_event``, by data category and quantity, exactly as the SDK's
  client reports count them. The SDK records a dropped transaction once for the
  transaction and once more for its spans (the transaction's own span included); the two
  are kept apart by category, so a dropped transaction counts one ``transaction`` and
  ``n + 1`` ``span``, never two transactions;
- rate limits from the transport's per-category limits, each with its expiry, and only
  while it lasts.

The transport calls in from its worker thread (or the event loop, for the SDK's asyncio
transport); every counter is updated under one lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "LOSS_REASONS",
    "MAX_WATCHED_EVENTS",
    "DeliveryLedger",
    "EventFate",
    "RateLimit",
    "item_quantities",
]

#: The SDK's reasons for a lost item that mean Sentry could not be reached or took no
#: more. Drops a hook or sampling makes on purpose (``before_send``, ``sample_rate``,
#: ``event_processor``) are the owner's choices, not trouble.
LOSS_REASONS = frozenset(
    {
        "network_error",
        "queue_overflow",
        "ratelimit_backoff",
        "send_error",
        "buffer_overflow",
        "internal_sdk_error",
    }
)

#: Event ids whose fate is followed at most (oldest forgotten first).
MAX_WATCHED_EVENTS = 1000

#: Losses older than this are history, not a problem to show.
RECENT_SECONDS = 300.0

# Categories whose quantity is a size in bytes, not a number of items: the SDK reports
# them next to the item counts; they are not "how many" figures.
_BYTE_CATEGORIES = frozenset({"log_byte", "trace_metric_byte", "attachment"})
_BATCHED = frozenset({"span", "log_item", "trace_metric"})
_HTTP_OK = range(200, 300)
_HTTP_TOO_MANY = 429


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One rate limit the transport obeys now.

    Attributes:
        category: The data category it covers; ``None`` for every category.
        seconds_left: How long it still lasts.
        until: When it ends (UTC).
    """

    category: str | None
    seconds_left: float
    until: datetime


@dataclass(frozen=True, slots=True)
class EventFate:
    """What became of one watched event: ``delivered``, ``refused`` or ``lost``."""

    outcome: str
    detail: str = ""


def item_quantities(item: Any) -> list[tuple[str, int]]:
    """``(category, quantity)`` pairs an envelope item counts for, as the SDK counts them.

    A transaction is one ``transaction`` and its spans plus its own as ``span``; a
    batched item (spans, logs, metrics) counts its ``item_count``; a client report counts
    nothing (it is the accounting itself).
    """
    category = str(getattr(item, "data_category", "default"))
    if category == "internal":
        return []
    if category == "transaction":
        event = item.get_transaction_event() or {}
        return [("transaction", 1), ("span", len(event.get("spans") or []) + 1)]
    if category in _BATCHED:
        count = item.headers.get("item_count")
        return [(category, count if isinstance(count, int) and count > 0 else 1)]
    return [(category, 1)]


def _event_id(item: Any) -> str | None:
    if getattr(item, "type", None) != "event":
        return None
    event = item.get_event() or {}
    event_id = event.get("event_id")
    return str(event_id) if event_id else None


class DeliveryLedger:
    """Counts what one transport delivered, what Sentry refused and what was lost.

    Args:
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(self, clock: Any = time.monotonic) -> None:
        """Start with nothing counted."""
        self._clock = clock
        self._lock = threading.Lock()
        self.delivered: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.lost: dict[tuple[str, str], int] = {}
        self._last_trouble = -float("inf")
        self._watched: OrderedDict[str, EventFate | None] = OrderedDict()
        self.watched_delivered = 0
        self.watched_failed = 0
        self.last_delivered_event_id: str | None = None
        self._disabled_until: Any = None
        #: False when the transport could not be watched (an SDK or a custom transport
        #: without the hooks): delivery figures are then unknown, not zero.
        self.deliveries_known = False

    # what the cog asks ---------------------------------------------------------------

    def watch(self, event_id: str) -> None:
        """Follow the fate of ``event_id`` (an event the cog queued)."""
        with self._lock:
            self._watched[event_id] = None
            self._watched.move_to_end(event_id)
            while len(self._watched) > MAX_WATCHED_EVENTS:
                self._watched.popitem(last=False)

    def fate(self, event_id: str) -> EventFate | None:
        """What became of a watched event; ``None`` while it is still on its way."""
        with self._lock:
            return self._watched.get(event_id)

    def recent_losses(self) -> dict[tuple[str, str], int]:
        """Losses by ``(category, reason)``, if any happened in the last five minutes."""
        with self._lock:
            if self._clock() - self._last_trouble >= RECENT_SECONDS:
                return {}
            return dict(self.lost)

    def recent_refusals(self) -> dict[str, int]:
        """Items Sentry refused with 429, by category, if any in the last five minutes."""
        with self._lock:
            if self._clock() - self._last_trouble >= RECENT_SECONDS:
                return {}
            return dict(self.refused)

    def rate_limits(self) -> list[RateLimit]:
        """The transport's rate limits in force now, soonest to end first."""
        disabled = self._disabled_until
        if not disabled:
            return []
        now = datetime.now(UTC)
        limits = [
            RateLimit(category, (until - now).total_seconds(), until)
            for category, until in list(disabled.items())
            if until > now
        ]
        return sorted(limits, key=lambda limit: limit.until)

    # what the transport tells --------------------------------------------------------

    def bind_rate_limits(self, disabled_until: Any) -> None:
        """Read rate limits from the transport's per-category table (category -> UTC end)."""
        self._disabled_until = disabled_until

    def on_response(self, status: int, envelope: Any) -> None:
        """The transport got ``status`` for ``envelope`` (after its rate limits took items out)."""
        items = list(getattr(envelope, "items", None) or [])
        if status in _HTTP_OK:
            table, fate = self.delivered, EventFate("delivered")
        elif status == _HTTP_TOO_MANY:
            table, fate = self.refused, EventFate("refused", "rate limited by Sentry (HTTP 429)")
        else:
            # The SDK records these as lost (record_lost_event); counted there.
            table, fate = None, EventFate("lost", f"HTTP {status}")
        with self._lock:
            if table is not None:
                for item in items:
                    for category, quantity in item_quantities(item):
                        table[category] = table.get(category, 0) + quantity
            if table is not self.delivered:
                self._last_trouble = self._clock()
            for item in items:
                self._settle(_event_id(item), fate)

    def on_lost(
        self, reason: str, data_category: str | None, item: Any, quantity: int
    ) -> None:
        """The SDK recorded a lost item (``record_lost_event``'s arguments)."""
        if reason not in LOSS_REASONS:
            return
        if item is not None:
            # As the SDK: the item decides the category; a transaction's spans arrive
            # as a second call of their own (category "span"), counted then.
            quantities = [
                pair for pair in item_quantities(item)[:1] if pair[0] not in _BYTE_CATEGORIES
            ]
        elif data_category is not None and data_category not in _BYTE_CATEGORIES:
            quantities = [(data_category, quantity)]
        else:
            quantities = []
        with self._lock:
            for category, amount in quantities:
                key = (category, reason)
                self.lost[key] = self.lost.get(key, 0) + amount
            self._last_trouble = self._clock()
            if item is not None:
                self._settle(_event_id(item), EventFate("lost", reason))

    def _settle(self, event_id: str | None, fate: EventFate) -> None:
        if event_id is None or event_id not in self._watched:
            return
        if self._watched[event_id] is not None:
            return  # decided already
        self._watched[event_id] = fate
        if fate.outcome == "delivered":
            self.watched_delivered += 1
            self.last_delivered_event_id = event_id
        else:
            self.watched_failed += 1
