"""Scrubbing of events by value, and Sentry's limits (docs/events.md)."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tux_sentry_cog.core import scrubbing
from tux_sentry_cog.core.limits import (
    LARGE_BAG,
    MAX_CONTEXT_DEPTH,
    MAX_CONTEXT_ITEMS,
    MAX_CONTEXT_STRING,
    MAX_EVENT_STRING,
    MAX_NAME,
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    SMALL_BAG,
    clamp_context,
    clamp_tag_value,
    clamp_tags,
    cut,
    fit_bag,
    fit_event,
)
from tux_sentry_cog.core.runs import CommandRun, current_run
from tux_sentry_cog.core.scrubbing import FILTERED, MIN_SENSITIVE_CHARS, Scrubber

if TYPE_CHECKING:
    from collections.abc import Iterator

# A registered secret, shaped like a Discord bot token.
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"
# Another bot's token, never registered: caught by its shape alone.
OTHER_TOKEN = "OTg3NjU0MzIxMDk4NzY1NDMyMQ.Gxyz12.ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zz"
DSN_KEY = "0123456789abcdef0123456789abcdef"
DSN = f"https://{DSN_KEY}@o1.ingest.sentry.io/1"
EMAIL = "someone.real+tag@example.com"


def _scrubber(send_pii: bool = False, secrets: tuple[str, ...] = (TOKEN,)) -> Scrubber:
    return Scrubber(secrets=lambda: list(secrets), send_pii=send_pii)


@contextlib.contextmanager
def _running(*sensitive: str) -> Iterator[CommandRun]:
    run = CommandRun(name="echo", command_type="prefix", sensitive=sensitive)
    reset = current_run.set(run)
    try:
        yield run
    finally:
        current_run.reset(reset)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list | tuple):
        return [s for value in node for s in _strings(value)]
    return []


def _nested_event(text: str) -> dict[str, Any]:
    return {
        "event_id": "f" * 32,
        "message": f"failed: {text}",
        "tags": {"command.name": "echo", "leak": f"tag {text}"},
        "contexts": {
            "error": {"message": text, "custom_context": {"args": [1, text, (text, "ok")]}},
            "custom": {"parameters": {"text": {"value": text, "type": "str"}}},
        },
        "extra": {"tuple": (text, f"prefix ({text}) suffix")},
        "breadcrumbs": {"values": [{"message": f"said {text}", "data": {"n": 3}}]},
        "exception": {"values": [{"type": "RuntimeError", "value": f"boom {text}"}]},
    }


# --- secrets ------------------------------------------------------------------------------


def test_registered_secret_removed_everywhere() -> None:
    event = _scrubber().scrub_event(_nested_event(TOKEN))
    strings = _strings(event)
    assert not any(TOKEN in s for s in strings)
    assert event["message"] == f"failed: {FILTERED}"
    assert event["tags"]["leak"] == f"tag {FILTERED}"
    assert event["contexts"]["error"]["custom_context"]["args"] == [
        1,
        FILTERED,
        [FILTERED, "ok"],
    ]
    assert event["extra"]["tuple"] == [FILTERED, f"prefix ({FILTERED}) suffix"]
    assert event["breadcrumbs"]["values"][0]["data"] == {"n": 3}


def test_registered_secret_of_any_shape_removed() -> None:
    secret = "hunter2-not-token-shaped"
    event = _scrubber(secrets=(secret,)).scrub_event({"message": f"pw {secret}!"})
    assert event["message"] == f"pw {FILTERED}!"


def test_secret_source_is_called_per_event() -> None:
    current: list[str] = []
    scrubber = Scrubber(secrets=lambda: current)
    assert scrubber.scrub_event({"message": "x late-secret-value"})["message"] == (
        "x late-secret-value"
    )
    current.append("late-secret-value")
    assert scrubber.scrub_event({"message": "x late-secret-value"})["message"] == (
        f"x {FILTERED}"
    )


def test_longer_secret_that_contains_a_shorter_one_is_removed_whole() -> None:
    scrubber = _scrubber(secrets=("abcdef", "abcdef-ghijkl"))
    assert scrubber.scrub_text("key abcdef-ghijkl end") == f"key {FILTERED} end"


def test_empty_secret_is_ignored() -> None:
    assert _scrubber(secrets=("",)).scrub_text("nothing here") == "nothing here"


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
def test_unregistered_token_shape_removed(send_pii: bool) -> None:
    event = _scrubber(send_pii, secrets=()).scrub_event(_nested_event(OTHER_TOKEN))
    assert not any(OTHER_TOKEN in s for s in _strings(event))
    assert event["message"] == f"failed: {FILTERED}"


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
def test_unregistered_dsn_key_removed(send_pii: bool) -> None:
    event = _scrubber(send_pii, secrets=()).scrub_event(
        {"message": f"init with {DSN}", "contexts": {"cfg": {"dsn": DSN}}}
    )
    assert event["message"] == f"init with https://{FILTERED}@o1.ingest.sentry.io/1"
    assert event["contexts"]["cfg"]["dsn"] == f"https://{FILTERED}@o1.ingest.sentry.io/1"


def test_dsn_key_and_secret_removed() -> None:
    text = f"https://{DSN_KEY}:{DSN_KEY[::-1]}@sentry.example.com/5"
    assert _scrubber(secrets=()).scrub_text(text) == (
        f"https://{FILTERED}@sentry.example.com/5"
    )


def test_dsn_without_key_is_left() -> None:
    text = "see https://o1.ingest.sentry.io/1 and https://example.com/a@b"
    assert _scrubber(send_pii=True, secrets=()).scrub_text(text) == text


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
@pytest.mark.parametrize(
    "before", ["\u201c", "\u00ab", "\u2014", "\x01"], ids=["smart-quote", "guillemet", "dash",
                                                          "control"]
)
def test_token_after_non_ascii_punctuation_removed(send_pii: bool, before: str) -> None:
    scrubber = _scrubber(send_pii, secrets=())
    text = f"say {before}{OTHER_TOKEN}"
    assert OTHER_TOKEN not in scrubber.scrub_text(text)  # the slow path gets it
    event = scrubber.scrub_event({"message": text})
    assert OTHER_TOKEN not in event["message"]


# --- e-mails and PII ----------------------------------------------------------------------


def test_email_removed_without_pii() -> None:
    event = _scrubber().scrub_event(_nested_event(EMAIL))
    assert not any(EMAIL in s for s in _strings(event))
    assert event["contexts"]["custom"]["parameters"]["text"]["value"] == FILTERED


def test_email_kept_with_pii() -> None:
    event = _scrubber(send_pii=True).scrub_event(_nested_event(EMAIL))
    assert event["message"] == f"failed: {EMAIL}"
    assert event["contexts"]["custom"]["parameters"]["text"]["value"] == EMAIL


def test_token_removed_with_pii_on_while_email_stays() -> None:
    event = _scrubber(send_pii=True).scrub_event({"message": f"{EMAIL} sent {TOKEN}"})
    assert event["message"] == f"{EMAIL} sent {FILTERED}"


# --- the run's sensitive strings ----------------------------------------------------------


def test_run_sensitive_strings_removed_without_pii() -> None:
    with _running("secret message text"):
        event = _scrubber().scrub_event(_nested_event("secret message text"))
    assert not any("secret message text" in s for s in _strings(event))
    assert event["contexts"]["error"]["message"] == FILTERED


def test_run_sensitive_strings_kept_with_pii() -> None:
    with _running("secret message text"):
        event = _scrubber(send_pii=True).scrub_event(_nested_event("secret message text"))
    assert event["contexts"]["error"]["message"] == "secret message text"
    assert event["message"] == "failed: secret message text"


def test_sensitive_strings_only_while_their_run_is_current() -> None:
    with _running("secret message text"):
        pass
    event = _scrubber().scrub_event({"message": "secret message text"})
    assert event["message"] == "secret message text"


def test_short_sensitive_strings_are_left() -> None:
    short = "x" * (MIN_SENSITIVE_CHARS - 1)
    exact = "y" * MIN_SENSITIVE_CHARS
    with _running(short, exact, ""):
        event = _scrubber().scrub_event({"message": f"a {short} b {exact} c"})
    assert event["message"] == f"a {short} b {FILTERED} c"


def test_scrub_text_uses_the_current_run() -> None:
    with _running("do not send this"):
        assert _scrubber().scrub_text("> do not send this <") == f"> {FILTERED} <"


# --- limits applied by scrub_event --------------------------------------------------------


def test_tags_clamped_and_newlines_removed() -> None:
    long_key = "k" * 40
    event = _scrubber().scrub_event(
        {"tags": {long_key: "v", "long": "x" * 500, "multi": "line one\nline two\r\n"}}
    )
    tags = event["tags"]
    assert all(len(key) <= MAX_TAG_KEY for key in tags)
    assert all(len(value) <= MAX_TAG_VALUE for value in tags.values())
    assert tags["long"] == "x" * (MAX_TAG_VALUE - 1) + "…"
    assert tags["multi"] == "line one line two"
    assert not any("\n" in value or "\r" in value for value in tags.values())


def test_huge_string_is_cut() -> None:
    event = _scrubber().scrub_event(
        {"message": "a" * 100_000, "contexts": {"x": {"y": ["b" * 100_000]}}}
    )
    assert len(event["message"]) <= MAX_EVENT_STRING
    assert event["message"].endswith("…")
    assert len(event["contexts"]["x"]["y"][0]) <= MAX_EVENT_STRING


def test_transaction_and_culprit_cut_to_max_name() -> None:
    event = _scrubber().scrub_event({"transaction": "t" * 1000, "culprit": "c" * 1000})
    assert len(event["transaction"]) == MAX_NAME == 200
    assert len(event["culprit"]) == MAX_NAME


def test_structural_keys_untouched() -> None:
    # The registered "secret" equals the ids and levels below; only content is rewritten.
    event_id = "abcdef0123456789abcdef0123456789"
    event = {
        "event_id": event_id,
        "level": "error",
        "platform": "python",
        "timestamp": "2024-01-01T00:00:00Z",
        "contexts": {"trace": {"trace_id": event_id, "span_id": event_id[:16]}},
        "message": f"id {event_id}",
    }
    scrubbed = _scrubber(secrets=(event_id, "python", "error")).scrub_event(copy.deepcopy(event))
    assert scrubbed["event_id"] == event_id
    assert scrubbed["level"] == "error"
    assert scrubbed["platform"] == "python"
    assert scrubbed["timestamp"] == event["timestamp"]
    assert scrubbed["contexts"]["trace"] == event["contexts"]["trace"]
    assert scrubbed["message"] == f"id {FILTERED}"


def test_clean_event_unchanged() -> None:
    event = {
        "event_id": "0" * 32,
        "message": "nothing to hide",
        "tags": {"command.name": "ping"},
        "contexts": {"command": {"name": "ping", "parameters": {}}},
        "extra": {"n": 1, "f": 1.5, "none": None, "flag": True},
    }
    assert _scrubber().scrub_event(copy.deepcopy(event)) == event


def test_non_string_values_survive() -> None:
    event = {"extra": {"n": 1, "obj": object, "list": [1, 2.5, None, TOKEN]}}
    scrubbed = _scrubber().scrub_event(event)
    assert scrubbed["extra"]["n"] == 1
    assert scrubbed["extra"]["obj"] is object
    assert scrubbed["extra"]["list"] == [1, 2.5, None, FILTERED]


# --- limits.py ----------------------------------------------------------------------------


def test_cut() -> None:
    assert cut("abc", 3) == "abc"
    assert cut("abcd", 3) == "ab…"
    assert len(cut("x" * 10_000, 100)) == 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", "none"),
        (42, "42"),
        (None, "None"),
        ("a\nb\tc", "a b c"),
        ("x" * 300, "x" * 199 + "…"),
    ],
    ids=["plain", "empty", "int", "none", "newline", "long"],
)
def test_clamp_tag_value(value: object, expected: str) -> None:
    assert clamp_tag_value(value) == expected


def test_clamp_tags_keys_and_values() -> None:
    tags = clamp_tags({"k" * 32: "exact", "k" * 33: 1, "guild.id": 123})
    assert tags["k" * 32] == "exact"
    assert tags["guild.id"] == "123"
    assert all(len(key) <= MAX_TAG_KEY for key in tags)
    assert len(tags) == 3


def test_clamped_tag_key_is_still_a_valid_sentry_tag_key() -> None:
    from sentry_relay.processing import StoreNormalizer  # noqa: PLC0415 - dev-only dependency

    tags = clamp_tags({"custom.tag.with.a.rather.long.name": "value"})
    normalized = StoreNormalizer().normalize_event(
        {"event_id": "a" * 32, "platform": "python", "message": "m", "tags": tags}
    )
    assert [list(pair) for pair in normalized["tags"]] == [[key, "value"] for key in tags]


def test_clamp_context_strings() -> None:
    clamped = clamp_context({"s": "x" * (MAX_CONTEXT_STRING * 2), "short": "ok"})
    assert len(clamped["s"]) == MAX_CONTEXT_STRING
    assert clamped["short"] == "ok"


def test_clamp_context_items() -> None:
    clamped = clamp_context(
        {"list": list(range(500)), "set": set(range(500)), "map": {str(i): i for i in range(500)}}
    )
    assert clamped["list"] == list(range(MAX_CONTEXT_ITEMS))
    assert len(clamped["set"]) == MAX_CONTEXT_ITEMS
    assert len(clamped["map"]) == MAX_CONTEXT_ITEMS
    assert clamped["map"]["0"] == 0


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_clamp_context_depth() -> None:
    deep: Any = "leaf"
    for _ in range(20):
        deep = {"next": deep}
    clamped = clamp_context(deep)
    assert _depth(clamped) == MAX_CONTEXT_DEPTH
    # what is below the limit is kept as a (cut) string, not dropped
    node = clamped
    for _ in range(MAX_CONTEXT_DEPTH):
        node = node["next"]
    assert isinstance(node, str)
    assert node.startswith("{'next':")


def test_clamp_context_keeps_scalars_and_copies() -> None:
    original = {"n": 1, "f": 0.5, "b": False, "none": None, "t": (1, "a")}
    clamped = clamp_context(original)
    assert clamped == {"n": 1, "f": 0.5, "b": False, "none": None, "t": [1, "a"]}
    assert clamped is not original


def test_clamp_context_long_keys_and_objects() -> None:
    class Thing:
        def __str__(self) -> str:
            return "T" * 10_000

    clamped = clamp_context({"k" * 1000: Thing()})
    (key, value), = clamped.items()
    assert len(key) == MAX_TAG_VALUE
    assert len(value) == MAX_CONTEXT_STRING


# --- the fast paths decide as the slow ones would ---------------------------------------

_PIECES = st.sampled_from(
    [
        TOKEN,
        OTHER_TOKEN,
        DSN,
        DSN_KEY,
        EMAIL,
        "a@b.co",
        "    @functools.wraps(coro)",
        "x@",
        "@y.com",
        "secret message text",
        "\u201c",
        "\x01",
        "\n",
        ".",
        "-",
        "@",
        "://",
        "abc",
        "",
    ]
)
_TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=5).map("".join)
_LEAVES = st.one_of(_TEXTS, st.integers(), st.none(), st.just("y" * (MAX_EVENT_STRING + 1)))
_KEYS = st.sampled_from(["message", "type", "level", "trace_id", "data", "k", TOKEN])
_NODES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=3),
    ),
    max_leaves=12,
)
# What the fast check searches: not the SDK's own parts (sdk, modules, server_name, the
# runtime contexts), which only the walk goes through, by design.
_TOP_KEYS = st.sampled_from(
    ["message", "extra", "tags", "exception", "breadcrumbs", "spans", "user", "transaction",
     "level", "type"]
)
_CONTEXTS = st.dictionaries(
    st.sampled_from(["trace", "command", "error", "custom"]), _NODES, max_size=3
)
_EVENTS = st.builds(
    lambda top, contexts: {**top, "contexts": contexts},
    st.dictionaries(_TOP_KEYS, _NODES, max_size=4),
    _CONTEXTS,
)


@settings(max_examples=400, deadline=None)
@given(event=_EVENTS, pii=st.booleans(), sensitive=st.sampled_from([(), ("secret message text",)]))
def test_an_event_found_clean_is_one_the_walk_leaves_alone(event, pii, sensitive) -> None:
    """The fast check may send a clean event down the walk; never the other way round."""
    scrubber = _scrubber(send_pii=pii)
    with _running(*sensitive):
        rules = scrubber._rules()
        texts = scrubbing._searched_texts(copy.deepcopy(event))
        # A string over the limit always takes the walk (it is cut there).
        short = all(len(text) <= MAX_EVENT_STRING for text in texts)
        if short and rules.clean("\n".join(texts)):
            walked = copy.deepcopy(event)
            scrubbing._scrub_parts(rules, walked, None)
            # Tuples become lists in the walk; compare what would be sent.
            assert json.dumps(walked, default=str) == json.dumps(event, default=str)


@settings(max_examples=500, deadline=None)
@given(text=_TEXTS)
def test_email_gate_lets_every_address_through(text) -> None:
    from tux_sentry_cog.core.scrubbing import _EMAIL, _may_hold_email  # noqa: PLC0415

    if _EMAIL.search(text):
        assert _may_hold_email(text)


def _old_clamp_context(value: Any, depth: int = 0) -> Any:
    # The implementation before it was made faster, kept as the reference.
    from collections.abc import Mapping  # noqa: PLC0415

    if isinstance(value, str):
        return cut(value, MAX_CONTEXT_STRING)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_CONTEXT_DEPTH:
        return cut(str(value), MAX_CONTEXT_STRING)
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_CONTEXT_ITEMS]
        return {cut(str(k), MAX_TAG_VALUE): _old_clamp_context(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_old_clamp_context(v, depth + 1) for v in list(value)[:MAX_CONTEXT_ITEMS]]
    return cut(str(value), MAX_CONTEXT_STRING)


_CONTEXT_VALUES = st.recursive(
    st.one_of(
        st.text(max_size=5),
        st.just("s" * (MAX_CONTEXT_STRING + 3)),
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=60),
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(st.integers(), max_size=60),
        st.dictionaries(
            st.one_of(st.text(max_size=3), st.just("k" * (MAX_TAG_VALUE + 2)), st.integers()),
            inner,
            max_size=55,
        ),
    ),
    max_leaves=80,
)


@settings(max_examples=300, deadline=None)
@given(value=_CONTEXT_VALUES)
def test_clamp_context_as_before(value) -> None:
    assert clamp_context(value) == _old_clamp_context(value)


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.integers(0, 3000).map(lambda n: "v" * n), min_size=1, max_size=6),
    budget=st.sampled_from([SMALL_BAG, LARGE_BAG]),
)
def test_bags_measured_together_fit_as_each_alone(texts, budget) -> None:
    event = {
        "contexts": {f"c{i}": {"text": text} for i, text in enumerate(texts)},
        "breadcrumbs": {"values": [{"data": {"text": text}} for text in texts]},
        "exception": {
            "values": [{"stacktrace": {"frames": [{"vars": {"v": t}} for t in texts]}}]
        },
    }
    expected = copy.deepcopy(event)
    for context in expected["contexts"].values():
        fit_bag(context, LARGE_BAG)
    for crumb in expected["breadcrumbs"]["values"]:
        fit_bag(crumb["data"], SMALL_BAG)
    for frame in expected["exception"]["values"][0]["stacktrace"]["frames"]:
        fit_bag(frame["vars"], SMALL_BAG)
    fit_event(event)
    assert event == expected
    del budget
