"""State of tux_sentry_cog that must survive ``reload_extension("tux_sentry_cog")``.

discord.py removes an extension's package and every submodule from ``sys.modules`` when
it unloads it, so the next load imports fresh module objects. Bot code that imported
``get_correlation_id`` or ``track_database_operation`` before a reload still holds the
old ones. The context variable of the running command and the registry of the loaded
cog's parts live here, outside the package, so every generation of the package shares
them. Nothing else belongs in this module.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["active", "current_run", "runs_by_source"]

#: The command run of the current task (a ``tux_sentry_cog.core.runs.CommandRun``).
current_run: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "tux_sentry_cog_run", default=None
)

#: The loaded cog's shared parts, by role ("metrics", ...); empty when no cog is loaded.
active: dict[str, Any] = {}

#: Runs in flight by source id (message or interaction id), for the plan's
#: ``start_child_transaction(parent_source_id, ...)``. Entries leave when runs end.
runs_by_source: dict[int, Any] = {}
