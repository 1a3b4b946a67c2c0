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
# The e-mail pattern is not literal-led, so the engine tries it at every position of the
# text (~300 µs on a 6 KB error event). Every address has an "@" with a local-part
# character before it and a domain character after it; that is checked at each "@" only,
# and source lines full of decorators ("    @functools.wraps") never pass it.
_EMAIL_AT = re.compile(r"[\w.%+-]@[\w-]")

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
_SDK_CONTEXTS = frozenset({"runtime", "os", "device"})


# Inside the event, only trace identifiers and the sampling context are structure; a
# nested "type" or "level" key may well hold the bot's text.
_NESTED_SKIP_KEYS = frozenset({"trace_id", "span_id", "parent_span_id",
                               "dynamic_sampling_context"})

# Named once: ``str | dict`` in an isinstance call builds a union object per call.
_CONTAINERS = (dict, list, tuple)
_WALKED = (str, dict, list, tuple)


def _may_hold_email(text: str) -> bool:
    """False only when ``text`` certainly holds no match of the e-mail pattern."""
    at = text.find("@", 1)  # an "@" at 0 has no local part before it
    while at != -1:
        if _EMAIL_AT.match(text, at - 1):
            return True
        at = text.find("@", at + 1)
    return False


def _collect(node: Any, texts: list[str]) -> None:
    """Append every string under ``node`` that :meth:`Scrubber._walk` would rewrite.

    The same containers, the same skipped keys (dict keys themselves are never
    rewritten), so a check over ``texts`` sees exactly what the walk would scrub.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NESTED_SKIP_KEYS:
                continue
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, _CONTAINERS):
                _collect(value, texts)
        return
    for value in node:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, _CONTAINERS):
            _collect(value, texts)


def _searched_texts(event: dict[str, Any]) -> list[str]:
    """The strings of ``event`` that can carry the bot's data.

    Not the SDK's own parts, nor its runtime contexts, nor the trace's sampling context
    (which holds the DSN public key by protocol).
    """
    texts: list[str] = []
    for key, value in event.items():
        if key in _SDK_PARTS:
            continue
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, _CONTAINERS):
            _collect(value, texts)
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        # The trace context is searched too, but its sampling context is a skipped key.
        _collect({k: v for k, v in contexts.items() if k not in _SDK_CONTEXTS}, texts)
    return texts


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

        The strings the walk would rewrite are gathered and joined once, and searched at
        C speed, instead of being scrubbed one by one. Joining cannot hide a match: each
        string is in the text whole, and the separator is in none of the patterns'
        character classes, so their look-behinds see it as a string start. A match
        across two strings only sends the event down the walk.
        """
        texts = _searched_texts(event)
        # A string longer than the limit is cut by the walk.
        if texts and max(map(len, texts)) > MAX_EVENT_STRING:
            return False
        text = "\n".join(texts)
        for needle in needles:
            if needle in text:
                return False
        # The token hint alone decides (the full pattern would only confirm it).
        return _TOKEN_HINT.search(text) is None and not self._has_shape(text)

    def scrub_text(self, text: str, needles: tuple[str, ...] | None = None) -> str:
        """Return ``text`` with every secret, token, DSN key and e-mail replaced."""
        for needle in self._needles() if needles is None else needles:
            if needle in text:
                text = text.replace(needle, FILTERED)
        return self._sub_shapes(text)

    def scrub_texts(self, texts: Iterable[str]) -> list[str]:
        """:meth:`scrub_text` of each of ``texts``, the secrets looked up once."""
        needles = self._needles()
        return [self.scrub_text(text, needles) for text in texts]

    def _has_shape(self, text: str) -> bool:
        """True when ``text`` may hold a DSN key or (PII off) an e-mail address."""
        if "@" in text:
            if "://" in text and _DSN_KEY.search(text):
                return True
            # With PII on, e-mail addresses are the owner's to send; keys never are.
            if not self._send_pii and _may_hold_email(text):
                return True
        return False

    def _sub_shapes(self, text: str) -> str:
        if "@" in text:
            if "://" in text:
                text = _DSN_KEY.sub(rf"\1{FILTERED}", text)
            if not self._send_pii and _may_hold_email(text):
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
                if key not in _SKIP_KEYS and isinstance(value, _WALKED):
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
                if isinstance(value, _WALKED):
                    node[key] = self._walk(value, needles)
            return node
        if isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, _WALKED):
                    node[index] = self._walk(value, needles)
            return node
        if isinstance(node, tuple):
            return [self._walk(value, needles) for value in node]
        return node
