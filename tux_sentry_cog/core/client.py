"""The Sentry client the cog works with: reused, owned, or none (local mode).

- If the bot already initialised the SDK, its client is reused and never re-initialised;
  the cog only chains its scrubbing in front of the owner's ``before_send`` hooks, and
  takes it out again on unload.
- Otherwise, with a DSN, the cog initialises the SDK itself with safe defaults: no
  default PII, and no ``sentry-trace``/``baggage`` headers to Discord's hosts.
- Without a DSN it runs in local mode: everything is tracked, nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sentry_sdk
import sentry_sdk.transport
import sentry_sdk.utils
from sentry_sdk.utils import Dsn

from tux_sentry_cog.core.delivery import DeliveryLedger
from tux_sentry_cog.core.metrics import STRUCTURAL
from tux_sentry_cog.core.runs import current_run

if TYPE_CHECKING:
    from tux_sentry_cog.config import SentryCogConfig
    from tux_sentry_cog.core.scrubbing import Scrubber

__all__ = ["NOT_DISCORD_HOSTS", "ClientMode", "SentryConnection", "mark_reported", "was_reported"]

_log = logging.getLogger(__name__)

#: A ``trace_propagation_targets`` entry matching every URL except Discord's own hosts.
#: The SDK searches it from the start of the URL, so the negative look-ahead rules out
#: exactly those hosts and lets the bot's other outgoing calls carry the trace.
NOT_DISCORD_HOSTS = (
    r"^(?!\w+://(?:[^/?#@]*@)?(?:[^/?#:]*\.)?"
    r"(?:discord\.com|discordapp\.com|discord\.gg|discordapp\.net|discord\.media)(?:[:/?#]|$))"
)

#: Seconds to wait for buffered events when the cog unloads.
FLUSH_TIMEOUT = 5.0


# The SDK's asyncio transport is recent (sentry-sdk 2.4x); older SDKs have none.
_ASYNC_TRANSPORT: type | None = getattr(sentry_sdk.transport, "AsyncHttpTransport", None)


def _on_async_transport(client: Any) -> bool:
    transport = getattr(client, "transport", None)
    return _ASYNC_TRANSPORT is not None and isinstance(transport, _ASYNC_TRANSPORT)


async def flush_off_loop(client: Any, seconds: float) -> None:
    """Wait up to ``seconds`` for ``client`` to send what it queued, never on the loop.

    ``Client.flush`` blocks its thread until the transport drains, so it runs in a
    worker thread; a client on the SDK's asyncio transport has to be flushed on the
    loop instead (its ``flush`` only warns and returns).
    """
    if _on_async_transport(client):
        await client.flush_async(seconds)
    else:
        await asyncio.to_thread(client.flush, seconds)

def _seconds(value: float) -> str:
    seconds = max(0, round(value))
    if seconds < 120:  # noqa: PLR2004 - up to two minutes, seconds read best
        return f"{seconds} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


#: Metrics per envelope for a client the cog owns (the SDK's default is 1,000).
METRIC_BATCH_SIZE = 100


def _small_metric_batches(client: Any) -> None:
    """Have the SDK send the metrics of the cog's own client 100 at a time, not 1,000.

    The SDK keeps each metric (a dict of attribute dicts) in its batcher until it has
    1,000 or 5 s have passed. At hundreds of commands a second (a metric or more each) that
    is long enough for them to reach the collector's oldest generation, and they set off
    full garbage collections, each a pause as long as a walk of the whole heap (60-130
    ms in ``benchmarks/bench_load.py``; none in 60 s with batches of 100). There is no
    option for it: the batcher's class constant is set on this client's batcher only,
    probed first; a client the bot owns is left as it is.
    """
    batcher = getattr(client, "metrics_batcher", None)
    if batcher is None:
        return  # metrics off in this client
    # The constant's name in recent SDKs, and in the first ones with these metrics.
    for name in ("MAX_BEFORE_FLUSH", "MAX_METRICS_BEFORE_FLUSH"):
        size = getattr(batcher, name, None)
        if isinstance(size, int):
            setattr(batcher, name, min(size, METRIC_BATCH_SIZE))
            return
    _log.warning(
        "tux_sentry_cog: sentry-sdk %s has no metric batch size to set; metrics go "
        "in the SDK's default batches",
        sentry_sdk.VERSION,
    )


_REPORTED_ATTR = "__tux_sentry_reported__"

EventHook = Callable[[Any, Any], Any]


class ClientMode(StrEnum):
    """How the cog talks to Sentry."""

    EXTERNAL = "external"  # the bot's own client, reused
    OWNED = "owned"  # initialised by the cog from its DSN
    LOCAL = "local"  # no DSN: tracked locally, nothing sent


def mark_reported(error: BaseException) -> None:
    """Mark ``error`` as reported by the cog, so log-born copies of it are dropped."""
    try:
        setattr(error, _REPORTED_ATTR, True)
    except Exception:  # exceptions with __slots__ or frozen attributes
        _log.debug("cannot mark %s as reported", type(error).__name__)


def was_reported(error: BaseException | None) -> bool:
    """True if ``error`` or an exception it wraps was marked by :func:`mark_reported`.

    Only wrapping (an ``original`` attribute, as discord.py's ``CommandInvokeError``
    has) counts: an exception raised ``from`` a reported one, or while handling it (a
    bot's ``on_command_error`` that fails), is a new error and is reported.
    """
    seen = 0
    while error is not None and seen < 8:  # noqa: PLR2004 - a short chain is enough
        if getattr(error, _REPORTED_ATTR, False):
            return True
        inner = getattr(error, "original", None)
        error = inner if isinstance(inner, BaseException) else None
        seen += 1
    return False


def _is_duplicate_log_event(hint: Any) -> bool:
    """A log line for an error the cog reports itself (discord.py logs every failure)."""
    if not isinstance(hint, dict) or "log_record" not in hint:
        return False
    exc_info: tuple[Any, ...] | None = hint.get("exc_info")
    if not exc_info:
        return False
    return was_reported(exc_info[1])


class _SkipReportedErrors(logging.Filter):
    """Keeps the SDK's logging integration from redoing the cog's work for a reported error.

    discord.py logs every command failure it has no handler for at ERROR with the
    exception attached, and many bots log the errors they catch. For each such record the
    SDK's logging integration builds a whole event (traceback formatted, every frame's
    source file read from disk) before ``before_send`` can see it duplicates the cog's
    own, and formats the traceback again for a breadcrumb that says what that event says
    (and lands in the run's own scope, which sends nothing after it). Filtering the record
    on those two handlers skips both; the bot's own handlers and Sentry Logs still get it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and was_reported(exc_info[1]))


_SKIP_REPORTED = _SkipReportedErrors()


def _skip_reported_in_log_events(client: Any) -> None:
    """Put :class:`_SkipReportedErrors` on the event and breadcrumb handlers of logging.

    The handlers are the logging integration's ``_handler`` and ``_breadcrumb_handler``
    attributes (not public; probed). Without them, duplicates are still dropped in
    ``before_send``, only later. The filter is never taken off: it passes everything no
    loaded cog has reported, and another bot's cog may share the client.
    """
    try:
        from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: PLC0415
    except ImportError:  # pragma: no cover - part of every SDK the cog supports
        return
    integration = client.get_integration(LoggingIntegration)
    if integration is None:
        return  # the owner turned the logging integration off: nothing to skip
    for name in ("_handler", "_breadcrumb_handler"):
        if not hasattr(integration, name):
            _log.warning(
                "tux_sentry_cog: sentry-sdk %s keeps its logging handlers elsewhere; "
                "log events of reported errors are dropped in before_send instead",
                sentry_sdk.VERSION,
            )
            return
        handler = getattr(integration, name)
        if isinstance(handler, logging.Handler):  # None where the owner set its level off
            handler.addFilter(_SKIP_REPORTED)


def _list_packages_off_loop(client: Any) -> None:
    """Have the SDK list the installed packages now, in a thread, not at the first event.

    The SDK's modules integration puts every installed distribution on the first error
    event of the process, reading each one's metadata from disk in the thread that
    captures it: for a bot, the event loop, stalled 50-200 ms at its first failure (88 ms
    for the 55 packages of this project's venv). The SDK keeps the list for the life of
    the process, so filling it early moves that read off the loop once. The function and
    its cache are not public (probed); without them the first event pays as before.
    """
    try:
        from sentry_sdk.integrations.modules import ModulesIntegration  # noqa: PLC0415
    except ImportError:  # pragma: no cover - part of every SDK the cog supports
        return
    if client.get_integration(ModulesIntegration) is None:
        return  # the owner turned it off: no list goes out
    utils = sentry_sdk.utils
    fill = getattr(utils, "_get_installed_modules", None)
    if not callable(fill) or not hasattr(utils, "_installed_modules"):
        _log.warning(
            "tux_sentry_cog: sentry-sdk %s lists installed packages in another way; the "
            "first error event reads them on the event loop",
            sentry_sdk.VERSION,
        )
        return
    if getattr(utils, "_installed_modules", None) is not None:  # filled already
        return

    def _fill() -> None:
        try:
            fill()
        except Exception:  # a broken distribution's metadata: the first event retries
            _log.debug("listing installed packages failed", exc_info=True)

    threading.Thread(target=_fill, name="tux_sentry_cog packages", daemon=True).start()


#: Sentry Logs' severity numbers (OpenTelemetry's) of logging's level names.
LOG_SEVERITY = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}


def _is_discord_chatter(log: dict[str, Any], floor: int) -> bool:
    """A record of discord.py's own loggers below the level the owner asked for."""
    attributes = log.get("attributes")
    name = attributes.get("logger.name") if isinstance(attributes, dict) else None
    if not isinstance(name, str) or not (name == "discord" or name.startswith("discord.")):
        return False
    number = log.get("severity_number")
    return isinstance(number, int) and number < floor


def _link_to_run(log: dict[str, Any]) -> None:
    """Give a log line emitted inside a run the run's correlation id, command, guild, shard.

    Read from the run of the emitting task, not set as scope attributes: the SDK copies
    those onto metrics and streamed spans too, where a correlation id per command
    would be an attribute of unbounded cardinality.
    """
    run = current_run.get()
    attributes = log.get("attributes")
    if run is None or run.opted_out or not isinstance(attributes, dict):
        return  # an opted-out run's ids go nowhere
    for key, value in run.log_attributes().items():
        attributes.setdefault(key, value)


class SentryConnection:
    """Owns the cog's relation to the SDK from load to unload.

    Args:
        config: The cog's configuration.
        scrubber: Applied to every event and transaction the SDK sends meanwhile.
    """

    def __init__(self, config: SentryCogConfig, scrubber: Scrubber) -> None:
        """Remember the config; nothing happens until :meth:`start`."""
        self._config = config
        self._scrubber = scrubber
        self.mode = ClientMode.LOCAL
        self._client: Any = None
        self._previous_hooks: dict[str, Any] = {}
        self._installed_hooks: dict[str, EventHook] = {}
        self._secrets_of: tuple[str | None, tuple[str, ...]] = (None, ())
        # What the transport delivered, refused and dropped, for the status report.
        self.ledger = DeliveryLedger()
        self._transport_patch: tuple[Any, list[tuple[str, Any]]] | None = None

    @property
    def active(self) -> bool:
        """True while events can be sent (reused or owned client)."""
        return self.mode is not ClientMode.LOCAL

    @property
    def client(self) -> Any:
        """The client in use, or ``None`` in local mode."""
        return self._client

    @property
    def dsn_host(self) -> str | None:
        """Host of the DSN in use; the key is never exposed."""
        if self._client is None:
            return None
        dsn = self._client.options.get("dsn")
        if not dsn:
            return None
        try:
            return str(Dsn(dsn).host)
        except Exception:
            return None

    def secrets(self) -> list[str]:
        """The DSN key and secret in use, for the scrubber."""
        dsn = self._client.options.get("dsn") if self._client is not None else self._config.dsn
        if not dsn:
            return []
        if self._secrets_of[0] != dsn:  # parsed once per DSN, not once per event
            try:
                parsed = Dsn(dsn)
                keys = tuple(s for s in (parsed.public_key, parsed.secret_key) if s)
            except Exception:
                keys = ()
            self._secrets_of = (dsn, keys)
        return list(self._secrets_of[1])

    def start(self) -> ClientMode:
        """Reuse the active client, initialise one from the DSN, or go local."""
        existing = sentry_sdk.get_client()
        if existing.is_active():
            self._client = existing
            self.mode = ClientMode.EXTERNAL
            self._chain_hooks(existing)
            self._watch_transport(existing)
            _skip_reported_in_log_events(existing)
            _list_packages_off_loop(existing)
        elif self._config.dsn:
            sentry_sdk.init(
                dsn=self._config.dsn,
                environment=self._config.environment,
                release=self._config.release,
                traces_sample_rate=self._config.traces_sample_rate,
                # send_default_pii is left unset, which is False: setting it is deprecated
                # in newer SDKs, and data_collection would switch the EventScrubber off.
                trace_propagation_targets=[NOT_DISCORD_HOSTS],
            )
            self._client = sentry_sdk.get_client()
            self.mode = ClientMode.OWNED
            # Set as options after init, as for a reused client: one code path, and it
            # works on every SDK version whatever its init signature accepts.
            self._chain_hooks(self._client)
            self._watch_transport(self._client)
            _small_metric_batches(self._client)
            _skip_reported_in_log_events(self._client)
            _list_packages_off_loop(self._client)
        else:
            self.mode = ClientMode.LOCAL
        _log.info("Sentry cog started in %s mode", self.mode.value)
        return self.mode

    async def stop(self) -> None:
        """Undo :meth:`start`: flush off the event loop, unchain hooks, close what we own."""
        client, self._client = self._client, None
        mode, self.mode = self.mode, ClientMode.LOCAL
        if client is None:
            return
        # Events already captured went through the hooks; what is queued can go without.
        self._unchain_hooks(client)
        self._unwatch_transport()
        if mode is ClientMode.EXTERNAL:
            # The owner's client stays open; only wait for what we queued.
            await flush_off_loop(client, FLUSH_TIMEOUT)
            return
        # close() blocks its thread until the transport drains: never on the loop.
        if _on_async_transport(client):
            await client.close_async(FLUSH_TIMEOUT)
        else:
            await asyncio.to_thread(client.close, FLUSH_TIMEOUT)
        if sentry_sdk.get_client() is client:
            sentry_sdk.get_global_scope().set_client(None)

    # transport health -------------------------------------------------------------------

    def _watch_transport(self, client: Any) -> None:
        """Follow what the transport delivers, what Sentry refuses and what is lost.

        The SDK has no public delivery callback. Its losses go through the public
        ``record_lost_event`` (the client-report accounting); deliveries and 429s only
        through the transport's response handler, an internal probed here: without it,
        one warning says the delivery figures are unknown, and the rest works. Both are
        wrapped on this transport instance only, and unwrapped on stop.
        """
        transport = getattr(client, "transport", None)
        if transport is None:
            return
        ledger = self.ledger
        patches: list[tuple[str, Any]] = []
        record = getattr(transport, "record_lost_event", None)
        if callable(record):

            def record_lost_event(
                reason: str,
                data_category: Any = None,
                item: Any = None,
                *args: Any,
                **kwargs: Any,
            ) -> Any:
                try:
                    quantity = kwargs.get("quantity", args[0] if args else 1)
                    ledger.on_lost(reason, data_category, item, int(quantity))
                except Exception:
                    _log.debug("tux_sentry_cog could not count a lost item", exc_info=True)
                return record(reason, data_category, item, *args, **kwargs)

            transport.record_lost_event = record_lost_event
            patches.append(("record_lost_event", record_lost_event))
        disabled = getattr(transport, "_disabled_until", None)
        if isinstance(disabled, dict):
            # The rate limits in force, per category (read, never changed).
            ledger.bind_rate_limits(disabled)
        if self._watch_responses(transport, patches) or self._watch_old_transport(
            transport, patches
        ):
            ledger.deliveries_known = True
        else:
            _log.warning(
                "tux_sentry_cog: the Sentry transport (%s, sentry-sdk %s) does not expose "
                "its responses; /sentry status cannot show what Sentry accepted",
                type(transport).__name__,
                sentry_sdk.VERSION,
            )
        self._transport_patch = (transport, patches)

    def _watch_responses(self, transport: Any, patches: list[tuple[str, Any]]) -> bool:
        """Wrap the transport's ``_handle_response(response, envelope)`` (recent SDKs)."""
        handle = getattr(transport, "_handle_response", None)
        if not callable(handle):
            return False
        ledger = self.ledger

        def handle_response(*args: Any, **kwargs: Any) -> Any:
            try:
                response = kwargs.get("response", args[0] if args else None)
                envelope = kwargs.get("envelope", args[1] if len(args) > 1 else None)
                if response is not None:
                    ledger.on_response(int(response.status), envelope)
            except Exception:
                _log.debug("tux_sentry_cog could not count a response", exc_info=True)
            return handle(*args, **kwargs)

        transport._handle_response = handle_response  # noqa: SLF001 - see _watch_transport
        patches.append(("_handle_response", handle_response))
        return True

    def _watch_old_transport(self, transport: Any, patches: list[tuple[str, Any]]) -> bool:
        """The first SDKs with these transports (2.44): no ``_handle_response``.

        There ``_send_request(body, headers, endpoint_type, envelope)`` posts and then
        hands every response to ``_update_rate_limits(response)``: the envelope is kept
        for the worker thread while it sends, and the status read there.
        """
        send = getattr(transport, "_send_request", None)
        update = getattr(transport, "_update_rate_limits", None)
        if not (callable(send) and callable(update)):
            return False
        ledger = self.ledger
        sending = threading.local()

        def send_request(*args: Any, **kwargs: Any) -> Any:
            # Its arguments are body, headers, endpoint_type and envelope.
            sending.envelope = kwargs.get("envelope", args[3] if len(args) > 3 else None)  # noqa: PLR2004
            try:
                return send(*args, **kwargs)
            finally:
                sending.envelope = None

        def update_rate_limits(response: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                ledger.on_response(int(response.status), getattr(sending, "envelope", None))
            except Exception:
                _log.debug("tux_sentry_cog could not count a response", exc_info=True)
            return update(response, *args, **kwargs)

        transport._send_request = send_request  # noqa: SLF001 - see _watch_transport
        transport._update_rate_limits = update_rate_limits  # noqa: SLF001
        patches.append(("_send_request", send_request))
        patches.append(("_update_rate_limits", update_rate_limits))
        return True

    def _unwatch_transport(self) -> None:
        if self._transport_patch is not None:
            transport, patches = self._transport_patch
            for name, wrapper in patches:
                if transport.__dict__.get(name) is wrapper:
                    delattr(transport, name)
            self._transport_patch = None

    def transport_problem(self) -> str | None:
        """What is wrong with sending to Sentry now, in a few words; ``None`` if nothing.

        Rate limits are named by category with the time left, and only while they last;
        refusals and losses of the last five minutes by category and quantity.
        """
        if self._client is None:
            return None
        problems: list[str] = []
        limits = self.ledger.rate_limits()
        if limits:
            parts = [
                f"{limit.category or 'all categories'} for {_seconds(limit.seconds_left)} "
                f"(until {limit.until:%H:%M:%S} UTC)"
                for limit in limits
            ]
            problems.append("rate limited by Sentry: " + ", ".join(parts))
        refused = self.ledger.recent_refusals()
        if refused:
            parts = [f"{count:,} {category}" for category, count in sorted(refused.items())]
            problems.append("refused by Sentry (429): " + ", ".join(parts))
        lost = self.ledger.recent_losses()
        if lost:
            parts = [
                f"{count:,} {category} ({reason})"
                for (category, reason), count in sorted(lost.items())
            ]
            problems.append("dropped: " + ", ".join(parts))
        return "; ".join(problems) or None

    # before_send chaining -------------------------------------------------------------

    # Every hook scrubs first and then hands the scrubbed data to the owner's own hook,
    # so the owner's code never sees what must not leave, and cannot undo the scrubbing
    # of what the SDK built. (What an owner's hook adds afterwards is the owner's.)

    def _before_send(self, previous: EventHook | None) -> EventHook:
        scrubber = self._scrubber

        def before_send(event: Any, hint: Any) -> Any:
            if _is_duplicate_log_event(hint):
                return None
            event = scrubber.scrub_event(event, hint)
            return event if previous is None else previous(event, hint)

        return before_send

    def _before_send_transaction(self, previous: EventHook | None) -> EventHook:
        scrubber = self._scrubber

        def before_send_transaction(event: Any, hint: Any) -> Any:
            event = scrubber.scrub_event(event, hint)
            return event if previous is None else previous(event, hint)

        return before_send_transaction

    def _before_send_log(self, previous: EventHook | None) -> EventHook:
        scrubber = self._scrubber
        floor = LOG_SEVERITY[self._config.discord_logs_level]

        def before_send_log(log: Any, hint: Any) -> Any:
            if isinstance(log, dict):
                if _is_discord_chatter(log, floor):
                    return None
                _link_to_run(log)
                log = scrubber.scrub_log(log)
            return log if previous is None else previous(log, hint)

        return before_send_log

    def _before_send_metric(self, previous: EventHook | None) -> EventHook:
        scrubber = self._scrubber

        def before_send_metric(metric: Any, hint: Any) -> Any:
            attributes = metric.get("attributes") if isinstance(metric, dict) else None
            if isinstance(attributes, dict):
                # The SDK copies the scope's user onto metrics recorded inside a command;
                # no user id is ever a metric attribute. Nothing else is dropped.
                for key in [k for k in attributes if str(k).startswith("user.")]:
                    del attributes[key]
                if attributes.pop(STRUCTURAL, None) is None:
                    scrubber.scrub_attributes(attributes)
            return metric if previous is None else previous(metric, hint)

        return before_send_metric

    def _before_send_span(self, previous: EventHook | None) -> EventHook:
        scrubber = self._scrubber

        def before_send_span(span: Any, hint: Any) -> Any:
            # Streamed spans (trace_lifecycle="stream") skip before_send_transaction.
            if isinstance(span, dict):
                span = scrubber.scrub_span(span)
            return span if previous is None else previous(span, hint)

        return before_send_span

    def _chain_hooks(self, client: Any) -> None:
        for name, factory in (
            ("before_send", self._before_send),
            ("before_send_transaction", self._before_send_transaction),
            ("before_send_log", self._before_send_log),
            ("before_send_metric", self._before_send_metric),
            ("before_send_span", self._before_send_span),
        ):
            previous = client.options.get(name)
            if previous is None and name in ("before_send_metric", "before_send_log"):
                # Older SDKs took these hooks under _experiments; keep the owner's.
                previous = (client.options.get("_experiments") or {}).get(name)
            hook = factory(previous)
            self._previous_hooks[name] = previous
            self._installed_hooks[name] = hook
            client.options[name] = hook

    def _unchain_hooks(self, client: Any) -> None:
        for name, hook in self._installed_hooks.items():
            # Only put back what we replaced; if someone chained after us, leave theirs.
            if client.options.get(name) is hook:
                client.options[name] = self._previous_hooks.get(name)
        self._installed_hooks.clear()
        self._previous_hooks.clear()
