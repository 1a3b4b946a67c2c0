"""Error classification: the discord-free core, then discord.py's rules (docs/events.md)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tux_sentry_cog.adapter.errors import (
    DISCORD_RULES,
    discord_http_details,
    make_classifier,
    unwrap_error,
)
from tux_sentry_cog.core.classification import (
    TRANSACTION_STATUS,
    USER_CATEGORIES,
    Classification,
    ErrorCategory,
    ErrorClassifier,
    Severity,
)

# --- the core, with plain Python exception classes as rules -------------------------------


class BadInputError(Exception):
    pass


class StrictBadInputError(BadInputError):
    pass


class DeniedError(Exception):
    pass


class ApiError(Exception):
    def __init__(self, status: int, code: int) -> None:
        super().__init__(f"{status} (error code: {code})")
        self.status = status
        self.code = code


def _api_details(error: BaseException) -> tuple[int, int] | None:
    if isinstance(error, ApiError):
        return error.status, error.code
    return None


def _core_classifier() -> ErrorClassifier:
    return ErrorClassifier(
        [
            (DeniedError, ErrorCategory.PERMISSION),
            (BadInputError, ErrorCategory.USER_INPUT),
            (ApiError, ErrorCategory.DISCORD_API),
        ],
        _api_details,
    )


def test_no_rules_everything_is_internal_error() -> None:
    classification = ErrorClassifier().classify(ValueError("x"))
    assert classification == Classification(ErrorCategory.INTERNAL, Severity.ERROR)
    assert classification.http_status is None
    assert classification.api_code is None
    assert classification.user_caused is False


def test_rule_matches_subclasses() -> None:
    classification = _core_classifier().classify(StrictBadInputError())
    assert classification.category is ErrorCategory.USER_INPUT
    assert classification.severity is Severity.INFO
    assert classification.user_caused is True


def test_first_matching_rule_wins() -> None:
    class BothError(DeniedError, BadInputError):
        pass

    assert _core_classifier().classify(BothError()).category is ErrorCategory.PERMISSION
    reordered = ErrorClassifier(
        [(BadInputError, ErrorCategory.USER_INPUT), (DeniedError, ErrorCategory.PERMISSION)]
    )
    assert reordered.classify(BothError()).category is ErrorCategory.USER_INPUT


def test_builtin_timeout_rule_comes_after_the_given_rules() -> None:
    assert ErrorClassifier().classify(TimeoutError()).category is ErrorCategory.TIMEOUT
    overriding = ErrorClassifier([(TimeoutError, ErrorCategory.DISCORD_API)])
    assert overriding.classify(TimeoutError()).category is ErrorCategory.DISCORD_API


@pytest.mark.parametrize(
    ("category", "severity"),
    [
        (ErrorCategory.USER_INPUT, Severity.INFO),
        (ErrorCategory.PERMISSION, Severity.WARNING),
        (ErrorCategory.COOLDOWN, Severity.INFO),
        (ErrorCategory.NOT_FOUND, Severity.INFO),
        (ErrorCategory.DISCORD_API, Severity.WARNING),
        (ErrorCategory.TIMEOUT, Severity.ERROR),
        (ErrorCategory.INTERNAL, Severity.ERROR),
    ],
)
def test_default_severity_per_category(category: ErrorCategory, severity: Severity) -> None:
    class MarkerError(Exception):
        pass

    rules = [] if category is ErrorCategory.INTERNAL else [(MarkerError, category)]
    classification = ErrorClassifier(rules).classify(MarkerError())
    assert (classification.category, classification.severity) == (category, severity)


@pytest.mark.parametrize("error", [MemoryError(), SystemError("bad internal call")])
def test_memory_and_system_errors_are_critical(error: BaseException) -> None:
    classification = ErrorClassifier().classify(error)
    assert classification.category is ErrorCategory.INTERNAL
    assert classification.severity is Severity.CRITICAL
    assert classification.severity.label == "critical"
    assert classification.severity.value == "fatal"  # Sentry's level name


def test_severity_labels() -> None:
    assert [s.label for s in Severity] == ["info", "warning", "error", "critical"]
    assert [s.value for s in Severity] == ["info", "warning", "error", "fatal"]


def test_api_error_keeps_status_and_code() -> None:
    classification = _core_classifier().classify(ApiError(403, 50013))
    assert classification == Classification(ErrorCategory.DISCORD_API, Severity.WARNING, 403, 50013)


@pytest.mark.parametrize("status", [500, 502, 503, 599])
def test_api_server_error_is_error_severity(status: int) -> None:
    classification = _core_classifier().classify(ApiError(status, 0))
    assert classification.severity is Severity.ERROR
    assert classification.http_status == status
    assert classification.api_code is None  # code 0 means "no API code"


@pytest.mark.parametrize("status", [400, 403, 404, 429, 499])
def test_api_client_error_is_warning(status: int) -> None:
    assert _core_classifier().classify(ApiError(status, 10062)).severity is Severity.WARNING


def test_api_category_without_details_reader_keeps_defaults() -> None:
    classifier = ErrorClassifier([(ApiError, ErrorCategory.DISCORD_API)])
    assert classifier.classify(ApiError(503, 1)) == Classification(
        ErrorCategory.DISCORD_API, Severity.WARNING
    )


def test_user_categories() -> None:
    assert frozenset(
        {
            ErrorCategory.USER_INPUT,
            ErrorCategory.PERMISSION,
            ErrorCategory.COOLDOWN,
            ErrorCategory.NOT_FOUND,
        }
    ) == USER_CATEGORIES


def test_category_values_are_the_spec_tag_values() -> None:
    assert [c.value for c in ErrorCategory] == [
        "user_input",
        "permission",
        "cooldown",
        "not_found",
        "discord_api",
        "timeout",
        "internal",
    ]


def test_transaction_status_covers_every_category() -> None:
    assert set(TRANSACTION_STATUS) == set(ErrorCategory)
    spec_statuses = {
        "ok",
        "invalid_argument",
        "permission_denied",
        "resource_exhausted",
        "not_found",
        "deadline_exceeded",
        "internal_error",
    }
    assert set(TRANSACTION_STATUS.values()) <= spec_statuses
    assert TRANSACTION_STATUS[ErrorCategory.USER_INPUT] == "invalid_argument"
    assert TRANSACTION_STATUS[ErrorCategory.PERMISSION] == "permission_denied"
    assert TRANSACTION_STATUS[ErrorCategory.COOLDOWN] == "resource_exhausted"
    assert TRANSACTION_STATUS[ErrorCategory.NOT_FOUND] == "not_found"
    assert TRANSACTION_STATUS[ErrorCategory.TIMEOUT] == "deadline_exceeded"
    assert TRANSACTION_STATUS[ErrorCategory.INTERNAL] == "internal_error"


# --- discord.py's exceptions --------------------------------------------------------------


@dataclass
class FakeResponse:
    """What discord.HTTPException reads off an aiohttp response."""

    status: int
    reason: str


def _http(cls: type[discord.HTTPException], status: int, reason: str, code: int) -> Any:
    return cls(FakeResponse(status, reason), {"code": code, "message": reason})


def _cooldown() -> commands.CommandOnCooldown:
    return commands.CommandOnCooldown(commands.Cooldown(1, 10.0), 4.2, commands.BucketType.user)


CASES = [
    pytest.param(commands.BadArgument("not a number"), ErrorCategory.USER_INPUT, Severity.INFO,
                 id="BadArgument"),
    pytest.param(commands.MissingRequiredArgument(
        commands.Parameter("amount", commands.Parameter.POSITIONAL_OR_KEYWORD)),
        ErrorCategory.USER_INPUT, Severity.INFO, id="MissingRequiredArgument"),
    pytest.param(commands.MissingPermissions(["manage_messages", "ban_members"]),
                 ErrorCategory.PERMISSION, Severity.WARNING, id="MissingPermissions"),
    pytest.param(commands.NotOwner(), ErrorCategory.PERMISSION, Severity.WARNING,
                 id="NotOwner"),
    pytest.param(commands.CheckFailure(), ErrorCategory.PERMISSION, Severity.WARNING,
                 id="CheckFailure"),
    pytest.param(commands.NoPrivateMessage(), ErrorCategory.PERMISSION, Severity.WARNING,
                 id="NoPrivateMessage"),
    pytest.param(commands.DisabledCommand(), ErrorCategory.PERMISSION, Severity.WARNING,
                 id="DisabledCommand"),
    pytest.param(_cooldown(), ErrorCategory.COOLDOWN, Severity.INFO, id="CommandOnCooldown"),
    pytest.param(commands.MaxConcurrencyReached(1, commands.BucketType.guild),
                 ErrorCategory.COOLDOWN, Severity.INFO, id="MaxConcurrencyReached"),
    pytest.param(commands.CommandNotFound('Command "nope" is not found'),
                 ErrorCategory.NOT_FOUND, Severity.INFO, id="CommandNotFound"),
    pytest.param(app_commands.CommandOnCooldown(app_commands.Cooldown(1, 30.0), 12.5),
                 ErrorCategory.COOLDOWN, Severity.INFO, id="app-CommandOnCooldown"),
    pytest.param(app_commands.MissingPermissions(["manage_guild"]), ErrorCategory.PERMISSION,
                 Severity.WARNING, id="app-MissingPermissions"),
    pytest.param(app_commands.CheckFailure(), ErrorCategory.PERMISSION, Severity.WARNING,
                 id="app-CheckFailure"),
    pytest.param(app_commands.CommandNotFound("nope", []), ErrorCategory.NOT_FOUND,
                 Severity.INFO, id="app-CommandNotFound"),
    pytest.param(asyncio.TimeoutError(),  # noqa: UP041 - the name the docs use
                 ErrorCategory.TIMEOUT, Severity.ERROR, id="asyncio.TimeoutError"),
    pytest.param(TimeoutError("read timed out"), ErrorCategory.TIMEOUT, Severity.ERROR,
                 id="TimeoutError"),
    pytest.param(MemoryError(), ErrorCategory.INTERNAL, Severity.CRITICAL, id="MemoryError"),
    pytest.param(ValueError("bad"), ErrorCategory.INTERNAL, Severity.ERROR, id="ValueError"),
    pytest.param(commands.CommandError("generic"), ErrorCategory.INTERNAL, Severity.ERROR,
                 id="CommandError"),
]


@pytest.mark.parametrize(("error", "category", "severity"), CASES)
def test_discord_classification(
    error: BaseException, category: ErrorCategory, severity: Severity
) -> None:
    classification = make_classifier().classify(error)
    assert classification.category is category
    assert classification.severity is severity
    assert classification.user_caused is (category in USER_CATEGORIES)


def test_app_command_cooldown_is_a_check_failure_but_classified_as_cooldown() -> None:
    error = app_commands.CommandOnCooldown(app_commands.Cooldown(1, 30.0), 12.5)
    assert isinstance(error, app_commands.CheckFailure)
    assert make_classifier().classify(error).category is ErrorCategory.COOLDOWN


def test_memory_error_label_is_critical() -> None:
    assert make_classifier().classify(MemoryError()).severity.label == "critical"


def test_forbidden_50013() -> None:
    error = _http(discord.Forbidden, 403, "Forbidden", 50013)
    assert str(error) == "403 Forbidden (error code: 50013): Forbidden"
    assert make_classifier().classify(error) == Classification(
        ErrorCategory.DISCORD_API, Severity.WARNING, 403, 50013
    )


def test_http_exception_403_50013() -> None:
    error = _http(discord.HTTPException, 403, "Forbidden", 50013)
    classification = make_classifier().classify(error)
    assert classification.category is ErrorCategory.DISCORD_API
    assert classification.severity is Severity.WARNING
    assert classification.api_code == 50013
    assert classification.http_status == 403
    assert classification.user_caused is False


def test_not_found_10062_keeps_code() -> None:
    error = _http(discord.NotFound, 404, "Not Found", 10062)
    classification = make_classifier().classify(error)
    assert (classification.category, classification.api_code) == (
        ErrorCategory.DISCORD_API,
        10062,
    )


@pytest.mark.parametrize("cls", [discord.HTTPException, discord.DiscordServerError])
def test_http_503_is_error_severity(cls: type[discord.HTTPException]) -> None:
    error = _http(cls, 503, "Service Unavailable", 0)
    classification = make_classifier().classify(error)
    assert classification.category is ErrorCategory.DISCORD_API
    assert classification.severity is Severity.ERROR
    assert classification.http_status == 503
    assert classification.api_code is None


def test_http_exception_with_text_message() -> None:
    error = discord.HTTPException(FakeResponse(502, "Bad Gateway"), "upstream down")
    assert discord_http_details(error) == (502, 0)
    assert make_classifier().classify(error).severity is Severity.ERROR


def test_http_details_of_other_errors() -> None:
    assert discord_http_details(ValueError()) is None


def test_discord_rules_put_subclasses_first() -> None:
    # Every rule is reachable: no earlier rule's type is a base of a later rule's type.
    for index, (later, _) in enumerate(DISCORD_RULES):
        for earlier, _ in DISCORD_RULES[:index]:
            assert not issubclass(later, earlier), (later, earlier)


# --- unwrapping ---------------------------------------------------------------------------


async def _noop(interaction: discord.Interaction[Any]) -> None:
    return None


def _app_command() -> app_commands.Command[Any, Any, Any]:
    return app_commands.Command(name="boom", description="fails", callback=_noop)


def test_unwrap_prefix_command_invoke_error() -> None:
    original = ValueError("inner")
    assert unwrap_error(commands.CommandInvokeError(original)) is original


def test_unwrap_app_command_invoke_error() -> None:
    original = KeyError("inner")
    wrapped = app_commands.CommandInvokeError(_app_command(), original)
    assert unwrap_error(wrapped) is original


def test_unwrap_hybrid_error_wrapping_app_invoke_error() -> None:
    original = ZeroDivisionError("inner")
    wrapped = commands.HybridCommandError(
        app_commands.CommandInvokeError(_app_command(), original)
    )
    assert unwrap_error(wrapped) is original


def test_unwrap_hybrid_error_wrapping_a_check_failure() -> None:
    original = app_commands.CheckFailure("nope")
    assert unwrap_error(commands.HybridCommandError(original)) is original


def test_unwrap_leaves_other_errors_alone() -> None:
    plain = RuntimeError("x")
    assert unwrap_error(plain) is plain
    not_a_wrapper = commands.BadArgument("bad")
    assert unwrap_error(not_a_wrapper) is not_a_wrapper


def test_unwrapped_error_classified_by_its_own_type() -> None:
    forbidden = _http(discord.Forbidden, 403, "Forbidden", 50013)
    classification = make_classifier().classify(
        unwrap_error(commands.CommandInvokeError(forbidden))
    )
    assert classification.api_code == 50013
    wrapped_timeout = commands.CommandInvokeError(asyncio.TimeoutError())  # noqa: UP041
    assert make_classifier().classify(unwrap_error(wrapped_timeout)).category is (
        ErrorCategory.TIMEOUT
    )
