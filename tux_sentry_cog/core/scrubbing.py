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

import json
import re
from typing import TYPE_CHECKING, Any

from tux_sentry_cog.core.limits import MAX_EVENT_STRING, MAX_NAME, clamp_tags, cut, fit_event
from tux_sentry_cog.core.runs import current_run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["FILTERED", "MIN_SENSITIVE_CHARS", "Scrubber"]

FILTERED = "[Filtered]"

#: Shorter sensitive strings ("1", "ok") are left alone: replacing them everywhere would
#: shred the event while protecting nothing.
MIN_SENSITIVE_CHARS = 3

# Shapes of credentials and addresses. Each costs a scan of the text, and Python's
# engine only scans fast for a pattern that starts with a literal, so every shape gets a
# cheap gate first ("@" in text, a literal-led hint) and the full pattern runs only past
# it: a 2 KB transaction is checked in microseconds instead of half a millisecond.
_TOKEN_HINT = re.compile(r"\.[\w-]{6,7}\.[\w-]{27}")
_TOKEN = re.compile(r"(?<![\w-])[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,}")  # Discord bot token
_DSN_KEY = re.compile(r"(://)[0-9a-f]{32}(?::[0-9a-f]{32})?(?=@)", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")

# Parts of an event that are structure, not content: never rewritten. The trace's
# dynamic sampling context carries the DSN's public key by protocol (Sentry finds the
# trace root's project by it; the same key is in every request's auth header), so it is
# left whole; the key is removed from every other field.
_SKIP_KEYS = frozenset({"event_id", "timestamp", "start_timestamp", "trace_id", "span_id",
                        "parent_span_id", "sdk", "platform", "level", "type", "_meta",
                        "dynamic_sampling_context"})


# Top-level event parts the SDK fills with its own facts; searched only by the walk.
_SDK_PARTS = frozenset({"sdk", "modules", "platform", "timestamp", "start_timestamp",
                        "event_id", "type", "contexts", "debug_meta", "server_name"})
# Contexts the SDK fills with facts about the runtime, never with the bot's data.
_SDK_CONTEXTS = frozenset({"trace", "runtime", "os", "device"})


# Inside the event, only trace identifiers and the sampling context are structure; a
# nested "type" or "level" key may well hold the bot's text.
_NESTED_SKIP_KEYS = frozenset({"trace_id", "span_id", "parent_span_id",
                               "dynamic_sampling_context"})


class Scrubber:
    """Removes secrets and personal data from event payloads, in place.

    Args:
        secrets: Returns the exact strings that must never leave (the bot token, DSN
            keys). Called per event so a token set after load is covered.
        send_pii: With PII on, the run's message content and parameter values stay.
    """

    __slots__ = ("_secrets", "_send_pii")

    def __init__(self, secrets: Callable[[], Iterable[str]], send_pii: bool = False) -> None:
        """Keep the secret source and the PII setting."""
        self._secrets = secrets
        self._send_pii = send_pii

    def _needles(self) -> tuple[str, ...]:
        needles = [s for s in self._secrets() if s]
        if not self._send_pii:
            run = current_run.get()
            if run is not None:
                needles.extend(s for s in run.sensitive if len(s) >= MIN_SENSITIVE_CHARS)
        if len(needles) <= 1:
            return tuple(needles)
        # Longest first, so a secret that contains another is removed whole.
        return tuple(sorted(set(needles), key=len, reverse=True))

    def _clean(self, event: dict[str, Any], needles: tuple[str, ...]) -> bool:
        """True when ``event`` certainly holds nothing to scrub (the common case).

        One JSON dump and a few C-speed searches instead of a walk over every string.
        """
        # Only what can carry the bot's data is searched; the trace's sampling context
        # (which holds the DSN public key by protocol) and the SDK's own parts are not.
        contexts = event.get("contexts")
        searched: dict[str, Any] = {
            key: value for key, value in event.items() if key not in _SDK_PARTS
        }
        if isinstance(contexts, dict):
            trace = contexts.get("trace")
            searched["contexts"] = {
                k: v for k, v in contexts.items() if k not in _SDK_CONTEXTS
            }
            if isinstance(trace, dict):
                searched["trace"] = {
                    k: v for k, v in trace.items() if k != "dynamic_sampling_context"
                }
        try:
            blob = json.dumps(searched, default=str)
        except Exception:
            return False
        for needle in needles:
            # Escaped the way the dump escapes it, so quotes and non-ASCII match too.
            if json.dumps(needle)[1:-1] in blob:
                return False
        # A dump within the string limit cannot hold a string to cut either. The token
        # hint alone decides here: JSON escaping (a smart quote before a token becomes
        # \uXXXX) can defeat the full pattern's look-behind, never the hint.
        return (
            len(blob) <= MAX_EVENT_STRING
            and _TOKEN_HINT.search(blob) is None
            and not self._has_shape(blob)
        )

    def scrub_text(self, text: str, needles: tuple[str, ...] | None = None) -> str:
        """Return ``text`` with every secret, token, DSN key and e-mail replaced."""
        for needle in self._needles() if needles is None else needles:
            if needle in text:
                text = text.replace(needle, FILTERED)
        return self._sub_shapes(text)

    def _has_shape(self, text: str) -> bool:
        if "@" in text:
            if "://" in text and _DSN_KEY.search(text):
                return True
            # With PII on, e-mail addresses are the owner's to send; keys never are.
            if not self._send_pii and _EMAIL.search(text):
                return True
        return _TOKEN_HINT.search(text) is not None and _TOKEN.search(text) is not None

    def _sub_shapes(self, text: str) -> str:
        if "@" in text:
            if "://" in text:
                text = _DSN_KEY.sub(rf"\1{FILTERED}", text)
            if not self._send_pii:
                text = _EMAIL.sub(FILTERED, text)
        if _TOKEN_HINT.search(text):
            text = _TOKEN.sub(FILTERED, text)
        return text

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub ``event`` in place and return it.

        Strings are also cut to Sentry's limits (tags, names, any string), so what
        Sentry stores is what left the process, with no silent trimming at ingestion.
        """
        needles = self._needles()
        if not self._clean(event, needles):
            for key, value in event.items():
                if key not in _SKIP_KEYS and isinstance(value, str | dict | list | tuple):
                    event[key] = self._walk(value, needles)
        tags = event.get("tags")
        if isinstance(tags, dict):
            event["tags"] = clamp_tags(tags)
        for key in ("transaction", "culprit"):
            value = event.get(key)
            if isinstance(value, str):
                event[key] = cut(value, MAX_NAME)
        if event.get("type") != "transaction":
            fit_event(event)
        return event

    def _walk(self, node: Any, needles: tuple[str, ...]) -> Any:
        if isinstance(node, str):
            return cut(self.scrub_text(node, needles), MAX_EVENT_STRING)
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _NESTED_SKIP_KEYS:
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
