"""The bot's entry points, wrapped so every command runs in its own scope and run.

Wrapped, never replaced blindly (the style of sentry-sdk's integrations): each original
is kept and called, and :meth:`BotInstrumentation.uninstall` puts it back.

- ``bot.invoke``: every prefix and hybrid command runs through it, in its own task.
- ``bot.dispatch``: sees ``command_error`` synchronously, in the failing command's task,
  for prefix and hybrid commands (both forms). No ``on_command_error`` listener is added:
  one would silence discord.py's default error log (``Bot.on_command_error`` only logs
  when no listener exists).
- ``bot.tree._call``: every slash command, context menu and autocomplete, in the task the
  tree creates for it.
- ``bot.tree.on_error``: where app-command errors end. Bots often replace it after load
  (``@tree.error``), so it is re-wrapped on the next interaction when that happens.

Errors are only *recorded* on the run in those hooks; the run reports them when it ends,
still inside its isolation scope and transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sentry_sdk
from discord.ext import commands
from loguru import logger as loguru_logger

import _tux_sentry_cog_state as _state
from tux_sentry_cog.adapter.context import (
    ContextOrInteraction,
    SentryContextCollector,
    SourceInfo,
    describe_source,
    sensitive_strings,
)
from tux_sentry_cog.adapter.errors import unwrap_error
from tux_sentry_cog.adapter.sources import (
    AutocompleteErrorFilter,
    ClassPatches,
    describe_event_args,
    event_source_name,
)
from tux_sentry_cog.adapter.transactions import EnhancedTransactionManager
from tux_sentry_cog.core.classification import TRANSACTION_STATUS
from tux_sentry_cog.core.client import SentryConnection, mark_reported, was_reported
from tux_sentry_cog.core.payload import JsonReady, take_whole
from tux_sentry_cog.core.runs import CommandRun, current_run

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import discord

    from tux_sentry_cog.core.reporter import ErrorReporter

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


@dataclass(slots=True)
class _Patch:
    """One attribute we replaced, and how to put it back."""

    owner: Any
    name: str
    had_own: bool
    original: Any
    wrapper: Any

    def restore(self) -> None:
        current = self.owner.__dict__.get(self.name)
        if current is not self.wrapper:
            # Someone replaced our wrapper after us; theirs stays, ours is gone anyway.
            return
        if self.had_own:
            setattr(self.owner, self.name, self.original)
        else:
            delattr(self.owner, self.name)


def _patch(owner: Any, name: str, wrapper: Any) -> _Patch:
    had_own = name in owner.__dict__
    patch = _Patch(owner, name, had_own, getattr(owner, name), wrapper)
    setattr(owner, name, wrapper)
    return patch


def _source_id(source: ContextOrInteraction) -> int | None:
    if isinstance(source, commands.Context):
        if source.interaction is not None:
            return source.interaction.id
        return source.message.id if source.message is not None else None
    return source.id


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
    # The subcommand's name was taken for an argument word at the start; it is not the
    # user's text, and scrubbing it would blank the command's own name.
    words = set(name.split())
    run.sensitive = tuple(s for s in run.sensitive if s not in words)
    transaction = run.transaction
    try:
        if transaction is not None:
            transaction.name = name
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
        data=JsonReady(
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
    """Installs and removes the cog's hooks on one bot.

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
        """Prepare; nothing is touched until :meth:`install`."""
        self.bot = bot
        self._connection = connection
        self._reporter = reporter
        self._collector = collector
        self._send_pii = send_pii
        self._on_run_end = on_run_end
        self.transactions = EnhancedTransactionManager()
        self._patches: list[_Patch] = []
        self._on_error_patch: _Patch | None = None
        self._client_on_error_patch: _Patch | None = None
        self._autocomplete_filter = AutocompleteErrorFilter(self)
        self.active_runs = 0
        self.completed_runs = 0
        self.failed_runs = 0
        self.user_failed_runs = 0

    # install / uninstall ---------------------------------------------------------------

    def install(self) -> None:
        """Wrap the bot's entry points."""
        bot = self.bot
        self._old_invoke: Callable[[commands.Context[Any]], Awaitable[None]] = bot.invoke
        self._old_dispatch: Callable[..., None] = bot.dispatch
        self._patches.append(_patch(bot, "invoke", self._invoke))
        self._patches.append(_patch(bot, "dispatch", self._dispatch))
        tree = getattr(bot, "tree", None)
        if tree is not None:
            if not callable(getattr(tree, "_call", None)):
                msg = "this discord.py has no CommandTree._call; tux_sentry_cog needs >= 2.4"
                raise RuntimeError(msg)
            self._old_tree_call: Callable[[discord.Interaction[Any]], Awaitable[None]] = (
                tree._call  # noqa: SLF001 - the one entry point every app command passes
            )
            self._patches.append(_patch(tree, "_call", self._tree_call))
            self._wrap_tree_on_error()
        self._wrap_client_on_error()
        AutocompleteErrorFilter.logger().addFilter(self._autocomplete_filter)
        instrumentations = _state.active.setdefault("instrumentations", [])
        if not instrumentations:
            patches = ClassPatches()
            patches.install()
            _state.active["class_patches"] = patches
        instrumentations.append(self)

    def uninstall(self) -> None:
        """Put every original back (only where our wrapper is still in place)."""
        instrumentations = _state.active.get("instrumentations", [])
        if self in instrumentations:
            instrumentations.remove(self)
            if not instrumentations:
                _state.active.pop("class_patches").uninstall()
        AutocompleteErrorFilter.logger().removeFilter(self._autocomplete_filter)
        for patch in (self._on_error_patch, self._client_on_error_patch):
            if patch is not None:
                patch.restore()
        self._on_error_patch = self._client_on_error_patch = None
        while self._patches:
            self._patches.pop().restore()

    def _wrap_client_on_error(self) -> None:
        """Listener errors end in ``bot.on_error`` with the exception in ``sys.exc_info()``."""
        original = self.bot.on_error

        async def on_error(event_method: str, /, *args: Any, **kwargs: Any) -> None:
            error = sys.exc_info()[1]
            if error is not None:
                try:
                    guild = describe_event_args(args)
                except Exception:
                    guild = None
                self.report_background(error, "event", event_source_name(event_method), guild=guild)
            await original(event_method, *args, **kwargs)

        self._client_on_error_patch = _patch(self.bot, "on_error", on_error)
    def _wrap_tree_on_error(self) -> None:
        tree = self.bot.tree
        original = tree.on_error

        async def on_error(interaction: discord.Interaction[Any], error: Any, /) -> None:
            self.record(error, interaction)
            await original(interaction, error)

        self._on_error_patch = _patch(tree, "on_error", on_error)

    # the wrappers ----------------------------------------------------------------------

    async def _invoke(self, ctx: commands.Context[Any], /) -> None:
        if ctx.command is None and not ctx.invoked_with:
            # A plain message, not a command: nothing to watch.
            await self._old_invoke(ctx)
            return
        await self._run(ctx, lambda: self._old_invoke(ctx))

    def _dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        if event_name == "command_error" and len(args) >= 2:  # noqa: PLR2004
            self.record(args[1], args[0])
        patch = self._client_on_error_patch
        if patch is not None and self.bot.__dict__.get("on_error") is not patch.wrapper:
            self._wrap_client_on_error()  # the bot set its own on_error after we loaded
        self._old_dispatch(event_name, *args, **kwargs)

    async def _tree_call(self, interaction: discord.Interaction[Any], /) -> None:
        patch = self._on_error_patch
        if patch is not None and self.bot.tree.__dict__.get("on_error") is not patch.wrapper:
            self._wrap_tree_on_error()  # the bot set its own handler after we loaded
        await self._run(interaction, lambda: self._old_tree_call(interaction))

    # runs ------------------------------------------------------------------------------

    async def run_interaction(
        self, interaction: discord.Interaction[Any], name: str, call: Callable[[], Awaitable[Any]]
    ) -> None:
        """Run a component or modal callback as a run named ``name``."""
        await self._run(interaction, call, name=name)

    def record_on_run(self, error: BaseException) -> None:
        """Note ``error`` on the current run (the caller checked there is one)."""
        run = current_run.get()
        if run is not None:
            original = unwrap_error(error)
            run.record_error(original)
            mark_reported(original)

    def report_background(
        self,
        error: BaseException,
        command_type: str,
        name: str,
        *,
        guild: discord.Guild | None = None,
        cog: str | None = None,
    ) -> None:
        """Report an error with no command behind it (a listener, a task loop), now.

        A listener started by a command shares its correlation id; otherwise the error
        gets one of its own.
        """
        try:
            if isinstance(error, CONTROL_FLOW_EXCEPTIONS) or was_reported(error):
                return
            report = self._collector.build_background_report(
                error, command_type, name, cog=cog, guild=guild, run=current_run.get()
            )
            if self._connection.active:
                with sentry_sdk.isolation_scope():
                    self._reporter.report(report)
            else:
                self._reporter.report(report)
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
        if self._connection.active:
            with sentry_sdk.isolation_scope():
                self._reporter.report(report)
        else:
            self._reporter.report(report)

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
                user_id=info.user_id,
                sensitive=() if self._send_pii else sensitive_strings(source),
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
    ) -> None:
        started = self._start(source, name)
        if started is None:
            await call()
            return
        run, info = started
        token = current_run.set(run)
        self.active_runs += 1
        source_id = run.source_id
        tracked = source_id is not None and len(_state.runs_by_source) < MAX_TRACKED_SOURCES
        if source_id is not None and tracked:
            _state.runs_by_source[source_id] = run
        try:
            # loguru records written during the command carry its correlation id.
            bound = _bind_log_context(run.correlation_id)
            try:
                if self._connection.active:
                    await self._run_traced(run, info, source, call)
                else:
                    await self._run_local(run, info, source, call)
            finally:
                _unbind_log_context(bound)
        finally:
            self.active_runs -= 1
            if source_id is not None and tracked:
                _state.runs_by_source.pop(source_id, None)
            current_run.reset(token)

    async def _run_local(
        self,
        run: CommandRun,
        info: SourceInfo,
        source: ContextOrInteraction,
        call: Callable[[], Awaitable[Any]],
    ) -> None:
        try:
            await call()
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
    ) -> None:
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
                run.transaction = self.transactions.open_run_transaction(run, info.known)
                scope.add_breadcrumb(
                    category="command",
                    message=f"Started command: {info.name}",
                    data=JsonReady(
                        command_type=info.command_type, correlation_id=run.correlation_id
                    ),
                )
            except Exception:
                _log.exception("tux_sentry_cog could not open the command's transaction")
                run.transaction = None
            error: BaseException | None = None
            try:
                await call()
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
        try:
            handled = _has_local_handler(source) if run.errors else False
            user_caused_only = True
            for error in run.errors:
                report = self._collector.build_report(error, source, run, handled, info)
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
            self.transactions.finish_command_transaction(transaction, status)
        except Exception:
            _log.exception("tux_sentry_cog could not finish a command transaction")
