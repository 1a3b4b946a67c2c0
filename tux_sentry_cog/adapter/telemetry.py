"""The cog's metrics and background work: resource samples, performance and gateway.

Metrics are recorded through the SDK where they are measured (see
:mod:`tux_sentry_cog.core.metrics`): a command's at the end of its run, inside it. Two
``discord.ext.tasks`` loops, started on load and stopped on unload:

- the rate loop (``TUX_SENTRY_FLUSH_INTERVAL``) records the ``errors.rate`` gauge, and
  once more on unload;
- the resource loop (``TUX_SENTRY_RESOURCE_INTERVAL``) samples memory, CPU, threads,
  open files, asyncio tasks, event-loop lag and gateway latency per shard, records the
  gauges, and raises ``High resource usage`` when a threshold is exceeded three samples
  in a row.

Both loops catch and log every fault: a failing psutil call degrades one figure, and
neither stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import sentry_sdk
from discord.ext import tasks

from tux_sentry_cog.adapter.discord_limits import INTERACTION_TYPES, SHARED_KEY, DiscordLimits
from tux_sentry_cog.adapter.hooks import add_finished_breadcrumb
from tux_sentry_cog.adapter.loop_patches import OWN_LOOP_MARK
from tux_sentry_cog.core.limits import clamp_tags
from tux_sentry_cog.core.metrics import MetricsRecorder, SlidingWindowCounter
from tux_sentry_cog.core.payload import OwnCrumbData
from tux_sentry_cog.core.performance import PerformanceMonitor, ResourceWatch
from tux_sentry_cog.core.reporters import BusinessMetricsReporter, ErrorMetricsReporter
from tux_sentry_cog.core.resources import ResourceSample, ResourceSampler
from tux_sentry_cog.shared import SHARED

if TYPE_CHECKING:
    from discord.ext import commands

    from tux_sentry_cog.adapter.context import SourceInfo
    from tux_sentry_cog.config import SentryCogConfig
    from tux_sentry_cog.core.client import SentryConnection
    from tux_sentry_cog.core.performance import PerformanceAnomaly, ResourceAlert
    from tux_sentry_cog.core.runs import CommandRun

__all__ = ["Telemetry"]

_log = logging.getLogger(__name__)

#: Gateway events kept for the status report.
MAX_GATEWAY_EVENTS = 20



class Telemetry:
    """Metrics, performance baselines, resources and gateway health of one bot.

    Args:
        bot: The bot.
        config: The cog's configuration.
        connection: The Sentry connection (metrics are sent only when it is active).
    """

    def __init__(
        self, bot: commands.Bot, config: SentryCogConfig, connection: SentryConnection
    ) -> None:
        """Create every part; the loops start with :meth:`start`."""
        self.bot = bot
        self.config = config
        self.connection = connection
        self.metrics = MetricsRecorder(config.metric_prefix, lambda: connection.active)
        self.error_window = SlidingWindowCounter(window_seconds=300, bucket_seconds=1)
        self.user_error_window = SlidingWindowCounter(window_seconds=300, bucket_seconds=1)
        self.errors = ErrorMetricsReporter(
            self.metrics, self.error_window, self.user_error_window
        )
        self.business = BusinessMetricsReporter(self.metrics)
        self.performance = PerformanceMonitor()
        self.sampler = ResourceSampler()
        self.watch = ResourceWatch(config.memory_threshold_mb, config.cpu_threshold_percent)
        self.last_sample: ResourceSample | None = None
        self.gateway_events: deque[str] = deque(maxlen=MAX_GATEWAY_EVENTS)
        self.limits = DiscordLimits(connection, self.metrics)
        self.rate_gauges = 0
        self.flush_failures = 0
        self._flush_loop = tasks.loop(seconds=config.flush_interval)(self._flush)
        self._resource_loop = tasks.loop(seconds=config.resource_interval)(self._sample)
        for loop in (self._flush_loop, self._resource_loop):
            setattr(loop, OWN_LOOP_MARK, True)  # neither runs nor monitors

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Publish the recorder for the bot's own code and start both loops."""
        SHARED.active["metrics"] = self.metrics
        SHARED.active["error_window"] = self.error_window
        SHARED.active["user_error_window"] = self.user_error_window
        SHARED.active[SHARED_KEY] = self.limits
        self._flush_loop.start()
        self._resource_loop.start()

    async def stop(self) -> None:
        """Stop the loops and record the last ``errors.rate``, before the client is closed."""
        for loop in (self._flush_loop, self._resource_loop):
            loop.cancel()
        if SHARED.active.get("metrics") is self.metrics:
            SHARED.active.pop("metrics", None)
            SHARED.active.pop("error_window", None)
            SHARED.active.pop("user_error_window", None)
        if SHARED.active.get(SHARED_KEY) is self.limits:
            SHARED.active.pop(SHARED_KEY, None)
        await self.flush()

    # per command ---------------------------------------------------------------------

    def command_finished(self, run: CommandRun, info: SourceInfo, status: str) -> None:
        """Record a finished run's metrics and check it against its baseline."""
        if not info.known:
            return
        duration = run.elapsed_ms()
        self.errors.record_command(
            run.name or "unknown",
            run.command_type or "unknown",
            run.cog or "none",
            status or "ok",
            duration,
        )
        if run.first_response_ms is not None and run.command_type in INTERACTION_TYPES:
            self.metrics.distribution(
                "interactions.response_time",
                run.first_response_ms,
                "millisecond",
                {"interaction_type": run.command_type},
            )
        self.limits.interaction_finished(run, info)
        anomaly = self.performance.track_command_performance(run.name, duration)
        if anomaly is not None:
            self._anomaly(anomaly, info, run)

    def _anomaly(self, anomaly: PerformanceAnomaly, info: SourceInfo, run: CommandRun) -> None:
        if not self.connection.active or run.opted_out:
            return
        if not run.errors:
            add_finished_breadcrumb(run)  # a failed run has it already (hooks.py)
        sentry_sdk.capture_event(
            {
                "logentry": {"message": f"Performance anomaly: {anomaly.command}"},
                "level": "warning",
                "fingerprint": ["performance-anomaly", anomaly.command],
                "tags": clamp_tags({**info.tags(), "performance.anomaly": "yes"}),
                "contexts": {"performance_anomaly": anomaly.as_context()},
            }
        )

    # gateway --------------------------------------------------------------------------

    def gateway_event(self, kind: str, shard_id: int | None = None) -> None:
        """Note a disconnect, resume or reconnect: a breadcrumb, and the status report."""
        where = f"shard {shard_id}" if shard_id is not None else "gateway"
        self.gateway_events.append(f"{time.strftime('%H:%M:%S')} {kind} ({where})")
        if self.connection.active:
            sentry_sdk.add_breadcrumb(
                category="gateway",
                level="info",
                message=f"{kind} ({where})",
                data=OwnCrumbData(shard_id=shard_id),
            )

    def latencies_ms(self) -> dict[int | None, float]:
        """Gateway latency per shard, in milliseconds (``None`` for an unsharded bot)."""
        latencies: dict[int | None, float] = {}
        shard_latencies = getattr(self.bot, "latencies", None)
        if getattr(self.bot, "shard_count", None) and isinstance(shard_latencies, list):
            for shard_id, latency in shard_latencies:
                if math.isfinite(latency):  # NaN or inf before the first heartbeat
                    latencies[shard_id] = round(latency * 1000, 1)
            return latencies
        latency = self.bot.latency
        if math.isfinite(latency):
            latencies[None] = round(latency * 1000, 1)
        return latencies

    # loops --------------------------------------------------------------------------

    async def flush(self) -> int:
        """Record the ``errors.rate`` gauge; return the number of items recorded (0 or 1).

        Every other metric went to the SDK when it was measured; the SDK's batcher sends
        them. Nothing is flushed here: the client (perhaps the owner's) is left alone.
        """
        try:
            before = self.metrics.recorded
            self.metrics.gauge(
                "errors.rate",
                self.error_window.rate_per_minute(60),
                None,
                {"time_window": "1m"},
            )
            self.rate_gauges += 1
            return self.metrics.recorded - before
        except Exception:
            self.flush_failures += 1
            _log.exception("tux_sentry_cog could not flush metrics")
            return 0

    async def _flush(self) -> None:
        if self._flush_loop.current_loop == 0:
            return  # tasks.loop runs at once on start; the first gauge is one interval in
        await self.flush()

    async def _sample(self) -> None:
        try:
            await self.sample()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("tux_sentry_cog could not sample resources")

    async def sample(self) -> ResourceSample:
        """Take one resource sample, record its gauges and watch the thresholds."""
        started = time.perf_counter()
        await asyncio.sleep(0)
        lag_ms = (time.perf_counter() - started) * 1000
        sample = self.sampler.sample()
        sample.event_loop_lag_ms = round(lag_ms, 3)
        with contextlib.suppress(RuntimeError):
            sample.asyncio_tasks = len(asyncio.all_tasks())
        self.last_sample = sample
        metrics = self.metrics
        if sample.memory_mb is not None:
            metrics.gauge("system.memory_usage", sample.memory_mb, "mebibyte")
        if sample.cpu_percent is not None:
            metrics.gauge("system.cpu_usage", sample.cpu_percent, "percent")
        metrics.gauge("system.event_loop_lag", sample.event_loop_lag_ms, "millisecond")
        for shard_id, latency in self.latencies_ms().items():
            metrics.gauge(
                "gateway.latency",
                latency,
                "millisecond",
                {"shard_id": str(shard_id) if shard_id is not None else "none"},
            )
        alert = self.watch.observe(sample.memory_mb, sample.cpu_percent)
        if self.watch.above and self.connection.active:
            sentry_sdk.add_breadcrumb(
                category="performance",
                level="warning",
                message="High resource usage detected",
                data=OwnCrumbData(memory_mb=sample.memory_mb, cpu_percent=sample.cpu_percent),
            )
        if alert is not None:
            self._resource_alert(alert, sample)
        return sample

    def _resource_alert(self, alert: ResourceAlert, sample: ResourceSample) -> None:
        if not self.connection.active:
            return
        context: dict[str, Any] = {
            **alert.as_context(),
            "threads": sample.threads,
            "open_files": sample.open_files,
            "asyncio_tasks": sample.asyncio_tasks,
        }
        sentry_sdk.capture_event(
            {
                "logentry": {"message": "High resource usage"},
                "level": "warning",
                "fingerprint": ["high-resource-usage"],
                "contexts": {"resources": context},
            }
        )
