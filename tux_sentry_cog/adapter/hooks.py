"""One bot's runs: what the patched entry points call while a cog serves that bot.

discord.py is patched once per process (:mod:`tux_sentry_cog.adapter.patches`); each
wrapper finds the :class:`BotInstrumentation` of the cog loaded into its bot and calls
:meth:`~BotInstrumentation.run`, :meth:`~BotInstrumentation.record`,
:meth:`~BotInstrumentation.report_listener_error` or
:meth:`~BotInstrumentation.report_background` (and, for ``tasks`` loops,
:meth:`~BotInstrumentation.run_iteration` and
:meth:`~BotInstrumentation.report_task_error`). Those are a stable interface: the
wrappers of an earlier import of the package call them on the cog of a later one.

Errors are only *recorded* on the run while it runs; the run reports them when it ends,
still inside its isolation scope and transaction, through the instrumentation that
started it (which an unloading cog waits for, see :meth:`BotInstrumentation.drain`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import logging
from typing import TYPE_CHECKING, Any

import sentry_sdk
from discord.ext import commands
from loguru import logger as loguru_logger
from sentry_sdk.scope import use_isolation_scope

from tux_sentry_cog.adapter.context import (
    ContextOrInteraction,
    SentryContextCollector,
    SourceInfo,
    describe_source,
    event_values,
    run_secrets,
    run_values,
    shard_of,
)
from tux_sentry_cog.adapter.discord_limits import deadline_context
from tux_sentry_cog.adapter.errors import unwrap_error
from tux_sentry_cog.adapter.sources import describe_event_args, event_source_name, listener_cog
from tux_sentry_cog.adapter.transactions import EnhancedTransactionManager
from tux_sentry_cog.core.classification import TRANSACTION_STATUS
from tux_sentry_cog.core.client import SentryConnection, mark_reported, was_reported
from tux_sentry_cog.core.optout import RunDescription, drop_transaction, parse_snowflake
from tux_sentry_cog.core.payload import JsonReady, OwnCrumbData, take_whole
from tux_sentry_cog.core.runs import CommandRun, current_run
from tux_sentry_cog.core.streaming import is_streamed
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import discord

    from tux_sentry_cog.adapter.loop_runs import LoopRuns
    from tux_sentry_cog.core.reporter import ErrorReport, ErrorReporter

__all__ = [
    "CONTROL_FLOW_EXCEPTIONS",
    "MAX_TRACKED_SOURCES",
    "BotInstrumentation",
    "add_finished_breadcrumb",
]

_log = logging.getLogger(__name__)

#: Exceptions that end a run without being errors of the bot.
CONTROL_FLOW_EXCEPTIONS: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

#: Most runs kept findable by source id at once (a bound on a burst of slow commands).
MAX_TRACKED_SOURCES = 10_000


def _source_id(source: ContextOrInteraction) -> int | None:
    if isinstance(source, commands.Context):
        if source.interaction is not None:
            return source.interaction.id
        return source.message.id if source.message is not None else None
    return source.id


def _background_scope(run: CommandRun | None) -> Any:
    """An isolation scope for a background error: forked from outside the run, if any.

    A listener a command dispatched (``on_command_error``) runs with a copy of the
    command's context, whose isolation scope carries the command's tags; the SDK lets
    scope tags override the event's, so the listener's event would say ``prefix``.
    """
    outer = run.outer_scope if run is not None else None
    if outer is not None:
        return use_isolation_scope(outer.fork())
    return sentry_sdk.isolation_scope()


def _resolved(
    run: CommandRun, info: SourceInfo, source: ContextOrInteraction, *, scoped: bool = True
) -> SourceInfo:
    """The run's info with the subcommand discord.py resolved while invoking.

    ``bot.invoke`` sees the group (``sentry``); the leaf (``sentry test``) is known only
    once the group has parsed its arguments, so names are settled at the end of the run.
    ``scoped`` says the run has an isolation scope of its own to retag; in local mode it
    has none, and the process-wide scope must not take the tag.
    """
    if not isinstance(source, commands.Context) or source.command is None:
        return info
    name = source.command.qualified_name
    if name == info.name:
        return info
    run.name = name
    transaction = run.transaction
    try:
        if transaction is not None:
            transaction.name = name
            if is_streamed(transaction):  # its tags are attributes
                transaction.set_attribute("command.name", name)
        if scoped:
            sentry_sdk.get_isolation_scope().set_tag("command.name", name)
    except Exception:
        _log.debug("could not rename the run", exc_info=True)
    return info._replace(name=name, cog=source.command.cog_name)


def _loguru_context() -> contextvars.ContextVar[dict[str, Any]] | None:
    """The context variable ``logger.contextualize()`` writes to, if it can be found.

    ``contextualize()`` is a generator-based context manager that takes loguru's global
    lock on the way in and out; records read the variable without the lock. Setting it
    directly does the same for a fifth of the cost (about 17,000 of the 20,000
    instructions it added to every command, counted with callgrind). The variable is
    loguru's private name, so it is used only after a probe shows ``contextualize()``
    writing into it; otherwise ``None``, and the public API is used.
    """
    try:
        found = getattr(importlib.import_module("loguru._logger"), "context", None)
        if not isinstance(found, contextvars.ContextVar):
            return None
        with loguru_logger.contextualize(tux_sentry_cog_probe=True):
            seen = found.get()
        if isinstance(seen, dict) and seen.get("tux_sentry_cog_probe") is True:
            return found
    except Exception:
        _log.debug("loguru's context variable not found; using contextualize()", exc_info=True)
    return None


_LOGURU_CONTEXT = _loguru_context()


def _bind_log_context(correlation_id: str) -> Any:
    """Make loguru records carry ``correlation_id``; return what undoes it."""
    if _LOGURU_CONTEXT is not None:
        return _LOGURU_CONTEXT.set({**_LOGURU_CONTEXT.get(), "correlation_id": correlation_id})
    manager = loguru_logger.contextualize(correlation_id=correlation_id)
    manager.__enter__()
    return manager


def _unbind_log_context(bound: Any) -> None:
    if isinstance(bound, contextvars.Token):
        assert _LOGURU_CONTEXT is not None  # noqa: S101 - a token comes from it only
        _LOGURU_CONTEXT.reset(bound)
    else:
        bound.__exit__(None, None, None)


def add_finished_breadcrumb(run: CommandRun) -> None:
    """Leave ``Finished command: <name>`` of ``run`` in the current isolation scope.

    Called only when an event of the run is about to be captured (its errors, a
    performance anomaly): a run that ends quietly takes its isolation scope with it, so
    the breadcrumb would never be seen, and building it is a few microseconds per command.
    """
    sentry_sdk.add_breadcrumb(
        category="command",
        message=f"Finished command: {run.name}",
        level="error" if run.errors else "info",
        data=OwnCrumbData(
            failed=bool(run.errors),
            duration_ms=round(run.elapsed_ms(), 3),
            correlation_id=run.correlation_id,
        ),
    )


def _has_local_handler(source: ContextOrInteraction) -> bool:
    """True when the bot's own command- or cog-level handler saw the error."""
    if isinstance(source, commands.Context):
        command = source.command
        cog = source.cog
        return bool(
            (command is not None and command.has_error_handler())
            or (cog is not None and cog.has_error_handler())
        )
    return getattr(source.command, "on_error", None) is not None


class BotInstrumentation:
    """The runs of one bot, while the cog that owns this is loaded.

    Args:
        bot: The bot to instrument.
        connection: The Sentry connection (decides whether scopes and transactions exist).
        reporter: Reports errors when a run ends.
        collector: Reads contexts off discord objects.
        send_pii: With PII on, message content and parameter values are not scrubbed.
        on_run_end: Called with every finished run, its source info and its status.
    """

    def __init__(
        self,
        bot: commands.Bot,
        *,
        connection: SentryConnection,
        reporter: ErrorReporter,
        collector: SentryContextCollector,
        send_pii: bool = False,
        on_run_end: Callable[[CommandRun, SourceInfo, str], None] | None = None,
    ) -> None:
        """Prepare; nothing is served until :meth:`install`."""
        self.bot = bot
        self._connection = connection
        self._reporter = reporter
        self._collector = collector
        self._send_pii = send_pii
        self._on_run_end = on_run_end
        self.transactions = EnhancedTransactionManager()
        #: The loops' runs, set by the cog (``None``: loop iterations pass through).
        self.loops: LoopRuns | None = None
        self._in_flight: set[int] = set()
        self._drained: asyncio.Event | None = None
        self._drain_target = 0
        self.completed_runs = 0
        self.failed_runs = 0
        self.user_failed_runs = 0

    @property
    def active_runs(self) -> int:
        """Runs in flight now."""
        return len(self._in_flight)

    # serving -----------------------------------------------------------------------------

    def install(self) -> None:
        """Serve the entry points that have no bot at hand (task loops) too."""
        SHARED.serving.append(self)

    def uninstall(self) -> None:
        """Stop serving the bot-less entry points; nothing of discord.py is touched."""
        if self in SHARED.serving:
            SHARED.serving.remove(self)

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - a bounded wait
        """Wait up to ``timeout`` seconds for the runs in flight; return how many remain.

        The caller's own run (an owner's ``!unload`` command) is not waited for.
        """
        own = current_run.get()
        mine = 1 if own is not None and id(own) in self._in_flight else 0
        if len(self._in_flight) > mine:
            self._drain_target = mine
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                self._drained = None
        return len(self._in_flight) - mine

    # what the patched entry points call -------------------------------------------------

    async def run(
        self,
        source: ContextOrInteraction,
        call: Callable[[], Awaitable[Any]],
        name: str | None = None,
    ) -> Any:
        """Run ``call`` (a command, interaction or callback) as a run of ``source``."""
        return await self._run(source, call, name)

    async def run_iteration(self, loop: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one iteration of a ``tasks`` loop (see :mod:`tux_sentry_cog.adapter.loop_runs`)."""
        loops = self.loops
        if loops is None:
            return await call()
        return await loops.run(loop, call)

    def report_task_error(
        self,
        loop: Any,
        error: BaseException,
        retried: bool,
        name: str | None = None,
    ) -> None:
        """Report a loop failure no iteration saw (``loop`` ``None``: known by ``name``)."""
        try:
            loops = self.loops
            if loops is None or isinstance(error, CONTROL_FLOW_EXCEPTIONS):
                return
            if was_reported(error):
                return
            loops.report(loop, error, retried, name)
        except Exception:
            _log.exception("tux_sentry_cog could not report a task loop error")

    def report_listener_error(
        self, error: BaseException, event_name: str, listener: Any, args: tuple[Any, ...]
    ) -> None:
        """Report an error a listener raised, with what its arguments were about."""
        try:
            cog = listener_cog(listener)
        except Exception:
            cog = None
        self.report_background(
            error,
            "event",
            event_source_name(event_name),
            cog=cog,
            args=args,
            values=lambda: event_values(args),
        )

    def report_background(
        self,
        error: BaseException,
        command_type: str,
        name: str,
        *,
        guild: discord.Guild | None = None,
        cog: str | None = None,
        args: tuple[Any, ...] = (),
        values: Callable[[], tuple[str, ...]] | None = None,
    ) -> None:
        """Report an error with no command behind it (a listener, a task loop), now.

        ``args`` are a listener's arguments: the guild, user and channel they concern go
        on the event, and the shard on a sharded bot. A listener started by a command
        shares its correlation id; otherwise the error gets one of its own. ``values``
        reads the user text the listener was given (message contents): the scrubber
        removes it from the event's free text, as it does a command's arguments.
        """
        try:
            if isinstance(error, CONTROL_FLOW_EXCEPTIONS) or was_reported(error):
                return
            parent = current_run.get()
            subjects = describe_event_args(args)
            guild = guild or subjects.guild
            report = self._collector.build_background_report(
                error,
                command_type,
                name,
                cog=cog,
                guild=guild,
                run=parent,
                user=subjects.user,
                channel=subjects.channel,
                shard_id=shard_of(self.bot, guild) if command_type == "event" else None,
            )
            # The scrubber reads the current run's values and secrets: while this report
            # is built and sent, they are the listener's and its parent command's.
            carrier = CommandRun(
                name=name,
                command_type=command_type,
                values_of=None if self._send_pii else values,
                sensitive=() if parent is None or self._send_pii else parent.sensitive_values(),
                secrets=() if parent is None else parent.secrets,
                ended=True,
            )
            self._report_carried(report, carrier)
        except Exception:
            _log.exception("tux_sentry_cog could not report a %s error", command_type)

    def record(self, error: Any, source: ContextOrInteraction) -> None:
        """Note an error on the current run, or report it now if there is none."""
        try:
            if not isinstance(error, BaseException):
                return
            original = unwrap_error(error)
            run = current_run.get()
            if run is not None:
                run.record_error(original)
                mark_reported(original)
            elif not was_reported(original):
                self._report_now(original, source)
        except Exception:
            _log.exception("tux_sentry_cog could not record an error")

    def _report_now(self, error: BaseException, source: ContextOrInteraction) -> None:
        report = self._collector.build_report(error, source, None, _has_local_handler(source))
        # No run: one carries the source's values and secrets for the scrubber meanwhile.
        carrier = CommandRun(
            name=describe_source(source).name,
            command_type="event",
            values_of=None if self._send_pii else functools.partial(run_values, source),
            secrets=run_secrets(source),
            ended=True,
        )
        self._report_carried(report, carrier)

    def _report_carried(self, report: ErrorReport, carrier: CommandRun) -> None:
        """Report ``report`` now, in a scope of its own, with ``carrier`` as current run.

        The carrier is what the scrubber reads the values and secrets from; the report
        keeps its own run (a parent command's, or none) for correlation, and its scope
        is forked from outside that run (:func:`_background_scope`).
        """
        token = current_run.set(carrier)
        try:
            if self._connection.active:
                with _background_scope(report.run):
                    self._reporter.report(report)
            else:
                self._reporter.report(report)
        finally:
            current_run.reset(token)

    def _start(
        self, source: ContextOrInteraction, name: str | None
    ) -> tuple[CommandRun, SourceInfo] | None:
        try:
            info = describe_source(source)
            if name is not None:
                info = info._replace(name=name)
            run = CommandRun(
                name=info.name,
                command_type=info.command_type,
                cog=info.cog,
                guild_id=info.guild_id,
                shard_id=info.shard_id,
                user_id=info.user_id,
                values_of=None if self._send_pii else functools.partial(run_values, source),
                secrets=run_secrets(source),
                source_id=_source_id(source),
            )
        except Exception:
            _log.exception("tux_sentry_cog could not start a run")
            return None
        return run, info

    async def _run(
        self,
        source: ContextOrInteraction,
        call: Callable[[], Awaitable[Any]],
        name: str | None = None,
    ) -> Any:
        started = self._start(source, name)
        if started is None:
            return await call()
        run, info = started
        # Asked before anything about the run exists in the SDK (scope, transaction).
        run.opted_out = self._reporter.opt_out.refuses(
            self._connection.active,
            lambda: RunDescription(
                source_type=run.command_type,
                command=run.name,
                guild_id=parse_snowflake(run.guild_id),
                user_id=run.user_id,
            ),
        )
        token = current_run.set(run)
        self._in_flight.add(id(run))
        source_id = run.source_id
        runs_by_source = SHARED.runs_by_source
        tracked = source_id is not None and len(runs_by_source) < MAX_TRACKED_SOURCES
        if source_id is not None and tracked:
            runs_by_source[source_id] = run
        try:
            # loguru records written during the command carry its correlation id.
            bound = _bind_log_context(run.correlation_id)
            try:
                if self._connection.active and run.opted_out:
                    # A scope of its own that ends with it: whatever the bot's code or
                    # the SDK's integrations leave there (log breadcrumbs) goes too.
                    with sentry_sdk.isolation_scope():
                        return await self._run_local(run, info, source, call)
                if self._connection.active:
                    return await self._run_traced(run, info, source, call)
                return await self._run_local(run, info, source, call)
            finally:
                _unbind_log_context(bound)
        finally:
            self._in_flight.discard(id(run))
            drained = self._drained
            if drained is not None and len(self._in_flight) <= self._drain_target:
                drained.set()
            if source_id is not None and tracked:
                runs_by_source.pop(source_id, None)
            current_run.reset(token)

    async def _run_local(
        self,
        run: CommandRun,
        info: SourceInfo,
        source: ContextOrInteraction,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        try:
            return await call()
        except CONTROL_FLOW_EXCEPTIONS:
            raise
        except BaseException as exc:
            run.record_error(unwrap_error(exc))
            raise
        finally:
            self._settle(run, _resolved(run, info, source, scoped=False), source)

    async def _run_traced(
        self,
        run: CommandRun,
        info: SourceInfo,
        source: ContextOrInteraction,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        # A listener the run dispatches reports in a scope forked from this one, not from
        # the run's own (see _background_scope).
        run.outer_scope = sentry_sdk.get_isolation_scope()
        with sentry_sdk.isolation_scope() as scope:
            try:
                tags = info.tags()
                tags["correlation_id"] = run.correlation_id
                scope.set_tags(tags)
                # Events of the run skip the serializer's walk of their plain parts.
                scope.add_event_processor(take_whole)
                if info.user_id is not None:
                    # Whole through the SDK's serializer, like the breadcrumb's data.
                    scope.set_user(JsonReady(id=str(info.user_id)))
                run.transaction = self.transactions.open_run_transaction(run, info.known, tags)
                scope.add_breadcrumb(
                    category="command",
                    message=f"Started command: {info.name}",
                    data=OwnCrumbData(
                        command_type=info.command_type, correlation_id=run.correlation_id
                    ),
                )
            except Exception:
                _log.exception("tux_sentry_cog could not open the command's transaction")
                run.transaction = None
            error: BaseException | None = None
            try:
                return await call()
            except BaseException as exc:
                error = exc
                if not isinstance(exc, CONTROL_FLOW_EXCEPTIONS):
                    run.record_error(unwrap_error(exc))
                raise
            finally:
                info = _resolved(run, info, source)
                if run.errors:
                    # Before the errors are reported, so their events show how the run ended.
                    add_finished_breadcrumb(run)
                status = self._settle(run, info, source)
                self._close_transaction(run, status, error)

    def _settle(self, run: CommandRun, info: SourceInfo, source: ContextOrInteraction) -> str:
        """Report the run's errors; return its transaction status."""
        status = "ok"
        run.ended = True  # its arguments are parsed: the scrubber may keep its values
        try:
            handled = _has_local_handler(source) if run.errors else False
            user_caused_only = True
            for error in run.errors:
                report = self._collector.build_report(error, source, run, handled, info)
                missed = deadline_context(run, error)
                if missed is not None:
                    report.contexts["interaction_deadline"] = missed
                classification = self._reporter.report(report)
                if classification is not None and status == "ok":
                    status = TRANSACTION_STATUS[classification.category]
                if classification is None or not classification.user_caused:
                    user_caused_only = False
            if run.errors:
                # A user's typo is not the bot failing: the status counts it apart.
                if user_caused_only:
                    self.user_failed_runs += 1
                else:
                    self.failed_runs += 1
            self.completed_runs += 1
            if self._on_run_end is not None:
                self._on_run_end(run, info, status)
        except Exception:
            _log.exception("tux_sentry_cog could not settle a command run")
        return status

    def _close_transaction(
        self, run: CommandRun, status: str, error: BaseException | None
    ) -> None:
        try:
            transaction = run.transaction
            if transaction is None:
                return
            if isinstance(error, asyncio.CancelledError):
                status = "cancelled"
            if run.opted_out:  # refused by should_report when it saw the error
                drop_transaction(transaction)
            self.transactions.finish_command_transaction(transaction, status)
        except Exception:
            _log.exception("tux_sentry_cog could not finish a command transaction")
