"""``discord.ext.tasks`` loops: where their iterations and failures are seen.

A class patch of ``Loop._loop`` alone misses a loop whose ``_loop`` coroutine was
already running when the package was imported (started in an earlier extension's
``cog_load``), and it sees a failure only after discord.py logged it (the SDK's logging
integration would send that line first, and its DedupeIntegration then drop ours).
So the loop is watched at four places, each looked up on the class at call time:

- ``Loop._loop`` and ``Loop._get_next_sleep_time`` (called by ``_loop`` before every
  iteration that follows a success, also in a loop already running) put an iteration
  wrapper on the loop's ``coro`` attribute, once per loop object. ``_loop`` reads
  ``self.coro`` at every iteration, so from the next iteration on each call of the
  loop's function goes through :func:`_watch_iterations`'s wrapper: a run of its own
  for a loop of a cog, the failure reported before discord.py handles or logs it.
- ``Loop._call_loop_function("error", exc)`` (how ``_loop`` calls the loop's error
  handler, or its default that logs): a loop that ends in an error its wrapper did not
  see (the first iteration of a loop already running) is reported before the handler.
- A filter on the ``discord.ext.tasks`` logger: a retried failure ("Handling exception
  in internal background task ... Retrying in") of a loop not yet wrapped is reported
  from the record, in the failing task, before any handler (the SDK's too) sees it.

Every report marks the exception, so the log line discord.py writes for it is dropped
as a duplicate (``core.client``). Each place reaches the loaded cog through
``SHARED.serving`` and passes through untouched when none serves.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands, tasks

from tux_sentry_cog.core.client import was_reported
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "OWN_LOOP_MARK",
    "RECONNECT_ERRORS",
    "LoopLogFilter",
    "loop_identity",
    "patch_loops",
    "will_retry",
]

_log = logging.getLogger(__name__)

#: Set on the cog's own loops (metric flush, resource sampling): neither runs nor monitors.
OWN_LOOP_MARK = "__tux_sentry_own_loop__"

#: Set on the iteration wrapper put on a loop's ``coro``.
_ITERATION_MARK = "__tux_sentry_iteration__"

#: What discord.py retries when ``reconnect=True`` (its ``Loop._valid_exception``).
RECONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    discord.GatewayNotFound,
    discord.ConnectionClosed,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)

_TASKS_LOGGER = "discord.ext.tasks"
_RETRY_LINE = "Handling exception in internal background task"
_UNHANDLED_LINE = "Unhandled exception in internal background task"


def loop_identity(loop: Any) -> tuple[str, str | None, str]:
    """``(name, cog, method)``: ``<Cog>.<method>``, or the coroutine's qualified name."""
    coro = getattr(loop, "coro", None)
    method = str(getattr(coro, "__name__", None) or "loop")
    owner = getattr(loop, "_injected", None)
    if isinstance(owner, commands.Cog):
        cog = owner.qualified_name
        return f"{cog}.{method}", cog, method
    return str(getattr(coro, "__qualname__", None) or method), None, method


def will_retry(loop: Any, error: BaseException) -> bool:
    """True when discord.py retries the loop after ``error`` instead of ending it."""
    if not getattr(loop, "reconnect", False):
        return False
    valid = getattr(loop, "_valid_exception", None)
    if not (isinstance(valid, tuple) and all(isinstance(k, type) for k in valid)):
        valid = RECONNECT_ERRORS
    return isinstance(error, valid)


def _hooks() -> Any:
    return SHARED.serving[0] if SHARED.serving else None


def _report(loop: Any, error: BaseException, *, retried: bool) -> None:
    """Report a failure no iteration wrapper saw, through the loaded cog, if any."""
    try:
        hooks = _hooks()
        if hooks is None or was_reported(error) or getattr(loop, OWN_LOOP_MARK, False):
            return
        report = getattr(hooks, "report_task_error", None)
        if report is not None:
            report(loop, error, retried)
            return
        name, cog, _ = loop_identity(loop)
        hooks.report_background(error, "task", name, cog=cog)
    except Exception:
        _log.exception("tux_sentry_cog could not report a task loop error")


def _watch_iterations(loop: Any) -> None:
    """Route every later iteration of ``loop`` through the loaded cog, once per loop."""
    try:
        coro = loop.coro
        if getattr(coro, _ITERATION_MARK, False) or getattr(loop, OWN_LOOP_MARK, False):
            return

        @functools.wraps(coro)
        async def iteration(*args: Any, **kwargs: Any) -> Any:
            hooks = _hooks()
            run = getattr(hooks, "run_iteration", None) if hooks is not None else None
            if run is None:
                return await coro(*args, **kwargs)
            return await run(loop, lambda: coro(*args, **kwargs))

        setattr(iteration, _ITERATION_MARK, True)
        loop.coro = iteration
    except Exception:
        _log.exception("tux_sentry_cog could not watch a task loop")


class LoopLogFilter(logging.Filter):
    """Reports a loop failure from discord.py's log line when nothing saw it before.

    The filter runs inside the logging call, in the failing loop's task, before every
    handler. The loop object is not in the record, only its coroutine's qualified name,
    so the event is named after that. It never drops the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Report the error if this is a loop failure line no wrapper reported."""
        try:
            msg = str(record.msg)
            retried = msg.startswith(_RETRY_LINE)
            if record.exc_info and (retried or msg.startswith(_UNHANDLED_LINE)):
                error = record.exc_info[1]
                hooks = _hooks()
                if error is not None and hooks is not None and not was_reported(error):
                    qualname = record.args[0] if isinstance(record.args, tuple) else None
                    report = getattr(hooks, "report_task_error", None)
                    if report is not None:
                        report(None, error, retried, str(qualname or "unknown"))
        except Exception:
            sys.stderr.write("tux_sentry_cog: could not report a task loop error\n")
        return True


def _wrap_loop(original: Any) -> Any:
    async def _loop(self: Any, *args: Any, **kwargs: Any) -> Any:
        _watch_iterations(self)
        return await original(self, *args, **kwargs)

    return _loop


def _wrap_next_sleep_time(original: Any) -> Any:
    def _get_next_sleep_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        if SHARED.serving:
            _watch_iterations(self)
        return original(self, *args, **kwargs)

    return _get_next_sleep_time


def _wrap_call_loop_function(original: Any) -> Any:
    async def _call_loop_function(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) >= 2 and args[0] == "error" and isinstance(args[1], BaseException):  # noqa: PLR2004
            _report(self, args[1], retried=False)
        return await original(self, *args, **kwargs)

    return _call_loop_function


def patch_loops(
    patch: Callable[[Any, str, Callable[[Any], Any], str], None],
    lost: Callable[[str, str], None],
) -> None:
    """Patch ``tasks.Loop`` with ``patch(owner, name, factory, capability)``; once."""
    loop = tasks.Loop.__dict__.get("_loop")
    if loop is None or inspect.iscoroutinefunction(loop):
        patch(tasks.Loop, "_loop", _wrap_loop, "task loop iterations are not traced")
    else:
        SHARED.patched.add("Loop._loop")
        lost("Loop._loop coroutine", "task loop iterations are not traced")
    patch(
        tasks.Loop,
        "_get_next_sleep_time",
        _wrap_next_sleep_time,
        "loops started before the cog loaded are not traced",
    )
    patch(
        tasks.Loop,
        "_call_loop_function",
        _wrap_call_loop_function,
        "errors of loops started before the cog loaded are reported from the log only",
    )
    if "tasks log filter" not in SHARED.patched:
        SHARED.patched.add("tasks log filter")
        logging.getLogger(_TASKS_LOGGER).addFilter(LoopLogFilter())
