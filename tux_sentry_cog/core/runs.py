"""The state of one command run, carried in a context variable.

Everything a command does runs in its task (or in tasks it creates, which copy the
context), so a context variable gives every run its own correlation id, start time and
error list without keying anything by command name: concurrent runs of one command never
see each other's state.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable

__all__ = ["MAX_ERRORS_PER_RUN", "CommandRun", "current_run", "get_correlation_id"]

_log = logging.getLogger(__name__)

#: A run that raises more than this many errors (a loop of failing retries, say) keeps
#: the first ones; the rest are counted but not reported.
MAX_ERRORS_PER_RUN = 8


def _new_correlation_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, at a third of its cost.
    return os.urandom(16).hex()


@dataclass(slots=True, eq=False)
class CommandRun:
    """One run of a command, interaction or task, from its start to its end.

    Attributes:
        name: Qualified command name (never message content).
        command_type: One of the ``command.type`` values (docs/events.md).
        cog: Name of the cog that owns the command, if any.
        guild_id: Guild id as a string, or ``"dm"``.
        shard_id: The guild's shard on a sharded bot, else ``None``.
        user_id: The invoking user's id, if any.
        correlation_id: Fresh for every run; on every event, span and breadcrumb.
        started: ``time.perf_counter()`` at the start.
        errors: Errors raised during the run, first ones only.
        dropped_errors: How many errors did not fit in ``errors``.
        sensitive: Values of this run that must not leave the process unless PII is
            on, known up front (set by whoever starts the run).
        values_of: Reads the rest of the run's values (message content, argument values
            as parsed and converted, option values) when the scrubber first needs them:
            arguments are only parsed once the command runs.
        secrets: Secrets of this run (an interaction's token), removed everywhere.
        ended: True once the run finished (its values are final then).
        needles: The scrubber's ready-made form of the final values (longest first,
            repr forms included), kept once the run ended.
        reported: ids of the exceptions already reported, so each goes out once.
        transaction: The run's Sentry transaction, when one was started.
        db_queries: Database operations tracked during the run.
        source_id: The message or interaction id that started the run.
        first_response_ms: When an interaction's first response went out, from the start.
        outer_scope: The scope that was current when the run started and outlives it:
            an error of a listener the run dispatched (``on_command_error``) is
            reported in a scope forked from it, not from the run's own.
        opted_out: Nothing about this run is sent (its guild or user opted out, or the
            owner's ``should_report`` said no); only metrics without ids count it.
    """

    name: str
    command_type: str
    cog: str | None = None
    guild_id: str = "dm"
    shard_id: int | None = None
    user_id: int | None = None
    correlation_id: str = field(default_factory=_new_correlation_id)
    started: float = field(default_factory=time.perf_counter)
    errors: list[BaseException] = field(default_factory=list)
    dropped_errors: int = 0
    sensitive: tuple[str, ...] = ()
    values_of: Callable[[], tuple[str, ...]] | None = None
    secrets: tuple[str, ...] = ()
    ended: bool = False
    needles: tuple[str, ...] | None = None
    _values: tuple[str, ...] | None = None
    reported: set[int] = field(default_factory=set)
    transaction: Any = None
    db_queries: int = 0
    source_id: int | None = None
    first_response_ms: float | None = None
    outer_scope: Any = None
    opted_out: bool = False

    def record_error(self, error: BaseException) -> None:
        """Remember ``error`` for reporting at the end of the run, once."""
        if any(known is error for known in self.errors):
            return
        if len(self.errors) >= MAX_ERRORS_PER_RUN:
            self.dropped_errors += 1
            return
        self.errors.append(error)

    def sensitive_values(self) -> tuple[str, ...]:
        """Every value of the run the scrubber removes from free text (PII off).

        Read again until the run ends (a command's arguments are parsed while it runs),
        then kept.
        """
        if self._values is not None:
            return self._values
        values = self.sensitive
        if self.values_of is not None:
            try:
                values = (*values, *self.values_of())
            except Exception:  # a partial source object; what is known up front stays
                _log.debug("could not read the values of run %s", self.name, exc_info=True)
        if self.ended:
            self._values = values
        return values

    def log_attributes(self) -> dict[str, str]:
        """What ties a log line to this run: its correlation id, command, guild, shard.

        The same values as the run's tags (``shard.id`` only on sharded bots, as there).
        """
        attributes = {
            "correlation_id": self.correlation_id,
            "command.name": self.name,
            "guild.id": self.guild_id,
        }
        if self.shard_id is not None:
            attributes["shard.id"] = str(self.shard_id)
        return attributes

    def elapsed_ms(self) -> float:
        """Milliseconds since the run started."""
        return (time.perf_counter() - self.started) * 1000.0


# Shared by every import of the package, so a reload does not strand the bot's code
# on a context variable nobody sets any more (see tux_sentry_cog.shared).
current_run = cast("contextvars.ContextVar[CommandRun | None]", SHARED.current_run)


def get_correlation_id() -> str | None:
    """Return the correlation id of the command running in this task, if any."""
    run = current_run.get()
    return run.correlation_id if run is not None else None
