"""What ``/sentry status`` shows, as plain values: the core's snapshot of itself.

The cog fills a :class:`StatusSnapshot` from its parts; the embed is built from the
snapshot by a pure function, so both are testable without Discord.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tux_sentry_cog.core.discord_limits import DiscordLimitsSummary

__all__ = ["AnomalySummary", "SlowCommand", "StatusSnapshot", "TaskSummary"]


@dataclass(frozen=True, slots=True)
class SlowCommand:
    """A command's baseline, for the Performance field."""

    name: str
    p50_ms: float
    p95_ms: float
    samples: int


@dataclass(frozen=True, slots=True)
class AnomalySummary:
    """A recent performance anomaly."""

    command: str
    observed_ms: float
    baseline_p50_ms: float
    seconds_ago: float


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """A ``tasks`` loop, for the Tasks field.

    Attributes:
        name: ``<Cog>.<method>`` or the coroutine's qualified name.
        seconds_ago: Seconds since its last iteration ended, if it ran.
        last_status: ``ok``, ``cancelled`` or a failure status.
        failures_last_hour: Failures in the last hour.
    """

    name: str
    seconds_ago: float | None
    last_status: str | None
    failures_last_hour: int


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the status embed shows, read at one moment.

    Attributes:
        mode: ``external`` (the bot's client), ``owned`` (the cog's) or ``local``.
        dsn_host: Host of the DSN; never the key.
        environment: Sentry environment.
        release: Sentry release.
        sample_rate: Traces sample rate in force, if tracing is on.
        commands_executed: Command runs finished since load.
        commands_failed: Runs that failed: an error that is not the user's.
        commands_user_errors: Runs that ended only in user-caused errors (a typo, a
            missing permission, a cooldown), counted apart from failures.
        error_rate_1m: Failures (errors that are not user-caused) per minute, last minute.
        error_rate_5m: The same over the last five minutes.
        user_error_rate_5m: User-caused errors per minute over the last five minutes.
        errors_reported: Errors the cog took (sent or not).
        errors_user: User-caused errors among them (not sent unless configured).
        errors_queued: Error events handed to the SDK for sending.
        errors_sent: Error events the transport delivered (Sentry answered 2xx);
            ``None`` when the transport cannot tell.
        errors_undelivered: Error events refused by Sentry or dropped on the way.
        last_event_id: Id of the last error event Sentry accepted.
        top_groups: Up to five ``(fingerprint, count)`` of groups that are sent, most
            frequent first.
        errors_held_back: Error events the event budget held back since load.
        held_back_groups: Up to three ``(fingerprint, held back)`` of groups whose held
            back events are not reported yet (the next event of the group says so).
        errors_ignored: Errors not sent because ``ignore_errors`` names them.
        errors_opted_out: Errors of opted-out runs (not sent).
        slowest: Slowest commands by p95.
        anomalies: Recent performance anomalies.
        memory_mb: Resident memory, MiB.
        cpu_percent: CPU of the process, percent of the whole machine (0..100).
        event_loop_lag_ms: Last measured event-loop lag.
        uptime_s: Seconds since the cog loaded.
        gateway_latency_ms: Latency per shard (``None`` for an unsharded bot).
        gateway_events: Recent gateway disconnects, resumes and reconnects.
        discord_limits: Discord's limits: REST 429s and heartbeat warnings in the last
            five minutes, reconnects per shard, interactions past the 3 s deadline.
        transport_problem: What is wrong with sending to Sentry, if anything: rate
            limits per category while they last, refusals and losses by category.
        instrumentation_faults: Faults inside the cog, logged and swallowed.
        tasks: The ``tasks`` loops seen, most recently run first.
    """

    mode: str
    dsn_host: str | None = None
    environment: str | None = None
    release: str | None = None
    sample_rate: float | None = None
    commands_executed: int = 0
    commands_failed: int = 0
    commands_user_errors: int = 0
    error_rate_1m: float = 0.0
    error_rate_5m: float = 0.0
    user_error_rate_5m: float = 0.0
    errors_reported: int = 0
    errors_user: int = 0
    errors_queued: int = 0
    errors_sent: int | None = 0
    errors_undelivered: int = 0
    last_event_id: str | None = None
    top_groups: tuple[tuple[str, int], ...] = ()
    errors_held_back: int = 0
    held_back_groups: tuple[tuple[str, int], ...] = ()
    errors_ignored: int = 0
    errors_opted_out: int = 0
    slowest: tuple[SlowCommand, ...] = ()
    anomalies: tuple[AnomalySummary, ...] = ()
    memory_mb: float | None = None
    cpu_percent: float | None = None
    event_loop_lag_ms: float | None = None
    uptime_s: float = 0.0
    gateway_latency_ms: dict[int | None, float] = field(default_factory=dict)
    gateway_events: tuple[str, ...] = ()
    discord_limits: DiscordLimitsSummary = field(default_factory=DiscordLimitsSummary)
    transport_problem: str | None = None
    instrumentation_faults: int = 0
    tasks: tuple[TaskSummary, ...] = ()
