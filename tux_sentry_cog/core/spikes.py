"""Error spikes: one fingerprint repeating fast enough to deserve a message of its own.

The contract: at least 5 occurrences of one group in 5 minutes raise one warning message,
``Error spike: <type> in <command>``, rate-limited per group. Memory is bounded: a few
timestamps per group, and at most ``max_groups`` groups (least recently seen evicted).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SpikeDetector"]


class SpikeDetector:
    """Counts occurrences per group in a sliding window and says when one spikes.

    Args:
        threshold: Occurrences within the window that make a spike.
        window_seconds: The window.
        cooldown_seconds: After a spike of a group, no other one for it this long.
        max_groups: Groups tracked at most.
        clock: Monotonic clock in seconds; injectable for tests.
    """

    def __init__(
        self,
        threshold: int = 5,
        window_seconds: float = 300.0,
        cooldown_seconds: float = 900.0,
        max_groups: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start with no groups."""
        self.threshold = threshold
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.max_groups = max_groups
        self._clock = clock
        # group -> (recent timestamps, time of the last spike reported)
        self._groups: OrderedDict[str, tuple[deque[float], list[float]]] = OrderedDict()
        self.spikes_reported = 0

    def record(self, group: str) -> int | None:
        """Count one occurrence of ``group``; return the count if it is a new spike."""
        now = self._clock()
        entry = self._groups.get(group)
        if entry is None:
            entry = (deque(maxlen=self.threshold), [float("-inf")])
            self._groups[group] = entry
            if len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(group)
        stamps, last_spike = entry
        stamps.append(now)
        if len(stamps) < self.threshold or now - stamps[0] > self.window_seconds:
            return None
        if now - last_spike[0] < self.cooldown_seconds:
            return None
        last_spike[0] = now
        self.spikes_reported += 1
        return len(stamps)

    def __len__(self) -> int:
        """Groups tracked now."""
        return len(self._groups)
