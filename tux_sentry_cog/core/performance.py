"""Per-command performance baselines, slowdown detection, and resource-usage alerts.

Baseline
    Each command keeps a sliding window of its last ``window`` (256) accepted durations,
    stored twice in flat ``array('d')`` buffers: once in arrival order (a ring, so the
    oldest sample is known when it leaves) and once sorted (so p50 and p95 are exact
    look-ups, and an insert or removal is a bisect plus a memmove of at most 2 KiB).
    That is 4 KiB per command at most and nothing else grows with the number of runs;
    ``max_commands`` (1000) commands at most are tracked, the least recently run one is
    forgotten first. A window of recent samples was chosen over a quantile sketch (P²,
    t-digest) or a decaying reservoir because it gives exact, explainable quantiles over
    a known horizon ("your last 256 runs"), forgets old behaviour deterministically, and
    at this size costs about the same as a sketch.

Detection rule
    Durations are compared in log space, where latency noise is roughly symmetric.
    From the window: ``spread = max(ln(p95 / p50) / 1.645, 0.15)`` (the log-normal
    sigma implied by the two quantiles) and::

        threshold_ms = max(p50 * exp(1.1 * spread), 1.75 * p50, p50 + 20 ms)

    Every run adds ``step = ln(duration / threshold_ms) / spread``, clamped to ±3, to a
    one-sided CUSUM score ``S = max(0, S + step)`` (capped at 8 + 3):
    runs above the threshold push it up in proportion to how far above they are, runs
    below drain it. A run with ``S >= 8`` is a detected slowdown. Consequences:

    * one outlier, however slow, adds at most 3 and cannot alarm; two cannot either;
      it takes three runs in a row far above the threshold, or more runs less far;
    * the rule is scale-free: the false-alarm rate is the same for a 5 ms and a 5 s
      command with the same relative noise, and noisier commands get a higher
      threshold instead of more alarms; the ``1.75 * p50`` and ``+20 ms`` floors keep a
      very steady or very fast command from alarming on changes nobody would notice;
    * no detection before ``warmup`` (50) samples are in the window.

    Samples seen while ``S > 0`` are held back from the window (at most 32); if the
    score drains back to 0 they were noise and are folded in, so the baseline stays
    unbiased. Once a slowdown is detected, its runs are quarantined: only one in
    ``adapt_stride`` (16) enters the window, so a short slowdown leaves p50 where it
    was, while a permanent change of a command's speed becomes its new baseline after
    about 2,000 runs instead of alarming forever.

Rate limits
    At most one anomaly per command per ``cooldown_seconds`` (15 minutes), and at most
    ``max_anomalies_per_hour`` (10) in total. A slowdown that is still there when the
    cooldown ends is reported again.

Measured
    Base 120 ms with log-normal noise, one run a second, default tunables. Latency is
    the number of slow runs up to and including the one that returns the anomaly,
    after 500 stationary runs; ``tests/test_performance.py`` prints and asserts these
    (seeds 0..9):

    =====  ======================  ======================  ===========================
    sigma  3x slowdown, mean/max   6x slowdown, mean/max   detections, 10 x 20,000 runs
    =====  ======================  ======================  ===========================
    0.3    6.0 / 7 runs            3.0 / 3 runs            0
    0.4    8.0 / 10 runs           3.8 / 4 runs            0
    0.5    9.9 / 14 runs           4.4 / 5 runs            0
    =====  ======================  ======================  ===========================

    Outside the test suite (same generator): one 5,000,000-run stationary series at
    sigma 0.5 raised no detection (a decision level of 7 raised 1 there and saved 0.7
    runs of latency, hence 8; above sigma 0.51 the floors do not bind and the rule is
    scale-free, so this rate holds for every noisier command); 6,000 fresh commands of
    400 runs each raised none during or just after warm-up; over 30 seeds, 3x at
    sigma 0.5 took 9.0 runs on average and 16 at most. Where the rule is weak:
    at sigma 0.8 a 3x slowdown is only 1.4 sigma and took 27 runs on average, and in 4
    of 30 seeds the baseline followed it before a detection; a heavy tail (sigma 0.3
    plus 5 % of runs 2-5x slower, independently) raised 1 detection in 600,000 runs.
    Each run costs about 11 microseconds, a calm run (the common case) about half that.

A single outlier of any size (up to 10^9 times the median) raises nothing; the tests
check it with hypothesis.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import time
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "FAST_MS",
    "NORMAL_MS",
    "SLOW_MS",
    "Baseline",
    "PerformanceAnomaly",
    "PerformanceMonitor",
    "ResourceAlert",
    "ResourceWatch",
    "performance_tier",
]

_log = logging.getLogger(__name__)

#: Upper bounds (exclusive) of the ``performance_tier`` values, in milliseconds (docs/metrics.md).
FAST_MS = 100.0
NORMAL_MS = 500.0
SLOW_MS = 2000.0

#: The standard normal quantile at 0.95: ``ln(p95 / p50) / Z95`` estimates a log-normal sigma.
_Z95 = 1.6448536269514722
#: Fewest warm-up samples: a median and a 95th percentile need at least two.
_MIN_WARMUP = 2
#: Durations are floored here before taking logarithms (a 0 ms run is a very fast run).
_MIN_DURATION_MS = 1e-3
_HOUR = 3600.0


def performance_tier(duration_ms: float) -> str:
    """The ``performance_tier`` of a run: ``fast``, ``normal``, ``slow`` or ``very_slow``.

    Args:
        duration_ms: The run's duration in milliseconds.

    Returns:
        ``fast`` below 100 ms, ``normal`` below 500, ``slow`` below 2000, else
        ``very_slow`` (which is also where a NaN lands).
    """
    if duration_ms < FAST_MS:
        return "fast"
    if duration_ms < NORMAL_MS:
        return "normal"
    if duration_ms < SLOW_MS:
        return "slow"
    return "very_slow"


@dataclass(frozen=True, slots=True)
class Baseline:
    """A command's current baseline.

    Attributes:
        p50_ms: Median duration over the window, in milliseconds.
        p95_ms: 95th percentile over the window, in milliseconds.
        samples: Durations in the window (at most the monitor's ``window``).
        runs: Runs tracked since the command was first seen (or last evicted).
    """

    p50_ms: float
    p95_ms: float
    samples: int
    runs: int


@dataclass(frozen=True, slots=True)
class PerformanceAnomaly:
    """A sustained slowdown of one command.

    Attributes:
        command: The command's qualified name.
        observed_ms: Median duration of the runs in the slow episode (the last 16 at most).
        baseline_p50_ms: The baseline median when the slowdown was detected.
        baseline_p95_ms: The baseline 95th percentile when the slowdown was detected.
        samples: Durations in the baseline window.
        threshold_ms: Runs above this counted towards the detection.
        detected_at: The monitor's clock when the anomaly was reported.
        context: The context passed with the run that completed the detection.
    """

    command: str
    observed_ms: float
    baseline_p50_ms: float
    baseline_p95_ms: float
    samples: int
    threshold_ms: float
    detected_at: float
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ratio(self) -> float:
        """How many times slower than the baseline median the episode ran."""
        return self.observed_ms / self.baseline_p50_ms if self.baseline_p50_ms > 0 else math.inf

    def as_context(self) -> dict[str, Any]:
        """The ``performance_anomaly`` context of docs/performance.md."""
        return {
            "observed_ms": round(self.observed_ms, 3),
            "baseline_p50_ms": round(self.baseline_p50_ms, 3),
            "baseline_p95_ms": round(self.baseline_p95_ms, 3),
            "samples": self.samples,
            "threshold_ms": round(self.threshold_ms, 3),
        }


class _Window:
    """The last ``size`` durations: a ring in arrival order and a sorted copy."""

    __slots__ = ("_next", "_ring", "_size", "_sorted")

    def __init__(self, size: int) -> None:
        self._size = size
        # Both grow until full and never beyond: a command run three times costs three slots.
        self._ring = array("d")
        self._sorted = array("d")
        self._next = 0

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, value: float) -> None:
        if len(self._ring) < self._size:
            self._ring.append(value)
        else:
            oldest = self._ring[self._next]
            self._ring[self._next] = value
            self._next = (self._next + 1) % self._size
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        bisect.insort(self._sorted, value)

    def median(self) -> float:
        """``quantile(0.5)``, the same arithmetic without the general case's steps."""
        values = self._sorted
        last = len(values) - 1
        low = last // 2
        if last % 2 == 0:
            return values[low]  # durations are finite and positive: + 0.0 changes nothing
        return values[low] + (values[low + 1] - values[low]) * 0.5

    def quantile(self, q: float) -> float:
        # Linear interpolation between closest ranks (numpy's default method).
        position = q * (len(self._sorted) - 1)
        low = int(position)
        high = min(low + 1, len(self._sorted) - 1)
        fraction = position - low
        return self._sorted[low] + (self._sorted[high] - self._sorted[low]) * fraction

    def storage(self) -> int:
        """Slots allocated (both buffers), for the memory-bound tests."""
        return len(self._ring) + len(self._sorted)


class _CommandState:
    __slots__ = (
        "alarmed",
        "episode",
        "last_reported",
        "pending",
        "quarantined",
        "runs",
        "score",
        "window",
    )

    def __init__(self, window: int, pending: int) -> None:
        self.window = _Window(window)
        self.score = 0.0
        # Runs seen while the score is above 0, not yet in the window.
        self.pending: deque[float] = deque(maxlen=pending)
        # The current slow episode, for ``observed_ms``.
        self.episode: deque[float] = deque(maxlen=16)
        self.alarmed = False
        self.quarantined = 0
        self.last_reported: float | None = None
        self.runs = 0


class PerformanceMonitor:
    """Per-command baselines and sustained-slowdown detection (see the module docstring).

    Not thread-safe; the cog calls it from the event loop only.

    Args:
        max_commands: Most commands tracked; the least recently run is forgotten first.
        clock: Monotonic clock in seconds; injectable for tests.
        window: Durations kept per command for the baseline.
        warmup: Durations needed in the window before a command can alarm.
        allowance: Threshold above the median, in units of the command's log spread.
        min_ratio: The threshold is at least this many times the median.
        min_excess_ms: The threshold is at least this many milliseconds above the median.
        decision: Score at which a slowdown is detected.
        step_cap: Largest step one run adds to (or takes from) the score.
        min_spread: Floor of the log spread, so a perfectly steady command has a scale.
        pending: Runs held back from the window while a slowdown is suspected.
        adapt_stride: During a detected slowdown one run in this many enters the window.
        cooldown_seconds: At most one anomaly per command in this many seconds.
        max_anomalies_per_hour: At most this many anomalies in any hour, all commands.
        history: Reported anomalies kept for :meth:`recent_anomalies`.
    """

    def __init__(
        self,
        *,
        max_commands: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        window: int = 256,
        warmup: int = 50,
        allowance: float = 1.1,
        min_ratio: float = 1.75,
        min_excess_ms: float = 20.0,
        decision: float = 8.0,
        step_cap: float = 3.0,
        min_spread: float = 0.15,
        pending: int = 32,
        adapt_stride: int = 16,
        cooldown_seconds: float = 900.0,
        max_anomalies_per_hour: int = 10,
        history: int = 20,
    ) -> None:
        """Create a monitor with no baselines yet."""
        if max_commands < 1 or history < 1 or pending < 1 or adapt_stride < 1:
            raise ValueError("max_commands, history, pending and adapt_stride must be >= 1")
        if not _MIN_WARMUP <= warmup <= window:
            raise ValueError("warmup must be between 2 and window")
        if decision <= step_cap:
            # Otherwise a single outlier could alarm.
            raise ValueError("decision must be larger than step_cap")
        if min_spread <= 0 or min_ratio < 1 or allowance < 0 or min_excess_ms < 0:
            raise ValueError("min_spread must be > 0, min_ratio >= 1, the rest >= 0")
        self._max_commands = max_commands
        self._clock = clock
        self._window = window
        self._warmup = warmup
        self._allowance = allowance
        self._min_ratio = min_ratio
        self._min_excess_ms = min_excess_ms
        self._decision = decision
        # A cap just above the decision level: the score remembers only the last few slow
        # runs, so it falls below the decision level within a few runs of a recovery.
        self._score_cap = decision + step_cap
        self._step_cap = step_cap
        self._min_spread = min_spread
        self._pending = pending
        self._adapt_stride = adapt_stride
        self._cooldown = cooldown_seconds
        self._commands: OrderedDict[str, _CommandState] = OrderedDict()
        self._reported_at: deque[float] = deque(maxlen=max(max_anomalies_per_hour, 1))
        self._max_per_hour = max_anomalies_per_hour
        self._anomalies: deque[PerformanceAnomaly] = deque(maxlen=history)
        #: Slowdowns detected (a detection starts when the score first reaches ``decision``).
        self.detected = 0
        #: Anomalies returned to the caller (detections and re-reports minus rate limits).
        self.reported = 0

    #: The ``performance_tier`` metric attribute of a duration, as ``PerformanceMonitor`` names it.
    performance_tier = staticmethod(performance_tier)

    def __len__(self) -> int:
        """Commands currently tracked."""
        return len(self._commands)

    def track_command_performance(
        self,
        command_name: str,
        duration: float,
        context: Mapping[str, Any] | None = None,
    ) -> PerformanceAnomaly | None:
        """Record one run of ``command_name`` and check it against the command's baseline.

        Args:
            command_name: The command's qualified name.
            duration: The run's duration in milliseconds. Negative or non-finite values
                are ignored.
            context: Anything the caller wants on the anomaly if this run completes one.

        Returns:
            A :class:`PerformanceAnomaly` when this run completes the detection of a
            sustained slowdown (or it is still slow after the cooldown) and the rate
            limits allow a report; otherwise ``None``.
        """
        if not math.isfinite(duration) or duration < 0:
            return None
        duration = max(duration, _MIN_DURATION_MS)
        # Every command run comes through here: the lookups are inlined, and a calm run
        # (below) takes a short path.
        state = self._commands.get(command_name)
        if state is None:
            state = self._new_state(command_name)
        else:
            self._commands.move_to_end(command_name)
        state.runs += 1
        window = state.window
        if len(window) < self._warmup:
            window.add(duration)
            return None

        p50 = max(window.median(), _MIN_DURATION_MS)
        if state.score == 0.0 and duration <= max(p50 * self._min_ratio, p50 + self._min_excess_ms):
            # The common calm run. The threshold is never below these two floors, so
            # this run's step is <= 0 and a score at 0 stays there: the outcome the full
            # rule below gives, without its p95, logarithms and exponential.
            self._calm(state, duration)
            return None
        p95 = max(window.quantile(0.95), p50)
        spread = max(math.log(p95 / p50) / _Z95, self._min_spread)
        threshold = max(
            p50 * math.exp(self._allowance * spread),
            p50 * self._min_ratio,
            p50 + self._min_excess_ms,
        )
        step = math.log(duration / threshold) / spread
        step = min(max(step, -self._step_cap), self._step_cap)
        state.score = min(max(0.0, state.score + step), self._score_cap)

        if state.score == 0.0:
            self._calm(state, duration)
            return None
        state.episode.append(duration)
        if state.alarmed:
            self._quarantine(state, duration)
        else:
            self._suspect(state, duration)
        # Only a slow run reports: after a recovery the score takes a few fast runs to
        # drain, and those must not re-report the slowdown when the cooldown ends.
        if state.alarmed and state.score >= self._decision and step > 0:
            return self._report(
                command_name, state, p50=p50, p95=p95, threshold=threshold, context=context
            )
        return None

    def baseline(self, command: str) -> Baseline | None:
        """The baseline of ``command``, or ``None`` if it has no samples.

        Reading a baseline does not count as a run for the least-recently-used eviction.
        """
        state = self._commands.get(command)
        if state is None or len(state.window) == 0:
            return None
        return self._baseline(state)

    def slowest(self, n: int = 5, *, min_samples: int = 1) -> list[tuple[str, Baseline]]:
        """The ``n`` commands with the highest p95, slowest first.

        Args:
            n: How many commands to return.
            min_samples: Ignore commands with fewer samples in their window.
        """
        candidates = (
            (name, state)
            for name, state in self._commands.items()
            if len(state.window) >= max(min_samples, 1)
        )
        top = heapq.nlargest(n, candidates, key=lambda item: item[1].window.quantile(0.95))
        return [(name, self._baseline(state)) for name, state in top]

    def recent_anomalies(self, n: int = 5) -> list[PerformanceAnomaly]:
        """The last ``n`` reported anomalies, newest first."""
        return list(reversed(self._anomalies))[:n]

    def storage(self, command: str) -> int:
        """Duration slots held for ``command`` (window, held-back runs, episode); 0 if untracked."""
        state = self._commands.get(command)
        if state is None:
            return 0
        return state.window.storage() + len(state.pending) + len(state.episode)

    def _new_state(self, command: str) -> _CommandState:
        state = _CommandState(self._window, self._pending)
        self._commands[command] = state
        if len(self._commands) > self._max_commands:
            evicted, _ = self._commands.popitem(last=False)
            _log.debug("performance baseline of %r evicted (least recently run)", evicted)
        return state

    @staticmethod
    def _calm(state: _CommandState, duration: float) -> None:
        # Calm again. Held-back runs of a false start were noise and belong in the
        # baseline; the runs of a detected slowdown were quarantined already.
        if not state.alarmed:
            for held in state.pending:
                state.window.add(held)
        state.pending.clear()
        state.episode.clear()
        state.alarmed = False
        state.window.add(duration)

    def _suspect(self, state: _CommandState, duration: float) -> None:
        # Not yet detected: hold the run back from the baseline until the score decides.
        if len(state.pending) == self._pending:
            # A long ambiguous stretch: the baseline follows, only later.
            state.window.add(state.pending[0])
        state.pending.append(duration)
        if state.score >= self._decision:
            state.alarmed = True
            self.detected += 1
            for held in state.pending:
                self._quarantine(state, held)
            state.pending.clear()

    def _quarantine(self, state: _CommandState, duration: float) -> None:
        # One slow run in adapt_stride still counts, so a permanent change of speed
        # becomes the new baseline eventually instead of alarming forever.
        state.quarantined += 1
        if state.quarantined % self._adapt_stride == 0:
            state.window.add(duration)

    def _report(
        self,
        command: str,
        state: _CommandState,
        *,
        p50: float,
        p95: float,
        threshold: float,
        context: Mapping[str, Any] | None,
    ) -> PerformanceAnomaly | None:
        now = self._clock()
        if state.last_reported is not None and now - state.last_reported < self._cooldown:
            return None
        while self._reported_at and now - self._reported_at[0] >= _HOUR:
            self._reported_at.popleft()
        if len(self._reported_at) >= self._max_per_hour:
            return None
        state.last_reported = now
        self._reported_at.append(now)
        anomaly = PerformanceAnomaly(
            command=command,
            observed_ms=_median(state.episode),
            baseline_p50_ms=p50,
            baseline_p95_ms=p95,
            samples=len(state.window),
            threshold_ms=threshold,
            detected_at=now,
            context=dict(context) if context else {},
        )
        self._anomalies.append(anomaly)
        self.reported += 1
        return anomaly

    @staticmethod
    def _baseline(state: _CommandState) -> Baseline:
        return Baseline(
            p50_ms=state.window.quantile(0.5),
            p95_ms=state.window.quantile(0.95),
            samples=len(state.window),
            runs=state.runs,
        )


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


@dataclass(frozen=True, slots=True)
class ResourceAlert:
    """Memory or CPU stayed above its threshold for ``sustained_samples`` samples.

    Attributes:
        memory_mb: Resident memory of the sample that raised the alert, if known.
        cpu_percent: CPU of that sample, if known.
        memory_high: Memory was above its threshold for the last ``sustained_samples``.
        cpu_high: CPU was above its threshold for the last ``sustained_samples``.
        memory_threshold_mb: The memory threshold.
        cpu_threshold_percent: The CPU threshold.
        sustained_samples: Consecutive samples needed for an alert.
        detected_at: The watch's clock when the alert was raised.
    """

    memory_mb: float | None
    cpu_percent: float | None
    memory_high: bool
    cpu_high: bool
    memory_threshold_mb: float
    cpu_threshold_percent: float
    sustained_samples: int
    detected_at: float

    def as_context(self) -> dict[str, Any]:
        """The alert as an event context (no clock values)."""
        return {
            "memory_mb": self.memory_mb,
            "cpu_percent": self.cpu_percent,
            "memory_high": self.memory_high,
            "cpu_high": self.cpu_high,
            "memory_threshold_mb": self.memory_threshold_mb,
            "cpu_threshold_percent": self.cpu_threshold_percent,
            "sustained_samples": self.sustained_samples,
        }


def _above(value: float | None, threshold: float) -> bool:
    # A figure psutil could not read says nothing, so it never counts as high.
    return value is not None and math.isfinite(value) and value > threshold


class ResourceWatch:
    """Turns resource samples into rare ``High resource usage`` alerts.

    A figure counts as high when it is strictly above its threshold. An alert needs
    ``sustained_samples`` consecutive high samples of the same figure (a missing figure
    breaks the run), and at most one alert is raised per ``cooldown_seconds``; a figure
    still high when the cooldown ends raises the next one.

    Args:
        memory_threshold_mb: High-memory threshold in MiB.
        cpu_threshold_percent: High-CPU threshold in percent of the whole machine
            (0..100, as :class:`~tux_sentry_cog.core.resources.ResourceSampler` reports).
        sustained_samples: Consecutive high samples needed for an alert.
        cooldown_seconds: At most one alert in this many seconds.
        clock: Monotonic clock in seconds; injectable for tests.
    """

    def __init__(
        self,
        memory_threshold_mb: float,
        cpu_threshold_percent: float,
        *,
        sustained_samples: int = 3,
        cooldown_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a watch with no samples yet."""
        if sustained_samples < 1:
            raise ValueError("sustained_samples must be >= 1")
        self.memory_threshold_mb = memory_threshold_mb
        self.cpu_threshold_percent = cpu_threshold_percent
        self.sustained_samples = sustained_samples
        self._cooldown = cooldown_seconds
        self._clock = clock
        self.memory_streak = 0
        self.cpu_streak = 0
        self.memory_above = False
        self.cpu_above = False
        self.last_alert: ResourceAlert | None = None

    @property
    def above(self) -> bool:
        """Whether the last sample had memory or CPU above its threshold."""
        return self.memory_above or self.cpu_above

    def observe(self, memory_mb: float | None, cpu_percent: float | None) -> ResourceAlert | None:
        """Record one sample; return an alert when one is due.

        Args:
            memory_mb: Resident memory in MiB, ``None`` when it could not be read.
            cpu_percent: CPU in percent, ``None`` when it could not be read.

        Returns:
            A :class:`ResourceAlert` when memory or CPU has been above its threshold for
            ``sustained_samples`` consecutive samples and no alert was raised in the
            last ``cooldown_seconds``; otherwise ``None``. Whether this one sample was
            high is in :attr:`above`, :attr:`memory_above` and :attr:`cpu_above`.
        """
        self.memory_above = _above(memory_mb, self.memory_threshold_mb)
        self.cpu_above = _above(cpu_percent, self.cpu_threshold_percent)
        self.memory_streak = self.memory_streak + 1 if self.memory_above else 0
        self.cpu_streak = self.cpu_streak + 1 if self.cpu_above else 0
        memory_high = self.memory_streak >= self.sustained_samples
        cpu_high = self.cpu_streak >= self.sustained_samples
        if not (memory_high or cpu_high):
            return None
        now = self._clock()
        if self.last_alert is not None and now - self.last_alert.detected_at < self._cooldown:
            return None
        self.last_alert = ResourceAlert(
            memory_mb=memory_mb,
            cpu_percent=cpu_percent,
            memory_high=memory_high,
            cpu_high=cpu_high,
            memory_threshold_mb=self.memory_threshold_mb,
            cpu_threshold_percent=self.cpu_threshold_percent,
            sustained_samples=self.sustained_samples,
            detected_at=now,
        )
        return self.last_alert
