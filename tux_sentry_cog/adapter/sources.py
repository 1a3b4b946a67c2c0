"""Error sources beyond commands: components, modals, listeners, task loops, autocomplete.

discord.py routes each of these to its own handler (``View.on_error``,
``Modal.on_error``, ``Client.on_error``, a loop's ``error`` handler, a log line for
autocomplete). The bot's handler keeps running exactly as before; the cog only sees the
error on the way.

- Components and modals: ``BaseView._scheduled_task`` and ``Modal._scheduled_task`` run
  every callback in a task of its own; they are wrapped at the class level, so views
  created at any time are covered, and each callback becomes a run (scope, transaction,
  correlation id). The view's ``on_error`` is wrapped on the instance, once.
- Event listeners: ``bot.on_error`` is wrapped (and wrapped again when the bot replaces
  it later); the exception is ``sys.exc_info()`` there.
- ``discord.ext.tasks`` loops: ``Loop._loop`` is wrapped at the class level, so loops
  started after the cog loaded are covered; the loop's own error handler runs first.
- Autocomplete: discord.py logs and swallows autocomplete errors; a filter on that logger
  records the error on the run, and the log line stays.
- Interaction responses: the slot every response method sets is wrapped, to time the
  first response of a run (``interactions.response_time``; Discord allows 3 s).

Class-level wrappers are shared by every loaded cog in the process and removed when the
last one unloads.
"""

from __future__ import annotations

import logging
import sys
import weakref
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import tasks
from discord.ui import Modal
from discord.ui.view import BaseView

import _tux_sentry_cog_state as _state
from tux_sentry_cog.core.runs import current_run

if TYPE_CHECKING:
    from tux_sentry_cog.adapter.hooks import BotInstrumentation

__all__ = ["AutocompleteErrorFilter", "ClassPatches", "event_source_name", "item_name"]

_log = logging.getLogger(__name__)

_AUTOCOMPLETE_LOGGER = "discord.app_commands.tree"
_ON_ERROR_MARK = "__tux_sentry_on_error__"


def item_name(view: Any, item: Any = None) -> str:
    """``ViewClass.callback`` for a component, ``ModalClass`` for a modal.

    Custom ids are never used: they often embed user data.
    """
    name = type(view).__name__
    if item is None:
        return name
    callback = getattr(item, "callback", None)
    function = getattr(callback, "callback", None) or getattr(callback, "__func__", None)
    label = getattr(function, "__name__", None) or type(item).__name__
    return f"{name}.{label}"


def event_source_name(event_method: str) -> str:
    """The ``command.name`` of a listener error: the event method (``on_message``)."""
    return event_method if event_method.startswith("on_") else f"on_{event_method}"


def _instrumentation_for(client: Any) -> BotInstrumentation | None:
    """The instrumentation of ``client``; with no client, the first one loaded."""
    instrumentations: list[BotInstrumentation] = _state.active.get("instrumentations", [])
    for instrumentation in instrumentations:
        if client is None or instrumentation.bot is client:
            return instrumentation
    return None


def _wrap_view_on_error(view: Any, wrapped: weakref.WeakSet[Any]) -> None:
    """Wrap ``view.on_error`` on the instance, once.

    The error is recorded on the run before the view's own handler (possibly a subclass
    override) runs.
    """
    if getattr(view.on_error, _ON_ERROR_MARK, False):
        return
    original = view.on_error

    async def on_error(interaction: Any, error: Exception, /, *rest: Any) -> None:
        run = current_run.get()
        if run is not None:
            try:
                instrumentation = _instrumentation_for(getattr(interaction, "client", None))
                if instrumentation is not None:
                    instrumentation.record(error, interaction)
            except Exception:
                _log.exception("tux_sentry_cog could not record a view error")
        await original(interaction, error, *rest)

    setattr(on_error, _ON_ERROR_MARK, True)
    view.on_error = on_error
    wrapped.add(view)


def _view_wrapper(original: Any, views: weakref.WeakSet[Any]) -> Any:
    """Every component callback of every view becomes a run."""

    async def view_scheduled_task(self: Any, item: Any, interaction: Any) -> Any:
        instrumentation = _instrumentation_for(interaction.client)
        if instrumentation is None:
            return await original(self, item, interaction)
        _wrap_view_on_error(self, views)
        return await instrumentation.run_interaction(
            interaction, item_name(self, item), lambda: original(self, item, interaction)
        )

    return view_scheduled_task


def _modal_wrapper(original: Any, views: weakref.WeakSet[Any]) -> Any:
    """Every modal submission becomes a run."""

    async def modal_scheduled_task(self: Any, interaction: Any, *args: Any) -> Any:
        instrumentation = _instrumentation_for(interaction.client)
        if instrumentation is None:
            return await original(self, interaction, *args)
        _wrap_view_on_error(self, views)
        return await instrumentation.run_interaction(
            interaction, item_name(self), lambda: original(self, interaction, *args)
        )

    return modal_scheduled_task


def _loop_wrapper(original: Any) -> Any:
    """A loop that ends in an error reports it, after the loop's own error handler ran."""

    async def loop(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await original(self, *args, **kwargs)
        except Exception as exc:
            instrumentation = _instrumentation_for(None)
            if instrumentation is not None:
                name = getattr(self.coro, "__qualname__", None) or repr(self.coro)
                owner = getattr(self, "_injected", None)
                cog = type(owner).__name__ if owner is not None else None
                instrumentation.report_background(exc, "task", name, cog=cog)
            raise

    return loop


def _response_slot(slot: Any) -> property:
    """Time the first response of a run.

    Every way of answering an interaction (message, defer, modal, edit, choices) ends by
    setting ``_response_type``; wrapping the slot's descriptor sees the first one.
    """

    def get_response_type(self: Any) -> Any:
        return slot.__get__(self, type(self))

    def set_response_type(self: Any, value: Any) -> None:
        slot.__set__(self, value)
        if value is not None:
            run = current_run.get()
            if run is not None and run.first_response_ms is None:
                run.first_response_ms = run.elapsed_ms()

    return property(get_response_type, set_response_type)


class ClassPatches:
    """The class-level wrappers, installed with the first cog and removed with the last."""

    def __init__(self) -> None:
        """Nothing is patched until :meth:`install`."""
        self._originals: dict[tuple[type, str], Any] = {}
        self._views: weakref.WeakSet[Any] = weakref.WeakSet()

    def install(self) -> None:
        """Wrap the views', modals' and loops' entry points, and the response slot."""
        for owner, name, wrapper in (
            (
                BaseView,
                "_scheduled_task",
                _view_wrapper(BaseView.__dict__["_scheduled_task"], self._views),
            ),
            (
                Modal,
                "_scheduled_task",
                _modal_wrapper(Modal.__dict__["_scheduled_task"], self._views),
            ),
            (tasks.Loop, "_loop", _loop_wrapper(tasks.Loop.__dict__["_loop"])),
            (
                discord.InteractionResponse,
                "_response_type",
                _response_slot(discord.InteractionResponse.__dict__["_response_type"]),
            ),
        ):
            self._originals[(owner, name)] = owner.__dict__[name]
            setattr(owner, name, wrapper)

    def uninstall(self) -> None:
        """Put the originals back and unwrap every view still alive."""
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)
        self._originals.clear()
        for view in list(self._views):
            if getattr(view.__dict__.get("on_error"), _ON_ERROR_MARK, False):
                del view.on_error
        self._views = weakref.WeakSet()


class AutocompleteErrorFilter(logging.Filter):
    """Records autocomplete errors, which discord.py only logs, on the current run.

    A filter runs synchronously inside the logging call, in the failing task, so the run
    is the autocomplete's own. It never drops the record.
    """

    def __init__(self, instrumentation: BotInstrumentation) -> None:
        """Bind the filter to one bot's instrumentation."""
        super().__init__()
        self._instrumentation = instrumentation

    def filter(self, record: logging.LogRecord) -> bool:
        """Record the error if this is discord.py's autocomplete failure line."""
        try:
            if record.exc_info and str(record.msg).startswith("Ignoring exception in autocomplete"):
                run = current_run.get()
                error = record.exc_info[1]
                if run is not None and error is not None:
                    self._instrumentation.record_on_run(error)
        except Exception:
            sys.stderr.write("tux_sentry_cog: could not record an autocomplete error\n")
        return True

    @staticmethod
    def logger() -> logging.Logger:
        """The logger discord.py writes autocomplete failures to."""
        return logging.getLogger(_AUTOCOMPLETE_LOGGER)


def describe_event_args(args: tuple[Any, ...]) -> discord.Guild | None:
    """The guild an event was about, if one of its arguments says."""
    for arg in args:
        if isinstance(arg, discord.Guild):
            return arg
        guild = getattr(arg, "guild", None)
        if guild is not None and hasattr(guild, "id"):
            return guild  # type: ignore[no-any-return]
    return None
