"""Sentry Crons monitors of periodic jobs: slugs and ``monitor_config`` from a schedule.

Nothing here knows discord: a schedule is an interval in seconds or a list of times of
day. Sentry's smallest schedule unit is a minute, so a job that runs more often than
once a minute gets no monitor (:func:`monitor_config` returns ``None``).

Margins, in minutes (Sentry's unit for both):

- ``checkin_margin``: how late an ``in_progress`` check-in may arrive before Sentry
  calls the run missed: a tenth of the interval, at least 1 minute, at most 30; for a
  ``crontab`` schedule 5 minutes.
- ``max_runtime``: how long a run may stay ``in_progress`` before Sentry calls it timed
  out: the interval itself (a run longer than its interval overlaps the next one), at
  least 1 minute, at most one day (1440); for a ``crontab`` schedule 60 minutes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CRONTAB_MARGIN_MINUTES",
    "CRONTAB_MAX_RUNTIME_MINUTES",
    "MAX_SLUG_LENGTH",
    "interval_monitor_config",
    "monitor_config",
    "monitor_slug",
    "time_monitor_config",
]

#: Sentry's longest monitor slug.
MAX_SLUG_LENGTH = 50
CRONTAB_MARGIN_MINUTES = 5
CRONTAB_MAX_RUNTIME_MINUTES = 60
_MAX_MARGIN_MINUTES = 30
_MAX_RUNTIME_MINUTES = 1440
_SLUG_OUTSIDE = re.compile(r"[^a-z0-9_-]")
_MINUTE = 60
_HOUR = 3600
_DAY = 86400


def monitor_slug(*parts: str) -> str:
    """``part-part-...`` lowercased, characters outside ``[a-z0-9_-]`` as ``-``, 50 at most."""
    joined = "-".join(p for p in parts if p)
    return _SLUG_OUTSIDE.sub("-", joined.lower())[:MAX_SLUG_LENGTH]


def interval_monitor_config(seconds: float) -> dict[str, Any] | None:
    """The ``monitor_config`` of a job every ``seconds``; ``None`` under a minute.

    The schedule is in the largest unit that divides the interval (days, hours), else in
    whole minutes, rounded up (a 90 s job is a 2-minute monitor: the margin absorbs it).
    """
    if not math.isfinite(seconds) or seconds < _MINUTE:
        return None
    if seconds % _DAY == 0:
        value, unit = int(seconds // _DAY), "day"
    elif seconds % _HOUR == 0:
        value, unit = int(seconds // _HOUR), "hour"
    else:
        value, unit = math.ceil(seconds / _MINUTE), "minute"
    minutes = math.ceil(seconds / _MINUTE)
    return {
        "schedule": {"type": "interval", "value": value, "unit": unit},
        "checkin_margin": min(_MAX_MARGIN_MINUTES, max(1, math.ceil(minutes / 10))),
        "max_runtime": min(_MAX_RUNTIME_MINUTES, max(1, minutes)),
    }


def _in_utc(moment: dt.time) -> tuple[int, int]:
    if moment.tzinfo is None:
        return moment.hour, moment.minute
    # A fixed date: offsets of zones with summer time are those of that date.
    today = dt.datetime.now(dt.UTC).date()
    aware = dt.datetime.combine(today, moment).astimezone(dt.UTC)
    return aware.hour, aware.minute


def time_monitor_config(times: Sequence[dt.time]) -> dict[str, Any] | None:
    """The ``crontab`` ``monitor_config`` of a job at fixed times of day (in UTC).

    A crontab line is minutes x hours, so times that do not form such a product
    (09:15 and 17:45) get ``None``: no monitor rather than a wrong one.
    """
    if not times:
        return None
    pairs = {_in_utc(t) for t in times}
    hours = sorted({h for h, _ in pairs})
    minutes = sorted({m for _, m in pairs})
    if len(pairs) != len(hours) * len(minutes):
        return None
    return {
        "schedule": {
            "type": "crontab",
            "value": f"{','.join(map(str, minutes))} {','.join(map(str, hours))} * * *",
        },
        "timezone": "UTC",
        "checkin_margin": CRONTAB_MARGIN_MINUTES,
        "max_runtime": CRONTAB_MAX_RUNTIME_MINUTES,
    }


def monitor_config(
    interval_seconds: float | None, times: Sequence[dt.time] | None
) -> dict[str, Any] | None:
    """The ``monitor_config`` of a job by interval or by times of day, or ``None``."""
    if times:
        return time_monitor_config(times)
    if interval_seconds is None:
        return None
    return interval_monitor_config(interval_seconds)
