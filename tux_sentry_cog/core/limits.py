"""Sentry's ingestion limits, applied before sending so nothing of ours gets trimmed.

Sentry cuts tag keys at 32 characters, tag values at 200 and context strings at 8,192
(measured with Sentry's own normaliser, sentry-relay). Cutting here, at a known place and
with a visible ellipsis, beats a silent cut at ingestion, and keeps the payload the owner
sees equal to the one in Sentry.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
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
    "fit_bag",
    "fit_event",
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
    if 0 < len(text) <= MAX_TAG_VALUE and "\n" not in text and "\r" not in text:
        return text  # the common case, decided without building anything
    if "\n" in text or "\r" in text:
        # Sentry rejects tag values with newlines.
        text = " ".join(text.split())
    return cut(text, MAX_TAG_VALUE) if text else "none"


_TAG_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:-]")


@functools.lru_cache(maxsize=1024)
def clamp_tag_key(key: object) -> str:
    """A tag key Sentry accepts: ``[A-Za-z0-9_.:-]``, at most 32 characters.

    No ellipsis: it is not an allowed character, and Sentry drops a tag whose key has one.
    A cut key ends in a short hash of the whole key, so two long keys with one prefix do
    not overwrite each other (nor a key that was exactly 32 characters). Cached: tag keys
    are a small fixed set, met on every event.
    """
    text = _TAG_KEY_BAD.sub("_", str(key)) or "_"
    if len(text) <= MAX_TAG_KEY:
        return text
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:4]
    return f"{text[: MAX_TAG_KEY - 5]}_{digest}"


def clamp_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Return ``tags`` with keys and values inside Sentry's limits."""
    # clamp_tag_value's common case inlined: this runs on every event and transaction.
    return {
        clamp_tag_key(key): value
        if type(value) is str
        and 0 < len(value) <= MAX_TAG_VALUE
        and "\n" not in value
        and "\r" not in value
        else clamp_tag_value(value)
        for key, value in tags.items()
    }


_SCALARS = (bool, int, float)
_COLLECTIONS = (list, tuple, set, frozenset)


def _plain(value: Any) -> bool:
    """A value :func:`clamp_context` returns as it is: a short ``str``, a number, ``None``.

    Exact types only (a subclass takes the general path): this runs for every field of
    every context of every error event.
    """
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_CONTEXT_STRING
    return value is None or kind is int or kind is float or kind is bool


def clamp_context(value: Any, depth: int = 0) -> Any:
    """Return a copy of ``value`` whose strings, lists and depth stay inside the limits."""
    if _plain(value) or isinstance(value, _SCALARS):
        return value
    if isinstance(value, str):
        return cut(value, MAX_CONTEXT_STRING)
    if depth >= MAX_CONTEXT_DEPTH:
        return cut(str(value), MAX_CONTEXT_STRING)
    if isinstance(value, Mapping):
        clamped: dict[str, Any] = {}
        pairs = (
            value.items()
            if len(value) <= MAX_CONTEXT_ITEMS
            else itertools.islice(value.items(), MAX_CONTEXT_ITEMS)
        )
        for k, v in pairs:
            key = k if type(k) is str and len(k) <= MAX_TAG_VALUE else cut(str(k), MAX_TAG_VALUE)
            # _plain(v) inlined: this runs for every field of every context of every
            # error event, and most fields are short strings and numbers.
            kind = type(v)
            clamped[key] = (
                v
                if (kind is str and len(v) <= MAX_CONTEXT_STRING)
                or v is None
                or kind is int
                or kind is float
                or kind is bool
                else clamp_context(v, depth + 1)
            )
        return clamped
    if isinstance(value, _COLLECTIONS):
        return [
            v if _plain(v) else clamp_context(v, depth + 1)
            for v in itertools.islice(value, MAX_CONTEXT_ITEMS)
        ]
    return cut(str(value), MAX_CONTEXT_STRING)


#: Sentry measures some parts of an event as a whole ("databags"), by their JSON size,
#: and trims what is over. Budgets a little under its limits, measured with sentry-relay:
#: frame variables and breadcrumb data 2,048, each context 8,192, user fields 128 chars.
SMALL_BAG = 1900
LARGE_BAG = 7800
MAX_USER_FIELD = 128


#: One encoder for every size measurement: ``json.dumps`` with an argument builds a new
#: encoder per call, a sizeable part of measuring a small bag.
_ENCODER = json.JSONEncoder(default=str)


def _size(node: Any) -> int:
    try:
        return len(_ENCODER.encode(node))
    except (TypeError, ValueError):
        return len(str(node))


def _fit_all(bags: list[Any], budget: int) -> None:
    """Fit each of ``bags`` within ``budget``, measuring them together first.

    The JSON of a list holds the JSON of each item whole, so a list within the budget
    proves every bag is: one measurement instead of one per bag in the common case.
    """
    if not bags:
        return
    try:
        fits = len(_ENCODER.encode(bags)) <= budget
    except (TypeError, ValueError):
        fits = False
    if not fits:
        for bag in bags:
            fit_bag(bag, budget)


def _strings(node: Any, found: list[tuple[Any, Any, int]]) -> None:
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        if isinstance(value, str):
            found.append((node, key, len(value)))
        else:
            _strings(value, found)


def fit_bag(node: Any, budget: int) -> Any:
    """Shrink ``node`` in place until its JSON size is within ``budget``; return it.

    The longest strings are cut first (they are where the size is); if cutting strings
    is not enough, trailing items are dropped.
    """
    for _ in range(8):
        excess = _size(node) - budget
        if excess <= 0:
            return node
        found: list[tuple[Any, Any, int]] = []
        _strings(node, found)
        found.sort(key=lambda item: item[2], reverse=True)
        cut_any = False
        for container, key, length in found:
            if excess <= 0:
                break
            keep = max(16, length - excess - 8)
            if keep < length:
                container[key] = cut(container[key], keep)
                excess -= length - keep
                cut_any = True
        if not cut_any:
            break
    while _size(node) > budget and isinstance(node, dict | list) and node:
        if isinstance(node, dict):
            node.pop(next(reversed(node)))
        else:
            node.pop()
    return node


def _frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for section in ("exception", "threads"):
        container = event.get(section)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else []:
            stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
            found = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            frames.extend(f for f in found or [] if isinstance(f, dict))
    return frames


def fit_event(event: dict[str, Any]) -> None:
    """Fit the databags of an error event inside Sentry's limits, in place."""
    _fit_all(
        [frame["vars"] for frame in _frames(event) if isinstance(frame.get("vars"), dict)],
        SMALL_BAG,
    )
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    _fit_all(
        [
            crumb["data"]
            for crumb in (values if isinstance(values, list) else ())
            if isinstance(crumb, dict) and isinstance(crumb.get("data"), dict)
        ],
        SMALL_BAG,
    )
    contexts = event.get("contexts")
    _fit_all(
        [
            context
            for name, context in (contexts.items() if isinstance(contexts, dict) else ())
            if name != "trace" and isinstance(context, dict)
        ],
        LARGE_BAG,
    )
    user = event.get("user")
    if isinstance(user, dict):
        for key, value in user.items():
            if isinstance(value, str):
                user[key] = cut(value, MAX_USER_FIELD)
