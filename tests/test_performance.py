"""Performance baselines, slowdown detection, resource alerts and resource samples.

Everything runs on a fake clock with seeded noise, so the numbers printed here (and
quoted in the docstring of ``tux_sentry_cog.core.performance``) are reproducible.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
from typing import NamedTuple

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tux_sentry_cog.core import resources as resources_module
from tux_sentry_cog.core.performance import (
    PerformanceMonitor,
    ResourceWatch,
    performance_tier,
)
from tux_sentry_cog.core.resources import ResourceSample, ResourceSampler

BASE_MS = 120.0
SEEDS = range(10)
#: A busy command: one run a second.
RUN_INTERVAL_S = 1.0
WARM_RUNS = 500


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_monitor(**kwargs):
    clock = FakeClock()
    return PerformanceMonitor(clock=clock, **kwargs), clock


def noisy(rng: random.Random, sigma: float, factor: float = 1.0) -> float:
    return factor * BASE_MS * rng.lognormvariate(0.0, sigma)


def run(monitor, clock, name, duration, context=None):
    clock.advance(RUN_INTERVAL_S)
    return monitor.track_command_performance(name, duration, context)


def warm(monitor, clock, rng, sigma, *, runs=WARM_RUNS, name="cmd"):
    for _ in range(runs):
        assert run(monitor, clock, name, noisy(rng, sigma)) is None


# -- tiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "tier"),
    [
        (0.0, "fast"),
        (99.999, "fast"),
        (100.0, "normal"),
        (499.9, "normal"),
        (500.0, "slow"),
        (1999.9, "slow"),
        (2000.0, "very_slow"),
        (1e9, "very_slow"),
    ],
)
def test_performance_tier(duration, tier):
    assert performance_tier(duration) == tier


# -- detection latency -------------------------------------------------------------------


def detection_latency(sigma: float, factor: float, seed: int) -> tuple[int, float]:
    """Slow runs (and seconds) from the first slow run to the reported anomaly."""
    rng = random.Random(seed)
    monitor, clock = make_monitor()
    warm(monitor, clock, rng, sigma)
    started = clock.now
    for runs in range(1, 1001):
        anomaly = run(monitor, clock, "cmd", noisy(rng, sigma, factor))
        if anomaly is not None:
            assert anomaly.command == "cmd"
            assert anomaly.observed_ms > anomaly.threshold_ms > anomaly.baseline_p50_ms
            assert anomaly.baseline_p50_ms == pytest.approx(BASE_MS, rel=0.15)
            return runs, clock.now - started
    pytest.fail(f"{factor}x slowdown at sigma {sigma}, seed {seed}: not detected in 1000 runs")


#: sigma -> factor -> (largest latency in runs over seeds 0..9, largest mean).
LATENCY_BOUNDS = {
    0.3: {3.0: (8, 6.5), 6.0: (4, 3.5)},
    0.4: {3.0: (10, 8.5), 6.0: (5, 4.0)},
    0.5: {3.0: (16, 10.5), 6.0: (6, 5.0)},
}


@pytest.mark.parametrize("sigma", sorted(LATENCY_BOUNDS))
def test_sustained_slowdown_detected_within_a_few_runs(sigma):
    means = {}
    for factor, (max_runs, max_mean) in LATENCY_BOUNDS[sigma].items():
        latencies = [detection_latency(sigma, factor, seed) for seed in SEEDS]
        runs = [r for r, _ in latencies]
        seconds = [s for _, s in latencies]
        means[factor] = statistics.mean(runs)
        # The measured figures are the point: shown with ``pytest -s``.
        print(  # noqa: T201
            f"sigma={sigma} {factor:.0f}x: runs {runs} mean {means[factor]:.1f} max {max(runs)}; "
            f"seconds at 1 run/s: max {max(seconds):.0f}"
        )
        assert max(runs) <= max_runs
        assert means[factor] <= max_mean
        assert max(seconds) <= max_runs * RUN_INTERVAL_S
    # Detection is not instant: a slowdown needs three runs at least.
    assert means[6.0] >= 3
    assert means[6.0] < means[3.0]


# -- false alarms ------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.3, 0.4, 0.5])
def test_no_alarm_on_long_stationary_noise(sigma):
    detected = []
    p50s: list[float] = []
    p95s: list[float] = []
    for seed in SEEDS:
        rng = random.Random(seed)
        # No rate limit: every detection would come back.
        monitor, clock = make_monitor(cooldown_seconds=0, max_anomalies_per_hour=10**9)
        for i in range(20_000):
            assert run(monitor, clock, "cmd", noisy(rng, sigma)) is None
            if i >= 1000 and i % 100 == 0:
                baseline = monitor.baseline("cmd")
                p50s.append(baseline.p50_ms)
                p95s.append(baseline.p95_ms)
        detected.append(monitor.detected)
    print(f"sigma={sigma}: detections over {len(SEEDS)} x 20,000 runs: {detected}")  # noqa: T201
    assert sum(detected) == 0
    # Held-back runs fold back in, so the baseline is the distribution's own, unbiased.
    assert statistics.mean(p50s) == pytest.approx(BASE_MS, rel=0.02)
    assert statistics.mean(p95s) == pytest.approx(BASE_MS * math.exp(1.645 * sigma), rel=0.03)


@pytest.mark.parametrize("sigma", [0.3, 0.5])
@pytest.mark.parametrize("factor", [5.0, 100.0, 10_000.0])
def test_single_and_double_outliers_raise_nothing(sigma, factor):
    for seed in SEEDS:
        rng = random.Random(seed)
        monitor, clock = make_monitor()
        warm(monitor, clock, rng, sigma)
        assert run(monitor, clock, "cmd", BASE_MS * factor) is None
        for _ in range(30):
            assert run(monitor, clock, "cmd", noisy(rng, sigma)) is None
        assert run(monitor, clock, "cmd", BASE_MS * factor) is None
        assert run(monitor, clock, "cmd", BASE_MS * factor) is None
        for _ in range(30):
            assert run(monitor, clock, "cmd", noisy(rng, sigma)) is None
        assert monitor.detected == 0


def test_no_alarm_during_warm_up():
    monitor, clock = make_monitor(warmup=50)
    # Erratic first runs (cold caches, a first connection) only build the baseline.
    for i in range(50):
        assert run(monitor, clock, "cmd", 10.0 if i < 10 else 5_000.0) is None
    assert monitor.detected == 0
    assert monitor.baseline("cmd").samples == 50


def test_slowdown_right_after_warm_up_is_detected():
    monitor, clock = make_monitor(warmup=50)
    rng = random.Random(3)
    warm(monitor, clock, rng, 0.3, runs=50)
    anomalies = [run(monitor, clock, "cmd", noisy(rng, 0.3, 6.0)) for _ in range(5)]
    assert any(anomalies)


def test_steady_fast_command_needs_a_noticeable_change():
    # A 2 ms command going to 6 ms is three times slower and nobody notices: the
    # 20 ms floor of the threshold keeps it quiet; going to 60 ms is noticed.
    monitor, clock = make_monitor()
    rng = random.Random(0)
    for _ in range(300):
        run(monitor, clock, "fast", 2.0 * rng.lognormvariate(0, 0.05))
    for _ in range(200):
        assert run(monitor, clock, "fast", 6.0) is None
    assert monitor.detected == 0
    assert any(run(monitor, clock, "fast", 60.0) for _ in range(5))


def test_invalid_durations_are_ignored():
    monitor, clock = make_monitor()
    for bad in (math.nan, math.inf, -math.inf, -1.0):
        assert run(monitor, clock, "cmd", bad) is None
    assert monitor.baseline("cmd") is None
    assert len(monitor) == 0
    assert run(monitor, clock, "cmd", 0.0) is None
    assert monitor.baseline("cmd").samples == 1


# -- rate limits -------------------------------------------------------------------------


def test_one_anomaly_per_cooldown_and_another_while_still_slow():
    rng = random.Random(1)
    monitor, clock = make_monitor(cooldown_seconds=900.0)
    warm(monitor, clock, rng, 0.3)
    reports = []
    for i in range(1, 6001):
        anomaly = run(monitor, clock, "cmd", noisy(rng, 0.3, 3.0))
        if anomaly is not None:
            reports.append((i, anomaly))
    runs = [i for i, _ in reports]
    print(f"persistent 3x slowdown, 1 run/s, 900 s cooldown: reports at runs {runs}")  # noqa: T201
    assert runs[0] <= 10
    gaps = [b.detected_at - a.detected_at for (_, a), (_, b) in itertools.pairwise(reports)]
    # Still slow after the cooldown: reported again, promptly.
    assert len(reports) >= 2
    assert all(900.0 <= gap <= 900.0 + 20 * RUN_INTERVAL_S for gap in gaps)
    # A permanent change becomes the new baseline instead of alarming forever.
    assert runs[-1] < 3000
    assert monitor.baseline("cmd").p50_ms == pytest.approx(3 * BASE_MS, rel=0.15)
    assert [a for _, a in reports] == list(reversed(monitor.recent_anomalies(10)))


def test_cooldowns_are_per_command_and_capped_per_hour():
    rng = random.Random(2)
    monitor, clock = make_monitor(cooldown_seconds=900.0, max_anomalies_per_hour=2)
    names = ["a", "b", "c"]
    for _ in range(WARM_RUNS):
        for name in names:
            run(monitor, clock, name, noisy(rng, 0.3))
    reported: list[str] = []
    for _ in range(30):
        for name in names:
            anomaly = run(monitor, clock, name, noisy(rng, 0.3, 6.0))
            if anomaly is not None:
                reported.append(anomaly.command)
    # Two different commands report; the third is over the hourly cap.
    assert len(reported) == 2
    assert len(set(reported)) == 2
    assert monitor.detected == 3
    # An hour later all three are still slow and each may report once more.
    clock.advance(3600.0)
    again: list[str] = []
    for _ in range(3):
        for name in names:
            anomaly = run(monitor, clock, name, noisy(rng, 0.3, 6.0))
            if anomaly is not None:
                again.append(anomaly.command)
    assert len(again) == 2


# -- memory ------------------------------------------------------------------------------


def test_memory_is_bounded_with_ten_thousand_commands():
    monitor, clock = make_monitor(max_commands=1000, window=256)
    rng = random.Random(4)
    for i in range(10_000):
        for _ in range(3):
            run(monitor, clock, f"cmd-{i}", noisy(rng, 0.4))
        # One command stays in use all along and is never the least recently run.
        run(monitor, clock, "hot", noisy(rng, 0.4))
    assert len(monitor) == 1000
    assert monitor.baseline("cmd-0") is None
    assert monitor.baseline("cmd-9999").samples == 3
    hot = monitor.baseline("hot")
    assert hot.samples == 256
    assert hot.runs == 10_000
    # Two flat buffers of `window` slots, plus at most the held-back runs and the episode.
    assert monitor.storage("hot") <= 2 * 256 + 32 + 16
    assert monitor.storage("cmd-0") == 0


def test_per_command_storage_is_fixed_even_during_a_long_slowdown():
    monitor, clock = make_monitor(window=64, warmup=32, pending=8)
    rng = random.Random(5)
    warm(monitor, clock, rng, 0.5, runs=200)
    sizes = set()
    for _ in range(5000):
        run(monitor, clock, "cmd", noisy(rng, 0.5, 4.0))
        sizes.add(monitor.storage("cmd"))
    assert max(sizes) <= 2 * 64 + 8 + 16


# -- baseline poisoning ------------------------------------------------------------------


@pytest.mark.parametrize("factor", [3.0, 10.0])
def test_a_short_slowdown_does_not_poison_the_baseline(factor):
    rng = random.Random(6)
    monitor, clock = make_monitor()
    warm(monitor, clock, rng, 0.4)
    before = monitor.baseline("cmd")
    anomalies = [run(monitor, clock, "cmd", noisy(rng, 0.4, factor)) for _ in range(60)]
    assert sum(a is not None for a in anomalies) == 1
    after = monitor.baseline("cmd")
    assert after.p50_ms == pytest.approx(before.p50_ms, rel=0.05)
    assert after.p95_ms == pytest.approx(before.p95_ms, rel=0.30)
    # Back to normal: no lingering alarms, and a second slowdown is caught as fast.
    clock.advance(900.0)
    for _ in range(200):
        assert run(monitor, clock, "cmd", noisy(rng, 0.4)) is None
    assert any(run(monitor, clock, "cmd", noisy(rng, 0.4, factor)) for _ in range(20))


# -- reporting API -----------------------------------------------------------------------


def test_slowest_recent_anomalies_and_context():
    monitor, clock = make_monitor()
    rng = random.Random(7)
    for _ in range(100):
        for name, scale in (("quick", 0.1), ("mid", 1.0), ("slow", 10.0)):
            run(monitor, clock, name, scale * noisy(rng, 0.3))
    slowest = monitor.slowest(2)
    assert [name for name, _ in slowest] == ["slow", "mid"]
    assert slowest[0][1].p95_ms > slowest[0][1].p50_ms
    assert monitor.slowest(5, min_samples=101) == []
    assert monitor.recent_anomalies() == []
    assert monitor.baseline("unknown") is None

    context = {"correlation_id": "abc", "guild.id": "1"}
    anomaly = None
    for _ in range(10):
        anomaly = anomaly or run(monitor, clock, "mid", noisy(rng, 0.3, 6.0), context)
    assert anomaly is not None
    assert anomaly.context == context
    assert anomaly.ratio == pytest.approx(6.0, rel=0.3)
    assert set(anomaly.as_context()) == {
        "observed_ms",
        "baseline_p50_ms",
        "baseline_p95_ms",
        "samples",
        "threshold_ms",
    }
    # The window holds the warm-up runs, less any held back when the slowdown began.
    assert 95 <= anomaly.as_context()["samples"] <= 100
    assert monitor.recent_anomalies() == [anomaly]
    assert monitor.reported == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_commands": 0},
        {"warmup": 1},
        {"warmup": 300, "window": 256},
        {"decision": 3.0, "step_cap": 3.0},
        {"min_spread": 0.0},
        {"min_ratio": 0.5},
    ],
)
def test_nonsense_tunables_are_refused(kwargs):
    with pytest.raises(ValueError, match="must"):
        PerformanceMonitor(**kwargs)


def test_constructible_with_no_arguments():
    monitor = PerformanceMonitor()
    assert monitor.performance_tier(250.0) == "normal"
    assert monitor.track_command_performance("ping", 12.5) is None
    assert monitor.track_command_performance("ping", 12.5, {"a": 1}) is None


durations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1e7),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), durations), max_size=400))
def test_any_sequence_keeps_the_invariants(events):
    monitor, clock = make_monitor(max_commands=4, window=16, warmup=4, pending=4)
    for name, duration in events:
        anomaly = run(monitor, clock, name, duration)
        if anomaly is not None:
            values = anomaly.as_context().values()
            assert all(math.isfinite(v) for v in values)
    assert len(monitor) <= 4
    for name in "abcdefgh":
        assert monitor.storage(name) <= 2 * 16 + 4 + 16
        baseline = monitor.baseline(name)
        if baseline is not None:
            assert 0 <= baseline.p50_ms <= baseline.p95_ms


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    magnitude=st.floats(min_value=1.0, max_value=1e9),
    position=st.integers(0, 100),
)
def test_one_outlier_of_any_size_never_alarms(seed, magnitude, position):
    rng = random.Random(seed)
    monitor, clock = make_monitor(cooldown_seconds=0)
    warm(monitor, clock, rng, 0.5, runs=100)
    for i in range(101):
        duration = BASE_MS * magnitude if i == position else noisy(rng, 0.5)
        run(monitor, clock, "cmd", duration)
    # ``detected`` counts any detection, reported or not.
    assert monitor.detected == 0


# -- ResourceWatch -----------------------------------------------------------------------


def make_watch(**kwargs):
    clock = FakeClock()
    return ResourceWatch(500.0, 80.0, clock=clock, **kwargs), clock


def test_resource_alert_needs_three_consecutive_high_samples():
    watch, _ = make_watch()
    assert watch.observe(600.0, 10.0) is None
    assert watch.above
    assert watch.memory_above
    assert not watch.cpu_above
    assert watch.observe(650.0, 10.0) is None
    alert = watch.observe(700.0, 10.0)
    assert alert is not None
    assert alert.memory_high
    assert not alert.cpu_high
    assert alert.memory_mb == 700.0
    assert alert.as_context()["memory_threshold_mb"] == 500.0
    assert alert.sustained_samples == 3


def test_an_interrupted_streak_raises_nothing():
    watch, _ = make_watch()
    samples = [(600, 90), (600, 90), (400, 10), (600, 90), (600, 10), (10, 90), (10, 90)]
    above = []
    for memory, cpu in samples:
        assert watch.observe(memory, cpu) is None
        above.append(watch.above)
    assert above == [True, True, False, True, True, True, True]
    # CPU high three times in a row now: its own streak, not memory's.
    alert = watch.observe(10.0, 95.0)
    assert alert is not None
    assert alert.cpu_high
    assert not alert.memory_high


def test_threshold_itself_is_not_above():
    watch, _ = make_watch(sustained_samples=1)
    assert watch.observe(500.0, 80.0) is None
    assert not watch.above


def test_missing_figures_never_count_and_never_crash():
    watch, _ = make_watch()
    for _ in range(10):
        assert watch.observe(None, None) is None
        assert not watch.above
    # Memory unreadable, CPU high: the CPU alone can alert.
    watch.observe(None, 90.0)
    watch.observe(None, 90.0)
    alert = watch.observe(None, 90.0)
    assert alert is not None
    assert alert.memory_mb is None
    assert alert.cpu_high
    # An unreadable figure breaks a streak: it says nothing about being high.
    watch2, _ = make_watch()
    for figures in [(600.0, None), (None, None), (600.0, None), (600.0, math.nan)]:
        assert watch2.observe(*figures) is None
    assert watch2.memory_streak == 2
    assert watch2.cpu_streak == 0


def test_resource_alerts_are_rate_limited():
    watch, clock = make_watch(cooldown_seconds=3600.0)
    alerts = []
    for _ in range(200):  # a sample every 30 s for 100 minutes, memory high throughout
        clock.advance(30.0)
        alert = watch.observe(900.0, 10.0)
        alerts.append(alert)
        assert watch.above
    raised = [i for i, alert in enumerate(alerts) if alert is not None]
    # Third sample, then the first sample an hour after it.
    assert raised == [2, 122]


# -- ResourceSampler ---------------------------------------------------------------------


class _Mem(NamedTuple):
    rss: int
    vms: int


class FakeProcess:
    def __init__(self, *, cpu=None, threads=None, files=None, memory=None):
        self.cpu_calls: list[float | None] = []
        self._cpu = cpu
        self._threads = threads
        self._files = files
        self._memory = memory

    @staticmethod
    def _answer(value):
        if isinstance(value, BaseException):
            raise value
        return value

    def memory_info(self):
        return self._answer(self._memory)

    def cpu_percent(self, interval=None):
        self.cpu_calls.append(interval)
        return self._answer(self._cpu)

    def num_threads(self):
        return self._answer(self._threads)

    def open_files(self):
        return self._answer(self._files)


def test_failing_figures_become_none_and_log_once(caplog):
    process = FakeProcess(
        memory=_Mem(rss=300 * 1_048_576, vms=0),
        cpu=psutil.AccessDenied(pid=1),
        threads=NotImplementedError("no threads here"),
        files=psutil.AccessDenied(pid=1),
    )
    with caplog.at_level(logging.DEBUG, logger="tux_sentry_cog.core.resources"):
        sampler = ResourceSampler(process)
        first = sampler.sample()
        second = sampler.sample()
    assert first == ResourceSample(memory_mb=300.0)
    assert second == first
    messages = [record.getMessage() for record in caplog.records]
    assert sorted(messages) == sorted(
        f"resource figure {kind} unavailable" for kind in ("cpu_percent", "threads", "open_files")
    )
    assert sampler.unavailable == {"cpu_percent", "threads", "open_files"}


def test_missing_methods_and_memory_failure():
    class Bare:
        def memory_info(self):
            raise psutil.NoSuchProcess(pid=1)

        def num_threads(self):
            return 7

    sample = ResourceSampler(Bare()).sample()
    assert sample.memory_mb is None
    assert sample.cpu_percent is None  # AttributeError: no cpu_percent at all
    assert sample.open_files is None
    assert sample.threads == 7


def test_cpu_is_primed_and_never_blocks():
    process = FakeProcess(memory=_Mem(rss=0, vms=0), cpu=42.5, threads=3, files=["a", "b"])
    sampler = ResourceSampler(process, cpu_count=1)
    assert process.cpu_calls == [None]  # primed at construction, non-blocking
    sample = sampler.sample()
    assert process.cpu_calls == [None, None]
    assert sample == ResourceSample(memory_mb=0.0, cpu_percent=42.5, threads=3, open_files=2)
    sample.asyncio_tasks = 12
    sample.event_loop_lag_ms = 1.5
    assert sample.asyncio_tasks == 12


def test_no_process_at_all(monkeypatch):
    def refuse():
        raise psutil.AccessDenied(pid=0)

    monkeypatch.setattr(resources_module.psutil, "Process", refuse)
    sampler = ResourceSampler()
    assert sampler.sample() == ResourceSample()
    assert "process" in sampler.unavailable


def test_real_sampler_on_this_process():
    sampler = ResourceSampler()
    sample = sampler.sample()
    assert sample.memory_mb is not None
    assert sample.memory_mb > 0
    assert sample.threads is None or sample.threads >= 1
    assert sample.cpu_percent is None or sample.cpu_percent >= 0
    assert sample.open_files is None or sample.open_files >= 0
    assert sample.asyncio_tasks is None
    assert sample.event_loop_lag_ms is None
