"""Error spikes: the core detector with a fake clock, and the message through a real bot."""

from __future__ import annotations

from conftest import assert_sentry_accepts

from tux_sentry_cog.core.spikes import SpikeDetector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_in_five_minutes_is_a_spike_once():
    clock = Clock()
    detector = SpikeDetector(clock=clock)
    results = []
    for _ in range(12):
        results.append(detector.record("g"))
        clock.now += 10
    assert results[:4] == [None] * 4
    assert results[4] == 5
    assert results[5:] == [None] * 7  # rate-limited within the cooldown


def test_slow_repeats_are_not_a_spike():
    clock = Clock()
    detector = SpikeDetector(clock=clock)
    for _ in range(50):
        assert detector.record("g") is None
        clock.now += 76  # five span 304 s: more than five minutes


def test_spikes_again_after_the_cooldown():
    clock = Clock()
    detector = SpikeDetector(cooldown_seconds=900, clock=clock)
    spikes = 0
    for _ in range(200):
        spikes += detector.record("g") is not None
        clock.now += 10  # 2,000 seconds in all
    assert spikes == 3  # at 40 s, then after each 900 s cooldown


def test_groups_are_counted_apart_and_bounded():
    clock = Clock()
    detector = SpikeDetector(max_groups=100, clock=clock)
    for i in range(10_000):
        detector.record(f"group-{i}")
    assert len(detector) == 100
    assert all(detector.record("a") is None for _ in range(4))
    assert detector.record("b") is None
    assert detector.record("a") == 5


async def test_a_spike_raises_one_warning_message(make_bot, sentry_flush):
    harness = await make_bot()
    for _ in range(7):
        await harness.message("!boom")
    endpoint = sentry_flush()
    spikes = [
        e
        for e in endpoint.events()
        if e.get("logentry", {}).get("message", "").startswith("Error spike")
    ]
    errors = [e for e in endpoint.events() if "exception" in e]
    assert len(errors) == 7
    assert len(spikes) == 1
    [spike] = spikes
    assert spike["logentry"] == {"message": "Error spike: RuntimeError in boom"}
    assert "message" not in spike  # never the bare top-level form
    assert spike["level"] == "warning"
    assert spike["fingerprint"] == ["error-spike", "|".join(errors[0]["fingerprint"])]
    assert spike["contexts"]["error_spike"]["count"] == 5
    assert spike["tags"]["command.name"] == "boom"
    assert_sentry_accepts(spike)


async def test_user_errors_do_not_spike(make_bot, sentry_flush):
    harness = await make_bot()
    for _ in range(7):
        await harness.message("!add x y")
    assert sentry_flush().events() == []
