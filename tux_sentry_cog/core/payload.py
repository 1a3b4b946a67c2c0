"""Event parts the cog builds itself, handed to the SDK's serializer whole.

sentry-sdk walks every node of an event before sending it, to make arbitrary objects
JSON-safe and to trim databags: about 8 µs a node on the benchmark machine, two thirds
of what an error event costs. Most of an error event's nodes are the contexts, tags and
fingerprint the cog builds itself out of strings and numbers, so walking them again
buys nothing. The serializer's own short cut for a value that knows how to present
itself, ``__sentry_repr__`` (sentry-python pull request 1322), takes such a part whole.

What it takes is :func:`wire_copy` of the part: a plain copy that still turns whatever
is not JSON into what the serializer would have made of it (an object a bot's event
processor added becomes its ``repr``, a datetime its timestamp, NaN a string), so the
event stays valid whatever was put in it, and the scope's own copy is never the one
that before-send hooks rewrite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sentry_sdk
from sentry_sdk._types import AnnotatedValue
from sentry_sdk.utils import format_timestamp, safe_repr

__all__ = [
    "MAX_DEPTH",
    "WHOLE_PARTS",
    "JsonReady",
    "JsonReadyList",
    "OwnCrumbData",
    "take_whole",
    "wire_copy",
]

#: Deeper than any part the cog builds; past it a value becomes its ``repr`` (a cycle
#: included), where the serializer would have marked a cycle.
MAX_DEPTH = 12

_SEQUENCES = (list, tuple, set, frozenset)


def wire_copy(node: Any, depth: int = 0) -> Any:
    """Return ``node`` as plain JSON values: dicts, lists, strings, numbers, ``None``."""
    kind = type(node)
    # Exact types first: nearly every node is one of these.
    if kind is str or kind is int or kind is bool or node is None:
        return node
    if kind is float:
        return node if math.isfinite(node) else safe_repr(node)
    if depth >= MAX_DEPTH:
        return _repr(node)
    if kind is dict or kind is JsonReady:
        return _copy_dict(node, depth)
    if kind is list or kind is JsonReadyList:
        return [wire_copy(value, depth + 1) for value in node]
    return _other(node, depth)


def _copy_dict(node: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    # Most values of a context are strings and numbers: taken without a call each.
    copied: dict[str, Any] = {}
    for key, value in node.items():
        kind = type(value)
        copied[key if type(key) is str else str(key)] = (
            value
            if kind is str or kind is int or kind is bool or value is None
            else wire_copy(value, depth + 1)
        )
    return copied


def _other(node: Any, depth: int) -> Any:  # noqa: PLR0911 - one return per kind
    # The serializer's order: a value's own presentation, numbers, dates, mappings,
    # sequences, bytes, then repr.
    present = getattr(type(node), "__sentry_repr__", None)
    if callable(present):
        return present(node)
    if isinstance(node, AnnotatedValue):
        return wire_copy(node.value, depth + 1)
    if isinstance(node, (str, int)):  # subclasses: an IntEnum, a str enum
        return node
    if isinstance(node, float):
        return float(node) if math.isfinite(node) else safe_repr(node)
    if isinstance(node, datetime):
        return format_timestamp(node)
    if isinstance(node, Mapping):
        return _copy_dict(node, depth)
    if isinstance(node, _SEQUENCES):
        return [wire_copy(value, depth + 1) for value in node]
    if isinstance(node, (bytes, bytearray)):
        return node.decode("utf-8", "replace")
    return _repr(node)


def _repr(node: Any) -> str:
    # As the serializer does: the owner's ``custom_repr`` option first, then safe_repr.
    custom = getattr(sentry_sdk.get_client(), "options", {}).get("custom_repr")
    if custom is not None:
        try:
            shown = custom(node)
        except Exception:  # the serializer falls back to safe_repr the same way
            shown = None
        if shown:
            return str(shown)
    return safe_repr(node)


class JsonReady(dict[str, Any]):
    """A ``dict`` the SDK's serializer takes as :func:`wire_copy` of it, without a walk.

    Behaves as a ``dict`` everywhere else: scopes merge into it, event processors and
    before-send hooks read and write it.
    """

    __slots__ = ()

    def __sentry_repr__(self) -> dict[str, Any]:
        """What the serializer puts in the event for this part."""
        copied: dict[str, Any] = wire_copy(self)
        return copied


class OwnCrumbData(JsonReady):
    """The ``data`` of a breadcrumb the cog left itself (nobody else has the type).

    Its type survives the serializer's copy, so the scrubber still knows the breadcrumb
    for the cog's own in the before-send hook: its message is built from command names,
    never from what a user typed, and a user's word must not blank it.
    """

    __slots__ = ()

    def __sentry_repr__(self) -> OwnCrumbData:
        """A copy of the same type, its values made JSON-safe."""
        return OwnCrumbData(_copy_dict(self, 1))


class JsonReadyList(list[Any]):
    """A ``list`` the SDK's serializer takes as :func:`wire_copy` of it (a fingerprint)."""

    __slots__ = ()

    def __sentry_repr__(self) -> list[Any]:
        """What the serializer puts in the event for this part."""
        copied: list[Any] = wire_copy(self)
        return copied


#: Parts of an event the serializer neither trims nor treats specially: it only makes
#: their values JSON-safe, which :func:`wire_copy` does too. Not ``extra``, ``request``
#: or ``spans`` (databags and span attributes, which it trims by depth and breadth),
#: nor ``exception`` (its frames' variables are already serialized). Breadcrumbs are
#: databags too: only the cog's own are taken whole (see :func:`take_whole`).
WHOLE_PARTS = ("contexts", "tags", "user", "fingerprint", "modules", "transaction_info")


def take_whole(event: Any, _hint: Any = None) -> Any:
    """Event processor: mark :data:`WHOLE_PARTS` and the cog's breadcrumbs to go whole.

    Registered on each command's isolation scope, so it sees the event after the SDK's
    integrations added theirs (the installed modules, the runtime context) and before
    serialization. A transaction's contexts, tags and user are 25 of its ~70 nodes,
    an error event's modules another 59.

    A breadcrumb whose ``data`` is an :class:`OwnCrumbData` is one the cog left (nobody
    else has the type): half a dozen short fields and a few data items, well inside the
    depth and breadth the serializer trims a databag to, so the copy is what its walk
    would have produced, at one node instead of about eight. Other breadcrumbs, and
    one whose data a ``before_breadcrumb`` hook replaced, are walked as before.
    """
    for key in WHOLE_PARTS:
        value = event.get(key)
        if type(value) is dict:
            event[key] = JsonReady(value)
        elif type(value) is list:
            event[key] = JsonReadyList(value)
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if type(crumbs) is dict else None
    if type(values) is list:
        for index, crumb in enumerate(values):
            # The event's list holds the scope's own breadcrumb dicts: each is replaced
            # in the list, never changed.
            if type(crumb) is dict and type(crumb.get("data")) is OwnCrumbData:
                values[index] = JsonReady(crumb)
    return event
