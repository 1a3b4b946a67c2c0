"""Iterations of ``discord.ext.tasks`` loops: runs, failures, metrics and check-ins.

Each iteration of a loop of a loaded cog is a run, like a command: an isolation scope of
its own, a correlation id, a transaction (op ``discord.task``) whose children are the
spans the loop's code opens (``track_database_operation``), the ``tasks.duration`` metric
(one item per iteration: its count is the iterations) and, with ``monitor_loops``,
Sentry Crons check-ins. A loop outside any cog only gets its failures reported.

Transactions are sampled like commands, except that a loop running more often than
once a minute sends at most one sampled iteration a minute: a 1 s loop would otherwise
cost 86,400 transactions a day.

A cancelled iteration (``loop.cancel()``, unload, shutdown) is no failure: its
check-in is closed ``ok`` so Sentry does not time it out later.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sentry_sdk
from sentry_sdk.crons import capture_checkin

from tux_sentry_cog.adapter.loop_patches import OWN_LOOP_MARK, loop_identity, will_retry
from tux_sentry_cog.core.classification import TRANSACTION_STATUS
from tux_sentry_cog.core.monitors import monitor_config, monitor_slug
from tux_sentry_cog.core.optout import RunDescription, drop_transaction
from tux_sentry_cog.core.runs import CommandRun, current_run
from tux_sentry_cog.core.status import TaskSummary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tux_sentry_cog.adapter.context import SentryContextCollector
    from tux_sentry_cog.adapter.transactions import EnhancedTransactionManager
    from tux_sentry_cog.core.client import SentryConnection
    from tux_sentry_cog.core.reporter import ErrorReporter

__all__ = [
    "FAILURE_WINDOW_SECONDS",
    "MAX_LOOPS_TRACKED",
    "SAMPLED_EVERY_SECONDS",
    "LoopRuns",
    "LoopStats",
]

_log = logging.getLogger(__name__)

#: A loop faster than this sends at most one sampled transaction per this many seconds.
SAMPLED_EVERY_SECONDS = 60.0
#: Most loops kept in the status table (the oldest seen leaves first).
MAX_LOOPS_TRACKED = 100
#: The status shows failures within this window.
FAILURE_WINDOW_SECONDS = 3600.0
#: Failure times kept per loop (a loop failing faster than this per hour shows the cap).
_MAX_FAILURE_TIMES = 1000


@dataclass(slots=True)
class LoopStats:
    """What ``/sentry status`` shows of one loop.

    Attributes:
        name: ``<Cog>.<method>`` or the coroutine's qualified name.
        last_run: ``time.time()`` of the last iteration's end, or of its failure.
        last_status: ``ok``, a transaction status such as ``internal_error``, or
            ``cancelled``.
        failure_times: ``time.monotonic()`` of recent failures (bounded).
    """

    name: str
    last_run: float | None = None
    last_status: str | None = None
    failure_times: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_FAILURE_TIMES)
    )

    def failures_within(self, seconds: float = FAILURE_WINDOW_SECONDS) -> int:
        """Failures in the last ``seconds``."""
        since = time.monotonic() - seconds
        return sum(1 for t in self.failure_times if t >= since)


class _Schedule(NamedTuple):
    interval_seconds: float | None
    times: tuple[Any, ...]


def _schedule(loop: Any) -> _Schedule:
    times = getattr(loop, "time", None)
    if times:
        return _Schedule(None, tuple(times))
    total = 0.0
    for attribute, factor in (("seconds", 1), ("minutes", 60), ("hours", 3600)):
        value = getattr(loop, attribute, None)
        if isinstance(value, int | float):
            total += float(value) * factor
    return _Schedule(total, ())


def _task_context(loop: Any, cog: str | None, error: BaseException | None) -> dict[str, Any]:
    schedule = _schedule(loop) if loop is not None else _Schedule(None, ())
    context: dict[str, Any] = {"cog": cog}
    if schedule.times:
        context["times"] = [t.isoformat() for t in schedule.times]
    elif loop is not None:
        context["interval_seconds"] = schedule.interval_seconds
    if loop is not None:
        context["iteration"] = getattr(loop, "current_loop", None)
        context["count"] = getattr(loop, "count", None)
    if error is not None:
        context["will_retry"] = will_retry(loop, error) if loop is not None else None
    return context


class LoopRuns:
    """The loops of one bot while the cog is loaded.

    Args:
        connection: The Sentry connection.
        reporter: Reports failures.
        collector: Builds the failure reports.
        transactions: Opens and finishes transactions.
        metrics: Receives ``tasks.duration`` (name without the prefix), an object with
            ``distribution``.
        monitor: Send Crons check-ins.
        prefix: The metric prefix, the first part of monitor slugs.
    """

    def __init__(
        self,
        *,
        connection: SentryConnection,
        reporter: ErrorReporter,
        collector: SentryContextCollector,
        transactions: EnhancedTransactionManager,
        metrics: Any,
        monitor: bool,
        prefix: str,
    ) -> None:
        """Nothing runs until a loop iterates."""
        self._connection = connection
        self._reporter = reporter
        self._collector = collector
        self._transactions = transactions
        self._metrics = metrics
        self._monitor = monitor
        self._prefix = prefix
        self.stats: collections.OrderedDict[str, LoopStats] = collections.OrderedDict()
        self._last_sampled: dict[str, float] = {}

    # status ------------------------------------------------------------------------------

    def _stats(self, name: str) -> LoopStats:
        found = self.stats.get(name)
        if found is None:
            found = self.stats[name] = LoopStats(name)
            while len(self.stats) > MAX_LOOPS_TRACKED:
                gone, _ = self.stats.popitem(last=False)
                self._last_sampled.pop(gone, None)
        return found

    def summaries(self) -> tuple[TaskSummary, ...]:
        """The loops seen, most recently run first, for ``/sentry status``."""
        now = time.time()
        ordered = sorted(self.stats.values(), key=lambda s: s.last_run or 0.0, reverse=True)
        return tuple(
            TaskSummary(
                name=s.name,
                seconds_ago=None if s.last_run is None else max(0.0, now - s.last_run),
                last_status=s.last_status,
                failures_last_hour=s.failures_within(),
            )
            for s in ordered
        )

    def _note(self, name: str, status: str, *, failed: bool) -> None:
        stats = self._stats(name)
        stats.last_run = time.time()
        stats.last_status = status
        if failed:
            stats.failure_times.append(time.monotonic())

    # failures ------------------------------------------------------------------------------

    def report(
        self,
        loop: Any,
        error: BaseException,
        retried: bool,
        name: str | None = None,
        run: CommandRun | None = None,
    ) -> str:
        """Report a failure of ``loop`` (``None``: known by ``name`` only); its status."""
        cog: str | None = None
        if loop is not None:
            name, cog, _ = loop_identity(loop)
        name = name or "unknown"
        report = self._collector.build_background_report(error, "task", name, cog=cog, run=run)
        context = _task_context(loop, cog, error)
        if loop is None:
            context["will_retry"] = retried
        report.contexts["task"] = context
        if run is None:
            # Outside a run: a scope of its own, so nothing of the task leaks into others.
            if self._connection.active:
                with sentry_sdk.isolation_scope():
                    classification = self._reporter.report(report)
            else:
                classification = self._reporter.report(report)
            status = "internal_error"
            if classification is not None:
                status = TRANSACTION_STATUS[classification.category]
            if loop is not None and not getattr(loop, OWN_LOOP_MARK, False):
                self._note(name, status, failed=True)
            return status
        classification = self._reporter.report(report)
        if classification is None:
            return "internal_error"
        return TRANSACTION_STATUS[classification.category]

    # iterations ----------------------------------------------------------------------------

    def _open_transaction(self, run: CommandRun, schedule: _Schedule) -> Any:
        fast = schedule.interval_seconds is not None and (
            schedule.interval_seconds < SAMPLED_EVERY_SECONDS
        )
        now = time.monotonic()
        if fast:
            last = self._last_sampled.get(run.name)
            if last is not None and now - last < SAMPLED_EVERY_SECONDS:
                # Still a trace of its own: errors must not share the process-wide one.
                sentry_sdk.get_isolation_scope().set_new_propagation_context()
                return None
        transaction = self._transactions.open_run_transaction(run, known=True)
        if fast and transaction is not None and getattr(transaction, "sampled", False):
            self._last_sampled[run.name] = now
        return transaction

    def _checkin(
        self,
        slug: str | None,
        config: dict[str, Any] | None,
        status: str,
        check_in_id: str | None = None,
        duration: float | None = None,
    ) -> str | None:
        if slug is None or config is None:
            return None
        try:
            return capture_checkin(
                monitor_slug=slug,
                check_in_id=check_in_id,
                status=status,
                duration=duration,
                monitor_config=config,  # type: ignore[arg-type]
            )
        except Exception:
            _log.exception("tux_sentry_cog could not send a check-in")
            return None

    def monitor_of(self, loop: Any) -> tuple[str, dict[str, Any]] | None:
        """The monitor slug and ``monitor_config`` of ``loop``, or ``None``."""
        _, cog, method = loop_identity(loop)
        if cog is None:
            return None
        schedule = _schedule(loop)
        config = monitor_config(schedule.interval_seconds, schedule.times)
        if config is None:
            return None
        return monitor_slug(self._prefix, cog, method), config

    async def run(self, loop: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one iteration of ``loop``: a run for a loop of a cog."""
        if getattr(loop, OWN_LOOP_MARK, False):
            return await call()
        try:
            name, cog, _ = loop_identity(loop)
        except Exception:
            _log.exception("tux_sentry_cog could not name a task loop")
            return await call()
        if cog is None:
            try:
                return await call()
            except Exception as exc:
                self._safe_report(loop, exc, None)
                raise
        run = CommandRun(name=name, command_type="task", cog=cog, guild_id="none")
        run.opted_out = self._reporter.opt_out.refuses(
            self._connection.active, lambda: RunDescription(source_type="task", command=name)
        )
        token = current_run.set(run)
        try:
            if self._connection.active and run.opted_out:
                with sentry_sdk.isolation_scope():  # nothing of it outlives it
                    return await self._run_plain(loop, run, call)
            if self._connection.active:
                return await self._run_traced(loop, run, call)
            return await self._run_plain(loop, run, call)
        finally:
            current_run.reset(token)

    def _safe_report(self, loop: Any, error: BaseException, run: CommandRun | None) -> str:
        try:
            return self.report(loop, error, will_retry(loop, error), run=run)
        except Exception:
            _log.exception("tux_sentry_cog could not report a task loop error")
            return "internal_error"

    async def _outcome(
        self,
        loop: Any,
        run: CommandRun,
        call: Callable[[], Awaitable[Any]],
        done: Callable[[str], None],
    ) -> Any:
        """Await the iteration; report its failure; hand its status to ``done``."""
        status = "ok"
        try:
            return await call()
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:
            status = self._safe_report(loop, exc, run)
            raise
        finally:
            done(status)

    async def _run_plain(
        self, loop: Any, run: CommandRun, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        return await self._outcome(loop, run, call, lambda status: self._finish(run, status))

    async def _run_traced(
        self, loop: Any, run: CommandRun, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        run.outer_scope = sentry_sdk.get_isolation_scope()
        with sentry_sdk.isolation_scope() as scope:
            slug: str | None = None
            config: dict[str, Any] | None = None
            check_in_id: str | None = None
            try:
                scope.set_tags(
                    {
                        "command.name": run.name,
                        "command.type": "task",
                        "cog": run.cog or "none",
                        "guild.id": "none",
                        "correlation_id": run.correlation_id,
                    }
                )
                run.transaction = self._open_transaction(run, _schedule(loop))
                if self._monitor:
                    monitor = self.monitor_of(loop)
                    if monitor is not None:
                        slug, config = monitor
                        check_in_id = self._checkin(slug, config, "in_progress")
            except Exception:
                _log.exception("tux_sentry_cog could not start a task loop run")

            def done(status: str) -> None:
                self._checkin(
                    slug,
                    config,
                    "ok" if status in ("ok", "cancelled") else "error",
                    check_in_id,
                    run.elapsed_ms() / 1000.0,
                )
                try:
                    if run.transaction is not None:
                        if run.opted_out:  # refused by should_report when it saw the error
                            drop_transaction(run.transaction)
                        self._transactions.finish_command_transaction(run.transaction, status)
                except Exception:
                    _log.exception("tux_sentry_cog could not finish a task transaction")
                self._finish(run, status)

            return await self._outcome(loop, run, call, done)

    def _finish(self, run: CommandRun, status: str) -> None:
        try:
            run.ended = True
            self._note(run.name, status, failed=status not in ("ok", "cancelled"))
            attributes = {"task_name": run.name, "status": status}
            self._metrics.distribution(
                "tasks.duration", run.elapsed_ms(), "millisecond", attributes
            )
        except Exception:
            _log.exception("tux_sentry_cog could not record a task loop run")
