"""Fingerprints that group the same cause together and keep different causes apart.

``[error type, normalised message, command name, cog name, location]``, empty parts
dropped. Normalisation removes what differs between occurrences of one cause (ids,
users, numbers, URLs, e-mails, hex) but keeps a Discord error code, which *is* the cause.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_IGNORED_MODULES",
    "ErrorFingerprintGenerator",
    "error_location",
    "normalize_message",
    "safe_str",
]

#: Longest normalised message kept in a fingerprint; past this the rest rarely tells
#: causes apart and would only split groups on noise.
MAX_MESSAGE_CHARS = 200

#: Frames from these packages are not "where the error happened" for the bot owner: the
#: event loop, and the cog's own instrumentation (not its demo or testing helpers, which
#: are application code of their own).
DEFAULT_IGNORED_MODULES: tuple[str, ...] = (
    "asyncio",
    "concurrent.futures",
    "tux_sentry_cog.adapter",
    "tux_sentry_cog.cog",
    "tux_sentry_cog.core",
)

_ERROR_CODE = re.compile(r"(?i)(error code:?\s*)(\d+)")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[a-z][a-z0-9+.-]*://[^\s<>\"']+", re.IGNORECASE), "<URL>"),
    (
        re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE),
        "<EMAIL>",
    ),
    (
        re.compile(
            r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE
        ),
        "<HEX>",
    ),
    (re.compile(r"<(?:@[!&]?|#|a?:\w+:)\d{15,21}>"), "<ID>"),  # mentions and custom emoji
    (re.compile(r"\b\d{15,21}\b"), "<ID>"),  # snowflakes
    (re.compile(r"[^\s#@:\"'`<>()\[\]]{1,32}#\d{4}\b"), "<USER>"),
    # Long hex (tokens, hashes, ids); must hold a digit and a letter so words survive.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE), "<HEX>"),
    # Numbers, with units glued on ("5s") but not inside identifiers ("sha256").
    (re.compile(r"(?<![A-Za-z_<\d])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<N>"),
)
# Error codes are parked as letters outside the hex range, which no rule touches.
_DIGITS_TO_LETTERS = str.maketrans("0123456789", "ghijklmnop")
_LETTERS_TO_DIGITS = str.maketrans("ghijklmnop", "0123456789")
_CODE_RESTORE = re.compile(r"\x00([g-p]+)\x00")
_SPACES = re.compile(r"\s+")


def safe_str(value: object, limit: int = 8192) -> str:
    """``str(value)``, cut to ``limit`` characters, never raising.

    Exceptions may define ``__str__`` that raises or returns garbage; an error report
    must still go out.
    """
    try:
        text = str(value)
    except Exception:
        try:
            text = f"<unprintable {type(value).__name__}>"
        except Exception:
            text = "<unprintable>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def normalize_message(message: str) -> str:
    """Replace what varies between occurrences of one cause with placeholders.

    Snowflakes become ``<ID>``, ``name#1234`` ``<USER>``, e-mails ``<EMAIL>``, URLs
    ``<URL>``, UUIDs and long hex ``<HEX>``, other numbers ``<N>``. A Discord error code
    (``error code: 50013``) is kept.
    """
    return _normalize(message[: MAX_MESSAGE_CHARS * 8])


@functools.lru_cache(maxsize=256)
def _normalize(text: str) -> str:
    # Cached: eight substitutions per error, and an error storm repeats one message (the
    # input is cut first, so the cache holds at most 256 x 1,600 characters).
    # NUL is the parking mark of error codes below; it never means anything in a message.
    text = text.replace("\x00", "")
    # Park Discord error codes out of reach of the number rule, then put them back.
    text = _ERROR_CODE.sub(
        lambda m: f"{m.group(1)}\x00{m.group(2).translate(_DIGITS_TO_LETTERS)}\x00", text
    )
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    text = _CODE_RESTORE.sub(lambda m: m.group(1).translate(_LETTERS_TO_DIGITS), text)
    text = _SPACES.sub(" ", text).strip()
    return text[:MAX_MESSAGE_CHARS]


def error_location(
    error: BaseException, ignored_modules: tuple[str, ...] = DEFAULT_IGNORED_MODULES
) -> str:
    """Return ``module:function`` of the innermost frame outside ``ignored_modules``.

    No line numbers: an edit above the failing line must not split the group.
    """
    tb = error.__traceback__
    if tb is None:
        return ""
    location = ""
    try:
        for frame, _ in traceback.walk_tb(tb):
            module = str(frame.f_globals.get("__name__", ""))
            if any(module == m or module.startswith(f"{m}.") for m in ignored_modules):
                continue
            location = f"{module}:{frame.f_code.co_name}"
    except Exception:
        return location
    return location


def _part(context: Mapping[str, Any], group: str, key: str) -> str:
    section = context.get(group)
    if isinstance(section, Mapping):
        value = section.get(key)
        if isinstance(value, str):
            return value
    return ""


class ErrorFingerprintGenerator:
    """Generates the ``event.fingerprint`` of docs/events.md.

    Args:
        ignored_modules: Module prefixes skipped when looking for the error's location
            (the adapter adds ``discord``).
    """

    __slots__ = ("_ignored",)

    def __init__(self, ignored_modules: tuple[str, ...] = DEFAULT_IGNORED_MODULES) -> None:
        """Keep the module prefixes that are never the error's location."""
        self._ignored = ignored_modules

    def generate_fingerprint(
        self, error: BaseException, context: Mapping[str, Any], *, message: str | None = None
    ) -> list[str]:
        """Return the fingerprint of ``error`` raised in the command of ``context``.

        ``context`` is shaped like the event contexts: ``context["command"]["name"]``
        and ``context["command"]["cog_name"]`` are read if present. ``message``, when
        given, is normalised instead of ``str(error)`` (the cog passes it scrubbed).
        """
        parts = [
            type(error).__name__,
            normalize_message(safe_str(error) if message is None else message),
            _part(context, "command", "name"),
            _part(context, "command", "cog_name"),
            error_location(error, self._ignored),
        ]
        return [part for part in parts if part]
