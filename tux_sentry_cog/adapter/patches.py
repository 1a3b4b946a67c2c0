"""discord.py's entry points, patched once per process and never unpatched.

Every wrapper asks at call time whether a loaded cog serves the bot in question
(:func:`hooks_for`) and passes straight through, untouched, when none does. So loading,
unloading and reloading the cog never restore anything, never remove a wrapper another
library put on top of ours, and never depend on load order.

The wrappers of the first import of the package stay in discord.py for the life of the
process, while ``reload_extension`` imports later generations of the package. They
reach whatever cog is loaded now through two stable interfaces only: the cog's
:data:`HOOKS_ATTRIBUTE` (a ``BotInstrumentation``: ``run``, ``record``,
``report_listener_error``, ``report_background``) and :mod:`tux_sentry_cog.shared`.

Entry points (class attributes, so bots built before or after the cog loaded are
covered, and a bot's own wrapper on the instance wraps ours):

- ``BotBase.invoke``: every prefix and hybrid command, in its own task.
- ``BotBase.dispatch``: ``command_error`` arrives here synchronously, in the failing
  command's task (``invoke`` calls ``self.dispatch``; no listener is added, which would
  silence discord.py's default error log).
- ``Client._run_event``: every listener of every event, whichever ``dispatch`` delivered
  it (``ConnectionState`` keeps the bound ``dispatch`` it was built with). Errors are
  seen before ``on_error`` runs, whatever the bot set as ``on_error`` and when.
- ``CommandTree._call``: every slash command, context menu and autocomplete. The tree's
  ``on_error`` (a public slot the bot may replace at any time) is wrapped on the instance
  at each call when it is not ours.
- ``_scheduled_task`` of the view class that defines it (``View`` on 2.4/2.5,
  ``BaseView`` on 2.6+) and of ``Modal``: component and modal callbacks; the view's
  ``on_error`` is wrapped on the instance.
- ``tasks.Loop``: every iteration and failure of a loop, whenever it started
  (:mod:`tux_sentry_cog.adapter.loop_patches`).
- ``InteractionResponse._response_type``: the slot every response sets, to time the
  first response of a run.
- A filter on ``discord.app_commands.tree``'s logger: autocomplete errors are only logged.
- Filters on ``discord.http`` and ``discord.gateway``: rate limits and heartbeat warnings
  are only logged (:mod:`tux_sentry_cog.adapter.discord_limits`).

Each wrapper forwards ``*args, **kwargs``: a parameter discord.py adds later passes
through. Each internal is probed first; a missing or changed one logs one warning naming
the discord.py version and the capability lost, and the rest is patched as usual.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.ext.commands.bot import BotBase

from tux_sentry_cog.adapter.discord_limits import install_log_watch
from tux_sentry_cog.adapter.errors import unwrap_error
from tux_sentry_cog.adapter.loop_patches import patch_loops
from tux_sentry_cog.core.client import mark_reported
from tux_sentry_cog.core.runs import current_run
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "COG_NAME",
    "HOOKS_ATTRIBUTE",
    "PATCH_MARK",
    "hooks_for",
    "item_name",
    "patch_discord",
]

_log = logging.getLogger(__name__)

#: The loaded cog's name (``bot.get_cog``) and the attribute holding its hooks.
COG_NAME = "Sentry"
HOOKS_ATTRIBUTE = "tux_sentry_hooks"

#: Set on every wrapper this module installs.
PATCH_MARK = "__tux_sentry_patch__"
_ON_ERROR_MARK = "__tux_sentry_on_error__"

_AUTOCOMPLETE_LOGGER = "discord.app_commands.tree"


def hooks_for(client: Any) -> Any:
    """The hooks of the cog loaded into ``client``, or ``None`` (then: pass through)."""
    get_cog = getattr(client, "get_cog", None)
    if get_cog is None:
        return None
    cog = get_cog(COG_NAME)
    return getattr(cog, HOOKS_ATTRIBUTE, None) if cog is not None else None


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


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], kind: type) -> Any:
    for value in (*args, *kwargs.values()):
        if isinstance(value, kind):
            return value
    return None


def _record(client: Any, error: Any, source: Any) -> None:
    """Note ``error`` on the current run (which reports it when it ends), or report it now.

    The run is found through the shared context variable, not through a cog: a run in
    flight while its cog unloads still collects its errors.
    """
    try:
        if not isinstance(error, BaseException):
            return
        run = current_run.get()
        if run is not None:
            original = unwrap_error(error)
            run.record_error(original)
            mark_reported(original)
            return
        hooks = hooks_for(client)
        if hooks is not None:
            hooks.record(error, source)
    except Exception:
        _log.exception("tux_sentry_cog could not record an error")


# the wrappers -----------------------------------------------------------------------


def _wrap_invoke(original: Any) -> Any:
    async def invoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        hooks = hooks_for(self)
        if hooks is None:
            return await original(self, *args, **kwargs)
        ctx = _argument(args, kwargs, commands.Context)
        if ctx is None or (ctx.command is None and not ctx.invoked_with):
            # A plain message, not a command: nothing to watch.
            return await original(self, *args, **kwargs)
        return await hooks.run(ctx, lambda: original(self, *args, **kwargs))

    return invoke


def _wrap_dispatch(original: Any) -> Any:
    def dispatch(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args and args[0] == "command_error" and len(args) >= 3:  # noqa: PLR2004
            _record(self, args[2], args[1])
        return original(self, *args, **kwargs)

    return dispatch


def _wrap_run_event(original: Any) -> Any:
    async def _run_event(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) < 2 or hooks_for(self) is None:  # noqa: PLR2004 - (coro, event_name)
            return await original(self, *args, **kwargs)
        listener, event_name = args[0], args[1]

        async def watched(*event_args: Any, **event_kwargs: Any) -> Any:
            try:
                return await listener(*event_args, **event_kwargs)
            except Exception as exc:
                # Before the bot's on_error (which sees the same exception after us).
                hooks = hooks_for(self)
                if hooks is not None:
                    hooks.report_listener_error(exc, event_name, listener, event_args)
                raise

        return await original(self, watched, *args[1:], **kwargs)

    return _run_event


def _wrap_on_error(owner: Any, attribute: str, error_position: int) -> None:
    """Wrap ``owner.<attribute>`` (an ``on_error`` slot) on the instance, once."""
    current = getattr(owner, attribute)
    if getattr(current, _ON_ERROR_MARK, False):
        return

    @functools.wraps(current)
    async def on_error(*args: Any, **kwargs: Any) -> Any:
        interaction = _argument(args, kwargs, discord.Interaction)
        error = args[error_position] if len(args) > error_position else kwargs.get("error")
        if interaction is not None:
            _record(interaction.client, error, interaction)
        return await current(*args, **kwargs)

    setattr(on_error, _ON_ERROR_MARK, True)
    setattr(owner, attribute, on_error)


def _wrap_tree_call(original: Any) -> Any:
    async def _call(self: Any, *args: Any, **kwargs: Any) -> Any:
        hooks = hooks_for(getattr(self, "client", None))
        interaction = _argument(args, kwargs, discord.Interaction) if hooks else None
        if interaction is None:
            return await original(self, *args, **kwargs)
        try:
            # The bot may have replaced its tree's on_error since the last interaction.
            _wrap_on_error(self, "on_error", 1)
        except Exception:
            _log.exception("tux_sentry_cog could not watch the command tree's on_error")
        return await hooks.run(interaction, lambda: original(self, *args, **kwargs))

    return _call


def _wrap_scheduled_task(original: Any) -> Any:
    """Every component callback and modal submission becomes a run."""

    async def _scheduled_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        interaction = _argument(args, kwargs, discord.Interaction)
        hooks = hooks_for(interaction.client) if interaction is not None else None
        if hooks is None:
            return await original(self, *args, **kwargs)
        try:
            _wrap_on_error(self, "on_error", 1)
            name = item_name(self, _argument(args, kwargs, discord.ui.Item))
        except Exception:
            _log.exception("tux_sentry_cog could not watch a view")
            return await original(self, *args, **kwargs)
        return await hooks.run(interaction, lambda: original(self, *args, **kwargs), name)

    return _scheduled_task


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


class AutocompleteErrorFilter(logging.Filter):
    """Records autocomplete errors, which discord.py only logs, on the current run.

    A filter runs synchronously inside the logging call, in the failing task, so the run
    is the autocomplete's own. It never drops the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Record the error if this is discord.py's autocomplete failure line."""
        try:
            if record.exc_info and str(record.msg).startswith("Ignoring exception in autocomplete"):
                run = current_run.get()
                error = record.exc_info[1]
                if run is not None and error is not None:
                    original = unwrap_error(error)
                    run.record_error(original)
                    mark_reported(original)
        except Exception:
            sys.stderr.write("tux_sentry_cog: could not record an autocomplete error\n")
        return True


# patching -------------------------------------------------------------------------


def _lost(what: str, capability: str) -> None:
    _log.warning(
        "tux_sentry_cog: discord.py %s has no usable %s; %s (everything else works)",
        discord.__version__,
        what,
        capability,
    )


def _defining_class(cls: type, name: str) -> type | None:
    return next((k for k in cls.__mro__ if name in k.__dict__), None)


def _patch(
    owner: type | None, name: str, factory: Callable[[Any], Any], capability: str
) -> None:
    """Wrap ``owner.name`` with ``factory(original)`` once per process, after a probe."""
    key = f"{getattr(owner, '__qualname__', owner)}.{name}"
    if key in SHARED.patched:
        return
    SHARED.patched.add(key)
    original = owner.__dict__.get(name) if owner is not None else None
    if not callable(original):
        _lost(key, capability)
        return
    if getattr(original, PATCH_MARK, False):
        return  # already ours (a shared record from an older interface version)
    wrapper = functools.wraps(original)(factory(original))
    setattr(wrapper, PATCH_MARK, True)
    setattr(owner, name, wrapper)


#: The slot of ``InteractionResponse`` every way of answering sets.
_RESPONSE_SLOT = "_response_type"


def _patch_response_slot() -> None:
    key = f"InteractionResponse.{_RESPONSE_SLOT}"
    if key in SHARED.patched:
        return
    SHARED.patched.add(key)
    slot = discord.InteractionResponse.__dict__.get(_RESPONSE_SLOT)
    if not (hasattr(slot, "__get__") and hasattr(slot, "__set__")):
        _lost(key, "the interactions.response_time metric is off")
        return
    wrapper = _response_slot(slot)
    setattr(wrapper.fget, PATCH_MARK, True)
    setattr(discord.InteractionResponse, _RESPONSE_SLOT, wrapper)


def patch_discord() -> None:
    """Patch every entry point of discord.py the cog needs; once per process.

    Safe to call any number of times, from any generation of the package: what was
    patched is recorded in :data:`tux_sentry_cog.shared.SHARED`, not in this module.
    """
    _patch(BotBase, "invoke", _wrap_invoke, "prefix and hybrid commands are not traced")
    _patch(
        BotBase,
        "dispatch",
        _wrap_dispatch,
        "prefix command errors are not reported",
    )
    _patch(discord.Client, "_run_event", _wrap_run_event, "listener errors are not reported")
    _patch(
        app_commands.CommandTree,
        "_call",
        _wrap_tree_call,
        "slash commands and context menus are not traced",
    )
    # View on 2.4/2.5, BaseView on 2.6+: whichever class defines it, found, not imported.
    _patch(
        _defining_class(discord.ui.View, "_scheduled_task"),
        "_scheduled_task",
        _wrap_scheduled_task,
        "component callbacks are not traced",
    )
    _patch(
        _defining_class(discord.ui.Modal, "_scheduled_task"),
        "_scheduled_task",
        _wrap_scheduled_task,
        "modal submissions are not traced",
    )
    patch_loops(_patch, _lost)
    _patch_response_slot()
    if "autocomplete filter" not in SHARED.patched:
        SHARED.patched.add("autocomplete filter")
        logging.getLogger(_AUTOCOMPLETE_LOGGER).addFilter(AutocompleteErrorFilter())
    install_log_watch(_lost)
