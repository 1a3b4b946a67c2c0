"""Parts of an event the SDK's serializer takes whole (core/payload.py).

The serializer walks every node of an event; the cog's own contexts, tags, fingerprint
and user skip that walk through ``__sentry_repr__``. What they become must still be
what the serializer would have made: checked against ``sentry_sdk.serializer.serialize``
itself, and end to end with an object no JSON encoder accepts put into a context.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import pytest
import sentry_sdk
from conftest import assert_sentry_accepts
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk.serializer import serialize

from tux_sentry_cog.core.payload import (
    MAX_DEPTH,
    WHOLE_PARTS,
    JsonReady,
    JsonReadyList,
    OwnCrumbData,
    take_whole,
    wire_copy,
)
from tux_sentry_cog.testing import reset_sentry_sdk


class Colour(IntEnum):
    RED = 1


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def _the_serializers(value: dict[str, Any]) -> Any:
    """What sentry-sdk's serializer makes of ``value`` walked node by node."""
    return serialize({"contexts": {"part": value}})["contexts"]["part"]


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
TREES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), TREES, max_size=6))
def test_same_result_as_the_serializer(value: dict[str, Any]) -> None:
    assert wire_copy(JsonReady(value)) == _the_serializers(value)
    # And the SDK takes the part through its short cut with that same result.
    assert serialize({"contexts": {"part": JsonReady(value)}})["contexts"]["part"] == (
        _the_serializers(value)
    )


# Hypothesis takes naive bounds and adds the zone itself.
CRUMB_TIMES = st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
CRUMB_DATA = st.dictionaries(st.text(max_size=8), JSON_LEAVES, max_size=4)
CRUMBS = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["default", "log", "http"]),
            "timestamp": CRUMB_TIMES,
            "message": st.text(max_size=40),
            # The cog's own (data a JsonReady) and anyone else's (a plain dict, nested).
            "data": st.one_of(
                st.builds(OwnCrumbData, CRUMB_DATA),
                st.dictionaries(st.text(max_size=8), TREES, max_size=12),
            ),
        },
        optional={"category": st.text(max_size=10), "level": st.sampled_from(["info", "error"])},
    ),
    max_size=6,
)

EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "breadcrumbs": st.fixed_dictionaries({"values": CRUMBS}),
        "contexts": st.dictionaries(
            st.text(max_size=8), st.dictionaries(st.text(max_size=8), TREES, max_size=4), max_size=4
        ),
        "tags": st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=6),
        "user": st.dictionaries(st.text(max_size=8), JSON_LEAVES, max_size=3),
        "fingerprint": st.lists(st.text(max_size=20), max_size=5),
        "modules": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=8),
        "extra": st.dictionaries(st.text(max_size=8), TREES, max_size=4),
    },
)


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_an_event_taken_whole_serializes_as_before(event: dict[str, Any]) -> None:
    expected = serialize(copy.deepcopy(event))
    marked = take_whole(copy.deepcopy(event))
    present = [key for key in WHOLE_PARTS if key in marked]
    assert all(type(marked[key]) in (JsonReady, JsonReadyList) for key in present)
    assert type(marked.get("extra", {})) is dict  # a databag stays the serializer's to trim
    for crumb in marked.get("breadcrumbs", {}).get("values", []):
        # Only the cog's own breadcrumbs go whole; anyone else's is walked and trimmed.
        ours = type(crumb["data"]) is OwnCrumbData
        assert (type(crumb) is JsonReady) == ours
    serialized = serialize(marked)
    assert serialized == expected
    sent = serialized.get("breadcrumbs", {}).get("values", [])
    for crumb, original in zip(sent, event.get("breadcrumbs", {}).get("values", []), strict=True):
        # The scrubber knows the cog's own breadcrumbs after serialization by this type.
        assert (type(crumb["data"]) is OwnCrumbData) == (type(original["data"]) is OwnCrumbData)


def test_values_json_cannot_hold_become_what_the_serializer_makes() -> None:
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    value = {
        "object": Opaque(),
        "when": when,
        "nan": math.nan,
        "enum": Colour.RED,
        "bytes": b"caf\xc3\xa9 \xff",
        "set": {3},
        "nested": {"inner": [Opaque(), (1, 2)]},
        7: "an int key",
    }
    copied = wire_copy(JsonReady(value))
    assert copied == _the_serializers(value)
    assert copied["object"] == "<Opaque thing>"
    assert copied["nan"] == "nan"
    assert copied["7"] == "an int key"
    json.dumps(copied, allow_nan=False)  # what the envelope encoder requires


def test_the_owners_custom_repr_is_used_as_the_serializer_would() -> None:
    def shown(value: Any) -> str | None:
        return "custom!" if isinstance(value, Opaque) else None

    sentry_sdk.init(custom_repr=shown)
    try:
        value = {"object": Opaque(), "other": object()}
        copied = wire_copy(JsonReady(value))
        assert copied["object"] == "custom!"
        assert copied["other"].startswith("<object object")
        expected = serialize({"contexts": {"part": value}}, custom_repr=shown)
        assert copied == expected["contexts"]["part"]
    finally:
        reset_sentry_sdk()


def test_a_cycle_ends_as_a_repr_instead_of_recursing() -> None:
    looped: dict[str, Any] = {"name": "loop"}
    looped["self"] = looped
    copied = wire_copy(JsonReady(looped))
    depth, node = 0, copied
    while isinstance(node, dict):
        node, depth = node["self"], depth + 1
    assert depth == MAX_DEPTH
    assert isinstance(node, str)
    json.dumps(copied, allow_nan=False)


def test_the_copy_is_not_the_callers_object() -> None:
    part = JsonReady(inner={"a": 1})
    copied = part.__sentry_repr__()
    copied["inner"]["a"] = 2
    assert part["inner"]["a"] == 1
    assert JsonReadyList(["x", 1]).__sentry_repr__() == ["x", 1]


@pytest.mark.parametrize("bad", [Opaque(), math.inf, {1, 2}])
async def test_an_event_processor_putting_objects_into_our_context_loses_nothing(
    make_bot, sentry_flush, bad: Any
) -> None:
    """A bot's own event processor writes into the cog's contexts before serialization;
    the event still arrives whole and valid, the object as the serializer shows it."""
    harness = await make_bot()

    def processor(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") != "transaction":
            event["contexts"]["command"]["added_by_the_bot"] = bad
            event["tags"]["bot.tag"] = 5
        return event

    sentry_sdk.get_isolation_scope().add_event_processor(processor)
    await harness.message("!boom")
    events = sentry_flush().events()
    assert len(events) == 1
    event = events[0]
    assert_sentry_accepts(event)
    assert event["contexts"]["command"]["added_by_the_bot"] == _the_serializers({"x": bad})["x"]
    assert event["tags"]["bot.tag"] == "5"
    assert event["contexts"]["command"]["name"] == "boom"
    assert event["fingerprint"][0] == "RuntimeError"
