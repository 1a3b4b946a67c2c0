"""discord.py's exception types as the core's classification rules, and unwrapping."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from tux_sentry_cog.core.classification import ErrorCategory, ErrorClassifier

__all__ = ["DISCORD_RULES", "discord_http_details", "make_classifier", "unwrap_error"]

#: Order matters: the first ``isinstance`` match wins, so subclasses come before the
#: classes they derive from (app-command cooldowns are check failures, for example).
DISCORD_RULES: tuple[tuple[type[BaseException], ErrorCategory], ...] = (
    (commands.CommandOnCooldown, ErrorCategory.COOLDOWN),
    (commands.MaxConcurrencyReached, ErrorCategory.COOLDOWN),
    (app_commands.CommandOnCooldown, ErrorCategory.COOLDOWN),
    (commands.CommandNotFound, ErrorCategory.NOT_FOUND),
    (app_commands.CommandNotFound, ErrorCategory.NOT_FOUND),
    (commands.UserInputError, ErrorCategory.USER_INPUT),
    (app_commands.TransformerError, ErrorCategory.USER_INPUT),
    (commands.CheckFailure, ErrorCategory.PERMISSION),
    (commands.DisabledCommand, ErrorCategory.PERMISSION),
    (app_commands.CheckFailure, ErrorCategory.PERMISSION),
    (discord.HTTPException, ErrorCategory.DISCORD_API),
)

# Wrappers discord.py puts around the error the command really raised.
_WRAPPERS = (
    commands.CommandInvokeError,
    commands.HybridCommandError,
    app_commands.CommandInvokeError,
)


def unwrap_error(error: BaseException) -> BaseException:
    """Return the exception the bot's code raised, without discord.py's wrappers."""
    for _ in range(4):  # a hybrid error wraps an app-command error wrapping the original
        if not isinstance(error, _WRAPPERS):
            break
        inner = getattr(error, "original", None)
        if not isinstance(inner, BaseException):
            break
        error = inner
    return error


def discord_http_details(error: BaseException) -> tuple[int, int] | None:
    """HTTP status and Discord error code of an API error."""
    if isinstance(error, discord.HTTPException):
        return int(error.status), int(error.code)
    return None


def make_classifier() -> ErrorClassifier:
    """The classifier with discord.py's rules."""
    return ErrorClassifier(DISCORD_RULES, discord_http_details)
