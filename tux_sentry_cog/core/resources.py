"""Resource samples of the bot process: memory, CPU, threads and open files.

Each figure is read on its own, because psutil fails figure by figure: ``open_files``
raises ``AccessDenied`` in some containers, ``num_threads`` is missing on a few
platforms, a sandbox may deny everything but memory. A failed figure is ``None`` in the
sample, so the gauges and ``/sentry status`` show what could be read and the rest stays
visibly unknown instead of taking the whole sample (or the sampling loop) down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ProcessLike", "ResourceSample", "ResourceSampler"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_MIB = 1_048_576


class ProcessLike(Protocol):
    """The part of :class:`psutil.Process` the sampler reads; tests pass a fake."""

    def memory_info(self) -> Any:
        """Memory figures; ``rss`` is read."""

    def cpu_percent(self, interval: float | None = None) -> float:
        """CPU since the previous call, in percent of one core."""

    def num_threads(self) -> int:
        """Threads of the process."""

    def open_files(self) -> list[Any]:
        """Regular files the process has open."""


@dataclass(slots=True)
class ResourceSample:
    """One resource sample; any figure is ``None`` when it could not be read.

    Attributes:
        memory_mb: Resident memory in MiB.
        cpu_percent: CPU since the previous sample, in percent of the whole machine
            (0..100): psutil's per-process figure, which counts 100 per busy core,
            divided by the number of CPUs, so it compares with a threshold up to 100.
        threads: Threads of the process.
        open_files: Regular files the process has open.
        asyncio_tasks: Tasks of the event loop; filled by the caller.
        event_loop_lag_ms: Event-loop lag in milliseconds; filled by the caller.
    """

    memory_mb: float | None = None
    cpu_percent: float | None = None
    threads: int | None = None
    open_files: int | None = None
    asyncio_tasks: int | None = None
    event_loop_lag_ms: float | None = None


class ResourceSampler:
    """Reads a :class:`ResourceSample` of a process; never raises.

    CPU is measured without blocking (psutil's ``interval=None``): each reading covers
    the time since the previous one, and the constructor takes the first, priming
    reading, so the first sample already covers the time since construction.

    Args:
        process: The process to sample; this process when omitted. Anything with the
            methods of :class:`ProcessLike` will do.
        cpu_count: CPUs of the machine, that the process's CPU figure is divided by;
            psutil's count when omitted (1 if it cannot tell).
    """

    def __init__(self, process: ProcessLike | None = None, cpu_count: int | None = None) -> None:
        """Bind to ``process`` and prime the CPU reading."""
        self._logged: set[str] = set()
        if cpu_count is None:
            try:
                cpu_count = psutil.cpu_count() or 1
            except Exception:
                cpu_count = 1
        self._cpus = max(1, int(cpu_count))
        if process is None:
            try:
                process = psutil.Process()
            except Exception:
                self._log_once("process")
        self._process = process
        # The first cpu_percent(None) call only starts the measurement (it returns 0.0).
        self._read("cpu_percent", lambda p: p.cpu_percent(interval=None))

    @property
    def unavailable(self) -> frozenset[str]:
        """The figures that failed at least once (``memory_mb``, ``cpu_percent``, ...)."""
        return frozenset(self._logged)

    def sample(self) -> ResourceSample:
        """Read every figure once; a figure psutil cannot read is ``None``."""
        return ResourceSample(
            memory_mb=self._read("memory_mb", lambda p: round(p.memory_info().rss / _MIB, 1)),
            cpu_percent=self._read(
                "cpu_percent",
                lambda p: round(min(100.0, float(p.cpu_percent(interval=None)) / self._cpus), 2),
            ),
            threads=self._read("threads", lambda p: int(p.num_threads())),
            open_files=self._read("open_files", lambda p: len(p.open_files())),
        )

    def _read(self, kind: str, read: Callable[[ProcessLike], _T]) -> _T | None:
        if self._process is None:
            return None
        try:
            return read(self._process)
        except Exception:  # AccessDenied, NoSuchProcess, NotImplementedError, AttributeError
            self._log_once(kind)
            return None

    def _log_once(self, kind: str) -> None:
        # A sampler runs every 30 seconds for the life of the bot: one line per figure.
        if kind not in self._logged:
            self._logged.add(kind)
            _log.debug("resource figure %s unavailable", kind, exc_info=True)
