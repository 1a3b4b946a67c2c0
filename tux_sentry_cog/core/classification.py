"""Error classification: a category and a severity for every error.

The classifier is table-driven so the core stays free of discord: the adapter passes the
discord.py exception types and a function that reads the HTTP status and Discord error
code off an exception. Rules are tried in order; the first ``isinstance`` match wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "TRANSACTION_STATUS",
    "USER_CATEGORIES",
    "Classification",
    "ErrorCategory",
    "ErrorClassifier",
    "HttpDetails",
    "Severity",
]


class ErrorCategory(StrEnum):
    """The error categories (the ``error.category`` tag)."""

    USER_INPUT = "user_input"
    PERMISSION = "permission"
    COOLDOWN = "cooldown"
    NOT_FOUND = "not_found"
    DISCORD_API = "discord_api"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class Severity(StrEnum):
    """Severity, spelled as Sentry's event levels."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "fatal"

    @property
    def label(self) -> str:
        """The ``error.severity`` tag value (``critical`` reads better than ``fatal``)."""
        return "critical" if self is Severity.CRITICAL else self.value


#: Categories caused by the user rather than the bot: counted and kept as breadcrumbs,
#: not sent as events unless the owner asks for them.
USER_CATEGORIES = frozenset(
    {
        ErrorCategory.USER_INPUT,
        ErrorCategory.PERMISSION,
        ErrorCategory.COOLDOWN,
        ErrorCategory.NOT_FOUND,
    }
)

_DEFAULT_SEVERITY: dict[ErrorCategory, Severity] = {
    ErrorCategory.USER_INPUT: Severity.INFO,
    ErrorCategory.PERMISSION: Severity.WARNING,
    ErrorCategory.COOLDOWN: Severity.INFO,
    ErrorCategory.NOT_FOUND: Severity.INFO,
    ErrorCategory.DISCORD_API: Severity.WARNING,
    ErrorCategory.TIMEOUT: Severity.ERROR,
    ErrorCategory.INTERNAL: Severity.ERROR,
}

_SERVER_ERROR = 500

#: Reads ``(http_status, api_error_code)`` off an API exception, or ``None``.
HttpDetails = Callable[[BaseException], tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class Classification:
    """What kind of error this is and how bad.

    Attributes:
        category: The error category.
        severity: The default severity for the category and error.
        http_status: HTTP status of an API error, if any.
        api_code: The API's own error code (Discord's 50013, 10062, ...), if any.
    """

    category: ErrorCategory
    severity: Severity
    http_status: int | None = None
    api_code: int | None = None

    @property
    def user_caused(self) -> bool:
        """True for errors the user caused (bad input, checks, cooldowns, unknown names)."""
        return self.category in USER_CATEGORIES


class ErrorClassifier:
    """Classifies exceptions by ordered ``(type, category)`` rules.

    Args:
        rules: ``(exception type, category)`` pairs, first match wins. Built-in rules
            for timeouts follow them.
        http_details: Reads HTTP status and API code off an exception of the
            ``discord_api`` category.
    """

    __slots__ = ("_http_details", "_rules")

    def __init__(
        self,
        rules: Sequence[tuple[type[BaseException], ErrorCategory]] = (),
        http_details: HttpDetails | None = None,
    ) -> None:
        """Keep the rules; built-in timeout rules go last."""
        self._rules: tuple[tuple[type[BaseException], ErrorCategory], ...] = (
            *rules,
            (TimeoutError, ErrorCategory.TIMEOUT),
        )
        self._http_details = http_details

    def classify(self, error: BaseException) -> Classification:
        """Return the category and severity of ``error``."""
        category = ErrorCategory.INTERNAL
        for exc_type, rule_category in self._rules:
            if isinstance(error, exc_type):
                category = rule_category
                break
        severity = _DEFAULT_SEVERITY[category]
        if category is ErrorCategory.INTERNAL and isinstance(error, MemoryError | SystemError):
            return Classification(category, Severity.CRITICAL)
        if category is ErrorCategory.DISCORD_API and self._http_details is not None:
            details = self._http_details(error)
            if details is not None:
                status, code = details
                if status >= _SERVER_ERROR:
                    severity = Severity.ERROR
                return Classification(category, severity, status, code or None)
        return Classification(category, severity)


#: Transaction status of a run that ended in an error of each category (docs/events.md).
TRANSACTION_STATUS: dict[ErrorCategory, str] = {
    ErrorCategory.USER_INPUT: "invalid_argument",
    ErrorCategory.PERMISSION: "permission_denied",
    ErrorCategory.COOLDOWN: "resource_exhausted",
    ErrorCategory.NOT_FOUND: "not_found",
    ErrorCategory.DISCORD_API: "internal_error",
    ErrorCategory.TIMEOUT: "deadline_exceeded",
    ErrorCategory.INTERNAL: "internal_error",
}
