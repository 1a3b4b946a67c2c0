"""Related errors in a bounded window, with an injected clock (docs/events.md, "Related errors")."""

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
    ids=["same_run", "same_command", "same_guild"],
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


def test_a_shared_user_is_no_relation() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", "run-1", 7, 10, "a"))
    assert detector.relate(KeyError(), _context("fp-b", "run-2", 7, 20, "b")) == (0, [])


def test_repeats_of_the_same_group_are_not_related() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    for _ in range(5):  # the same error again, even in the same run, command and guild
        detector.record_error(ValueError(), _context("fp-a", "run-1", 1, 10, "a"))
        clock.advance(1.0)
    assert detector.relate(ValueError(), _context("fp-a", "run-1", 1, 10, "a")) == (0, [])
    # Another group of the same command is related, once per group in the list.
    count, few = detector.relate(KeyError(), _context("fp-b", "run-2", 2, 20, "a"))
    assert count == 5 + 1  # five of fp-a and the fp-a just related to nothing
    assert [(r.fingerprint, r.relation) for r in few] == [("fp-a", "same_command")]


def test_user_caused_errors_never_make_an_error_related() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    typo = _context("BadArgument", "run-1", 1, 10, "add")
    typo["user_caused"] = True
    for _ in range(3):
        detector.record_error(ValueError(), typo)
    assert list(detector.recent_errors) == []
    bug = _context("ZeroDivisionError", "run-2", 1, 10, "add")
    assert detector.relate(ZeroDivisionError(), bug) == (0, [])


def test_same_guild_only_within_a_minute() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    detector.record_error(ValueError(), _context("fp-a", guild=10, command="a"))
    clock.advance(60.0)
    assert _relations(detector.record_error(KeyError(), _context("fp-b", guild=10))) == [
        "same_guild"
    ]  # exactly a minute still counts
    clock.advance(61.0)
    # fp-a is 121 s old, fp-b 61 s: both beyond a minute, both inside the window
    assert detector.record_error(OSError(), _context("fp-c", guild=10)) == []
    assert len(detector.recent_errors) == 3


def test_same_command_within_the_whole_window() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    detector.record_error(ValueError(), _context("fp-a", guild=10, command="export"))
    clock.advance(299.0)
    related = detector.record_error(KeyError(), _context("fp-b", guild=10, command="export"))
    assert [(r.relation, r.seconds_ago) for r in related] == [("same_command", 299.0)]


def test_strongest_relation_wins() -> None:
    # run, command and guild in common: named once, as the same run
    clock = FakeClock()
    detector = _detector(clock)
    detector.record_error(ValueError(), _context("fp-a", "run-1", 1, 10, "a"))
    related = detector.record_error(KeyError(), _context("fp-b", "run-1", 1, 10, "a"))
    assert _relations(related) == ["same_run"]
    # command and guild in common: the same command
    related = detector.record_error(OSError(), _context("fp-c", "run-2", 1, 10, "a"))
    assert _relations(related) == ["same_command", "same_command"]


def test_dm_guild_never_relates() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", "run-1", 1, "dm", "a"))
    assert detector.record_error(ValueError(), _context("fp-b", "run-2", 2, "dm", "b")) == []


def test_missing_ids_never_relate() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a"))
    assert detector.record_error(KeyError(), _context("fp-b")) == []


def test_guild_ids_compared_as_strings() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context("fp-a", guild=123456789012345678))
    related = detector.record_error(ValueError(), _context("fp-b", guild="123456789012345678"))
    assert _relations(related) == ["same_guild"]


def test_fingerprint_list_and_default() -> None:
    detector = _detector(FakeClock())
    detector.record_error(ValueError(), _context(["ValueError", "bad <N>", "cmd"], guild=1))
    record = detector.recent_errors[-1]
    assert record.fingerprint == "ValueError|bad <N>|cmd"
    # the same group again, given as a string: a repeat, not a relation
    assert detector.record_error(ValueError(), _context("ValueError|bad <N>|cmd", guild=1)) == []
    # no fingerprint: the type name stands in
    detector.record_error(OSError(), {})
    assert detector.recent_errors[-1].fingerprint == "OSError"


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
    detector.record_error(ValueError(), _context("fp-a", command="c"))
    clock.advance(60.0)
    assert _relations(detector.record_error(KeyError(), _context("fp-b", command="c"))) == [
        "same_command"
    ]  # exactly at the window edge still counts
    clock.advance(60.5)
    # the first is 120.5 s old (out), the second 60.5 s (out)
    assert detector.record_error(OSError(), _context("fp-c", command="c")) == []


def test_window_expiry_keeps_the_recent_ones() -> None:
    clock = FakeClock()
    detector = _detector(clock, window=10.0)
    detector.record_error(ValueError(), _context("fp-a", command="c", guild=1))
    clock.advance(8.0)
    detector.record_error(ValueError(), _context("fp-b", command="c", guild=2))
    clock.advance(5.0)
    related = detector.record_error(ValueError(), _context("fp-c", command="c"))
    assert [(r.fingerprint, r.seconds_ago) for r in related] == [("fp-b", 5.0)]


def test_bounded_deque() -> None:
    clock = FakeClock()
    detector = _detector(clock, max_errors=3)
    for index in range(5):
        detector.record_error(ValueError(), _context(f"fp-{index}", command="c"))
        clock.advance(1.0)
    assert len(detector.recent_errors) == 3
    assert [r.fingerprint for r in detector.recent_errors] == ["fp-2", "fp-3", "fp-4"]
    related = detector.record_error(ValueError(), _context("fp-x", command="c"))
    assert [r.fingerprint for r in related] == ["fp-4", "fp-3", "fp-2"]


def test_newest_first() -> None:
    clock = FakeClock()
    detector = _detector(clock)
    for name in ("first", "second", "third"):
        detector.record_error(ValueError(), _context(name, guild=10))
        clock.advance(1.0)
    related = detector.record_error(ValueError(), _context("fp-x", guild=10))
    assert [(r.fingerprint, r.seconds_ago) for r in related] == [
        ("third", 1.0),
        ("second", 2.0),
        ("first", 3.0),
    ]


def test_all_related_returned_the_event_cap_is_the_reporters() -> None:
    detector = _detector(FakeClock())
    for index in range(MAX_RELATED_ON_EVENT + 5):
        detector.record_error(ValueError(), _context(f"fp-{index}", command="c"))
    related = detector.record_error(ValueError(), _context("fp-x", command="c"))
    assert len(related) == MAX_RELATED_ON_EVENT + 5
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
    detector.record_error(ValueError(), _context("fp-a", guild=5))
    clock.advance(0.1234)
    (related,) = detector.record_error(KeyError(), _context("fp-b", guild=5))
    context = related.as_context()
    assert set(context) == {"fingerprint", "command", "seconds_ago", "relation"}
    assert context["fingerprint"] == "fp-a"
    assert context["command"] is None
    assert context["relation"] == "same_guild"
    assert context["seconds_ago"] == pytest.approx(0.123)


# relate() keeps the newest distinct few of what record_error() lists, and the same count.

_ERRORS = st.lists(
    st.tuples(
        st.sampled_from(["fp-a", "fp-b", "fp-c"]),
        st.sampled_from([None, "run-1", "run-2", "run-3", "run-4"]),
        st.sampled_from([None, 1, 2]),
        st.sampled_from([None, "dm", 10, 20]),
        st.sampled_from([None, "play", "skip"]),
        st.sampled_from([0.0, 0.0, 0.5, 3.0, 11.0, 70.0]),  # seconds before this error
        st.booleans(),  # user-caused
    ),
    max_size=40,
)


def _newest_distinct(related: list[RelatedError], limit: int) -> list[RelatedError]:
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
def test_relate_keeps_the_newest_distinct_of_all_related(
    errors: list[tuple[Any, ...]], max_errors: int, limit: int
) -> None:
    clocks = FakeClock(), FakeClock()
    everything_detector = _detector(clocks[0], max_errors=max_errors, window=100.0)
    few_detector = _detector(clocks[1], max_errors=max_errors, window=100.0)
    for fingerprint, run, user, guild, command, pause, user_caused in errors:
        for clock in clocks:
            clock.advance(pause)
        context = _context(fingerprint, run, user, guild, command)
        context["user_caused"] = user_caused
        everything = everything_detector.record_error(ValueError(), context)
        count, few = few_detector.relate(ValueError(), context, limit)
        assert count == len(everything)
        assert few == _newest_distinct(everything, limit)
        # the rules, on every item
        for item in everything:
            assert item.fingerprint != fingerprint
            assert item.relation in ("same_run", "same_command", "same_guild")
            if item.relation == "same_guild":
                assert item.seconds_ago <= 60.0
    assert len(few_detector.recent_errors) <= max_errors


# through a real bot ------------------------------------------------------------------------


async def test_a_bots_typos_and_repeats_relate_nothing_and_a_real_pair_does(
    make_bot, sentry_flush
):
    harness = await make_bot()
    for _ in range(3):
        await harness.message("!add 1 x")  # the same user's typos, in the same guild
    await harness.message("!boom")
    await harness.message("!boom")  # the same error again
    await harness.message("!tools hammer")  # another bug, same guild, seconds later
    events = [e for e in sentry_flush().events() if "exception" in e]
    assert [e["exception"]["values"][-1]["type"] for e in events] == [
        "RuntimeError",
        "RuntimeError",
        "IsADirectoryError",
    ]
    assert [e["tags"]["error.related"] for e in events] == ["no", "no", "yes"]
    correlation = events[2]["contexts"]["correlation"]
    assert correlation["related_count"] == 2  # both RuntimeErrors, listed once
    [related] = correlation["related_errors"]
    assert related["relation"] == "same_guild"
    assert related["fingerprint"] == "|".join(events[0]["fingerprint"])
