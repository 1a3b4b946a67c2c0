"""The ``system`` context: versions, platform, memory and uptime of the bot process."""

from __future__ import annotations

import logging
import platform
import time

import psutil

from tux_sentry_cog._version import __version__

__all__ = ["SystemInfo"]

_log = logging.getLogger(__name__)

#: Memory is read at most this often; an error storm must not turn into a psutil storm.
MEMORY_CACHE_SECONDS = 1.0


class SystemInfo:
    """Builds the ``system`` context; the static parts are read once.

    Args:
        bot_version: The bot's own version (``release`` or the bot's ``version``).
        framework_version: discord.py's version, given by the adapter.
    """

    def __init__(
        self,
        bot_version: str | None = None,
        framework_version: str | None = None,
    ) -> None:
        """Read the static facts once."""
        self._static = {
            "bot_version": bot_version or "unknown",
            "discord_py_version": framework_version or "unknown",
            "python_version": platform.python_version(),
            "platform": platform.platform(terse=True),
            "cog_version": __version__,
        }
        self._started = time.monotonic()
        self._memory_mb: float | None = None
        self._memory_read_at = float("-inf")
        try:
            self._process: psutil.Process | None = psutil.Process()
        except Exception:
            self._process = None

    def memory_mb(self) -> float | None:
        """Resident memory in MiB, cached for a second; ``None`` when psutil cannot tell."""
        now = time.monotonic()
        if now - self._memory_read_at < MEMORY_CACHE_SECONDS:
            return self._memory_mb
        self._memory_read_at = now
        if self._process is None:
            return None
        try:
            self._memory_mb = round(self._process.memory_info().rss / 1_048_576, 1)
        except Exception:  # AccessDenied, NoSuchProcess, platform without support
            _log.debug("memory_info unavailable", exc_info=True)
            self._memory_mb = None
        return self._memory_mb

    def uptime_s(self) -> float:
        """Seconds since the cog loaded."""
        return round(time.monotonic() - self._started, 3)

    def snapshot(self) -> dict[str, object]:
        """The ``system`` context as docs/events.md names its fields."""
        return {**self._static, "memory_mb": self.memory_mb(), "uptime_s": self.uptime_s()}
