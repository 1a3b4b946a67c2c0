"""The metric reporters, recording through the loaded cog's recorder.

The metric names and attributes live here, each built in one place. A figure is recorded
where it is measured, so inside a command run the item carries the run's time and trace
(see :mod:`tux_sentry_cog.core.metrics`). Constructed with no arguments the reporters
record through the cog that is loaded; with no cog loaded they do nothing, at the cost
of a dict lookup. No user id ever becomes an attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tux_sentry_cog.core.metrics import STRUCTURAL
from tux_sentry_cog.core.performance import performance_tier
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tux_sentry_cog.core.classification import Classification
    from tux_sentry_cog.core.metrics import MetricsRecorder, SlidingWindowCounter

__all__ = ["BusinessMetricsReporter", "ErrorMetricsReporter", "record_user_activity"]

_MS = "millisecond"
_HTTP_OK_MIN = 200
_HTTP_OK_MAX = 300


def _recorder(explicit: MetricsRecorder | None) -> MetricsRecorder | None:
    if explicit is not None:
        return explicit
    found: MetricsRecorder | None = SHARED.active.get("metrics")
    return found


def _section(context: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = context.get(key)
    return value if isinstance(value, dict) else {}


class ErrorMetricsReporter:
    """Error and command metrics (``ErrorMetricsReporter``).

    Args:
        recorder: Where to record; the loaded cog's recorder when not given.
        window: Failures counted for ``errors.rate`` and the status error rates (user-
            caused errors are not failures of the bot); the loaded cog's when not given.
        user_window: User-caused errors, counted apart for the status report.
    """

    def __init__(
        self,
        recorder: MetricsRecorder | None = None,
        window: SlidingWindowCounter | None = None,
        user_window: SlidingWindowCounter | None = None,
    ) -> None:
        """Bind to a recorder, or to whatever cog is loaded at recording time."""
        self._recorder = recorder
        self._window = window
        self._user_window = user_window

    def record_error_metric(
        self,
        error: BaseException,
        context: Mapping[str, Any],
        classification: Classification | None = None,
    ) -> None:
        """Count one error (``errors.total``) and feed the error-rate window.

        Args:
            error: The original exception.
            context: Event-shaped context: ``command.type`` and ``command.cog_name`` are
                read; ``performance.response_time_ms`` becomes ``error_handling.duration``.
            classification: Category and severity; ``internal``/``error`` if not given.
        """
        recorder = _recorder(self._recorder)
        if recorder is None:
            return
        command = _section(context, "command")
        category = classification.category.value if classification else "internal"
        severity = classification.severity.label if classification else "error"
        error_type = type(error).__name__
        recorder.count(
            "errors.total",
            1,
            {
                "error_type": error_type,
                "error_category": category,
                "severity": severity,
                "command_type": str(command.get("type") or "unknown"),
                "cog_name": str(command.get("cog_name") or "none"),
            },
        )
        if classification is not None and classification.user_caused:
            window = self._user_window or SHARED.active.get("user_error_window")
        else:
            window = self._window or SHARED.active.get("error_window")
        if window is not None:
            window.add()
        handling = _section(context, "performance").get("error_handling_ms")
        if isinstance(handling, int | float):
            recorder.distribution(
                "error_handling.duration",
                float(handling),
                _MS,
                {"error_type": error_type, "severity": severity},
            )

    def record_command_metrics(self, command_context: Mapping[str, Any]) -> None:
        """Record one command run: ``commands.duration`` with its status and tier.

        ``command_context`` holds ``name``, ``type``, ``cog_name``, ``status`` and
        ``response_time`` (milliseconds); without a ``response_time`` nothing is recorded.
        """
        duration = command_context.get("response_time")
        self.record_command(
            str(command_context.get("name") or "unknown"),
            str(command_context.get("type") or "unknown"),
            str(command_context.get("cog_name") or "none"),
            str(command_context.get("status") or "ok"),
            float(duration) if isinstance(duration, int | float) else None,
        )

    def record_command(
        self,
        name: str,
        command_type: str,
        cog_name: str,
        status: str,
        duration_ms: float | None,
    ) -> None:
        """:meth:`record_command_metrics` with its fields as arguments (the cog's per-run call).

        Args:
            name: Qualified command name.
            command_type: The ``command.type`` tag (docs/events.md).
            cog_name: The cog's name, ``"none"`` outside cogs.
            status: The run's transaction status.
            duration_ms: The run's duration; ``None`` records nothing (a distribution
                needs its value).
        """
        recorder = _recorder(self._recorder)
        if recorder is None or duration_ms is None:
            return
        # One item per run says it all: count() of it is the number of runs (by status),
        # its percentiles the durations, its performance_tier the tier. Names, types and
        # statuses only: marked so the scrubber skips it.
        recorder.distribution(
            "commands.duration",
            duration_ms,
            _MS,
            {
                "command_name": name,
                "command_type": command_type,
                "cog_name": cog_name,
                "status": status,
                "performance_tier": performance_tier(duration_ms),
                STRUCTURAL: "yes",
            },
        )

    def error_rate(self, last_seconds: float = 60.0) -> float:
        """Errors per minute over the last ``last_seconds``."""
        window = self._window or SHARED.active.get("error_window")
        return float(window.rate_per_minute(last_seconds)) if window is not None else 0.0


class BusinessMetricsReporter:
    """Activity, database and external-API metrics (``BusinessMetricsReporter``).

    Args:
        recorder: Where to record; the loaded cog's recorder when not given.
    """

    def __init__(self, recorder: MetricsRecorder | None = None) -> None:
        """Bind to a recorder, or to whatever cog is loaded at recording time."""
        self._recorder = recorder

    def record_user_activity(
        self, activity_type: str, user_id: int | None, guild_id: int | str | None = None
    ) -> None:
        """Count one activity (``user_activity``) by type and guild.

        ``user_id`` is taken for the documented signature and never becomes an attribute: a
        per-user series would be unbounded and personal.
        """
        recorder = _recorder(self._recorder)
        if recorder is None:
            return
        del user_id
        recorder.count(
            "user_activity",
            1,
            {
                "activity_type": activity_type,
                "guild_id": str(guild_id) if guild_id is not None else "dm",
            },
        )

    def record_database_operation(self, operation: str, table: str, duration: float) -> None:
        """Count one database operation and record its duration (milliseconds)."""
        recorder = _recorder(self._recorder)
        if recorder is None:
            return
        attributes = {"operation": operation, "table": table}
        recorder.count("database.operations", 1, attributes)
        recorder.distribution("database.duration", duration, _MS, attributes)

    def record_external_api_call(
        self, service: str, endpoint: str, status_code: int | None, duration: float
    ) -> None:
        """Count one call to another service and record its duration (milliseconds)."""
        recorder = _recorder(self._recorder)
        if recorder is None:
            return
        success = status_code is not None and _HTTP_OK_MIN <= status_code < _HTTP_OK_MAX
        recorder.count(
            "external_api.calls",
            1,
            {
                "service": service,
                "endpoint": endpoint,
                "status_code": str(status_code) if status_code is not None else "none",
                "success": "true" if success else "false",
            },
        )
        recorder.distribution(
            "external_api.duration", duration, _MS, {"service": service, "endpoint": endpoint}
        )


def record_user_activity(
    activity_type: str, user_id: int | None, guild_id: int | None = None
) -> None:
    """Count one user activity into the loaded cog's metrics (no-op when none is loaded)."""
    BusinessMetricsReporter().record_user_activity(activity_type, user_id, guild_id)
