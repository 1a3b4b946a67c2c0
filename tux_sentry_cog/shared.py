"""What every import of the package shares: found on discord.py's ``BotBase``.

``unload_extension("tux_sentry_cog")`` deletes the package and every submodule from
``sys.modules``, so the next load imports a second generation of every module. Three
things must still be one object for all generations:

- the context variable of the current run: bot code that imported
  ``get_correlation_id`` or ``track_database_operation`` before a reload reads it, and
  the patches of the first generation set it;
- the registry of what the loaded cogs publish (the metrics buffer, the error window,
  the runs in flight by source id, the cogs serving task loops);
- the record of what was patched, so discord.py is patched once per process.

They live on one :class:`Shared` object stored as a class attribute of
``discord.ext.commands.BotBase``: the class the integration patches first, which is
imported once and never reloaded, so the anchor lives exactly as long as the patches it
belongs to. Every generation finds it at import; only the first one creates it. Later
generations read it by attribute name only (never ``isinstance``: its class belongs to
the generation that made it), so its attributes are a stable interface: add, never
rename.
"""

from __future__ import annotations

import contextvars
from typing import Any

from discord.ext.commands.bot import BotBase

__all__ = ["ANCHOR", "SHARED", "Shared"]

#: The class attribute of ``BotBase`` that holds the :class:`Shared` object.
ANCHOR = "__tux_sentry_cog__"

#: Bumped only if an attribute of :class:`Shared` changes meaning.
INTERFACE_VERSION = 1


class Shared:
    """State shared by every import of the package in this process.

    Attributes:
        version: :data:`INTERFACE_VERSION` of the generation that created it.
        current_run: The command run of the current task (a ``CommandRun``).
        active: What the loaded cog publishes, by role (``"metrics"``,
            ``"error_window"``); empty when no cog is loaded.
        runs_by_source: Runs in flight by source id (message or interaction id), for
            ``start_child_transaction(parent_source_id, ...)``; entries leave when runs end.
        serving: The loaded cogs' hooks, oldest first, for entry points with no bot at
            hand (task loops).
        patched: Names of the discord.py entry points already patched in this process.
    """

    def __init__(self) -> None:
        """Empty state; one per process (see the module's docstring)."""
        self.version = INTERFACE_VERSION
        self.current_run: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "tux_sentry_cog_run", default=None
        )
        self.active: dict[str, Any] = {}
        self.runs_by_source: dict[int, Any] = {}
        self.serving: list[Any] = []
        self.patched: set[str] = set()


def _adopt() -> Shared:
    found: Any = BotBase.__dict__.get(ANCHOR)
    if found is not None and getattr(found, "version", None) == INTERFACE_VERSION:
        return found  # type: ignore[no-any-return]
    shared = Shared()
    setattr(BotBase, ANCHOR, shared)
    return shared


#: The one :class:`Shared` of this process.
SHARED: Shared = _adopt()
