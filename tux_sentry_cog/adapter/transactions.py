"""Command transactions: started in the command's own task, finished with its outcome.

The transaction is made the current span of the run's isolation scope, so spans the
bot's code opens during the command (``track_database_operation``, the SDK's aiohttp
spans) are its children. Started from a listener instead, it would be current in the
listener's task only.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.tracing import TransactionSource

from tux_sentry_cog.adapter.context import ContextOrInteraction, describe_source
from tux_sentry_cog.core.runs import current_run
from tux_sentry_cog.core.streaming import (
    end_span,
    is_streamed,
    set_outcome,
    start_streamed_span,
    streaming,
)
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from tux_sentry_cog.core.runs import CommandRun

__all__ = ["OPS", "EnhancedTransactionManager"]

_log = logging.getLogger(__name__)

#: Transaction op per ``command.type``; types not listed get no transaction.
OPS: dict[str, str] = {
    "prefix": "discord.command",
    "hybrid": "discord.command",
    "slash": "discord.app_command",
    "context_menu": "discord.app_command",
    "component": "discord.interaction",
    "modal": "discord.interaction",
    "task": "discord.task",
}


def _own_decision(options: dict[str, Any]) -> bool | None:
    """Sample here when the SDK would only roll the configured rate.

    An unsampled transaction still costs a transaction object, its finish and a debug
    log line in the SDK (~30 µs); deciding first lets an unsampled run make
    none. With a ``traces_sampler`` the owner's function decides, so ``None`` is
    returned and the SDK is left to it.
    """
    if options.get("traces_sampler") is not None or options.get("enable_tracing") is False:
        return None
    rate = options.get("traces_sample_rate")
    if rate is None:
        return False  # tracing is off in this client
    return random.random() < float(rate)


def _start(op: str, name: str) -> Any:
    """Start a transaction, or return ``None`` for an unsampled run."""
    parent = sentry_sdk.get_current_span()
    if parent is not None:
        # Inside a trace the bot started itself: continue it, and follow its sampling
        # decision instead of drawing a new one.
        headers = {"sentry-trace": parent.to_traceparent()}
        baggage = parent.to_baggage() if hasattr(parent, "to_baggage") else None
        if baggage is not None:
            headers["baggage"] = baggage.serialize()
        transaction = sentry_sdk.continue_trace(
            headers, op=op, name=name, source=TransactionSource.COMPONENT
        )
        return sentry_sdk.start_transaction(transaction)
    options = sentry_sdk.get_client().options
    decision = _own_decision(options)
    if decision is False:
        # No transaction, but still a trace of its own: the run's errors must not be
        # linked to other commands through the process-wide trace id.
        sentry_sdk.get_isolation_scope().set_new_propagation_context()
        return None
    if decision is None:
        return sentry_sdk.start_transaction(
            op=op, name=name, source=TransactionSource.COMPONENT
        )
    sampled: Any = sentry_sdk.start_transaction(
        op=op, name=name, source=TransactionSource.COMPONENT, sampled=True
    )
    # Forcing the decision makes the SDK record a rate of 1.0; Sentry extrapolates
    # counts from the rate in the trace's sampling context, so put the real one back.
    sampled.sample_rate = float(options["traces_sample_rate"])
    return sampled


class EnhancedTransactionManager:
    """Starts and finishes command transactions (the documented public methods)."""

    def start_command_transaction(
        self, source: ContextOrInteraction, command_name: str | None = None
    ) -> Any:
        """Start the transaction of ``source``'s command and make it the current span.

        Returns ``None`` when Sentry is inactive, the command type has no op, or the
        run is not sampled.
        """
        if not sentry_sdk.get_client().is_active():
            return None
        info = describe_source(source)
        op = OPS.get(info.command_type) if info.known else None
        if op is None:
            return None
        if streaming():
            return start_streamed_span(command_name or info.name, op, info.tags(), active=True)
        transaction = _start(op, command_name or info.name)
        if transaction is not None:
            transaction.__enter__()
        return transaction

    def open_run_transaction(
        self, run: CommandRun, known: bool, tags: dict[str, str] | None = None
    ) -> Any:
        """Start the transaction of ``run`` in the current (isolation) scope.

        With span streaming it is a streamed root span instead, carrying ``tags`` (the
        run's tags, which a transaction takes from the scope) as attributes.
        """
        op = OPS.get(run.command_type) if known else None
        if op is None:
            return None
        if streaming():
            return start_streamed_span(run.name, op, dict(tags or {}), active=True)
        transaction = _start(op, run.name)
        if transaction is not None:
            transaction.__enter__()
        return transaction

    @staticmethod
    def finish_command_transaction(transaction: Any, status: str) -> None:
        """Set ``status`` and finish; the current span goes back to what it was."""
        if is_streamed(transaction):
            set_outcome(transaction, status)
            end_span(transaction)
            return
        transaction.set_status(status)
        # Exit without the exception: the status already says how the run ended, and
        # the SDK would overwrite it with internal_error.
        transaction.__exit__(None, None, None)

    @staticmethod
    def start_child_transaction(
        parent_source_id: int | None, operation: str, description: str
    ) -> Any:
        """Start a child span of a running command's transaction.

        Args:
            parent_source_id: The message or interaction id of the command; ``None``
                means the command running in this task.
            operation: The span's op.
            description: The span's name (never put message content here).

        Returns:
            The started span (use it as a context manager or call ``finish()``), or
            ``None`` when no such command is running or it is not traced.
        """
        run = current_run.get()
        if parent_source_id is not None and (run is None or run.source_id != parent_source_id):
            run = SHARED.runs_by_source.get(parent_source_id)
        if run is None or run.transaction is None:
            return None
        parent = run.transaction
        if is_streamed(parent):
            attributes = {
                "correlation_id": run.correlation_id,
                "parent_operation": parent.get_attributes().get("sentry.op"),
            }
            return start_streamed_span(description, operation, attributes, parent, active=False)
        child = run.transaction.start_child(op=operation, name=description)
        child.set_tag("correlation_id", run.correlation_id)
        child.set_tag("parent_operation", run.transaction.op)
        return child
