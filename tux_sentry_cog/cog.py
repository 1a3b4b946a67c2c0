"""The cog: composes the core and the adapter, and owns their lifecycle.

Loading starts the Sentry connection, makes sure discord.py is patched (once per
process, :class:`~tux_sentry_cog.integration.DiscordIntegration`) and publishes the
cog's hooks under :data:`~tux_sentry_cog.adapter.patches.HOOKS_ATTRIBUTE`, where the
patches find them. Unloading waits a bounded time for the runs in flight, flushes what
is buffered off the event loop, and closes a client the cog opened itself. Nothing of
discord.py or of the bot is restored, because nothing of theirs was replaced: without a
loaded cog the patches pass straight through, so ``reload_extension`` is safe in any
order among other extensions and wrappers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
from discord.ext import commands
from sentry_sdk.integrations.logging import ignore_logger

from tux_sentry_cog.adapter.context import SentryContextCollector
from tux_sentry_cog.adapter.errors import make_classifier
from tux_sentry_cog.adapter.hooks import BotInstrumentation
from tux_sentry_cog.adapter.loop_runs import LoopRuns
from tux_sentry_cog.adapter.patches import HOOKS_ATTRIBUTE
from tux_sentry_cog.adapter.telemetry import Telemetry
from tux_sentry_cog.config import SentryCogConfig, resolve_config, warn_unknown_variables
from tux_sentry_cog.core.client import SentryConnection
from tux_sentry_cog.core.fingerprint import DEFAULT_IGNORED_MODULES, ErrorFingerprintGenerator
from tux_sentry_cog.core.noise import EventBudget, IgnoredErrors
from tux_sentry_cog.core.optout import OPTED_OUT_GUILD, OptOutPolicy, RunDescription
from tux_sentry_cog.core.related import RelatedErrorDetector
from tux_sentry_cog.core.reporter import ErrorReporter
from tux_sentry_cog.core.scrubbing import Scrubber
from tux_sentry_cog.core.spikes import SpikeDetector
from tux_sentry_cog.core.status import AnomalySummary, SlowCommand, StatusSnapshot
from tux_sentry_cog.core.system import SystemInfo
from tux_sentry_cog.integration import ensure_integration, integration_config
from tux_sentry_cog.status import StatusCommands

__all__ = ["SentryCog", "setup"]

_log = logging.getLogger(__name__)

#: fnmatch pattern of the package logger and its children.
_PACKAGE_LOGGER = "tux_sentry_cog*"

#: Frames of discord.py are never "where the error happened" for the bot owner.
IGNORED_MODULES = (*DEFAULT_IGNORED_MODULES, "discord")

#: Longest wait, on unload, for runs in flight to end and report (an owner's own
#: ``!unload`` command is not waited for).
UNLOAD_GRACE_SECONDS = 5.0


class SentryCog(StatusCommands, name="Sentry"):
    """Sentry observability for the bot it is added to.

    Args:
        bot: The bot.
        config: The configuration; read from ``bot.sentry_cog_config`` or the
            environment when not given.
    """

    def __init__(self, bot: commands.Bot, config: SentryCogConfig | None = None) -> None:
        """Build every part; nothing touches the bot or the SDK before ``cog_load``."""
        self.bot = bot
        self.config = config or resolve_config(getattr(bot, "sentry_cog_config", None))
        self.scrubber = Scrubber(self._secrets, send_pii=self.config.send_pii)
        self.connection = SentryConnection(self.config, self.scrubber)
        self.system = SystemInfo(
            bot_version=self.config.release or _bot_version(bot),
            framework_version=discord.__version__,
        )
        self.collector = SentryContextCollector(send_pii=self.config.send_pii, system=self.system)
        self.telemetry = Telemetry(bot, self.config, self.connection)
        self.reporter = ErrorReporter(
            connection=self.connection,
            classifier=make_classifier(),
            fingerprints=ErrorFingerprintGenerator(IGNORED_MODULES),
            related=RelatedErrorDetector(),
            spikes=SpikeDetector(),
            capture_user_errors=self.config.capture_user_errors,
            system_context=self.system.snapshot,
            active_runs=lambda: self.instrumentation.active_runs,
            scrub_message=self.scrubber.scrub_message,
            metrics=self.telemetry.errors,
            budget=EventBudget(limit=self.config.events_per_group_per_hour),
            ignored=IgnoredErrors(self.config.ignore_errors),
            opt_out=OptOutPolicy(
                self.config.ignore_guild_ids,
                self.config.ignore_user_ids,
                self.config.should_report,
            ),
        )
        self.instrumentation = BotInstrumentation(
            bot,
            connection=self.connection,
            reporter=self.reporter,
            collector=self.collector,
            send_pii=self.config.send_pii,
            on_run_end=self.telemetry.command_finished,
        )
        self.loops = LoopRuns(
            connection=self.connection,
            reporter=self.reporter,
            collector=self.collector,
            transactions=self.instrumentation.transactions,
            metrics=self.telemetry.metrics,
            monitor=self.config.monitor_loops,
            prefix=self.config.metric_prefix,
        )
        self.instrumentation.loops = self.loops

    def _secrets(self) -> list[str]:
        # Read per event, never stored or logged: the token may be set after load.
        token = getattr(self.bot.http, "token", None)
        secrets = self.connection.secrets()
        if isinstance(token, str) and token:
            secrets.append(token)
        return secrets

    async def cog_load(self) -> None:
        """Start the Sentry connection, patch discord.py (once) and start serving."""
        # The cog's own faults are logged for the bot's log, never sent as events: a
        # broken instrumentation must not feed itself (sentry-sdk does the same).
        ignore_logger(_PACKAGE_LOGGER)
        self.connection.start()
        try:
            ensure_integration(self.connection.client)
            self.instrumentation.install()
            self.telemetry.start()
        except Exception:
            self.instrumentation.uninstall()
            await self.connection.stop()
            raise
        if self.config.track_activity:
            # Only when turned on: a listener is a task per message for the bot.
            self.bot.add_listener(self.on_message, "on_message")
            self.bot.add_listener(self.on_reaction_add, "on_reaction_add")
        # Published last: from here on the patched entry points serve this bot.
        setattr(self, HOOKS_ATTRIBUTE, self.instrumentation)

    async def cog_unload(self) -> None:
        """Let runs in flight end, flush the metrics, then flush and close the client."""
        if self.config.track_activity:
            self.bot.remove_listener(self.on_message, "on_message")
            self.bot.remove_listener(self.on_reaction_add, "on_reaction_add")
        left = await self.instrumentation.drain(UNLOAD_GRACE_SECONDS)
        if left:
            _log.warning("tux_sentry_cog unloaded with %d runs still in flight", left)
        self.instrumentation.uninstall()
        try:
            await self.telemetry.stop()
        finally:
            await self.connection.stop()

    # activity (opt-in, added as listeners in cog_load only when turned on) -------------

    async def on_message(self, message: discord.Message) -> None:
        """Count a message as activity."""
        if not message.author.bot:
            self._activity("message", message.author.id, message.guild)

    async def on_reaction_add(self, reaction: discord.Reaction, user: discord.abc.User) -> None:
        """Count a reaction as activity."""
        if not user.bot:
            self._activity("reaction", user.id, reaction.message.guild)

    def _activity(self, kind: str, user_id: int, guild: discord.Guild | None) -> None:
        guild_id = guild.id if guild else None
        if self.reporter.opt_out.refuses(
            self.connection.active,
            lambda: RunDescription("event", f"on_{kind}", guild_id=guild_id, user_id=user_id),
        ):
            # Still counted, without the guild's id.
            self.telemetry.business.record_user_activity(kind, user_id, OPTED_OUT_GUILD)
            return
        self.telemetry.business.record_user_activity(kind, user_id, guild_id)

    # gateway health: breadcrumbs (info, not errors) and the status report --------------

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        """The gateway connection dropped."""
        if not self._sharded:
            self.telemetry.gateway_event("disconnect")

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        """The gateway session resumed."""
        if not self._sharded:
            self.telemetry.gateway_event("resume")
            self.telemetry.limits.resumed(self.bot.shard_id)

    @commands.Cog.listener()
    async def on_connect(self) -> None:
        """Connected (again) to the gateway."""
        if not self._sharded:
            self.telemetry.gateway_event("connect")
            self.telemetry.limits.connected(self.bot.shard_id)

    @commands.Cog.listener()
    async def on_shard_disconnect(self, shard_id: int) -> None:
        """A shard's gateway connection dropped."""
        self.telemetry.gateway_event("disconnect", shard_id)

    @commands.Cog.listener()
    async def on_shard_resumed(self, shard_id: int) -> None:
        """A shard's session resumed."""
        self.telemetry.gateway_event("resume", shard_id)
        self.telemetry.limits.resumed(shard_id)

    @commands.Cog.listener()
    async def on_shard_connect(self, shard_id: int) -> None:
        """A shard connected (again)."""
        self.telemetry.gateway_event("connect", shard_id)
        self.telemetry.limits.connected(shard_id)

    @property
    def _sharded(self) -> bool:
        # An AutoShardedBot dispatches each event twice, plain and per shard: the shard
        # form, which names the shard, is the one counted.
        return isinstance(self.bot, discord.AutoShardedClient)

    # status -----------------------------------------------------------------------------

    def status_snapshot(self) -> StatusSnapshot:
        """Everything ``/sentry status`` shows, read now."""
        client = self.connection.client
        options: dict[str, Any] = client.options if client is not None else {}
        stats = self.reporter.stats
        ledger = self.connection.ledger
        sample = self.telemetry.last_sample
        performance = self.telemetry.performance
        now = time.monotonic()
        return StatusSnapshot(
            mode=str(self.connection.mode.value),
            dsn_host=self.connection.dsn_host,
            environment=options.get("environment") or self.config.environment,
            release=options.get("release") or self.config.release,
            sample_rate=options.get("traces_sample_rate") if client is not None else None,
            commands_executed=self.instrumentation.completed_runs,
            commands_failed=self.instrumentation.failed_runs,
            commands_user_errors=self.instrumentation.user_failed_runs,
            error_rate_1m=self.telemetry.error_window.rate_per_minute(60),
            error_rate_5m=self.telemetry.error_window.rate_per_minute(300),
            user_error_rate_5m=self.telemetry.user_error_window.rate_per_minute(300),
            errors_reported=stats.reported,
            errors_user=stats.user_errors,
            errors_queued=stats.queued,
            errors_sent=(
                ledger.watched_delivered
                if ledger.deliveries_known or not self.connection.active
                else None
            ),
            errors_undelivered=ledger.watched_failed,
            last_event_id=ledger.last_delivered_event_id,
            top_groups=tuple(self.reporter.top_groups(5)),
            errors_held_back=self.reporter.budget.held_back,
            held_back_groups=tuple(self.reporter.budget.suppressed(3)),
            errors_ignored=stats.ignored,
            errors_opted_out=stats.opted_out,
            slowest=tuple(
                SlowCommand(name, baseline.p50_ms, baseline.p95_ms, baseline.samples)
                for name, baseline in performance.slowest(5)
            ),
            anomalies=tuple(
                AnomalySummary(
                    a.command, a.observed_ms, a.baseline_p50_ms, max(0.0, now - a.detected_at)
                )
                for a in performance.recent_anomalies(5)
            ),
            memory_mb=sample.memory_mb if sample else self.system.memory_mb(),
            cpu_percent=sample.cpu_percent if sample else None,
            event_loop_lag_ms=sample.event_loop_lag_ms if sample else None,
            uptime_s=self.system.uptime_s(),
            gateway_latency_ms=self.telemetry.latencies_ms(),
            gateway_events=tuple(self.telemetry.gateway_events),
            discord_limits=self.telemetry.limits.window.summary(),
            transport_problem=self.connection.transport_problem(),
            instrumentation_faults=(
                stats.failures
                + self.telemetry.flush_failures
                + self.telemetry.metrics.failures
                + self.reporter.opt_out.faults
                + self.telemetry.limits.failures
            ),
            tasks=self.loops.summaries(),
        )


def _bot_version(bot: Any) -> str | None:
    version = getattr(bot, "version", None) or getattr(bot, "__version__", None)
    return str(version) if version is not None else None


async def setup(bot: commands.Bot) -> None:
    """Entry point of ``bot.load_extension("tux_sentry_cog")``.

    Raises:
        ConfigError: a configuration value is bad; the message names it.
    """
    warn_unknown_variables()
    own = getattr(bot, "sentry_cog_config", None)
    config = resolve_config(own if own is not None else integration_config())
    await bot.add_cog(SentryCog(bot, config))
