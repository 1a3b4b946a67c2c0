"""Sentry observability for discord.py bots: ``await bot.load_extension("tux_sentry_cog")``."""

from tux_sentry_cog._version import __version__
from tux_sentry_cog.adapter.context import SentryContextCollector
from tux_sentry_cog.adapter.transactions import EnhancedTransactionManager
from tux_sentry_cog.cog import SentryCog, setup
from tux_sentry_cog.config import ConfigError, SentryCogConfig
from tux_sentry_cog.core.classification import ErrorCategory, ErrorClassifier, Severity
from tux_sentry_cog.core.fingerprint import ErrorFingerprintGenerator
from tux_sentry_cog.core.optout import RunDescription
from tux_sentry_cog.core.performance import PerformanceMonitor
from tux_sentry_cog.core.related import RelatedErrorDetector
from tux_sentry_cog.core.reporters import (
    BusinessMetricsReporter,
    ErrorMetricsReporter,
    record_user_activity,
)
from tux_sentry_cog.core.runs import get_correlation_id
from tux_sentry_cog.core.tracing import (
    DatabaseTransactionTracker,
    track_database_operation,
    track_external_api_call,
)
from tux_sentry_cog.integration import DiscordIntegration

__all__ = [
    "BusinessMetricsReporter",
    "ConfigError",
    "DatabaseTransactionTracker",
    "DiscordIntegration",
    "EnhancedTransactionManager",
    "ErrorCategory",
    "ErrorClassifier",
    "ErrorFingerprintGenerator",
    "ErrorMetricsReporter",
    "PerformanceMonitor",
    "RelatedErrorDetector",
    "RunDescription",
    "SentryCog",
    "SentryCogConfig",
    "SentryContextCollector",
    "Severity",
    "__version__",
    "get_correlation_id",
    "record_user_activity",
    "setup",
    "track_database_operation",
    "track_external_api_call",
]
