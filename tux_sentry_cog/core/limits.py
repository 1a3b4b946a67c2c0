"""Sentry's ingestion limits, applied before sending so nothing of ours gets trimmed.

Sentry cuts tag keys at 32 characters, tag values at 200 and context strings at 8,192
(NOTES.md). Cutting here, at a known place and with a visible ellipsis, beats a silent
cut at ingestion, and keeps the payload the owner sees equal to the one in Sentry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_CONTEXT_DEPTH",
    "MAX_CONTEXT_ITEMS",
    "MAX_CONTEXT_STRING",
    "MAX_EVENT_STRING",
    "MAX_NAME",
    "MAX_TAG_KEY",
    "MAX_TAG_VALUE",
    "clamp_context",
    "clamp_tag_key",
    "clamp_tag_value",
    "clamp_tags",
    "cut",
]

MAX_TAG_KEY = 32
MAX_TAG_VALUE = 200
#: Below Sentry's 8,192 so the serialiser's own quoting can never push it over.
MAX_CONTEXT_STRING = 4096
#: Any string anywhere in an event: Sentry's longest string limit is 8,192 characters.
MAX_EVENT_STRING = 8000
#: Transaction names and culprits: Sentry keeps 200 characters.
MAX_NAME = 200
#: Lists and mappings in a context keep at most this many items.
MAX_CONTEXT_ITEMS = 50
MAX_CONTEXT_DEPTH = 4


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut shown by an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clamp_tag_value(value: object) -> str:
    """Return ``value`` as a tag value Sentry accepts: one line, at most 200 characters."""
    text = value if isinstance(value, str) else str(value)
    if "\n" in text or "\r" in text:
        # Sentry rejects tag values with newlines.
        text = " ".join(text.split())
    return cut(text, MAX_TAG_VALUE) if text else "none"


_TAG_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:-]")


def clamp_tag_key(key: object) -> str:
    """A tag key Sentry accepts: ``[A-Za-z0-9_.:-]``, at most 32 characters.

    No ellipsis: it is not an allowed character, and Sentry drops a tag whose key has one.
    A cut key ends in a short hash of the whole key, so two long keys with one prefix do
    not overwrite each other (nor a key that was exactly 32 characters).
    """
    text = _TAG_KEY_BAD.sub("_", str(key)) or "_"
    if len(text) <= MAX_TAG_KEY:
        return text
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:4]
    return f"{text[: MAX_TAG_KEY - 5]}_{digest}"


def clamp_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Return ``tags`` with keys and values inside Sentry's limits."""
    return {clamp_tag_key(key): clamp_tag_value(value) for key, value in tags.items()}


def clamp_context(value: Any, depth: int = 0) -> Any:
    """Return a copy of ``value`` whose strings, lists and depth stay inside the limits."""
    if isinstance(value, str):
        return cut(value, MAX_CONTEXT_STRING)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_CONTEXT_DEPTH:
        return cut(str(value), MAX_CONTEXT_STRING)
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_CONTEXT_ITEMS]
        return {cut(str(k), MAX_TAG_VALUE): clamp_context(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [clamp_context(v, depth + 1) for v in list(value)[:MAX_CONTEXT_ITEMS]]
    return cut(str(value), MAX_CONTEXT_STRING)
