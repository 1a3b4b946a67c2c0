"""The cog: composes the core and the adapter, and owns their lifecycle.

Loading starts the Sentry connection and wraps the bot's entry points; unloading
unwraps them, flushes what is buffered off the event loop, and closes a client the cog
opened itself. Nothing is left behind, so ``reload_extension`` is safe.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands
from sentry_sdk.integrations.logging import ignore_logger

from tux_sentry_cog.adapter.context import SentryContextCollector
from tux_sentry_cog.adapter.errors import make_classifier
from tux_sentry_cog.adapter.hooks import BotInstrumentation
from tux_sentry_cog.config import SentryCogConfig, resolve_config
from tux_sentry_cog.core.client import SentryConnection
from tux_sentry_cog.core.fingerprint import DEFAULT_IGNORED_MODULES, ErrorFingerprintGenerator
from tux_sentry_cog.core.related import RelatedErrorDetector
from tux_sentry_cog.core.reporter import ErrorReporter
from tux_sentry_cog.core.scrubbing import Scrubber
from tux_sentry_cog.core.spikes import SpikeDetector
from tux_sentry_cog.core.system import SystemInfo

__all__ = ["SentryCog", "setup"]

_log = logging.getLogger(__name__)

#: fnmatch pattern of the package logger and its children.
_PACKAGE_LOGGER = "tux_sentry_cog*"

#: Frames of discord.py are never "where the error happened" for the bot owner.
IGNORED_MODULES = (*DEFAULT_IGNORED_MODULES, "discord")


class SentryCog(commands.Cog, name="Sentry"):
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
        self.reporter = ErrorReporter(
            connection=self.connection,
            classifier=make_classifier(),
            fingerprints=ErrorFingerprintGenerator(IGNORED_MODULES),
            related=RelatedErrorDetector(),
            spikes=SpikeDetector(),
            capture_user_errors=self.config.capture_user_errors,
            system_context=self.system.snapshot,
            active_runs=lambda: self.instrumentation.active_runs,
            scrub_text=self.scrubber.scrub_text,
        )
        self.instrumentation = BotInstrumentation(
            bot,
            connection=self.connection,
            reporter=self.reporter,
            collector=self.collector,
            send_pii=self.config.send_pii,
        )

    def _secrets(self) -> list[str]:
        # Read per event, never stored or logged: the token may be set after load.
        token = getattr(self.bot.http, "token", None)
        secrets = self.connection.secrets()
        if isinstance(token, str) and token:
            secrets.append(token)
        return secrets

    async def cog_load(self) -> None:
        """Start the Sentry connection and wrap the bot's entry points."""
        # The cog's own faults are logged for the bot's log, never sent as events: a
        # broken instrumentation must not feed itself (sentry-sdk does the same).
        ignore_logger(_PACKAGE_LOGGER)
        self.connection.start()
        try:
            self.instrumentation.install()
        except Exception:
            self.instrumentation.uninstall()
            await self.connection.stop()
            raise

    async def cog_unload(self) -> None:
        """Unwrap, flush off the event loop, and close what the cog opened."""
        self.instrumentation.uninstall()
        await self.connection.stop()


def _bot_version(bot: Any) -> str | None:
    version = getattr(bot, "version", None) or getattr(bot, "__version__", None)
    return str(version) if version is not None else None


async def setup(bot: commands.Bot) -> None:
    """Entry point of ``bot.load_extension("tux_sentry_cog")``.

    Raises:
        ConfigError: a configuration value is bad; the message names it.
    """
    config = resolve_config(getattr(bot, "sentry_cog_config", None))
    await bot.add_cog(SentryCog(bot, config))
