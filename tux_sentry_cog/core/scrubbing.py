"""Scrubbing of every event and transaction before it leaves the process.

The SDK's ``EventScrubber`` works by key names and skips ``contexts`` and ``tags``
(NOTES.md). This walks every string of the event instead and removes, by value:

- known secrets (the bot token, the DSN keys), wherever they appear;
- anything shaped like a Discord bot token or a DSN with a key;
- e-mail addresses, unless the owner turned PII on;
- the current run's sensitive strings (message content, parameter values), unless the
  owner turned PII on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tux_sentry_cog.core.limits import MAX_EVENT_STRING, MAX_NAME, clamp_tags, cut
from tux_sentry_cog.core.runs import current_run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["FILTERED", "MIN_SENSITIVE_CHARS", "Scrubber"]

FILTERED = "[Filtered]"

#: Shorter sensitive strings ("1", "ok") are left alone: replacing them everywhere would
#: shred the event while protecting nothing.
MIN_SENSITIVE_CHARS = 3

_KEY_SHAPES = (
    r"[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,}"  # Discord bot token
    r"|(?<=://)[0-9a-f]{32}(?::[0-9a-f]{32})?(?=@)"  # DSN key (and secret)
)
_EMAIL_SHAPE = r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}"
_ALWAYS = re.compile(_KEY_SHAPES, re.IGNORECASE)
_WITHOUT_PII = re.compile(f"{_KEY_SHAPES}|{_EMAIL_SHAPE}", re.IGNORECASE)

# Parts of an event that are structure, not content: never rewritten.
_SKIP_KEYS = frozenset({"event_id", "timestamp", "start_timestamp", "trace_id", "span_id",
                        "parent_span_id", "sdk", "platform", "level", "type", "_meta",
                        "fingerprint"})


class Scrubber:
    """Removes secrets and personal data from event payloads, in place.

    Args:
        secrets: Returns the exact strings that must never leave (the bot token, DSN
            keys). Called per event so a token set after load is covered.
        send_pii: With PII on, the run's message content and parameter values stay.
    """

    __slots__ = ("_secrets", "_send_pii", "_shapes")

    def __init__(self, secrets: Callable[[], Iterable[str]], send_pii: bool = False) -> None:
        """Keep the secret source and the PII setting."""
        self._secrets = secrets
        self._send_pii = send_pii
        # With PII on, e-mail addresses are the owner's to send; tokens and keys never are.
        self._shapes = _ALWAYS if send_pii else _WITHOUT_PII

    def _needles(self) -> tuple[str, ...]:
        needles = [s for s in self._secrets() if s]
        if not self._send_pii:
            run = current_run.get()
            if run is not None:
                needles.extend(s for s in run.sensitive if len(s) >= MIN_SENSITIVE_CHARS)
        # Longest first, so a secret that contains another is removed whole.
        return tuple(sorted(set(needles), key=len, reverse=True))

    def scrub_text(self, text: str, needles: tuple[str, ...] | None = None) -> str:
        """Return ``text`` with every secret, token, DSN key and e-mail replaced."""
        for needle in self._needles() if needles is None else needles:
            if needle in text:
                text = text.replace(needle, FILTERED)
        if self._shapes.search(text):
            text = self._shapes.sub(FILTERED, text)
        return text

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub ``event`` in place and return it.

        Strings are also cut to Sentry's limits (tags, names, any string), so what
        Sentry stores is what left the process, with no silent trimming at ingestion.
        """
        needles = self._needles()
        self._walk(event, needles)
        tags = event.get("tags")
        if isinstance(tags, dict):
            event["tags"] = clamp_tags(tags)
        for key in ("transaction", "culprit"):
            value = event.get(key)
            if isinstance(value, str):
                event[key] = cut(value, MAX_NAME)
        return event

    def _walk(self, node: Any, needles: tuple[str, ...]) -> Any:
        if isinstance(node, str):
            return cut(self.scrub_text(node, needles), MAX_EVENT_STRING)
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _SKIP_KEYS:
                    continue
                if isinstance(value, str | dict | list | tuple):
                    node[key] = self._walk(value, needles)
            return node
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str | dict | list | tuple):
                    node[index] = self._walk(value, needles)
            return node
        if isinstance(node, tuple):
            return [self._walk(value, needles) for value in node]
        return node
