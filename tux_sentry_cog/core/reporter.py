"""Turns one error into one Sentry event, with the contract of docs/events.md.

The adapter hands over plain values (tags and contexts it collected from discord
objects); this module adds what is the same for every source: classification, the
fingerprint, the ``error``, ``system``, ``performance`` and ``correlation`` contexts,
related errors, and the decision to send or only leave a breadcrumb.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk.utils import event_from_exception

from tux_sentry_cog.core.classification import ErrorCategory
from tux_sentry_cog.core.client import SentryConnection, mark_reported
from tux_sentry_cog.core.fingerprint import ErrorFingerprintGenerator, normalize_message, safe_str
from tux_sentry_cog.core.limits import MAX_NAME, clamp_context, clamp_tags, cut
from tux_sentry_cog.core.noise import BudgetTicket, EventBudget, IgnoredErrors
from tux_sentry_cog.core.optout import OptOutPolicy, RunDescription, parse_snowflake
from tux_sentry_cog.core.payload import OwnCrumbData, take_whole
from tux_sentry_cog.core.related import MAX_RELATED_ON_EVENT, RelatedError, RelatedErrorDetector
from tux_sentry_cog.core.reporters import ErrorMetricsReporter
from tux_sentry_cog.core.source_lines import add_source_lines, without_source_step

if TYPE_CHECKING:
    from tux_sentry_cog.core.classification import Classification, ErrorClassifier
    from tux_sentry_cog.core.runs import CommandRun
    from tux_sentry_cog.core.spikes import SpikeDetector

__all__ = [
    "MECHANISM_TYPE",
    "ErrorReport",
    "ErrorReporter",
    "ReporterStats",
    "error_context",
    "traceback_hash",
]

_log = logging.getLogger(__name__)

#: Fingerprints counted for the status report at most.
MAX_GROUPS = 500

#: ``exception.values[].mechanism.type`` of every error the cog captures.
MECHANISM_TYPE = "tux_sentry_cog"

#: First part of the fingerprint of Discord's own 5xx answers (one group per status).
SERVER_ERROR_GROUP = "discord-server-error"

#: Lowest HTTP status of a server error.
_SERVER_ERROR_STATUS = 500


def outage_fingerprint(classification: Classification) -> list[str] | None:
    """``["discord-server-error", "<status>"]`` for Discord's 5xx answers, else ``None``.

    discord.py raises ``DiscordServerError`` for every 5xx; during an outage every
    command fails with it, and one group per status is one issue, not one per command.
    """
    status = classification.http_status
    if classification.category is ErrorCategory.DISCORD_API and (
        status is not None and status >= _SERVER_ERROR_STATUS
    ):
        return [SERVER_ERROR_GROUP, str(status)]
    return None


def traceback_hash(error: BaseException) -> str:
    """A short hash of the code path (module and function per frame, no line numbers)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(type(error).__qualname__.encode())
    tb = error.__traceback__
    if tb is not None:
        for frame, _ in traceback.walk_tb(tb):
            digest.update(f"{frame.f_globals.get('__name__', '')}:{frame.f_code.co_name};".encode())
    return digest.hexdigest()[:16]


def error_context(
    error: BaseException,
    classification: Classification | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """The ``error`` context: type, message, module, traceback hash and custom context.

    ``custom_context`` is the error's own ``context`` mapping, for exceptions that carry
    one (a common convention). ``message`` replaces ``str(error)`` (a scrubbed one).
    """
    custom = getattr(error, "context", None)
    context: dict[str, Any] = {
        "type": type(error).__name__,
        "message": safe_str(error) if message is None else message,
        "module": type(error).__module__,
        "traceback_hash": traceback_hash(error),
        "custom_context": dict(custom) if isinstance(custom, Mapping) else {},
    }
    if classification is not None and classification.http_status is not None:
        context["http_status"] = classification.http_status
        context["api_code"] = classification.api_code
    return context


@dataclass(slots=True)
class ErrorReport:
    """One error with what the adapter knew about where it happened.

    Attributes:
        error: The original exception (already unwrapped from framework wrappers).
        tags: Source tags: ``command.name``, ``command.type``, ``cog``, ``guild.id`` and,
            on sharded bots, ``shard.id``.
        contexts: Source contexts: ``command``, ``discord_user``, ``guild``, ``channel``.
        user: The event user (``{"id": ...}``, plus names with PII on).
        handled: True when the bot's own error handler took the error.
        run: The command run the error belongs to, if any.
    """

    error: BaseException
    tags: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    user: dict[str, Any] | None = None
    handled: bool = False
    run: CommandRun | None = None


@dataclass(slots=True)
class ReporterStats:
    """Counters for the status report; kept in local mode too.

    Attributes:
        reported: Errors the cog took (sent or not).
        queued: Error events handed to the SDK (``capture_event`` gave an id). What the
            transport then delivered is the connection's ledger's to count.
        user_errors: User-caused errors among ``reported``.
        failures: Faults inside the reporter, logged and swallowed.
        spikes: Error spikes detected.
        ignored: Errors not sent because ``ignore_errors`` names them.
        opted_out: Errors of opted-out runs (guild, user or ``should_report``).
        last_event_id: Id of the last error event handed to the SDK.
    """

    reported: int = 0
    queued: int = 0
    user_errors: int = 0
    failures: int = 0
    spikes: int = 0
    ignored: int = 0
    opted_out: int = 0
    last_event_id: str | None = None


class ErrorReporter:
    """Builds and sends error events.

    Args:
        connection: The cog's Sentry connection (events are built only when active).
        classifier: Category and severity of errors.
        fingerprints: Fingerprint generator.
        related: The related-error window.
        spikes: Spike detection per fingerprint.
        capture_user_errors: Send user-caused errors as events too.
        system_context: Returns the ``system`` context (versions, memory, uptime).
        active_runs: Returns the number of command runs in flight.
        scrub_message: Removes secrets, shapes and the run's values from an error's
            message (the error given, so the program's own text stays). The
            fingerprint's message goes through it, so a user's argument never names a
            group and a word equal to the program's text never splits one.
        metrics: Records ``errors.total`` and ``error_handling.duration``.
        budget: The event budget per fingerprint (unlimited when not given).
        ignored: Exception names never sent as events.
        opt_out: Which runs send nothing (docs/discord-limits-and-noise.md).
    """

    def __init__(
        self,
        *,
        connection: SentryConnection,
        classifier: ErrorClassifier,
        fingerprints: ErrorFingerprintGenerator,
        related: RelatedErrorDetector,
        spikes: SpikeDetector,
        capture_user_errors: bool,
        system_context: Callable[[], dict[str, Any]],
        active_runs: Callable[[], int],
        scrub_message: Callable[[str, BaseException], str],
        metrics: ErrorMetricsReporter | None = None,
        budget: EventBudget | None = None,
        ignored: IgnoredErrors | None = None,
        opt_out: OptOutPolicy | None = None,
    ) -> None:
        """Wire the reporter to its collaborators."""
        self._connection = connection
        self.classifier = classifier
        self.fingerprints = fingerprints
        self.related = related
        self.spikes = spikes
        self._capture_user_errors = capture_user_errors
        self._system_context = system_context
        self._active_runs = active_runs
        self._scrub_message = scrub_message
        self._metrics = metrics or ErrorMetricsReporter()
        # ``is None``: an empty budget or ignore list is falsy (they have a size).
        self.budget = EventBudget(limit=0) if budget is None else budget
        self.ignored = IgnoredErrors() if ignored is None else ignored
        self.opt_out = OptOutPolicy() if opt_out is None else opt_out
        self.stats = ReporterStats()
        # Occurrences per fingerprint, for the status report's top groups.
        self.groups: OrderedDict[str, int] = OrderedDict()

    def report(self, report: ErrorReport) -> Classification | None:
        """Classify, enrich and send ``report``; return its classification.

        Returns ``None`` if the error was already reported. The event id of the last
        event sent is in :attr:`stats`. Never raises: a fault here is logged and the
        bot carries on.
        """
        try:
            return self._report(report)
        except Exception:
            self.stats.failures += 1
            _log.exception("tux_sentry_cog failed to report %s", type(report.error).__name__)
            return None

    def _report(self, report: ErrorReport) -> Classification | None:
        started = time.perf_counter()
        error = report.error
        run = report.run
        if run is not None:
            if id(error) in run.reported:
                return None
            run.reported.add(id(error))
        # Claim it before anything else: the log line discord.py writes for the same
        # error must not become a second event through the SDK's logging integration.
        mark_reported(error)
        self.stats.reported += 1
        classification = self.classifier.classify(error)
        command = report.contexts.get("command", {})
        # Scrubbed before it is normalised, so no value hides inside a placeholder's
        # neighbour ("foo-123" -> "foo-<N>"); only the message: the other parts are
        # structure (type, command, cog, location), which user input never reaches.
        message = self._scrub_message(safe_str(error), error)
        fingerprint = outage_fingerprint(classification) or self.fingerprints.generate_fingerprint(
            error, {"command": command}, message=message
        )
        ignored = self.ignored.matches(error)
        opted_out = self._opted_out(report)
        # What is reported in Sentry: a user's mistake only when asked for, never what
        # the owner ignores or an opted-out run.
        sendable = (self._capture_user_errors or not classification.user_caused) and not (
            ignored or opted_out
        )
        # An error outside any run (a task, a listener) still gets an id of its own.
        correlation_id = run.correlation_id if run is not None else uuid.uuid4().hex
        relation: tuple[int, list[RelatedError]] = (0, [])
        if not opted_out:  # nothing of an opted-out run is kept to relate later events to
            relation = self.related.relate(
                error,
                {
                    "fingerprint": fingerprint,
                    "correlation_id": correlation_id,
                    "user": {"id": report.user.get("id")} if report.user else {},
                    "guild": {"id": report.tags.get("guild.id")},
                    "command": {"name": report.tags.get("command.name")},
                    # A user's mistake relates nothing: it stays out of the window, and
                    # so does what the owner ignores.
                    "user_caused": classification.user_caused or ignored,
                },
                MAX_RELATED_ON_EVENT,
            )
        if classification.user_caused:
            self.stats.user_errors += 1
        self.stats.ignored += ignored
        self.stats.opted_out += opted_out
        group = cut("|".join(fingerprint), MAX_NAME)
        if sendable:
            self._admit(
                report,
                classification=classification,
                fingerprint=fingerprint,
                group=group,
                correlation_id=correlation_id,
                message=message,
                related=relation,
            )
            # Only groups that are sent: the owner looks them up in Sentry.
            self._count_group(group)
        elif not opted_out:
            self._breadcrumb(error, message, classification, report.tags, correlation_id)
        self._metrics.record_error_metric(
            error,
            {
                "command": {
                    "type": report.tags.get("command.type"),
                    "cog_name": report.tags.get("cog"),
                },
                "performance": {"error_handling_ms": (time.perf_counter() - started) * 1000},
            },
            classification,
        )
        if sendable:
            # Users mistyping a command fast is not a spike worth a message. Counted
            # before the budget: a flood the budget holds back is what a spike tells of.
            count = self.spikes.record(group)
            if count is not None:
                self._spike(error, report.tags, group, count)
        return classification

    def _admit(
        self,
        report: ErrorReport,
        *,
        classification: Classification,
        fingerprint: list[str],
        group: str,
        correlation_id: str,
        message: str,
        related: tuple[int, list[RelatedError]],
    ) -> None:
        """Send the event if the group's budget has room; else only count it."""
        # The budget counts in local mode too, so the status shows what it would hold.
        ticket = self.budget.admit(group)
        # Held back: no breadcrumb either, a flood would push every other one out.
        if ticket is not None and self._connection.active:
            self._send(
                report,
                classification,
                fingerprint,
                correlation_id,
                message,
                related_count=related[0],
                related=related[1],
                ticket=ticket,
            )

    def describe(self, report: ErrorReport) -> RunDescription:
        """The :class:`RunDescription` of ``report`` (asked with its exception)."""
        run = report.run
        user_id = parse_snowflake(report.user.get("id")) if report.user else None
        if user_id is None and run is not None:
            user_id = run.user_id
        return RunDescription(
            source_type=report.tags.get("command.type", "event"),
            command=report.tags.get("command.name", "unknown"),
            guild_id=parse_snowflake(report.tags.get("guild.id")),
            user_id=user_id,
            exception=report.error,
        )

    def _opted_out(self, report: ErrorReport) -> bool:
        run = report.run
        if run is not None and run.opted_out:
            return True
        if not self.opt_out.refuses(self._connection.active, lambda: self.describe(report)):
            return False
        if run is not None:
            # Its transaction is dropped too when the run ends.
            run.opted_out = True
        return True

    def _count_group(self, group: str) -> None:
        self.groups[group] = self.groups.get(group, 0) + 1
        self.groups.move_to_end(group)
        if len(self.groups) > MAX_GROUPS:
            self.groups.popitem(last=False)  # the group seen least recently

    def top_groups(self, n: int = 5) -> list[tuple[str, int]]:
        """The ``n`` most frequent sent fingerprints since load (among those still tracked).

        User-caused errors count here only when they are sent (``capture_user_errors``).
        """
        return sorted(self.groups.items(), key=lambda item: item[1], reverse=True)[:n]

    def _spike(self, error: BaseException, tags: Mapping[str, str], group: str, count: int) -> None:
        command = tags.get("command.name", "unknown")
        self.stats.spikes += 1
        if not self._connection.active:
            return
        sentry_sdk.capture_event(
            {
                # logentry, not a bare top-level "message": every Sentry-protocol
                # server takes it (some reject the bare form in strict mode).
                "logentry": {"message": f"Error spike: {type(error).__name__} in {command}"},
                "level": "warning",
                "fingerprint": ["error-spike", group],
                "tags": clamp_tags({**tags, "error.spike": "yes"}),
                "contexts": {
                    "error_spike": {
                        "group": group,
                        "count": count,
                        "window_seconds": self.spikes.window_seconds,
                    }
                },
            }
        )

    def _breadcrumb(
        self,
        error: BaseException,
        message: str,
        classification: Classification,
        tags: Mapping[str, str],
        correlation_id: str,
    ) -> None:
        if not self._connection.active:
            return
        # In the run's own scope, which ends with it: what the bot sends from the run
        # (its error handler, say) shows it, other runs never do. The scope the runs come
        # from is the whole bot's: there every later event, of any user or guild, carried
        # up to a hundred other users' mistakes (35 KB, milliseconds of the loop each).
        sentry_sdk.add_breadcrumb(
            category="error",
            level=classification.severity.value,
            message=f"{type(error).__name__}: {normalize_message(message)}",
            data=OwnCrumbData(
                category=classification.category.value,
                command=tags.get("command.name"),
                correlation_id=correlation_id,
            ),
        )

    def _send(
        self,
        report: ErrorReport,
        classification: Classification,
        fingerprint: list[str],
        correlation_id: str,
        message: str,
        *,
        related_count: int,
        related: list[RelatedError],
        ticket: BudgetTicket,
    ) -> str | None:
        error = report.error
        run = report.run
        tags = dict(report.tags)
        tags["correlation_id"] = correlation_id
        tags["error.category"] = classification.category.value
        tags["error.severity"] = classification.severity.label
        tags["error.related"] = "yes" if related_count else "no"
        contexts: dict[str, Any] = {
            **report.contexts,
            "error": error_context(error, classification, message),
            "system": self._system_context(),
            "performance": {
                "response_time_ms": round(run.elapsed_ms(), 3) if run is not None else None,
                "database_query_count": run.db_queries if run is not None else 0,
                "active_transactions": self._active_runs(),
            },
            "correlation": {
                "correlation_id": correlation_id,
                "related_count": related_count,
                "related_errors": [r.as_context() for r in related],
            },
        }
        noise = ticket.noise_context()
        if noise is not None:
            contexts["noise"] = noise
        client = self._connection.client
        options: dict[str, Any] | None = client.options if client is not None else None
        # The SDK would read each frame's whole module from disk; the line cache has it.
        own_lines = without_source_step(options)
        event, hint = event_from_exception(
            error,
            client_options=own_lines or options,
            mechanism={"type": MECHANISM_TYPE, "handled": report.handled},
        )
        if own_lines is not None:
            add_source_lines(cast("dict[str, Any]", event), own_lines.get("max_value_length"))
        event["level"] = classification.severity.value
        event["fingerprint"] = fingerprint
        event["tags"] = clamp_tags(tags)
        event["contexts"] = {name: clamp_context(value) for name, value in contexts.items()}
        if report.user is not None:
            event["user"] = report.user
        # Built here from plain values and inside the limits already: the SDK's
        # serializer takes these parts whole instead of walking them (core/payload.py),
        # also for an error with no command run (whose scope has no take_whole).
        take_whole(event)
        event_id = sentry_sdk.capture_event(event, hint=hint)
        if event_id is None:
            # Not sent after all (the owner's before_send, the SDK's sample_rate or
            # ignore_errors, an event processor): the slot and what it carried are kept.
            ticket.refund()
        if event_id is not None:
            self.stats.queued += 1
            self.stats.last_event_id = event_id
            self._connection.ledger.watch(event_id)
        return event_id
