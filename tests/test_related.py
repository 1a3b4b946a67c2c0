"""Related errors in a bounded window, with an injected clock (SPEC.md "correlation")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tux_sentry_cog.core.related import (
    MAX_RELATED_ON_EVENT,
    ErrorRecord,
    RelatedError,
    RelatedErrorDetector,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _context(
    fingerprint: Any = None,
    correlation_id: str | None = None,
    user: int | None = None,
    guild: Any = None,
    command: str | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if fingerprint is not None:
        context["fingerprint"] = fingerprint
    if correlation_id is not None:
        context["correlation_id"] = correlation_id
    if user is not None:
        context["user"] = {"id": user}
    if guild is not None:
        context["guild"] = {"id": guild}
    if command is not None:
        context["command"] = {"name": command}
    return context


def _detector(
    clock: FakeClock, max_errors: int = 100, window: float = 300.0
) -> RelatedErrorDetector:
    return RelatedErrorDetector(max_errors=max_errors, window_seconds=window, clock=clock)


def _relations(related: list[RelatedError]) -> list[str]:
    return [r.relation for r in related]


def test_first_error_has_no_relations() -> None:
    detector = _detector(FakeClock())
    assert detector.record_error(ValueError(), _context("fp-a")) == []
    assert len(detector.recent_errors) == 1


def test_constructible_with_no_arguments() -> None:
    detector = RelatedErrorDetector()
    assert detector.recent_errors.maxlen == 100
    assert detector.record_error(ValueError(), {}) == []


@pytest.mark.parametrize(
    ("earlier", "current", "relation"),
    [
        (
            _context("fp-a", correlation_id="run-1", user=1, guild=10, command="a"),
            _context("fp-b", correlation_id="run-1", user=2, guild=20, command="b"),
            "same_run",
        ),
        (
            _context("fp-a", correlation_id="run-1", user=1, guild=10, command="a"),
            _context("fp-a", correlation_id="run-2", user=2, guild=20, command="b"),
            "same_fingerprint",
        ),
        (
            _context("fp-a", correlation_id="run-1", user=7, guild=10, command="a"),
            _context("fp-b", correlation_id="run-2", user=7, guild=20, command="b"),
            "same_user",
        ),
        (
            _context("fp-a", correlation_id="run-1", user=1, guild=10, command="play"),
            _context("fp-b", correlation_id="run-2", user=2, guild=20, command="play"),
            "same_command",
        ),
        (
            _context("fp-a", correlation_id="run-1", user=1, guild=10, command="a"),
            _context("fp-b", correlation_id="run-2", user=2, guild=10, command="b"),
            "same_guild",
        ),
    ],
    ids=["same_run", "same_fingerprint", "same_user", "same_command", "same_guild"],
)
def test_each_relation(
    earlier: dict[str, Any], current: dict[str, Any], relation: str
) -> None:
    clock = FakeClock()
    detector = _detector(clock)
    detector.record_error(ValueError(), earlier)
    clock.advance(2.5)
    related = detector.record_error(KeyError(), current)
    assert related == [RelatedError(earlier["fingerprint"], earlier["command"]["name"], 2.5,
                                    relation)]


def test_unrelated_errors() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", "run-1", 1, 10, "a"))
    assert detector.record_error(ValueError(), _context("fp-b", "run-2", 2, 20, "b")) == []


def test_strongest_relation_wins() -> None:
    # everything in common: reported once, as the same run
    clock = FakeClock()
    detector = _detector(clock)
    same = _context("fp-a", "run-1", 1, 10, "a")
    detector.record_error(ValueError(), same)
    assert _relations(detector.record_error(ValueError(), same)) == ["same_run"]


def test_dm_guild_never_relates() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", "run-1", 1, "dm", "a"))
    assert detector.record_error(ValueError(), _context("fp-b", "run-2", 2, "dm", "b")) == []


def test_missing_ids_never_relate() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a"))
    assert detector.record_error(KeyError(), _context("fp-b")) == []


def test_guild_and_user_ids_compared_as_strings() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", guild=123456789012345678))
    related = detector.record_error(ValueError(), _context("fp-b", guild="123456789012345678"))
    assert _relations(related) == ["same_guild"]


def test_fingerprint_list_and_default() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context(["ValueError", "bad <N>", "cmd"]))
    record = detector.recent_errors[-1]
    assert record.fingerprint == "ValueError|bad <N>|cmd"
    related = detector.record_error(ValueError(), _context("ValueError|bad <N>|cmd"))
    assert _relations(related) == ["same_fingerprint"]
    # no fingerprint: the type name stands in
    detector.record_error(OSError(), {})
    assert detector.recent_errors[-1].fingerprint == "OSError"
    assert _relations(detector.record_error(OSError(), {})) == ["same_fingerprint"]


def test_record_keeps_no_message_text() -> None:
    detector = _detector(FakeClock(5.0))
    detector.record_error(
        ValueError("secret message text"),
        _context("fp", "run-1", 42, 10, "echo"),
    )
    assert detector.recent_errors[-1] == ErrorRecord(
        timestamp=5.0,
        fingerprint="fp",
        error_type="ValueError",
        correlation_id="run-1",
        user_id="42",
        guild_id="10",
        command="echo",
    )


def test_window_expiry() -> None:
    clock = FakeClock()
    detector = _detector(clock, window=60.0)
    detector.record_error(ValueError(), _context("fp-a"))
    clock.advance(60.0)
    assert _relations(detector.record_error(ValueError(), _context("fp-a"))) == [
        "same_fingerprint"
    ]  # exactly at the window edge still counts
    clock.advance(60.5)
    # the first is 120.5 s old (out), the second 60.5 s (out)
    assert detector.record_error(ValueError(), _context("fp-a")) == []


def test_window_expiry_keeps_the_recent_ones() -> None:
    clock = FakeClock()
    detector = _detector(clock, window=10.0)
    detector.record_error(ValueError(), _context("fp-a", command="old"))
    clock.advance(8.0)
    detector.record_error(ValueError(), _context("fp-a", command="recent"))
    clock.advance(5.0)
    related = detector.record_error(ValueError(), _context("fp-a"))
    assert [(r.command, r.seconds_ago) for r in related] == [("recent", 5.0)]


def test_bounded_deque() -> None:
    clock = FakeClock()
    detector = _detector(clock, max_errors=3)
    for index in range(5):
        detector.record_error(ValueError(), _context("fp-a", command=f"c{index}"))
        clock.advance(1.0)
    assert len(detector.recent_errors) == 3
    assert [r.command for r in detector.recent_errors] == ["c2", "c3", "c4"]
    related = detector.record_error(ValueError(), _context("fp-a"))
    assert [r.command for r in related] == ["c4", "c3", "c2"]


def test_newest_first() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    for name in ("first", "second", "third"):
        detector.record_error(ValueError(), _context("fp-a", command=name))
        clock.advance(1.0)
    related = detector.record_error(ValueError(), _context("fp-a"))
    assert [(r.command, r.seconds_ago) for r in related] == [
        ("third", 1.0),
        ("second", 2.0),
        ("first", 3.0),
    ]


def test_all_related_returned_the_event_cap_is_the_reporters() -> None:
    detector = _detector(FakeClock())
    for _ in range(MAX_RELATED_ON_EVENT + 5):
        detector.record_error(ValueError(), _context("fp-a"))
    assert len(detector.record_error(ValueError(), _context("fp-a"))) == MAX_RELATED_ON_EVENT + 5
    assert MAX_RELATED_ON_EVENT == 10


def test_as_context_shape() -> None:
    related = RelatedError(fingerprint="fp-a", command="play", seconds_ago=1.23456, relation="x")
    assert related.as_context() == {
        "fingerprint": "fp-a",
        "command": "play",
        "seconds_ago": 1.235,
        "relation": "x",
    }


def test_as_context_from_a_detection() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    detector.record_error(ValueError(), _context("fp-a", user=5))
    clock.advance(0.1234)
    (related,) = detector.record_error(KeyError(), _context("fp-b", user=5))
    context = related.as_context()
    assert set(context) == {"fingerprint", "command", "seconds_ago", "relation"}
    assert context["fingerprint"] == "fp-a"
    assert context["command"] is None
    assert context["relation"] == "same_user"
    assert context["seconds_ago"] == pytest.approx(0.123)


# relate() answers from a signature index; record_error() scans entry by entry. The two
# must agree on every sequence: same count, same newest distinct relations, same ages.

_ERRORS = st.lists(
    st.tuples(
        st.sampled_from(["fp-a", "fp-b", "fp-c"]),
        st.sampled_from([None, "run-1", "run-2", "run-3", "run-4"]),
        st.sampled_from([None, 1, 2]),
        st.sampled_from([None, "dm", 10, 20]),
        st.sampled_from([None, "play", "skip"]),
        st.sampled_from([0.0, 0.0, 0.5, 3.0, 11.0]),  # seconds before this error
    ),
    max_size=40,
)


def _newest_distinct(related: list[RelatedError], limit: int) -> list[RelatedError]:
    """What relate() keeps of record_error()'s full list: newest per key, at most limit."""
    kept: list[RelatedError] = []
    seen: set[tuple[str, str | None, str]] = set()
    for item in related:
        key = (item.fingerprint, item.command, item.relation)
        if key not in seen and len(kept) < limit:
            seen.add(key)
            kept.append(item)
    return kept


@settings(max_examples=300, deadline=None)
@given(_ERRORS, st.integers(min_value=0, max_value=6), st.integers(min_value=1, max_value=4))
def test_relate_agrees_with_the_entry_by_entry_scan(
    errors: list[tuple[Any, ...]], max_errors: int, limit: int
) -> None:
    clocks = FakeClock(), FakeClock()
    by_entry = _detector(clocks[0], max_errors=max_errors, window=10.0)
    by_signature = _detector(clocks[1], max_errors=max_errors, window=10.0)
    for fingerprint, run, user, guild, command, pause in errors:
        for clock in clocks:
            clock.advance(pause)
        context = _context(fingerprint, run, user, guild, command)
        everything = by_entry.record_error(ValueError(), context)
        count, few = by_signature.relate(ValueError(), context, limit)
        assert count == len(everything)
        assert few == _newest_distinct(everything, limit)
        assert list(by_signature.recent_errors) == list(by_entry.recent_errors)
    assert len(by_signature.recent_errors) <= max_errors


def test_relate_follows_changes_made_to_the_window_from_outside() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    for _ in range(3):
        detector.relate(ValueError(), _context("fp-a"))
    assert detector.relate(ValueError(), _context("fp-a"))[0] == 3
    detector.recent_errors.clear()  # a public attribute: someone may
    assert detector.relate(ValueError(), _context("fp-a")) == (0, [])
    detector.recent_errors.append(
        ErrorRecord(clock(), "fp-b", "KeyError", None, None, None, "skip")
    )
    count, few = detector.relate(ValueError(), _context("fp-b"))
    assert count == 1  # the one appended by hand (the fp-a before it shares nothing)
    assert [(r.fingerprint, r.relation) for r in few] == [
        ("fp-b", "same_fingerprint"),
    ]
